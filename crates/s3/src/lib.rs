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
//! - [`keys`] and [`access`]: access keys and per-bucket rights, and what
//!   unsigned requests may do.
//! - [`settings`], [`acl`], [`policy`], [`cors`]: a bucket's ACL, policy,
//!   CORS rules, website and public access block (`subresources` has
//!   their operations).
//! - `website`: the website endpoint, anonymous GETs by `Host`.
//! - `cache`: the short-lived cache of keys and bucket records.
//! - [`checksum`]: the `x-amz-checksum-*` headers and trailers.
//! - `service`, `buckets`, `objects`, `listing`, `multipart`: the
//!   operations.

pub mod access;
pub mod acl;
mod attributes;
pub mod blocks;
mod buckets;
pub mod cache;
pub mod catalog;
pub mod checksum;
pub mod config;
mod copy;
pub mod cors;
pub mod guard;
pub mod keys;
pub mod lifecycle;
mod lifecycle_ops;
pub mod lifecycle_run;
mod listing;
pub mod lock;
pub mod meta_bytes;
mod multipart;
mod objects;
mod part_copy;
pub mod policy;
pub mod records;
mod service;
pub mod settings;
mod subresources;
pub mod sweep;
mod tagging;
mod timed;
#[doc(hidden)]
pub mod token;
pub mod unsized_put;
pub mod versions;
mod versions_ops;
pub mod website;

pub use config::{S3Config, WebRead};
pub use keys::{KeyInfo, KeyStore};
pub use records::Grant;
pub use s3s;
pub use service::RingS3;

use node::Node;
use s3s::service::S3ServiceBuilder;

/// Serve the S3 API of `node` on `listener` (over TLS with `tls`), and
/// its website endpoint on `web` if given, until the task is dropped.
///
/// Requests whose `Host` is `BUCKET.<s3_domain>` address that bucket
/// (virtual-host style); any other host is path-style. Both endpoints
/// share one set of caches, so a setting changed through the S3 API
/// holds on this node's website endpoint at once.
pub async fn serve(
    node: Node,
    cfg: S3Config,
    keys: KeyStore,
    listener: tokio::net::TcpListener,
    web: Option<tokio::net::TcpListener>,
    tls: Option<net::tls::TlsAcceptor>,
) {
    let domain = cfg.s3_domain.to_ascii_lowercase();
    let limits = node.config().listener_limits("s3");
    let mut web_limits = node.config().listener_limits("web");
    web_limits.connections_max = cfg.web_connections_max.max(1);
    let catalog = catalog::Catalog::new(node.clone());
    let every = std::time::Duration::from_millis(cfg.s3_block_sweep_interval_ms);
    let sweep = tokio::spawn(sweep::run(catalog.clone(), every));
    // Ends the sweep when this task is dropped (the node stops serving).
    let _sweep = AbortOnDrop(sweep);
    let settings = settings::Settings::new(catalog.clone());
    let ring = RingS3::new(catalog, keys.clone(), settings.clone())
        .with_lifecycle_day_ms(cfg.lab_lifecycle_day_ms);
    let every = std::time::Duration::from_millis(cfg.s3_lifecycle_interval_ms);
    let _lifecycle = AbortOnDrop(tokio::spawn(lifecycle_run::run(ring.clone(), every)));
    let host = std::sync::Arc::new(BucketHost { domain });
    let mut builder = S3ServiceBuilder::new(ring.clone());
    builder.set_auth(keys);
    builder.set_access(access::KeyAccess::new(ring.clone()));
    builder.set_host(SharedHost(host.clone()));
    let service = timed::Timed {
        inner: cors::CorsLayer::new(builder.build(), settings, host),
        node,
    };
    let s3 = net::listen::serve_http(listener, limits, tls, service);
    match web {
        Some(web) => {
            let nearby = cfg.nearby_read();
            let aliases = cfg.web_aliases.into_iter().collect();
            let site = website::WebsiteService::new(ring, &cfg.web_domain, aliases)
                .with_nearby_read(nearby);
            // The website is plain HTTP: TLS belongs to the CDN or proxy
            // in front of it, as with S3's own website endpoints.
            let web = net::listen::serve_http(web, web_limits, None, site);
            tokio::join!(s3, web);
        }
        None => s3.await,
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// [`BucketHost`] shared between s3s and the CORS layer.
struct SharedHost(std::sync::Arc<BucketHost>);

impl s3s::host::S3Host for SharedHost {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> s3s::S3Result<s3s::host::VirtualHost<'a>> {
        self.0.parse_host_header(host)
    }
}

/// Virtual-host-style addressing under one domain, path-style otherwise
/// (s3s's own `MultiDomain` would take any other host name for a bucket).
pub(crate) struct BucketHost {
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
