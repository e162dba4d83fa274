//! Routes of the channels function: get-or-create and query a channel, update it and its
//! members, per-member state (hide, mute, archive, pin), truncate, delete, query channels and
//! query members.

use super::reply::{Body, HttpResult, Params, Reply};
use crate::domain::caller::Session;
use crate::service::channels::{ChannelQuery, ChannelUpdate, QueryChannels, TruncateRequest};
use crate::service::members::{ChannelMuteRequest, QueryMembers};
use crate::service::Chat;
use axum::extract::{Path, State};
use axum::routing::{get, patch, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{Map, Value};

pub fn routes() -> Router<Chat> {
    Router::new()
        .route("/channels", post(query_channels))
        .route("/channels/delete", post(delete_channels))
        .route("/channels/{type}/query", post(query_distinct_channel))
        .route("/channels/{type}/{id}/query", post(query_channel))
        .route(
            "/channels/{type}/{id}",
            post(update_channel)
                .patch(update_channel_partial)
                .delete(delete_channel),
        )
        .route("/channels/{type}/{id}/truncate", post(truncate_channel))
        .route("/channels/{type}/{id}/hide", post(hide_channel))
        .route("/channels/{type}/{id}/stop-watching", post(stop_watching))
        .route("/channels/{type}/{id}/event", post(send_event))
        .route("/channels/{type}/{id}/show", post(show_channel))
        .route(
            "/channels/{type}/{id}/member/{user_id}",
            patch(update_member_partial),
        )
        .route("/members", get(query_members))
        .route("/moderation/mute/channel", post(mute_channel))
        .route("/moderation/unmute/channel", post(unmute_channel))
}

async fn query_channel(
    State(chat): State<Chat>,
    session: Session,
    Path((channel_type, id)): Path<(String, String)>,
    Body(req): Body<ChannelQuery>,
) -> HttpResult {
    Ok(Reply::json(
        chat.get_or_create_channel(&session, &channel_type, Some(&id), req)
            .await?,
    ))
}

async fn query_distinct_channel(
    State(chat): State<Chat>,
    session: Session,
    Path(channel_type): Path<String>,
    Body(req): Body<ChannelQuery>,
) -> HttpResult {
    Ok(Reply::json(
        chat.get_or_create_channel(&session, &channel_type, None, req)
            .await?,
    ))
}

async fn update_channel(
    State(chat): State<Chat>,
    session: Session,
    Path((channel_type, id)): Path<(String, String)>,
    Body(req): Body<ChannelUpdate>,
) -> HttpResult {
    Ok(Reply::json(
        chat.update_channel(&session, &channel_type, &id, req)
            .await?,
    ))
}

/// `set` / `unset` of a partial update (channel or member).
#[derive(Deserialize)]
struct PartialBody {
    #[serde(default)]
    set: Option<Map<String, Value>>,
    #[serde(default)]
    unset: Option<Vec<String>>,
    #[serde(default)]
    user_id: Option<String>,
}

async fn update_channel_partial(
    State(chat): State<Chat>,
    session: Session,
    Path((channel_type, id)): Path<(String, String)>,
    Body(b): Body<PartialBody>,
) -> HttpResult {
    let actor = b
        .user_id
        .or_else(|| session.caller.user_id().map(str::to_string));
    let state = chat
        .update_channel_partial(
            &session,
            &channel_type,
            &id,
            b.set.unwrap_or_default(),
            b.unset.unwrap_or_default(),
            actor,
        )
        .await?;
    Ok(Reply::json(state))
}

async fn update_member_partial(
    State(chat): State<Chat>,
    session: Session,
    Path((channel_type, id, user_id)): Path<(String, String, String)>,
    Body(b): Body<PartialBody>,
) -> HttpResult {
    let member = chat
        .update_member_partial(
            &session,
            &channel_type,
            &id,
            &user_id,
            b.set.unwrap_or_default(),
            b.unset.unwrap_or_default(),
        )
        .await?;
    Ok(Reply::json(member))
}

async fn delete_channel(
    State(chat): State<Chat>,
    session: Session,
    Path((channel_type, id)): Path<(String, String)>,
    params: Params,
) -> HttpResult {
    let hard = params.flag("hard_delete")?.unwrap_or(false);
    Ok(Reply::json(
        chat.delete_channel(&session, &channel_type, &id, hard)
            .await?,
    ))
}

#[derive(Deserialize)]
struct DeleteChannelsBody {
    #[serde(default, deserialize_with = "crate::domain::ids::unique_ids")]
    cids: Vec<String>,
    #[serde(default)]
    hard_delete: bool,
}

async fn delete_channels(
    State(chat): State<Chat>,
    session: Session,
    Body(b): Body<DeleteChannelsBody>,
) -> HttpResult {
    Ok(Reply::json(
        chat.delete_channels(&session, b.cids, b.hard_delete)
            .await?,
    ))
}

async fn truncate_channel(
    State(chat): State<Chat>,
    session: Session,
    Path((channel_type, id)): Path<(String, String)>,
    Body(req): Body<TruncateRequest>,
) -> HttpResult {
    Ok(Reply::json(
        chat.truncate_channel(&session, &channel_type, &id, req)
            .await?,
    ))
}

#[derive(Deserialize)]
struct HideBody {
    #[serde(default)]
    clear_history: bool,
    #[serde(default)]
    user_id: Option<String>,
}

async fn hide_channel(
    State(chat): State<Chat>,
    session: Session,
    Path((channel_type, id)): Path<(String, String)>,
    Body(b): Body<HideBody>,
) -> HttpResult {
    Ok(Reply::json(
        chat.set_channel_hidden(
            &session,
            &channel_type,
            &id,
            true,
            b.clear_history,
            b.user_id,
        )
        .await?,
    ))
}

async fn show_channel(
    State(chat): State<Chat>,
    session: Session,
    Path((channel_type, id)): Path<(String, String)>,
    Body(b): Body<HideBody>,
) -> HttpResult {
    Ok(Reply::json(
        chat.set_channel_hidden(&session, &channel_type, &id, false, false, b.user_id)
            .await?,
    ))
}

async fn mute_channel(
    State(chat): State<Chat>,
    session: Session,
    Body(req): Body<ChannelMuteRequest>,
) -> HttpResult {
    Ok(Reply::json(chat.mute_channels(&session, req, true).await?))
}

async fn unmute_channel(
    State(chat): State<Chat>,
    session: Session,
    Body(req): Body<ChannelMuteRequest>,
) -> HttpResult {
    Ok(Reply::json(chat.mute_channels(&session, req, false).await?))
}

async fn query_members(State(chat): State<Chat>, session: Session, params: Params) -> HttpResult {
    let q: QueryMembers = params.payload()?;
    Ok(Reply::json(chat.query_members(&session, q).await?))
}

async fn query_channels(
    State(chat): State<Chat>,
    session: Session,
    Body(req): Body<QueryChannels>,
) -> HttpResult {
    Ok(Reply::json(chat.query_channels(&session, req).await?))
}

async fn stop_watching(
    State(chat): State<Chat>,
    session: Session,
    Path((channel_type, id)): Path<(String, String)>,
) -> HttpResult {
    Ok(Reply::json(
        chat.stop_watching_channel(&session, &channel_type, &id)
            .await?,
    ))
}

async fn send_event(
    State(chat): State<Chat>,
    session: Session,
    Path((channel_type, id)): Path<(String, String)>,
    Body(req): Body<crate::service::channels::SendEvent>,
) -> HttpResult {
    Ok(Reply::json(
        chat.send_channel_event(&session, &channel_type, &id, req)
            .await?,
    ))
}
