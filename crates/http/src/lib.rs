//! # Client-facing HTTP
//!
//! The Riak-compatible key-value API, the admin API, health checks and
//! metrics, on one listener (see `shared/API.md` for the contract). Every
//! handler parses its input into typed values at the edge (`params`), calls
//! the [`node::Node`], and encodes the answer (`encode`); malformed input
//! becomes a 4xx with a message, never a panic.

mod admin;
mod auth;
mod buckets;
mod budget;
mod encode;
mod error;
mod geo;
mod index;
mod keys;
mod kv;
mod kv_auth;
mod lag_metrics;
mod metrics;
mod params;
mod traffic_metrics;
mod ui;
mod ui_buckets;
mod ui_state;
mod user_routes;
mod users;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use axum::Router;
use node::Node;
use std::sync::Arc;

/// Shared state of the handlers.
#[derive(Clone)]
pub(crate) struct App {
    node: Node,
    keys: s3::KeyStore,
    /// Key-value users, when `kv_auth` is on (`users`).
    users: users::Users,
    metrics: Arc<metrics::Metrics>,
    /// Bytes of large key-value bodies in flight (`budget`).
    values_in_flight: net::ByteBudget,
    /// The dashboard's bucket list, worked out at most every 30 s.
    ui_buckets: Arc<ui_buckets::Cache>,
}

/// The router for one node's HTTP listener; `keys` is shared with the
/// node's S3 listener.
pub fn router(node: Node, keys: s3::KeyStore) -> Router {
    let body_limit = node.config().value_bytes_max + 64 * 1024;
    let values_in_flight = node.config().values_in_flight_bytes_max;
    let app = App {
        metrics: Arc::new(metrics::Metrics::new(node.clone())),
        users: users::Users::new(s3::catalog::Catalog::new(node.clone())),
        node,
        keys,
        values_in_flight: net::ByteBudget::new(values_in_flight),
        ui_buckets: Arc::default(),
    };
    let admit = || axum::middleware::from_fn_with_state(app.clone(), budget::admit);
    let object = get(kv::fetch)
        .merge(put(kv::put).post(kv::put).layer(admit()))
        .delete(kv::delete);
    let keys = get(buckets::list_keys).merge(post(kv::post_new).layer(admit()));
    let props = get(buckets::get_props)
        .put(buckets::put_props)
        .delete(buckets::reset_props);
    let metrics_locked = app.node.config().metrics_require_token;
    let (open, locked) = (open_routes(), admin_routes());
    let (open, locked) = if metrics_locked {
        (open, locked.route("/metrics", get(admin::metrics)))
    } else {
        (open.route("/metrics", get(admin::metrics)), locked)
    };
    let locked = locked.route_layer(axum::middleware::from_fn_with_state(
        app.clone(),
        auth::require_admin,
    ));
    let kv_routes = Router::new()
        .route("/buckets", get(buckets::list_buckets))
        .route("/buckets/{bucket}/keys", keys.clone())
        .route("/buckets/{bucket}/keys/{key}", object.clone())
        .route("/buckets/{bucket}/props", props.clone())
        .route("/buckets/{bucket}/geo/{index}", get(geo::query))
        .route(
            "/types/{type}/buckets/{bucket}/geo/{index}",
            get(geo::query),
        )
        .route("/buckets/{bucket}/index/{index}/{value}", get(index::query))
        .route(
            "/buckets/{bucket}/index/{index}/{start}/{end}",
            get(index::query),
        )
        .route(
            "/types/{type}/buckets/{bucket}/index/{index}/{value}",
            get(index::query),
        )
        .route(
            "/types/{type}/buckets/{bucket}/index/{index}/{start}/{end}",
            get(index::query),
        )
        .route("/types/{type}/buckets", get(buckets::list_buckets))
        .route("/types/{type}/buckets/{bucket}/keys", keys)
        .route("/types/{type}/buckets/{bucket}/keys/{key}", object)
        .route("/types/{type}/buckets/{bucket}/props", props)
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            kv_auth::require_user,
        ));
    open.merge(locked)
        .merge(kv_routes)
        .fallback(no_such_path)
        .method_not_allowed_fallback(no_such_method)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(app)
}

/// Serve `router(node, keys)` on `listener` (over TLS with `tls`) until
/// the task is dropped, within the node's client listener limits
/// (`net::listen`).
pub async fn serve(
    node: Node,
    keys: s3::KeyStore,
    listener: tokio::net::TcpListener,
    tls: Option<net::tls::TlsAcceptor>,
) {
    let limits = node.config().listener_limits("http");
    let service = hyper_util::service::TowerToHyperService::new(router(node, keys));
    net::listen::serve_http(listener, limits, tls, service).await
}

/// A path no route serves: a 404 that says where the APIs are, rather
/// than an empty body.
async fn no_such_path(uri: axum::http::Uri) -> (axum::http::StatusCode, String) {
    (
        axum::http::StatusCode::NOT_FOUND,
        format!(
            "no such path: {}; the key-value API is under /buckets and \
             /types, the admin API under /admin, the dashboard at /ui \
             (shared/API.md lists them)\n",
            truncated(uri.path())
        ),
    )
}

/// A known path with a method it does not take: a 405 that names both.
async fn no_such_method(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> (axum::http::StatusCode, String) {
    (
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{method} is not served at {}; the Allow header lists what is\n",
            truncated(uri.path())
        ),
    )
}

/// At most 200 bytes of a client's path, cut on a character boundary, so
/// an error never echoes a hostile request at length.
fn truncated(path: &str) -> &str {
    let mut end = path.len().min(200);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path[..end]
}

/// Routes anyone may call: discovery, liveness, readiness, Riak's stats.
fn open_routes() -> Router<App> {
    Router::new()
        .route("/", get(admin::discovery))
        .route("/ping", get(admin::ping))
        .route("/stats", get(admin::stats))
        .route("/health/live", get(admin::live))
        .route("/health/ready", get(admin::ready))
        .route("/ui", get(ui::page))
        .route("/ui/assets/{name}", get(ui::asset))
}

/// The admin API: behind the admin token (`auth`).
fn admin_routes() -> Router<App> {
    Router::new()
        .route("/admin/cluster", get(admin::cluster))
        .route("/admin/cluster/join", post(admin::join))
        .route("/admin/cluster/leave", post(admin::leave))
        .route("/admin/cluster/replace", post(admin::replace))
        .route("/admin/cluster/update", post(admin::update))
        .route("/admin/layout", get(admin::layout))
        .route("/admin/keys", get(keys::list).post(keys::create))
        .route("/admin/keys/{id}", delete(keys::delete))
        .route("/admin/keys/{id}/buckets/{bucket}", put(keys::grant))
        .route(
            "/admin/users",
            get(user_routes::list).post(user_routes::create),
        )
        .route("/admin/users/{name}", delete(user_routes::delete))
        .route("/admin/transfers", get(admin::transfers))
        .route("/admin/ui/state", get(ui_state::state))
        .route("/admin/ui/plan", get(ui_state::plan))
        .route(
            "/admin/debug/faults",
            post(admin::set_faults).delete(admin::clear_faults),
        )
        .route(
            "/admin/replica/buckets/{bucket}/keys/{key}",
            get(kv::replica),
        )
        .route(
            "/admin/replica/types/{type}/buckets/{bucket}/keys/{key}",
            get(kv::replica),
        )
        .route(
            "/admin/debug/replica/types/{type}/buckets/{bucket}/keys/{key}",
            put(kv::damage_replica),
        )
}
