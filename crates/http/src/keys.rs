//! `/admin/keys`: S3 access keys and their rights on buckets.

use crate::error::ApiError;
use crate::App;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

pub(crate) fn s3_failure(e: s3::s3s::S3Error) -> ApiError {
    let status = e.status_code().unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let message = e
        .message()
        .map_or_else(|| e.code().as_str().to_string(), str::to_string);
    ApiError { status, message }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    #[serde(default)]
    name: String,
}

pub(crate) async fn create(
    State(app): State<App>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: CreateBody = if body.is_empty() {
        CreateBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad(format!("expected {{\"name\": \"...\"}}: {e}")))?
    };
    let (id, secret) = app.keys.create(&req.name).await.map_err(s3_failure)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "access_key_id": id, "secret_access_key": secret, "name": req.name })),
    )
        .into_response())
}

pub(crate) async fn list(State(app): State<App>) -> Result<Response, ApiError> {
    let keys = app.keys.list().await.map_err(s3_failure)?;
    Ok(Json(json!({ "keys": keys })).into_response())
}

pub(crate) async fn delete(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if app.keys.delete(&id).await.map_err(s3_failure)? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("no access key {id} (see GET /admin/keys)"),
        })
    }
}

pub(crate) async fn grant(
    State(app): State<App>,
    Path((id, bucket)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let g: s3::Grant = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad(format!(
            "expected {{\"read\": true, \"write\": true, \"owner\": false}}: {e}"
        ))
    })?;
    if app.keys.grant(&id, &bucket, g).await.map_err(s3_failure)? {
        Ok(Json(json!({ "access_key_id": id, "bucket": bucket, "read": g.read, "write": g.write, "owner": g.owner })).into_response())
    } else {
        Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("no access key {id} (see GET /admin/keys)"),
        })
    }
}
