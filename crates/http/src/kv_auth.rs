//! The key-value API's lock, when `kv_auth` is on: every request to
//! `/buckets/...` and `/types/...` needs HTTP basic credentials of a user
//! (`crate::users`) whose grants cover the bucket, reading for GET and
//! HEAD, writing for the rest. Listing buckets needs a grant on the
//! bucket `*` of the type.
//!
//! Credentials sent over plain HTTP can be read by anyone on the path,
//! so a node without TLS refuses them (403) unless
//! `kv_auth_allow_plaintext` says the network is trusted.

use crate::App;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

/// The bucket type and bucket a key-value path names (`*` for a listing
/// of buckets), or `None` for a path outside the key-value API.
fn target(path: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let decode = |s: &str| percent_decode(s);
    match parts.as_slice() {
        ["buckets"] => Some(("default".into(), "*".into())),
        ["buckets", b, ..] => Some(("default".into(), decode(b))),
        ["types", t, "buckets"] => Some((decode(t), "*".into())),
        ["types", t, "buckets", b, ..] => Some((decode(t), decode(b))),
        _ => None,
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn refuse(status: StatusCode, why: String) -> Response {
    let mut r = (status, format!("{why}\n")).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"ringstore\""),
        );
    }
    r
}

/// (user, password) from `Authorization: Basic ...`.
fn basic(req: &Request) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Pass the request on if `kv_auth` is off, or its user may do it.
pub(crate) async fn require_user(State(app): State<App>, req: Request, next: Next) -> Response {
    let cfg = app.node.config();
    if !cfg.kv_auth {
        return next.run(req).await;
    }
    let Some((bucket_type, bucket)) = target(req.uri().path()) else {
        return next.run(req).await;
    };
    let plaintext = cfg.tls_cert.is_none();
    if plaintext && !cfg.kv_auth_allow_plaintext {
        return refuse(
            StatusCode::FORBIDDEN,
            "this node refuses key-value credentials over plain HTTP, where anyone on the path \
             can read them; serve TLS (tls_cert, tls_key) or, on a trusted network, set \
             kv_auth_allow_plaintext = true"
                .into(),
        );
    }
    let Some((name, password)) = basic(&req) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "the key-value API needs a user: send HTTP basic credentials \
             (curl -u USER:PASSWORD) of a user made with `ringstore user create`"
                .into(),
        );
    };
    let user = match app.users.lookup(&name).await {
        Ok(u) => u,
        Err(e) => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("checking user {name}: {e}"),
            )
        }
    };
    let Some(user) = user.filter(|u| u.password_is(&password)) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            format!("unknown user {name} or wrong password"),
        );
    };
    let write = !matches!(*req.method(), Method::GET | Method::HEAD);
    if !user.may(write, &bucket_type, &bucket) {
        let what = if write { "write" } else { "read" };
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "user {name} may not {what} {bucket_type}/{bucket}; grant it with \
                 `ringstore user create` (--{what} {bucket_type}/{bucket}) on a new user"
            ),
        );
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_bucket() {
        let t = |p: &str| target(p).map(|(a, b)| format!("{a}/{b}"));
        assert_eq!(
            t("/buckets/photos/keys/k").as_deref(),
            Some("default/photos")
        );
        assert_eq!(t("/buckets").as_deref(), Some("default/*"));
        assert_eq!(
            t("/types/maps/buckets/b%20c/props").as_deref(),
            Some("maps/b c")
        );
        assert_eq!(t("/types/maps/buckets").as_deref(), Some("maps/*"));
        assert_eq!(t("/ping"), None);
        assert_eq!(t("/admin/cluster"), None);
    }
}
