//! The admin API's lock: every `/admin/*` request (and `/metrics` when
//! `metrics_require_token` is set) must carry the node's admin token as
//! `Authorization: Bearer <token>`.
//!
//! Without it anyone who reaches the HTTP port could create S3 keys,
//! grant themselves any bucket or remove nodes. The comparison hashes
//! both tokens and compares the hashes (BLAKE3's equality is constant
//! time), so neither the token's bytes nor its length leak through
//! timing. A node without a token refuses every admin request rather
//! than serve them unlocked.
//!
//! The dashboard's browser carries the token differently: `/ui?token=T`
//! sets an HttpOnly, SameSite=Strict cookie holding a key derived from the
//! token ([`ui_cookie_value`]; the token itself never sits in the
//! browser), and requests with that cookie pass as the bearer would.

use crate::App;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Pass the request on if it carries the admin token; else 401.
pub(crate) async fn require_admin(State(app): State<App>, req: Request, next: Next) -> Response {
    match check(app.node.config().admin_token.as_deref(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(why) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"ringstore admin\"")],
            format!("{why}\n"),
        )
            .into_response(),
    }
}

const HOW: &str = "send `Authorization: Bearer TOKEN` with the node's admin token \
                   (`ringstore dev` writes it to cluster.json as admin_token; the CLI reads it \
                   from there or from RINGSTORE_ADMIN_TOKEN)";

/// Whether `headers` carry `expected` as a bearer token.
fn check(expected: Option<&str>, headers: &HeaderMap) -> Result<(), String> {
    let Some(expected) = expected else {
        return Err(
            "the admin API is locked: this node has no admin token; set admin_token \
                    in its config file or RINGSTORE_ADMIN_TOKEN in its environment and restart it"
                .into(),
        );
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return match ui_cookie(headers) {
            Some(given) if given == ui_cookie_value(expected) => Ok(()),
            Some(_) => Err(format!(
                "the dashboard's cookie is stale (the admin token changed): open /ui?token=TOKEN again, or {HOW}"
            )),
            None => Err(format!("the admin API needs the admin token: {HOW}")),
        };
    };
    let given = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(given) = given else {
        return Err(format!(
            "the Authorization header is not a bearer token: {HOW}"
        ));
    };
    if blake3::hash(given.as_bytes()) == blake3::hash(expected.as_bytes()) {
        Ok(())
    } else {
        Err(format!("the admin token is wrong: {HOW}"))
    }
}

/// The dashboard's session cookie.
pub(crate) const UI_COOKIE: &str = "ringstore_ui";

/// What the dashboard's cookie holds for `token`: a key derived from it,
/// so a cookie read from a browser profile is not the admin token.
pub(crate) fn ui_cookie_value(token: &str) -> String {
    hex::encode(blake3::derive_key(
        "ringstore ui session 2026-12",
        token.as_bytes(),
    ))
}

/// The dashboard cookie's value in `headers`, if any.
fn ui_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == UI_COOKIE)
        .map(|(_, value)| value.to_string())
}

/// Whether `headers` carry the admin token (bearer or dashboard cookie).
pub(crate) fn is_admin(app: &App, headers: &HeaderMap) -> Result<(), String> {
    check(app.node.config().admin_token.as_deref(), headers)
}

/// Whether `given` is the admin token, compared as [`check`] does.
pub(crate) fn is_token(app: &App, given: &str) -> bool {
    app.node
        .config()
        .admin_token
        .as_deref()
        .is_some_and(|t| blake3::hash(t.as_bytes()) == blake3::hash(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn only_the_right_bearer_token_passes() {
        let token = Some("0123456789abcdef");
        assert!(check(token, &with("Bearer 0123456789abcdef")).is_ok());
        let refused = [
            HeaderMap::new(),
            with("Bearer 0123456789abcde"),
            with("Bearer 0123456789abcdefX"),
            with("Basic 0123456789abcdef"),
            with("0123456789abcdef"),
        ];
        for h in &refused {
            let why = check(token, h).unwrap_err();
            assert!(why.contains("Authorization"), "{why}");
        }
        let mut cookie = HeaderMap::new();
        let value = format!("a=b; {UI_COOKIE}={}", ui_cookie_value("0123456789abcdef"));
        cookie.insert(header::COOKIE, HeaderValue::from_str(&value).unwrap());
        assert!(check(token, &cookie).is_ok());
        let mut wrong = HeaderMap::new();
        let value = format!("{UI_COOKIE}={}", ui_cookie_value("another token"));
        wrong.insert(header::COOKIE, HeaderValue::from_str(&value).unwrap());
        assert!(check(token, &wrong).unwrap_err().contains("/ui?token"));
        let locked = check(None, &with("Bearer 0123456789abcdef")).unwrap_err();
        assert!(locked.contains("admin_token"), "{locked}");
    }
}
