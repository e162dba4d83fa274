//! Committing plain new messages into a channel. Sends into one channel from this process take
//! the channel's turn (see `writers`); those that arrive while the channel is busy wait in its
//! mailbox, and whoever gets the turn next commits everything waiting there in one transaction:
//! one read of the channel, one write of its item, each message stamped after the one before
//! (commit order stays time order). A message whose id turns out to be taken is answered alone
//! and the rest are committed without it.

use super::new_message_writes;
use super::send::{member_writes, new_message_event, stamp_new_message, with_room_for, ReadBy};
use crate::domain::message::Message;
use crate::domain::ApiError;
use crate::service::{channel_record, contention_pause, Chat, CONTENDED_ATTEMPTS};
use crate::store::layout::{message_id_key, outbox_write};
use crate::store::{Condition, StoreError, TableName};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::oneshot;

/// Messages committed in one transaction at most: each takes three writes (its id, itself, its
/// event), leaving room in DynamoDB's 100 for the channel item and the senders' read positions.
const BATCH: usize = 16;

/// A message waiting for its channel's turn, with where its answer goes.
struct Waiting {
    message: Message,
    wire: Value,
    user: Value,
    keeps_last_message_at: bool,
    answer: oneshot::Sender<Result<Value, ApiError>>,
}

/// Per channel, the new messages waiting for its turn.
#[derive(Default)]
pub(crate) struct Mailboxes {
    waiting: Mutex<HashMap<String, Vec<Waiting>>>,
}

impl Mailboxes {
    fn post(&self, cid: &str, waiting: Waiting) {
        let mut boxes = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        boxes.entry(cid.to_string()).or_default().push(waiting);
    }

    fn take(&self, cid: &str) -> Vec<Waiting> {
        let mut boxes = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        boxes.remove(cid).unwrap_or_default()
    }
}

impl Chat {
    /// Commits a plain new message (no parent, nothing else in its transaction) into `cid`:
    /// posted to the channel's mailbox, committed by whoever holds the turn when it gets there.
    pub(super) async fn commit_new_message(
        &self,
        cid: &str,
        message: Message,
        wire: Value,
        user: &Value,
        keeps_last_message_at: bool,
    ) -> Result<Value, ApiError> {
        let (answer, mut answered) = oneshot::channel();
        self.mailboxes.post(
            cid,
            Waiting {
                message,
                wire,
                user: user.clone(),
                keeps_last_message_at,
                answer,
            },
        );
        let (turn, _) = self.writers.turn(cid).await;
        // Committed by the writer before us?
        if let Ok(result) = answered.try_recv() {
            return result;
        }
        // The commit runs on its own task with the turn: a caller that goes away (a closed
        // connection, a deadline) never drops the other senders' messages with it.
        let mut waiting = self.mailboxes.take(cid);
        let (chat, cid) = (self.clone(), cid.to_string());
        tokio::spawn(async move {
            let _turn = turn;
            while !waiting.is_empty() {
                let rest = waiting.split_off(waiting.len().min(BATCH));
                chat.commit_batch(&cid, waiting).await;
                waiting = rest;
            }
        });
        answered
            .await
            .unwrap_or_else(|_| Err(ApiError::internal("a send's commit was dropped")))
    }

    /// Commits `batch` in one transaction, retried while concurrent changes to the channel win;
    /// answers every message.
    async fn commit_batch(&self, cid: &str, mut batch: Vec<Waiting>) {
        for attempt in 1..=CONTENDED_ATTEMPTS {
            match self.try_commit_batch(cid, &mut batch).await {
                Ok(Some(wires)) => {
                    for (w, wire) in batch.into_iter().zip(wires) {
                        let _ = w.answer.send(Ok(wire));
                    }
                    return;
                }
                Ok(None) => contention_pause(attempt).await,
                Err(e) => {
                    for w in batch {
                        let _ = w.answer.send(Err(e.clone()));
                    }
                    return;
                }
            }
            if batch.is_empty() {
                return;
            }
        }
        for w in batch {
            let _ = w.answer.send(Err(ApiError::input(format!(
                "channel {cid} is too busy; try again"
            ))));
        }
    }

    /// One attempt: the committed messages' wires, or `None` when a concurrent change to the
    /// channel won (read again and retry). A message whose id is taken is answered and removed
    /// from `batch` (the rest are retried at once).
    async fn try_commit_batch(
        &self,
        cid: &str,
        batch: &mut Vec<Waiting>,
    ) -> Result<Option<Vec<Value>>, ApiError> {
        // Two sends of one id: the first is committed, the later one is refused.
        let mut ids = std::collections::HashSet::new();
        let mut j = 0;
        while j < batch.len() {
            if ids.insert(batch[j].message.id.clone()) {
                j += 1;
            } else {
                let w = batch.remove(j);
                let _ = w.answer.send(Err(id_taken(&w.message.id)));
            }
        }
        loop {
            let authors: Vec<&str> = batch
                .iter()
                .filter_map(|w| w.message.user_id.as_deref())
                .collect();
            let loaded = self.load_channel_with(cid, &authors).await?;
            let hidden = self.hidden_members(cid).await?;
            let mut channel = loaded.channel.clone();
            let mut messages = Vec::with_capacity(batch.len());
            let mut writes = Vec::with_capacity(batch.len() * 3 + 1);
            let mut read_seqs: HashMap<&str, (usize, u64)> = HashMap::new();
            let mut at = self.now();
            for (i, w) in batch.iter().enumerate() {
                let mut message = w.message.clone();
                let mut wire = w.wire.clone();
                let (created, sk) = stamp_new_message(
                    &mut channel,
                    &mut message,
                    &mut wire,
                    w.keeps_last_message_at,
                    self.now(),
                );
                at = created;
                writes.extend(new_message_writes(&message, &sk, Condition::NotExists)?);
                writes.push(outbox_write(&new_message_event(
                    &channel, created, &wire, &w.user, &message,
                )));
                if let (Some(author), true) =
                    (w.message.user_id.as_deref(), message.in_channel_list())
                {
                    read_seqs.insert(author, (i, channel.counted_messages));
                }
                messages.push((message, wire));
            }
            // The members' activity entries follow the channel a step behind at most.
            let rewrite =
                crate::service::channels::activity::needs_rewrite(&mut channel, &loaded.channel);
            writes.push(channel_record::put(&channel, loaded.version)?);
            let read_by: Vec<ReadBy> = loaded
                .members
                .iter()
                .filter_map(|member| {
                    let (i, read_seq) = *read_seqs.get(member.user_id.as_str())?;
                    Some(ReadBy {
                        member,
                        message: &messages[i].0,
                        read_seq,
                    })
                })
                .collect();
            let later = with_room_for(
                &mut writes,
                member_writes(cid, &channel, &read_by, &hidden, at)?,
            );
            match self.store.transact(writes).await {
                Ok(()) => {
                    for part in later.chunks(crate::store::MAX_TRANSACTION_WRITES) {
                        match self.store.transact(part.to_vec()).await {
                            Ok(()) | Err(StoreError::TransactionCanceled { .. }) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                    if let Some(activity) = rewrite {
                        // The messages are in: a failure here only leaves the entries a step
                        // further behind, until the next send rewrites them.
                        if let Err(e) = self.rewrite_activity_entries(cid, &activity).await {
                            tracing::warn!(%cid, error = %e, "activity entries not rewritten");
                        }
                    }
                    return Ok(Some(messages.into_iter().map(|(_, wire)| wire).collect()));
                }
                Err(StoreError::TransactionCanceled { index }) => {
                    // A taken id (its claim is the first of each message's three writes) is
                    // that message's answer alone.
                    let taken = match index {
                        Some(i) if i % 3 == 0 && i / 3 < batch.len() => Some(i / 3),
                        _ => self.first_taken_id(batch).await?,
                    };
                    let Some(j) = taken else {
                        return Ok(None);
                    };
                    let w = batch.remove(j);
                    let _ = w.answer.send(Err(id_taken(&w.message.id)));
                    if batch.is_empty() {
                        return Ok(Some(Vec::new()));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The first message of `batch` whose id is already claimed (a store that does not say
    /// which write failed).
    async fn first_taken_id(&self, batch: &[Waiting]) -> Result<Option<usize>, ApiError> {
        for (j, w) in batch.iter().enumerate() {
            let (pk, sk) = message_id_key(&w.message.id);
            if self
                .store
                .get(TableName::Messages, &pk, &sk)
                .await?
                .is_some()
            {
                return Ok(Some(j));
            }
        }
        Ok(None)
    }
}

fn id_taken(id: &str) -> ApiError {
    ApiError::input(format!("a message with id {id} already exists"))
}
