//! Object requests: fetch, store, store with a server-chosen key, delete,
//! and the local-replica view for operators.

use crate::encode::object_response;
use crate::error::ApiError;
use crate::params::{self, raw, Pairs};
use crate::App;
use axum::body::Bytes;
use axum::extract::{Query, RawPathParams, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use causal::Meta;
use node::BKey;
use rand::distr::{Alphanumeric, SampleString};

pub(crate) async fn fetch(
    State(app): State<App>,
    path: RawPathParams,
    Query(q): Pairs,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = params::bkey(&raw(&path))?;
    let q = params::query(&q)?;
    match app.node.get(&key, &q.options).await? {
        Some(obj) => Ok(object_response(
            &obj,
            StatusCode::OK,
            &headers,
            q.vtag.as_deref(),
            q.deletedvclock,
        )),
        None => Err(ApiError::not_found("not found")),
    }
}

/// Read the replica this node holds, without asking any other node.
pub(crate) async fn replica(
    State(app): State<App>,
    path: RawPathParams,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = params::bkey(&raw(&path))?;
    match app.node.local_object(&key)? {
        Some(obj) => Ok(object_response(&obj, StatusCode::OK, &headers, None, true)),
        None => Err(ApiError::not_found("this node holds no replica of the key")),
    }
}

/// `PUT /admin/debug/replica/...`: overwrite this node's replica bytes in
/// place (simulated bit rot; nodes started with `--enable-fault-injection`).
pub(crate) async fn damage_replica(
    State(app): State<App>,
    path: RawPathParams,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    crate::admin::fault_injection_enabled(&app)?;
    let key = params::bkey(&raw(&path))?;
    if app.node.damage_local_replica(&key, body).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found("this node holds no replica of the key"))
    }
}

fn meta_from(headers: &HeaderMap) -> Result<Meta, ApiError> {
    let text = |v: &axum::http::HeaderValue, name: &str| {
        v.to_str()
            .map(str::to_string)
            .map_err(|_| ApiError::bad(format!("header {name} is not visible ASCII")))
    };
    let content_type = match headers.get("content-type") {
        Some(v) => text(v, "Content-Type")?,
        None => "application/octet-stream".to_string(),
    };
    let mut meta = Meta {
        content_type,
        ..Meta::default()
    };
    for (name, value) in headers {
        let n = name.as_str();
        if let Some(k) = n.strip_prefix("x-riak-meta-") {
            meta.user_meta.push((k.to_string(), text(value, n)?));
        } else if let Some(k) = n.strip_prefix("x-riak-index-") {
            // `$` names are the store's own terms (references between
            // objects, see `node::collect`): a client must not forge them.
            if k.starts_with('$') {
                return Err(ApiError::bad(format!(
                    "index names starting with $ are reserved; rename header {n}"
                )));
            }
            index_values(&mut meta, k, &text(value, n)?)?;
        }
    }
    Ok(meta)
}

/// The values of one `X-Riak-Index-NAME` header, checked: several may be
/// given comma-separated (`_bin`, `_int`) or semicolon-separated (`_geo`,
/// whose points hold a comma), as repeated headers may.
fn index_values(meta: &mut Meta, name: &str, value: &str) -> Result<(), ApiError> {
    let sep = if name.ends_with("_geo") { ';' } else { ',' };
    for v in value.split(sep).map(str::trim) {
        store::index::encode_term(name, v)
            .map_err(|e| ApiError::bad(format!("header X-Riak-Index-{name}: {e}")))?;
        if meta.indexes.len() >= INDEX_TERMS_MAX {
            return Err(ApiError::bad(format!(
                "more than {INDEX_TERMS_MAX} index terms on one object"
            )));
        }
        meta.indexes.push((name.to_string(), v.to_string()));
    }
    Ok(())
}

/// Index terms one object may carry (over all its indexes).
const INDEX_TERMS_MAX: usize = 1000;

async fn store(
    app: &App,
    key: BKey,
    q: Vec<(String, String)>,
    headers: &HeaderMap,
    body: Bytes,
    created: bool,
) -> Result<Response, ApiError> {
    let q = params::query(&q)?;
    if body.len() > app.node.config().value_bytes_max {
        return Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!(
                "value is {} bytes; the limit is {} (value_bytes_max)",
                body.len(),
                app.node.config().value_bytes_max
            ),
        });
    }
    let meta = meta_from(headers)?;
    let context = params::context(headers)?.unwrap_or_default();
    let if_none_match = headers
        .get("if-none-match")
        .is_some_and(|v| v.as_bytes() == b"*");
    if if_none_match {
        // Not atomic with the write (as in Riak): two racing creates can
        // both pass, and then both survive as siblings.
        if let Some(existing) = app.node.get(&key, &q.options).await? {
            if !existing.is_absent() {
                return Err(node::NodeError::PreconditionFailed.into());
            }
        }
    }
    let obj = app
        .node
        .put(key.clone(), body, meta, context, q.options)
        .await?;
    let location = format!("{}/keys/{}", bucket_path(&key), encode_segment(&key.key));
    let mut resp = if q.returnbody {
        let ok = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        object_response(&obj, ok, headers, None, false)
    } else if created {
        StatusCode::CREATED.into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    };
    if created {
        if let Ok(v) = axum::http::HeaderValue::try_from(location) {
            resp.headers_mut().insert("location", v);
        }
    }
    Ok(resp)
}

pub(crate) async fn put(
    State(app): State<App>,
    path: RawPathParams,
    Query(q): Pairs,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = params::bkey(&raw(&path))?;
    store(&app, key, q, &headers, body, false).await
}

pub(crate) async fn post_new(
    State(app): State<App>,
    path: RawPathParams,
    Query(q): Pairs,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (bucket_type, bucket) = params::bucket(&raw(&path))?;
    let key = Alphanumeric.sample_string(&mut rand::rng(), 22);
    let key = BKey {
        bucket_type,
        bucket,
        key: key.into(),
    };
    store(&app, key, q, &headers, body, true).await
}

pub(crate) async fn delete(
    State(app): State<App>,
    path: RawPathParams,
    Query(q): Pairs,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = params::bkey(&raw(&path))?;
    let q = params::query(&q)?;
    let context = params::context(&headers)?;
    app.node.delete(key, context, q.options).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Percent-encode a key or bucket for a URL path.
pub(crate) fn encode_segment(raw: &[u8]) -> String {
    let mut out = String::new();
    for b in raw {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(b) {
            out.push(char::from(*b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `/buckets/B` or `/types/T/buckets/B`.
pub(crate) fn bucket_path(key: &BKey) -> String {
    if &key.bucket_type[..] == b"default" {
        format!("/buckets/{}", encode_segment(&key.bucket))
    } else {
        format!(
            "/types/{}/buckets/{}",
            encode_segment(&key.bucket_type),
            encode_segment(&key.bucket)
        )
    }
}
