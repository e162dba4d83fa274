//! The activity index: for each user, their channels by last activity (`last_updated`), so
//! query channels in its default order reads about as many channels as it returns instead of
//! every membership.
//!
//! An entry is an upper bound of its channel's activity: a send that takes the channel past
//! what its members' entries say rewrites them, to its activity when the channel was quiet, or
//! to its activity plus [`ACTIVITY_LEAD`] when it is busy, so a busy channel rewrites them at
//! most once per lead (channels of more than
//! [`ACTIVITY_MEMBER_CAP`] members say [`ACTIVITY_ALWAYS`] instead, once). Readers load entries
//! newest first with their channels' real activity (one batch read a page): a channel is in
//! its final place once its activity is past the last entry read, since no entry left can be
//! more recent. Every channel is still checked against the filter from its own items, so a
//! stale entry (a removed member, a deleted channel) costs a read, never a wrong answer. A
//! user's entries are written when they join, removed when they leave, and made complete once,
//! on their first query, for memberships older than the index (the `~ready` marker).

use crate::domain::channel::Channel;
use crate::domain::clock::{format_time, parse_time};
use crate::domain::ApiError;
use crate::service::unread_index::flag_write;
use crate::service::Chat;
use crate::store::layout::{
    activity_item, activity_pk, activity_ready_item, channel_pk, ACTIVITY_ALWAYS,
    ACTIVITY_READY_SK, MEMBER_SK_PREFIX,
};
use crate::store::{query_all, Condition, Cursor, Index, Query, SkRange, TableName, Write};

/// How far past a channel's activity its members' entries are put when rewritten: the longest
/// a busy channel goes without rewriting them.
pub(crate) const ACTIVITY_LEAD: chrono::Duration = chrono::Duration::seconds(5);
/// A channel active again within this is busy: its entries are put ahead by the lead.
pub(crate) const ACTIVITY_BUSY: chrono::Duration = chrono::Duration::seconds(1);
/// Channels above this many members are not rewritten on activity: their entries say
/// [`ACTIVITY_ALWAYS`].
pub(crate) const ACTIVITY_MEMBER_CAP: u32 = 200;

/// A channel's activity as query channels sorts it (`last_updated`: the last message's time,
/// or the creation's).
pub(crate) fn last_updated(c: &Channel) -> &str {
    c.last_message_at
        .as_deref()
        .unwrap_or(c.created_at.as_str())
}

fn activity(c: &Channel) -> Option<chrono::DateTime<chrono::Utc>> {
    parse_time(last_updated(c))
}

/// What a new entry of the channel says (a member joining): what its members' entries say, or
/// its activity itself when they say nothing yet.
pub(crate) fn entry_for(c: &Channel) -> String {
    if c.member_count > ACTIVITY_MEMBER_CAP {
        return ACTIVITY_ALWAYS.to_string();
    }
    let now = activity(c);
    match (c.activity_indexed.as_deref(), now) {
        (Some(indexed), Some(now)) if parse_time(indexed).is_some_and(|i| i >= now) => {
            indexed.to_string()
        }
        (_, Some(now)) => format_time(now),
        _ => last_updated(c).to_string(),
    }
}

/// Whether a change of `channel` (already applied; `before` is the channel as it was) takes it
/// past its members' entries (or over the member cap), and what they should say then; marks
/// them rewritten. A quiet channel's entries say its activity exactly; a busy one's (active
/// again within [`ACTIVITY_BUSY`]) say it plus [`ACTIVITY_LEAD`].
pub(crate) fn needs_rewrite(channel: &mut Channel, before: &Channel) -> Option<String> {
    let next = if channel.member_count > ACTIVITY_MEMBER_CAP {
        (channel.activity_indexed.as_deref() != Some(ACTIVITY_ALWAYS))
            .then(|| ACTIVITY_ALWAYS.to_string())
    } else {
        let now = activity(channel)?;
        let behind = channel
            .activity_indexed
            .as_deref()
            .and_then(parse_time)
            .is_none_or(|indexed| indexed < now);
        let quiet = activity(before).is_none_or(|was| now - was >= ACTIVITY_BUSY);
        behind.then(|| format_time(if quiet { now } else { now + ACTIVITY_LEAD }))
    };
    if let Some(next) = &next {
        channel.activity_indexed = Some(next.clone());
    }
    next
}

/// The write of `user_id`'s entry for `cid`.
pub(crate) fn entry_write(user_id: &str, cid: &str, activity: &str) -> Write {
    Write::Put {
        table: TableName::Channels,
        item: activity_item(user_id, cid, activity),
        condition: Condition::None,
    }
}

/// The removal of `user_id`'s entry for `cid`.
pub(crate) fn entry_delete(user_id: &str, cid: &str) -> Write {
    Write::Delete {
        table: TableName::Channels,
        pk: activity_pk(user_id),
        sk: cid.to_string(),
        condition: Condition::None,
    }
}

/// One entry read from the index.
pub(crate) struct Entry {
    pub cid: String,
    pub activity: String,
}

/// A user's entries, newest first, a page at a time.
pub(crate) struct Entries {
    user_id: String,
    cursor: Option<Cursor>,
    done: bool,
    /// Whether the user's entries are complete (the marker was met).
    pub ready: bool,
    started: bool,
}

impl Entries {
    pub(crate) fn of(user_id: &str) -> Entries {
        Entries {
            user_id: user_id.to_string(),
            cursor: None,
            done: false,
            ready: false,
            started: false,
        }
    }

    /// The next page of entries (empty when there are no more).
    pub(crate) async fn next_page(
        &mut self,
        chat: &Chat,
        size: usize,
    ) -> Result<Vec<Entry>, ApiError> {
        if self.done {
            return Ok(Vec::new());
        }
        let page = chat
            .store
            .query(
                Query::new(TableName::Channels, activity_pk(&self.user_id))
                    .index(Index::Gsi1)
                    .backward()
                    .limit(size)
                    .start_after(self.cursor.take()),
            )
            .await?;
        self.done = page.last.is_none();
        self.cursor = page.last;
        let mut out = Vec::with_capacity(page.items.len());
        for item in page.items {
            if item.sk == ACTIVITY_READY_SK {
                self.ready = !self.started;
                continue;
            }
            self.started = true;
            let cid = item.data["cid"].as_str().unwrap_or_default().to_string();
            let activity = item.data["activity"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            out.push(Entry { cid, activity });
        }
        Ok(out)
    }
}

/// Whether a channel whose real activity is `at` is in its final place once entries were read
/// down to `last_entry`: every entry left says at most that, and is at least its channel's.
pub(crate) fn is_final(at: chrono::DateTime<chrono::Utc>, last_entry: &str) -> bool {
    parse_time(last_entry).is_some_and(|last| at > last)
}

impl Chat {
    /// Makes `user_id`'s entries complete: one for each membership, then the marker.
    pub(crate) async fn complete_activity_entries(&self, user_id: &str) -> Result<(), ApiError> {
        let cids = self.membership_cids(user_id).await?;
        let keys: Vec<(String, String)> = cids
            .iter()
            .map(|cid| crate::service::channel_record::key(cid))
            .collect();
        let mut writes = Vec::with_capacity(keys.len() + 1);
        for chunk in keys.chunks(100) {
            for item in self.store.batch_get(TableName::Channels, chunk).await? {
                let (channel, _) = crate::service::channel_record::decode(item)?;
                writes.push(entry_write(user_id, &channel.cid, &entry_for(&channel)));
            }
        }
        for chunk in writes.chunks(crate::store::MAX_TRANSACTION_WRITES) {
            self.store.transact(chunk.to_vec()).await?;
        }
        self.store
            .write(Write::Put {
                table: TableName::Channels,
                item: activity_ready_item(user_id),
                condition: Condition::None,
            })
            .await?;
        Ok(())
    }

    /// The ids of a channel's members, from their keys alone.
    async fn member_ids(&self, cid: &str) -> Result<Vec<String>, ApiError> {
        let query = Query::new(TableName::Channels, channel_pk(cid))
            .range(SkRange::BeginsWith(MEMBER_SK_PREFIX.to_string()))
            .keys_only();
        Ok(query_all(self.store.as_ref(), query)
            .await?
            .into_iter()
            .filter_map(|i| i.sk.strip_prefix(MEMBER_SK_PREFIX).map(str::to_string))
            .collect())
    }

    /// Rewrites the members' entries of `cid` to `activity` (after a send moved it a step), and
    /// puts their unread flags of it (`unread_index`).
    pub(crate) async fn rewrite_activity_entries(
        &self,
        cid: &str,
        activity: &str,
    ) -> Result<(), ApiError> {
        let members = self.member_ids(cid).await?;
        let writes: Vec<Write> = members
            .iter()
            .flat_map(|m| [entry_write(m, cid, activity), flag_write(m, cid)])
            .collect();
        for chunk in writes.chunks(crate::store::MAX_TRANSACTION_WRITES) {
            self.store.transact(chunk.to_vec()).await?;
        }
        Ok(())
    }
}
