//! chat-local's scheduler: fires due timers (`shared::service::timers`) once a second; timers
//! are stored, so the ones that came due while the process was down fire when it starts.

use shared::service::Chat;
use std::time::Duration;
use tokio::sync::watch;

/// How often due timers are looked for (timers are precise to this).
const TICK: Duration = Duration::from_secs(1);

pub async fn run(chat: Chat, mut stopping: watch::Receiver<bool>) {
    loop {
        if let Err(e) = chat.run_due_timers().await {
            tracing::warn!(error = %e, "running due timers failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stopping.changed() => return,
        }
    }
}
