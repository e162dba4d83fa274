//! Export routes (all server-side): channel and user exports run as tasks on the app function;
//! a user's direct export is on the users function.

use super::reply::{Body, HttpResult, Reply};
use crate::domain::caller::Session;
use crate::domain::export::ExportChannelsRequest;
use crate::service::Chat;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;

/// `POST /export_channels`, `GET /export_channels/{id}`, `POST /export/users`.
pub fn task_routes() -> Router<Chat> {
    Router::new()
        .route("/export_channels", post(export_channels))
        .route("/export_channels/{id}", get(export_status))
        .route("/export/users", post(export_users))
}

/// `GET /users/{id}/export`.
pub fn user_routes() -> Router<Chat> {
    Router::new().route("/users/{id}/export", get(export_user))
}

async fn export_channels(
    State(chat): State<Chat>,
    session: Session,
    Body(req): Body<ExportChannelsRequest>,
) -> HttpResult {
    let task_id = chat.export_channels(&session, req).await?;
    Ok(Reply::json(json!({ "task_id": task_id })))
}

async fn export_status(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
) -> HttpResult {
    session.caller.require_server("reading exports")?;
    Ok(Reply::json(chat.task_status(&id).await?))
}

#[derive(Deserialize)]
struct ExportUsers {
    #[serde(default)]
    user_ids: Option<Vec<String>>,
}

async fn export_users(
    State(chat): State<Chat>,
    session: Session,
    Body(req): Body<ExportUsers>,
) -> HttpResult {
    let task_id = chat
        .export_users(&session, req.user_ids.unwrap_or_default())
        .await?;
    Ok(Reply::json(json!({ "task_id": task_id })))
}

async fn export_user(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
) -> HttpResult {
    Ok(Reply::json(chat.export_user(&session, &id).await?))
}
