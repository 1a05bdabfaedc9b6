//! The S3 layer's own settings. They sit in the same TOML file as the
//! node's (docs/CONFIG.md lists both); the binary hands the keys named in
//! [`S3Config::KEYS`] to this type and the rest to `node::NodeConfig`.

use serde::{Deserialize, Serialize};

/// Settings of the S3 API on one node.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Virtual-host-style S3 requests: `Host: BUCKET.<s3_domain>`.
    pub s3_domain: String,
    /// How often the node scrubs its S3 block replicas (reads each one
    /// and drops those whose bytes no longer match their hash); 0 turns
    /// the scrub off.
    pub s3_block_sweep_interval_ms: u64,
    /// Where the website endpoint listens (anonymous GETs of buckets with
    /// a website configuration).
    pub web: String,
    /// Website requests: `Host: BUCKET.<web_domain>`.
    pub web_domain: String,
    /// Website host names served by a bucket of another name (`"photos.
    /// example.com" = "photos"`); any other host is taken as a bucket name.
    pub web_aliases: std::collections::BTreeMap<String, String>,
    /// Most connections the website endpoint holds open at once.
    pub web_connections_max: usize,
    /// How the website endpoint reads objects: `nearby` (this node's own
    /// replica when it can vouch for it, else a quorum read; see
    /// `node::nearby`) or `quorum` (every read a quorum read).
    pub web_read: WebRead,
    /// `nearby` website reads: how long no peer call may have failed and
    /// no peer gone down before the local replica is trusted alone.
    pub web_read_quiet_ms: u64,
    /// `nearby` website reads: one in this many also runs a quorum read
    /// in the background (read repair for hot keys); 0 never.
    pub web_read_repair_every: u64,
    /// How often the lifecycle sweep looks for what fell due; 0 turns
    /// lifecycle expiry off.
    pub s3_lifecycle_interval_ms: u64,
    /// Lab only: the length of a lifecycle "day" (0: a real day).
    pub lab_lifecycle_day_ms: u64,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            s3_domain: "localhost".into(),
            s3_block_sweep_interval_ms: 7 * 86_400_000,
            web: "127.0.0.1:9001".into(),
            web_domain: "web.localhost".into(),
            web_aliases: std::collections::BTreeMap::new(),
            web_connections_max: 4096,
            web_read: WebRead::Nearby,
            web_read_quiet_ms: 30_000,
            web_read_repair_every: 16,
            s3_lifecycle_interval_ms: 60_000,
            lab_lifecycle_day_ms: 0,
        }
    }
}

impl S3Config {
    /// The config file keys this type reads.
    pub const KEYS: [&'static str; 11] = [
        "web_read",
        "web_read_quiet_ms",
        "web_read_repair_every",
        "s3_lifecycle_interval_ms",
        "lab_lifecycle_day_ms",
        "s3_domain",
        "s3_block_sweep_interval_ms",
        "web",
        "web_domain",
        "web_aliases",
        "web_connections_max",
    ];
}

/// How the website endpoint reads objects.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WebRead {
    /// The local replica when it can be trusted, else a quorum.
    Nearby,
    /// Always a quorum.
    Quorum,
}

impl S3Config {
    /// What the website endpoint's reads may do, or `None` for quorum reads.
    pub fn nearby_read(&self) -> Option<node::NearbyRead> {
        (self.web_read == WebRead::Nearby).then(|| node::NearbyRead {
            quiet: std::time::Duration::from_millis(self.web_read_quiet_ms),
            repair_every: self.web_read_repair_every,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_every_field() {
        let json = serde_json::to_value(S3Config::default()).unwrap();
        let mut fields: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        let mut keys = S3Config::KEYS.to_vec();
        keys.sort_unstable();
        assert_eq!(fields, keys);
    }
}
