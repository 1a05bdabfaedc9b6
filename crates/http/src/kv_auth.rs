//! The key-value API's lock, when `kv_auth` is on: every request to
//! `/buckets/...` and `/types/...` needs HTTP basic credentials of a user
//! (`crate::users`) whose grants cover the bucket, reading for GET and
//! HEAD, writing for the rest. Listing buckets needs a grant on the
//! bucket `*` of the type.
//!
//! Credentials sent over plain HTTP can be read by anyone on the path,
//! so a node without TLS refuses them (403) unless
//! `kv_auth_allow_plaintext` says the network is trusted.

use crate::error::ApiError;
use crate::{params, App};
use axum::extract::{RawPathParams, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;

/// The bucket type and bucket a key-value route names (`*` for a listing
/// of buckets), decoded exactly as the handlers decode them
/// (`params::bucket`), so a grant covers the bucket that is served.
fn target(params: &[(String, String)]) -> Result<(Bytes, Bytes), ApiError> {
    if params.iter().any(|(k, _)| k == "bucket") {
        return params::bucket(params);
    }
    let bucket_type = match params.iter().find(|(k, _)| k == "type") {
        Some((_, raw)) => params::decode_segment("bucket type", raw, store::TYPE_BYTES_MAX)?,
        None => Bytes::from_static(b"default"),
    };
    Ok((bucket_type, Bytes::from_static(b"*")))
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
pub(crate) async fn require_user(
    State(app): State<App>,
    path: RawPathParams,
    req: Request,
    next: Next,
) -> Response {
    let cfg = app.node.config();
    if !cfg.kv_auth {
        return next.run(req).await;
    }
    let (bucket_type, bucket) = match target(&params::raw(&path)) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
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
        let bucket_type = String::from_utf8_lossy(&bucket_type);
        let bucket = String::from_utf8_lossy(&bucket);
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
    fn routes_name_their_bucket_as_the_handlers_decode_it() {
        let t = |pairs: &[(&str, &str)]| {
            let owned: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            target(&owned).map(|(a, b)| {
                format!(
                    "{}/{}",
                    String::from_utf8_lossy(&a),
                    String::from_utf8_lossy(&b)
                )
            })
        };
        assert_eq!(
            t(&[("bucket", "photos"), ("key", "k")]).unwrap(),
            "default/photos"
        );
        assert_eq!(t(&[]).unwrap(), "default/*");
        assert_eq!(
            t(&[("type", "maps"), ("bucket", "b%20c")]).unwrap(),
            "maps/b c"
        );
        // `+` is a space to the handlers (Riak's unquote), so to grants too.
        assert_eq!(t(&[("bucket", "b+c")]).unwrap(), "default/b c");
        assert_eq!(t(&[("type", "maps")]).unwrap(), "maps/*");
        assert!(
            t(&[("bucket", "bad%zz")]).is_err(),
            "a malformed escape is a 400"
        );
    }
}
