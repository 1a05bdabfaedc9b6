//! The dashboard at `/ui`: one page and its assets, embedded in the
//! binary (no build step, no network at run time), drawing what
//! `ui_state` serves.
//!
//! `/ui?token=TOKEN` checks the admin token once, sets the session cookie
//! (`auth::UI_COOKIE`: HttpOnly, SameSite=Strict) and redirects to `/ui`,
//! so the token leaves the address bar and the browser history. `/ui`
//! without the cookie (or a bearer token) is a 401 page that says how to
//! open it. The assets hold no data and are served to anyone.

use crate::auth;
use crate::App;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

const INDEX_HTML: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const APP_CSS: &str = include_str!("../ui/app.css");
const UPLOT_JS: &str = include_str!("../ui/vendor/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../ui/vendor/uPlot.min.css");

/// `GET /ui`.
pub(crate) async fn page(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = q.get("token") {
        if !auth::is_token(&app, token) {
            return refused("the token in the address is not this node's admin token");
        }
        let cookie = format!(
            "{}={}; HttpOnly; SameSite=Strict; Path=/",
            auth::UI_COOKIE,
            auth::ui_cookie_value(token)
        );
        return (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, cookie),
                (header::LOCATION, "/ui".to_string()),
            ],
        )
            .into_response();
    }
    match auth::is_admin(&app, &headers) {
        Ok(()) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            INDEX_HTML,
        )
            .into_response(),
        Err(why) => refused(&why),
    }
}

fn refused(why: &str) -> Response {
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>ringstore: sign in</title>\
         <h1>ringstore dashboard</h1><p>{}</p>\
         <p>Open <code>/ui?token=TOKEN</code> once with the node's admin token \
         (<code>ringstore dev</code> prints the link and writes the token to cluster.json).</p>",
        html_escape(why)
    );
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `GET /ui/assets/{name}`.
pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "uPlot.iife.min.js" => (UPLOT_JS, "text/javascript; charset=utf-8"),
        "uPlot.min.css" => (UPLOT_CSS, "text/css; charset=utf-8"),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                format!("no dashboard asset {name:?}\n"),
            )
                .into_response()
        }
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}
