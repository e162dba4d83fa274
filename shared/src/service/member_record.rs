//! The member record: a user's membership of a channel, with their read state, and the read
//! state of a user who is not a member (a `reader#` record). Its keys, encoding and decoding, and
//! every write of it live here; use cases read and write members through these functions.

use super::to_doc;
use crate::domain::channel::Member;
use crate::domain::ApiError;
use crate::store::layout::{channel_pk, member_item, member_sk, reader_item};
use crate::store::{Condition, Item, TableName, Write};

/// Where `user_id`'s member item of `cid` is.
pub(crate) fn key(cid: &str, user_id: &str) -> (String, String) {
    (channel_pk(cid), member_sk(user_id))
}

/// A stored member (or reader) item, with the version it was read at.
pub(crate) fn decode(item: Item) -> Result<Member, ApiError> {
    let mut member: Member = serde_json::from_value(item.data)
        .map_err(|e| ApiError::internal(format!("stored member is unreadable: {e}")))?;
    member.version = item.version;
    Ok(member)
}

/// The write of a member read from its channel (or new, version 0), conditioned on the version
/// it was read at: a concurrent change to the member, or its removal, cancels the write (the
/// caller reads again and retries) instead of being overwritten or undone.
pub(crate) fn put(cid: &str, m: &Member) -> Result<Write, ApiError> {
    Ok(Write::put_read_at(
        TableName::Channels,
        item(cid, m)?,
        m.version,
    ))
}

/// The write of a member a channel change adds, whatever was stored under the key.
pub(crate) fn put_added(cid: &str, m: &Member) -> Result<Write, ApiError> {
    Ok(Write::Put {
        table: TableName::Channels,
        item: item(cid, m)?,
        condition: Condition::None,
    })
}

/// The removal of a member by a channel change.
pub(crate) fn delete(cid: &str, user_id: &str) -> Write {
    let (pk, sk) = key(cid, user_id);
    Write::Delete {
        table: TableName::Channels,
        pk,
        sk,
        condition: Condition::None,
    }
}

/// The write of a read position: a member's item, or a non-member's reader item, each
/// conditioned on the version it was read at.
pub(crate) fn put_read_position(
    cid: &str,
    position: &Member,
    is_member: bool,
) -> Result<Write, ApiError> {
    if is_member {
        return put(cid, position);
    }
    let item = reader_item(cid, &position.user_id, to_doc(position)?);
    Ok(Write::put_read_at(
        TableName::Channels,
        item,
        position.version,
    ))
}

fn item(cid: &str, m: &Member) -> Result<Item, ApiError> {
    Ok(member_item(cid, &m.user_id, m.hidden, to_doc(m)?))
}
