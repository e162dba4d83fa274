//! Channel use cases, one file per side: `access` (permission checks, readable channels,
//! watching), `state` (get-or-create and the state payload), `update` (updates, member changes,
//! truncate, delete), `query` (query channels through key and index lookups) and `events`
//! (typing and custom events). This file owns the channel record and its partition (loading a
//! channel with its members, committing a change) and the request bodies.

pub(crate) mod activity;
mod events;
mod query;
mod state;
mod update;

pub use events::SendEvent;
pub use state::PREFETCH_CHANNELS;

use super::{channel_record, member_record, unread_index, Chat};
use crate::domain::channel::{Channel, ChannelView, Member};
use crate::domain::event::Event;
use crate::domain::limits::{
    DEFAULT_CHANNEL_MESSAGE_LIMIT, MAX_CHANNEL_MEMBER_LIMIT, MAX_CHANNEL_MEMBER_OFFSET,
};
use crate::domain::message::{MessageAnchor, MessagePage};
use crate::domain::user::User;
use crate::domain::ApiError;
pub(crate) use crate::service::acting_user;
pub(crate) use crate::service::channel_record::{channel_event, Loaded};
use crate::store::layout::{channels_of_type_pk, outbox_write};
use crate::store::{query_all, Index, Query, StoreError, TableName, Write, MAX_TRANSACTION_WRITES};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};

/// Body of `POST /channels/{type}/{id}/query` (and the id-less distinct form).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChannelQuery {
    pub data: Option<Map<String, Value>>,
    pub state: Option<bool>,
    pub watch: Option<bool>,
    pub presence: Option<bool>,
    pub members: Option<PageParams>,
    pub watchers: Option<PageParams>,
    pub messages: Option<Map<String, Value>>,
    pub hide_for_creator: Option<bool>,
    pub user_id: Option<String>,
    pub user: Option<Map<String, Value>>,
}

impl ChannelQuery {
    /// The member page asked for, within the seed's limits (limit ≤ 300, offset ≤ 10000).
    fn page(&self) -> Result<StatePage, ApiError> {
        for (field, p) in [("members", &self.members), ("watchers", &self.watchers)] {
            let Some(p) = p else { continue };
            if p.limit.is_some_and(|l| l > MAX_CHANNEL_MEMBER_LIMIT) {
                return Err(ApiError::field(
                    field,
                    format!("{field}.limit must be at most {MAX_CHANNEL_MEMBER_LIMIT}"),
                ));
            }
            if p.offset.is_some_and(|o| o > MAX_CHANNEL_MEMBER_OFFSET) {
                return Err(ApiError::field(
                    field,
                    format!("{field}.offset must be at most {MAX_CHANNEL_MEMBER_OFFSET}"),
                ));
            }
        }
        let members = self.members.clone().unwrap_or_default();
        Ok(StatePage {
            member_limit: members.limit,
            member_offset: members.offset,
            messages: MessagePage::parse(self.messages.as_ref())?,
        })
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct PageParams {
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

/// Body of `POST /channels/{type}/{id}`: full update and member changes.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChannelUpdate {
    pub data: Option<Map<String, Value>>,
    pub add_members: Option<Value>,
    pub remove_members: Option<Value>,
    pub add_moderators: Option<Value>,
    pub demote_moderators: Option<Value>,
    pub invites: Option<Value>,
    pub assign_roles: Option<Value>,
    pub accept_invite: Option<bool>,
    pub reject_invite: Option<bool>,
    pub hide_history: Option<bool>,
    pub hide_history_before: Option<String>,
    /// The optional system message of the change.
    pub message: Option<Value>,
    pub skip_push: Option<bool>,
    pub user_id: Option<String>,
    pub user: Option<Map<String, Value>>,
}

/// Body of `POST /channels/{type}/{id}/truncate`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct TruncateRequest {
    pub truncated_at: Option<String>,
    pub hard_delete: Option<bool>,
    pub skip_push: Option<bool>,
    /// The optional system message of the truncation.
    pub message: Option<Value>,
    pub user_id: Option<String>,
    pub user: Option<Map<String, Value>>,
}

/// Body of `POST /channels` (query channels).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct QueryChannels {
    pub filter_conditions: Option<Value>,
    pub sort: Option<Value>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
    pub member_limit: Option<usize>,
    pub message_limit: Option<usize>,
    pub state: Option<bool>,
    pub watch: Option<bool>,
    pub presence: Option<bool>,
    pub user_id: Option<String>,
    pub user: Option<Map<String, Value>>,
}

/// An event addressed to one user (the `notification.*` family), stored under that user's scope.
fn notification_event(
    kind: &str,
    channel: &Channel,
    user_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Event {
    Event::new(kind, crate::domain::event::user_scope(user_id), now)
        .with("cid", Value::String(channel.cid.clone()))
        .with("channel_id", Value::String(channel.id.clone()))
        .with("channel_type", Value::String(channel.channel_type.clone()))
        .with(
            "channel",
            Value::Object(channel.to_wire(&ChannelView::default())),
        )
}

/// Which members (and, with messages, which messages) a channel state shows.
#[derive(Clone, Debug)]
pub struct StatePage {
    pub member_limit: Option<usize>,
    pub member_offset: Option<usize>,
    pub messages: MessagePage,
}

impl Default for StatePage {
    fn default() -> Self {
        StatePage {
            member_limit: None,
            member_offset: None,
            messages: MessagePage {
                anchor: MessageAnchor::Latest,
                limit: DEFAULT_CHANNEL_MESSAGE_LIMIT,
            },
        }
    }
}

impl Chat {
    /// Commits a change to a channel item written under its version condition: a concurrent
    /// change makes the request fail with a retryable input error, not a 500.
    async fn commit_channel_change(&self, cid: &str, writes: Vec<Write>) -> Result<(), ApiError> {
        match self.store.transact(writes).await {
            Ok(()) => Ok(()),
            Err(StoreError::TransactionCanceled { .. }) => Err(ApiError::input(format!(
                "channel {cid} was changed concurrently; try again"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Does any channel of this type exist (a type in use cannot be deleted)?
    pub(crate) async fn channel_type_in_use(&self, channel_type: &str) -> Result<bool, ApiError> {
        let page = self
            .store
            .query(
                Query::new(TableName::Channels, channels_of_type_pk(channel_type))
                    .index(Index::Gsi2)
                    .limit(1),
            )
            .await?;
        Ok(!page.items.is_empty())
    }

    /// Every cid listed under an index partition (the index sort key is the cid).
    pub(crate) async fn collect_index(
        &self,
        index: Index,
        pk: &str,
        out: &mut BTreeSet<String>,
    ) -> Result<(), ApiError> {
        let query = Query::new(TableName::Channels, pk).index(index).keys_only();
        out.extend(
            query_all(self.store.as_ref(), query)
                .await?
                .iter()
                .filter_map(|i| i.index_key(index))
                .map(|k| k.sk.clone()),
        );
        Ok(())
    }
}

/// The membership changes of one request, turned into member writes and their events.
#[derive(Default)]
struct MemberChanges {
    added: Vec<Member>,
    removed: Vec<Member>,
    updated: Vec<Member>,
    /// The acting user's invite answer: the member and whether it was accepted.
    answered: Option<(Member, bool)>,
}

impl MemberChanges {
    fn updated(&mut self, m: Member) {
        match self.updated.iter_mut().find(|u| u.user_id == m.user_id) {
            Some(slot) => *slot = m,
            None => self.updated.push(m),
        }
    }

    fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.updated.is_empty()
            && self.answered.is_none()
    }

    fn user_ids(&self) -> Vec<&str> {
        let answered = self.answered.as_ref().map(|(m, _)| m);
        self.added
            .iter()
            .chain(&self.removed)
            .chain(&self.updated)
            .chain(answered)
            .map(|m| m.user_id.as_str())
            .collect()
    }

    /// Each member's item write with its events, packed into transactions DynamoDB accepts.
    fn writes(
        &self,
        channel: &Channel,
        users: &HashMap<String, (User, u64)>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Vec<Write>>, ApiError> {
        let creator = channel.created_by_id.as_deref();
        let user_json = |id: &str| crate::service::users::shown(users, id);
        let wire = |m: &Member| Value::Object(m.to_wire(Some(&user_json(&m.user_id)), creator));
        let mut groups: Vec<Vec<Write>> = Vec::new();
        for m in &self.added {
            let notice = if m.invited {
                "notification.invited"
            } else {
                "notification.added_to_channel"
            };
            groups.push(vec![
                activity::entry_write(&m.user_id, &channel.cid, &activity::entry_for(channel)),
                unread_index::flag_write(&m.user_id, &channel.cid),
                member_record::put_added(&channel.cid, m)?,
                outbox_write(
                    &channel_event("member.added", channel, now)
                        .with("member", wire(m))
                        .with("user", user_json(&m.user_id)),
                ),
                outbox_write(
                    &notification_event(notice, channel, &m.user_id, now)
                        .with("member", wire(m))
                        .with("user", user_json(&m.user_id)),
                ),
            ]);
        }
        for m in &self.removed {
            groups.push(vec![
                member_record::delete(&channel.cid, &m.user_id),
                crate::store::layout::past_channel_write(&m.user_id, &channel.cid),
                activity::entry_delete(&m.user_id, &channel.cid),
                unread_index::flag_delete(&m.user_id, &channel.cid),
                outbox_write(
                    &channel_event("member.removed", channel, now)
                        .with("member", wire(m))
                        .with("user", user_json(&m.user_id)),
                ),
                outbox_write(
                    &notification_event(
                        "notification.removed_from_channel",
                        channel,
                        &m.user_id,
                        now,
                    )
                    .with("member", wire(m))
                    .with("user", user_json(&m.user_id)),
                ),
            ]);
        }
        for m in &self.updated {
            groups.push(vec![
                member_record::put_added(&channel.cid, m)?,
                outbox_write(
                    &channel_event("member.updated", channel, now)
                        .with("member", wire(m))
                        .with("user", user_json(&m.user_id)),
                ),
            ]);
        }
        if let Some((m, accepted)) = &self.answered {
            let kind = if *accepted {
                "notification.invite_accepted"
            } else {
                "notification.invite_rejected"
            };
            groups.push(vec![
                member_record::put_added(&channel.cid, m)?,
                outbox_write(
                    &channel_event("member.updated", channel, now)
                        .with("member", wire(m))
                        .with("user", user_json(&m.user_id)),
                ),
                outbox_write(
                    &notification_event(kind, channel, &m.user_id, now)
                        .with("member", wire(m))
                        .with("user", user_json(&m.user_id)),
                ),
            ]);
        }
        Ok(pack(groups))
    }
}

/// Groups of writes packed into transactions of at most `MAX_TRANSACTION_WRITES`, a group never
/// split.
fn pack(groups: Vec<Vec<Write>>) -> Vec<Vec<Write>> {
    let mut out: Vec<Vec<Write>> = Vec::new();
    for g in groups {
        match out.last_mut() {
            Some(last) if last.len() + g.len() <= MAX_TRANSACTION_WRITES => last.extend(g),
            _ => out.push(g),
        }
    }
    out
}
