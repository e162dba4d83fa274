//! Unread reminders (seed "Unread Reminders"): a member who has not read a message of a channel
//! for longer than the app's `reminders_interval` (60–86,400 s, default 300) gets one
//! `user.unread_message_reminder` event to the hooks, with the channel (and its members) and
//! its last five messages, newest first; messages sent after a reminder bring another one. Only
//! for channels of at most 10 members whose type has `reminders` and `read_events`, and only
//! regular and system messages that are not deleted count.
//!
//! The hook dispatcher sets a channel's reminder timer when it hands off a `message.new` (so
//! the send path does no extra work, and nothing is scheduled for an app without hooks); when
//! the timer fires, every member's reminder and the record of what was reminded commit with the
//! timer's removal, and the timer is set again for messages not yet old enough.

use super::timers::{Timer, TimerKind};
use crate::domain::clock::{format_time, parse_time};
use crate::domain::event::Event;
use crate::domain::message::{Message, MessageAnchor, MessagePage, Viewer};
use crate::domain::ApiError;
use crate::service::Chat;
use crate::store::layout::outbox_write;
use crate::store::{Item, TableName, Write};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

/// Channels with more members get no reminders (seed: "The channel has 10 members or less").
pub const MAX_REMINDER_MEMBERS: usize = 10;
/// Messages a reminder carries (seed: "The last five messages in the channel").
const REMINDER_MESSAGES: usize = 5;
/// The newest messages of the channel a firing looks at.
const LOOKBACK: usize = 100;

fn reminded_key(cid: &str) -> (String, String) {
    (format!("reminded#{cid}"), "reminded".into())
}

/// Regular and system messages, not deleted, that count as unread.
fn counts_for_reminders(m: &Message) -> bool {
    m.deleted_at.is_none() && m.seq.is_some() && matches!(m.kind.as_str(), "regular" | "system")
}

impl Chat {
    /// A `message.new` was handed to the hooks: sets its channel's reminder timer (unless one is
    /// set) when the channel takes reminders.
    pub async fn note_message_for_reminders(
        &self,
        cid: &str,
        event: &Value,
    ) -> Result<(), ApiError> {
        let message = &event["message"];
        let kind = message["type"].as_str().unwrap_or("regular");
        if !matches!(kind, "regular" | "system") || message["silent"] == true {
            return Ok(());
        }
        let Some(channel_type) = event["channel_type"].as_str() else {
            return Ok(());
        };
        // Most channel types have no reminders: decided from the cached type alone.
        let Some((config, _)) = self.channel_type(channel_type).await? else {
            return Ok(());
        };
        if !config.reminders {
            return Ok(());
        }
        let Some(loaded) = self.load_channel(cid).await? else {
            return Ok(());
        };
        let effective = loaded.channel.effective_config(&config, &[])?;
        if !effective.reminders
            || !effective.read_events
            || loaded.members.len() > MAX_REMINDER_MEMBERS
        {
            return Ok(());
        }
        let interval = self.app_settings().await?.reminders_interval;
        let sent = message["created_at"]
            .as_str()
            .and_then(parse_time)
            .unwrap_or_else(|| self.now());
        self.schedule_timer(
            TimerKind::UnreadReminder,
            cid,
            sent + chrono::Duration::seconds(interval),
        )
        .await?;
        Ok(())
    }

    /// What each member was last reminded of (the newest message's time), and its version.
    async fn reminded(&self, cid: &str) -> Result<(Map<String, Value>, u64), ApiError> {
        let (pk, sk) = reminded_key(cid);
        Ok(match self.store.get(TableName::App, &pk, &sk).await? {
            Some(item) => (
                item.data["users"].as_object().cloned().unwrap_or_default(),
                item.version,
            ),
            None => (Map::new(), 0),
        })
    }

    pub(crate) async fn fire_unread_reminder(&self, timer: &Timer) -> Result<(), ApiError> {
        let cid = timer.key.as_str();
        let now = self.now();
        let interval = chrono::Duration::seconds(self.app_settings().await?.reminders_interval);
        let loaded = match self.load_channel(cid).await? {
            Some(l) => l,
            None => return self.drop_timer(timer).await,
        };
        let Some((config, _)) = self.channel_type(&loaded.channel.channel_type).await? else {
            return self.drop_timer(timer).await;
        };
        let effective = loaded.channel.effective_config(&config, &[])?;
        if !effective.reminders
            || !effective.read_events
            || loaded.members.len() > MAX_REMINDER_MEMBERS
        {
            return self.drop_timer(timer).await;
        }
        let (mut reminded, reminded_version) = self.reminded(cid).await?;
        let viewer = Viewer {
            user_id: None,
            reads_restricted: false,
            retained_since: None,
            blocked: Default::default(),
        };
        let page = MessagePage {
            anchor: MessageAnchor::Latest,
            limit: LOOKBACK,
        };
        let messages = self
            .channel_messages(&loaded.channel, None, &page, &viewer)
            .await?;
        let newest_seen = messages.last().map(|m| m.created_at.clone());
        let counted: Vec<&Message> = messages
            .iter()
            .filter(|m| counts_for_reminders(m))
            .collect();
        let mut events = Vec::new();
        let mut next_due: Option<DateTime<Utc>> = None;
        let mut reminded_users = Vec::new();
        for member in loaded.members.iter().filter(|m| m.is_joined()) {
            let since = reminded
                .get(&member.user_id)
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_default();
            let unread: Vec<&&Message> = counted
                .iter()
                .filter(|m| {
                    m.seq.unwrap_or(0) > member.read.read_seq
                        && m.user_id.as_deref() != Some(member.user_id.as_str())
                        && m.created_at > since
                })
                .collect();
            let (Some(oldest), Some(newest)) = (unread.first(), unread.last()) else {
                continue;
            };
            let due = parse_time(&oldest.created_at).unwrap_or(now) + interval;
            if due > now {
                next_due = Some(next_due.map_or(due, |d| d.min(due)));
                continue;
            }
            reminded.insert(
                member.user_id.clone(),
                Value::String(newest.created_at.clone()),
            );
            reminded_users.push(member.user_id.clone());
        }
        if !reminded_users.is_empty() {
            let mut ids: Vec<&str> = loaded.members.iter().map(|m| m.user_id.as_str()).collect();
            ids.extend(messages.iter().filter_map(|m| m.user_id.as_deref()));
            let users = self.users_by_id(&ids).await?;
            let user_json = |id: &str| crate::service::users::shown(&users, id);
            let creator = loaded.channel.created_by_id.as_deref();
            let mut channel = loaded
                .channel
                .to_wire(&crate::domain::channel::ChannelView::default());
            channel.insert(
                "members".into(),
                loaded
                    .members
                    .iter()
                    .map(|m| Value::Object(m.to_wire(Some(&user_json(&m.user_id)), creator)))
                    .collect::<Vec<_>>()
                    .into(),
            );
            let last_five: Vec<Message> = messages
                .iter()
                .rev()
                .filter(|m| m.deleted_at.is_none())
                .take(REMINDER_MESSAGES)
                .cloned()
                .collect();
            let last_five = self.messages_wire(&last_five, None).await?;
            let mut channels = Map::new();
            channels.insert(
                cid.to_string(),
                json!({ "channel": channel, "messages": last_five }),
            );
            for uid in &reminded_users {
                let event = Event::new(
                    "user.unread_message_reminder",
                    crate::domain::event::user_scope(uid),
                    now,
                )
                .with("user", user_json(uid))
                .with("channels", Value::Object(channels.clone()));
                events.push(outbox_write(&event));
            }
        }
        let mut writes = vec![timer.claim()];
        if !reminded_users.is_empty() {
            let (pk, sk) = reminded_key(cid);
            let item = Item::new(pk, sk, json!({ "users": reminded }));
            writes.push(Write::put_read_at(TableName::App, item, reminded_version));
        }
        writes.extend(events);
        match self.store.transact(writes).await {
            Ok(()) => {}
            // Fired or moved by someone else meanwhile.
            Err(crate::store::StoreError::TransactionCanceled { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        // Messages not old enough yet, and any sent while this ran, get the timer again.
        let latest = self
            .load_channel(cid)
            .await?
            .and_then(|l| l.channel.last_message_at)
            .filter(|at| Some(at) > newest_seen.as_ref())
            .and_then(|at| parse_time(&at))
            .map(|at| at + interval);
        let next = match (next_due, latest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(due) = next {
            self.schedule_timer(TimerKind::UnreadReminder, cid, due.max(now))
                .await?;
        }
        tracing::debug!(cid, reminded = reminded_users.len(), next = ?next.map(format_time), "unread reminders");
        Ok(())
    }

    /// Removes a timer that has nothing left to do.
    async fn drop_timer(&self, timer: &Timer) -> Result<(), ApiError> {
        match self.store.write(timer.claim()).await {
            Ok(()) | Err(crate::store::StoreError::ConditionFailed) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
