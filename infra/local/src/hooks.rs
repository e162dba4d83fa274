//! chat-local's hook dispatcher: tails the outbox (the events table's change feed) beside the
//! fan-out and hands every event to the app's hooks (`shared::hooks`). Its position is stored,
//! so a restart resumes where it stopped (at least once: a batch may be sent again, never
//! skipped), and the fan-out's compaction never forgets an event the dispatcher has not handed
//! off. With no hook configured it only follows the end of the feed.

use shared::hooks::{Hooks, OutboxEvent};
use shared::service::Chat;
use shared::store::embedded::Embedded;
use shared::store::{ChangePosition, Condition, Item, Table, TableName, Write};
use std::time::Duration;
use tokio::sync::watch;

/// Events handed to the hooks in one dispatch.
const BATCH: usize = 100;
/// The stored position is written at most this often while busy (and whenever the feed goes
/// quiet): a crash sends at most this much again.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// With no hook configured, how often the settings are looked at again.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// After a failed dispatch (a failure could not be kept), the wait before the batch is retried.
const RETRY_AFTER: Duration = Duration::from_secs(1);

const POSITION_PK: &str = "hooks";
const POSITION_SK: &str = "position";

/// The stored position: every event up to it was handed to the hooks.
pub async fn stored_position(store: &dyn Table) -> Result<Option<ChangePosition>, String> {
    let item = store
        .get(TableName::App, POSITION_PK, POSITION_SK)
        .await
        .map_err(|e| e.to_string())?;
    Ok(item
        .and_then(|i| i.data["position"].as_str().map(str::to_string))
        .map(ChangePosition))
}

async fn save_position(store: &dyn Table, at: &ChangePosition) -> Result<(), String> {
    let item = Item::new(
        POSITION_PK,
        POSITION_SK,
        serde_json::json!({ "position": at.0 }),
    );
    store
        .write(Write::Put {
            table: TableName::App,
            item,
            condition: Condition::None,
        })
        .await
        .map_err(|e| e.to_string())
}

/// The earlier of two positions of the embedded change feed.
pub fn earlier(a: &ChangePosition, b: &ChangePosition) -> ChangePosition {
    let n = |p: &ChangePosition| p.0.parse::<i64>().unwrap_or(0);
    if n(a) <= n(b) {
        a.clone()
    } else {
        b.clone()
    }
}

/// Dispatches from `start` until `stopping`; `handed` always holds the position up to which
/// every event was handed off (the fan-out compacts no further).
pub async fn dispatch(
    chat: Chat,
    hooks: Hooks,
    store: Embedded,
    start: ChangePosition,
    handed: watch::Sender<ChangePosition>,
    mut stopping: watch::Receiver<bool>,
) {
    let commits = store.change_notifier();
    let mut position = start;
    let mut saved = position.clone();
    let mut saved_at = tokio::time::Instant::now();
    loop {
        let committed = commits.notified();
        tokio::pin!(committed);
        committed.as_mut().enable();
        // How long to wait before the next round, and whether a commit ends the wait early.
        let wait: Option<(Duration, bool)>;
        match Hooks::any_target(&chat).await {
            Ok(false) => {
                // Nothing to send: what commits now is not for any hook.
                if let Ok(end) = store.change_feed_end(TableName::Events).await {
                    position = end;
                }
                wait = Some((IDLE_CHECK, false));
            }
            Ok(true) => match chat
                .store
                .read_changes(TableName::Events, Some(&position), BATCH)
                .await
            {
                Ok(batch) => {
                    let events: Vec<OutboxEvent> = batch
                        .changes
                        .into_iter()
                        .filter_map(|c| {
                            c.new.map(|item| OutboxEvent {
                                scope: item.pk,
                                sk: item.sk,
                                event: item.data,
                            })
                        })
                        .collect();
                    let idle = events.is_empty() && batch.next == position;
                    match hooks.dispatch(&chat, &events).await {
                        Ok(_) => {
                            position = batch.next;
                            wait = idle.then_some((crate::ws::FANOUT_FALLBACK, true));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "hook dispatch failed; retrying the batch");
                            wait = Some((RETRY_AFTER, false));
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "events feed read failed");
                    wait = Some((RETRY_AFTER, false));
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "reading the app settings failed");
                wait = Some((RETRY_AFTER, false));
            }
        }
        let _ = handed.send(position.clone());
        if position != saved && (wait.is_some() || saved_at.elapsed() >= SAVE_EVERY) {
            match save_position(chat.store.as_ref(), &position).await {
                Ok(()) => {
                    saved = position.clone();
                    saved_at = tokio::time::Instant::now();
                }
                Err(e) => tracing::warn!(error = %e, "saving the hooks' position failed"),
            }
        }
        if let Some((wait, on_commit)) = wait {
            tokio::select! {
                _ = &mut committed, if on_commit => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stopping.changed() => {
                    if position != saved {
                        let _ = save_position(chat.store.as_ref(), &position).await;
                    }
                    return;
                }
            }
        }
    }
}
