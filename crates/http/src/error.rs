//! API errors: a status code and a plain-text message saying what was
//! wrong and what to do.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use node::{ErrorKind, NodeError};

/// An error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn bad(message: String) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message,
        }
    }

    pub(crate) fn not_found(message: &str) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.to_string(),
        }
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        let status = match e.kind() {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.message;
        body.push('\n');
        (self.status, [("content-type", "text/plain")], body).into_response()
    }
}
