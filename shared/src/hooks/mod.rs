//! The event pipeline to the customer: every outbox event reaches every enabled hook whose
//! filter takes it (webhooks, SQS queues, SNS topics; `targets`), shaped as Stream's webhooks
//! shape it (`payload`), sent with the hook's credentials (`send`), retried with exponential
//! backoff, and kept as a failed delivery when the budget runs out (`failures`). The caller owns
//! the position in the outbox: chat-local's dispatcher task over its change feed, the
//! hook-dispatch function over the events table's stream in AWS. Delivery is at least once: a
//! batch is acknowledged only when every event was delivered or kept as failed.
//!
//! A target that keeps failing does not hold the others up: after a failed delivery its circuit
//! opens, and for the next 30 s its events are kept as failed without being tried (one probe
//! every 30 s closes it again when the target answers).

pub mod aws;
pub mod checks;
pub mod failures;
mod payload;
pub mod send;
pub mod targets;

use crate::domain::event::Scope;
use crate::domain::event_kind::EventKind;
use crate::domain::ApiError;
use crate::service::Chat;
use failures::HookFailure;
use send::{Outgoing, SendError, Senders};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use targets::{targets, Destination, Target};

/// How long a failing target is skipped before it is probed again.
const OPEN_CIRCUIT: Duration = Duration::from_secs(30);

/// Attempts per event and the wait before the second (doubling after each).
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub attempts: u32,
    pub first_backoff: Duration,
}

impl Default for Retry {
    /// Three attempts, 0.5 s then 1 s apart.
    fn default() -> Self {
        Retry {
            attempts: 3,
            first_backoff: Duration::from_millis(500),
        }
    }
}

/// One event from the outbox: where it is stored and what it says.
#[derive(Clone, Debug)]
pub struct OutboxEvent {
    pub scope: String,
    pub sk: String,
    pub event: Value,
}

/// What one dispatch did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Dispatched {
    /// Deliveries that succeeded (one event to one target).
    pub delivered: usize,
    /// Deliveries kept as failed.
    pub failed: usize,
}

/// Targets that failed lately, and until when they are skipped: one record per process (the
/// dispatcher and a replay see the same), so a replay that gets through closes the circuit.
#[derive(Default)]
pub struct FailingTargets(Mutex<HashMap<String, Instant>>);

impl FailingTargets {
    pub(crate) fn skipped_until(&self, target: &str) -> Option<Instant> {
        let now = Instant::now();
        self.0
            .lock()
            .ok()?
            .get(target)
            .copied()
            .filter(|until| *until > now)
    }

    pub(crate) fn open(&self, target: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(target.to_string(), Instant::now() + OPEN_CIRCUIT);
        }
    }

    pub(crate) fn close(&self, target: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(target);
        }
    }
}

/// Sends the app's events to its hooks, and its pushes (`crate::push`) after them.
pub struct Hooks {
    senders: Senders,
    retry: Retry,
    failing: std::sync::Arc<FailingTargets>,
    pushes: crate::push::Pushes,
}

impl Hooks {
    pub fn new(chat: &Chat) -> Self {
        Hooks {
            senders: Senders::new(&chat.keys.api_key, &chat.keys.api_secret),
            retry: Retry::default(),
            failing: chat.failing_hooks.clone(),
            pushes: crate::push::Pushes::new(),
        }
    }

    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    pub fn with_pushes(mut self, pushes: crate::push::Pushes) -> Self {
        self.pushes = pushes;
        self
    }

    pub fn pushes(&self) -> &crate::push::Pushes {
        &self.pushes
    }

    pub fn senders(&self) -> &Senders {
        &self.senders
    }

    /// Whether the app has any target or push provider (a dispatcher with none has nothing to
    /// read).
    pub async fn any_target(chat: &Chat) -> Result<bool, ApiError> {
        Ok(!targets(&*chat.app_settings().await?).is_empty()
            || crate::push::Pushes::any_provider(chat).await?)
    }

    /// Delivers `events` (in their order) to every target that wants them, then pushes for
    /// them. Errors only when a failed delivery could not be kept (or the store failed): the
    /// caller then retries the batch.
    pub async fn dispatch(
        &self,
        chat: &Chat,
        events: &[OutboxEvent],
    ) -> Result<Dispatched, ApiError> {
        if events.is_empty() {
            return Ok(Dispatched::default());
        }
        let done = self.dispatch_to_hooks(chat, events).await?;
        self.pushes.dispatch(chat, events).await?;
        Ok(done)
    }

    async fn dispatch_to_hooks(
        &self,
        chat: &Chat,
        events: &[OutboxEvent],
    ) -> Result<Dispatched, ApiError> {
        let settings = chat.app_settings().await?;
        let targets = targets(&settings);
        if targets.is_empty() {
            return Ok(Dispatched::default());
        }
        let reminders = targets
            .iter()
            .any(|t| t.wants(EventKind::UserUnreadMessageReminder.as_str()));
        let mut outgoing = Vec::new();
        for e in events {
            if e.event[crate::domain::event::SKIP_HOOKS] == true {
                continue;
            }
            let kind = e.event["type"].as_str().unwrap_or_default();
            if reminders
                && kind == EventKind::MessageNew.as_str()
                && Scope::parse(&e.scope).is_channel()
            {
                chat.note_message_for_reminders(&e.scope, &e.event).await?;
            }
            if !targets.iter().any(|t| t.wants(kind)) {
                continue;
            }
            let body = chat.hook_payload(&e.scope, &e.event).await?;
            outgoing.push(Outgoing {
                id: event_id(&e.scope, &e.sk),
                kind: kind.to_string(),
                scope: e.scope.clone(),
                body: body.to_string(),
            });
        }
        let runs = targets.iter().map(|t| {
            let wanted: Vec<Outgoing> = outgoing
                .iter()
                .filter(|o| t.wants(&o.kind))
                .cloned()
                .collect();
            self.deliver(chat, t, wanted)
        });
        let mut done = Dispatched::default();
        let mut failed = Vec::new();
        for (delivered, failures) in futures::future::join_all(runs).await {
            done.delivered += delivered;
            done.failed += failures.len();
            failed.extend(failures);
        }
        for f in &failed {
            tracing::warn!(
                hook = %f.hook_id, hook_type = %f.hook_type, event_id = %f.event_id,
                event_type = %f.event_type, error = %f.error, "event not delivered to a hook"
            );
        }
        chat.record_hook_failures(failed).await?;
        Ok(done)
    }

    /// Sends events to one target; returns how many it took and the failures. A webhook takes
    /// them one at a time, in order; a queue or topic in batches. Once an event fails its
    /// attempts, the target's circuit opens and the rest are kept without being tried.
    async fn deliver(
        &self,
        chat: &Chat,
        target: &Target,
        events: Vec<Outgoing>,
    ) -> (usize, Vec<HookFailure>) {
        let runs: Vec<Vec<Outgoing>> = match target.destination {
            Destination::Webhook { .. } | Destination::PendingCallback { .. } => {
                events.into_iter().map(|e| vec![e]).collect()
            }
            _ => vec![events],
        };
        let mut delivered = 0;
        let mut failed = Vec::new();
        for run in runs.into_iter().filter(|r| !r.is_empty()) {
            if let Some(until) = self.failing.skipped_until(&target.id) {
                let error = format!(
                    "not tried: the target failed lately and is skipped for {} s",
                    until.saturating_duration_since(Instant::now()).as_secs()
                );
                failed.extend(run.iter().map(|e| (e.clone(), error.clone(), 0)));
                continue;
            }
            let (taken, refused) = self.attempt(target, &run).await;
            delivered += taken;
            failed.extend(refused);
        }
        let failed = failed
            .into_iter()
            .map(|(e, error, attempts)| {
                HookFailure::new(
                    &target.id,
                    target.destination.kind(),
                    &e,
                    &error,
                    attempts,
                    chat.now_str(),
                )
            })
            .collect();
        (delivered, failed)
    }

    /// Sends `events` with the retry budget; returns how many were taken and the ones that
    /// were not, with the last error and the attempts made. Opens or closes the circuit.
    async fn attempt(
        &self,
        target: &Target,
        events: &[Outgoing],
    ) -> (usize, Vec<(Outgoing, String, u32)>) {
        let mut pending: Vec<usize> = (0..events.len()).collect();
        let mut errors: HashMap<usize, (SendError, u32)> = HashMap::new();
        let mut backoff = self.retry.first_backoff;
        for attempt in 1..=self.retry.attempts.max(1) {
            let batch: Vec<Outgoing> = pending.iter().map(|&i| events[i].clone()).collect();
            let results = self.send(target, &batch, attempt).await;
            let mut retry = Vec::new();
            for (&i, result) in pending.iter().zip(results) {
                match result {
                    Ok(()) => {
                        errors.remove(&i);
                    }
                    Err(e) => {
                        if matches!(e, SendError::Retry(_)) {
                            retry.push(i);
                        }
                        errors.insert(i, (e, attempt));
                    }
                }
            }
            pending = retry;
            if pending.is_empty() {
                break;
            }
            if attempt < self.retry.attempts {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        let mut failed: Vec<(usize, (SendError, u32))> = errors.into_iter().collect();
        failed.sort_by_key(|(i, _)| *i);
        if failed
            .iter()
            .any(|(_, (e, _))| matches!(e, SendError::Retry(_)))
        {
            self.failing.open(&target.id);
        } else {
            self.failing.close(&target.id);
        }
        let taken = events.len() - failed.len();
        let failed = failed
            .into_iter()
            .map(|(i, (e, attempts))| (events[i].clone(), e.message().to_string(), attempts))
            .collect();
        (taken, failed)
    }

    /// One attempt at each event, in order.
    async fn send(
        &self,
        target: &Target,
        events: &[Outgoing],
        attempt: u32,
    ) -> Vec<Result<(), SendError>> {
        match &target.destination {
            Destination::Webhook { url } => {
                let mut out = Vec::with_capacity(events.len());
                for e in events {
                    out.push(self.senders.webhook(url, target.timeout, e, attempt).await);
                }
                out
            }
            Destination::PendingCallback { url } => {
                let mut out = Vec::with_capacity(events.len());
                for e in events {
                    let call = match e.kind.as_str() {
                        "pending_message.sent" => "PassOnPendingMessage",
                        _ => "DeletedPendingMessage",
                    };
                    let url = format!("{url}/{call}");
                    out.push(self.senders.webhook(&url, target.timeout, e, attempt).await);
                }
                out
            }
            Destination::Sqs {
                queue_url,
                region,
                auth,
            } => {
                self.senders
                    .sqs(queue_url, region.as_deref(), auth, events)
                    .await
            }
            Destination::Sns {
                topic_arn,
                region,
                auth,
            } => {
                self.senders
                    .sns(topic_arn, region.as_deref(), auth, events)
                    .await
            }
        }
    }

    /// Sends kept failed deliveries again to their hooks (those still configured); the ones
    /// taken are forgotten. Returns how many were replayed and how many are still kept.
    pub async fn replay_failures(&self, chat: &Chat) -> Result<(usize, usize), ApiError> {
        let settings = chat.app_settings().await?;
        let targets = targets(&settings);
        let mut replayed = 0;
        let mut kept = 0;
        for f in chat.hook_failures().await? {
            let (Some(target), Some(event)) =
                (targets.iter().find(|t| t.id == f.hook_id), f.outgoing())
            else {
                kept += 1;
                continue;
            };
            let sent = self
                .send(target, std::slice::from_ref(&event), f.attempts + 1)
                .await;
            if matches!(sent.first(), Some(Ok(()))) {
                // It answers again: the events that follow are tried again too.
                self.failing.close(&target.id);
                chat.forget_hook_failure(&f.id).await?;
                replayed += 1;
            } else {
                kept += 1;
            }
        }
        Ok((replayed, kept))
    }
}

/// An event's id: stable for its outbox item, so retries and redeliveries carry the same id
/// (the webhook's `X-Webhook-Id`, a FIFO queue's deduplication id).
pub fn event_id(scope: &str, sk: &str) -> String {
    let digest = Sha256::digest(format!("{scope}/{sk}").as_bytes());
    hex::encode(&digest[..16])
}
