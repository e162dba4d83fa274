//! Routes of the users function: users, guests and the async tasks they start.

use super::auth::sign_user_token;
use super::reply::{Body, HttpResult, Params, Reply};
use crate::domain::caller::Session;
use crate::domain::ApiError;
use crate::service::muting::{BlockRequest, MuteRequest};
use crate::service::users::{DeleteUserOptions, DeleteUsers, QueryUsers, UserPatch};
use crate::service::Chat;
use axum::extract::{Path, State};
use axum::routing::{delete, get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub fn routes() -> Router<Chat> {
    Router::new()
        .route(
            "/users",
            get(query_users)
                .post(upsert_users)
                .patch(update_users_partial),
        )
        .route("/users/{id}", delete(delete_user))
        .route(
            "/devices",
            post(add_device).get(list_devices).delete(remove_device),
        )
        .route("/push_preferences", post(upsert_push_preferences))
        .route("/users/{id}/deactivate", post(deactivate_user))
        .route("/users/{id}/reactivate", post(reactivate_user))
        .route("/users/deactivate", post(deactivate_users))
        .route("/users/reactivate", post(reactivate_users))
        .route("/users/delete", post(delete_users))
        .route("/users/restore", post(restore_users))
        .route("/guest", post(create_guest))
        .route("/moderation/mute", post(mute_users))
        .route("/moderation/ban", post(ban_user).delete(unban_user))
        .route(
            "/query_banned_users",
            axum::routing::get(query_banned_users),
        )
        .route("/query_future_channel_bans", get(query_future_channel_bans))
        .route("/moderation/flag", post(flag))
        .route("/moderation/unflag", post(unflag))
        .route("/moderation/flags/message", get(query_message_flags))
        .route("/moderation/reports", post(query_flag_reports))
        .route(
            "/moderation/reports/{id}",
            axum::routing::patch(review_flag_report),
        )
        .route("/moderation/unmute", post(unmute_users))
        .route("/users/block", get(blocked_users).post(block_user))
        .route("/users/unblock", post(unblock_user))
        .merge(super::exports::user_routes())
}

/// `POST /moderation/ban`: an app-wide or channel ban, open or shadow.
async fn ban_user(
    State(chat): State<Chat>,
    session: Session,
    Body(req): Body<crate::domain::ban::BanRequest>,
) -> HttpResult {
    Ok(Reply::json(chat.ban_user(&session, req).await?))
}

/// `DELETE /moderation/ban`: the SDKs send its fields as query parameters.
async fn unban_user(State(chat): State<Chat>, session: Session, params: Params) -> HttpResult {
    let text = |k: &str| params.get(k).filter(|v| !v.is_empty()).map(str::to_string);
    let req = crate::domain::ban::BanRequest {
        target_user_id: text("target_user_id"),
        channel_type: text("type"),
        id: text("id"),
        channel_cid: text("channel_cid"),
        shadow: params.flag("shadow")?,
        remove_future_channels_ban: params.flag("remove_future_channels_ban")?,
        user_id: text("user_id"),
        ..Default::default()
    };
    Ok(Reply::json(chat.unban_user(&session, req).await?))
}

/// `GET /query_banned_users` (`payload`: filter, sort, limit, offset).
async fn query_banned_users(
    State(chat): State<Chat>,
    session: Session,
    params: Params,
) -> HttpResult {
    Ok(Reply::json(
        chat.query_banned_users(&session, params.payload()?).await?,
    ))
}

/// `GET /query_future_channel_bans` (`payload`: user_id, target_user_id, limit, offset).
async fn query_future_channel_bans(
    State(chat): State<Chat>,
    session: Session,
    params: Params,
) -> HttpResult {
    Ok(Reply::json(
        chat.query_future_channel_bans(&session, params.payload()?)
            .await?,
    ))
}

/// `POST /moderation/flag`: a message or user reported to the moderators.
async fn flag(
    State(chat): State<Chat>,
    session: Session,
    Body(req): Body<crate::domain::flag::FlagRequest>,
) -> HttpResult {
    Ok(Reply::json(chat.flag(&session, req, true).await?))
}

/// `POST /moderation/unflag`.
async fn unflag(
    State(chat): State<Chat>,
    session: Session,
    Body(req): Body<crate::domain::flag::FlagRequest>,
) -> HttpResult {
    Ok(Reply::json(chat.flag(&session, req, false).await?))
}

/// `GET /moderation/flags/message` (`payload`: filter, limit, offset).
async fn query_message_flags(
    State(chat): State<Chat>,
    session: Session,
    params: Params,
) -> HttpResult {
    Ok(Reply::json(
        chat.query_message_flags(&session, params.payload()?)
            .await?,
    ))
}

/// `POST /moderation/reports`: flagged messages' reports.
async fn query_flag_reports(
    State(chat): State<Chat>,
    session: Session,
    Body(req): Body<crate::service::flag_reports::QueryFlagReports>,
) -> HttpResult {
    Ok(Reply::json(chat.query_flag_reports(&session, req).await?))
}

/// `PATCH /moderation/reports/{id}`: a moderator's review of a report.
async fn review_flag_report(
    State(chat): State<Chat>,
    session: Session,
    axum::extract::Path(id): axum::extract::Path<String>,
    Body(req): Body<crate::service::flag_reports::ReviewFlagReport>,
) -> HttpResult {
    Ok(Reply::json(
        chat.review_flag_report(&session, &id, req).await?,
    ))
}

async fn mute_users(
    State(chat): State<Chat>,
    session: Session,
    Body(req): Body<MuteRequest>,
) -> HttpResult {
    Ok(Reply::json(chat.mute_users(&session, req, true).await?))
}

async fn unmute_users(
    State(chat): State<Chat>,
    session: Session,
    Body(req): Body<MuteRequest>,
) -> HttpResult {
    Ok(Reply::json(chat.mute_users(&session, req, false).await?))
}

async fn block_user(
    State(chat): State<Chat>,
    session: Session,
    Body(req): Body<BlockRequest>,
) -> HttpResult {
    Ok(Reply::json(chat.block_user(&session, req, true).await?))
}

async fn unblock_user(
    State(chat): State<Chat>,
    session: Session,
    Body(req): Body<BlockRequest>,
) -> HttpResult {
    Ok(Reply::json(chat.block_user(&session, req, false).await?))
}

async fn blocked_users(
    State(chat): State<Chat>,
    session: Session,
    Params(params): Params,
) -> HttpResult {
    Ok(Reply::json(
        chat.blocked_users(&session, params.get("user_id").cloned())
            .await?,
    ))
}

fn users_map(users: Vec<crate::domain::user::User>) -> Value {
    Value::Object(
        users
            .into_iter()
            .map(|u| (u.id.clone(), u.to_json()))
            .collect(),
    )
}

#[derive(Deserialize)]
struct UpsertBody {
    users: Value,
}

/// `users` may be a map keyed by id (Python and JS SDKs) or a list.
async fn upsert_users(
    State(chat): State<Chat>,
    session: Session,
    Body(body): Body<UpsertBody>,
) -> HttpResult {
    let list: Vec<Map<String, Value>> = match body.users {
        Value::Object(map) => map
            .into_iter()
            .map(|(id, u)| match u {
                Value::Object(mut o) => {
                    o.entry("id").or_insert(Value::String(id));
                    Ok(o)
                }
                _ => Err(ApiError::field(
                    "users",
                    format!("user {id:?} must be an object"),
                )),
            })
            .collect::<Result<_, _>>()?,
        Value::Array(items) => items
            .into_iter()
            .map(|u| match u {
                Value::Object(o) => Ok(o),
                _ => Err(ApiError::field("users", "each user must be an object")),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(ApiError::field("users", "users must be a map of id to user").into()),
    };
    let users = chat.upsert_users(&session, list).await?;
    Ok(Reply::json(json!({"users": users_map(users)})))
}

#[derive(Deserialize)]
struct PartialBody {
    users: Vec<UserPatch>,
}

async fn update_users_partial(
    State(chat): State<Chat>,
    session: Session,
    Body(body): Body<PartialBody>,
) -> HttpResult {
    let users = chat.update_users_partial(&session, body.users).await?;
    Ok(Reply::json(json!({"users": users_map(users)})))
}

async fn query_users(State(chat): State<Chat>, session: Session, params: Params) -> HttpResult {
    let q: QueryUsers = params.payload()?;
    let presence = q.presence == Some(true);
    let users = chat.query_users(&session, q).await?;
    if let (true, Some(conn)) = (presence, &session.connection_id) {
        let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
        chat.subscribe_presence(conn, &ids).await?;
    }
    Ok(Reply::json(
        json!({"users": users.iter().map(|u| u.to_json()).collect::<Vec<_>>()}),
    ))
}

async fn delete_user(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
    params: Params,
) -> HttpResult {
    let opts = DeleteUserOptions {
        mark_messages_deleted: params.flag("mark_messages_deleted")?,
        hard_delete: params.flag("hard_delete")?,
        delete_conversation_channels: params.flag("delete_conversation_channels")?,
        new_channel_owner_id: params.get("new_channel_owner_id").map(str::to_string),
    };
    let user = chat.delete_user(&session, &id, opts).await?;
    Ok(Reply::json(json!({"user": user.to_json()})))
}

#[derive(Deserialize, Default)]
struct ActivationBody {
    #[serde(default)]
    mark_messages_deleted: Option<bool>,
    #[serde(default)]
    restore_messages: Option<bool>,
    #[serde(default)]
    created_by_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "crate::domain::ids::unique_ids")]
    user_ids: Vec<String>,
}

async fn deactivate_user(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
    Body(b): Body<ActivationBody>,
) -> HttpResult {
    let user = chat
        .deactivate_user(
            &session,
            &id,
            b.mark_messages_deleted.unwrap_or(false),
            b.created_by_id.as_deref(),
        )
        .await?;
    Ok(Reply::json(json!({"user": user.to_json()})))
}

async fn reactivate_user(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
    Body(b): Body<ActivationBody>,
) -> HttpResult {
    let user = chat
        .reactivate_user(
            &session,
            &id,
            b.restore_messages.unwrap_or(false),
            b.name.as_deref(),
            b.created_by_id.as_deref(),
        )
        .await?;
    Ok(Reply::json(json!({"user": user.to_json()})))
}

async fn deactivate_users(
    State(chat): State<Chat>,
    session: Session,
    Body(b): Body<ActivationBody>,
) -> HttpResult {
    batch_activation(&chat, &session, b, true).await
}

async fn reactivate_users(
    State(chat): State<Chat>,
    session: Session,
    Body(b): Body<ActivationBody>,
) -> HttpResult {
    batch_activation(&chat, &session, b, false).await
}

/// Batch deactivate (`on`) or reactivate, as a task.
async fn batch_activation(
    chat: &Chat,
    session: &Session,
    b: ActivationBody,
    on: bool,
) -> HttpResult {
    let messages_flag = if on {
        b.mark_messages_deleted
    } else {
        b.restore_messages
    }
    .unwrap_or(false);
    let task_id = chat
        .deactivate_users(session, b.user_ids, on, messages_flag, b.created_by_id)
        .await?;
    Ok(Reply::json(json!({ "task_id": task_id })))
}

async fn delete_users(
    State(chat): State<Chat>,
    session: Session,
    Body(b): Body<DeleteUsers>,
) -> HttpResult {
    let task_id = chat.delete_users(&session, b).await?;
    Ok(Reply::json(json!({"task_id": task_id})))
}

#[derive(Deserialize)]
struct RestoreBody {
    #[serde(default, deserialize_with = "crate::domain::ids::unique_ids")]
    user_ids: Vec<String>,
}

async fn restore_users(
    State(chat): State<Chat>,
    session: Session,
    Body(b): Body<RestoreBody>,
) -> HttpResult {
    chat.restore_users(&session, b.user_ids).await?;
    Ok(Reply::empty())
}

#[derive(Deserialize)]
struct GuestBody {
    user: Map<String, Value>,
}

/// Guests need only the api_key: the request may be anonymous.
async fn create_guest(
    State(chat): State<Chat>,
    session: Session,
    Body(b): Body<GuestBody>,
) -> HttpResult {
    // The Python SDK nests the user once more (`{"user": {"user": {...}}}`): accept both.
    let obj = match b.user.get("user") {
        Some(Value::Object(inner)) if !b.user.contains_key("id") => inner.clone(),
        _ => b.user,
    };
    let user = chat.create_guest(&session, obj).await?;
    let token = sign_user_token(
        &chat.keys.api_secret,
        &user.id,
        Some(chat.now().timestamp()),
    )?;
    Ok(Reply::json(
        json!({"access_token": token, "user": user.to_json()}),
    ))
}

async fn add_device(
    State(chat): State<Chat>,
    session: Session,
    Body(device): Body<crate::domain::device::NewDevice>,
) -> HttpResult {
    chat.add_device(&session, device).await?;
    Ok(Reply::empty())
}

async fn upsert_push_preferences(
    State(chat): State<Chat>,
    session: Session,
    Body(req): Body<crate::service::push_preferences::UpsertPushPreferences>,
) -> HttpResult {
    Ok(Reply::json(
        chat.upsert_push_preferences(&session, req).await?,
    ))
}

async fn list_devices(State(chat): State<Chat>, session: Session, params: Params) -> HttpResult {
    let user_id = params.get("user_id").map(str::to_string);
    Ok(Reply::json(chat.list_devices(&session, user_id).await?))
}

async fn remove_device(State(chat): State<Chat>, session: Session, params: Params) -> HttpResult {
    let id = params.get("id").unwrap_or("");
    let user_id = params.get("user_id").map(str::to_string);
    chat.remove_device(&session, id, user_id).await?;
    Ok(Reply::empty())
}
