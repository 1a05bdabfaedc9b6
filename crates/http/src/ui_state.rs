//! What the dashboard's page polls: `GET /admin/ui/state` (the cluster,
//! the layout, every node's own figures, warnings in words, buckets) and
//! `GET /admin/ui/plan` (what an action or a failure would do, shown
//! before an operator confirms it). Behind the admin token, like the rest
//! of `/admin`.

use crate::error::ApiError;
use crate::App;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use node::impact::{self, Change};
use node::{ClusterStatus, GatheredStats};
use serde::Deserialize;
use serde_json::json;

/// The `n_val` and quorum the cluster-level figures assume.
const N_VAL: usize = 3;

/// `GET /admin/ui/state`.
pub(crate) async fn state(State(app): State<App>) -> Response {
    let node = &app.node;
    let cluster = node.cluster_status();
    let layout = node.layout_status();
    let stats = node.gather_stats().await;
    let warnings = warnings(&app, &cluster, &stats);
    let buckets = crate::ui_buckets::buckets(&app).await;
    Json(json!({
        "node_id": cluster.node_id,
        "now_ms": node::traffic::wall_ms(),
        "slot_ms": node::traffic::SLOT_MS,
        "cluster": cluster,
        "layout": layout,
        "stats": stats,
        "warnings": warnings,
        "buckets": buckets,
    }))
    .into_response()
}

/// What is wrong, in words, most urgent first.
fn warnings(app: &App, cluster: &ClusterStatus, stats: &[GatheredStats]) -> Vec<String> {
    let layout = app.node.layout();
    let mut out = Vec::new();
    let down: Vec<ring::NodeId> = cluster
        .nodes
        .iter()
        .filter(|n| n.liveness == "down" && n.state != "removed")
        .filter_map(|n| n.id.parse().ok())
        .collect();
    let lost = impact::quorum_lost(&layout, &down, N_VAL);
    if !lost.is_empty() {
        out.push(format!(
            "{} partitions have fewer than a quorum of their primaries up: strict (pr/pw) requests to them fail",
            lost.len()
        ));
    }
    for n in cluster
        .nodes
        .iter()
        .filter(|n| n.liveness == "down" && n.state != "removed")
    {
        let silent =
            n.id.parse()
                .ok()
                .and_then(|id| app.node.silent_for_ms(id))
                .map_or(String::new(), |ms| format!(" for {}", duration(ms)));
        out.push(format!(
            "node {} ({}) has been down{silent}; {} partitions are served by fallbacks",
            n.id, n.zone, n.partitions
        ));
    }
    for s in stats
        .iter()
        .filter(|s| s.stats.is_none() && s.error.as_deref() != Some("down"))
    {
        out.push(format!(
            "node {} did not answer for its figures: {}",
            s.id,
            s.error.as_deref().unwrap_or("?")
        ));
    }
    let moving: usize = stats
        .iter()
        .filter_map(|s| s.stats.as_ref())
        .map(|s| s.transfers.len())
        .sum();
    if moving > 0 {
        out.push(format!("{moving} partitions are being handed off"));
    }
    for n in cluster.nodes.iter().filter(|n| n.hints_pending > 0) {
        out.push(format!(
            "{} hints on this node wait for node {}",
            n.hints_pending, n.id
        ));
    }
    if cluster.under_replicated_partitions > 0 {
        out.push(format!(
            "{} partitions have fewer than 3 owners: add nodes to keep 3 copies",
            cluster.under_replicated_partitions
        ));
    }
    out
}

/// "45 s", "3 min", "2 h".
fn duration(ms: u64) -> String {
    match ms / 1000 {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

#[derive(Deserialize)]
pub(crate) struct PlanQuery {
    /// `join`, `leave`, `update` or `fail`.
    action: String,
    node: Option<String>,
    zone: Option<String>,
    capacity: Option<u32>,
}

/// `GET /admin/ui/plan?action=leave&node=ID` (or `update` with `zone`
/// and `capacity`, `join` with `zone` and `capacity` for a new node, or
/// `fail`): the partition moves, or for a failure the partitions that
/// would lose their quorum.
pub(crate) async fn plan(
    State(app): State<App>,
    q: Result<Query<PlanQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| {
        ApiError::bad(format!(
            "{}; a plan takes action=join|leave|update|fail, node=ID, zone=Z, \
             capacity=N",
            e.body_text()
        ))
    })?;
    let layout = app.node.layout();
    // Leave, update and fail name a member: a plan for anything else would
    // show "nothing moves" for what is really a typo.
    let node_id = || -> Result<ring::NodeId, ApiError> {
        let id: ring::NodeId =
            q.node.as_deref().unwrap_or("").parse().map_err(|_| {
                ApiError::bad("give node=NODE_ID (see GET /admin/cluster)".to_string())
            })?;
        match layout.member(id) {
            Some(_) => Ok(id),
            None => Err(ApiError::bad(format!(
                "node {id} is not a member of the layout (see GET /admin/cluster)"
            ))),
        }
    };
    let change = match q.action.as_str() {
        "leave" => Change::Leave(node_id()?),
        "update" | "join" => {
            let (id, member) = match q.action.as_str() {
                "join" => (ring::NodeId(u64::MAX), None),
                _ => {
                    let id = node_id()?;
                    (id, layout.member(id).cloned())
                }
            };
            Change::Update(ring::Member {
                id,
                zone: q
                    .zone
                    .clone()
                    .or(member.as_ref().map(|m| m.zone.clone()))
                    .unwrap_or_else(|| "default".into()),
                capacity: q.capacity.or(member.map(|m| m.capacity)).unwrap_or(1),
            })
        }
        "fail" => {
            let mut down: Vec<ring::NodeId> = app
                .node
                .cluster_status()
                .nodes
                .iter()
                .filter(|n| n.liveness == "down")
                .filter_map(|n| n.id.parse().ok())
                .collect();
            down.push(node_id()?);
            let lost = impact::quorum_lost(&layout, &down, N_VAL);
            return Ok(Json(json!({ "action": "fail", "quorum_lost": lost })).into_response());
        }
        other => {
            return Err(ApiError::bad(format!(
                "action {other:?}: expected join, leave, update or fail"
            )))
        }
    };
    let change = match change {
        Change::Update(m) if q.action == "join" => Change::Join(m),
        c => c,
    };
    let moves = impact::plan(&layout, &change, N_VAL);
    Ok(Json(json!({ "action": q.action, "moves": moves })).into_response())
}
