//! `ringstore key create|list|delete|allow`: S3 access keys through a
//! node's admin API.

use anyhow::Result;
use clap::Subcommand;
use client::Client;
use serde_json::json;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub(crate) enum KeyOp {
    /// Create an access key (it may create buckets, and owns those).
    Create {
        /// A name for people.
        #[arg(default_value = "")]
        name: String,
    },
    /// List access keys and their rights.
    List,
    /// Delete an access key.
    Delete {
        /// Access key id.
        key_id: String,
    },
    /// Set a key's rights on a bucket (none of the flags: revoke).
    Allow {
        /// Access key id.
        key_id: String,
        /// Bucket.
        bucket: String,
        /// List and read objects.
        #[arg(long)]
        read: bool,
        /// Write and delete objects.
        #[arg(long)]
        write: bool,
        /// Delete the bucket.
        #[arg(long)]
        owner: bool,
    },
}

pub(crate) async fn run(op: KeyOp, c: &Client, as_json: bool) -> Result<ExitCode> {
    let value = match op {
        KeyOp::Create { name } => c.create_key(&name).await?,
        KeyOp::List => c.list_keys().await?,
        KeyOp::Delete { key_id } => {
            c.delete_key(&key_id).await?;
            json!({ "deleted": key_id })
        }
        KeyOp::Allow {
            key_id,
            bucket,
            read,
            write,
            owner,
        } => {
            let rights = json!({ "read": read, "write": write, "owner": owner });
            c.grant(&key_id, &bucket, rights).await?
        }
    };
    if as_json {
        println!("{value}");
    } else if let Some(keys) = value["keys"].as_array() {
        for k in keys {
            println!(
                "{}  {}  buckets: {}",
                k["access_key_id"].as_str().unwrap_or("?"),
                k["name"].as_str().unwrap_or(""),
                k["buckets"]
            );
        }
    } else if let Some(secret) = value["secret_access_key"].as_str() {
        println!(
            "access key id:     {}",
            value["access_key_id"].as_str().unwrap_or("?")
        );
        println!("secret access key: {secret}");
        println!("(the secret is shown once; keep it)");
    } else {
        println!("{value}");
    }
    Ok(ExitCode::SUCCESS)
}
