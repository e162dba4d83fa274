//! Messages in a channel: send (regular and system messages, including the optional system
//! message of a channel change), the channel state's page of messages, and the effects of
//! truncating and deleting a channel on them.

use super::channels::{acting_user, channel_event, Loaded};
use super::members::member_put;
use super::{contention_pause, CONTENDED_ATTEMPTS};
use super::{to_doc, Chat};
use crate::domain::caller::Session;
use crate::domain::channel::{Channel, Cid};
use crate::domain::clock::parse_time;
use crate::domain::event::Event;
use crate::domain::ids::random_id;
use crate::domain::message::{Message, MessageAnchor, MessagePage, Viewer};
use crate::domain::ApiError;
use crate::store::layout::{
    channel_item, channel_messages_pk, cooldown_pk, deleted_for_me_pk, deleted_for_pk,
    message_id_key, message_sk, outbox_write, pending_pk, pinned_pk, pinned_sk, reactions_pk,
    replies_pk,
};
use crate::store::{
    Condition, Index, Item, Query, SkRange, StoreError, TableName, Write, MAX_TRANSACTION_WRITES,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Body of `POST /channels/{type}/{id}/message`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct SendMessage {
    pub message: Map<String, Value>,
    pub skip_push: bool,
    /// Server-side: hold the message for review (overrides the type's `mark_messages_pending`).
    pub pending: Option<bool>,
    pub pending_message_metadata: Map<String, Value>,
}

impl Chat {
    /// `POST /channels/{type}/{id}/message`.
    pub async fn send_message(
        &self,
        session: &Session,
        channel_type: &str,
        id: &str,
        req: SendMessage,
    ) -> Result<Value, ApiError> {
        if req.message.is_empty() {
            return Err(ApiError::field(
                "message",
                "message is required: send {\"message\": {\"text\": ...}}",
            ));
        }
        let (cid, config, loaded) = self.readable_channel(session, channel_type, id).await?;
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
        let mut message = Message::from_payload(
            &req.message,
            &cid,
            Some(author.clone()),
            random_id(),
            &self.now_str(),
        )?;
        if req.message.get("pinned").and_then(Value::as_bool) == Some(true) {
            message.pin(Some(&author), req.message.get("pin_expires"), self.now())?;
        }
        if message.pinned && !message.restricted_visibility.is_empty() {
            return Err(ApiError::field(
                "message.pinned",
                "a message with restricted visibility cannot be pinned",
            ));
        }
        let effective = loaded.channel.effective_config(&config, &[])?;
        if req.pending.is_some() {
            session.caller.require_server("sending pending messages")?;
        }
        if req.pending.unwrap_or(effective.mark_messages_pending) {
            message.pending = true;
            message.pending_message_metadata = req.pending_message_metadata.clone();
            message.pending_expires_at = session
                .settings
                .event_hooks
                .iter()
                .filter(|h| h.enabled && h.hook_type == "pending_message")
                .filter_map(|h| h.fields.get("timeout_ms").and_then(Value::as_i64))
                .max()
                .and_then(chrono::Duration::try_milliseconds)
                .and_then(|d| self.now().checked_add_signed(d))
                .map(crate::domain::clock::format_time);
        }
        self.check_message_links(&effective, &cid, &message).await?;
        if effective.url_enrichment {
            message.enrich_url = crate::domain::message::first_url(&message.text);
        }
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
            let needs = [
                (!message.attachments.is_empty(), "CreateAttachment"),
                (!message.mentioned_user_ids.is_empty(), "CreateMention"),
                (has_link(&message.text), "AddLinks"),
                (message.pinned, "PinMessage"),
                (
                    !message.restricted_visibility.is_empty(),
                    "CreateRestrictedVisibilityMessage",
                ),
            ];
            for (needed, action) in needs {
                if needed {
                    self.check_channel_action(
                        session,
                        &config,
                        Some(&loaded),
                        &loaded.channel,
                        action,
                    )?;
                }
            }
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
        let slow_mode = self
            .slow_mode_write(session, &config, &loaded, &author, &message.created_at)
            .await?;
        self.auto_translate(session, &loaded, &mut message).await;
        let answered = match (
            session.settings.user_response_time_enabled,
            &loaded.channel.last_message_id,
        ) {
            (true, Some(last)) if message.in_channel_list() => self.find_message(last).await?,
            _ => None,
        };
        let answered_at = message.created_at.clone();
        let wire = self
            .post_message(
                loaded,
                message,
                &user.to_json(),
                slow_mode.into_iter().collect(),
                None,
            )
            .await?;
        if let Some(previous) = answered {
            self.record_response_time(&session.settings, &author, &previous.message, &answered_at)
                .await?;
        }
        Ok(json!({ "message": wire }))
    }

    /// `user_response_time_enabled`: a message that answers someone else's (the channel's
    /// previous message) counts its delay into the author's `avg_response_time` (seconds). The
    /// user is rewritten under its version, retried when a concurrent change wins.
    async fn record_response_time(
        &self,
        settings: &crate::domain::app_settings::AppSettings,
        author: &str,
        previous: &Message,
        answered_at: &str,
    ) -> Result<(), ApiError> {
        if previous.user_id.as_deref() == Some(author) {
            return Ok(());
        }
        let (Some(asked), Some(answered)) =
            (parse_time(&previous.created_at), parse_time(answered_at))
        else {
            return Ok(());
        };
        let seconds = (answered - asked).num_seconds().max(0) as u64;
        for attempt in 1..=CONTENDED_ATTEMPTS {
            let Some((old, version)) = self.get_user(author).await? else {
                return Ok(());
            };
            let mut next = old.clone();
            next.record_response_time(seconds);
            match self
                .save_user(settings, Some((&old, version)), &next, Vec::new())
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) if e.code == crate::domain::ErrorCode::Input => {
                    contention_pause(attempt).await
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Stores a message with `message.new` and the channel's `last_message_at` / `message_count`
    /// in one transaction; members who hid the channel see it again. Retried when a concurrent
    /// change to the channel wins; a reused message id is refused.
    pub(crate) async fn post_message(
        &self,
        mut loaded: Loaded,
        message: Message,
        user: &Value,
        extra: Vec<Write>,
        commit_of: Option<&StoredMessage>,
    ) -> Result<Value, ApiError> {
        let cid = loaded.channel.cid.clone();
        let created = parse_time(&message.created_at).unwrap_or_else(|| self.now());
        let sk = message_sk(created, &message.id);
        let mut wire = self
            .messages_wire(std::slice::from_ref(&message), None)
            .await?
            .remove(0);
        wire["user"] = user.clone();
        if message.pending {
            // Pending: stored for its sender only; nothing else of the channel changes until
            // it is committed.
            let (id_pk, id_sk) = message_id_key(&message.id);
            let pointer = json!({ "cid": cid, "sk": sk, "pk": message_pk(&message) });
            let mut writes = vec![
                Write::Put {
                    table: TableName::Messages,
                    item: Item::new(id_pk, id_sk, pointer),
                    condition: Condition::NotExists,
                },
                Write::Put {
                    table: TableName::Messages,
                    item: message_item(&message, &sk)?,
                    condition: Condition::NotExists,
                },
            ];
            // Its sender's connections hear of it (`message.new` scoped to the sender); the
            // channel's watchers only once it is committed.
            let mut event = channel_event("message.new", &loaded.channel, self.now())
                .with("message", wire.clone())
                .with("user", user.clone());
            event.scope = format!("user:{}", message.user_id.clone().unwrap_or_default());
            writes.push(outbox_write(&event));
            writes.extend(extra);
            return match self.store.transact(writes).await {
                Ok(()) => Ok(wire),
                Err(StoreError::TransactionCanceled { .. }) => Err(ApiError::input(format!(
                    "a message with id {} already exists",
                    message.id
                ))),
                Err(e) => Err(e.into()),
            };
        }
        // `skip_last_msg_update_for_system_msgs`: system messages leave `last_message_at` alone.
        let keeps_last_message_at = message.kind == "system" && {
            match self.channel_type(&loaded.channel.channel_type).await? {
                Some((config, _)) => {
                    loaded
                        .channel
                        .effective_config(&config, &[])?
                        .skip_last_msg_update_for_system_msgs
                }
                None => false,
            }
        };
        // Sends into this channel from this process take turns (see `writers`); the channel as
        // read before the turn may be stale, so it is read again once the turn comes.
        let (_turn, waited) = self.writers.turn(&cid).await;
        if waited {
            loaded = self.require_channel(&cid).await?;
        }
        for attempt in 1..=CONTENDED_ATTEMPTS {
            let mut channel = loaded.channel.clone();
            let mut message = message.clone();
            // Stamped at this attempt, after the channel's newest message: sends to a channel
            // commit one at a time (each is conditioned on the channel item), so time order is
            // commit order and a reader paging by time never skips a message committed later.
            // A committed pending message keeps the time it was sent.
            let (created, sk) = if commit_of.is_none() {
                let floor = channel
                    .newest_message_at
                    .as_deref()
                    .and_then(parse_time)
                    .map(|t| t + chrono::Duration::microseconds(1));
                let at = floor.map_or(self.now(), |f| f.max(self.now()));
                let stamp = crate::domain::clock::format_time(at);
                if message.updated_at == message.created_at {
                    message.updated_at = stamp.clone();
                }
                message.created_at = stamp;
                wire["created_at"] = Value::String(message.created_at.clone());
                wire["updated_at"] = Value::String(message.updated_at.clone());
                (at, message_sk(at, &message.id))
            } else {
                (created, sk.clone())
            };
            if channel.newest_message_at.as_deref().and_then(parse_time) < Some(created) {
                channel.newest_message_at = Some(message.created_at.clone());
            }
            if !keeps_last_message_at && (!message.silent || channel.last_message_at.is_none()) {
                channel.last_message_at = Some(message.created_at.clone());
            }
            if message.in_channel_list() {
                channel.last_message_id = Some(message.id.clone());
            }
            if message.counts_as_unread() {
                channel.counted_messages += 1;
                message.seq = Some(channel.counted_messages);
            }
            if let Some(n) = channel.message_count.as_mut() {
                *n += 1;
            }
            let (id_pk, id_sk) = message_id_key(&message.id);
            let pointer = json!({ "cid": cid, "sk": sk });
            // A committed pending message moves from its sender's partition; its id is already
            // claimed.
            let claim = if commit_of.is_some() {
                Condition::Exists
            } else {
                Condition::NotExists
            };
            let mut writes = vec![
                Write::Put {
                    table: TableName::Messages,
                    item: Item::new(id_pk, id_sk, pointer),
                    condition: claim,
                },
                Write::Put {
                    table: TableName::Messages,
                    item: message_item(&message, &sk)?,
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
                outbox_write(&new_message_event(&channel, created, &wire, user)),
            ];
            // A reply counts on its parent (committed with it, so the count never drifts), and
            // the parent's `message.updated` (new `reply_count`, `thread_participants`) is what
            // clients update "N replies" from.
            if let Some(parent_id) = &message.parent_id {
                let parent = self.require_message(parent_id).await?;
                let mut counted = parent.message.clone();
                counted.reply_count += 1;
                writes.push(message_write(&parent, &counted)?);
                let (thread_writes, participants) =
                    self.thread_reply_writes(&counted, &message).await?;
                writes.extend(thread_writes);
                writes.push(outbox_write(
                    &self
                        .parent_updated_event(&channel, &counted, &participants, created)
                        .await?,
                ));
            }
            writes.extend(extra.iter().cloned());
            if let Some(old) = commit_of {
                writes.push(Write::Delete {
                    table: TableName::Messages,
                    pk: old.pk.clone(),
                    sk: old.sk.clone(),
                    condition: Condition::Version(old.version),
                });
            }
            // The sender has read their own message; members who hid the channel see it again
            // (`channel.visible` to each).
            let mut member_writes = Vec::new();
            for m in &loaded.members {
                let is_sender = message.user_id.as_deref() == Some(m.user_id.as_str())
                    && message.in_channel_list();
                if !is_sender && !m.hidden {
                    continue;
                }
                let mut next = m.clone();
                next.hidden = false;
                if is_sender {
                    next.read.read_seq = channel.counted_messages;
                    next.read.last_read = Some(message.created_at.clone());
                    next.read.last_read_message_id = Some(message.id.clone());
                }
                member_writes.push(member_put(&cid, &next)?);
                if m.hidden {
                    member_writes.push(outbox_write(&channel_visible_event(
                        &channel, &m.user_id, created,
                    )));
                }
            }
            let room = MAX_TRANSACTION_WRITES.saturating_sub(writes.len());
            // Members beyond one transaction follow it: they still never recreate a member
            // removed meanwhile (`Exists`), though a concurrent change to them may be overwritten.
            let later: Vec<Write> = member_writes
                .split_off(member_writes.len().min(room))
                .into_iter()
                .map(|w| match w {
                    Write::Put {
                        table,
                        item,
                        condition: Condition::Version(_),
                    } => Write::Put {
                        table,
                        item,
                        condition: Condition::Exists,
                    },
                    other => other,
                })
                .collect();
            writes.extend(member_writes);
            match self.store.transact(writes).await {
                Ok(()) => {
                    for batch in later.chunks(MAX_TRANSACTION_WRITES) {
                        match self.store.transact(batch.to_vec()).await {
                            Ok(()) | Err(StoreError::TransactionCanceled { .. }) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                    return Ok(wire);
                }
                Err(StoreError::TransactionCanceled { index: Some(0) }) if commit_of.is_none() => {
                    return Err(ApiError::input(format!(
                        "a message with id {} already exists",
                        message.id
                    )));
                }
                Err(StoreError::TransactionCanceled { .. }) => {
                    if commit_of.is_none()
                        && self
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
                    contention_pause(attempt).await;
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
        Ok(Some(
            self.post_message(loaded, message, &user, Vec::new(), None)
                .await?,
        ))
    }

    /// The page of messages a channel state shows to `reader`, oldest first: only messages of
    /// the channel's current life (after a delete and recreate, after `truncated_at`), after the
    /// reader's own history cutoff, and not thread-only replies.
    pub(crate) async fn channel_messages(
        &self,
        channel: &Channel,
        reader_cutoff: Option<&str>,
        page: &MessagePage,
        viewer: &Viewer<'_>,
    ) -> Result<Vec<Message>, ApiError> {
        let floor = channel.messages_floor(reader_cutoff);
        let source = MessageSource {
            pk: channel_messages_pk(&channel.cid),
            index: None,
            floor,
        };
        self.page_messages(&source, page, &|m: &Message| {
            m.in_channel_list() && m.visible_to(viewer)
        })
        .await
    }

    /// The reader's own pending messages in a channel (the 100 newest, oldest first).
    pub(crate) async fn pending_messages(
        &self,
        cid: &str,
        reader: Option<&str>,
    ) -> Result<Vec<Message>, ApiError> {
        let Some(reader) = reader else {
            return Ok(Vec::new());
        };
        let page = self
            .store
            .query(
                Query::new(TableName::Messages, pending_pk(cid, reader))
                    .backward()
                    .limit(100),
            )
            .await?;
        let mut out: Vec<Message> = page
            .items
            .into_iter()
            .map(|i| {
                serde_json::from_value(i.data)
                    .map_err(|e| ApiError::internal(format!("stored message is unreadable: {e}")))
            })
            .collect::<Result<_, _>>()?;
        out.reverse();
        Ok(out)
    }

    /// A page of `source` around `page.anchor`, of up to `page.limit` messages that `keep`
    /// accepts, oldest first. Pages are read until enough are kept or the source runs out (or,
    /// reading backwards, until the floor).
    async fn page_messages(
        &self,
        source: &MessageSource,
        page: &MessagePage,
        keep: &(dyn Fn(&Message) -> bool + Sync),
    ) -> Result<Vec<Message>, ApiError> {
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
        let floor_sk = source
            .floor
            .map(|t| format!("{:016}", t.timestamp_micros()));
        let mut out = match &page.anchor {
            MessageAnchor::Latest => {
                let range = floor_sk.clone().map(SkRange::Ge).unwrap_or(SkRange::All);
                self.read_messages(source, range, false, page.limit, keep)
                    .await?
            }
            MessageAnchor::Before { id, inclusive } => {
                let sk = anchor_sk(id).await?;
                let range = if *inclusive {
                    SkRange::Le(sk)
                } else {
                    SkRange::Lt(sk)
                };
                self.read_messages(source, range, false, page.limit, keep)
                    .await?
            }
            MessageAnchor::After { id, inclusive } => {
                let sk = anchor_sk(id).await?;
                let range = if *inclusive {
                    SkRange::Ge(sk)
                } else {
                    SkRange::Gt(sk)
                };
                self.read_messages(source, range, true, page.limit, keep)
                    .await?
            }
            MessageAnchor::Around(id) => {
                let sk = anchor_sk(id).await?;
                let before = page.limit / 2;
                let mut older = self
                    .read_messages(source, SkRange::Lt(sk.clone()), false, before, keep)
                    .await?;
                let newer = self
                    .read_messages(
                        source,
                        SkRange::Ge(sk),
                        true,
                        page.limit - older.len(),
                        keep,
                    )
                    .await?;
                older.extend(newer);
                older
            }
        };
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Up to `limit` messages of `source` in `range` that are above the floor and kept.
    async fn read_messages(
        &self,
        source: &MessageSource,
        range: SkRange,
        forward: bool,
        limit: usize,
        keep: &(dyn Fn(&Message) -> bool + Sync),
    ) -> Result<Vec<Message>, ApiError> {
        let mut out = Vec::new();
        let mut cursor = None;
        while out.len() < limit {
            let mut q = Query::new(TableName::Messages, source.pk.clone())
                .range(range.clone())
                .limit(limit.max(25))
                .start_after(cursor);
            if let Some(index) = source.index {
                q = q.index(index);
            }
            if !forward {
                q = q.backward();
            }
            let batch = self.store.query(q).await?;
            for item in batch.items {
                let m: Message = serde_json::from_value(item.data).map_err(|e| {
                    ApiError::internal(format!("stored message is unreadable: {e}"))
                })?;
                let above_floor = source
                    .floor
                    .is_none_or(|f| parse_time(&m.created_at).is_none_or(|t| t >= f));
                if !above_floor && !forward {
                    return Ok(out);
                }
                if above_floor && keep(&m) && out.len() < limit {
                    out.push(m);
                }
            }
            match batch.last {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(out)
    }

    /// `GET /messages/{id}/replies`: the thread's latest replies (or those around the `id_*`
    /// anchor), oldest first.
    pub async fn get_replies(
        &self,
        session: &Session,
        parent_id: &str,
        page: MessagePage,
    ) -> Result<Value, ApiError> {
        let parent = self.require_message(parent_id).await?;
        let (config, loaded) = self.message_channel(session, &parent.message).await?;
        let reader = session.caller.user_id();
        let viewer = self.viewer(session, &config, &loaded, reader).await?;
        let replies = self
            .thread_replies(
                parent_id,
                &page,
                loaded.channel.messages_floor(None),
                &viewer,
            )
            .await?;
        let mut wires = self.messages_wire(&replies, reader).await?;
        self.as_seen_by(&parent.message.cid, session.caller.user_id(), &mut wires)
            .await?;
        Ok(json!({ "messages": wires }))
    }

    /// A page of a thread's replies that `viewer` may see, oldest first.
    pub(crate) async fn thread_replies(
        &self,
        parent_id: &str,
        page: &MessagePage,
        floor: Option<chrono::DateTime<chrono::Utc>>,
        viewer: &Viewer<'_>,
    ) -> Result<Vec<Message>, ApiError> {
        let source = MessageSource {
            pk: replies_pk(parent_id),
            index: Some(Index::Gsi1),
            floor,
        };
        self.page_messages(&source, page, &|m: &Message| m.visible_to(viewer))
            .await
    }

    /// A channel's pinned messages (pins still in force, of the channel's current life) in pin
    /// order, from the `gsi2` listing.
    pub(crate) async fn pinned_messages(
        &self,
        channel: &Channel,
        page: &PinnedPage,
        viewer: &Viewer<'_>,
    ) -> Result<Vec<Message>, ApiError> {
        let range = match &page.anchor {
            PinnedAnchor::None => SkRange::All,
            PinnedAnchor::Message { id, op } => {
                let stored = self.require_message(id).await?;
                let at = stored
                    .message
                    .pinned_at
                    .as_deref()
                    .and_then(parse_time)
                    .ok_or_else(|| ApiError::field("id", format!("message {id} is not pinned")))?;
                op.range(pinned_sk(at, id))
            }
            PinnedAnchor::Time { at, op } => op.range(format!("{:016}", at.timestamp_micros())),
        };
        let floor = channel.messages_floor(None);
        let now = self.now();
        let mut out = Vec::new();
        let mut skipped = 0;
        let mut cursor = None;
        while out.len() < page.limit {
            let mut q = Query::new(TableName::Messages, pinned_pk(&channel.cid))
                .index(Index::Gsi2)
                .range(range.clone())
                .limit(page.limit.max(25))
                .start_after(cursor);
            if page.descending {
                q = q.backward();
            }
            let batch = self.store.query(q).await?;
            for item in batch.items {
                let m: Message = serde_json::from_value(item.data).map_err(|e| {
                    ApiError::internal(format!("stored message is unreadable: {e}"))
                })?;
                let live = floor.is_none_or(|f| parse_time(&m.created_at).is_none_or(|t| t >= f));
                if !live || !pinned_now(&m, now) || m.kind == "deleted" || !m.visible_to(viewer) {
                    continue;
                }
                if skipped < page.offset {
                    skipped += 1;
                    continue;
                }
                if out.len() < page.limit {
                    out.push(m);
                }
            }
            match batch.last {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(out)
    }

    /// `GET /channels/{type}/{id}/pinned_messages`.
    pub async fn get_pinned_messages(
        &self,
        session: &Session,
        channel_type: &str,
        id: &str,
        page: PinnedPage,
    ) -> Result<Value, ApiError> {
        let (cid, config, loaded) = self.readable_channel(session, channel_type, id).await?;
        let viewer = self
            .viewer(session, &config, &loaded, session.caller.user_id())
            .await?;
        let pinned = self
            .pinned_messages(&loaded.channel, &page, &viewer)
            .await?;
        let mut wires = self
            .messages_wire(&pinned, session.caller.user_id())
            .await?;
        self.as_seen_by(&cid, session.caller.user_id(), &mut wires)
            .await?;
        Ok(json!({ "messages": wires }))
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
    pub delete_for_me: bool,
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
        let pk = pointer.data["pk"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| channel_messages_pk(&cid));
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

    pub(crate) async fn require_message(&self, id: &str) -> Result<StoredMessage, ApiError> {
        self.find_message(id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("message with id {id} does not exist")))
    }

    /// The message's channel, readable by the caller (and the channel type's config).
    pub(crate) async fn message_channel(
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

    async fn message_wire(
        &self,
        m: &Message,
        show_deleted_text: bool,
        reader: Option<&str>,
    ) -> Result<Value, ApiError> {
        let mut wire = self
            .messages_wire(std::slice::from_ref(m), reader)
            .await?
            .remove(0);
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
        let (config, loaded) = self.message_channel(session, &stored.message).await?;
        let reader = session.caller.user_id();
        let viewer = self.viewer(session, &config, &loaded, reader).await?;
        if !stored.message.visible_to(&viewer) {
            return Err(ApiError::not_found(format!(
                "message with id {id} does not exist"
            )));
        }
        let show = show_deleted_message && session.caller.is_server();
        let mut wire = [self.message_wire(&stored.message, show, reader).await?];
        self.as_seen_by(&stored.message.cid, session.caller.user_id(), &mut wire)
            .await?;
        let [wire] = wire;
        Ok(json!({ "message": wire }))
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
        let (cid, config, loaded) = self.readable_channel(session, channel_type, id).await?;
        let reader = session.caller.user_id();
        let viewer = self.viewer(session, &config, &loaded, reader).await?;
        let mut out = Vec::new();
        for mid in ids {
            if let Some(stored) = self.find_message(mid).await? {
                if stored.message.cid == cid && stored.message.visible_to(&viewer) {
                    out.push(self.message_wire(&stored.message, false, reader).await?);
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
        let wire = self.message_wire(next, false, None).await?;
        let mut event =
            channel_event(event_kind, channel, self.now()).with("message", wire.clone());
        if let Some(u) = wire.get("user") {
            event = event.with("user", u.clone());
        }
        for (k, v) in extra {
            event = event.with(k, v.clone());
        }
        let writes = vec![message_write(stored, next)?, outbox_write(&event)];
        match self.store.transact(writes).await {
            Ok(()) => Ok(wire),
            Err(StoreError::TransactionCanceled { .. }) => Err(ApiError::input(format!(
                "message {} was changed concurrently; try again",
                next.id
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// `message.updated` for a thread's parent after a reply: its new `reply_count` and the
    /// thread's participants as users.
    async fn parent_updated_event(
        &self,
        channel: &Channel,
        parent: &Message,
        participants: &[String],
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<crate::domain::event::Event, ApiError> {
        let mut wire = self.message_wire(parent, false, None).await?;
        let ids: Vec<&str> = participants.iter().map(String::as_str).collect();
        let users = self.users_by_id(&ids).await?;
        wire["thread_participants"] = ids
            .iter()
            .map(|id| {
                users
                    .get(*id)
                    .map(|(u, _)| u.to_json())
                    .unwrap_or_else(|| json!({ "id": id }))
            })
            .collect::<Vec<_>>()
            .into();
        let mut event = channel_event("message.updated", channel, at).with("message", wire.clone());
        if let Some(u) = wire.get("user") {
            event = event.with("user", u.clone());
        }
        Ok(event)
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
        check_updatable(&stored.message)?;
        let mut next = stored
            .message
            .apply_full_update(&payload, &self.now_str())?;
        self.check_text_length(&config, &loaded, &next)?;
        if next.text != stored.message.text {
            // Seed: translations are recomputed when the text changes.
            self.auto_translate(session, &loaded, &mut next).await;
        }
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
        check_updatable(&stored.message)?;
        let actor = acting_user(session, &user_id, &None);
        let mut next = stored
            .message
            .apply_partial(&set, &unset, actor.as_deref(), self.now())?;
        if next.text != stored.message.text {
            self.auto_translate(session, &loaded, &mut next).await;
        }
        if next.pinned && !stored.message.pinned && !next.restricted_visibility.is_empty() {
            return Err(ApiError::field(
                "pinned",
                "a message with restricted visibility cannot be pinned",
            ));
        }
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

    /// `DELETE /messages/{id}`: soft (type `deleted`, kept in place with its reactions and
    /// replies), hard (the message, its reactions, its replies and theirs removed), or for the
    /// acting user only (≤ 100 per user per channel). Hard and for-me exclude each other.
    pub async fn delete_message(
        &self,
        session: &Session,
        id: &str,
        opts: DeleteMessageOptions,
    ) -> Result<Value, ApiError> {
        if opts.hard && opts.delete_for_me {
            return Err(ApiError::input(
                "hard delete and delete_for_me are mutually exclusive",
            ));
        }
        let stored = self.require_message(id).await?;
        let (config, loaded) = self.message_channel(session, &stored.message).await?;
        if opts.delete_for_me {
            return self
                .delete_for_me(session, &stored, &loaded, opts.deleted_by)
                .await;
        }
        self.check_message_action(session, &config, &loaded, &stored.message, "DeleteMessage")?;
        if stored.message.pending && !opts.hard {
            return Err(ApiError::input("pending messages can only be hard deleted"));
        }
        let by = opts
            .deleted_by
            .clone()
            .filter(|_| session.caller.is_server())
            .or_else(|| session.caller.user_id().map(str::to_string));
        let (mut stored, mut loaded) = (stored, loaded);
        let (_turn, waited) = self.writers.turn(&loaded.channel.cid).await;
        if waited {
            stored = self.require_message(id).await?;
            loaded = self.message_channel(session, &stored.message).await?.1;
        }
        for attempt in 1..=CONTENDED_ATTEMPTS {
            match self
                .delete_once(&stored, &loaded, opts.hard, by.as_deref())
                .await?
            {
                Some(wire) => {
                    if opts.hard {
                        self.remove_message_dependents(&stored.message).await?;
                    }
                    return Ok(json!({ "message": wire }));
                }
                // The message or its channel changed meanwhile (a send counted a message): read
                // both again and retry.
                None => {
                    contention_pause(attempt).await;
                    stored = self.require_message(id).await?;
                    loaded = self.message_channel(session, &stored.message).await?.1;
                }
            }
        }
        Err(ApiError::input(format!(
            "message {id} is changing too often to delete now; try again"
        )))
    }

    /// One attempt at a delete, conditioned on the message's and (where the type counts
    /// messages) the channel's versions: the message soft-deleted or removed, the channel's
    /// `message_count` lowered once for a message that counted, and `message.deleted` with
    /// `channel_message_count`, in one transaction. `None` when a condition failed.
    async fn delete_once(
        &self,
        stored: &StoredMessage,
        loaded: &Loaded,
        hard: bool,
        by: Option<&str>,
    ) -> Result<Option<Value>, ApiError> {
        let deleted = stored.message.soft_deleted(&self.now_str());
        let wire = self.message_wire(&deleted, false, None).await?;
        let mut event = channel_event("message.deleted", &loaded.channel, self.now())
            .with("message", wire.clone())
            .with("hard_delete", Value::Bool(hard));
        if let Some(u) = wire.get("user") {
            event = event.with("user", u.clone());
        }
        if let Some(by) = by {
            event = event.with("deleted_by", json!({ "id": by }));
        }
        let mut writes = Vec::new();
        // A message counts once: not while pending, not again when a soft-deleted one goes.
        let counted = !stored.message.pending && stored.message.kind != "deleted";
        if let Some(n) = loaded.channel.message_count {
            let n = if counted { n.saturating_sub(1) } else { n };
            event = event.with("channel_message_count", n.into());
            if counted {
                let mut channel = loaded.channel.clone();
                channel.message_count = Some(n);
                writes.push(Write::Put {
                    table: TableName::Channels,
                    item: channel_item(
                        &channel.cid,
                        &channel.channel_type,
                        to_doc(&channel)?,
                        loaded.version + 1,
                    ),
                    condition: Condition::Version(loaded.version),
                });
            }
        }
        if hard {
            let (ipk, isk) = message_id_key(&stored.message.id);
            writes.push(Write::Delete {
                table: TableName::Messages,
                pk: stored.pk.clone(),
                sk: stored.sk.clone(),
                condition: Condition::Version(stored.version),
            });
            writes.push(Write::Delete {
                table: TableName::Messages,
                pk: ipk,
                sk: isk,
                condition: Condition::None,
            });
            // A hard-deleted reply leaves its parent's count.
            if let Some(parent_id) = &stored.message.parent_id {
                if let Some(parent) = self.find_message(parent_id).await? {
                    let mut counted = parent.message.clone();
                    counted.reply_count = counted.reply_count.saturating_sub(1);
                    writes.push(message_write(&parent, &counted)?);
                }
            }
        } else {
            writes.push(message_write(stored, &deleted)?);
        }
        writes.push(outbox_write(&event));
        match self.store.transact(writes).await {
            Ok(()) => Ok(Some(wire)),
            Err(StoreError::TransactionCanceled { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// After a hard delete: the message's reactions, and its replies with theirs.
    async fn remove_message_dependents(&self, m: &Message) -> Result<(), ApiError> {
        self.remove_partition(TableName::Messages, &reactions_pk(&m.id), None)
            .await?;
        if m.parent_id.is_some() {
            return Ok(());
        }
        self.remove_partition(
            TableName::Messages,
            &crate::store::layout::thread_pk(&m.id),
            None,
        )
        .await?;
        loop {
            let page = self
                .store
                .query(
                    Query::new(TableName::Messages, replies_pk(&m.id))
                        .index(Index::Gsi1)
                        .limit(25),
                )
                .await?;
            if page.items.is_empty() {
                return Ok(());
            }
            for item in page.items {
                let reply: Message = serde_json::from_value(item.data).map_err(|e| {
                    ApiError::internal(format!("stored message is unreadable: {e}"))
                })?;
                let (ipk, isk) = message_id_key(&reply.id);
                self.store
                    .transact(vec![
                        Write::Delete {
                            table: TableName::Messages,
                            pk: item.pk.clone(),
                            sk: item.sk.clone(),
                            condition: Condition::None,
                        },
                        Write::Delete {
                            table: TableName::Messages,
                            pk: ipk,
                            sk: isk,
                            condition: Condition::None,
                        },
                    ])
                    .await?;
                self.remove_partition(TableName::Messages, &reactions_pk(&reply.id), None)
                    .await?;
            }
        }
    }

    /// Every item of a partition (or of an index partition), in transactions of 25.
    async fn remove_partition(
        &self,
        table: TableName,
        pk: &str,
        index: Option<Index>,
    ) -> Result<(), ApiError> {
        loop {
            let mut q = Query::new(table, pk.to_string()).limit(25);
            if let Some(i) = index {
                q = q.index(i);
            }
            let page = self.store.query(q).await?;
            if page.items.is_empty() {
                return Ok(());
            }
            let writes = page
                .items
                .iter()
                .map(|i| Write::Delete {
                    table,
                    pk: i.pk.clone(),
                    sk: i.sk.clone(),
                    condition: Condition::None,
                })
                .collect();
            self.store.transact(writes).await?;
        }
    }

    /// Delete for me: recorded for the acting user only, who then sees it as deleted.
    async fn delete_for_me(
        &self,
        session: &Session,
        stored: &StoredMessage,
        loaded: &Loaded,
        deleted_by: Option<String>,
    ) -> Result<Value, ApiError> {
        let actor = acting_user(session, &deleted_by, &None).ok_or_else(|| {
            ApiError::field(
                "deleted_by",
                "delete_for_me needs the user (deleted_by) server-side",
            )
        })?;
        let pk = deleted_for_me_pk(&loaded.channel.cid, &actor);
        let existing = self
            .store
            .query(Query::new(TableName::Messages, pk.clone()).limit(MAX_DELETED_FOR_ME + 1))
            .await?;
        let already = existing.items.iter().any(|i| i.sk == stored.message.id);
        if !already && existing.items.len() >= MAX_DELETED_FOR_ME {
            return Err(ApiError::input(format!(
                "at most {MAX_DELETED_FOR_ME} messages can be deleted for one user in a channel"
            )));
        }
        let mut wire = self.message_wire(&stored.message, false, None).await?;
        mark_deleted_for_me(&mut wire);
        let event = Event::new("message.deleted", format!("user:{actor}"), self.now())
            .with("cid", Value::String(loaded.channel.cid.clone()))
            .with("message", wire.clone())
            .with("deleted_for_me", Value::Bool(true))
            .with("user", json!({ "id": actor }));
        self.store
            .transact(vec![
                Write::Put {
                    table: TableName::Messages,
                    item: Item::new(
                        pk,
                        stored.message.id.clone(),
                        json!({ "at": self.now_str(), "user_id": actor }),
                    )
                    .with_gsi1(deleted_for_pk(&stored.message.id), actor.clone()),
                    condition: Condition::None,
                },
                outbox_write(&event),
            ])
            .await?;
        Ok(json!({ "message": wire }))
    }

    /// Messages as `reader` sees them: those they deleted for themselves show as deleted.
    pub(crate) async fn as_seen_by(
        &self,
        cid: &str,
        reader: Option<&str>,
        wires: &mut [Value],
    ) -> Result<(), ApiError> {
        let mine = self.deleted_for_me(cid, reader).await?;
        if mine.is_empty() {
            return Ok(());
        }
        for w in wires.iter_mut() {
            if w["id"].as_str().is_some_and(|id| mine.contains(id)) {
                mark_deleted_for_me(w);
            }
        }
        Ok(())
    }

    /// The ids of the messages `reader` deleted for themselves in a channel.
    pub(crate) async fn deleted_for_me(
        &self,
        cid: &str,
        reader: Option<&str>,
    ) -> Result<std::collections::HashSet<String>, ApiError> {
        let Some(reader) = reader else {
            return Ok(Default::default());
        };
        let page = self
            .store
            .query(
                Query::new(TableName::Messages, deleted_for_me_pk(cid, reader))
                    .limit(MAX_DELETED_FOR_ME + 1),
            )
            .await?;
        Ok(page.items.into_iter().map(|i| i.sk).collect())
    }

    /// `POST /messages/{id}/commit` (server-side): a pending message joins its channel as if
    /// sent now (counted, `message.new`); only once.
    pub async fn commit_message(&self, session: &Session, id: &str) -> Result<Value, ApiError> {
        session
            .caller
            .require_server("committing pending messages")?;
        let stored = self.require_message(id).await?;
        if !stored.message.pending {
            return Err(ApiError::input(format!("message {id} is not pending")));
        }
        let loaded = self.require_channel(&stored.message.cid).await?;
        let mut message = stored.message.clone();
        message.pending = false;
        message.pending_expires_at = None;
        let author = message.user_id.clone().unwrap_or_default();
        let user = self
            .get_user(&author)
            .await?
            .map(|(u, _)| u.to_json())
            .unwrap_or_else(|| json!({ "id": author }));
        let wire = self
            .post_message(loaded, message, &user, Vec::new(), Some(&stored))
            .await?;
        Ok(json!({ "message": wire }))
    }

    /// `POST /messages/{id}/undelete` (server-side): a soft-deleted message of a live channel,
    /// whose parent (if a reply) is not deleted, back as it was.
    pub async fn undelete_message(
        &self,
        session: &Session,
        id: &str,
        undeleted_by: Option<String>,
    ) -> Result<Value, ApiError> {
        session.caller.require_server("undeleting messages")?;
        let by = undeleted_by
            .filter(|u| !u.is_empty())
            .ok_or_else(|| ApiError::field("undeleted_by", "undeleted_by is required"))?;
        if self.get_user(&by).await?.is_none() {
            return Err(ApiError::field(
                "undeleted_by",
                format!("user {by:?} does not exist"),
            ));
        }
        let stored = self.find_message(id).await?.ok_or_else(|| {
            ApiError::not_found(format!(
                "message with id {id} does not exist (hard-deleted messages cannot be undeleted)"
            ))
        })?;
        if stored.message.kind != "deleted" {
            return Err(ApiError::input(format!("message {id} is not deleted")));
        }
        let loaded = self
            .load_channel(&stored.message.cid)
            .await?
            .ok_or_else(|| ApiError::input(format!("the channel of message {id} was deleted")))?;
        if let Some(parent_id) = &stored.message.parent_id {
            if self
                .find_message(parent_id)
                .await?
                .is_none_or(|p| p.message.kind == "deleted")
            {
                return Err(ApiError::input(format!(
                    "the parent message {parent_id} is deleted: undelete it first"
                )));
            }
        }
        let next = stored.message.undeleted(&self.now_str());
        let wire = self
            .save_message(
                &stored,
                &next,
                &loaded.channel,
                "message.undeleted",
                &[("undeleted_by", json!({ "id": by }))],
            )
            .await?;
        Ok(json!({ "message": wire }))
    }
}

/// Where a page of messages is read from: a channel's partition, or a thread's index partition;
/// messages before `floor` are not part of it.
struct MessageSource {
    pk: String,
    index: Option<Index>,
    floor: Option<chrono::DateTime<chrono::Utc>>,
}

/// The write of a changed message under its version (replies stay listed under their parent).
pub(crate) fn message_write(stored: &StoredMessage, next: &Message) -> Result<Write, ApiError> {
    let mut item = message_item(next, &stored.sk)?;
    item.version = stored.version + 1;
    Ok(Write::Put {
        table: TableName::Messages,
        item,
        condition: Condition::Version(stored.version),
    })
}

/// Messages one user may delete for themselves in one channel (seed).
const MAX_DELETED_FOR_ME: usize = 100;

/// A message as its reader sees it after deleting it for themselves.
pub(crate) fn mark_deleted_for_me(wire: &mut Value) {
    wire["type"] = Value::String("deleted".into());
    wire["text"] = Value::String(String::new());
    wire["deleted_for_me"] = Value::Bool(true);
}

/// Where a page of pinned messages starts: after/before a pinned message or a pin time.
#[derive(Clone, Debug)]
pub enum PinnedAnchor {
    None,
    Message {
        id: String,
        op: RangeOp,
    },
    Time {
        at: chrono::DateTime<chrono::Utc>,
        op: RangeOp,
    },
}

#[derive(Clone, Copy, Debug)]
pub enum RangeOp {
    Lt,
    Le,
    Gt,
    Ge,
}

impl RangeOp {
    fn range(self, sk: String) -> SkRange {
        match self {
            RangeOp::Lt => SkRange::Lt(sk),
            RangeOp::Le => SkRange::Le(sk),
            RangeOp::Gt => SkRange::Gt(sk),
            RangeOp::Ge => SkRange::Ge(sk),
        }
    }
}

/// A page of pinned messages (`GET pinned_messages`): oldest pin first unless `pinned_at: -1`.
#[derive(Clone, Debug)]
pub struct PinnedPage {
    pub anchor: PinnedAnchor,
    pub limit: usize,
    pub offset: usize,
    pub descending: bool,
}

impl PinnedPage {
    /// The channel state's `pinned_messages`: the 10 newest pins.
    pub fn latest() -> PinnedPage {
        PinnedPage {
            anchor: PinnedAnchor::None,
            limit: 10,
            offset: 0,
            descending: true,
        }
    }

    /// From the `payload` of the endpoint (the JS `PinnedMessagePaginationOptions` and sort).
    pub fn parse(p: &Map<String, Value>) -> Result<PinnedPage, ApiError> {
        let limit = match p.get("limit") {
            None | Some(Value::Null) => 10,
            Some(v) => v
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| ApiError::field("limit", "limit must be a number"))?,
        };
        if limit > crate::domain::limits::MAX_CHANNEL_MESSAGE_LIMIT {
            return Err(ApiError::field(
                "limit",
                format!(
                    "limit must be at most {}",
                    crate::domain::limits::MAX_CHANNEL_MESSAGE_LIMIT
                ),
            ));
        }
        let offset = p.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
        if offset > crate::domain::limits::MAX_QUERY_OFFSET {
            return Err(ApiError::field(
                "offset",
                format!(
                    "offset must be at most {}",
                    crate::domain::limits::MAX_QUERY_OFFSET
                ),
            ));
        }
        let sort = match p.get("sort") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => crate::domain::filter::parse_sort(v)
                .map_err(|e| ApiError::field("sort", e.to_string()))?,
        };
        if let Some(bad) = sort.iter().find(|s| s.field != "pinned_at") {
            return Err(ApiError::field(
                "sort",
                format!("pinned messages sort only by pinned_at, not {}", bad.field),
            ));
        }
        let descending = sort.first().is_some_and(|s| s.direction < 0);
        let text = |k: &str| {
            p.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let ids = [
            ("id_lt", RangeOp::Lt),
            ("id_lte", RangeOp::Le),
            ("id_gt", RangeOp::Gt),
            ("id_gte", RangeOp::Ge),
        ];
        // Times compare on whole microseconds: "or equal" and "after" move the bound by one.
        let times = [
            ("pinned_at_before", RangeOp::Lt, 0),
            ("pinned_at_before_or_equal", RangeOp::Lt, 1),
            ("pinned_at_after", RangeOp::Ge, 1),
            ("pinned_at_after_or_equal", RangeOp::Ge, 0),
        ];
        let mut anchor = PinnedAnchor::None;
        for (k, op) in ids {
            if let Some(id) = text(k) {
                anchor = PinnedAnchor::Message { id, op };
            }
        }
        for (k, op, shift) in times {
            if let Some(t) = text(k) {
                let at = parse_time(&t).ok_or_else(|| {
                    ApiError::field(k, format!("{k} must be an RFC 3339 timestamp"))
                })?;
                anchor = PinnedAnchor::Time {
                    at: at + chrono::Duration::microseconds(shift),
                    op,
                };
            }
        }
        Ok(PinnedPage {
            anchor,
            limit,
            offset,
            descending,
        })
    }
}

/// Deleted and pending messages cannot be updated.
fn check_updatable(m: &Message) -> Result<(), ApiError> {
    if m.kind == "deleted" {
        return Err(ApiError::input(format!(
            "message {} was deleted and cannot be updated",
            m.id
        )));
    }
    if m.pending {
        return Err(ApiError::input(format!(
            "message {} is pending and cannot be updated",
            m.id
        )));
    }
    Ok(())
}

/// Is the message pinned now (an expired pin no longer counts)?
pub(crate) fn pinned_now(m: &Message, now: chrono::DateTime<chrono::Utc>) -> bool {
    m.pinned
        && m.pin_expires
            .as_deref()
            .and_then(parse_time)
            .is_none_or(|t| t > now)
}

/// `message.new` as delivery starts from it: the message, its author, `watcher_count` (filled
/// in per delivery once channels are watched), and `channel_message_count` where the type counts.
fn new_message_event(
    channel: &Channel,
    at: chrono::DateTime<chrono::Utc>,
    wire: &Value,
    user: &Value,
) -> crate::domain::event::Event {
    let mut e = channel_event("message.new", channel, at)
        .with("message", wire.clone())
        .with("user", user.clone())
        .with("watcher_count", 0.into());
    if let Some(n) = channel.message_count {
        e = e.with("channel_message_count", n.into());
    }
    e
}

/// `channel.visible` for a member whose hidden channel a new message brought back, to that
/// member's connections.
fn channel_visible_event(
    channel: &Channel,
    user_id: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> crate::domain::event::Event {
    let mut e = channel_event("channel.visible", channel, at)
        .with(
            "channel",
            Value::Object(channel.to_wire(&crate::domain::channel::ChannelView::default())),
        )
        .with("user", json!({ "id": user_id }));
    e.scope = format!("user:{user_id}");
    e
}

/// Does the text carry a link (`AddLinks`)?
fn has_link(text: &str) -> bool {
    crate::domain::message::first_url(text).is_some()
}

/// A message's item in its channel's partition; replies are also listed under their parent
/// (`gsi1`, same sort key) for the thread's pages.
fn message_item(m: &Message, sk: &str) -> Result<Item, ApiError> {
    let mut item = Item::new(message_pk(m), sk.to_string(), to_doc(m)?);
    if m.pending {
        // Seen by its sender only: in no thread or pinned listing until committed.
        return Ok(item);
    }
    if let Some(parent) = &m.parent_id {
        item = item.with_gsi1(replies_pk(parent), sk.to_string());
    }
    // Pinned messages are listed by pin time (an expired pin is filtered when read).
    if let Some(at) = m
        .pinned_at
        .as_deref()
        .and_then(parse_time)
        .filter(|_| m.pinned)
    {
        item = item.with_gsi2(pinned_pk(&m.cid), pinned_sk(at, &m.id));
    }
    Ok(item)
}

/// The partition a message lives in: its channel's, or while pending its sender's pending one.
fn message_pk(m: &Message) -> String {
    match (&m.user_id, m.pending) {
        (Some(u), true) => pending_pk(&m.cid, u),
        _ => channel_messages_pk(&m.cid),
    }
}

impl Chat {
    /// The slow-mode record of this send, or `None` when slow mode does not apply (off, server
    /// side, or a role that skips it); refuses a send inside the cooldown.
    async fn slow_mode_write(
        &self,
        session: &Session,
        config: &crate::domain::channel_type::ChannelTypeConfig,
        loaded: &Loaded,
        author: &str,
        now: &str,
    ) -> Result<Option<Write>, ApiError> {
        let cooldown = loaded.channel.cooldown;
        if cooldown == 0 || session.caller.is_server() {
            return Ok(None);
        }
        if self
            .check_channel_action(
                session,
                config,
                Some(loaded),
                &loaded.channel,
                "SkipSlowMode",
            )
            .is_ok()
        {
            return Ok(None);
        }
        let pk = cooldown_pk(&loaded.channel.cid);
        if let Some(last) = self.store.get(TableName::Messages, &pk, author).await? {
            let last = last.data["last_message_at"].as_str().and_then(parse_time);
            if let Some(last) = last {
                let wait = last + chrono::Duration::seconds(i64::from(cooldown)) - self.now();
                if wait > chrono::Duration::zero() {
                    return Err(ApiError::input(format!(
                        "slow mode is on: wait {} more seconds before sending another message",
                        (wait.num_milliseconds() + 999) / 1000
                    )));
                }
            }
        }
        let mut item = Item::new(pk, author.to_string(), json!({ "last_message_at": now }));
        item.ttl = Some(self.now().timestamp() + i64::from(cooldown) + 60);
        Ok(Some(Write::Put {
            table: TableName::Messages,
            item,
            condition: Condition::None,
        }))
    }

    /// Thread and quote references point at messages of the same channel, and the type allows
    /// them (`replies`, `quotes`).
    async fn check_message_links(
        &self,
        config: &crate::domain::channel_type::ChannelTypeConfig,
        cid: &str,
        m: &Message,
    ) -> Result<(), ApiError> {
        if let Some(parent) = &m.parent_id {
            if !config.replies {
                return Err(ApiError::field(
                    "message.parent_id",
                    "replies are disabled for this channel",
                ));
            }
            let p = self.find_message(parent).await?.ok_or_else(|| {
                ApiError::field(
                    "message.parent_id",
                    format!("parent message {parent} does not exist"),
                )
            })?;
            if p.message.cid != cid || p.message.parent_id.is_some() {
                return Err(ApiError::field(
                    "message.parent_id",
                    "the parent must be a message of this channel, not a reply",
                ));
            }
        }
        if let Some(quoted) = &m.quoted_message_id {
            if !config.quotes {
                return Err(ApiError::field(
                    "message.quoted_message_id",
                    "quotes are disabled for this channel",
                ));
            }
            let q = self.find_message(quoted).await?.ok_or_else(|| {
                ApiError::field(
                    "message.quoted_message_id",
                    format!("quoted message {quoted} does not exist"),
                )
            })?;
            if q.message.cid != cid {
                return Err(ApiError::field(
                    "message.quoted_message_id",
                    "the quoted message must be in this channel",
                ));
            }
        }
        Ok(())
    }

    /// Response shapes of messages: authors, pinners and mentioned users as user objects (one
    /// batch read), `quoted_message` one level deep, and the reader's `own_reactions` (from the
    /// latest reactions kept with the message when they are all of them, else one key query per
    /// message the reader may have reacted to).
    pub(crate) async fn messages_wire(
        &self,
        messages: &[Message],
        reader: Option<&str>,
    ) -> Result<Vec<Value>, ApiError> {
        let mut own: std::collections::HashMap<&str, Vec<crate::domain::reaction::Reaction>> =
            std::collections::HashMap::new();
        if let Some(reader) = reader {
            for m in messages {
                let total: u64 = m.reactions.counts.values().filter_map(Value::as_u64).sum();
                if total == 0 {
                    continue;
                }
                let mine = if total as usize <= m.reactions.latest.len() {
                    m.reactions
                        .latest
                        .iter()
                        .filter(|r| r.user_id == reader)
                        .cloned()
                        .collect()
                } else {
                    self.user_reactions(&m.id, reader).await?
                };
                own.insert(m.id.as_str(), mine);
            }
        }
        let mut quoted: std::collections::HashMap<String, Message> =
            std::collections::HashMap::new();
        for id in messages.iter().filter_map(|m| m.quoted_message_id.as_ref()) {
            if !quoted.contains_key(id) {
                if let Some(q) = self.find_message(id).await? {
                    quoted.insert(id.clone(), q.message);
                }
            }
        }
        let all: Vec<&Message> = messages.iter().chain(quoted.values()).collect();
        let mut ids: Vec<&str> = Vec::new();
        for m in &all {
            ids.extend(m.user_id.as_deref());
            ids.extend(m.pinned_by_id.as_deref());
            ids.extend(m.mentioned_user_ids.iter().map(String::as_str));
            ids.extend(m.reactions.latest.iter().map(|r| r.user_id.as_str()));
        }
        ids.sort_unstable();
        ids.dedup();
        let users = self.users_by_id(&ids).await?;
        let now = self.now();
        let user = |id: &str| {
            users
                .get(id)
                .map(|(u, _)| u.to_json())
                .unwrap_or_else(|| json!({ "id": id }))
        };
        let one = |m: &Message| {
            let mut wire = m.to_wire(m.user_id.as_deref().map(user).as_ref());
            if let Some(by) = m.pinned_by_id.as_deref() {
                wire["pinned_by"] = user(by);
            }
            if m.pinned && !pinned_now(m, now) {
                for key in ["pinned_at", "pinned_by", "pin_expires"] {
                    wire[key] = Value::Null;
                }
                wire["pinned"] = Value::Bool(false);
            }
            wire["mentioned_users"] = m
                .mentioned_user_ids
                .iter()
                .filter(|id| users.contains_key(id.as_str()))
                .map(|id| user(id))
                .collect::<Vec<_>>()
                .into();
            if let (Some(mine), Some(reader)) = (own.get(m.id.as_str()), reader) {
                wire["own_reactions"] = mine
                    .iter()
                    .map(|r| r.to_wire(Some(&user(reader))))
                    .collect::<Vec<_>>()
                    .into();
            }
            if !m.reactions.latest.is_empty() {
                wire["latest_reactions"] = m
                    .reactions
                    .latest
                    .iter()
                    .map(|r| r.to_wire(Some(&user(&r.user_id))))
                    .collect::<Vec<_>>()
                    .into();
            }
            wire
        };
        Ok(messages
            .iter()
            .map(|m| {
                let mut wire = one(m);
                if let Some(q) = m.quoted_message_id.as_ref().and_then(|id| quoted.get(id)) {
                    wire["quoted_message"] = one(q);
                }
                wire
            })
            .collect())
    }
}

impl Chat {
    /// `POST /messages/{id}/translate`: the text in `language`, kept in `i18n`; `message.updated`.
    pub async fn translate_message(
        &self,
        session: &Session,
        id: &str,
        language: &str,
    ) -> Result<Value, ApiError> {
        use crate::translate::{LANGUAGES, MAX_TRANSLATED_CHARS};
        if !LANGUAGES.contains(&language) {
            return Err(ApiError::field(
                "language",
                format!("language {language:?} is not one of the supported languages"),
            ));
        }
        let translator = self.translator.clone().ok_or_else(|| ApiError::input("message translation is not configured on this deployment (set CHAT_TRANSLATOR=amazon)"))?;
        let stored = self.require_message(id).await?;
        let (_, loaded) = self.message_channel(session, &stored.message).await?;
        let m = &stored.message;
        if m.text.chars().count() > MAX_TRANSLATED_CHARS {
            return Err(ApiError::input(format!(
                "only messages up to {MAX_TRANSLATED_CHARS} characters are translated"
            )));
        }
        let source = m
            .i18n
            .get("language")
            .and_then(Value::as_str)
            .map(str::to_string);
        let translated = translator
            .translate(&m.text, source.as_deref(), language)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let mut next = m.clone();
        next.add_translation(&translated.source_language, language, translated.text);
        let wire = self
            .save_message(&stored, &next, &loaded.channel, "message.updated", &[])
            .await?;
        Ok(json!({ "message": wire }))
    }

    /// Automatic translation of a new or edited message, when the channel or the app has it on:
    /// into the channel's `auto_translation_language`, or else the most common language of the
    /// other members. A failed translation never stops the message.
    pub(crate) async fn auto_translate(&self, session: &Session, loaded: &Loaded, m: &mut Message) {
        let Some(translator) = self.translator.clone() else {
            return;
        };
        let on =
            loaded.channel.auto_translation_enabled || session.settings.auto_translation_enabled;
        if !on
            || m.text.is_empty()
            || m.text.chars().count() > crate::translate::MAX_TRANSLATED_CHARS
            || !matches!(m.kind.as_str(), "regular" | "reply")
        {
            return;
        }
        let ids: Vec<&str> = loaded
            .members
            .iter()
            .map(|x| x.user_id.as_str())
            .chain(m.user_id.as_deref())
            .collect();
        let Ok(users) = self.users_by_id(&ids).await else {
            return;
        };
        let sender_language = m
            .user_id
            .as_deref()
            .and_then(|u| users.get(u))
            .map(|(u, _)| u.language.clone())
            .filter(|l| !l.is_empty());
        let target = match &loaded.channel.auto_translation_language {
            Some(l) => Some(l.clone()),
            None => {
                let mut counts: std::collections::BTreeMap<String, usize> =
                    std::collections::BTreeMap::new();
                for member in &loaded.members {
                    if Some(member.user_id.as_str()) == m.user_id.as_deref() {
                        continue;
                    }
                    if let Some((u, _)) = users.get(&member.user_id) {
                        if !u.language.is_empty() && Some(&u.language) != sender_language.as_ref() {
                            *counts.entry(u.language.clone()).or_default() += 1;
                        }
                    }
                }
                counts.into_iter().max_by_key(|(_, n)| *n).map(|(l, _)| l)
            }
        };
        let Some(target) = target.filter(|t| Some(t) != sender_language.as_ref()) else {
            return;
        };
        match translator
            .translate(&m.text, sender_language.as_deref(), &target)
            .await
        {
            Ok(t) => m.add_translation(&t.source_language, &target, t.text),
            Err(e) => tracing::warn!(message = %m.id, error = %e, "automatic translation failed"),
        }
    }
}
