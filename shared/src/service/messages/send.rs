//! Sending messages: a client's or the server's send, system messages of channel changes, slow
//! mode and link grants, and the one transaction that stores a message with its channel's
//! counters, the members' read positions and its events.

use super::*;
use crate::domain::caller::Session;
use crate::domain::channel::{Channel, Cid};
use crate::domain::channel_type::ModerationBehavior;
use crate::domain::clock::parse_time;
use crate::domain::ids::random_id;
use crate::domain::message::Message;
use crate::domain::ApiError;
use crate::service::acting_user;
use crate::service::channel_record::{channel_event, Loaded};
use crate::service::Chat;
use crate::service::{channel_record, member_record};
use crate::service::{contention_pause, CONTENDED_ATTEMPTS};
use crate::store::layout::{cooldown_pk, message_id_key, message_sk, outbox_write};
use crate::store::{Condition, Item, StoreError, TableName, Write, MAX_TRANSACTION_WRITES};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Body of `POST /channels/{type}/{id}/message`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct SendMessage {
    pub message: Map<String, Value>,
    pub skip_push: bool,
    /// A campaign's `skip_webhook`: the hooks do not hear of this message (not a request field).
    #[serde(skip)]
    pub skip_webhook: bool,
    /// Server-side: hold the message for review (overrides the type's `mark_messages_pending`).
    pub pending: Option<bool>,
    pub pending_message_metadata: Map<String, Value>,
    /// No link preview for this message.
    pub skip_enrich_url: bool,
    /// A command's outcome being sent: its text runs no command again.
    #[serde(skip)]
    pub command_outcome: bool,
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
        let payload_user = req
            .message
            .get("user_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let payload_user_obj = req.message.get("user").and_then(Value::as_object).cloned();
        let author = acting_user(session, &payload_user, &payload_user_obj)
            .ok_or_else(|| ApiError::field("message.user", "either message.user or message.user_id must be provided when sending a message with server-side auth"))?;
        // A send reads the channel and its author's member item, never the other members.
        let cid = Cid::new(channel_type, id)?.to_string();
        let config = self.channel_config(channel_type).await?;
        let loaded = self.load_channel_as(&cid, Some(&author)).await?;
        self.check_readable(session, &config, &loaded)?;
        let (user, _) = self
            .get_user(&author)
            .await?
            .ok_or_else(|| ApiError::input(format!("user {author:?} does not exist")))?;
        // A banned author may not send here; a shadow-banned one's message reaches only them.
        // A member's item carries their channel bans; anyone else's are read (livestreams).
        let outsider = match loaded.members.iter().find(|m| m.user_id == author) {
            Some(_) => None,
            None => {
                let bans = self.channel_bans(&author, &cid).await?;
                if bans.iter().any(|b| !b.shadow) {
                    return Err(crate::service::bans::ban_error(&author, true));
                }
                // Where a non-member wrote is found again when their messages are looked for.
                self.store
                    .write(crate::store::layout::past_channel_write(&author, &cid))
                    .await?;
                Some(bans.iter().any(|b| b.shadow))
            }
        };
        let membership = loaded.members.iter().find(|m| m.user_id == author);
        self.check_not_banned(&user, membership)?;
        self.check_not_blocked_in_direct(&loaded, &author).await?;
        let mut message = Message::from_payload(
            &req.message,
            &cid,
            Some(author.clone()),
            random_id(),
            &self.now_str(),
        )?;
        message.shadowed = self.is_shadow_banned(&user, membership) || outsider.unwrap_or(false);
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
        message.skip_push = req.skip_push;
        message.skip_webhook = req.skip_webhook;
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
        // A slash command the channel type enables runs instead of being sent.
        let invoked = crate::domain::command::invocation(&message.text)
            .filter(|_| !req.command_outcome)
            .map(|(name, args)| (name.to_string(), args.to_string()));
        if let Some((name, args)) = invoked {
            if effective.has_command(&name, &self.custom_commands().await?) {
                return self
                    .run_command(session, &loaded, &user, message, &name, &args)
                    .await;
            }
        }
        // The app's before-send hook may change the message or refuse it.
        match self
            .before_send(session, &loaded.channel, &user, &message)
            .await?
        {
            super::before_send::Verdict::Unchanged => {}
            super::before_send::Verdict::Changed(next) => {
                if next.text.chars().count() > effective.max_message_length as usize {
                    return Err(ApiError::field(
                        "message.text",
                        "the before-send hook made the message too long",
                    ));
                }
                message = *next;
            }
            super::before_send::Verdict::Rejected(refused) => {
                return Ok(json!({ "message": refused }));
            }
        }
        // The channel type's blocklists: a blocked message is answered, not sent; a
        // shadow-blocked one reaches only its author; a flagged one is sent and flagged.
        let listed = self.blocklist_hit(&effective, &message.text).await?;
        match listed.as_ref().map(|h| h.behavior) {
            Some(ModerationBehavior::Block) => {
                let mut refused = message.to_wire(Some(&user.to_json()));
                refused["type"] = Value::String("error".into());
                refused["text"] =
                    Value::String("Message was blocked by moderation policies".into());
                return Ok(json!({ "message": refused }));
            }
            Some(ModerationBehavior::ShadowBlock) => message.shadowed = true,
            _ => {}
        }
        let message_id = message.id.clone();
        let enrich = self.link_to_enrich(&message, req.skip_enrich_url);
        let enrich_later = session.settings.async_url_enrich_enabled;
        if let (Some(url), false) = (&enrich, enrich_later) {
            self.enrich_now(&mut message, url).await;
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
        let mut extra: Vec<crate::store::Write> = slow_mode.into_iter().collect();
        if message.pending {
            // The pending_message hooks are passed the new message and its metadata, to commit
            // or delete it.
            let wire = self
                .messages_wire(std::slice::from_ref(&message), None)
                .await?
                .remove(0);
            let callback = super::write::pending_callback(
                "pending_message.sent",
                &loaded.channel,
                &message,
                wire,
                self.now(),
            );
            extra.push(crate::store::layout::outbox_write(&callback));
        }
        let wire = self
            .post_message(loaded, message, &user.to_json(), extra, None)
            .await?;
        if let Some(hit) = listed.filter(|h| h.behavior == ModerationBehavior::Flag) {
            self.automod_flag(&message_id, &hit).await?;
        }
        if let (Some(url), true) = (enrich, enrich_later) {
            self.enrich_later(message_id.clone(), url).await;
        }
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
            let mut writes = new_message_writes(&message, &sk, Condition::NotExists)?.to_vec();
            // Its sender's connections hear of it (`message.new` scoped to the sender); the
            // channel's watchers only once it is committed.
            let mut event = channel_event("message.new", &loaded.channel, self.now())
                .with("message", wire.clone())
                .with("user", user.clone());
            event.scope =
                crate::domain::event::user_scope(message.user_id.as_deref().unwrap_or_default());
            writes.push(outbox_write(&event));
            // Still pending when the hooks' timeout runs out, it is deleted.
            if let Some(expires) = message.pending_expires_at.as_deref().and_then(parse_time) {
                writes.push(crate::service::timers::timer_write(
                    crate::service::timers::TimerKind::PendingMessage,
                    &message.id,
                    expires,
                ));
            }
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
        // Plain messages into a busy channel are committed together (see `commit`).
        if commit_of.is_none() && message.parent_id.is_none() && extra.is_empty() {
            return self
                .commit_new_message(&cid, message, wire, user, keeps_last_message_at)
                .await;
        }
        // Sends into this channel from this process take turns (see `writers`); the channel as
        // read before the turn may be stale, so it is read again once the turn comes.
        let author = message.user_id.clone();
        let (_turn, waited) = self.writers.turn(&cid).await;
        if waited {
            loaded = self.load_channel_as(&cid, author.as_deref()).await?;
        }
        for attempt in 1..=CONTENDED_ATTEMPTS {
            let mut channel = loaded.channel.clone();
            let mut message = message.clone();
            // A committed pending message keeps the time it was sent.
            let (created, sk) = match commit_of {
                None => stamp_new_message(
                    &mut channel,
                    &mut message,
                    &mut wire,
                    keeps_last_message_at,
                    self.now(),
                ),
                Some(_) => {
                    count_new_message(&mut channel, &mut message, created, keeps_last_message_at);
                    (created, sk.clone())
                }
            };
            // A committed pending message moves from its sender's partition; its id is already
            // claimed.
            let claim = if commit_of.is_some() {
                Condition::Exists
            } else {
                Condition::NotExists
            };
            // The id claim is the first write: a refused claim is a reused id.
            let mut writes = new_message_writes(&message, &sk, claim)?.to_vec();
            writes.push(channel_record::put(&channel, loaded.version)?);
            writes.push(outbox_write(&new_message_event(
                &channel, created, &wire, user, &message,
            )));
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
            let hidden = self.hidden_members(&cid).await?;
            let read_by: Vec<ReadBy> = loaded
                .members
                .iter()
                .filter(|m| author.as_deref() == Some(m.user_id.as_str()))
                .filter(|_| message.in_channel_list())
                .map(|member| ReadBy {
                    member,
                    message: &message,
                    read_seq: channel.counted_messages,
                })
                .collect();
            let member_writes = member_writes(&cid, &channel, &read_by, &hidden, created)?;
            let later = with_room_for(&mut writes, member_writes);
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
                    loaded = self.load_channel_as(&cid, author.as_deref()).await?;
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
        skip_push: bool,
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
        message.skip_push = skip_push;
        let loaded = self.require_channel(cid).await?;
        Ok(Some(
            self.post_message(loaded, message, &user, Vec::new(), None)
                .await?,
        ))
    }

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
}

/// `message.new` as delivery starts from it: the message, its author, `watcher_count` (filled
/// in per delivery once channels are watched), and `channel_message_count` where the type counts.
pub(super) fn new_message_event(
    channel: &Channel,
    at: chrono::DateTime<chrono::Utc>,
    wire: &Value,
    user: &Value,
    message: &Message,
) -> crate::domain::event::Event {
    let mut e = channel_event("message.new", channel, at)
        .with("message", wire.clone())
        .with("user", user.clone())
        .with("watcher_count", 0.into());
    if message.skip_push {
        e = e.with(crate::domain::event::SKIP_PUSH, Value::Bool(true));
    }
    if message.skip_webhook {
        e = e.with(crate::domain::event::SKIP_HOOKS, Value::Bool(true));
    }
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
    e.scope = crate::domain::event::user_scope(user_id);
    e
}

/// Does the text carry a link (`AddLinks`)?
fn has_link(text: &str) -> bool {
    crate::domain::message::first_url(text).is_some()
}

/// Stamps a new message at commit, after the channel's newest: a channel's messages commit one
/// after another (each conditioned on the channel item), so time order is commit order and a
/// reader paging by time never skips a message committed later. Counts it on the channel.
/// Returns its time and sort key.
pub(super) fn stamp_new_message(
    channel: &mut Channel,
    message: &mut Message,
    wire: &mut Value,
    keeps_last_message_at: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> (chrono::DateTime<chrono::Utc>, String) {
    let floor = channel
        .newest_message_at
        .as_deref()
        .and_then(parse_time)
        .map(|t| t + chrono::Duration::microseconds(1));
    let at = floor.map_or(now, |f| f.max(now));
    let stamp = crate::domain::clock::format_time(at);
    if message.updated_at == message.created_at {
        message.updated_at = stamp.clone();
    }
    message.created_at = stamp;
    wire["created_at"] = Value::String(message.created_at.clone());
    wire["updated_at"] = Value::String(message.updated_at.clone());
    count_new_message(channel, message, at, keeps_last_message_at);
    (at, message_sk(at, &message.id))
}

/// A new message's effect on its channel: newest and last message, its number among the
/// messages that count as unread (`seq`), the message count.
fn count_new_message(
    channel: &mut Channel,
    message: &mut Message,
    created: chrono::DateTime<chrono::Utc>,
    keeps_last_message_at: bool,
) {
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
}

/// A sender who has read up to their own new message (`read_seq`: the channel's count right
/// after it).
pub(super) struct ReadBy<'a> {
    pub member: &'a crate::domain::channel::Member,
    pub message: &'a Message,
    pub read_seq: u64,
}

/// What committing new messages does to members: each sender has read their own last message;
/// members who hid the channel see it again (`channel.visible` to each, a hidden sender too).
pub(super) fn member_writes(
    cid: &str,
    channel: &Channel,
    read_by: &[ReadBy],
    hidden: &[crate::domain::channel::Member],
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Write>, ApiError> {
    let mut writes = Vec::new();
    let visible = |writes: &mut Vec<Write>, user_id: &str| {
        writes.push(outbox_write(&channel_visible_event(channel, user_id, at)));
    };
    for r in read_by {
        let mut next = r.member.clone();
        next.hidden = false;
        next.read.read_seq = r.read_seq;
        next.read.last_read = Some(r.message.created_at.clone());
        next.read.last_read_message_id = Some(r.message.id.clone());
        writes.push(member_record::put(cid, &next)?);
        if r.member.hidden {
            visible(&mut writes, &r.member.user_id);
        }
    }
    for m in hidden
        .iter()
        .filter(|m| m.hidden && !read_by.iter().any(|r| r.member.user_id == m.user_id))
    {
        let mut next = m.clone();
        next.hidden = false;
        writes.push(member_record::put(cid, &next)?);
        visible(&mut writes, &m.user_id);
    }
    Ok(writes)
}

/// Adds `member_writes` to a transaction as far as it has room; returns the rest, which follow
/// it: they still never recreate a member removed meanwhile (`Exists`), though a concurrent
/// change to them may be overwritten.
pub(super) fn with_room_for(writes: &mut Vec<Write>, mut member_writes: Vec<Write>) -> Vec<Write> {
    let room = MAX_TRANSACTION_WRITES.saturating_sub(writes.len());
    let later = member_writes
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
    later
}
