//! Messages in a channel: send (regular and system messages, including the optional system
//! message of a channel change), the channel state's page of messages, and the effects of
//! truncating and deleting a channel on them.

use super::channels::{acting_user, channel_event, Loaded};
use super::{to_doc, Chat};
use crate::domain::caller::Session;
use crate::domain::channel::{Channel, Cid};
use crate::domain::clock::parse_time;
use crate::domain::ids::random_id;
use crate::domain::message::{Message, MessageAnchor, MessagePage};
use crate::domain::ApiError;
use crate::store::layout::{
    channel_item, channel_messages_pk, member_item, message_id_key, message_sk, outbox_write,
};
use crate::store::{Condition, Item, Query, SkRange, StoreError, TableName, Write};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Body of `POST /channels/{type}/{id}/message`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct SendMessage {
    pub message: Map<String, Value>,
    pub skip_push: bool,
}

/// Attempts at committing a message when concurrent writes to the channel keep winning.
const SEND_ATTEMPTS: usize = 5;

impl Chat {
    /// `POST /channels/{type}/{id}/message`.
    pub async fn send_message(
        &self,
        session: &Session,
        channel_type: &str,
        id: &str,
        req: SendMessage,
    ) -> Result<Value, ApiError> {
        let cid = Cid::new(channel_type, id)?.to_string();
        let config = self.channel_config(channel_type).await?;
        let loaded = self.require_channel(&cid).await?;
        self.check_readable(session, &config, &loaded)?;
        let payload_user = req
            .message
            .get("user_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let payload_user_obj = req.message.get("user").and_then(Value::as_object).cloned();
        let author = acting_user(session, &payload_user, &payload_user_obj)
            .ok_or_else(|| ApiError::field("message.user", "either message.user or message.user_id must be provided when sending a message with server-side auth"))?;
        let (user, _) = self
            .get_user(&author)
            .await?
            .ok_or_else(|| ApiError::input(format!("user {author:?} does not exist")))?;
        let message = Message::from_payload(
            &req.message,
            &cid,
            Some(author.clone()),
            random_id(),
            &self.now_str(),
        )?;
        let effective = loaded.channel.effective_config(&config, &[])?;
        if message.text.chars().count() > effective.max_message_length as usize {
            return Err(ApiError::field(
                "message.text",
                format!(
                    "message is too long: the limit is {} characters",
                    effective.max_message_length
                ),
            ));
        }
        if !session.caller.is_server() {
            self.check_channel_action(
                session,
                &config,
                Some(&loaded),
                &loaded.channel,
                "CreateMessage",
            )?;
            if message.kind == "system" {
                self.check_channel_action(
                    session,
                    &config,
                    Some(&loaded),
                    &loaded.channel,
                    "CreateSystemMessage",
                )?;
            }
            if loaded.channel.frozen
                && self
                    .check_channel_action(
                        session,
                        &config,
                        Some(&loaded),
                        &loaded.channel,
                        "UseFrozenChannel",
                    )
                    .is_err()
            {
                // Seed: sending to a frozen channel answers with a message of type error.
                let mut refused = message.to_wire(Some(&user.to_json()));
                refused["type"] = Value::String("error".into());
                refused["text"] =
                    Value::String("This channel is frozen: new messages are not allowed".into());
                return Ok(json!({ "message": refused }));
            }
        }
        let wire = self.post_message(loaded, message, &user.to_json()).await?;
        Ok(json!({ "message": wire }))
    }

    /// Stores a message with `message.new` and the channel's `last_message_at` / `message_count`
    /// in one transaction; members who hid the channel see it again. Retried when a concurrent
    /// change to the channel wins; a reused message id is refused.
    pub(crate) async fn post_message(
        &self,
        mut loaded: Loaded,
        message: Message,
        user: &Value,
    ) -> Result<Value, ApiError> {
        let cid = loaded.channel.cid.clone();
        let created = parse_time(&message.created_at).unwrap_or_else(|| self.now());
        let sk = message_sk(created, &message.id);
        let wire = message.to_wire(Some(user));
        for _ in 0..SEND_ATTEMPTS {
            let mut channel = loaded.channel.clone();
            if !message.silent || channel.last_message_at.is_none() {
                channel.last_message_at = Some(message.created_at.clone());
            }
            if let Some(n) = channel.message_count.as_mut() {
                *n += 1;
            }
            let (id_pk, id_sk) = message_id_key(&message.id);
            let pointer = json!({ "cid": cid, "sk": sk });
            let mut writes = vec![
                Write::Put {
                    table: TableName::Messages,
                    item: Item::new(id_pk, id_sk, pointer),
                    condition: Condition::NotExists,
                },
                Write::Put {
                    table: TableName::Messages,
                    item: Item::new(channel_messages_pk(&cid), sk.clone(), to_doc(&message)?),
                    condition: Condition::NotExists,
                },
                Write::Put {
                    table: TableName::Channels,
                    item: channel_item(
                        &cid,
                        &channel.channel_type,
                        to_doc(&channel)?,
                        loaded.version + 1,
                    ),
                    condition: Condition::Version(loaded.version),
                },
                outbox_write(
                    &channel_event("message.new", &channel, created)
                        .with("message", wire.clone())
                        .with("user", user.clone()),
                ),
            ];
            for m in loaded.members.iter().filter(|m| m.hidden) {
                let mut shown = m.clone();
                shown.hidden = false;
                writes.push(Write::Put {
                    table: TableName::Channels,
                    item: member_item(&cid, &m.user_id, to_doc(&shown)?),
                    condition: Condition::None,
                });
            }
            match self.store.transact(writes).await {
                Ok(()) => return Ok(wire),
                Err(StoreError::TransactionCanceled { index: Some(0) }) => {
                    return Err(ApiError::input(format!(
                        "a message with id {} already exists",
                        message.id
                    )));
                }
                Err(StoreError::TransactionCanceled { .. }) => {
                    if self
                        .store
                        .get(TableName::Messages, &message_id_key(&message.id).0, "id")
                        .await?
                        .is_some()
                    {
                        return Err(ApiError::input(format!(
                            "a message with id {} already exists",
                            message.id
                        )));
                    }
                    loaded = self.require_channel(&cid).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::input(format!(
            "channel {cid} is too busy; try again"
        )))
    }

    /// The optional system message of a channel change (`message` in update, members, truncate):
    /// stored as sent, authored by the acting user.
    pub(crate) async fn post_change_message(
        &self,
        cid: &str,
        payload: Option<&Value>,
        actor: Option<&str>,
    ) -> Result<Option<Value>, ApiError> {
        let Some(Value::Object(payload)) = payload else {
            return Ok(None);
        };
        let author = payload
            .get("user_id")
            .and_then(Value::as_str)
            .or_else(|| {
                payload
                    .get("user")
                    .and_then(|u| u.get("id"))
                    .and_then(Value::as_str)
            })
            .or(actor)
            .map(str::to_string);
        let user = match &author {
            Some(a) => self
                .get_user(a)
                .await?
                .map(|(u, _)| u.to_json())
                .ok_or_else(|| ApiError::input(format!("user {a:?} does not exist")))?,
            None => {
                return Err(ApiError::field(
                    "message.user_id",
                    "the message needs a user (message.user_id)",
                ))
            }
        };
        let mut message =
            Message::from_payload(payload, cid, author, random_id(), &self.now_str())?;
        if !payload.contains_key("type") {
            message.kind = "system".into();
        }
        let loaded = self.require_channel(cid).await?;
        Ok(Some(self.post_message(loaded, message, &user).await?))
    }

    /// The page of messages a channel state shows to `reader`, oldest first: only messages of
    /// the channel's current life (after a delete and recreate, after `truncated_at`) and after
    /// the reader's own history cutoff.
    pub(crate) async fn channel_messages(
        &self,
        channel: &Channel,
        reader_cutoff: Option<&str>,
        page: &MessagePage,
    ) -> Result<Vec<Message>, ApiError> {
        let pk = channel_messages_pk(&channel.cid);
        let floor = [
            Some(channel.created_at.as_str()),
            channel.truncated_at.as_deref(),
            reader_cutoff,
        ]
        .into_iter()
        .flatten()
        .filter_map(parse_time)
        .max();
        let floor_sk = floor.map(|t| format!("{:016}", t.timestamp_micros()));
        let visible =
            |m: &Message| floor.is_none_or(|f| parse_time(&m.created_at).is_none_or(|t| t >= f));
        let anchor_sk = |id: &str| {
            let id = id.to_string();
            async move {
                let (pk, sk) = message_id_key(&id);
                let item = self
                    .store
                    .get(TableName::Messages, &pk, &sk)
                    .await?
                    .ok_or_else(|| ApiError::not_found(format!("message {id} does not exist")))?;
                Ok::<String, ApiError>(item.data["sk"].as_str().unwrap_or_default().to_string())
            }
        };
        let read = |range: SkRange, forward: bool, limit: usize| {
            let pk = pk.clone();
            async move {
                let mut q = Query::new(TableName::Messages, pk)
                    .range(range)
                    .limit(limit);
                if !forward {
                    q = q.backward();
                }
                let page = self.store.query(q).await?;
                let mut out = Vec::new();
                for item in page.items {
                    let m: Message = serde_json::from_value(item.data).map_err(|e| {
                        ApiError::internal(format!("stored message is unreadable: {e}"))
                    })?;
                    out.push(m);
                }
                Ok::<Vec<Message>, ApiError>(out)
            }
        };
        let lower = |sk: Option<String>| match (sk, &floor_sk) {
            (Some(s), Some(f)) if &s < f => Some(f.clone()),
            (s, f) => s.or_else(|| f.clone()),
        };
        let mut messages = match &page.anchor {
            MessageAnchor::Latest => match lower(None) {
                Some(f) => read(SkRange::Ge(f), false, page.limit).await?,
                None => read(SkRange::All, false, page.limit).await?,
            },
            MessageAnchor::Before { id, inclusive } => {
                let sk = anchor_sk(id).await?;
                let range = if *inclusive {
                    SkRange::Le(sk)
                } else {
                    SkRange::Lt(sk)
                };
                read(range, false, page.limit).await?
            }
            MessageAnchor::After { id, inclusive } => {
                let sk = anchor_sk(id).await?;
                let range = if *inclusive {
                    SkRange::Ge(sk)
                } else {
                    SkRange::Gt(sk)
                };
                read(range, true, page.limit).await?
            }
            MessageAnchor::Around(id) => {
                let sk = anchor_sk(id).await?;
                let before = page.limit / 2;
                let mut older = read(SkRange::Lt(sk.clone()), false, before).await?;
                let newer =
                    read(SkRange::Ge(sk), true, page.limit - older.len().min(before)).await?;
                older.reverse();
                older.extend(newer);
                older.reverse();
                older
            }
        };
        messages.retain(visible);
        messages.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(messages)
    }

    /// Truncation with `hard_delete`: the messages before `before` are removed for good.
    pub(crate) async fn remove_messages_before(
        &self,
        cid: &str,
        before: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize, ApiError> {
        let pk = channel_messages_pk(cid);
        let end = format!("{:016}", before.timestamp_micros());
        let mut removed = 0;
        loop {
            let page = self
                .store
                .query(
                    Query::new(TableName::Messages, pk.clone())
                        .range(SkRange::Lt(end.clone()))
                        .limit(50),
                )
                .await?;
            if page.items.is_empty() {
                return Ok(removed);
            }
            let mut writes = Vec::new();
            for item in &page.items {
                if let Some(id) = item.data.get("id").and_then(Value::as_str) {
                    let (ipk, isk) = message_id_key(id);
                    writes.push(Write::Delete {
                        table: TableName::Messages,
                        pk: ipk,
                        sk: isk,
                        condition: Condition::None,
                    });
                }
                writes.push(Write::Delete {
                    table: TableName::Messages,
                    pk: pk.clone(),
                    sk: item.sk.clone(),
                    condition: Condition::None,
                });
            }
            removed += page.items.len();
            self.store.transact(writes).await?;
        }
    }
}
