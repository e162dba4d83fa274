//! Changing messages: update, partial update, delete (soft, hard, for me), undelete, commit of a
//! pending message, and the removal of a truncated channel's messages.

use super::*;
use crate::domain::caller::Session;
use crate::domain::channel::Channel;
use crate::domain::channel_type::ModerationBehavior;
use crate::domain::event::Event;
use crate::domain::message::Message;
use crate::domain::ApiError;
use crate::service::acting_user;
use crate::service::channel_record::{channel_event, Loaded};
use crate::service::decode;
use crate::service::Chat;
use crate::service::{channel_record, contention_pause, CONTENDED_ATTEMPTS};
use crate::store::layout::{
    channel_messages_pk, deleted_for_me_pk, deleted_for_pk, message_id_key, outbox_write,
    reactions_pk, replies_pk,
};
use crate::store::{Condition, Index, Item, Query, SkRange, StoreError, TableName, Write};
use serde_json::{json, Map, Value};

/// Options of `DELETE /messages/{id}`.
#[derive(Clone, Debug, Default)]
pub struct DeleteMessageOptions {
    pub hard: bool,
    pub delete_for_me: bool,
    /// Server-side: who deleted it (recorded on the event).
    pub deleted_by: Option<String>,
}

impl Chat {
    /// Truncation with `hard_delete`: the messages before `before` are removed for good, with
    /// the channel's uploads they link to.
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
                if let Some(Value::Array(attachments)) = item.data.get("attachments") {
                    self.remove_linked_uploads(cid, attachments).await?;
                }
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
    /// Commits a changed message under its version with `event`.
    pub(super) async fn save_message(
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
    pub(super) async fn parent_updated_event(
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
        skip_enrich_url: bool,
    ) -> Result<Value, ApiError> {
        let stored = self.require_message(id).await?;
        let (config, loaded) = self.message_channel(session, &stored.message).await?;
        self.check_message_action(session, &config, &loaded, &stored.message, "UpdateMessage")?;
        // The user it is updated as: the caller, or the user a server-side update names.
        let actor = acting_user(
            session,
            &payload
                .get("user_id")
                .and_then(Value::as_str)
                .map(str::to_string),
            &payload.get("user").and_then(Value::as_object).cloned(),
        );
        self.check_actor_not_banned(actor.as_deref(), &loaded)
            .await?;
        check_updatable(&stored.message)?;
        let next = stored
            .message
            .apply_full_update(&payload, &self.now_str())?;
        self.commit_update(session, &config, &loaded, &stored, next, skip_enrich_url)
            .await
    }

    /// `PUT /messages/{id}`: `set` / `unset`, pinning included.
    pub async fn update_message_partial(
        &self,
        session: &Session,
        id: &str,
        set: Map<String, Value>,
        unset: Vec<String>,
        user_id: Option<String>,
        skip_enrich_url: bool,
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
        let actor = acting_user(session, &user_id, &None);
        self.check_actor_not_banned(actor.as_deref(), &loaded)
            .await?;
        check_updatable(&stored.message)?;
        let next = stored
            .message
            .apply_partial(&set, &unset, actor.as_deref(), self.now())?;
        if next.pinned && !stored.message.pinned && !next.restricted_visibility.is_empty() {
            return Err(ApiError::field(
                "pinned",
                "a message with restricted visibility cannot be pinned",
            ));
        }
        self.commit_update(session, &config, &loaded, &stored, next, skip_enrich_url)
            .await
    }

    /// The end of an update: the text checked (length, blocklists) and, when it changed,
    /// translated again (seed) with its preview following its first link; the message saved
    /// under its version with `message.updated`, a blocklist hit flagged, and in async mode the
    /// new link previewed after.
    async fn commit_update(
        &self,
        session: &Session,
        config: &crate::domain::channel_type::ChannelTypeConfig,
        loaded: &Loaded,
        stored: &StoredMessage,
        mut next: Message,
        skip_enrich_url: bool,
    ) -> Result<Value, ApiError> {
        self.check_text_length(config, loaded, &next)?;
        let listed = self
            .check_updated_text(config, loaded, &stored.message, &next)
            .await?;
        if next.text != stored.message.text {
            self.auto_translate(session, loaded, &mut next).await;
        }
        let enrichment = loaded.channel.effective_config(config, &[])?.url_enrichment;
        let enrich_later = self
            .follow_first_link(
                session,
                enrichment,
                &stored.message,
                &mut next,
                skip_enrich_url,
            )
            .await;
        let wire = self
            .save_message(stored, &next, &loaded.channel, "message.updated", &[])
            .await?;
        if let Some(hit) = listed {
            self.automod_flag(&next.id, &hit).await?;
        }
        if let Some(url) = enrich_later {
            self.enrich_later(next.id.clone(), url).await;
        }
        Ok(json!({ "message": wire }))
    }

    /// A changed text goes through the channel type's blocklists again: refused when a list
    /// blocks it; the hit to flag when a list flags it.
    async fn check_updated_text(
        &self,
        config: &crate::domain::channel_type::ChannelTypeConfig,
        loaded: &Loaded,
        before: &Message,
        after: &Message,
    ) -> Result<Option<crate::service::blocklists::BlocklistHit>, ApiError> {
        if after.text == before.text {
            return Ok(None);
        }
        let effective = loaded.channel.effective_config(config, &[])?;
        match self.blocklist_hit(&effective, &after.text).await? {
            Some(hit) if hit.behavior == ModerationBehavior::Flag => Ok(Some(hit)),
            Some(_) => Err(ApiError::input(
                "the message was blocked by moderation policies",
            )),
            None => Ok(None),
        }
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
                writes.push(channel_record::put(&channel, loaded.version)?);
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
        if stored.message.pending {
            let callback = pending_callback(
                "pending_message.deleted",
                &loaded.channel,
                &stored.message,
                wire.clone(),
                self.now(),
            );
            writes.push(outbox_write(&callback));
        }
        match self.store.transact(writes).await {
            Ok(()) => Ok(Some(wire)),
            Err(StoreError::TransactionCanceled { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// After a hard delete: the uploads it links to, its reactions, and its replies with theirs.
    async fn remove_message_dependents(&self, m: &Message) -> Result<(), ApiError> {
        self.remove_message_uploads(m).await?;
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
                let reply: Message = decode(item.data, "message")?;
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
        let event = Event::new(
            "message.deleted",
            crate::domain::event::user_scope(&actor),
            self.now(),
        )
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

/// The event that calls the `pending_message` hooks back about a pending message (`kind`:
/// committed or deleted), with its `pending_message_metadata`.
pub(super) fn pending_callback(
    kind: &str,
    channel: &crate::domain::channel::Channel,
    message: &Message,
    wire: Value,
    now: chrono::DateTime<chrono::Utc>,
) -> crate::domain::event::Event {
    let mut event = channel_event(kind, channel, now)
        .with("message", wire)
        .with(
            "metadata",
            Value::Object(message.pending_message_metadata.clone()),
        );
    event.scope = crate::domain::event::user_scope(message.user_id.as_deref().unwrap_or_default());
    event
}

/// Messages one user may delete for themselves in one channel (seed).
const MAX_DELETED_FOR_ME: usize = 100;

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
