//! The dashboard's buckets: per bucket, its properties and its objects
//! and bytes as [`node::Node::bucket_sample`] estimates them.
//!
//! A sample reads up to 4,096 entries, so each bucket's is taken at most
//! once per [`FRESH_FOR`] per node, for at most [`BUCKETS_SAMPLED_MAX`]
//! buckets of each API, on a blocking thread; the page polls every 2 s
//! and gets the cached samples in between, while the list of names is
//! fresh at every poll (a new bucket shows at once). Worst case: 2 × 64
//! × 4,096 entries read per 30 s.

use crate::App;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Buckets listed per API, at most (the page says when there are more).
const BUCKETS_SHOWN_MAX: usize = 200;
/// Buckets per API whose objects and bytes are estimated.
const BUCKETS_SAMPLED_MAX: usize = 64;
/// How long a worked-out list is shown before it is worked out again.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(30);

/// Samples by bucket type and name, with when they were taken; at most
/// [`BUCKETS_SAMPLED_MAX`] per API (buckets no longer sampled are
/// dropped at each poll).
type Samples = HashMap<(&'static [u8], Bytes), (Instant, Value)>;

/// The samples taken lately.
#[derive(Default)]
pub(crate) struct Cache(tokio::sync::Mutex<Samples>);

/// The buckets of the key-value API and of S3, with their samples.
pub(crate) async fn buckets(app: &App) -> Value {
    // Held while samples are taken: concurrent polls wait for them
    // rather than sample again.
    let mut cache = app.ui_buckets.0.lock().await;
    let mut out = Vec::new();
    let mut kept = Samples::new();
    for (api, bucket_type) in [("kv", &b"default"[..]), ("s3", s3::records::TYPE_OBJECTS)] {
        let names = match app
            .node
            .list_buckets(Bytes::copy_from_slice(bucket_type))
            .await
        {
            Ok(names) => names,
            Err(e) => {
                out.push(json!({ "api": api, "error": e.to_string() }));
                continue;
            }
        };
        // Samples still fresh are kept; the rest are taken now.
        let mut stale = Vec::new();
        for name in names.iter().take(BUCKETS_SAMPLED_MAX) {
            match cache.remove(&(bucket_type, name.clone())) {
                Some((at, s)) if at.elapsed() < FRESH_FOR => {
                    kept.insert((bucket_type, name.clone()), (at, s));
                }
                _ => stale.push(name.clone()),
            }
        }
        let node = app.node.clone();
        let taken = tokio::task::spawn_blocking(move || {
            let size_of = if api == "s3" {
                s3_bytes
            } else {
                node::value_bytes
            };
            stale
                .into_iter()
                .map(|name| {
                    let sample = match node.bucket_sample(bucket_type, &name, &size_of) {
                        Ok(s) => json!(s),
                        Err(e) => json!({ "error": e.to_string() }),
                    };
                    (name, sample)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (name, sample) in taken {
            kept.insert((bucket_type, name), (Instant::now(), sample));
        }
        for name in names.iter().take(BUCKETS_SHOWN_MAX) {
            let mut entry = json!({
                "api": api,
                "name": String::from_utf8_lossy(name),
                "props": app.node.bucket_props(bucket_type, name),
            });
            match kept.get(&(bucket_type, name.clone())) {
                Some((_, s)) if s.get("error").is_some() => {
                    entry["sample_error"] = s["error"].clone()
                }
                Some((_, s)) => entry["sample"] = s.clone(),
                None => {}
            }
            out.push(entry);
        }
        if names.len() > BUCKETS_SHOWN_MAX {
            out.push(json!({ "api": api, "more": names.len() - BUCKETS_SHOWN_MAX }));
        }
    }
    *cache = kept;
    Value::Array(out)
}

/// An S3 object's size, read from the head of its record.
fn s3_bytes(obj: &causal::Object) -> Option<u64> {
    #[derive(Deserialize)]
    struct Head {
        size: u64,
    }
    obj.live_siblings()
        .filter_map(|s| s3::records::decode_head::<Head>(&s.value))
        .map(|h| h.size)
        .max()
}
