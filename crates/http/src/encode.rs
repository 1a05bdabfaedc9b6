//! Turning objects into Riak-style responses: one sibling as a plain body
//! with headers, several as `300 Multiple Choices` (multipart/mixed when the
//! client accepts it, otherwise a `Siblings:` list of vtags).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use causal::{encode_context, Object, Sibling};
use std::time::{Duration, UNIX_EPOCH};

fn header(name: &str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    Some((
        HeaderName::try_from(name).ok()?,
        HeaderValue::try_from(value).ok()?,
    ))
}

/// Headers that describe one sibling.
fn sibling_headers(s: &Sibling) -> Vec<(HeaderName, HeaderValue)> {
    let ct = if s.meta.content_type.is_empty() {
        "application/octet-stream"
    } else {
        &s.meta.content_type
    };
    let modified =
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(s.meta.last_modified_ms));
    let mut out: Vec<_> = [
        header("content-type", ct),
        header("etag", &format!("\"{}\"", s.dot.vtag())),
        header("last-modified", &modified),
    ]
    .into_iter()
    .flatten()
    .collect();
    for (k, v) in &s.meta.user_meta {
        out.extend(header(&format!("x-riak-meta-{k}"), v));
    }
    for (k, v) in &s.meta.indexes {
        out.extend(header(&format!("x-riak-index-{k}"), v));
    }
    if s.meta.deleted {
        out.extend(header("x-riak-deleted", "true"));
    }
    out
}

fn with_context(mut resp: Response, obj: &Object) -> Response {
    if let Ok(v) = HeaderValue::try_from(encode_context(obj.context())) {
        resp.headers_mut().insert("x-riak-vclock", v);
    }
    resp
}

/// The response to a fetch of `obj` (already known to have live siblings),
/// or to a store with `returnbody`. `ok` is the status for one sibling;
/// `deleted_vclock` returns a tombstone's context with its 404.
pub(crate) fn object_response(
    obj: &Object,
    ok: StatusCode,
    request: &HeaderMap,
    vtag: Option<&str>,
    deleted_vclock: bool,
) -> Response {
    let live: Vec<&Sibling> = obj.live_siblings().collect();
    if let Some(tag) = vtag {
        return match live.iter().find(|s| s.dot.vtag() == tag) {
            Some(s) => single(obj, s, StatusCode::OK),
            None => plain(
                StatusCode::NOT_FOUND,
                format!("no sibling with vtag {tag}\n"),
            ),
        };
    }
    match live.as_slice() {
        [] if deleted_vclock => {
            // Riak's deletedvclock: the tombstone's context, so a client can
            // write over the delete instead of beside it.
            let mut r = with_context(plain(StatusCode::NOT_FOUND, "not found\n".into()), obj);
            r.headers_mut()
                .insert("x-riak-deleted", HeaderValue::from_static("true"));
            r
        }
        [] => plain(StatusCode::NOT_FOUND, "not found\n".into()),
        [one] => single(obj, one, ok),
        many => {
            let accepts_multipart = request
                .get_all("accept")
                .iter()
                .any(|v| v.to_str().is_ok_and(|s| s.contains("multipart/mixed")));
            if accepts_multipart {
                multipart(obj, many)
            } else {
                let mut body = String::from("Siblings:\n");
                for s in many {
                    body.push_str(&s.dot.vtag());
                    body.push('\n');
                }
                with_context(plain(StatusCode::MULTIPLE_CHOICES, body), obj)
            }
        }
    }
}

fn plain(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("text/plain"));
    r
}

fn single(obj: &Object, s: &Sibling, status: StatusCode) -> Response {
    let mut r = Response::new(Body::from(s.value.clone()));
    *r.status_mut() = status;
    for (k, v) in sibling_headers(s) {
        r.headers_mut().append(k, v);
    }
    with_context(r, obj)
}

fn multipart(obj: &Object, siblings: &[&Sibling]) -> Response {
    let boundary: String = format!("{:x}", rand::random::<u64>());
    let mut body = Vec::new();
    for s in siblings {
        body.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
        for (k, v) in sibling_headers(s) {
            body.extend_from_slice(k.as_str().as_bytes());
            body.extend_from_slice(b": ");
            body.extend_from_slice(v.as_bytes());
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(&s.value);
    }
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::MULTIPLE_CHOICES;
    if let Ok(ct) = HeaderValue::try_from(format!("multipart/mixed; boundary={boundary}")) {
        r.headers_mut().insert("content-type", ct);
    }
    with_context(r, obj)
}
