//! The unread index: for each user, the channels that may hold messages they have not read, so
//! unread totals (`GET /unread`, `me`, mark read's notices, each recipient's totals in delivered
//! events) read those channels instead of every membership.
//!
//! A user's flag for a channel is put whenever the channel may have become unread for them:
//! when they join it, when a send takes the channel past its members' activity entries (the step
//! that rewrites those, see `channels::activity`: any send stamped after what the entries say),
//! and when they mark it unread. Whoever reads the user's counts removes a flag when the channel
//! is read to its end and has been quiet for [`QUIET`] by what its entries say (a send stamped
//! before that is committed, so the read saw it), on the version read: every put carries a fresh
//! version, so a flag put again meanwhile stays. A channel without a flag therefore has nothing
//! unread for the user; a stale flag costs one read. Users whose memberships predate the index
//! get a flag for each on their first read (the `~ready` marker).
//!
//! Like the activity entries, the flags a send puts are written after its commit: a process
//! that dies in between leaves them unwritten until the channel's next send past its entries.

use super::{channel_record, member_record, Chat};
use crate::domain::channel::{Channel, Member};
use crate::domain::clock::parse_time;
use crate::domain::ApiError;
use crate::store::layout::{
    unread_flag_item, unread_flags_pk, unread_flags_ready_item, UNREAD_FLAGS_READY_SK,
};
use crate::store::{query_all, Condition, Query, StoreError, TableName, Write};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How long a channel must have been quiet (by what its activity entries say) before a flag of
/// it is removed: longer than any send takes from its stamp to its commit.
pub(crate) const QUIET: chrono::Duration = chrono::Duration::seconds(60);

/// The put of `user_id`'s flag for `cid`.
pub(crate) fn flag_write(user_id: &str, cid: &str) -> Write {
    Write::Put {
        table: TableName::Channels,
        item: unread_flag_item(user_id, cid),
        condition: Condition::None,
    }
}

/// The removal of `user_id`'s flag for `cid` (they left it, or it was deleted).
pub(crate) fn flag_delete(user_id: &str, cid: &str) -> Write {
    Write::Delete {
        table: TableName::Channels,
        pk: unread_flags_pk(user_id),
        sk: cid.to_string(),
        condition: Condition::None,
    }
}

/// A user's unread state in one joined channel that has unread messages.
pub(crate) struct ChannelUnread {
    pub cid: String,
    pub channel_type: String,
    pub unread: u64,
    pub last_read: Option<String>,
}

/// Whether a channel has been quiet since `cutoff` by every bound its members' entries follow.
fn quiet_since(channel: &Channel, cutoff: chrono::DateTime<chrono::Utc>) -> bool {
    let before = |t: Option<&str>| t.and_then(parse_time).is_some_and(|t| t <= cutoff);
    before(Some(crate::service::channels::activity::last_updated(
        channel,
    ))) && channel
        .activity_indexed
        .as_deref()
        .is_none_or(|i| before(Some(i)))
}

impl Chat {
    /// The user's flags (cid → version), made complete first when they predate the index.
    async fn unread_flags(&self, user_id: &str) -> Result<BTreeMap<String, u64>, ApiError> {
        let read = || {
            query_all(
                self.store.as_ref(),
                Query::new(TableName::Channels, unread_flags_pk(user_id)),
            )
        };
        let mut items = read().await?;
        if !items.iter().any(|i| i.sk == UNREAD_FLAGS_READY_SK) {
            self.complete_unread_flags(user_id).await?;
            items = read().await?;
        }
        Ok(items
            .into_iter()
            .filter(|i| i.sk != UNREAD_FLAGS_READY_SK)
            .map(|i| (i.sk, i.version))
            .collect())
    }

    /// Puts a flag for each of the user's memberships, then the marker.
    async fn complete_unread_flags(&self, user_id: &str) -> Result<(), ApiError> {
        let writes: Vec<Write> = self
            .membership_cids(user_id)
            .await?
            .iter()
            .map(|cid| flag_write(user_id, cid))
            .collect();
        for chunk in writes.chunks(crate::store::MAX_TRANSACTION_WRITES) {
            self.store.transact(chunk.to_vec()).await?;
        }
        self.store
            .write(Write::Put {
                table: TableName::Channels,
                item: unread_flags_ready_item(user_id),
                condition: Condition::None,
            })
            .await?;
        Ok(())
    }

    /// Unread per joined channel of a user, for the channels with unread messages only (muted
    /// channels count none), with `pending` standing in for a member state not yet committed.
    /// Reads the flagged channels' member and channel items, and removes the flags found stale.
    pub(crate) async fn channel_unreads(
        &self,
        user_id: &str,
        muted: &BTreeSet<String>,
        pending: Option<(&str, &Member)>,
    ) -> Result<Vec<ChannelUnread>, ApiError> {
        let cutoff = self.now() - QUIET;
        let flags = self.unread_flags(user_id).await?;
        let mut cids: BTreeSet<&str> = flags.keys().map(String::as_str).collect();
        if let Some((cid, _)) = pending {
            cids.insert(cid);
        }
        let member_keys: Vec<_> = cids
            .iter()
            .map(|cid| member_record::key(cid, user_id))
            .collect();
        let mut members = HashMap::new();
        for item in self
            .store
            .batch_get(TableName::Channels, &member_keys)
            .await?
        {
            let pk = item.pk.clone();
            if let Ok(m) = member_record::decode(item) {
                members.insert(pk, m);
            }
        }
        let channel_keys: Vec<_> = cids.iter().map(|cid| channel_record::key(cid)).collect();
        let mut channels = HashMap::new();
        for item in self
            .store
            .batch_get(TableName::Channels, &channel_keys)
            .await?
        {
            let pk = item.pk.clone();
            if let Ok((c, _)) = channel_record::decode(item) {
                channels.insert(pk, c);
            }
        }
        let mut out = Vec::new();
        let mut stale = Vec::new();
        for cid in cids {
            let (pk, _) = channel_record::key(cid);
            let member = match pending {
                Some((p, m)) if p == cid => Some(m),
                _ => members.get(&pk),
            };
            let channel = channels.get(&pk).filter(|c| c.deleted_at.is_none());
            let (Some(member), Some(channel)) = (member, channel) else {
                stale.push(cid);
                continue;
            };
            if !member.is_joined() {
                continue;
            }
            let unread = member.read.unread(channel.counted_messages);
            if unread == 0 {
                if quiet_since(channel, cutoff) {
                    stale.push(cid);
                }
                continue;
            }
            if muted.contains(cid) {
                continue;
            }
            out.push(ChannelUnread {
                cid: cid.to_string(),
                channel_type: channel.channel_type.clone(),
                unread,
                last_read: member.read.last_read.clone(),
            });
        }
        for cid in stale {
            let Some(&version) = flags.get(cid) else {
                continue;
            };
            let clear = Write::Delete {
                table: TableName::Channels,
                pk: unread_flags_pk(user_id),
                sk: cid.to_string(),
                condition: Condition::Version(version),
            };
            match self.store.write(clear).await {
                Ok(()) | Err(StoreError::ConditionFailed) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }
}
