//! `ringstore user create|list|delete`: key-value users (for `kv_auth`)
//! through a node's admin API.

use anyhow::{bail, Result};
use clap::Subcommand;
use client::Client;
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub(crate) enum UserOp {
    /// Create a user; prints its password once.
    Create {
        /// The user's name (letters, digits, '-', '_', '.').
        name: String,
        /// May read TYPE/BUCKET (`*` for any; repeatable).
        #[arg(long, value_name = "TYPE/BUCKET")]
        read: Vec<String>,
        /// May read and write TYPE/BUCKET (`*` for any; repeatable).
        #[arg(long, value_name = "TYPE/BUCKET")]
        write: Vec<String>,
    },
    /// List users and their grants.
    List,
    /// Delete a user.
    Delete {
        /// The user's name.
        name: String,
    },
}

/// `TYPE/BUCKET` as a grant.
fn grant(spec: &str, write: bool) -> Result<Value> {
    let Some((bucket_type, bucket)) = spec.split_once('/') else {
        bail!("{spec:?} is not TYPE/BUCKET (for example default/photos, or default/* for every bucket of the type)");
    };
    if bucket_type.is_empty() || bucket.is_empty() {
        bail!("{spec:?} is not TYPE/BUCKET: both parts are needed");
    }
    Ok(json!({ "bucket_type": bucket_type, "bucket": bucket, "read": true, "write": write }))
}

pub(crate) async fn run(op: UserOp, c: &Client, as_json: bool) -> Result<ExitCode> {
    let value = match op {
        UserOp::Create { name, read, write } => {
            let grants: Vec<Value> = read
                .iter()
                .map(|s| grant(s, false))
                .chain(write.iter().map(|s| grant(s, true)))
                .collect::<Result<_>>()?;
            c.create_user(&name, Value::Array(grants)).await?
        }
        UserOp::List => c.list_users().await?,
        UserOp::Delete { name } => {
            c.delete_user(&name).await?;
            json!({ "deleted": name })
        }
    };
    if as_json {
        println!("{value}");
    } else if let Some(password) = value["password"].as_str() {
        println!("user:     {}", value["name"].as_str().unwrap_or("?"));
        println!("password: {password}");
        println!("(the password is shown once; keep it; use it as curl -u USER:PASSWORD)");
    } else if let Some(users) = value["users"].as_array() {
        for u in users {
            println!(
                "{}  grants: {}",
                u["name"].as_str().unwrap_or("?"),
                u["grants"]
            );
        }
    } else {
        println!("{value}");
    }
    Ok(ExitCode::SUCCESS)
}
