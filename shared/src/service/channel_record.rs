//! The channel record: a channel's item in its partition (its fields, counters and newest
//! message), listed by type on `gsi2` while it is not deleted. Its key, decoding, every write of
//! it and the reads of a channel with its members live here; each write is conditioned on the
//! version the channel was read at, so a concurrent change cancels it (the caller reads again and
//! retries) instead of being lost. Below both the channel and the message use cases.

use super::{member_record, to_doc, Chat};
use crate::domain::channel::{Channel, Member};
use crate::domain::channel_type::ChannelTypeConfig;
use crate::domain::event::Event;
use crate::domain::ApiError;
use crate::store::layout::{
    channel_item, channel_pk, hidden_members_pk, CHANNEL_SK, MEMBER_SK_PREFIX, READER_SK_PREFIX,
};
use crate::store::{query_all, Condition, Index, Item, Query, TableName, Write};
use serde_json::Value;

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

/// A channel with its members, as read from its partition.
pub(crate) struct Loaded {
    pub channel: Channel,
    pub version: u64,
    /// Every member ([`Chat::load_channel`]), or only the acting user's
    /// ([`Chat::load_channel_as`], for a send, which needs no one else's).
    pub members: Vec<Member>,
    /// Read states of users who are not members (see `reader_item`).
    pub readers: Vec<Member>,
}

/// An event about a channel, heard by its watchers.
pub(crate) fn channel_event(
    kind: &str,
    channel: &Channel,
    now: chrono::DateTime<chrono::Utc>,
) -> Event {
    Event::new(kind, channel.cid.clone(), now)
        .with("cid", Value::String(channel.cid.clone()))
        .with("channel_id", Value::String(channel.id.clone()))
        .with("channel_type", Value::String(channel.channel_type.clone()))
}

impl Chat {
    pub(crate) async fn channel_config(
        &self,
        channel_type: &str,
    ) -> Result<ChannelTypeConfig, ApiError> {
        self.channel_type(channel_type)
            .await?
            .map(|(c, _)| c)
            .ok_or_else(|| {
                ApiError::not_found(format!("channel type {channel_type:?} does not exist"))
            })
    }

    /// The channel and all its members, from its partition.
    pub(crate) async fn load_channel(&self, cid: &str) -> Result<Option<Loaded>, ApiError> {
        Ok(self
            .load_channel_even_deleted(cid)
            .await?
            .filter(|loaded| loaded.channel.deleted_at.is_none()))
    }

    /// The channel and all its members, soft-deleted or not (exports may ask for deleted ones).
    pub(crate) async fn load_channel_even_deleted(
        &self,
        cid: &str,
    ) -> Result<Option<Loaded>, ApiError> {
        let mut channel = None;
        let mut members = Vec::new();
        let mut readers = Vec::new();
        let query = Query::new(TableName::Channels, channel_pk(cid));
        for item in query_all(self.store.as_ref(), query).await? {
            if item.sk == CHANNEL_SK {
                channel = Some(decode(item)?);
            } else if item.sk.starts_with(MEMBER_SK_PREFIX) {
                members.push(member_record::decode(item)?);
            } else if item.sk.starts_with(READER_SK_PREFIX) {
                readers.push(member_record::decode(item)?);
            }
        }
        Ok(channel.map(|(mut channel, version): (Channel, u64)| {
            // The count is the member items there are: a change interrupted between its
            // channel item and its member items (a crash) never leaves it wrong.
            channel.member_count = members.len() as u32;
            Loaded {
                channel,
                version,
                members,
                readers,
            }
        }))
    }

    /// The channel with only `user_id`'s member item (when a member): one batch read of two
    /// items, however many members the channel has. `member_count` is the stored count.
    pub(crate) async fn load_channel_as(
        &self,
        cid: &str,
        user_id: Option<&str>,
    ) -> Result<Loaded, ApiError> {
        self.load_channel_with(cid, user_id.as_slice()).await
    }

    /// The channel with the member items of `users` (those who are members).
    pub(crate) async fn load_channel_with(
        &self,
        cid: &str,
        users: &[&str],
    ) -> Result<Loaded, ApiError> {
        let _pk = channel_pk(cid);
        let mut keys = vec![key(cid)];
        keys.extend(users.iter().map(|u| member_record::key(cid, u)));
        let mut channel = None;
        let mut members = Vec::new();
        for item in self.store.batch_get(TableName::Channels, &keys).await? {
            if item.sk == CHANNEL_SK {
                channel = Some(decode(item)?);
            } else {
                members.push(member_record::decode(item)?);
            }
        }
        match channel {
            Some((channel, version)) if channel.deleted_at.is_none() => Ok(Loaded {
                channel,
                version,
                members,
                readers: Vec::new(),
            }),
            _ => Err(ApiError::not_found(format!(
                "Can't find channel with id {cid}"
            ))),
        }
    }

    /// The members who hid the channel: found on its hidden-members index, read from their
    /// items (an index may lag; the items are what a conditioned write is checked against).
    pub(crate) async fn hidden_members(&self, cid: &str) -> Result<Vec<Member>, ApiError> {
        let query = Query::new(TableName::Channels, hidden_members_pk(cid))
            .index(Index::Gsi2)
            .keys_only();
        let keys: Vec<(String, String)> = query_all(self.store.as_ref(), query)
            .await?
            .into_iter()
            .map(|item| (item.pk, item.sk))
            .collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.store
            .batch_get(TableName::Channels, &keys)
            .await?
            .into_iter()
            .map(member_record::decode)
            .filter(|m| !matches!(m, Ok(m) if !m.hidden))
            .collect()
    }

    pub(crate) async fn require_channel(&self, cid: &str) -> Result<Loaded, ApiError> {
        self.load_channel(cid)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("Can't find channel with id {cid}")))
    }
}
