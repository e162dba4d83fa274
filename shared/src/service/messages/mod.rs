//! Messages in a channel, one file per side: `send` (regular and system messages, slow mode,
//! the one transaction that stores a message), `read` (pages, replies, pins, response shapes),
//! `write` (update, delete, undelete, commit, truncation) and `translate`. This file owns the
//! message record: its item, partition and conditioned write.

mod before_send;
mod commands;
mod commit;
mod custom_commands;
mod enrich;
mod read;
mod send;
mod translate;
mod write;

pub use commands::MessageAction;
pub(crate) use commit::Mailboxes;
pub use read::{PinnedAnchor, PinnedPage, RangeOp};
pub use send::SendMessage;
pub use write::DeleteMessageOptions;

use super::to_doc;
use crate::domain::clock::parse_time;
use crate::domain::message::Message;
use crate::domain::ApiError;
use crate::store::layout::{channel_messages_pk, pending_pk, pinned_pk, pinned_sk, replies_pk};
use crate::store::{Condition, Item, TableName, Write};
use serde_json::Value;

/// A message as stored, with where it lives.
pub(crate) struct StoredMessage {
    pub message: Message,
    pub pk: String,
    pub sk: String,
    pub version: u64,
}

/// The write of a changed message under its version (replies stay listed under their parent).
pub(crate) fn message_write(stored: &StoredMessage, next: &Message) -> Result<Write, ApiError> {
    let mut item = message_item(next, &stored.sk)?;
    item.version = stored.version + 1;
    Ok(Write::Put {
        table: TableName::Messages,
        item,
        condition: Condition::Version(stored.version),
    })
}

/// A message as its reader sees it after deleting it for themselves.
pub(crate) fn mark_deleted_for_me(wire: &mut Value) {
    wire["type"] = Value::String("deleted".into());
    wire["text"] = Value::String(String::new());
    wire["deleted_for_me"] = Value::Bool(true);
}

/// Is the message pinned now (an expired pin no longer counts)?
pub(crate) fn pinned_now(m: &Message, now: chrono::DateTime<chrono::Utc>) -> bool {
    m.pinned
        && m.pin_expires
            .as_deref()
            .and_then(parse_time)
            .is_none_or(|t| t > now)
}

/// The writes that store a new message under sort key `sk`: the record that claims its id and
/// points at it (`claim`: `NotExists` for a new id, so a second send with the id is refused;
/// `Exists` when a pending message is committed under the id it already claimed), and the
/// message item itself.
fn new_message_writes(m: &Message, sk: &str, claim: Condition) -> Result<[Write; 2], ApiError> {
    let (id_pk, id_sk) = crate::store::layout::message_id_key(&m.id);
    let mut pointer = serde_json::json!({ "cid": m.cid, "sk": sk });
    if m.pending {
        pointer["pk"] = Value::String(message_pk(m));
    }
    Ok([
        Write::Put {
            table: TableName::Messages,
            item: Item::new(id_pk, id_sk, pointer),
            condition: claim,
        },
        Write::Put {
            table: TableName::Messages,
            item: message_item(m, sk)?,
            condition: Condition::NotExists,
        },
    ])
}

/// A message's item in its channel's partition; replies are also listed under their parent
/// (`gsi1`, same sort key) for the thread's pages.
fn message_item(m: &Message, sk: &str) -> Result<Item, ApiError> {
    let mut item = Item::new(message_pk(m), sk.to_string(), to_doc(m)?);
    if m.pending {
        // Seen by its sender only: in no thread or pinned listing until committed.
        return Ok(item);
    }
    if let Some(parent) = &m.parent_id {
        item = item.with_gsi1(replies_pk(parent), sk.to_string());
    }
    // Pinned messages are listed by pin time (an expired pin is filtered when read).
    if let Some(at) = m
        .pinned_at
        .as_deref()
        .and_then(parse_time)
        .filter(|_| m.pinned)
    {
        item = item.with_gsi2(pinned_pk(&m.cid), pinned_sk(at, &m.id));
    }
    Ok(item)
}

/// The partition a message lives in: its channel's, or while pending its sender's pending one.
fn message_pk(m: &Message) -> String {
    match (&m.user_id, m.pending) {
        (Some(u), true) => pending_pk(&m.cid, u),
        _ => channel_messages_pk(&m.cid),
    }
}
