//! Query channels: candidate channels from index lookups, the document filters and sorts see,
//! and the page each reader gets.

use super::activity;
use super::*;
use crate::domain::caller::Session;
use crate::domain::channel::{
    check_filter_values, query_channels_rules, Channel, ChannelView, Member,
};
use crate::domain::channel_type::ChannelTypeConfig;
use crate::domain::clock::parse_time;
use crate::domain::filter::{compare_json, Filter, SortField};
use crate::domain::limits::{
    DEFAULT_CHANNEL_MESSAGE_LIMIT, DEFAULT_QUERY_CHANNELS_LIMIT, MAX_CHANNEL_MESSAGE_LIMIT,
    MAX_QUERY_CHANNELS_LIMIT, MAX_QUERY_CHANNELS_MEMBER_LIMIT,
};
use crate::domain::message::{MessageAnchor, MessagePage};
use crate::domain::ApiError;
use crate::service::{Chat, QueryParts};
use crate::store::layout::{channel_pk, channels_of_type_pk, memberships_pk, CHANNEL_SK};
use crate::store::{Index, TableName};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};

/// Who reads a query-channels result, for the per-reader filter fields.
struct ReaderView<'a> {
    user_id: Option<&'a str>,
    muted: bool,
    /// The filter names `member.user.name`: the members' names are read.
    member_names: bool,
    /// The filter names `app_banned`: two-member channels get whether the other member is banned
    /// app-wide.
    app_banned: bool,
}

impl Chat {
    /// `POST /channels`: channels matching a filter that the caller may read, sorted and paged,
    /// found through keys (cid), memberships (members, or the caller's own) or the type index.
    /// Channels the reader hid are left out unless the filter asks about `hidden`.
    pub async fn query_channels(
        &self,
        session: &Session,
        q: QueryChannels,
    ) -> Result<Value, ApiError> {
        let QueryParts {
            filter,
            mut sort,
            limit,
            offset,
        } = QueryParts::parse(
            q.filter_conditions.as_ref(),
            &query_channels_rules(),
            q.sort.as_ref(),
            q.limit,
            (DEFAULT_QUERY_CHANNELS_LIMIT, MAX_QUERY_CHANNELS_LIMIT),
            q.offset,
        )?;
        check_filter_values(&filter)?;
        let member_limit = q.member_limit.unwrap_or(MAX_QUERY_CHANNELS_MEMBER_LIMIT);
        if member_limit > MAX_QUERY_CHANNELS_MEMBER_LIMIT {
            return Err(ApiError::field(
                "member_limit",
                format!("member_limit must be at most {MAX_QUERY_CHANNELS_MEMBER_LIMIT}"),
            ));
        }
        let message_limit = q.message_limit.unwrap_or(DEFAULT_CHANNEL_MESSAGE_LIMIT);
        if message_limit > MAX_CHANNEL_MESSAGE_LIMIT {
            return Err(ApiError::field(
                "message_limit",
                format!("message_limit must be at most {MAX_CHANNEL_MESSAGE_LIMIT}"),
            ));
        }
        if sort.is_empty() {
            sort = vec![SortField {
                field: "last_updated".into(),
                direction: -1,
            }];
        }
        sort.push(SortField {
            field: "cid".into(),
            direction: 1,
        });
        let actor = acting_user(session, &q.user_id, &q.user);
        if session.caller.is_server()
            && actor.is_none()
            && [
                "joined",
                "invite",
                "muted",
                "hidden",
                "archived",
                "pinned",
                "has_unread",
            ]
            .iter()
            .any(|f| filter.mentions(f))
        {
            return Err(ApiError::field("user_id", "filters on the reader's own state (joined, invite, muted, hidden, archived, pinned, has_unread) need user_id server-side"));
        }
        let (mut matched, configs) = self
            .matching_channels(
                session,
                &filter,
                actor.as_deref(),
                Some((&sort, offset + limit)),
            )
            .await?;
        matched.sort_by(|(_, a), (_, b)| compare_json(&sort, a, b));
        let page: Vec<Loaded> = matched
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(loaded, _)| loaded)
            .collect();
        // `presence: true`: the connection hears the returned channels' members come and go.
        let mut presence_of: Vec<String> = Vec::new();
        for loaded in &page {
            self.watch_if_asked(session, q.watch, loaded).await?;
            if q.presence == Some(true) {
                presence_of.extend(loaded.members.iter().map(|m| m.user_id.clone()));
            }
        }
        // The page's channel states are read concurrently, answered in the page's order.
        let states = page.iter().map(|loaded| {
            let config = &configs[&loaded.channel.channel_type];
            let page = StatePage {
                member_limit: Some(member_limit),
                member_offset: None,
                messages: MessagePage {
                    anchor: MessageAnchor::Latest,
                    limit: message_limit,
                },
            };
            self.channel_state(session, config, loaded, actor.as_deref(), page)
        });
        let channels = futures::future::try_join_all(states).await?;
        if let (false, Some(conn)) = (presence_of.is_empty(), &session.connection_id) {
            let others = crate::domain::ids::unique(presence_of);
            let ids: Vec<&str> = others
                .iter()
                .map(String::as_str)
                .filter(|id| Some(*id) != actor.as_deref())
                .collect();
            self.subscribe_presence(conn, &ids).await?;
        }
        Ok(json!({ "channels": channels }))
    }

    /// The channels a filter names that the caller may read, each with the document the
    /// filter matched (and sorts see) and its type's config; channels the reader hid are left out
    /// unless the filter asks about `hidden`.
    ///
    /// With `first: (sort, n)` only the first `n` matches in that order are needed: when the
    /// sort looks only at the channels' own fields, the candidates are ordered from their channel
    /// items (one batch read) and loaded whole in that order until `n` match, so a member of a
    /// thousand channels asking for ten loads about ten.
    pub(crate) async fn matching_channels(
        &self,
        session: &Session,
        filter: &Filter,
        actor: Option<&str>,
        first: Option<(&[SortField], usize)>,
    ) -> Result<(Vec<(Loaded, Value)>, HashMap<String, ChannelTypeConfig>), ApiError> {
        let muted: BTreeSet<String> = match actor {
            Some(a) => self
                .active_channel_mutes(a)
                .await?
                .into_iter()
                .map(|m| m.channel_cid)
                .collect(),
            None => BTreeSet::new(),
        };
        let mut matcher = Matcher {
            session,
            filter,
            actor,
            muted,
            configs: HashMap::new(),
        };
        let members = member_ids_of(session, filter, actor);
        // One member's channels in the default order: newest activity entries first.
        if let (Some((sort, n)), Some([member])) = (first, members.as_deref()) {
            if let Some(key) = activity_sort(sort) {
                if let Some(matched) = self
                    .matching_by_activity(&mut matcher, member, key, n)
                    .await?
                {
                    return Ok((matched, matcher.configs));
                }
            }
        }
        let mut cids = self.candidate_cids(filter, members).await?;
        let mut wanted = usize::MAX;
        if let Some((sort, n)) =
            first.filter(|(sort, n)| cids.len() > *n && sorts_by_channel_only(sort))
        {
            cids = self.cids_in_order(&cids, sort).await?;
            wanted = n;
        }
        let mut matched = Vec::new();
        for cid in cids {
            if matched.len() >= wanted {
                break;
            }
            if let Some(m) = self.match_channel(&mut matcher, &cid, None).await? {
                matched.push(m);
            }
        }
        Ok((matched, matcher.configs))
    }

    /// The first `n` matches among `member`'s channels by activity, newest first; `None` when
    /// the member's entries are not complete yet (they are made so, for the next query).
    ///
    /// Entries are read a page at a time, newest first, and the page's channel items give
    /// their real activity (one batch read). A channel is final once its real activity is past
    /// the last entry read: entries are upper bounds, so no channel not yet read can come before
    /// it. Final channels are loaded whole and matched in order until `n` match.
    async fn matching_by_activity(
        &self,
        matcher: &mut Matcher<'_>,
        member: &str,
        key: ActivitySort,
        n: usize,
    ) -> Result<Option<Vec<(Loaded, Value)>>, ApiError> {
        let mut entries = activity::Entries::of(member);
        let mut size = ACTIVITY_FIRST_PAGE;
        let mut page = entries.next_page(self, size).await?;
        if !entries.ready {
            self.complete_activity_entries(member).await?;
            return Ok(None);
        }
        // Channels read, by their sort key (none: no message yet, last), waiting for their turn.
        let mut waiting: Vec<(Option<chrono::DateTime<chrono::Utc>>, String)> = Vec::new();
        let mut matched: Vec<(Loaded, Value)> = Vec::new();
        loop {
            let keys: Vec<(String, String)> =
                page.iter().map(|e| channel_record::key(&e.cid)).collect();
            for item in self.store.batch_get(TableName::Channels, &keys).await? {
                let Ok((c, _)) = channel_record::decode(item) else {
                    continue;
                };
                if c.deleted_at.is_some() {
                    continue;
                }
                let at = match key {
                    ActivitySort::LastUpdated => parse_time(activity::last_updated(&c)),
                    ActivitySort::LastMessageAt => {
                        c.last_message_at.as_deref().and_then(parse_time)
                    }
                };
                waiting.push((at, c.cid));
            }
            // Newest first, those without a key last, then by cid (as `compare` sorts them).
            waiting.sort_by(|a, b| match (a.0, b.0) {
                (Some(x), Some(y)) => y.cmp(&x).then_with(|| a.1.cmp(&b.1)),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => a.1.cmp(&b.1),
            });
            let last_entry = page.last().map(|e| e.activity.clone());
            let done = last_entry.is_none();
            let last_entry = last_entry.unwrap_or_default();
            let ready = waiting
                .iter()
                .take_while(|(at, _)| {
                    done || at.is_some_and(|at| activity::is_final(at, &last_entry))
                })
                .count();
            for (_, cid) in waiting.drain(..ready) {
                if let Some(m) = self.match_channel(matcher, &cid, Some(member)).await? {
                    matched.push(m);
                    if matched.len() >= n {
                        return Ok(Some(matched));
                    }
                }
            }
            if done {
                return Ok(Some(matched));
            }
            size = (size * 2).min(ACTIVITY_MAX_PAGE);
            page = entries.next_page(self, size).await?;
        }
    }

    /// One candidate channel with its filter document, if it exists, the caller may read it, it
    /// is not hidden from the reader (unless the filter asks about `hidden`), `member` (when
    /// given) belongs to it, and it matches the filter.
    async fn match_channel(
        &self,
        m: &mut Matcher<'_>,
        cid: &str,
        member: Option<&str>,
    ) -> Result<Option<(Loaded, Value)>, ApiError> {
        let Some(loaded) = self.load_channel(cid).await? else {
            return Ok(None);
        };
        if member.is_some_and(|u| !loaded.members.iter().any(|x| x.user_id == u)) {
            return Ok(None);
        }
        let ct = loaded.channel.channel_type.clone();
        if !m.configs.contains_key(&ct) {
            match self.channel_type(&ct).await? {
                Some((c, _)) => m.configs.insert(ct.clone(), c),
                None => return Ok(None),
            };
        }
        let config = &m.configs[&ct];
        if !m.session.caller.is_server()
            && self
                .check_channel_action(
                    m.session,
                    config,
                    Some(&loaded),
                    &loaded.channel,
                    "ReadChannel",
                )
                .is_err()
        {
            return Ok(None);
        }
        let view = ReaderView {
            user_id: m.actor,
            muted: m.muted.contains(cid),
            member_names: m.filter.mentions("member.user.name"),
            app_banned: m.filter.mentions("app_banned"),
        };
        let doc = self.filter_doc(&loaded, &view).await?;
        let hidden = doc.get("hidden").and_then(Value::as_bool).unwrap_or(false);
        if hidden && !m.filter.mentions("hidden") {
            return Ok(None);
        }
        Ok(m.filter.matches_json(&doc).then_some((loaded, doc)))
    }

    /// The document query-channels filters and sorts see: the channel's fields and custom data,
    /// its member ids and names, and the reader's view (joined, invite status, muted, hidden,
    /// archived, pinned, banned).
    /// The channel types a filter confines channels to (its `type`), or every type.
    pub(crate) async fn filter_types(
        &self,
        filter: &crate::domain::filter::Filter,
    ) -> Result<Vec<String>, ApiError> {
        Ok(match filter.key_values("type") {
            Some(t) => t
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            None => self
                .list_channel_types_raw()
                .await?
                .into_iter()
                .map(|c| c.name)
                .collect(),
        })
    }

    /// Whether the channel `cid` exists (not deleted) and a server-side query channels with
    /// `filter` would find it (campaign segments of channels by filter).
    pub(crate) async fn channel_matches(
        &self,
        cid: &str,
        filter: &crate::domain::filter::Filter,
    ) -> Result<bool, ApiError> {
        let Some(loaded) = self.load_channel(cid).await? else {
            return Ok(false);
        };
        if loaded.channel.deleted_at.is_some() {
            return Ok(false);
        }
        let view = ReaderView {
            user_id: None,
            muted: false,
            member_names: filter.mentions("member.user.name"),
            app_banned: filter.mentions("app_banned"),
        };
        let doc = self.filter_doc(&loaded, &view).await?;
        Ok(filter.matches_json(&doc))
    }

    async fn filter_doc(
        &self,
        loaded: &Loaded,
        reader: &ReaderView<'_>,
    ) -> Result<Value, ApiError> {
        let c = &loaded.channel;
        let mut doc = channel_doc(c);
        doc.insert(
            "members".into(),
            loaded
                .members
                .iter()
                .map(|m| Value::String(m.user_id.clone()))
                .collect::<Vec<_>>()
                .into(),
        );
        doc.insert("muted".into(), Value::Bool(reader.muted));
        // Seed: `app_banned` applies only to channels of exactly two members.
        if reader.app_banned && loaded.members.len() == 2 {
            let others: Vec<&str> = loaded
                .members
                .iter()
                .map(|m| m.user_id.as_str())
                .filter(|id| Some(*id) != reader.user_id)
                .collect();
            let users = self.users_by_id(&others).await?;
            let banned = users.values().any(|(u, _)| u.banned);
            doc.insert(
                "app_banned".into(),
                Value::String(if banned { "only" } else { "excluded" }.into()),
            );
        }
        if reader.member_names {
            let ids: Vec<&str> = loaded.members.iter().map(|m| m.user_id.as_str()).collect();
            let users = self.users_by_id(&ids).await?;
            let names: Vec<Value> = users
                .values()
                .filter_map(|(u, _)| u.custom.get("name").cloned())
                .collect();
            doc.insert("member".into(), json!({ "user": { "name": names } }));
        }
        let membership = reader
            .user_id
            .and_then(|r| loaded.members.iter().find(|m| m.user_id == r));
        doc.insert(
            "joined".into(),
            Value::Bool(membership.is_some_and(Member::is_joined)),
        );
        doc.insert(
            "hidden".into(),
            Value::Bool(membership.is_some_and(|m| m.hidden)),
        );
        doc.insert(
            "archived".into(),
            Value::Bool(membership.is_some_and(|m| m.archived_at.is_some())),
        );
        doc.insert(
            "pinned".into(),
            Value::Bool(membership.is_some_and(|m| m.pinned_at.is_some())),
        );
        if let Some(m) = membership {
            doc.insert(
                "invite".into(),
                Value::String(m.invite_status().to_string()),
            );
            if let Some(p) = &m.pinned_at {
                doc.insert("pinned_at".into(), Value::String(p.clone()));
            }
        }
        // The reader's unread messages (muted channels have none to show).
        let unread = match membership {
            Some(m) if m.is_joined() && !reader.muted => m.read.unread(c.counted_messages),
            _ => 0,
        };
        doc.insert("unread_count".into(), unread.into());
        doc.insert("has_unread".into(), Value::Bool(unread > 0));
        Ok(Value::Object(doc))
    }

    /// `cids` in `sort` order, from their channel items alone (deleted channels left out).
    async fn cids_in_order(
        &self,
        cids: &[String],
        sort: &[SortField],
    ) -> Result<Vec<String>, ApiError> {
        let keys: Vec<(String, String)> = cids
            .iter()
            .map(|cid| (channel_pk(cid), CHANNEL_SK.to_string()))
            .collect();
        let mut docs: Vec<Value> = Vec::with_capacity(keys.len());
        for item in self.store.batch_get(TableName::Channels, &keys).await? {
            let Ok((c, _)) = channel_record::decode(item) else {
                continue;
            };
            if c.deleted_at.is_none() {
                docs.push(Value::Object(channel_doc(&c)));
            }
        }
        docs.sort_by(|a, b| compare_json(sort, a, b));
        Ok(docs
            .into_iter()
            .filter_map(|d| d["cid"].as_str().map(str::to_string))
            .collect())
    }

    async fn candidate_cids(
        &self,
        filter: &Filter,
        member_ids: Option<Vec<String>>,
    ) -> Result<Vec<String>, ApiError> {
        if let Some(cids) = filter.key_values("cid") {
            return Ok(cids
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect());
        }
        if let (Some(types), Some(ids)) = (filter.key_values("type"), filter.key_values("id")) {
            let mut out = Vec::new();
            for t in types.iter().filter_map(Value::as_str) {
                out.extend(
                    ids.iter()
                        .filter_map(Value::as_str)
                        .map(|id| format!("{t}:{id}")),
                );
            }
            return Ok(out);
        }
        let mut out = BTreeSet::new();
        if let Some(ids) = member_ids {
            for uid in ids {
                self.collect_index(Index::Gsi1, &memberships_pk(&uid), &mut out)
                    .await?;
            }
            return Ok(out.into_iter().collect());
        }
        for t in self.filter_types(filter).await? {
            self.collect_index(Index::Gsi2, &channels_of_type_pk(&t), &mut out)
                .await?;
        }
        Ok(out.into_iter().collect())
    }
}

/// Entries read from the activity index in the first page (enough for a usual page of
/// channels), doubling on each further page up to the largest.
const ACTIVITY_FIRST_PAGE: usize = 16;
const ACTIVITY_MAX_PAGE: usize = 256;

/// What every candidate of one query is matched with.
struct Matcher<'a> {
    session: &'a Session,
    filter: &'a Filter,
    actor: Option<&'a str>,
    muted: BTreeSet<String>,
    configs: HashMap<String, ChannelTypeConfig>,
}

/// The members whose channels are the candidates: those the filter names, or client-side with
/// neither members nor type named, the caller's own. `None`: the candidates come from keys or
/// the type index.
fn member_ids_of(session: &Session, filter: &Filter, actor: Option<&str>) -> Option<Vec<String>> {
    if filter.key_values("cid").is_some()
        || (filter.key_values("type").is_some() && filter.key_values("id").is_some())
    {
        return None;
    }
    filter
        .key_values("members")
        .map(|v| {
            v.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .or_else(|| {
            (!session.caller.is_server() && filter.key_values("type").is_none())
                .then(|| actor.map(|a| vec![a.to_string()]).unwrap_or_default())
        })
}

/// The orders the activity index answers: newest activity first (query channels' default), or
/// newest message first with channels without messages last; then by cid.
#[derive(Clone, Copy)]
enum ActivitySort {
    LastUpdated,
    LastMessageAt,
}

fn activity_sort(sort: &[SortField]) -> Option<ActivitySort> {
    let [first, rest @ ..] = sort else {
        return None;
    };
    if first.direction != -1 || !rest.iter().all(|f| f.field == "cid") {
        return None;
    }
    match first.field.as_str() {
        "last_updated" => Some(ActivitySort::LastUpdated),
        "last_message_at" => Some(ActivitySort::LastMessageAt),
        _ => None,
    }
}

/// Fields of the filter document that depend on the reader or on the member items, not on the
/// channel item alone (`member_count` is counted from the member items).
const READER_FIELDS: &[&str] = &[
    "members",
    "member",
    "member_count",
    "app_banned",
    "muted",
    "joined",
    "hidden",
    "archived",
    "pinned",
    "pinned_at",
    "invite",
    "unread_count",
    "has_unread",
];

/// Whether a sort looks only at fields the channel item has.
fn sorts_by_channel_only(sort: &[SortField]) -> bool {
    sort.iter().all(|f| {
        let root = f.field.split('.').next().unwrap_or_default();
        !READER_FIELDS.contains(&root)
    })
}

/// The part of the filter document that is the channel's own: its fields and custom data, its
/// type, creator, `last_updated` (seed: the last message's time, or the creation's when there
/// is none), `disabled` and `frozen`.
fn channel_doc(c: &Channel) -> serde_json::Map<String, Value> {
    let mut doc = c.to_wire(&ChannelView::default());
    doc.insert("type".into(), Value::String(c.channel_type.clone()));
    doc.insert(
        "created_by_id".into(),
        c.created_by_id
            .clone()
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    let last_updated = c
        .last_message_at
        .as_deref()
        .unwrap_or(c.created_at.as_str());
    doc.insert(
        "last_updated".into(),
        Value::String(last_updated.to_string()),
    );
    doc.insert("disabled".into(), Value::Bool(c.disabled));
    doc.insert("frozen".into(), Value::Bool(c.frozen));
    doc
}
