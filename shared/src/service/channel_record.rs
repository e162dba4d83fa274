//! The channel record: a channel's item in its partition (its fields, counters and newest
//! message), listed by type on `gsi2` while it is not deleted. Its key, decoding and every write
//! of it live here; each write is conditioned on the version the channel was read at, so a
//! concurrent change cancels it (the caller reads again and retries) instead of being lost.

use super::to_doc;
use crate::domain::channel::Channel;
use crate::domain::ApiError;
use crate::store::layout::{channel_item, channel_pk, CHANNEL_SK};
use crate::store::{Condition, Item, TableName, Write};

/// Where `cid`'s channel item is.
pub(crate) fn key(cid: &str) -> (String, String) {
    (channel_pk(cid), CHANNEL_SK.to_string())
}

/// A stored channel item and the version it was read at.
pub(crate) fn decode(item: Item) -> Result<(Channel, u64), ApiError> {
    let channel = serde_json::from_value(item.data)
        .map_err(|e| ApiError::internal(format!("stored channel is unreadable: {e}")))?;
    Ok((channel, item.version))
}

/// The write of `channel` read at `read_version` (0: not stored, or to be replaced only if
/// absent).
pub(crate) fn put(channel: &Channel, read_version: u64) -> Result<Write, ApiError> {
    Ok(Write::put_read_at(
        TableName::Channels,
        item(channel)?,
        read_version,
    ))
}

/// The write of a soft-deleted channel: kept, but no longer listed by type.
pub(crate) fn put_deleted(channel: &Channel, read_version: u64) -> Result<Write, ApiError> {
    let mut item = item(channel)?;
    item.gsi2 = None;
    Ok(Write::put_read_at(TableName::Channels, item, read_version))
}

/// The removal of a hard-deleted channel's item.
pub(crate) fn delete(cid: &str, read_version: u64) -> Write {
    let (pk, sk) = key(cid);
    Write::Delete {
        table: TableName::Channels,
        pk,
        sk,
        condition: Condition::Version(read_version),
    }
}

fn item(channel: &Channel) -> Result<Item, ApiError> {
    Ok(channel_item(
        &channel.cid,
        &channel.channel_type,
        to_doc(channel)?,
        0,
    ))
}
