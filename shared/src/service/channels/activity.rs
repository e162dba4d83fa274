//! The activity index: for each user, their channels by last activity (`last_updated`), so
//! query channels in its default order reads about as many channels as it returns instead of
//! every membership.
//!
//! An entry's activity is a hint that trails the channel's by less than [`ACTIVITY_STEP`]: a
//! send rewrites the members' entries only when the channel's activity moved that far since
//! the last rewrite (channels of more than [`ACTIVITY_MEMBER_CAP`] members get
//! [`ACTIVITY_ALWAYS`] once, so they are always read). Readers load channels newest entry first
//! and stop once no entry left can beat the page's last channel by its real activity; every
//! channel is still checked against the filter from its own items, so a stale entry (a removed
//! member, a deleted channel) costs a read, never a wrong answer. A user's entries are written
//! when they join, removed when they leave, and made complete once, on their first query, for
//! memberships older than the index (the `~ready` marker).

use crate::domain::channel::Channel;
use crate::domain::clock::{format_time, parse_time};
use crate::domain::ApiError;
use crate::service::Chat;
use crate::store::layout::{
    activity_item, activity_pk, activity_ready_item, channel_pk, ACTIVITY_ALWAYS,
    ACTIVITY_READY_SK, MEMBER_SK_PREFIX,
};
use crate::store::{query_all, Condition, Cursor, Index, Query, SkRange, TableName, Write};

/// How far a channel's activity may run ahead of its members' entries.
pub(crate) const ACTIVITY_STEP: chrono::Duration = chrono::Duration::seconds(10);
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

/// The activity the members' entries should say now.
pub(crate) fn activity_of(c: &Channel) -> String {
    if c.member_count > ACTIVITY_MEMBER_CAP {
        return ACTIVITY_ALWAYS.to_string();
    }
    parse_time(last_updated(c))
        .map(format_time)
        .unwrap_or_else(|| last_updated(c).to_string())
}

/// Whether a change of `channel` (already applied) should rewrite its members' entries: never
/// written, grown past the cap, or moved a step since the last rewrite. Marks it rewritten.
pub(crate) fn needs_rewrite(channel: &mut Channel) -> Option<String> {
    let now = activity_of(channel);
    let due = match channel.activity_indexed.as_deref() {
        None => true,
        Some(written) if written == now => false,
        Some(_) if now == ACTIVITY_ALWAYS => true,
        Some(written) => match (parse_time(written), parse_time(&now)) {
            (Some(w), Some(n)) => n - w >= ACTIVITY_STEP,
            _ => true,
        },
    };
    if due {
        channel.activity_indexed = Some(now.clone());
        Some(now)
    } else {
        None
    }
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

/// Whether a channel whose entry says `entry` may still come before one whose real activity
/// is `page_last` (its real activity is less than a step after its entry's).
pub(crate) fn may_beat(entry: &str, page_last: &str) -> bool {
    if entry == ACTIVITY_ALWAYS {
        return true;
    }
    match (parse_time(entry), parse_time(page_last)) {
        (Some(e), Some(p)) => e + ACTIVITY_STEP > p,
        _ => true,
    }
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
                writes.push(entry_write(user_id, &channel.cid, &activity_of(&channel)));
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

    /// Rewrites the members' entries of `cid` to `activity` (after a send moved it a step).
    pub(crate) async fn rewrite_activity_entries(
        &self,
        cid: &str,
        activity: &str,
    ) -> Result<(), ApiError> {
        let members = self.member_ids(cid).await?;
        let writes: Vec<Write> = members
            .iter()
            .map(|m| entry_write(m, cid, activity))
            .collect();
        for chunk in writes.chunks(crate::store::MAX_TRANSACTION_WRITES) {
            self.store.transact(chunk.to_vec()).await?;
        }
        Ok(())
    }
}
