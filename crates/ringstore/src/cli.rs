//! Command-line arguments and the small client commands (`kv`, `cluster`).

use crate::{dev, server};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use client::Client;
use serde_json::{json, Value};
use std::process::ExitCode;

/// ringstore: a masterless, replicated store for files and records.
#[derive(Parser, Debug)]
#[command(version, about)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

impl Args {
    /// Whether the command is a load generator (`bench`, key-value or
    /// `s3`), which runs on one thread; see `main`.
    pub(crate) fn is_load_generator(&self) -> bool {
        matches!(
            &self.command,
            Command::Bench(BenchArgs {
                mode: None | Some(BenchMode::S3(_)),
                ..
            })
        )
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one node.
    Server(server::ServerFlags),
    /// Run a local N-node cluster on 127.0.0.1.
    Dev(dev::DevFlags),
    /// Read and write keys through any node.
    Kv {
        #[command(subcommand)]
        op: KvOp,
        /// HTTP address of the node to talk to.
        #[arg(long, global = true, default_value = "127.0.0.1:8098")]
        node: String,
        /// Print machine-readable JSON.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Inspect and change cluster membership.
    Cluster {
        #[command(subcommand)]
        op: ClusterOp,
        #[command(flatten)]
        to: AdminTarget,
    },
    /// Manage S3 access keys.
    Key {
        #[command(subcommand)]
        op: crate::keys::KeyOp,
        #[command(flatten)]
        to: AdminTarget,
    },
    /// Manage key-value users (for `kv_auth`).
    User {
        #[command(subcommand)]
        op: crate::users::UserOp,
        #[command(flatten)]
        to: AdminTarget,
    },
    /// Load-test a node's key-value API, or run `bench heal|join|s3`.
    Bench(BenchArgs),
}

/// The node an admin command talks to, how it prints, and its token.
#[derive(clap::Args, Debug)]
struct AdminTarget {
    /// HTTP address of the node to talk to.
    #[arg(long, global = true, default_value = "127.0.0.1:8098")]
    node: String,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    admin: AdminToken,
}

impl AdminTarget {
    fn client(&self) -> Result<Client> {
        self.admin.client(&self.node)
    }
}

/// Where the admin token comes from: `RINGSTORE_ADMIN_TOKEN`, else the
/// `admin_token` of a cluster file (`ringstore dev` writes one).
#[derive(clap::Args, Debug)]
struct AdminToken {
    /// The admin API's bearer token.
    #[arg(
        long,
        global = true,
        env = "RINGSTORE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,
    /// A cluster file to read the admin token from when none is given.
    #[arg(long, global = true, default_value = "ringstore-dev/cluster.json")]
    cluster_file: std::path::PathBuf,
}

impl AdminToken {
    /// A client for `node` that sends the admin token, if one is found.
    fn client(&self, node: &str) -> Result<Client> {
        let token = match &self.admin_token {
            Some(t) => Some(t.clone()),
            None => match std::fs::read_to_string(&self.cluster_file) {
                Ok(text) => {
                    let v: Value = serde_json::from_str(&text).with_context(|| {
                        format!(
                            "reading the admin token from {}",
                            self.cluster_file.display()
                        )
                    })?;
                    v["admin_token"].as_str().map(str::to_string)
                }
                // No file: requests go without a token, and a node that
                // wants one answers 401 saying how to pass it.
                Err(_) => None,
            },
        };
        Ok(Client::new(node).with_admin_token(token.as_deref()))
    }
}

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct BenchArgs {
    #[command(subcommand)]
    mode: Option<BenchMode>,
    #[command(flatten)]
    kv: bench::kv::BenchFlags,
}

#[derive(Subcommand, Debug)]
enum BenchMode {
    /// Cut a node off, write to the others, heal, time its catching up.
    Heal(bench::heal::HealFlags),
    /// Load one node, start a second, time its handoff.
    Join(bench::join::JoinFlags),
    /// PUT or GET load on an S3 endpoint (ringstore's or any other).
    S3(bench::s3::S3BenchFlags),
}

#[derive(Subcommand, Debug)]
enum KvOp {
    /// Fetch a key (exit 1 if not found).
    Get {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// Store a value.
    Put {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The value.
        value: String,
        /// Content type of the value.
        #[arg(long, default_value = "text/plain")]
        content_type: String,
        /// Causal context from a previous get, to replace what it saw.
        #[arg(long)]
        vclock: Option<String>,
        /// An index term, NAME_bin=TERM, NAME_int=N or NAME_geo=LAT,LON
        /// (repeatable).
        #[arg(long = "index", value_name = "NAME=TERM")]
        indexes: Vec<String>,
    },
    /// Query a secondary index: keys whose TERM equals, or lies in
    /// TERM..END (one page; --continuation for the next).
    Index {
        /// Bucket.
        bucket: String,
        /// Index: NAME_bin, NAME_int, $key or $bucket.
        index: String,
        /// The term, or the start of the range.
        term: String,
        /// The end of the range.
        end: Option<String>,
        /// Keys per page.
        #[arg(long)]
        max_results: Option<u32>,
        /// From the previous page's continuation.
        #[arg(long)]
        continuation: Option<String>,
        /// Print each key with its term.
        #[arg(long)]
        return_terms: bool,
    },
    /// Query a _geo index: what lies within --radius-m of --lat/--lon,
    /// nearest first, or in --bbox.
    Geo {
        /// Bucket.
        bucket: String,
        /// Index: NAME_geo.
        index: String,
        /// Latitude of the centre.
        #[arg(long, allow_hyphen_values = true)]
        lat: Option<f64>,
        /// Longitude of the centre.
        #[arg(long, allow_hyphen_values = true)]
        lon: Option<f64>,
        /// Radius in metres.
        #[arg(long)]
        radius_m: Option<f64>,
        /// MINLAT,MINLON,MAXLAT,MAXLON instead of a radius.
        #[arg(long, allow_hyphen_values = true)]
        bbox: Option<String>,
        /// Results per page.
        #[arg(long)]
        max_results: Option<u32>,
        /// From the previous page's continuation.
        #[arg(long)]
        continuation: Option<String>,
    },
    /// Delete a key.
    Delete {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
}

#[derive(Subcommand, Debug)]
enum ClusterOp {
    /// Show every node, its state and liveness.
    Status,
    /// Make the node (--node) join the cluster of a member's RPC address.
    Join {
        /// RPC address (host:port) of any member.
        seed: String,
    },
    /// Hand a node's partitions off to the others, then remove it.
    Leave {
        /// The node's id (see `cluster status`).
        node_id: String,
    },
    /// Give a (dead) node's partitions to another member.
    Replace {
        /// The node that goes.
        old: String,
        /// The member that takes its partitions (start it with --join).
        new: String,
    },
    /// Change a member's zone and/or capacity (partitions move to match).
    Update {
        /// The node's id (see `cluster status`).
        node_id: String,
        /// New zone (data center).
        #[arg(long)]
        zone: Option<String>,
        /// New capacity (relative share of partitions; 0 holds none).
        #[arg(long)]
        capacity: Option<u32>,
    },
    /// Show the handoffs the node (--node) is pulling; with --watch, a
    /// progress bar until they finish.
    Transfers {
        /// Follow progress until nothing is left to pull.
        #[arg(long)]
        watch: bool,
    },
}

pub(crate) async fn run(args: Args) -> Result<ExitCode> {
    match args.command {
        Command::Server(f) => server::run(f).await.map(|()| ExitCode::SUCCESS),
        Command::Dev(f) => dev::run(f).await.map(|()| ExitCode::SUCCESS),
        Command::Bench(BenchArgs {
            mode: Some(BenchMode::Heal(f)),
            ..
        }) => bench::heal::run(f).await.map(|()| ExitCode::SUCCESS),
        Command::Bench(BenchArgs {
            mode: Some(BenchMode::Join(f)),
            ..
        }) => bench::join::run(f).await.map(|()| ExitCode::SUCCESS),
        Command::Bench(BenchArgs {
            mode: Some(BenchMode::S3(f)),
            ..
        }) => bench::s3::run(f).await.map(|()| ExitCode::SUCCESS),
        Command::Bench(BenchArgs { mode: None, kv }) => {
            bench::kv::run(kv).await.map(|()| ExitCode::SUCCESS)
        }
        Command::Kv { op, node, json } => kv(op, &Client::new(&node), json).await,
        Command::Cluster { op, to } => cluster(op, &to.client()?, to.json).await,
        Command::Key { op, to } => crate::keys::run(op, &to.client()?, to.json).await,
        Command::User { op, to } => crate::users::run(op, &to.client()?, to.json).await,
    }
}

async fn kv(op: KvOp, c: &Client, as_json: bool) -> Result<ExitCode> {
    match op {
        KvOp::Get { bucket, key } => {
            let f = c.get(&bucket, &key, "").await?;
            if as_json {
                let body = String::from_utf8_lossy(&f.body);
                println!(
                    "{}",
                    json!({ "status": f.status, "vclock": f.vclock, "content_type": f.content_type, "body": body })
                );
            } else if f.status == 404 {
                eprintln!("not found");
            } else {
                if f.status == 300 {
                    eprintln!("siblings (fetch one with ?vtag=, or write with this vclock to resolve): {}", f.vclock.as_deref().unwrap_or(""));
                }
                println!("{}", String::from_utf8_lossy(&f.body).trim_end());
            }
            Ok(if f.status == 404 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        KvOp::Put {
            bucket,
            key,
            value,
            content_type,
            vclock,
            indexes,
        } => {
            let status = if indexes.is_empty() {
                c.put(
                    &bucket,
                    &key,
                    Bytes::from(value),
                    &content_type,
                    vclock.as_deref(),
                    "",
                )
                .await?
            } else {
                anyhow::ensure!(
                    vclock.is_none(),
                    "--vclock and --index together are not supported; store the terms \
                     with a fresh put"
                );
                let pairs = indexes
                    .iter()
                    .map(|i| {
                        i.split_once('=')
                            .map(|(n, t)| (n.to_string(), t.to_string()))
                            .with_context(|| format!("--index {i:?} is not NAME=TERM"))
                    })
                    .collect::<Result<Vec<_>>>()?;
                c.put_indexed(&bucket, &key, Bytes::from(value), &content_type, &pairs)
                    .await?
            };
            if as_json {
                println!("{}", json!({ "status": status }));
            }
            Ok(ExitCode::SUCCESS)
        }
        KvOp::Index {
            bucket,
            index,
            term,
            end,
            max_results,
            continuation,
            return_terms,
        } => {
            let mut q = Vec::new();
            if let Some(m) = max_results {
                q.push(format!("max_results={m}"));
            }
            if let Some(cont) = continuation {
                q.push(format!("continuation={cont}"));
            }
            if return_terms {
                q.push("return_terms=true".to_string());
            }
            let v = c
                .index_query(&bucket, &index, &term, end.as_deref(), &q.join("&"))
                .await?;
            print_query(&v, as_json, |item| match item.as_object() {
                Some(o) => o
                    .iter()
                    .map(|(t, k)| format!("{}\t{t}", k.as_str().unwrap_or_default()))
                    .collect(),
                None => item.as_str().unwrap_or_default().to_string(),
            });
            Ok(ExitCode::SUCCESS)
        }
        KvOp::Geo {
            bucket,
            index,
            lat,
            lon,
            radius_m,
            bbox,
            max_results,
            continuation,
        } => {
            let mut q = match (lat, lon, radius_m, bbox) {
                (Some(lat), Some(lon), Some(r), None) => {
                    vec![
                        format!("lat={lat}"),
                        format!("lon={lon}"),
                        format!("radius_m={r}"),
                    ]
                }
                (None, None, None, Some(b)) => vec![format!("bbox={b}")],
                _ => anyhow::bail!("give --lat, --lon and --radius-m, or --bbox"),
            };
            if let Some(m) = max_results {
                q.push(format!("max_results={m}"));
            }
            if let Some(cont) = continuation {
                q.push(format!("continuation={cont}"));
            }
            let v = c.geo_query(&bucket, &index, &q.join("&")).await?;
            print_query(&v, as_json, |r| {
                format!(
                    "{}\t{:.1} m\t{},{}",
                    r["key"].as_str().unwrap_or_default(),
                    r["distance_m"].as_f64().unwrap_or_default(),
                    r["lat"],
                    r["lon"]
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        KvOp::Delete { bucket, key } => {
            let status = c.delete(&bucket, &key, None, "").await?;
            if as_json {
                println!("{}", json!({ "status": status }));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A query's answer: as JSON, or one line per key or result and the
/// continuation (if any) on stderr.
fn print_query(v: &serde_json::Value, as_json: bool, line: impl Fn(&serde_json::Value) -> String) {
    if as_json {
        println!("{v}");
        return;
    }
    let items = v["results"].as_array().or(v["keys"].as_array());
    for item in items.into_iter().flatten() {
        println!("{}", line(item));
    }
    if let Some(cont) = v["continuation"].as_str() {
        eprintln!("more: --continuation {cont}");
    }
}

async fn cluster(op: ClusterOp, c: &Client, as_json: bool) -> Result<ExitCode> {
    let value = match op {
        ClusterOp::Status => c
            .cluster_status()
            .await
            .with_context(|| format!("asking {} for the cluster status", c.base()))?,
        ClusterOp::Join { seed } => c.join(&seed).await?,
        ClusterOp::Leave { node_id } => c.leave(&node_id).await?,
        ClusterOp::Replace { old, new } => c.replace(&old, &new).await?,
        ClusterOp::Update {
            node_id,
            zone,
            capacity,
        } => {
            if zone.is_none() && capacity.is_none() {
                bail!("give --zone, --capacity or both");
            }
            c.update_member(&node_id, zone.as_deref(), capacity).await?
        }
        ClusterOp::Transfers { watch } => {
            return crate::transfers::show(c, watch, as_json).await;
        }
    };
    if as_json {
        println!("{value}");
        return Ok(ExitCode::SUCCESS);
    }
    match value.get("nodes").and_then(Value::as_array) {
        Some(nodes) => {
            println!(
                "node {} sees layout version {}",
                value["node_id"].as_str().unwrap_or("?"),
                value["layout_version"]
            );
            println!(
                "{:<18} {:<22} {:<8} {:<8} {:<6} {:>10}",
                "ID", "HTTP", "ZONE", "STATE", "LIVE", "PARTITIONS"
            );
            for n in nodes {
                let s = |k: &str| n[k].as_str().unwrap_or("").to_string();
                println!(
                    "{:<18} {:<22} {:<8} {:<8} {:<6} {:>10}",
                    s("id"),
                    s("http"),
                    s("zone"),
                    s("state"),
                    s("liveness"),
                    n["partitions"]
                );
            }
            let under = value["under_replicated_partitions"].as_u64().unwrap_or(0);
            if under > 0 {
                println!("{under} partitions are under-replicated (fewer nodes than n_val 3): add nodes to keep 3 copies");
            }
        }
        None if value.get("joined").is_some() => {
            println!("joined through {}", value["joined"].as_str().unwrap_or("?"))
        }
        None if value.get("leaving").is_some() => println!(
            "{} is handing its partitions off; `ringstore cluster transfers --watch` on the new owners shows progress",
            value["leaving"].as_str().unwrap_or("?")
        ),
        None if value.get("replaced").is_some() => println!(
            "{} replaces {}; its partitions are copied from the surviving replicas",
            value["by"].as_str().unwrap_or("?"),
            value["replaced"].as_str().unwrap_or("?")
        ),
        None if value.get("updated").is_some() => println!(
            "{} is now in zone {} with capacity {} (layout version {}); `ringstore cluster transfers --watch` shows partitions moving",
            value["updated"].as_str().unwrap_or("?"),
            value["zone"],
            value["capacity"],
            value["layout_version"]
        ),
        None => bail!("unexpected answer: {value}"),
    }
    Ok(ExitCode::SUCCESS)
}
