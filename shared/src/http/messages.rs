//! Routes of the messages function: send a message into a channel, read one or several, update
//! (full and partial, pinning included) and delete; thread replies; reactions; read state;
//! search; threads.

use super::reply::{Body, HttpResult, Params, Reply};
use crate::domain::caller::Session;
use crate::service::messages::{DeleteMessageOptions, SendMessage};
use crate::service::reactions::SendReaction;
use crate::service::reads::{DeliveredRequest, ReadRequest};
use crate::service::Chat;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{Map, Value};

pub fn routes() -> Router<Chat> {
    Router::new()
        .route("/channels/{type}/{id}/message", post(send_message))
        .route("/channels/{type}/{id}/messages", get(get_messages))
        .route("/messages/{id}/replies", get(get_replies))
        .route("/search", get(search))
        .route("/og", get(link_preview))
        .route("/threads", post(query_threads))
        .route(
            "/threads/{id}",
            get(get_thread).patch(update_thread_partial),
        )
        .route(
            "/channels/{type}/{id}/pinned_messages",
            get(get_pinned_messages),
        )
        .route("/messages/{id}/undelete", post(undelete_message))
        .route("/messages/{id}/commit", post(commit_message))
        .route("/messages/{id}/action", post(message_action))
        .route("/messages/{id}/translate", post(translate_message))
        .route("/channels/{type}/{id}/read", post(mark_read))
        .route("/channels/{type}/{id}/unread", post(mark_unread))
        .route("/channels/read", post(mark_all_read))
        .route("/channels/delivered", post(mark_delivered))
        .route("/unread", get(unread_counts))
        .route("/unread_batch", post(unread_counts_batch))
        .route("/messages/{id}/reaction", post(send_reaction))
        .route(
            "/messages/{id}/reaction/{type}",
            axum::routing::delete(delete_reaction),
        )
        .route(
            "/messages/{id}/reactions",
            get(get_reactions).post(query_reactions),
        )
        .route(
            "/messages/{id}",
            get(get_message)
                .post(update_message)
                .put(update_message_partial)
                .delete(delete_message),
        )
}

async fn send_message(
    State(chat): State<Chat>,
    session: Session,
    Path((channel_type, id)): Path<(String, String)>,
    Body(req): Body<SendMessage>,
) -> HttpResult {
    Ok(Reply::json(
        chat.send_message(&session, &channel_type, &id, req).await?,
    ))
}

async fn get_messages(
    State(chat): State<Chat>,
    session: Session,
    Path((channel_type, id)): Path<(String, String)>,
    params: Params,
) -> HttpResult {
    let ids: Vec<String> = params
        .get("ids")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    Ok(Reply::json(
        chat.get_messages(&session, &channel_type, &id, &ids)
            .await?,
    ))
}

async fn get_message(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
    params: Params,
) -> HttpResult {
    let show = params.flag("show_deleted_message")?.unwrap_or(false);
    Ok(Reply::json(chat.get_message(&session, &id, show).await?))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UpdateBody {
    message: Map<String, Value>,
    skip_enrich_url: bool,
}

async fn update_message(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
    Body(b): Body<UpdateBody>,
) -> HttpResult {
    Ok(Reply::json(
        chat.update_message(&session, &id, b.message, b.skip_enrich_url)
            .await?,
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PartialBody {
    set: Map<String, Value>,
    unset: Vec<String>,
    user_id: Option<String>,
    user: Option<Map<String, Value>>,
    skip_enrich_url: bool,
}

impl PartialBody {
    /// `user_id`, or the `user: {id}` the Python SDK sends.
    fn acting_user_id(&self) -> Option<String> {
        self.user_id.clone().or_else(|| {
            self.user
                .as_ref()
                .and_then(|u| u.get("id"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
    }
}

async fn update_message_partial(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
    Body(b): Body<PartialBody>,
) -> HttpResult {
    let user_id = b.acting_user_id();
    Ok(Reply::json(
        chat.update_message_partial(&session, &id, b.set, b.unset, user_id, b.skip_enrich_url)
            .await?,
    ))
}

/// A DELETE body: only delete-for-me sends one (`delete_for_me`, `user: {id}`).
#[derive(Deserialize, Default)]
#[serde(default)]
struct DeleteBody {
    delete_for_me: bool,
    user: Option<Map<String, Value>>,
}

async fn delete_message(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
    params: Params,
    Body(b): Body<DeleteBody>,
) -> HttpResult {
    let body_user = b
        .user
        .as_ref()
        .and_then(|u| u.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let opts = DeleteMessageOptions {
        hard: params.flag("hard")?.unwrap_or(false),
        delete_for_me: b.delete_for_me || params.flag("delete_for_me")?.unwrap_or(false),
        deleted_by: body_user.or_else(|| params.get("deleted_by").map(str::to_string)),
    };
    Ok(Reply::json(chat.delete_message(&session, &id, opts).await?))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UndeleteBody {
    undeleted_by: Option<String>,
}

async fn undelete_message(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
    Body(b): Body<UndeleteBody>,
) -> HttpResult {
    Ok(Reply::json(
        chat.undelete_message(&session, &id, b.undeleted_by).await?,
    ))
}

async fn get_replies(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
    params: Params,
) -> HttpResult {
    // Query parameters as the page object a channel query sends in its body.
    let mut page = Map::new();
    for key in ["id_lt", "id_lte", "id_gt", "id_gte", "id_around"] {
        if let Some(v) = params.get(key) {
            page.insert(key.into(), Value::String(v.to_string()));
        }
    }
    if let Some(limit) = params.number("limit")? {
        page.insert("limit".into(), limit.into());
    }
    let page = crate::domain::message::MessagePage::parse(Some(&page))?;
    Ok(Reply::json(chat.get_replies(&session, &id, page).await?))
}

async fn send_reaction(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
    Body(req): Body<SendReaction>,
) -> HttpResult {
    Ok(Reply::json(chat.send_reaction(&session, &id, req).await?))
}

async fn delete_reaction(
    State(chat): State<Chat>,
    session: Session,
    Path((id, kind)): Path<(String, String)>,
    params: Params,
) -> HttpResult {
    let user_id = params.get("user_id").map(str::to_string);
    Ok(Reply::json(
        chat.delete_reaction(&session, &id, &kind, user_id).await?,
    ))
}

async fn get_reactions(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
    params: Params,
) -> HttpResult {
    Ok(Reply::json(
        chat.get_reactions(
            &session,
            &id,
            params.number("limit")?,
            params.number("offset")?,
        )
        .await?,
    ))
}

async fn mark_read(
    State(chat): State<Chat>,
    session: Session,
    Path((channel_type, id)): Path<(String, String)>,
    Body(req): Body<ReadRequest>,
) -> HttpResult {
    Ok(Reply::json(
        chat.mark_read(&session, &channel_type, &id, req).await?,
    ))
}

async fn mark_unread(
    State(chat): State<Chat>,
    session: Session,
    Path((channel_type, id)): Path<(String, String)>,
    Body(req): Body<ReadRequest>,
) -> HttpResult {
    Ok(Reply::json(
        chat.mark_unread(&session, &channel_type, &id, req).await?,
    ))
}

async fn mark_all_read(
    State(chat): State<Chat>,
    session: Session,
    Body(req): Body<ReadRequest>,
) -> HttpResult {
    Ok(Reply::json(chat.mark_all_read(&session, req).await?))
}

async fn mark_delivered(
    State(chat): State<Chat>,
    session: Session,
    params: Params,
    Body(mut req): Body<DeliveredRequest>,
) -> HttpResult {
    if req.user_id.is_none() {
        req.user_id = params.get("user_id").map(str::to_string);
    }
    Ok(Reply::json(chat.mark_delivered(&session, req).await?))
}

async fn unread_counts(State(chat): State<Chat>, session: Session, params: Params) -> HttpResult {
    Ok(Reply::json(
        chat.unread_counts(&session, params.get("user_id").map(str::to_string))
            .await?,
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UnreadBatchBody {
    #[serde(deserialize_with = "crate::domain::ids::unique_ids")]
    user_ids: Vec<String>,
}

async fn unread_counts_batch(
    State(chat): State<Chat>,
    session: Session,
    Body(b): Body<UnreadBatchBody>,
) -> HttpResult {
    Ok(Reply::json(
        chat.unread_counts_batch(&session, b.user_ids).await?,
    ))
}

async fn get_pinned_messages(
    State(chat): State<Chat>,
    session: Session,
    Path((channel_type, id)): Path<(String, String)>,
    params: Params,
) -> HttpResult {
    let payload: Map<String, Value> = params.payload()?;
    let page = crate::service::messages::PinnedPage::parse(&payload)?;
    Ok(Reply::json(
        chat.get_pinned_messages(&session, &channel_type, &id, page)
            .await?,
    ))
}

async fn commit_message(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
) -> HttpResult {
    Ok(Reply::json(chat.commit_message(&session, &id).await?))
}

/// `POST /messages/{id}/action`: a `/giphy` preview's send, shuffle or cancel.
async fn message_action(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
    Body(req): Body<crate::service::messages::MessageAction>,
) -> HttpResult {
    Ok(Reply::json(chat.message_action(&session, &id, req).await?))
}

async fn search(State(chat): State<Chat>, session: Session, params: Params) -> HttpResult {
    Ok(Reply::json(chat.search(&session, params.payload()?).await?))
}

async fn query_threads(
    State(chat): State<Chat>,
    session: Session,
    Body(q): Body<crate::service::threads::QueryThreads>,
) -> HttpResult {
    Ok(Reply::json(chat.query_threads(&session, q).await?))
}

async fn get_thread(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
    params: Params,
) -> HttpResult {
    let view = crate::service::threads::ThreadView::new(
        params.number("reply_limit")?,
        params.number("participant_limit")?,
    )?;
    Ok(Reply::json(
        chat.get_thread(
            &session,
            &id,
            view,
            params.get("user_id").map(str::to_string),
        )
        .await?,
    ))
}

async fn update_thread_partial(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
    Body(b): Body<PartialBody>,
) -> HttpResult {
    let user_id = b.acting_user_id();
    Ok(Reply::json(
        chat.update_thread_partial(&session, &id, b.set, b.unset, user_id)
            .await?,
    ))
}

async fn query_reactions(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
    Body(q): Body<crate::service::reactions::QueryReactions>,
) -> HttpResult {
    Ok(Reply::json(chat.query_reactions(&session, &id, q).await?))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TranslateBody {
    language: String,
}

async fn translate_message(
    State(chat): State<Chat>,
    session: Session,
    Path(id): Path<String>,
    Body(b): Body<TranslateBody>,
) -> HttpResult {
    Ok(Reply::json(
        chat.translate_message(&session, &id, &b.language).await?,
    ))
}

async fn link_preview(State(chat): State<Chat>, session: Session, params: Params) -> HttpResult {
    let url = params.get("url").unwrap_or("");
    Ok(Reply::json(chat.link_preview(&session, url).await?))
}
