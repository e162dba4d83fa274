//! The scheduler: one mechanism for everything time-driven. A timer is an item of the app table
//! keyed by what it is for (its kind and key, so one thing has at most one timer), listed on a
//! due-time index (`gsi1`, spread over a few shards) until it fires. Whoever runs timers (a task
//! in chat-local, the scheduler function in AWS) reads the index up to a moment and fires each
//! timer; firing claims the timer with a conditional write in the same transaction as its
//! effects, so a timer fires once however many runners see it, and survives restarts.

use crate::domain::ApiError;
use crate::service::Chat;
use crate::store::{Condition, Index, Item, Query, SkRange, StoreError, TableName, Write};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// Shards of the due-time index (so no single index partition takes every timer).
const SHARDS: u32 = 8;
/// Timers read per shard in one run.
const RUN_BATCH: usize = 100;

/// What a timer does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerKind {
    /// Unread reminders of a channel's members (`user.unread_message_reminder` to the hooks).
    UnreadReminder,
    /// A pending message's timeout (the longest `timeout_ms` of the `pending_message` hooks):
    /// still pending then, it is deleted.
    PendingMessage,
    /// A timed ban's end: lifted then, with `user.unbanned`.
    BanExpiry,
    /// A scheduled campaign's start (`scheduled_for`).
    CampaignStart,
    /// A campaign's `stop_at`.
    CampaignStop,
    /// A started campaign whose delivery may not have been queued (the starter stopped first):
    /// queued then unless it began.
    CampaignKick,
}

impl TimerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TimerKind::UnreadReminder => "unread_reminder",
            TimerKind::PendingMessage => "pending_message",
            TimerKind::BanExpiry => "ban_expiry",
            TimerKind::CampaignStart => "campaign_start",
            TimerKind::CampaignStop => "campaign_stop",
            TimerKind::CampaignKick => "campaign_kick",
        }
    }

    pub fn parse(s: &str) -> Option<TimerKind> {
        match s {
            "unread_reminder" => Some(TimerKind::UnreadReminder),
            "pending_message" => Some(TimerKind::PendingMessage),
            "ban_expiry" => Some(TimerKind::BanExpiry),
            "campaign_start" => Some(TimerKind::CampaignStart),
            "campaign_stop" => Some(TimerKind::CampaignStop),
            "campaign_kick" => Some(TimerKind::CampaignKick),
            _ => None,
        }
    }
}

/// A stored timer.
#[derive(Clone, Debug, PartialEq)]
pub struct Timer {
    pub kind: TimerKind,
    /// What it is about (for reminders: the channel's cid).
    pub key: String,
    pub due_at: DateTime<Utc>,
    /// The version it was read at: firing is conditioned on it.
    pub version: u64,
}

fn timer_key(kind: TimerKind, key: &str) -> (String, String) {
    (format!("timer#{}#{key}", kind.as_str()), "timer".into())
}

fn shard_of(key: &str) -> u32 {
    // FNV-1a: stable across processes and builds.
    let mut h: u32 = 0x811c_9dc5;
    for b in key.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % SHARDS
}

fn due_pk(shard: u32) -> String {
    format!("due#{shard}")
}

/// The index sort key: the due time in milliseconds, fixed width, so the index is in time order.
fn due_sk(due: DateTime<Utc>, kind: TimerKind, key: &str) -> String {
    format!(
        "{:015}#{}#{key}",
        due.timestamp_millis().max(0),
        kind.as_str()
    )
}

fn decode(item: &Item) -> Option<Timer> {
    let d = &item.data;
    Some(Timer {
        kind: TimerKind::parse(d["kind"].as_str()?)?,
        key: d["key"].as_str()?.to_string(),
        due_at: DateTime::from_timestamp_millis(d["due_ms"].as_i64()?)?,
        version: item.version,
    })
}

impl Timer {
    /// The write that removes this timer as it fires: it fails if the timer changed since it
    /// was read (someone else fired or moved it).
    pub fn claim(&self) -> Write {
        let (pk, sk) = timer_key(self.kind, &self.key);
        Write::Delete {
            table: TableName::App,
            pk,
            sk,
            condition: Condition::Version(self.version),
        }
    }
}

/// The write that sets a timer for `key` unless one is set (to go in the transaction of what
/// needs it).
pub fn timer_write(kind: TimerKind, key: &str, due: DateTime<Utc>) -> Write {
    match timer_replace_write(kind, key, due) {
        Write::Put { table, item, .. } => Write::Put {
            table,
            item,
            condition: Condition::NotExists,
        },
        other => other,
    }
}

/// The write that sets the timer for `key`, moving one already set.
pub fn timer_replace_write(kind: TimerKind, key: &str, due: DateTime<Utc>) -> Write {
    let (pk, sk) = timer_key(kind, key);
    let data = serde_json::json!({
        "kind": kind.as_str(),
        "key": key,
        "due_ms": due.timestamp_millis(),
    });
    let item = Item::new(pk, sk, data).with_gsi1(due_pk(shard_of(key)), due_sk(due, kind, key));
    Write::Put {
        table: TableName::App,
        item,
        condition: Condition::None,
    }
}

/// The write that removes the timer for `key`, if one is set.
pub fn timer_delete_write(kind: TimerKind, key: &str) -> Write {
    let (pk, sk) = timer_key(kind, key);
    Write::Delete {
        table: TableName::App,
        pk,
        sk,
        condition: Condition::None,
    }
}

impl Chat {
    /// Sets a timer for `key` unless one is set already; true when this call set it.
    pub async fn schedule_timer(
        &self,
        kind: TimerKind,
        key: &str,
        due: DateTime<Utc>,
    ) -> Result<bool, ApiError> {
        match self.store.write(timer_write(kind, key, due)).await {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The timer set for `key`, if any.
    pub async fn timer(&self, kind: TimerKind, key: &str) -> Result<Option<Timer>, ApiError> {
        let (pk, sk) = timer_key(kind, key);
        Ok(self
            .store
            .get(TableName::App, &pk, &sk)
            .await?
            .as_ref()
            .and_then(decode))
    }

    /// Timers due at or before `until`, earliest first within each shard.
    pub async fn due_timers(&self, until: DateTime<Utc>) -> Result<Vec<Timer>, ApiError> {
        let upto = format!("{:015}~", until.timestamp_millis().max(0));
        let mut out = Vec::new();
        for shard in 0..SHARDS {
            let page = self
                .store
                .query(
                    Query::new(TableName::App, due_pk(shard))
                        .index(Index::Gsi1)
                        .range(SkRange::Le(upto.clone()))
                        .limit(RUN_BATCH),
                )
                .await?;
            out.extend(page.items.iter().filter_map(decode));
        }
        Ok(out)
    }

    /// Fires one timer: its effects and its removal commit together, or not at all (it was
    /// fired or moved by someone else: nothing to do).
    pub async fn fire_timer(&self, timer: &Timer) -> Result<(), ApiError> {
        match timer.kind {
            TimerKind::UnreadReminder => self.fire_unread_reminder(timer).await,
            TimerKind::PendingMessage => self.fire_pending_timeout(timer).await,
            TimerKind::BanExpiry => self.fire_ban_expiry(timer).await,
            TimerKind::CampaignStart | TimerKind::CampaignStop | TimerKind::CampaignKick => {
                self.fire_campaign_timer(timer).await
            }
        }
    }

    /// A pending message's timeout: deleted (with its callback) if it is still pending.
    async fn fire_pending_timeout(&self, timer: &Timer) -> Result<(), ApiError> {
        if let Some(stored) = self.find_message(&timer.key).await? {
            if stored.message.pending {
                let session = crate::domain::caller::Session::server(self.app_settings().await?);
                let opts = crate::service::messages::DeleteMessageOptions {
                    hard: true,
                    ..Default::default()
                };
                self.delete_message(&session, &timer.key, opts).await?;
            }
        }
        // Done (or nothing left to do): the timer goes.
        match self.store.write(timer.claim()).await {
            Ok(()) | Err(StoreError::ConditionFailed) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Fires every timer due now; returns how many fired (chat-local runs this every second).
    pub async fn run_due_timers(&self) -> Result<usize, ApiError> {
        let due = self.due_timers(self.now()).await?;
        let mut fired = 0;
        for timer in &due {
            match self.fire_timer(timer).await {
                Ok(()) => fired += 1,
                Err(e) => tracing::warn!(
                    kind = timer.kind.as_str(), key = %timer.key, error = %e, "a timer failed"
                ),
            }
        }
        Ok(fired)
    }

    /// The AWS scheduler's handler: a scheduled event (every minute) fires the timers already
    /// due and hands the ones due within the next minute to `queue` with the delay left (so they
    /// fire to the second); a batch from that queue fires its timers. Returns the SQS batch
    /// failures (timers to be tried again).
    pub async fn on_scheduler_event(
        &self,
        queue: &dyn DelayQueue,
        event: &Value,
    ) -> Result<Value, ApiError> {
        let mut failures = Vec::new();
        if let Some(records) = event["Records"].as_array() {
            for record in records {
                let body: Value =
                    serde_json::from_str(record["body"].as_str().unwrap_or("")).unwrap_or_default();
                let (Some(kind), Some(key)) = (
                    body["kind"].as_str().and_then(TimerKind::parse),
                    body["key"].as_str(),
                ) else {
                    continue;
                };
                let fired = match self.timer(kind, key).await {
                    // Moved later since it was queued: a later run queues it again.
                    Ok(Some(t)) if t.due_at <= self.now() => self.fire_timer(&t).await,
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                };
                if let Err(e) = fired {
                    tracing::warn!(kind = kind.as_str(), key, error = %e, "a timer failed");
                    failures.push(serde_json::json!({ "itemIdentifier": record["messageId"] }));
                }
            }
            return Ok(serde_json::json!({ "batchItemFailures": failures }));
        }
        let now = self.now();
        let mut fired = 0;
        let mut queued = 0;
        for timer in self.due_timers(now + chrono::Duration::seconds(60)).await? {
            let wait = (timer.due_at - now).num_seconds();
            if wait <= 0 {
                if let Err(e) = self.fire_timer(&timer).await {
                    tracing::warn!(key = %timer.key, error = %e, "a timer failed");
                } else {
                    fired += 1;
                }
            } else {
                queue
                    .send_later(timer.kind.as_str(), &timer.key, wait as u32)
                    .await
                    .map_err(ApiError::internal)?;
                queued += 1;
            }
        }
        Ok(serde_json::json!({ "fired": fired, "queued": queued }))
    }
}

/// Where the AWS scheduler puts timers due within the minute: an SQS queue whose messages
/// become visible when the timer is due.
#[async_trait::async_trait]
pub trait DelayQueue: Send + Sync {
    async fn send_later(&self, kind: &str, key: &str, delay_secs: u32) -> Result<(), String>;
}

/// The scheduler's SQS queue (standard; `DelaySeconds` up to 15 minutes).
pub struct SqsDelayQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsDelayQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        SqsDelayQueue {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait::async_trait]
impl DelayQueue for SqsDelayQueue {
    async fn send_later(&self, kind: &str, key: &str, delay_secs: u32) -> Result<(), String> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(serde_json::json!({ "kind": kind, "key": key }).to_string())
            .delay_seconds(delay_secs.min(900) as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_keys_sort_by_time_and_shards_are_stable() {
        let a = DateTime::from_timestamp_millis(1_000).unwrap();
        let b = DateTime::from_timestamp_millis(20_000).unwrap();
        assert!(
            due_sk(a, TimerKind::UnreadReminder, "z") < due_sk(b, TimerKind::UnreadReminder, "a")
        );
        assert_eq!(shard_of("messaging:x"), shard_of("messaging:x"));
        assert!(shard_of("messaging:x") < SHARDS);
    }
}
