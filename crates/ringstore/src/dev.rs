//! `ringstore dev`: a local cluster of N nodes in one process, for trying
//! ringstore out and for development. Data stays in the data directory
//! between runs, so a restarted dev cluster still has its data.

use crate::server;
use anyhow::{bail, Context, Result};
use node::NodeConfig;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

/// Flags of `ringstore dev`.
#[derive(clap::Args, Debug)]
pub(crate) struct DevFlags {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Node i uses http P+10i, s3 P+10i+1, rpc P+10i+2, web P+10i+3.
    #[arg(long, default_value_t = 8098)]
    base_port: u16,
    /// Where the nodes keep their data (node-0, node-1, ...).
    #[arg(long, default_value = "./ringstore-dev")]
    data_dir: PathBuf,
    /// Encrypt node-to-node traffic (`false`: authenticated but plain, to
    /// measure what encryption costs).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    internode_encryption: bool,
    /// Serve HTTPS on the HTTP and S3 listeners, with a throwaway CA made
    /// in DATA_DIR/tls (its certificate goes to cluster.json as `ca_cert`).
    #[arg(long)]
    tls: bool,
}

const DEV_SECRET: &str = "ringstore-dev-cluster";

pub(crate) async fn run(flags: DevFlags) -> Result<()> {
    if flags.nodes == 0 || flags.nodes > 64 {
        bail!("--nodes must be between 1 and 64");
    }
    let last = u32::from(flags.base_port) + 10 * u32::from(flags.nodes - 1) + 2;
    if last > u32::from(u16::MAX) {
        bail!(
            "--base-port {} leaves no room for {} nodes (port {last} does not exist)",
            flags.base_port,
            flags.nodes
        );
    }
    std::fs::create_dir_all(&flags.data_dir)
        .with_context(|| format!("creating {}", flags.data_dir.display()))?;
    let port = |i: u16, k: u16| format!("127.0.0.1:{}", flags.base_port + 10 * i + k);
    let file = flags.data_dir.join("cluster.json");
    // What a previous run wrote, if anything: its admin token and S3 key
    // are kept when still good.
    let previous: Option<serde_json::Value> = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let admin_token = dev_admin_token(previous.as_ref());
    let tls = if flags.tls {
        Some(crate::dev_tls::ensure(&flags.data_dir)?)
    } else {
        None
    };
    let mut running = Vec::new();
    for i in 0..flags.nodes {
        let cfg = NodeConfig {
            data_dir: flags.data_dir.join(format!("node-{i}")),
            http: port(i, 0),
            s3: port(i, 1),
            rpc: port(i, 2),
            zone: "dev".into(),
            join: if i == 0 { vec![] } else { vec![port(0, 2)] },
            cluster_secret: DEV_SECRET.into(),
            internode_encryption: flags.internode_encryption,
            admin_token: Some(admin_token.clone()),
            tls_cert: tls.as_ref().map(|t| t.cert.clone()),
            tls_key: tls.as_ref().map(|t| t.key.clone()),
            ..NodeConfig::default()
        };
        running.push(
            server::start(
                server::ServerConfig {
                    node: cfg,
                    s3: s3::S3Config {
                        web: port(i, 3),
                        ..s3::S3Config::default()
                    },
                },
                u64::from(flags.nodes),
            )
            .await
            .with_context(|| format!("starting node {i}"))?,
        );
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while running
        .iter()
        .any(|r| r.node.layout().members().len() < usize::from(flags.nodes))
    {
        if tokio::time::Instant::now() > deadline {
            bail!("the dev nodes did not form one cluster within 30 s; is an old dev cluster with other members in {}?", flags.data_dir.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let nodes: Vec<_> = running
        .iter()
        .map(|r| {
            let c = r.node.config();
            json!({ "id": r.node.id().to_string(), "http": c.http, "s3": c.s3, "rpc": c.rpc, "web": r.web })
        })
        .collect();
    let (key_id, secret) = dev_s3_key(&running[0].node, previous.as_ref()).await?;
    let mut endpoints = json!({
        "nodes": nodes,
        "s3_access_key_id": key_id,
        "s3_secret_access_key": secret,
        "admin_token": admin_token,
    });
    if let Some(t) = &tls {
        endpoints["ca_cert"] = json!(t.ca_cert.canonicalize()?);
    }
    std::fs::write(&file, serde_json::to_string_pretty(&endpoints)?)?;
    print_welcome(
        &flags,
        &running,
        &file,
        tls.as_ref(),
        &admin_token,
        (&key_id, &secret),
    )?;
    println!("Ctrl-C stops the cluster; its data stays for the next run.");
    server::shutdown_signal().await;
    println!("stopping");
    for r in running {
        r.stop().await;
    }
    Ok(())
}

/// Tell the user where the nodes are and how to try them: commands that
/// work as printed, TLS or not.
fn print_welcome(
    flags: &DevFlags,
    running: &[server::Running],
    file: &std::path::Path,
    tls: Option<&crate::dev_tls::DevTls>,
    admin_token: &str,
    (key_id, secret): (&str, &str),
) -> Result<()> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "ringstore dev cluster: {} node(s), data in {}",
        flags.nodes,
        flags.data_dir.display()
    );
    for (i, r) in running.iter().enumerate() {
        let c = r.node.config();
        println!(
            "  node {i} {}  http {scheme}://{}  s3 {scheme}://{}  rpc {}  web http://{}",
            r.node.id(),
            c.http,
            c.s3,
            c.rpc,
            r.web
        );
    }
    println!("endpoints written to {}", file.display());
    let first = running[0].node.config().http.clone();
    println!("dashboard: {scheme}://{first}/ui?token={admin_token}");
    let (curl, aws) = match tls {
        Some(t) => {
            let ca = t.ca_cert.canonicalize()?;
            println!("TLS: certificates from a throwaway CA, {}", ca.display());
            (
                format!("curl --cacert {}", ca.display()),
                format!("aws --ca-bundle {}", ca.display()),
            )
        }
        None => ("curl".to_string(), "aws".to_string()),
    };
    let first = running[0].node.config().http.clone();
    let s3 = running[0].node.config().s3.clone();
    println!();
    println!("try it:");
    println!("  {curl} -X PUT -H 'Content-Type: text/plain' -d 'hello' {scheme}://{first}/buckets/demo/keys/greeting");
    println!("  {curl} {scheme}://{first}/buckets/demo/keys/greeting");
    println!("  {curl} -H 'Authorization: Bearer {admin_token}' {scheme}://{first}/admin/cluster");
    if tls.is_none() {
        println!(
            "  ringstore cluster status --node {first} --cluster-file {}   (the CLI finds the admin token there)",
            file.display()
        );
    }
    println!("  export AWS_ACCESS_KEY_ID={key_id} AWS_SECRET_ACCESS_KEY={secret} AWS_DEFAULT_REGION=us-east-1");
    println!("  {aws} --endpoint-url {scheme}://{s3} s3 mb s3://demo");
    println!("  echo hello | {aws} --endpoint-url {scheme}://{s3} s3 cp - s3://demo/hello.txt");
    println!("  {aws} --endpoint-url {scheme}://{s3} s3 ls s3://demo");
    let web = &running[0].web;
    println!("  # a public website from the demo bucket:");
    println!(
        "  {aws} --endpoint-url {scheme}://{s3} s3 website s3://demo --index-document index.html"
    );
    println!("  echo '<h1>hello</h1>' | {aws} --endpoint-url {scheme}://{s3} s3 cp --acl public-read --content-type text/html - s3://demo/index.html");
    println!("  curl -H 'Host: demo.web.localhost' http://{web}/");
    Ok(())
}

/// The dev cluster's admin token: the one a previous run wrote to
/// `cluster.json` (so a restarted cluster keeps it), else a new random one.
fn dev_admin_token(previous: Option<&serde_json::Value>) -> String {
    previous
        .and_then(|v| v["admin_token"].as_str().map(str::to_string))
        .filter(|t| t.len() >= node::ADMIN_TOKEN_CHARS_MIN)
        .unwrap_or_else(|| {
            rand::random::<[u8; 16]>()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        })
}

/// The dev cluster's S3 key: the one a previous run wrote to
/// `cluster.json` if the cluster still has it, else a new one.
async fn dev_s3_key(
    node: &node::Node,
    previous: Option<&serde_json::Value>,
) -> Result<(String, String)> {
    let keys = s3::KeyStore::new(s3::catalog::Catalog::new(node.clone()));
    if let Some(v) = previous {
        if let (Some(id), Some(secret)) = (
            v["s3_access_key_id"].as_str(),
            v["s3_secret_access_key"].as_str(),
        ) {
            if let Ok(Some(k)) = keys.lookup(id).await {
                if k.secret == secret {
                    return Ok((id.to_string(), secret.to_string()));
                }
            }
        }
    }
    keys.create("dev")
        .await
        .map_err(|e| anyhow::anyhow!("creating the dev S3 key: {e}"))
}
