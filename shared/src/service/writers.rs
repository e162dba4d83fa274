//! One writer at a time per hot record within a process: concurrent sends into one channel (or
//! reactions to one message) queue here instead of racing for the record's version, so a busy
//! channel takes every write. Across processes (several Lambda instances) the conditioned write
//! and its retries still decide; this only removes the conflicts a single process would cause
//! itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// Slots kept before the ones nobody holds are dropped (memory stays bounded by the records
/// being written at once).
const PRUNE_ABOVE: usize = 1024;

#[derive(Default)]
pub struct Writers {
    slots: Mutex<HashMap<String, Weak<AsyncMutex<()>>>>,
}

/// Held while a record is being written.
pub type WriterTurn = OwnedMutexGuard<()>;

impl Writers {
    /// Waits for the turn to write `key` (a channel's cid, `message:<id>`); `true` with it when
    /// another writer went first (what the caller read before may be stale).
    pub async fn turn(&self, key: &str) -> (WriterTurn, bool) {
        let slot = {
            let mut slots = match self.slots.lock() {
                Ok(s) => s,
                Err(e) => e.into_inner(),
            };
            if slots.len() > PRUNE_ABOVE {
                slots.retain(|_, w| w.strong_count() > 0);
            }
            match slots.get(key).and_then(Weak::upgrade) {
                Some(slot) => slot,
                None => {
                    let slot = Arc::new(AsyncMutex::new(()));
                    slots.insert(key.to_string(), Arc::downgrade(&slot));
                    slot
                }
            }
        };
        match slot.clone().try_lock_owned() {
            Ok(turn) => (turn, false),
            Err(_) => (slot.lock_owned().await, true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_turn_at_a_time_per_key() {
        let writers = Arc::new(Writers::default());
        let (first, waited) = writers.turn("messaging:a").await;
        assert!(!waited);
        // Another key is not held up.
        let _other = writers.turn("messaging:b").await;
        let w = writers.clone();
        let waiting = tokio::spawn(async move { w.turn("messaging:a").await.1 });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        drop(first);
        assert!(waiting.await.unwrap(), "the second writer knows it waited");
    }
}
