//! Bucket requests: properties, key listing, bucket listing.

use crate::error::ApiError;
use crate::params::{self, raw, Pairs};
use crate::App;
use axum::body::Body;
use axum::extract::{Query, RawPathParams, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use cluster::{BucketProps, QuorumValue};
use serde_json::{json, Map, Value};

fn quorum_json(q: QuorumValue) -> Value {
    match q {
        QuorumValue::Number(n) => json!(n),
        other => json!(other.to_string()),
    }
}

fn props_json(bucket: &[u8], p: &BucketProps) -> Value {
    json!({"props": {
        "name": String::from_utf8_lossy(bucket),
        "n_val": p.n_val,
        "r": quorum_json(p.r), "w": quorum_json(p.w), "dw": quorum_json(p.dw),
        "pr": quorum_json(p.pr), "pw": quorum_json(p.pw),
        "rw": "quorum",
        "allow_mult": p.allow_mult,
        "last_write_wins": p.last_write_wins,
        "notfound_ok": p.notfound_ok,
        "basic_quorum": p.basic_quorum,
    }})
}

pub(crate) async fn get_props(
    State(app): State<App>,
    path: RawPathParams,
) -> Result<Response, ApiError> {
    let (t, b) = params::bucket(&raw(&path))?;
    Ok(Json(props_json(&b, &app.node.bucket_props(&t, &b))).into_response())
}

fn quorum_value(name: &str, v: &Value) -> Result<QuorumValue, ApiError> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(QuorumValue::Number)
            .ok_or_else(|| ApiError::bad(format!("{name}: {n} is not a replica count"))),
        Value::String(s) => s
            .parse()
            .map_err(|e: String| ApiError::bad(format!("{name}: {e}"))),
        other => Err(ApiError::bad(format!(
            "{name}: expected a number or one/quorum/all, got {other}"
        ))),
    }
}

fn flag(name: &str, v: &Value) -> Result<bool, ApiError> {
    v.as_bool()
        .ok_or_else(|| ApiError::bad(format!("{name}: expected true or false, got {v}")))
}

/// Apply the properties a client sent on top of the current ones. Riak
/// accepts properties it does not use; so do we, ignoring them.
fn apply(mut p: BucketProps, sent: &Map<String, Value>) -> Result<BucketProps, ApiError> {
    for (k, v) in sent {
        match k.as_str() {
            "n_val" => {
                p.n_val = v
                    .as_u64()
                    .and_then(|n| u8::try_from(n).ok())
                    .ok_or_else(|| {
                        ApiError::bad(format!("n_val: expected a small number, got {v}"))
                    })?
            }
            "r" => p.r = quorum_value(k, v)?,
            "w" => p.w = quorum_value(k, v)?,
            "dw" => p.dw = quorum_value(k, v)?,
            "pr" => p.pr = quorum_value(k, v)?,
            "pw" => p.pw = quorum_value(k, v)?,
            "allow_mult" => p.allow_mult = flag(k, v)?,
            "last_write_wins" => p.last_write_wins = flag(k, v)?,
            "notfound_ok" => p.notfound_ok = flag(k, v)?,
            "basic_quorum" => p.basic_quorum = flag(k, v)?,
            _ => {}
        }
    }
    for (name, q) in [
        ("r", p.r),
        ("w", p.w),
        ("dw", p.dw),
        ("pr", p.pr),
        ("pw", p.pw),
    ] {
        if let QuorumValue::Number(n) = q {
            if n > u32::from(p.n_val) {
                return Err(ApiError::bad(format!(
                    "{name}={n} is larger than n_val={}",
                    p.n_val
                )));
            }
        }
    }
    Ok(p)
}

pub(crate) async fn put_props(
    State(app): State<App>,
    path: RawPathParams,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (t, b) = params::bucket(&raw(&path))?;
    let parsed: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("props body is not JSON: {e}")))?;
    let sent = parsed
        .get("props")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::bad("expected {\"props\": {...}}".to_string()))?;
    let props = apply(app.node.bucket_props(&t, &b), sent)?;
    app.node.set_bucket_props(&t, &b, Some(props)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn reset_props(
    State(app): State<App>,
    path: RawPathParams,
) -> Result<Response, ApiError> {
    let (t, b) = params::bucket(&raw(&path))?;
    app.node.set_bucket_props(&t, &b, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn names(list: &[Bytes]) -> Vec<String> {
    list.iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect()
}

pub(crate) async fn list_keys(
    State(app): State<App>,
    path: RawPathParams,
    Query(q): Pairs,
) -> Result<Response, ApiError> {
    let (t, b) = params::bucket(&raw(&path))?;
    let q = params::query(&q)?;
    let mut rx = app.node.list_keys(t, b);
    match q.keys.as_deref() {
        Some("true") => {
            // Why a limit: one answer holds every key in memory; a larger
            // bucket must be streamed, as Riak's documentation advises.
            let max = app.node.config().list_keys_buffered_max;
            let mut all = Vec::new();
            while let Some(chunk) = rx.recv().await {
                all.extend(names(&chunk?));
                if all.len() > max {
                    return Err(ApiError::bad(format!(
                        "the bucket holds more than {max} keys, too many for one answer \
                         (list_keys_buffered_max); list them with ?keys=stream, which \
                         streams them in chunks"
                    )));
                }
            }
            Ok(Json(json!({ "keys": all })).into_response())
        }
        Some("stream") => {
            // Each chunk is a JSON object of its own, as Riak streams them;
            // the channel is bounded, so a slow client slows the listing.
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                let chunk = rx.recv().await?;
                let item = match chunk {
                    Ok(keys) => Ok(Bytes::from(json!({ "keys": names(&keys) }).to_string())),
                    Err(e) => Err(std::io::Error::other(e.to_string())),
                };
                Some((item, rx))
            });
            let mut resp = Response::new(Body::from_stream(stream));
            resp.headers_mut().insert(
                "content-type",
                "application/json"
                    .parse()
                    .map_err(|_| ApiError::bad(String::new()))?,
            );
            Ok(resp)
        }
        _ => Err(ApiError::bad(
            "list keys with ?keys=true or ?keys=stream (expensive: every node scans)".to_string(),
        )),
    }
}

pub(crate) async fn list_buckets(
    State(app): State<App>,
    path: RawPathParams,
    Query(q): Pairs,
) -> Result<Response, ApiError> {
    let q = params::query(&q)?;
    let t = match path.iter().find(|(k, _)| *k == "type") {
        Some((_, raw)) => params::decode_segment("bucket type", raw, store::TYPE_BYTES_MAX)?,
        None => Bytes::from_static(b"default"),
    };
    match q.buckets.as_deref() {
        Some("true") | Some("stream") => {
            let list = app.node.list_buckets(t).await?;
            Ok(Json(json!({ "buckets": names(&list) })).into_response())
        }
        _ => Err(ApiError::bad("list buckets with ?buckets=true".to_string())),
    }
}
