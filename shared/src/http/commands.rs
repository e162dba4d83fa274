//! Routes of custom commands (on the app function): `/commands` and `/commands/{name}`.

use super::reply::{Body, HttpResult, Reply};
use crate::domain::caller::Session;
use crate::domain::command::CommandRequest;
use crate::service::Chat;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;

pub fn routes() -> Router<Chat> {
    Router::new()
        .route("/commands", get(list_commands).post(create_command))
        .route(
            "/commands/{name}",
            get(get_command).put(update_command).delete(delete_command),
        )
}

async fn list_commands(State(chat): State<Chat>, session: Session) -> HttpResult {
    Ok(Reply::json(chat.list_commands(&session).await?))
}

async fn create_command(
    State(chat): State<Chat>,
    session: Session,
    Body(req): Body<CommandRequest>,
) -> HttpResult {
    Ok(Reply::json(chat.create_command(&session, req).await?))
}

async fn get_command(
    State(chat): State<Chat>,
    session: Session,
    Path(name): Path<String>,
) -> HttpResult {
    Ok(Reply::json(chat.get_command(&session, &name).await?))
}

async fn update_command(
    State(chat): State<Chat>,
    session: Session,
    Path(name): Path<String>,
    Body(req): Body<CommandRequest>,
) -> HttpResult {
    Ok(Reply::json(
        chat.update_command(&session, &name, req).await?,
    ))
}

async fn delete_command(
    State(chat): State<Chat>,
    session: Session,
    Path(name): Path<String>,
) -> HttpResult {
    Ok(Reply::json(chat.delete_command(&session, &name).await?))
}
