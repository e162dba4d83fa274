//! Push notifications, off the event pipeline (never on the send path): each committed
//! `message.new` goes to the devices of the members who should hear about it, through the
//! app's push providers (`service::push_providers`), straight to APNs or FCM (`send`). The
//! caller owns the position in the outbox, as for hooks: chat-local's dispatcher, the
//! stream-hooks function in AWS.
//!
//! Who gets a push (Stream's delivery rules): joined members of the channel, never the sender;
//! for a thread reply only the thread's participants (its author, repliers, the mentioned); for
//! a message with `restricted_visibility` only those users; none when the message was sent with
//! `skip_push`, is shadowed, or the channel type has `push_notifications: false`. Members who
//! watch the channel see the message live and get none (with `push_config.offline_only`, any
//! member with a connection gets none); nor does a member who muted the channel or the sender,
//! or who blocked the sender in a one-to-one channel; nor whose push preferences (theirs for the
//! channel, else their own) say `none`, or mentions only when the message does not mention
//! them, or who snoozed pushes (`disabled_until`). The badge is the receiver's unread count.
//!
//! Each push is tried three times (0.5 s, then 1 s apart) when the service is throttled or
//! unreachable, after which that provider is skipped for 30 s (its pushes counted as failed), so
//! a dead service does not hold up the hooks sharing the pipeline; a token the service calls
//! invalid removes its device. Counts of pushes sent,
//! failed and devices removed are kept and logged per batch.

pub mod payload;
pub mod send;
pub mod sns;

use crate::domain::device::Device;
use crate::domain::event::{Scope, SKIP_PUSH};
use crate::domain::event_kind::EventKind;
use crate::domain::push_preference::wants_push;
use crate::domain::push_provider::PushProvider;
use crate::domain::ApiError;
use crate::hooks::OutboxEvent;
pub use crate::hooks::Retry;
use crate::service::push_providers::PushSettings;
use crate::service::Chat;
use futures::StreamExt;
use payload::Push;
use send::{Outcome, Senders};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Receivers pushed to at once.
const CONCURRENT_RECEIVERS: usize = 16;

/// Running totals of the pushes this process sent.
#[derive(Debug, Default)]
pub struct Counts {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub devices_removed: AtomicU64,
}

/// What one dispatch did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Dispatched {
    pub sent: u64,
    pub failed: u64,
    pub devices_removed: u64,
}

impl Dispatched {
    fn add(&mut self, other: Dispatched) {
        self.sent += other.sent;
        self.failed += other.failed;
        self.devices_removed += other.devices_removed;
    }
}

/// Sends the app's pushes: straight to the services, or through SNS when the deployment says so.
#[derive(Default)]
pub struct Pushes {
    senders: Senders,
    sns: Option<sns::SnsPush>,
    retry: Retry,
    /// Providers that failed lately (by `<type>:<name>`), skipped for 30 s.
    failing: crate::hooks::FailingTargets,
    pub counts: Counts,
}

impl Pushes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Pushes through SNS instead of straight to the services.
    pub fn with_sns(mut self, sns: sns::SnsPush) -> Self {
        self.sns = Some(sns);
        self
    }

    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Whether the app has a provider to push through (a dispatcher with none has nothing to do).
    pub async fn any_provider(chat: &Chat) -> Result<bool, ApiError> {
        let settings = chat.app_settings().await?;
        Ok(!chat.push_settings(&settings).await?.providers.is_empty())
    }

    /// Pushes for `events` (in their order). Provider failures are counted and logged, never
    /// returned: errors are the store's, and the caller retries the batch then.
    pub async fn dispatch(
        &self,
        chat: &Chat,
        events: &[OutboxEvent],
    ) -> Result<Dispatched, ApiError> {
        let settings = chat.app_settings().await?;
        let push = chat.push_settings(&settings).await?;
        let mut done = Dispatched::default();
        if push.providers.is_empty() {
            return Ok(done);
        }
        for e in events {
            if e.event["type"] == EventKind::MessageNew.as_str()
                && Scope::parse(&e.scope).is_channel()
                && e.event[SKIP_PUSH] != true
            {
                done.add(self.message_new(chat, &push, &e.scope, &e.event).await?);
            }
        }
        if done != Dispatched::default() {
            tracing::info!(
                sent = done.sent,
                failed = done.failed,
                devices_removed = done.devices_removed,
                total_sent = self.counts.sent.load(Ordering::Relaxed),
                total_failed = self.counts.failed.load(Ordering::Relaxed),
                "pushes"
            );
        }
        Ok(done)
    }

    async fn message_new(
        &self,
        chat: &Chat,
        push: &PushSettings,
        cid: &str,
        event: &Value,
    ) -> Result<Dispatched, ApiError> {
        let message = &event["message"];
        let receivers = receivers(chat, push, cid, message).await?;
        let runs = futures::stream::iter(receivers.into_iter().map(|(user_id, devices, muted)| async move {
            let badge: u64 = chat
                .channel_unreads(&user_id, &muted, None)
                .await?
                .iter()
                .map(|c| c.unread)
                .sum();
            let p = Push::of_message("message.new", message, &user_id, badge);
            let mut done = Dispatched::default();
            for device in &devices {
                let Some(provider) =
                    push.for_device(device.push_provider, device.push_provider_name.as_deref())
                else {
                    continue;
                };
                match self.deliver(chat, provider, device, &p).await {
                    Outcome::Delivered => done.sent += 1,
                    Outcome::InvalidToken(why) => {
                        tracing::info!(user = %user_id, provider = %provider.kind, reason = %why, "push token invalid; device removed");
                        chat.drop_invalid_device(&user_id, &device.id).await?;
                        done.devices_removed += 1;
                    }
                    Outcome::Retry(why) | Outcome::Failed(why) => {
                        tracing::warn!(user = %user_id, provider = %provider.kind, error = %why, "push not delivered");
                        done.failed += 1;
                    }
                }
            }
            Ok::<_, ApiError>(done)
        }))
        .buffer_unordered(CONCURRENT_RECEIVERS)
        .collect::<Vec<_>>()
        .await;
        let mut done = Dispatched::default();
        for run in runs {
            done.add(run?);
        }
        self.counts.sent.fetch_add(done.sent, Ordering::Relaxed);
        self.counts.failed.fetch_add(done.failed, Ordering::Relaxed);
        self.counts
            .devices_removed
            .fetch_add(done.devices_removed, Ordering::Relaxed);
        Ok(done)
    }

    /// One push to one device through its provider, with the retry budget.
    pub async fn deliver(
        &self,
        chat: &Chat,
        provider: &PushProvider,
        device: &Device,
        push: &Push,
    ) -> Outcome {
        let circuit = format!("{}:{}", provider.kind, provider.name);
        if let Some(until) = self.failing.skipped_until(&circuit) {
            return Outcome::Failed(format!(
                "not tried: the push provider failed lately and is skipped for {} s",
                until.saturating_duration_since(Instant::now()).as_secs()
            ));
        }
        let mut backoff = self.retry.first_backoff;
        let mut outcome = Outcome::Failed("not tried".into());
        for attempt in 1..=self.retry.attempts.max(1) {
            outcome = match (&self.sns, provider.kind.as_str()) {
                (Some(sns), _) => sns.deliver(chat, provider, device, push).await,
                (None, "apn") => {
                    self.senders
                        .apns(provider, &device.id, device.voip, &push.apns())
                        .await
                }
                (None, "firebase") => self.senders.fcm(provider, &device.id, &push.fcm()).await,
                (None, other) => {
                    Outcome::Failed(format!("push delivery to {other} is not supported"))
                }
            };
            if !matches!(outcome, Outcome::Retry(_)) || attempt == self.retry.attempts {
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        // A service that stays unreachable or throttled is skipped for a while, so it does
        // not hold up the pipeline's hooks and the other providers.
        match &outcome {
            Outcome::Retry(_) => self.failing.open(&circuit),
            Outcome::Delivered | Outcome::InvalidToken(_) => self.failing.close(&circuit),
            Outcome::Failed(_) => {}
        }
        outcome
    }
}

/// The members who should hear about `message` in `cid`, with their devices and the channels
/// they muted (for their badge).
async fn receivers(
    chat: &Chat,
    push: &PushSettings,
    cid: &str,
    message: &Value,
) -> Result<Vec<(String, Vec<Device>, BTreeSet<String>)>, ApiError> {
    if message["shadowed"] == true
        || matches!(message["type"].as_str(), Some("error" | "ephemeral"))
    {
        return Ok(Vec::new());
    }
    let Some(loaded) = chat.load_channel(cid).await? else {
        return Ok(Vec::new());
    };
    if !chat
        .channel_config(&loaded.channel.channel_type)
        .await?
        .push_notifications
    {
        return Ok(Vec::new());
    }
    let sender = message["user"]["id"].as_str().unwrap_or_default();
    let ids = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|u| u.as_str().or(u["id"].as_str()).map(str::to_string))
            .collect()
    };
    let restricted = ids(&message["restricted_visibility"]);
    let mentioned = ids(&message["mentioned_users"]);
    let mut wanted: Option<BTreeSet<String>> = (!restricted.is_empty()).then_some(restricted);
    if let Some(parent) = message["parent_id"].as_str() {
        let mut part = mentioned.clone();
        if let Some(t) = chat.load_thread(parent).await? {
            part.insert(t.thread.created_by_user_id);
            part.extend(t.participants.into_iter().map(|p| p.user_id));
        }
        wanted = Some(match wanted {
            Some(w) => w.intersection(&part).cloned().collect(),
            None => part,
        });
    }
    let watching: BTreeSet<String> = chat
        .channel_watches(cid)
        .await?
        .into_iter()
        .map(|w| w.user_id)
        .collect();
    let one_to_one = loaded.members.len() == 2;
    let mut out = Vec::new();
    for member in loaded.members.iter().filter(|m| m.is_joined()) {
        let uid = member.user_id.as_str();
        if uid == sender || wanted.as_ref().is_some_and(|w| !w.contains(uid)) {
            continue;
        }
        let devices = chat.user_devices(uid).await?;
        if devices.is_empty() {
            continue;
        }
        let online = if push.config.offline_only {
            !chat.user_connections(uid).await?.is_empty()
        } else {
            watching.contains(uid)
        };
        if online {
            continue;
        }
        let muted = chat.muted_cids(uid).await?;
        if muted.contains(cid) {
            continue;
        }
        let prefs = chat.push_preferences_of(uid).await?;
        if !wants_push(
            prefs.user.as_ref(),
            prefs.channels.get(cid),
            mentioned.contains(uid),
            chat.now(),
        ) {
            continue;
        }
        if chat
            .active_user_mutes(uid)
            .await?
            .iter()
            .any(|m| m.target_id == sender)
        {
            continue;
        }
        if one_to_one
            && chat
                .user_blocks(uid)
                .await?
                .iter()
                .any(|b| b.blocked_user_id == sender)
        {
            continue;
        }
        out.push((uid.to_string(), devices, muted));
    }
    Ok(out)
}
