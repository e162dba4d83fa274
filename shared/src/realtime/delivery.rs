//! Delivering one outbox event: who hears it (its audience), what each recipient gets (their own
//! unread counts and `own_reactions`; nothing about a message they deleted for themselves or may
//! not see, nothing from a user they blocked, no notification about a user they muted), and the limits that protect clients (seed 003 "Throttling": 5 messages a second with
//! a burst credit of 10 per 8 s, busy channels spared read and typing events and given watching
//! events at most every 5 s). Audiences too large for one worker are split into ordered batches
//! for fan-out workers.

use super::{Gateway, GatewayError, BUSY_CHANNEL_WATCHERS};
use crate::domain::channel::Member;
use crate::domain::event::Scope;
use crate::domain::event_kind::EventKind;
use crate::domain::ApiError;
use crate::service::{channel_record, member_record, Chat};
use crate::store::layout::{channel_pk, deleted_for_pk, CHANNEL_SK, MEMBER_SK_PREFIX};
use crate::store::{query_all, Index, Query, SkRange, TableName};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Messages a connection receives per second (seed: "up to 5 messages per second").
pub const MESSAGES_PER_SECOND: usize = 5;
/// Messages a connection may receive above that rate within [`BURST_WINDOW_MS`].
pub const MESSAGE_BURST: usize = 10;
const BURST_WINDOW_MS: i64 = 8_000;
/// In a busy channel, `user.watching.start` / `.stop` go out at most this often.
const BUSY_WATCHING_EVERY_MS: i64 = 5_000;
/// Audiences up to this many connections are delivered by the worker that read the event;
/// larger ones go to the fan-out queue when there is one.
pub const INLINE_AUDIENCE: usize = 200;
/// A split audience is spread over this many ordering groups per channel; a connection is always
/// in the same group, so its events keep their order.
const SPLIT_GROUPS: u64 = 16;
/// Connections in one queued batch.
const SPLIT_BATCH: usize = 500;
/// Reactions read to give each recipient its `own_reactions`.
const OWN_REACTIONS_READ: usize = 1000;

/// Connection id → the user on it (empty for presence subscribers known only by connection).
pub type Audience = BTreeMap<String, String>;

/// Part of an event's audience, queued for a fan-out worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FanoutBatch {
    /// Batches of one group are delivered in the order they were queued.
    pub group: String,
    pub scope: String,
    pub event: Value,
    pub audience: Vec<(String, String)>,
}

/// Where large audiences go: a queue that fan-out workers read (SQS FIFO in AWS).
#[async_trait]
pub trait FanoutQueue: Send + Sync {
    async fn enqueue(&self, batches: Vec<FanoutBatch>) -> Result<(), String>;
}

/// A delivery worker: the gateway it posts through, the queue it splits large audiences to, and
/// the throttling state of what passed through it.
pub struct Delivery {
    gateway: Arc<dyn Gateway>,
    queue: Option<Arc<dyn FanoutQueue>>,
    inline_audience: usize,
    throttle_messages: bool,
    limits: Mutex<Limits>,
}

#[derive(Default)]
struct Limits {
    messages: HashMap<String, MessageWindow>,
    /// Busy channel → when it last had a watching event.
    watching: HashMap<String, i64>,
    admitted: u64,
}

/// One connection's recent messages: the last second's, and those over the rate within the
/// burst window.
#[derive(Default)]
struct MessageWindow {
    second: VecDeque<i64>,
    burst: VecDeque<i64>,
}

impl MessageWindow {
    fn forget_before(&mut self, now_ms: i64) {
        while self.second.front().is_some_and(|t| *t <= now_ms - 1_000) {
            self.second.pop_front();
        }
        while self
            .burst
            .front()
            .is_some_and(|t| *t <= now_ms - BURST_WINDOW_MS)
        {
            self.burst.pop_front();
        }
    }

    fn admit(&mut self, now_ms: i64) -> bool {
        self.forget_before(now_ms);
        if self.second.len() < MESSAGES_PER_SECOND {
            self.second.push_back(now_ms);
            true
        } else if self.burst.len() < MESSAGE_BURST {
            self.burst.push_back(now_ms);
            true
        } else {
            false
        }
    }
}

impl Delivery {
    pub fn new(gateway: Arc<dyn Gateway>) -> Self {
        Delivery {
            gateway,
            queue: None,
            inline_audience: INLINE_AUDIENCE,
            throttle_messages: true,
            limits: Mutex::default(),
        }
    }

    /// Audiences above `inline_audience` connections (by default [`INLINE_AUDIENCE`]) go to
    /// `queue`.
    pub fn with_queue(mut self, queue: Arc<dyn FanoutQueue>, inline_audience: usize) -> Self {
        self.queue = Some(queue);
        self.inline_audience = inline_audience;
        self
    }

    /// Message throttling on or off (seed: it "can be disabled" for an app).
    pub fn throttling_messages(mut self, on: bool) -> Self {
        self.throttle_messages = on;
        self
    }

    /// `CHAT_MESSAGE_THROTTLE=off` turns message throttling off.
    pub fn throttling_from_env(self) -> Self {
        let off = std::env::var("CHAT_MESSAGE_THROTTLE").is_ok_and(|v| v == "off");
        self.throttling_messages(!off)
    }

    pub fn gateway(&self) -> &dyn Gateway {
        self.gateway.as_ref()
    }

    /// Whether a connection may receive one more new message now.
    fn admit_message(&self, connection_id: &str, now_ms: i64) -> bool {
        if !self.throttle_messages {
            return true;
        }
        let Ok(mut limits) = self.limits.lock() else {
            return true;
        };
        limits.admitted += 1;
        if limits.admitted % 4096 == 0 {
            limits.messages.retain(|_, w| {
                w.forget_before(now_ms);
                !w.second.is_empty() || !w.burst.is_empty()
            });
        }
        limits
            .messages
            .entry(connection_id.to_string())
            .or_default()
            .admit(now_ms)
    }

    /// Whether a watching event of `cid` is dropped without reading its audience: the channel was
    /// busy at its last watching event, less than 5 s ago.
    fn watching_suppressed(&self, cid: &str, now_ms: i64) -> bool {
        self.limits.lock().is_ok_and(|limits| {
            limits
                .watching
                .get(cid)
                .is_some_and(|last| now_ms - last < BUSY_WATCHING_EVERY_MS)
        })
    }

    /// A watching event of `cid` goes out now; `busy` channels then get none for 5 s.
    fn watching_sent(&self, cid: &str, busy: bool, now_ms: i64) {
        if let Ok(mut limits) = self.limits.lock() {
            if busy {
                limits.watching.insert(cid.to_string(), now_ms);
            } else {
                limits.watching.remove(cid);
            }
        }
    }
}

/// What one recipient gets on top of the shared event: top-level fields and the message's
/// `own_reactions`.
#[derive(Default)]
struct Personal {
    fields: Map<String, Value>,
    own_reactions: Option<Value>,
}

impl Personal {
    /// The recipient's frame.
    fn frame(&self, event: &Value) -> String {
        let mut e = event.clone();
        if let Some(map) = e.as_object_mut() {
            map.extend(self.fields.clone());
        }
        if let Some(own) = &self.own_reactions {
            e["message"]["own_reactions"] = own.clone();
        }
        e.to_string()
    }

    /// Recipients with equal additions share one frame.
    fn key(&self) -> String {
        json!([self.fields, self.own_reactions]).to_string()
    }
}

impl Chat {
    /// Delivers one outbox event (its scope and document) to the connections it concerns:
    /// channel events to the channel's watchers, user events (`user:<id>`) to that user's
    /// connections (presence changes and profile updates also to their subscribers, profile
    /// updates to the watchers of the user's channels); `message.new` also reaches
    /// connected members who are not watching as `notification.message_new`. Returns the frames
    /// sent (queued batches count as their connections).
    pub async fn deliver(
        &self,
        out: &Delivery,
        scope: &str,
        event: &Value,
    ) -> Result<usize, ApiError> {
        let kind = EventKind::parse(event["type"].as_str().unwrap_or_default());
        if kind.is_some_and(EventKind::is_hooks_only) {
            return Ok(0);
        }
        let now_ms = self.now().timestamp_millis();
        let watching = matches!(
            kind,
            Some(EventKind::UserWatchingStart | EventKind::UserWatchingStop)
        );
        // Seed ("Automatic feature throttling"): busy channels get watching events at most every
        // 5 s; the ones in between are dropped before their audience is even read.
        if watching && out.watching_suppressed(scope, now_ms) {
            return Ok(0);
        }
        let mut event = event.clone();
        crate::domain::event::strip_markers(&mut event);
        let mut audience = Audience::new();
        if let Scope::User(uid) = Scope::parse(scope) {
            for c in self.user_connections(uid).await? {
                audience.insert(c.connection_id, c.user_id);
            }
            // Presence changes reach the user's presence subscribers; profile updates reach
            // them too, and the watchers of every channel the user is a member of (whose
            // member and message lists show the user).
            if matches!(
                kind,
                Some(EventKind::UserPresenceChanged | EventKind::UserUpdated)
            ) {
                for conn in self.presence_subscribers(uid).await? {
                    audience.entry(conn).or_default();
                }
            }
            if kind == Some(EventKind::UserUpdated) {
                for cid in self.membership_cids(uid).await? {
                    for w in self.channel_watches(&cid).await? {
                        audience.insert(w.connection_id, w.user_id);
                    }
                }
            }
        } else {
            for w in self.channel_watches(scope).await? {
                audience.insert(w.connection_id, w.user_id);
            }
            let watchers: BTreeSet<&String> = audience.values().collect();
            let busy = watchers.len() > BUSY_CHANNEL_WATCHERS;
            if kind == Some(EventKind::MessageNew) {
                event["watcher_count"] = watchers.len().into();
            }
            // Busy channels drop read and typing events.
            if busy
                && matches!(
                    kind,
                    Some(EventKind::MessageRead | EventKind::TypingStart | EventKind::TypingStop)
                )
            {
                return Ok(0);
            }
            if watching {
                out.watching_sent(scope, busy, now_ms);
            }
        }
        let mut sent = 0;
        match &out.queue {
            Some(queue) if audience.len() > out.inline_audience => {
                queue
                    .enqueue(split(scope, &event, &audience))
                    .await
                    .map_err(ApiError::internal)?;
                sent += audience.len();
            }
            // Nobody watching: nothing to read about recipients.
            _ if audience.is_empty() => {}
            _ => sent += self.deliver_to(out, scope, &event, &audience, true).await?,
        }
        if kind == Some(EventKind::MessageNew) && Scope::parse(scope).is_channel() {
            sent += self
                .notify_members_not_watching(out, scope, &event, &audience)
                .await?;
        }
        Ok(sent)
    }

    /// A batch a fan-out worker took from the queue: part of a large audience, so every
    /// recipient gets the shared event.
    pub async fn deliver_batch(
        &self,
        out: &Delivery,
        batch: &FanoutBatch,
    ) -> Result<usize, ApiError> {
        let audience: Audience = batch.audience.iter().cloned().collect();
        self.deliver_to(out, &batch.scope, &batch.event, &audience, false)
            .await
    }

    /// Sends `event` to each connection of `audience` it may reach, as that recipient sees it
    /// (with per-recipient fields when `personalize` and the audience is small enough).
    async fn deliver_to(
        &self,
        out: &Delivery,
        scope: &str,
        event: &Value,
        audience: &Audience,
        personalize: bool,
    ) -> Result<usize, ApiError> {
        let kind = event["type"].as_str().unwrap_or_default();
        let users: BTreeSet<&str> = audience
            .values()
            .map(String::as_str)
            .filter(|u| !u.is_empty())
            .collect();
        let hidden = self.hidden_from(scope, event, &users).await?;
        let personal = if personalize {
            self.personal_fields(scope, event, &users).await?
        } else {
            HashMap::new()
        };
        let sender = event["message"]["user"]["id"].as_str().unwrap_or_default();
        let now_ms = self.now().timestamp_millis();
        let shared_frame = event.to_string();
        let mut frames: HashMap<String, String> = HashMap::new();
        let mut sent = 0;
        for (conn, user) in audience {
            if hidden.contains(user.as_str()) {
                continue;
            }
            if kind == EventKind::MessageNew.as_str()
                && user != sender
                && !out.admit_message(conn, now_ms)
            {
                continue;
            }
            let frame = match personal.get(user.as_str()) {
                None => &shared_frame,
                Some(p) => frames.entry(p.key()).or_insert_with(|| p.frame(event)),
            };
            sent += self.post_frame(out, conn, frame).await?;
        }
        Ok(sent)
    }

    /// Users of the audience who must not get this event: restricted-visibility messages reach
    /// only their audience, and events about a message someone deleted for themselves skip them.
    async fn hidden_from(
        &self,
        scope: &str,
        event: &Value,
        users: &BTreeSet<&str>,
    ) -> Result<BTreeSet<String>, ApiError> {
        let mut hidden = BTreeSet::new();
        let message = &event["message"];
        // A shadow-banned author's message: only the author hears of it.
        if message["shadowed"] == true {
            let author = message["user"]["id"].as_str().unwrap_or_default();
            hidden.extend(
                users
                    .iter()
                    .filter(|u| **u != author)
                    .map(|u| u.to_string()),
            );
            hidden.insert(String::new());
        }
        if let Some(allowed) = message["restricted_visibility"]
            .as_array()
            .filter(|a| !a.is_empty())
        {
            let allowed: BTreeSet<&str> = allowed
                .iter()
                .filter_map(Value::as_str)
                .chain(message["user"]["id"].as_str())
                .collect();
            hidden.extend(
                users
                    .iter()
                    .filter(|u| !allowed.contains(*u))
                    .map(|u| u.to_string()),
            );
            // Presence-only subscribers (no user) never see a restricted message.
            hidden.insert(String::new());
        }
        // A user who blocked someone hears nothing of their messages, reactions and typing.
        if Scope::parse(scope).is_channel() {
            let kind = event["type"].as_str().unwrap_or_default();
            let actor = event["user"]["id"]
                .as_str()
                .filter(|_| kind.starts_with("typing.") || kind.starts_with("reaction."));
            let authors: BTreeSet<&str> = [message["user"]["id"].as_str(), actor]
                .into_iter()
                .flatten()
                .collect();
            for author in authors {
                hidden.extend(
                    self.who_blocked(author)
                        .await?
                        .into_iter()
                        .filter(|u| users.contains(u.as_str())),
                );
            }
        }
        if let (Some(id), false) = (
            message["id"].as_str(),
            event["type"] == EventKind::MessageNew.as_str() || !Scope::parse(scope).is_channel(),
        ) {
            let page = self
                .store
                .query(
                    Query::new(TableName::Messages, deleted_for_pk(id))
                        .index(Index::Gsi1)
                        .limit(1000),
                )
                .await?;
            hidden.extend(page.items.into_iter().filter_map(|i| i.gsi1.map(|k| k.sk)));
        }
        Ok(hidden)
    }

    /// Per-recipient fields of an event, for audiences of at most [`BUSY_CHANNEL_WATCHERS`]
    /// users: a new message carries each member's `unread_count`, `total_unread_count` and
    /// `unread_channels`; an event about a message with reactions carries each recipient's
    /// `own_reactions`.
    async fn personal_fields(
        &self,
        scope: &str,
        event: &Value,
        users: &BTreeSet<&str>,
    ) -> Result<HashMap<String, Personal>, ApiError> {
        let mut out: HashMap<String, Personal> = HashMap::new();
        if users.len() > BUSY_CHANNEL_WATCHERS || !Scope::parse(scope).is_channel() {
            return Ok(out);
        }
        if event["type"] == EventKind::MessageNew.as_str() {
            for u in self.joined_members(scope, users).await? {
                let fields = self.unread_fields(&u, scope).await?;
                out.entry(u).or_default().fields = fields;
            }
        }
        let message = &event["message"];
        let has_reactions = message["reaction_counts"]
            .as_object()
            .is_some_and(|c| !c.is_empty());
        if let (Some(id), true) = (message["id"].as_str(), has_reactions) {
            let mut by_user = self.reactions_by_user(id, OWN_REACTIONS_READ).await?;
            for u in users {
                if let Some(own) = by_user.remove(*u) {
                    out.entry(u.to_string()).or_default().own_reactions = Some(Value::Array(own));
                }
            }
        }
        Ok(out)
    }

    /// Which of `users` are joined members of `cid` (one batch read of their member items).
    async fn joined_members(
        &self,
        cid: &str,
        users: &BTreeSet<&str>,
    ) -> Result<Vec<String>, ApiError> {
        let keys: Vec<(String, String)> =
            users.iter().map(|u| member_record::key(cid, u)).collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .store
            .batch_get(TableName::Channels, &keys)
            .await?
            .into_iter()
            .filter_map(|i| member_record::decode(i).ok())
            .filter(Member::is_joined)
            .map(|m| m.user_id)
            .collect())
    }

    /// A joined member's `unread_count` in `cid` with their `total_unread_count` and
    /// `unread_channels`.
    async fn unread_fields(
        &self,
        user_id: &str,
        cid: &str,
    ) -> Result<Map<String, Value>, ApiError> {
        let muted = self.muted_cids(user_id).await?;
        let unreads = self.channel_unreads(user_id, &muted, None).await?;
        let here = unreads
            .iter()
            .find(|c| c.cid == cid)
            .map_or(0, |c| c.unread);
        let total: u64 = unreads.iter().map(|c| c.unread).sum();
        let mut fields = Map::new();
        fields.insert("unread_count".into(), here.into());
        fields.insert("total_unread_count".into(), total.into());
        fields.insert("unread_channels".into(), unreads.len().into());
        Ok(fields)
    }

    async fn post_frame(
        &self,
        out: &Delivery,
        connection_id: &str,
        frame: &str,
    ) -> Result<usize, ApiError> {
        match out.gateway.post(connection_id, frame).await {
            Ok(()) => Ok(1),
            Err(GatewayError::Gone) => {
                self.close_connection(connection_id).await?;
                Ok(0)
            }
            Err(GatewayError::Other(e)) => {
                tracing::warn!(connection = connection_id, error = %e, "delivery failed");
                Ok(0)
            }
        }
    }

    /// `notification.message_new` to members with a connection that does not watch the channel,
    /// with their unread counts.
    async fn notify_members_not_watching(
        &self,
        out: &Delivery,
        cid: &str,
        event: &Value,
        watching: &Audience,
    ) -> Result<usize, ApiError> {
        let message = &event["message"];
        if message["restricted_visibility"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
            || (message["parent_id"].is_string() && message["show_in_channel"] != true)
            || message["shadowed"] == true
        {
            return Ok(0);
        }
        // The members by key alone, then which of them may be connected (one batch read), and
        // only those members' items: a channel whose members are offline costs two reads.
        let member_ids: Vec<String> = query_all(
            self.store.as_ref(),
            Query::new(TableName::Channels, channel_pk(cid))
                .range(SkRange::BeginsWith(MEMBER_SK_PREFIX.into()))
                .keys_only(),
        )
        .await?
        .into_iter()
        .filter_map(|i| i.sk.strip_prefix(MEMBER_SK_PREFIX).map(str::to_string))
        .collect();
        let watchers: BTreeSet<&String> = watching.values().collect();
        let sender = event["user"]["id"].as_str().unwrap_or_default();
        let others: Vec<&str> = member_ids
            .iter()
            .filter(|u| *u != sender && !watchers.contains(u))
            .map(String::as_str)
            .collect();
        let connected = self.maybe_connected(&others).await?;
        if connected.is_empty() {
            return Ok(0);
        }
        let keys: Vec<(String, String)> = connected
            .iter()
            .map(|u| member_record::key(cid, u))
            .chain([(channel_pk(cid), CHANNEL_SK.to_string())])
            .collect();
        let mut channel = None;
        let mut members = Vec::new();
        for item in self.store.batch_get(TableName::Channels, &keys).await? {
            if item.sk == CHANNEL_SK {
                channel = channel_record::decode(item).ok().map(|(c, _)| c);
            } else if let Ok(m) = member_record::decode(item) {
                members.push(m);
            }
        }
        let Some(mut channel) = channel.filter(|c| c.deleted_at.is_none()) else {
            return Ok(0);
        };
        channel.member_count = member_ids.len() as u32;
        // No notification about a user the member muted or blocked.
        let mut quiet = self.who_muted(sender).await?;
        quiet.extend(self.who_blocked(sender).await?);
        let mut recipients = Vec::new();
        for m in members
            .iter()
            .filter(|m| m.is_joined() && !quiet.contains(&m.user_id))
        {
            let conns = self.user_connections(&m.user_id).await?;
            if !conns.is_empty() {
                recipients.push((m, conns));
            }
        }
        let mut notice = event.clone();
        notice["type"] = Value::String(EventKind::NotificationMessageNew.as_str().into());
        notice["channel"] =
            Value::Object(channel.to_wire(&crate::domain::channel::ChannelView::default()));
        notice["channel_member_count"] = channel.member_count.into();
        if let Some(map) = notice.as_object_mut() {
            map.remove("watcher_count");
        }
        let personal = recipients.len() <= BUSY_CHANNEL_WATCHERS;
        let mut sent = 0;
        for (m, conns) in recipients {
            let mut mine = notice.clone();
            let fields = if personal {
                Some(self.unread_fields(&m.user_id, cid).await?)
            } else {
                None
            };
            match (fields, mine.as_object_mut()) {
                (Some(fields), Some(map)) => map.extend(fields),
                _ => mine["unread_count"] = m.read.unread(channel.counted_messages).into(),
            }
            let frame = mine.to_string();
            for c in conns {
                sent += self.post_frame(out, &c.connection_id, &frame).await?;
            }
        }
        Ok(sent)
    }
}

/// The batches of a large audience: each connection in a fixed group of the channel, each group's
/// connections in batches of at most [`SPLIT_BATCH`].
fn split(scope: &str, event: &Value, audience: &Audience) -> Vec<FanoutBatch> {
    let mut groups: BTreeMap<u64, Vec<(String, String)>> = BTreeMap::new();
    for (conn, user) in audience {
        groups
            .entry(group_of(conn))
            .or_default()
            .push((conn.clone(), user.clone()));
    }
    let mut out = Vec::new();
    for (g, members) in groups {
        for chunk in members.chunks(SPLIT_BATCH) {
            out.push(FanoutBatch {
                group: format!("{scope}#{g}"),
                scope: scope.to_string(),
                event: event.clone(),
                audience: chunk.to_vec(),
            });
        }
    }
    out
}

/// A connection's group: a stable hash (FNV-1a) of its id.
fn group_of(connection_id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in connection_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % SPLIT_GROUPS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_a_second_then_a_burst_of_ten_per_eight_seconds() {
        let mut w = MessageWindow::default();
        // 40 messages within one second: 5 at the rate, 10 from the burst credit.
        let admitted = (0..40).filter(|i| w.admit(i * 20)).count();
        assert_eq!(admitted, MESSAGES_PER_SECOND + MESSAGE_BURST);
        // The next second: the rate again, but the burst credit is spent.
        let admitted = (0..40).filter(|i| w.admit(1_000 + i * 20)).count();
        assert_eq!(admitted, MESSAGES_PER_SECOND);
        // Once the 8 s window has passed, the burst credit is back.
        let admitted = (0..40).filter(|i| w.admit(9_000 + i * 20)).count();
        assert_eq!(admitted, MESSAGES_PER_SECOND + MESSAGE_BURST);
    }

    #[test]
    fn a_steady_five_a_second_is_never_dropped() {
        let mut w = MessageWindow::default();
        assert!((0..200).all(|i| w.admit(i * 200)));
    }

    #[test]
    fn watching_events_of_a_busy_channel_go_out_once_per_five_seconds() {
        struct Nowhere;
        #[async_trait]
        impl Gateway for Nowhere {
            async fn post(&self, _: &str, _: &str) -> Result<(), GatewayError> {
                Ok(())
            }
            async fn close(&self, _: &str) -> Result<(), GatewayError> {
                Ok(())
            }
        }
        let d = Delivery::new(Arc::new(Nowhere));
        assert!(!d.watching_suppressed("livestream:a", 0));
        d.watching_sent("livestream:a", true, 0);
        assert!(d.watching_suppressed("livestream:a", 4_999));
        assert!(!d.watching_suppressed("livestream:b", 4_999));
        assert!(!d.watching_suppressed("livestream:a", 5_000));
        // A quiet channel is never held back.
        d.watching_sent("messaging:c", false, 0);
        assert!(!d.watching_suppressed("messaging:c", 1));
    }

    #[test]
    fn a_split_audience_keeps_each_connection_in_one_group() {
        let audience: Audience = (0..1200)
            .map(|i| (format!("conn-{i}"), format!("user-{i}")))
            .collect();
        let event = json!({"type": "message.new"});
        let batches = split("livestream:x", &event, &audience);
        let total: usize = batches.iter().map(|b| b.audience.len()).sum();
        assert_eq!(total, 1200);
        assert!(batches.iter().all(|b| b.audience.len() <= SPLIT_BATCH));
        for b in &batches {
            for (conn, _) in &b.audience {
                assert_eq!(b.group, format!("livestream:x#{}", group_of(conn)));
            }
        }
    }
}
