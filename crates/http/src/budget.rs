//! The node's budget for key-value bodies in flight.
//!
//! A key-value value is one piece (up to `value_bytes_max`, 50 MiB): the
//! node that receives it holds it whole while it coordinates the write,
//! and so does every replica while it stores it. What can be bounded is
//! how many such bytes one node accepts at once: a PUT or POST takes its
//! `Content-Length` (or `value_bytes_max` when the body is chunked) from
//! `values_in_flight_bytes_max` before its body is read, and gives it back
//! when it is answered. A request that finds no room waits as long as a
//! write of its size may take, then gets a 503 saying why. Small bodies
//! (64 KiB and less, nearly every request) skip the budget, so the common
//! path takes no lock. Six concurrent 50 MiB PUTs took 2.1 GB before; the budget and
//! the RPC queues' (`rpc_queue_bytes_max`) bound it (docs/RELIABILITY.md).

use crate::error::ApiError;
use crate::App;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Bodies up to this size do not take from the budget.
const SMALL_BODY_BYTES: u64 = 64 * 1024;

/// Take the body's share of the budget before the handler reads it.
pub(crate) async fn admit(State(app): State<App>, req: Request, next: Next) -> Response {
    let cfg = app.node.config();
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bytes = match declared {
        Some(n) if n <= SMALL_BODY_BYTES => return next.run(req).await,
        Some(n) => n,
        // Chunked: as large as it may get.
        None => cfg.value_bytes_max as u64,
    };
    // As long as the write itself may take (see `Node::put`'s deadline).
    let wait = cfg.request_timeout() + cfg.transfer_allowance(bytes as usize);
    let bytes_wanted = usize::try_from(bytes).unwrap_or(usize::MAX);
    let permit = tokio::time::timeout(wait, app.values_in_flight.take(bytes_wanted)).await;
    let Ok(_permit) = permit else {
        return ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!(
                "this node is holding {} MiB of large values in flight (values_in_flight_bytes_max) \
                 and had no room for {bytes} more bytes within {} ms; retry, or spread large \
                 writes over more nodes",
                cfg.values_in_flight_bytes_max >> 20,
                wait.as_millis()
            ),
        }
        .into_response();
    };
    next.run(req).await
}
