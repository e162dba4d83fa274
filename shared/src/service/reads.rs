//! Read and delivery state: mark read (one channel or all), mark unread, mark delivered, and the
//! user-level unread counts; each change written with its events.

use super::acting_user;
use super::channel_record::{channel_event, Loaded};
use super::member_record;
use super::members::contended;
use super::{contention_pause, Chat, CONTENDED_ATTEMPTS};
use crate::domain::caller::Session;
use crate::domain::channel::{Cid, Member, NewMember};
use crate::domain::clock::{format_time, parse_time};
use crate::domain::event::Event;
use crate::domain::message::Message;
use crate::domain::ApiError;
use crate::store::layout::{channel_messages_pk, memberships_pk, outbox_write};
use crate::store::{Index, Query, SkRange, StoreError, TableName};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// How far back "mark unread" may go (seed: within the last 100 messages).
const MAX_UNREAD_DEPTH: usize = 100;

/// Body of the read endpoints (`/read`, `/unread`, `channels/read`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReadRequest {
    pub message_id: Option<String>,
    pub thread_id: Option<String>,
    pub message_timestamp: Option<String>,
    pub user_id: Option<String>,
    pub user: Option<Map<String, Value>>,
}

/// Body of `POST /channels/delivered`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeliveredRequest {
    pub latest_delivered_messages: Vec<DeliveredMessage>,
    pub user_id: Option<String>,
    pub user: Option<Map<String, Value>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeliveredMessage {
    pub cid: String,
    pub id: String,
}

/// One user's unread counts (`GET /unread`).
#[derive(Clone, Debug, Default)]
struct UnreadCounts {
    total: u64,
    channels: Vec<Value>,
    by_type: std::collections::BTreeMap<String, (u64, u64)>,
    /// Threads with unread replies.
    threads: Vec<Value>,
}

impl UnreadCounts {
    fn unread_channels(&self) -> usize {
        self.channels
            .iter()
            .filter(|c| c["unread_count"].as_u64().unwrap_or(0) > 0)
            .count()
    }

    fn to_json(&self) -> Value {
        json!({
            "total_unread_count": self.total,
            "total_unread_threads_count": self.threads.len(),
            "channels": self.channels,
            "channel_type": self.by_type.iter().map(|(t, (n, u))| json!({"channel_type": t, "channel_count": n, "unread_count": u})).collect::<Vec<_>>(),
            "threads": self.threads,
        })
    }
}

impl Chat {
    fn reader(
        &self,
        session: &Session,
        user_id: &Option<String>,
        user: &Option<Map<String, Value>>,
    ) -> Result<String, ApiError> {
        acting_user(session, user_id, user).ok_or_else(|| {
            ApiError::field(
                "user_id",
                "user_id is required with server-side authentication",
            )
        })
    }

    /// The read position a mark read / unread moves, and the record that keeps it: the user's
    /// membership, or for a server-side call about a user who is not a member (a channel's
    /// creator, say), a read state of their own, created on first use as Stream does.
    fn read_position(
        session: &Session,
        loaded: &Loaded,
        user_id: &str,
        now: &str,
    ) -> Result<(Member, bool), ApiError> {
        match Self::membership(loaded, user_id) {
            Ok(m) => Ok((m.clone(), true)),
            Err(_) if session.caller.is_server() => {
                let known = loaded.readers.iter().find(|r| r.user_id == user_id);
                let reader = known.cloned().unwrap_or_else(|| {
                    let new = NewMember {
                        user_id: user_id.to_string(),
                        channel_role: None,
                        custom: Map::new(),
                    };
                    Member::new(new, false, None, now)
                });
                Ok((reader, false))
            }
            Err(e) => Err(e),
        }
    }

    fn membership<'a>(loaded: &'a Loaded, user_id: &str) -> Result<&'a Member, ApiError> {
        loaded
            .members
            .iter()
            .find(|m| m.user_id == user_id)
            .ok_or_else(|| {
                ApiError::input(format!(
                    "user {user_id:?} is not a member of channel {}",
                    loaded.channel.cid
                ))
            })
    }

    /// The channel's `counted_messages` up to and including the message at `sk` (or before it,
    /// with `inclusive` false): the seq of the newest counted message at or before that point.
    async fn seq_at(&self, cid: &str, sk: &str, inclusive: bool) -> Result<u64, ApiError> {
        let range = if inclusive {
            SkRange::Le(sk.to_string())
        } else {
            SkRange::Lt(sk.to_string())
        };
        let mut cursor = None;
        loop {
            let page = self
                .store
                .query(
                    Query::new(TableName::Messages, channel_messages_pk(cid))
                        .range(range.clone())
                        .backward()
                        .limit(50)
                        .start_after(cursor),
                )
                .await?;
            for item in &page.items {
                if let Some(seq) = item.data.get("seq").and_then(Value::as_u64) {
                    return Ok(seq);
                }
            }
            match page.last {
                Some(c) => cursor = Some(c),
                None => return Ok(0),
            }
        }
    }

    /// `POST /channels/{type}/{id}/read`: the member has read up to `message_id` (default: the
    /// newest message). Answers with the `message.read` event.
    pub async fn mark_read(
        &self,
        session: &Session,
        channel_type: &str,
        id: &str,
        req: ReadRequest,
    ) -> Result<Value, ApiError> {
        for attempt in 1..=CONTENDED_ATTEMPTS {
            if let Some(done) = self.mark_read_once(session, channel_type, id, &req).await? {
                return Ok(done);
            }
            contention_pause(attempt).await;
        }
        Err(contended(&format!("{channel_type}:{id}")))
    }

    /// One attempt at a mark read, conditioned on the read position's version (`None`: it
    /// changed or went meanwhile).
    async fn mark_read_once(
        &self,
        session: &Session,
        channel_type: &str,
        id: &str,
        req: &ReadRequest,
    ) -> Result<Option<Value>, ApiError> {
        let (cid, config, loaded) = self.readable_channel(session, channel_type, id).await?;
        let reader = self.reader(session, &req.user_id, &req.user)?;
        if let Some(thread_id) = &req.thread_id {
            // A thread read: the participant's position in it, not the channel's.
            self.mark_thread_read(thread_id, &reader).await?;
            let event = channel_event("message.read", &loaded.channel, self.now())
                .with("user", json!({ "id": reader }))
                .with("thread", json!({ "parent_message_id": thread_id }));
            self.store.write(outbox_write(&event)).await?;
            return Ok(Some(json!({ "event": event.to_json() })));
        }
        let (mut next, is_member) =
            Self::read_position(session, &loaded, &reader, &self.now_str())?;
        match &req.message_id {
            Some(mid) => {
                let stored = self
                    .find_message(mid)
                    .await?
                    .filter(|m| m.message.cid == cid)
                    .ok_or_else(|| {
                        ApiError::field(
                            "message_id",
                            format!("message {mid} is not in channel {cid}"),
                        )
                    })?;
                next.read.read_seq = self.seq_at(&cid, &stored.sk, true).await?;
                next.read.last_read_message_id = Some(mid.clone());
            }
            None => {
                next.read.read_seq = loaded.channel.counted_messages;
                next.read
                    .last_read_message_id
                    .clone_from(&loaded.channel.last_message_id);
            }
        }
        next.read.last_read = Some(self.now_str());
        let (user, _) = self
            .get_user(&reader)
            .await?
            .ok_or_else(|| ApiError::input(format!("user {reader:?} does not exist")))?;
        let user_json = user.to_json();
        let mut event = channel_event("message.read", &loaded.channel, self.now())
            .with("user", user_json.clone());
        if let Some(id) = &next.read.last_read_message_id {
            event = event.with("last_read_message_id", Value::String(id.clone()));
        }
        let mut writes = vec![member_record::put_read_position(&cid, &next, is_member)?];
        let effective = loaded.channel.effective_config(&config, &[])?;
        if effective.read_events && user.read_receipts_enabled() {
            writes.push(outbox_write(&event));
        }
        let counts = self
            .unread_counts_with(&reader, Some((&cid, &next)))
            .await?;
        writes.push(outbox_write(&self.mark_read_notice(
            &reader,
            &user_json,
            Some(&loaded),
            &counts,
            next.read.last_read_message_id.as_deref(),
        )));
        match self.store.transact(writes).await {
            Ok(()) => Ok(Some(json!({ "event": event.to_json() }))),
            Err(StoreError::TransactionCanceled { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn mark_read_notice(
        &self,
        reader: &str,
        user: &Value,
        loaded: Option<&Loaded>,
        counts: &UnreadCounts,
        last_read_message_id: Option<&str>,
    ) -> Event {
        let mut e = Event::new(
            "notification.mark_read",
            crate::domain::event::user_scope(reader),
            self.now(),
        )
        .with("user", user.clone())
        .with("total_unread_count", counts.total.into())
        .with("unread_channels", counts.unread_channels().into())
        .with("unread_count", 0.into());
        if let Some(l) = loaded {
            e = e
                .with("cid", Value::String(l.channel.cid.clone()))
                .with("channel_id", Value::String(l.channel.id.clone()))
                .with(
                    "channel_type",
                    Value::String(l.channel.channel_type.clone()),
                );
        }
        if let Some(id) = last_read_message_id {
            e = e.with("last_read_message_id", Value::String(id.to_string()));
        }
        e
    }

    /// `POST /channels/read`: every channel of the user read.
    pub async fn mark_all_read(
        &self,
        session: &Session,
        req: ReadRequest,
    ) -> Result<Value, ApiError> {
        let reader = self.reader(session, &req.user_id, &req.user)?;
        let (user, _) = self
            .get_user(&reader)
            .await?
            .ok_or_else(|| ApiError::input(format!("user {reader:?} does not exist")))?;
        let now = self.now_str();
        for cid in self.membership_cids(&reader).await? {
            // Each channel's read position moves under its version; a concurrent change to the
            // membership is read again (a removed member stays removed).
            for attempt in 1..=CONTENDED_ATTEMPTS {
                let Some(loaded) = self.load_channel(&cid).await? else {
                    break;
                };
                let Ok(member) = Self::membership(&loaded, &reader) else {
                    break;
                };
                if member.read.unread(loaded.channel.counted_messages) == 0 {
                    break;
                }
                let mut next = member.clone();
                next.read.read_seq = loaded.channel.counted_messages;
                next.read.last_read = Some(now.clone());
                next.read
                    .last_read_message_id
                    .clone_from(&loaded.channel.last_message_id);
                match self.store.write(member_record::put(&cid, &next)?).await {
                    Ok(()) => break,
                    Err(StoreError::ConditionFailed | StoreError::TransactionCanceled { .. }) => {
                        contention_pause(attempt).await
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let counts = self.unread_counts_with(&reader, None).await?;
        let notice = self.mark_read_notice(&reader, &user.to_json(), None, &counts, None);
        self.store.write(outbox_write(&notice)).await?;
        Ok(json!({}))
    }

    /// `POST /channels/{type}/{id}/unread`: the member's read position moves back to just before
    /// `message_id` (or the first message at `message_timestamp`), within the last 100 messages.
    pub async fn mark_unread(
        &self,
        session: &Session,
        channel_type: &str,
        id: &str,
        req: ReadRequest,
    ) -> Result<Value, ApiError> {
        for attempt in 1..=CONTENDED_ATTEMPTS {
            if let Some(done) = self
                .mark_unread_once(session, channel_type, id, &req)
                .await?
            {
                return Ok(done);
            }
            contention_pause(attempt).await;
        }
        Err(contended(&format!("{channel_type}:{id}")))
    }

    /// One attempt at a mark unread, conditioned like [`Self::mark_read_once`].
    async fn mark_unread_once(
        &self,
        session: &Session,
        channel_type: &str,
        id: &str,
        req: &ReadRequest,
    ) -> Result<Option<Value>, ApiError> {
        let (cid, _, loaded) = self.readable_channel(session, channel_type, id).await?;
        let reader = self.reader(session, &req.user_id, &req.user)?;
        if let Some(thread_id) = &req.thread_id {
            self.mark_thread_unread(thread_id, &reader).await?;
            let notice = Event::new(
                "notification.mark_unread",
                crate::domain::event::user_scope(&reader),
                self.now(),
            )
            .with("cid", Value::String(cid.clone()))
            .with("user", json!({ "id": reader }))
            .with("thread_id", Value::String(thread_id.clone()));
            self.store.write(outbox_write(&notice)).await?;
            return Ok(Some(json!({})));
        }
        let (member, is_member) = Self::read_position(session, &loaded, &reader, &self.now_str())?;
        let first_unread = match (&req.message_id, &req.message_timestamp) {
            (Some(mid), _) => self
                .find_message(mid)
                .await?
                .filter(|m| m.message.cid == cid)
                .ok_or_else(|| {
                    ApiError::field(
                        "message_id",
                        format!("message {mid} is not in channel {cid}"),
                    )
                })?,
            (None, Some(ts)) => {
                let t = parse_time(ts).ok_or_else(|| {
                    ApiError::field(
                        "message_timestamp",
                        "message_timestamp must be an RFC 3339 timestamp",
                    )
                })?;
                let sk = format!("{:016}", t.timestamp_micros());
                let page = self
                    .store
                    .query(
                        Query::new(TableName::Messages, channel_messages_pk(&cid))
                            .range(SkRange::Ge(sk))
                            .limit(1),
                    )
                    .await?;
                let item = page.items.into_iter().next().ok_or_else(|| {
                    ApiError::field(
                        "message_timestamp",
                        "no message at or after message_timestamp",
                    )
                })?;
                let mid = item.data["id"].as_str().unwrap_or_default().to_string();
                self.find_message(&mid)
                    .await?
                    .ok_or_else(|| ApiError::internal("message vanished"))?
            }
            (None, None) => {
                return Err(ApiError::field(
                    "message_id",
                    "message_id, message_timestamp or thread_id is required",
                ))
            }
        };
        let newer = self
            .store
            .query(
                Query::new(TableName::Messages, channel_messages_pk(&cid))
                    .range(SkRange::Gt(first_unread.sk.clone()))
                    .limit(MAX_UNREAD_DEPTH + 1),
            )
            .await?;
        if newer.items.len() >= MAX_UNREAD_DEPTH {
            return Err(ApiError::field(
                "message_id",
                format!("only the last {MAX_UNREAD_DEPTH} messages can be marked unread"),
            ));
        }
        let previous = self
            .store
            .query(
                Query::new(TableName::Messages, channel_messages_pk(&cid))
                    .range(SkRange::Lt(first_unread.sk.clone()))
                    .backward()
                    .limit(1),
            )
            .await?;
        let previous: Option<Message> = previous
            .items
            .into_iter()
            .next()
            .and_then(|i| serde_json::from_value(i.data).ok());
        let mut next = member.clone();
        next.read.read_seq = self.seq_at(&cid, &first_unread.sk, false).await?;
        next.read.last_read_message_id = previous.as_ref().map(|m| m.id.clone());
        let before = parse_time(&first_unread.message.created_at)
            .map(|t| t - chrono::Duration::microseconds(1));
        next.read.last_read = before
            .map(format_time)
            .or_else(|| previous.map(|m| m.created_at));
        let (user, _) = self
            .get_user(&reader)
            .await?
            .ok_or_else(|| ApiError::input(format!("user {reader:?} does not exist")))?;
        let counts = self
            .unread_counts_with(&reader, Some((&cid, &next)))
            .await?;
        let mut notice = Event::new(
            "notification.mark_unread",
            crate::domain::event::user_scope(&reader),
            self.now(),
        )
        .with("cid", Value::String(cid.clone()))
        .with("channel_id", Value::String(loaded.channel.id.clone()))
        .with(
            "channel_type",
            Value::String(loaded.channel.channel_type.clone()),
        )
        .with("user", user.to_json())
        .with(
            "first_unread_message_id",
            Value::String(first_unread.message.id.clone()),
        )
        .with(
            "unread_messages",
            next.read.unread(loaded.channel.counted_messages).into(),
        )
        .with("total_unread_count", counts.total.into())
        .with("unread_channels", counts.unread_channels().into())
        .with(
            "last_read_at",
            next.read
                .last_read
                .clone()
                .map(Value::String)
                .unwrap_or(Value::Null),
        );
        if let Some(id) = &next.read.last_read_message_id {
            notice = notice.with("last_read_message_id", Value::String(id.clone()));
        }
        match self
            .store
            .transact(vec![
                member_record::put_read_position(&cid, &next, is_member)?,
                super::unread_index::flag_write(&reader, &cid),
                outbox_write(&notice),
            ])
            .await
        {
            Ok(()) => Ok(Some(json!({}))),
            Err(StoreError::TransactionCanceled { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `POST /channels/delivered`: the user's newest delivered message per channel, where the type
    /// has `delivery_events` and the user shares delivery receipts.
    pub async fn mark_delivered(
        &self,
        session: &Session,
        req: DeliveredRequest,
    ) -> Result<Value, ApiError> {
        let reader = self.reader(session, &req.user_id, &req.user)?;
        if req.latest_delivered_messages.is_empty() {
            return Err(ApiError::field(
                "latest_delivered_messages",
                "latest_delivered_messages must not be empty",
            ));
        }
        let (user, _) = self
            .get_user(&reader)
            .await?
            .ok_or_else(|| ApiError::input(format!("user {reader:?} does not exist")))?;
        if !user.delivery_receipts_enabled() {
            return Ok(json!({}));
        }
        for d in &req.latest_delivered_messages {
            let cid = Cid::parse(&d.cid)?;
            let config = self.channel_config(&cid.channel_type).await?;
            for attempt in 1..=CONTENDED_ATTEMPTS {
                let Some(loaded) = self.load_channel(&d.cid).await? else {
                    break;
                };
                if !loaded
                    .channel
                    .effective_config(&config, &[])?
                    .delivery_events
                {
                    break;
                }
                let Ok(member) = Self::membership(&loaded, &reader) else {
                    break;
                };
                // Ids of messages that do not exist are taken as given (the SDK tests send such).
                let mut next = member.clone();
                next.read.last_delivered_at = Some(self.now_str());
                next.read.last_delivered_message_id = Some(d.id.clone());
                let event = channel_event("message.delivered", &loaded.channel, self.now())
                    .with("user", user.to_json())
                    .with("last_delivered_message_id", Value::String(d.id.clone()))
                    .with("last_delivered_at", Value::String(self.now_str()));
                match self
                    .store
                    .transact(vec![
                        member_record::put(&d.cid, &next)?,
                        outbox_write(&event),
                    ])
                    .await
                {
                    Ok(()) => break,
                    Err(StoreError::TransactionCanceled { .. }) => contention_pause(attempt).await,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(json!({}))
    }

    /// The cids of the user's memberships (the `gsi1` index).
    pub(crate) async fn membership_cids(&self, user_id: &str) -> Result<Vec<String>, ApiError> {
        let mut out = std::collections::BTreeSet::new();
        self.collect_index(Index::Gsi1, &memberships_pk(user_id), &mut out)
            .await?;
        Ok(out.into_iter().collect())
    }

    /// `GET /unread`: the user's unread messages over their joined channels; muted channels and
    /// pending invites do not count.
    pub async fn unread_counts(
        &self,
        session: &Session,
        user_id: Option<String>,
    ) -> Result<Value, ApiError> {
        let reader = self.reader(session, &user_id, &None)?;
        Ok(self.unread_counts_with(&reader, None).await?.to_json())
    }

    /// `POST /unread_batch`: the same for up to 100 users (server-side).
    pub async fn unread_counts_batch(
        &self,
        session: &Session,
        user_ids: Vec<String>,
    ) -> Result<Value, ApiError> {
        session
            .caller
            .require_server("unread counts of several users")?;
        if user_ids.len() > 100 {
            return Err(ApiError::field("user_ids", "at most 100 users at once"));
        }
        let mut by_user = Map::new();
        for id in user_ids {
            let counts = self.unread_counts_with(&id, None).await?.to_json();
            by_user.insert(id, counts);
        }
        Ok(json!({ "counts_by_user": by_user }))
    }

    /// Unread counts of a user, with `pending` standing in for a member state not yet committed.
    async fn unread_counts_with(
        &self,
        user_id: &str,
        pending: Option<(&str, &Member)>,
    ) -> Result<UnreadCounts, ApiError> {
        let muted = self.muted_cids(user_id).await?;
        let mut counts = UnreadCounts::default();
        for c in self.channel_unreads(user_id, &muted, pending).await? {
            counts.total += c.unread;
            let entry = counts.by_type.entry(c.channel_type).or_default();
            entry.0 += 1;
            entry.1 += c.unread;
            counts.channels.push(
                json!({ "channel_id": c.cid, "unread_count": c.unread, "last_read": c.last_read }),
            );
        }
        for (stored, me) in self.user_threads(user_id).await? {
            let unread = if muted.contains(&stored.thread.channel_cid) {
                0
            } else {
                me.unread(&stored.thread)
            };
            if unread > 0 {
                counts.threads.push(json!({
                    "parent_message_id": stored.thread.parent_message_id,
                    "unread_count": unread,
                    "last_read": me.last_read_at,
                }));
            }
        }
        Ok(counts)
    }
}

impl Chat {
    /// The channels a user muted (and not expired).
    pub(crate) async fn muted_cids(
        &self,
        user_id: &str,
    ) -> Result<std::collections::BTreeSet<String>, ApiError> {
        Ok(self
            .active_channel_mutes(user_id)
            .await?
            .into_iter()
            .map(|m| m.channel_cid)
            .collect())
    }
}

impl Chat {
    /// `me` of a connection: the user with unread totals, mutes and channel mutes.
    pub async fn own_user(&self, user_id: &str) -> Result<Value, ApiError> {
        let (user, _) = self
            .get_user(user_id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("user {user_id:?} does not exist")))?;
        let counts = self.unread_counts_with(user_id, None).await?;
        let mut me = user.to_json();
        let mutes = self.active_channel_mutes(user_id).await?;
        let mut channel_mutes = Vec::new();
        for m in &mutes {
            let channel = match self.load_channel(&m.channel_cid).await? {
                Some(l) => Value::Object(
                    l.channel
                        .to_wire(&crate::domain::channel::ChannelView::default()),
                ),
                None => json!({ "cid": m.channel_cid }),
            };
            channel_mutes.push(m.to_wire(json!({ "id": user_id }), channel));
        }
        me["channel_mutes"] = Value::Array(channel_mutes);
        let user_mutes = self.active_user_mutes(user_id).await?;
        me["mutes"] = Value::Array(self.user_mutes_wire(&user_mutes).await?);
        me["blocked_user_ids"] = self
            .user_blocks(user_id)
            .await?
            .into_iter()
            .map(|b| Value::String(b.blocked_user_id))
            .collect();
        me["devices"] = self
            .user_devices(user_id)
            .await?
            .iter()
            .map(crate::domain::device::Device::to_wire)
            .collect();
        if let Some(p) = self.push_preferences_of(user_id).await?.user {
            me["push_preferences"] = p.to_wire();
        }
        me["total_unread_count"] = counts.total.into();
        me["unread_count"] = counts.total.into();
        me["unread_channels"] = counts.unread_channels().into();
        me["unread_threads"] = counts.threads.len().into();
        Ok(me)
    }
}
