//! The S3 API of ringstore.
//!
//! Web and application servers share thumbnails and media through any S3
//! client pointed at any node. s3s parses requests, checks SigV4
//! signatures (headers and presigned URLs) and writes S3's XML; this crate
//! maps each operation onto the replicated store:
//!
//! - [`records`]: what is stored where (buckets, keys, objects, uploads,
//!   parts and blocks are all ordinary replicated objects).
//! - [`catalog`]: typed, last-writer-wins access to them through the
//!   node's quorum paths.
//! - [`blocks`]: bodies streamed into 1 MiB content-addressed blocks and
//!   back, with bounded memory per request.
//! - [`keys`] and [`access`]: access keys and per-bucket rights.
//! - `cache`: the short-lived cache of keys and bucket records.
//! - [`checksum`]: the `x-amz-checksum-*` headers and trailers.
//! - `service`, `buckets`, `objects`, `listing`, `multipart`: the
//!   operations.

pub mod access;
pub mod blocks;
mod buckets;
pub mod cache;
pub mod catalog;
pub mod checksum;
pub mod config;
pub mod keys;
mod listing;
mod multipart;
mod objects;
pub mod records;
mod service;
pub mod sweep;
#[doc(hidden)]
pub mod token;

pub use config::S3Config;
pub use keys::{KeyInfo, KeyStore};
pub use records::Grant;
pub use s3s;
pub use service::RingS3;

use node::Node;
use s3s::service::S3ServiceBuilder;

/// Serve the S3 API of `node` on `listener` (over TLS with `tls`) until
/// the task is dropped.
///
/// Requests whose `Host` is `BUCKET.<s3_domain>` address that bucket
/// (virtual-host style); any other host is path-style.
pub async fn serve(
    node: Node,
    cfg: S3Config,
    keys: KeyStore,
    listener: tokio::net::TcpListener,
    tls: Option<net::tls::TlsAcceptor>,
) {
    let domain = cfg.s3_domain.to_ascii_lowercase();
    let limits = node.config().listener_limits("s3");
    let catalog = catalog::Catalog::new(node);
    let every = std::time::Duration::from_millis(cfg.s3_block_sweep_interval_ms);
    let sweep = tokio::spawn(sweep::run(catalog.clone(), every));
    // Ends the sweep when this task is dropped (the node stops serving).
    let _sweep = AbortOnDrop(sweep);
    let mut builder = S3ServiceBuilder::new(RingS3::new(catalog.clone(), keys.clone()));
    builder.set_auth(keys.clone());
    builder.set_access(access::KeyAccess::new(keys, catalog));
    builder.set_host(BucketHost { domain });
    let service = builder.build();
    net::listen::serve_http(listener, limits, tls, service).await;
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Virtual-host-style addressing under one domain, path-style otherwise
/// (s3s's own `MultiDomain` would take any other host name for a bucket).
struct BucketHost {
    domain: String,
}

impl s3s::host::S3Host for BucketHost {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> s3s::S3Result<s3s::host::VirtualHost<'a>> {
        let name = host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        let vh = s3s::host::VirtualHost::new(host);
        let bucket = name
            .to_ascii_lowercase()
            .strip_suffix(&self.domain)
            .and_then(|b| b.strip_suffix('.'))
            .filter(|b| !b.is_empty())
            .map(str::to_string);
        Ok(match bucket {
            Some(b) => vh.with_bucket(b),
            None => vh,
        })
    }
}
