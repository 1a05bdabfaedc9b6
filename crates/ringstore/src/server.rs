//! `ringstore server`: one node, configured from a TOML file and flags.

use anyhow::{Context, Result};
use node::{Env, Node, NodeConfig, SystemClock};
use std::path::Path;
use std::sync::Arc;
use store::{Engine, FjallEngine};

/// Flags that override the config file (see `shared/API.md`).
#[derive(clap::Args, Debug, Default, Clone)]
pub(crate) struct ServerFlags {
    /// TOML config file (keys documented in docs/CONFIG.md).
    #[arg(long)]
    pub(crate) config: Option<std::path::PathBuf>,
    /// Where the node keeps its data.
    #[arg(long)]
    pub(crate) data_dir: Option<std::path::PathBuf>,
    /// HTTP listener (key-value, admin, metrics), e.g. 127.0.0.1:8098.
    #[arg(long)]
    pub(crate) http: Option<String>,
    /// S3 listener, e.g. 127.0.0.1:9000.
    #[arg(long)]
    pub(crate) s3: Option<String>,
    /// Inter-node RPC listener, e.g. 127.0.0.1:7000.
    #[arg(long)]
    pub(crate) rpc: Option<String>,
    /// Website endpoint listener, e.g. 127.0.0.1:9001; `off` serves none.
    #[arg(long)]
    pub(crate) web: Option<String>,
    /// Zone (data center or rack) of this node.
    #[arg(long)]
    pub(crate) zone: Option<String>,
    /// Relative share of data this node holds.
    #[arg(long)]
    pub(crate) capacity: Option<u32>,
    /// RPC address of any member to join (repeatable).
    #[arg(long)]
    pub(crate) join: Vec<String>,
    /// Secret shared by every node of the cluster.
    #[arg(long, env = "RINGSTORE_CLUSTER_SECRET", hide_env_values = true)]
    pub(crate) cluster_secret: Option<String>,
    /// The admin API's bearer token (see docs/CONFIG.md, `admin_token`).
    #[arg(long, env = "RINGSTORE_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<String>,
    /// Accept /admin/debug/faults (tests only).
    #[arg(long)]
    pub(crate) enable_fault_injection: bool,
}

/// One node's settings: the node's and its S3 API's, read from one file.
#[derive(Clone, Debug, Default)]
pub(crate) struct ServerConfig {
    pub(crate) node: NodeConfig,
    pub(crate) s3: s3::S3Config,
}

/// Split a config file's keys between the S3 layer ([`s3::S3Config::KEYS`])
/// and the node, each of which refuses keys it does not know.
fn parse_config(text: &str) -> Result<ServerConfig> {
    let mut table: toml::Table = toml::from_str(text)?;
    let mut s3_table = toml::Table::new();
    for key in s3::S3Config::KEYS {
        if let Some(v) = table.remove(key) {
            s3_table.insert(key.to_string(), v);
        }
    }
    Ok(ServerConfig {
        node: toml::Value::Table(table).try_into()?,
        s3: toml::Value::Table(s3_table).try_into()?,
    })
}

/// Read the config file, then apply flags on top.
pub(crate) fn load_config(flags: &ServerFlags) -> Result<ServerConfig> {
    let mut both = match &flags.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            parse_config(&text)
                .with_context(|| format!("parsing config file {}", path.display()))?
        }
        None => ServerConfig::default(),
    };
    let cfg = &mut both.node;
    let f = flags.clone();
    if let Some(v) = f.data_dir {
        cfg.data_dir = v
    }
    if let Some(v) = f.http {
        cfg.http = v
    }
    if let Some(v) = f.s3 {
        cfg.s3 = v
    }
    if let Some(v) = f.rpc {
        cfg.rpc = v
    }
    if let Some(v) = f.web {
        both.s3.web = v
    }
    if let Some(v) = f.zone {
        cfg.zone = v
    }
    if let Some(v) = f.capacity {
        cfg.capacity = v
    }
    if !f.join.is_empty() {
        cfg.join = f.join
    }
    if let Some(v) = f.cluster_secret {
        cfg.cluster_secret = v
    }
    if let Some(v) = f.admin_token {
        cfg.admin_token = Some(v)
    }
    cfg.enable_fault_injection |= f.enable_fault_injection;
    cfg.validate()?;
    Ok(both)
}

/// A running node with its HTTP listener and storage.
pub(crate) struct Running {
    pub(crate) node: Node,
    /// The website endpoint's address, or `off`.
    pub(crate) web: String,
    engine: Arc<FjallEngine>,
    http: tokio::task::JoinHandle<()>,
    s3: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stop serving, make every write durable, and save what the next
    /// start would otherwise rebuild.
    pub(crate) async fn stop(self) {
        self.http.abort();
        self.s3.abort();
        if let Err(e) = self.node.stop().await {
            tracing::error!(error = %e, "clean stop failed; the next start rebuilds anti-entropy trees");
        }
        if let Err(e) = self.engine.sync() {
            tracing::error!(error = %e, "final fsync failed");
        }
    }
}

/// Descriptors kept free of client connections: peer connections, the
/// failure detector's socket, storage files (fjall's journals, tables and
/// blob files, and their reclaim links) and the odd log or config file.
const FD_HEADROOM: u64 = 2048;

/// Raise the soft descriptor limit to the hard one, then make the client
/// connection limits fit below it with [`FD_HEADROOM`] to spare, so a
/// flood of client connections meets our limit (and a log line), never
/// the process's (where accept, storage and peer connections all fail).
/// `nodes` is how many nodes share this process (`ringstore dev`).
fn fit_descriptor_limit(cfg: &mut NodeConfig, nodes: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let mut soft = limit.current.unwrap_or(u64::MAX);
    if limit.maximum != limit.current {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => soft = limit.maximum.unwrap_or(u64::MAX),
            Err(e) => tracing::warn!(error = %e, soft, "cannot raise the file descriptor limit"),
        }
    }
    let wanted = (cfg.http_connections_max + cfg.s3_connections_max) as u64;
    let budget = (soft / nodes.max(1)).saturating_sub(FD_HEADROOM);
    if wanted > budget {
        let each = (budget / 2).max(16) as usize;
        tracing::warn!(
            descriptors = soft,
            http_connections_max = cfg.http_connections_max,
            s3_connections_max = cfg.s3_connections_max,
            lowered_to = each,
            "client connection limits exceed the file descriptor limit less {FD_HEADROOM} \
             for peers and storage; lowering both (raise `ulimit -n` to keep them)"
        );
        cfg.http_connections_max = cfg.http_connections_max.min(each);
        cfg.s3_connections_max = cfg.s3_connections_max.min(each);
    }
}

/// Bind the website endpoint's listener unless it is `off`, recording
/// the address it got.
fn bind_web(cfg: &mut s3::S3Config) -> Result<Option<tokio::net::TcpListener>> {
    if cfg.web == "off" {
        return Ok(None);
    }
    let std_listener = std::net::TcpListener::bind(&cfg.web).with_context(|| {
        format!(
            "cannot listen for the website endpoint on {} (is another node using it? \
             give each node its own --web, or --web off)",
            cfg.web
        )
    })?;
    std_listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    cfg.web = listener.local_addr()?.to_string();
    Ok(Some(listener))
}

/// Open storage, bind the listeners and start the node, one of `nodes`
/// in this process.
pub(crate) async fn start(both: ServerConfig, nodes: u64) -> Result<Running> {
    let ServerConfig {
        node: mut cfg,
        mut s3,
    } = both;
    fit_descriptor_limit(&mut cfg, nodes);
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => Some(net::tls::acceptor(cert, key)?),
        _ => None,
    };
    let http_listener = tokio::net::TcpListener::bind(&cfg.http)
        .await
        .with_context(|| {
            format!(
                "cannot listen for HTTP on {} (is another node using it?)",
                cfg.http
            )
        })?;
    cfg.http = http_listener.local_addr()?.to_string();
    let s3_listener = tokio::net::TcpListener::bind(&cfg.s3)
        .await
        .with_context(|| {
            format!(
                "cannot listen for S3 on {} (is another node using it?)",
                cfg.s3
            )
        })?;
    cfg.s3 = s3_listener.local_addr()?.to_string();
    let web_listener = bind_web(&mut s3)?;
    let engine = Arc::new(
        FjallEngine::open(&cfg.data_dir.join("db"), cfg.storage_cache_bytes)
            .with_context(|| format!("opening data directory {}", cfg.data_dir.display()))?,
    );
    let env = Env {
        clock: Arc::new(SystemClock),
        seed: rand::random(),
        network: Arc::new(net::TcpNetwork),
        engine: engine.clone(),
    };
    let node = Node::start(cfg, env).await?;
    // One key store (and cache) for the admin API and the S3 listener, so
    // a key created through one works at once on the other.
    let keys = s3::KeyStore::new(s3::catalog::Catalog::new(node.clone()));
    let served = node.clone();
    let http_keys = keys.clone();
    let http = tokio::spawn(http::serve(served, http_keys, http_listener, tls.clone()));
    let web = s3.web.clone();
    let s3 = tokio::spawn(s3::serve(
        node.clone(),
        s3,
        keys,
        s3_listener,
        web_listener,
        tls,
    ));
    Ok(Running {
        web,
        node,
        engine,
        http,
        s3,
    })
}

/// Wait for Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

pub(crate) async fn run(flags: ServerFlags) -> Result<()> {
    let cfg = load_config(&flags)?;
    if cfg.node.cluster_secret == NodeConfig::default().cluster_secret {
        tracing::warn!("using the built-in cluster secret; set --cluster-secret or RINGSTORE_CLUSTER_SECRET in production");
    }
    let running = start(cfg, 1).await?;
    let c = running.node.config();
    println!(
        "ringstore node {} serving http {} s3 {} rpc {} web {} (data in {})",
        running.node.id(),
        c.http,
        c.s3,
        c.rpc,
        running.web,
        Path::new(&c.data_dir).display()
    );
    shutdown_signal().await;
    running.stop().await;
    println!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_configures_the_node_and_its_s3_api() {
        let text = "s3_domain = \"s3.example\"\nzone = \"dc2\"\ns3_block_sweep_interval_ms = 5\n";
        let cfg = parse_config(text).unwrap();
        assert_eq!(cfg.s3.s3_domain, "s3.example");
        assert_eq!(cfg.s3.s3_block_sweep_interval_ms, 5);
        assert_eq!(cfg.node.zone, "dc2");
        let err = format!("{:#}", parse_config("zonee = \"dc2\"\n").unwrap_err());
        assert!(err.contains("zonee"), "{err}");
    }
}
