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

/// A message as stored, with where it lives.
pub(crate) struct StoredMessage {
    pub message: Message,
    pub pk: String,
    pub sk: String,
    pub version: u64,
}

/// Options of `DELETE /messages/{id}`.
#[derive(Clone, Debug, Default)]
pub struct DeleteMessageOptions {
    pub hard: bool,
    /// Server-side: who deleted it (recorded on the event).
    pub deleted_by: Option<String>,
}

impl Chat {
    /// The message with this id, through its id record.
    pub(crate) async fn find_message(&self, id: &str) -> Result<Option<StoredMessage>, ApiError> {
        let (pk, sk) = message_id_key(id);
        let Some(pointer) = self.store.get(TableName::Messages, &pk, &sk).await? else {
            return Ok(None);
        };
        let cid = pointer.data["cid"].as_str().unwrap_or_default().to_string();
        let sk = pointer.data["sk"].as_str().unwrap_or_default().to_string();
        let pk = channel_messages_pk(&cid);
        let Some(item) = self.store.get(TableName::Messages, &pk, &sk).await? else {
            return Ok(None);
        };
        let message: Message = serde_json::from_value(item.data)
            .map_err(|e| ApiError::internal(format!("stored message is unreadable: {e}")))?;
        Ok(Some(StoredMessage {
            message,
            pk,
            sk,
            version: item.version,
        }))
    }

    async fn require_message(&self, id: &str) -> Result<StoredMessage, ApiError> {
        self.find_message(id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("message with id {id} does not exist")))
    }

    /// The message's channel, readable by the caller (and the channel type's config).
    async fn message_channel(
        &self,
        session: &Session,
        m: &Message,
    ) -> Result<(crate::domain::channel_type::ChannelTypeConfig, Loaded), ApiError> {
        let cid = Cid::parse(&m.cid)?;
        let config = self.channel_config(&cid.channel_type).await?;
        let loaded = self.require_channel(&m.cid).await?;
        self.check_readable(session, &config, &loaded)?;
        Ok((config, loaded))
    }

    async fn message_wire(&self, m: &Message, show_deleted_text: bool) -> Result<Value, ApiError> {
        let ids: Vec<&str> = m
            .user_id
            .iter()
            .chain(m.pinned_by_id.iter())
            .map(String::as_str)
            .collect();
        let users = self.users_by_id(&ids).await?;
        let user = m.user_id.as_deref().map(|id| {
            users
                .get(id)
                .map(|(u, _)| u.to_json())
                .unwrap_or_else(|| json!({ "id": id }))
        });
        let mut wire = m.to_wire(user.as_ref());
        if let Some((u, _)) = m.pinned_by_id.as_deref().and_then(|id| users.get(id)) {
            wire["pinned_by"] = u.to_json();
        }
        if show_deleted_text {
            wire["text"] = Value::String(m.text.clone());
        }
        Ok(wire)
    }

    /// `GET /messages/{id}`; a deleted message keeps its text only server-side with
    /// `show_deleted_message`.
    pub async fn get_message(
        &self,
        session: &Session,
        id: &str,
        show_deleted_message: bool,
    ) -> Result<Value, ApiError> {
        let stored = self.require_message(id).await?;
        self.message_channel(session, &stored.message).await?;
        let show = show_deleted_message && session.caller.is_server();
        Ok(json!({ "message": self.message_wire(&stored.message, show).await? }))
    }

    /// `GET /channels/{type}/{id}/messages?ids=`: the channel's messages with those ids, in the
    /// order asked; ids of other channels or of no message are left out.
    pub async fn get_messages(
        &self,
        session: &Session,
        channel_type: &str,
        id: &str,
        ids: &[String],
    ) -> Result<Value, ApiError> {
        let cid = Cid::new(channel_type, id)?.to_string();
        let config = self.channel_config(channel_type).await?;
        let loaded = self.require_channel(&cid).await?;
        self.check_readable(session, &config, &loaded)?;
        let mut out = Vec::new();
        for mid in ids {
            if let Some(stored) = self.find_message(mid).await? {
                if stored.message.cid == cid {
                    out.push(self.message_wire(&stored.message, false).await?);
                }
            }
        }
        Ok(json!({ "messages": out }))
    }

    /// Commits a changed message under its version with `event`.
    async fn save_message(
        &self,
        stored: &StoredMessage,
        next: &Message,
        channel: &Channel,
        event_kind: &str,
        extra: &[(&str, Value)],
    ) -> Result<Value, ApiError> {
        let wire = self.message_wire(next, false).await?;
        let mut event =
            channel_event(event_kind, channel, self.now()).with("message", wire.clone());
        if let Some(u) = wire.get("user") {
            event = event.with("user", u.clone());
        }
        for (k, v) in extra {
            event = event.with(k, v.clone());
        }
        let mut item = Item::new(stored.pk.clone(), stored.sk.clone(), to_doc(next)?);
        item.version = stored.version + 1;
        let writes = vec![
            Write::Put {
                table: TableName::Messages,
                item,
                condition: Condition::Version(stored.version),
            },
            outbox_write(&event),
        ];
        match self.store.transact(writes).await {
            Ok(()) => Ok(wire),
            Err(StoreError::TransactionCanceled { .. }) => Err(ApiError::input(format!(
                "message {} was changed concurrently; try again",
                next.id
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Update permission: the author with `UpdateMessage` on their own message, or a role that
    /// may update any message.
    fn check_message_action(
        &self,
        session: &Session,
        config: &crate::domain::channel_type::ChannelTypeConfig,
        loaded: &Loaded,
        m: &Message,
        action: &str,
    ) -> Result<(), ApiError> {
        self.check_action_on(
            session,
            config,
            Some(loaded),
            &loaded.channel,
            action,
            m.user_id.as_deref(),
        )
    }

    /// `POST /messages/{id}`: full update of text and custom data.
    pub async fn update_message(
        &self,
        session: &Session,
        id: &str,
        payload: Map<String, Value>,
    ) -> Result<Value, ApiError> {
        let stored = self.require_message(id).await?;
        let (config, loaded) = self.message_channel(session, &stored.message).await?;
        self.check_message_action(session, &config, &loaded, &stored.message, "UpdateMessage")?;
        if stored.message.kind == "deleted" {
            return Err(ApiError::input(format!(
                "message {id} was deleted and cannot be updated"
            )));
        }
        let next = stored
            .message
            .apply_full_update(&payload, &self.now_str())?;
        self.check_text_length(&config, &loaded, &next)?;
        let wire = self
            .save_message(&stored, &next, &loaded.channel, "message.updated", &[])
            .await?;
        Ok(json!({ "message": wire }))
    }

    /// `PUT /messages/{id}`: `set` / `unset`, pinning included.
    pub async fn update_message_partial(
        &self,
        session: &Session,
        id: &str,
        set: Map<String, Value>,
        unset: Vec<String>,
        user_id: Option<String>,
    ) -> Result<Value, ApiError> {
        let stored = self.require_message(id).await?;
        let (config, loaded) = self.message_channel(session, &stored.message).await?;
        let pinning = set.contains_key("pinned")
            || set.contains_key("pin_expires")
            || unset.iter().any(|u| u == "pinned" || u == "pin_expires");
        let other = set
            .keys()
            .chain(unset.iter())
            .any(|k| k != "pinned" && k != "pin_expires");
        if pinning {
            self.check_message_action(session, &config, &loaded, &stored.message, "PinMessage")?;
        }
        if other {
            self.check_message_action(session, &config, &loaded, &stored.message, "UpdateMessage")?;
        }
        if stored.message.kind == "deleted" {
            return Err(ApiError::input(format!(
                "message {id} was deleted and cannot be updated"
            )));
        }
        let actor = acting_user(session, &user_id, &None);
        let next = stored
            .message
            .apply_partial(&set, &unset, actor.as_deref(), self.now())?;
        self.check_text_length(&config, &loaded, &next)?;
        let wire = self
            .save_message(&stored, &next, &loaded.channel, "message.updated", &[])
            .await?;
        Ok(json!({ "message": wire }))
    }

    fn check_text_length(
        &self,
        config: &crate::domain::channel_type::ChannelTypeConfig,
        loaded: &Loaded,
        m: &Message,
    ) -> Result<(), ApiError> {
        let max = loaded
            .channel
            .effective_config(config, &[])?
            .max_message_length as usize;
        if m.text.chars().count() > max {
            return Err(ApiError::field(
                "message.text",
                format!("message is too long: the limit is {max} characters"),
            ));
        }
        Ok(())
    }

    /// `DELETE /messages/{id}`: soft (type `deleted`, kept in place) or hard (the message and its
    /// id record removed); `message.deleted` either way.
    pub async fn delete_message(
        &self,
        session: &Session,
        id: &str,
        opts: DeleteMessageOptions,
    ) -> Result<Value, ApiError> {
        let stored = self.require_message(id).await?;
        let (config, loaded) = self.message_channel(session, &stored.message).await?;
        self.check_message_action(session, &config, &loaded, &stored.message, "DeleteMessage")?;
        let deleted = stored.message.soft_deleted(&self.now_str());
        let mut extra = vec![("hard_delete", Value::Bool(opts.hard))];
        let by = opts
            .deleted_by
            .clone()
            .filter(|_| session.caller.is_server())
            .or_else(|| session.caller.user_id().map(str::to_string));
        if let Some(by) = &by {
            extra.push(("deleted_by", json!({ "id": by })));
        }
        if !opts.hard {
            let wire = self
                .save_message(
                    &stored,
                    &deleted,
                    &loaded.channel,
                    "message.deleted",
                    &extra,
                )
                .await?;
            return Ok(json!({ "message": wire }));
        }
        let wire = self.message_wire(&deleted, false).await?;
        let mut event = channel_event("message.deleted", &loaded.channel, self.now())
            .with("message", wire.clone());
        for (k, v) in extra {
            event = event.with(k, v);
        }
        let (ipk, isk) = message_id_key(id);
        self.store
            .transact(vec![
                Write::Delete {
                    table: TableName::Messages,
                    pk: stored.pk.clone(),
                    sk: stored.sk.clone(),
                    condition: Condition::Version(stored.version),
                },
                Write::Delete {
                    table: TableName::Messages,
                    pk: ipk,
                    sk: isk,
                    condition: Condition::None,
                },
                outbox_write(&event),
            ])
            .await?;
        Ok(json!({ "message": wire }))
    }
}
