//! `/admin/users`: key-value users and their grants (`crate::users`).

use crate::error::ApiError;
use crate::users::{UserError, UserGrant};
use crate::App;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

fn failure(e: UserError) -> ApiError {
    let status = match e {
        UserError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        UserError::Exists(_) => StatusCode::CONFLICT,
        UserError::BadName | UserError::TooManyGrants => StatusCode::BAD_REQUEST,
    };
    ApiError {
        status,
        message: e.to_string(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    name: String,
    #[serde(default)]
    grants: Vec<UserGrant>,
}

pub(crate) async fn create(
    State(app): State<App>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: CreateBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad(format!(
            "expected {{\"name\": \"app\", \"grants\": [{{\"bucket_type\": \"default\", \"bucket\": \"photos\", \"read\": true, \"write\": true}}]}}: {e}"
        ))
    })?;
    let password = app
        .users
        .create(&req.name, req.grants.clone())
        .await
        .map_err(failure)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": req.name, "password": password, "grants": req.grants })),
    )
        .into_response())
}

pub(crate) async fn list(State(app): State<App>) -> Result<Response, ApiError> {
    let users: Vec<_> = app
        .users
        .list()
        .await
        .map_err(failure)?
        .into_iter()
        .map(|(name, grants)| json!({ "name": name, "grants": grants }))
        .collect();
    Ok(Json(json!({ "users": users })).into_response())
}

pub(crate) async fn delete(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    if app.users.delete(&name).await.map_err(failure)? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(&format!(
            "no user {name} (see GET /admin/users)"
        )))
    }
}
