//! Admin, health and discovery endpoints.

use crate::error::ApiError;
use crate::App;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

/// The Riak version reported in `/stats`, so Riak clients enable the
/// features of the API we implement (bucket types, tombstone contexts).
const RIAK_KV_VERSION_COMPAT: &str = "2.2.3";

pub(crate) async fn cluster(State(app): State<App>) -> Response {
    Json(app.node.cluster_status()).into_response()
}

pub(crate) async fn layout(State(app): State<App>) -> Response {
    Json(app.node.layout_status()).into_response()
}

pub(crate) async fn transfers(State(app): State<App>) -> Response {
    Json(json!({ "transfers": app.node.transfers() })).into_response()
}

#[derive(Deserialize)]
pub(crate) struct LeaveBody {
    node: String,
}

pub(crate) async fn leave(
    State(app): State<App>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: LeaveBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("expected {{\"node\": \"NODE_ID\"}}: {e}")))?;
    let node = node_id(&req.node)?;
    app.node.leave(node).await?;
    Ok(Json(
        json!({ "leaving": req.node, "layout_version": app.node.cluster_state().layout_version() }),
    )
    .into_response())
}

#[derive(Deserialize)]
pub(crate) struct ReplaceBody {
    old: String,
    new: String,
}

pub(crate) async fn replace(
    State(app): State<App>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: ReplaceBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad(format!(
            "expected {{\"old\": \"NODE_ID\", \"new\": \"NODE_ID\"}}: {e}"
        ))
    })?;
    app.node
        .replace(node_id(&req.old)?, node_id(&req.new)?)
        .await?;
    Ok(Json(json!({ "replaced": req.old, "by": req.new, "layout_version": app.node.cluster_state().layout_version() })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateBody {
    node: String,
    zone: Option<String>,
    capacity: Option<u32>,
}

pub(crate) async fn update(
    State(app): State<App>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: UpdateBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad(format!(
            "expected {{\"node\": \"NODE_ID\", \"zone\": \"z\", \"capacity\": 1}} (zone and capacity optional): {e}"
        ))
    })?;
    if req.zone.is_none() && req.capacity.is_none() {
        return Err(ApiError::bad("give a zone, a capacity or both".to_string()));
    }
    let node = node_id(&req.node)?;
    app.node.update_member(node, req.zone, req.capacity).await?;
    let layout = app.node.layout();
    let member = layout.member(node);
    Ok(Json(json!({
        "updated": req.node,
        "zone": member.map(|m| m.zone.clone()),
        "capacity": member.map(|m| m.capacity),
        "layout_version": app.node.cluster_state().layout_version(),
    }))
    .into_response())
}

#[derive(Deserialize)]
pub(crate) struct JoinBody {
    seed: String,
}

pub(crate) async fn join(
    State(app): State<App>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: JoinBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("expected {{\"seed\": \"host:rpc_port\"}}: {e}")))?;
    check_seed(&req.seed)?;
    app.node.join(&req.seed).await?;
    Ok(Json(
        json!({ "joined": req.seed, "layout_version": app.node.cluster_state().layout_version() }),
    )
    .into_response())
}

/// A seed is `host:port` (a name or an address, IPv6 in brackets): a
/// malformed one is the caller's mistake (400), only an unreachable one is
/// a 503.
fn check_seed(seed: &str) -> Result<(), ApiError> {
    let well_formed = seed.len() <= 255
        && seed.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
    if well_formed {
        Ok(())
    } else {
        Err(ApiError::bad(format!(
            "seed {:?} is not host:rpc_port (the RPC address of a node of the cluster, \
             as GET /admin/cluster lists it)",
            crate::truncated(seed)
        )))
    }
}

#[derive(Deserialize)]
pub(crate) struct FaultsBody {
    #[serde(default)]
    drop: Vec<String>,
    #[serde(default)]
    delay_ms: std::collections::BTreeMap<String, u64>,
}

pub(crate) fn fault_injection_enabled(app: &App) -> Result<(), ApiError> {
    if app.node.config().enable_fault_injection {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "fault injection is off; start the node with --enable-fault-injection (tests only)",
        ))
    }
}

fn node_id(text: &str) -> Result<ring::NodeId, ApiError> {
    text.parse()
        .map_err(|e: ring::RingError| ApiError::bad(e.to_string()))
}

pub(crate) async fn set_faults(
    State(app): State<App>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    fault_injection_enabled(&app)?;
    let req: FaultsBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad(format!(
            "expected {{\"drop\": [\"NODE_ID\"], \"delay_ms\": {{\"NODE_ID\": 50}}}}: {e}"
        ))
    })?;
    let drop = req
        .drop
        .iter()
        .map(|n| node_id(n))
        .collect::<Result<Vec<_>, _>>()?;
    let delay = req
        .delay_ms
        .iter()
        .map(|(n, ms)| Ok((node_id(n)?, *ms)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    app.node.set_faults(&drop, &delay)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn clear_faults(State(app): State<App>) -> Result<Response, ApiError> {
    fault_injection_enabled(&app)?;
    app.node.set_faults(&[], &[])?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn live() -> &'static str {
    "OK\n"
}

pub(crate) async fn ready(State(app): State<App>) -> Response {
    let layout = app.node.layout();
    if layout.member(app.node.id()).is_none() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not a member of the layout yet; join a cluster\n",
        )
            .into_response()
    } else if !app.node.is_ready_node(app.node.id()) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "still pulling the partitions this node owns; see GET /admin/transfers\n",
        )
            .into_response()
    } else {
        (StatusCode::OK, "ready\n").into_response()
    }
}

pub(crate) async fn ping() -> &'static str {
    "OK"
}

pub(crate) async fn metrics(State(app): State<App>) -> Response {
    let body = app.metrics.encode(&app);
    ([("content-type", "text/plain; version=0.0.4")], body).into_response()
}

pub(crate) async fn stats(State(app): State<App>) -> Response {
    let status = app.node.cluster_status();
    let members: Vec<String> = app
        .node
        .layout()
        .members()
        .iter()
        .map(|m| m.id.to_string())
        .collect();
    let connected: Vec<&String> = status
        .nodes
        .iter()
        .filter(|n| n.liveness == "up" && n.id != status.node_id)
        .map(|n| &n.id)
        .collect();
    let mut out = json!({
        "riak_kv_version": RIAK_KV_VERSION_COMPAT,
        "ringstore_version": env!("CARGO_PKG_VERSION"),
        "nodename": status.node_id,
        "ring_members": members,
        "connected_nodes": connected,
        "ring_num_partitions": app.node.layout().partition_count(),
        "under_replicated_partitions": status.under_replicated_partitions,
        "read_repairs_total": status.read_repairs,
    });
    for (op, riak) in [
        ("get", "node_get_fsm_time"),
        ("put", "node_put_fsm_time"),
        ("delete", "node_delete_time"),
    ] {
        let (count, [p50, p95, p99, max]) = app.metrics.summary(op);
        let counter = match op {
            "get" => "node_gets",
            "put" => "node_puts",
            _ => "node_deletes",
        };
        out[counter] = json!(count);
        out[format!("{riak}_median")] = json!(p50);
        out[format!("{riak}_95")] = json!(p95);
        out[format!("{riak}_99")] = json!(p99);
        out[format!("{riak}_100")] = json!(max);
    }
    Json(out).into_response()
}

/// Resource discovery, as Riak clients use it to find the API's paths.
pub(crate) async fn discovery(headers: HeaderMap) -> Response {
    let resources = json!({
        "riak_kv_wm_buckets": "/buckets",
        "riak_kv_wm_bucket_type": "/types",
        "riak_kv_wm_ping": "/ping",
        "riak_kv_wm_props": "/buckets",
        "riak_kv_wm_stats": "/stats",
    });
    let wants_json = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("json"));
    if wants_json {
        return Json(resources).into_response();
    }
    let mut html = String::from("<html><body><ul>");
    if let Some(map) = resources.as_object() {
        for (name, path) in map {
            let path = path.as_str().unwrap_or_default();
            html.push_str(&format!("<li><a href=\"{path}\">{name}</a></li>"));
        }
    }
    html.push_str("</ul></body></html>");
    ([("content-type", "text/html")], html).into_response()
}
