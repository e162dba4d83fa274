//! Reading messages: the channel state's page, replies, pinned messages, one message or many by
//! id, and their response shapes (users, quotes, the reader's own reactions).

use super::*;
use crate::domain::caller::Session;
use crate::domain::channel::{Channel, Cid};
use crate::domain::clock::parse_time;
use crate::domain::message::{Message, MessageAnchor, MessagePage, Viewer};
use crate::domain::ApiError;
use crate::service::channel_record::Loaded;
use crate::service::decode;
use crate::service::Chat;
use crate::store::layout::{
    channel_messages_pk, message_id_key, pending_pk, pinned_pk, pinned_sk, replies_pk,
};
use crate::store::{Index, Query, SkRange, TableName};
use serde_json::{json, Map, Value};

impl Chat {
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
            .map(|i| decode(i.data, "message"))
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
                let m: Message = decode(item.data, "message")?;
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
                let m: Message = decode(item.data, "message")?;
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
        let message: Message = decode(item.data, "message")?;
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

    pub(crate) async fn message_wire(
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
                let total = m.reactions.total();
                if total == 0 {
                    continue;
                }
                let mine = if total <= m.reactions.latest.len() {
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
        let mut wires: Vec<Value> = messages
            .iter()
            .map(|m| {
                let mut wire = one(m);
                if let Some(q) = m.quoted_message_id.as_ref().and_then(|id| quoted.get(id)) {
                    wire["quoted_message"] = one(q);
                }
                wire
            })
            .collect();
        for wire in &mut wires {
            if let Some(Value::Array(a)) = wire.get_mut("attachments") {
                self.renew_upload_links(a).await?;
            }
            if let Some(Value::Array(a)) = wire
                .get_mut("quoted_message")
                .and_then(|q| q.get_mut("attachments"))
            {
                self.renew_upload_links(a).await?;
            }
        }
        Ok(wires)
    }
}

/// Where a page of messages is read from: a channel's partition, or a thread's index partition;
/// messages before `floor` are not part of it.
struct MessageSource {
    pk: String,
    index: Option<Index>,
    floor: Option<chrono::DateTime<chrono::Utc>>,
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
