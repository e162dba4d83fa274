//! Channel use cases: get-or-create (distinct channels included), channel state, full and
//! partial update, members and moderators, soft delete, and query channels through key and
//! index lookups, each change written with its events.

use super::tasks::TaskJob;
use super::{to_doc, Chat, QueryParts};
use crate::domain::caller::{Caller, Session};
use crate::domain::capabilities::advertised_capabilities;
use crate::domain::channel::{
    check_filter_values, check_member_batch, distinct_channel_id, hide_history_cutoff,
    parse_user_ids, query_channels_rules, validate_channel_type, Channel, ChannelData, ChannelView,
    Cid, Member, NewChannelData, NewMember, CHANNEL_MEMBER_ROLE, CHANNEL_MODERATOR_ROLE,
};
use crate::domain::channel_type::ChannelTypeConfig;
use crate::domain::clock::{format_time, parse_time};
use crate::domain::event::Event;
use crate::domain::filter::{compare_json, Filter, SortField};
use crate::domain::limits::{
    DEFAULT_CHANNEL_MEMBER_LIMIT, DEFAULT_CHANNEL_MESSAGE_LIMIT, DEFAULT_QUERY_CHANNELS_LIMIT,
    MAX_CHANNEL_MEMBER_LIMIT, MAX_CHANNEL_MEMBER_OFFSET, MAX_CHANNEL_MESSAGE_LIMIT,
    MAX_DELETE_CHANNELS, MAX_QUERY_CHANNELS_LIMIT, MAX_QUERY_CHANNELS_MEMBER_LIMIT,
};
use crate::domain::message::{MessageAnchor, MessagePage, Viewer};
use crate::domain::permissions::{self, Resource};
use crate::domain::user::User;
use crate::domain::ApiError;
use crate::store::layout::{
    channel_item, channel_pk, channels_of_type_pk, member_item, member_sk, memberships_pk,
    outbox_write, CHANNEL_SK, MEMBER_SK_PREFIX, READER_SK_PREFIX,
};
use crate::store::{
    Condition, Cursor, Index, Query, SkRange, StoreError, TableName, Write, MAX_TRANSACTION_WRITES,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

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

/// A channel with its members, as read from its partition.
pub(crate) struct Loaded {
    pub channel: Channel,
    pub version: u64,
    pub members: Vec<Member>,
    /// Read states of users who are not members (see `reader_item`).
    pub readers: Vec<Member>,
}

/// The user acting in a request: the caller, or for server-side requests the `user_id` / `user`
/// the body names (Stream's server-side "on behalf of").
pub(crate) fn acting_user(
    session: &Session,
    user_id: &Option<String>,
    user: &Option<Map<String, Value>>,
) -> Option<String> {
    match &session.caller {
        Caller::Server => user_id.clone().or_else(|| {
            user.as_ref()
                .and_then(|u| u.get("id"))
                .and_then(Value::as_str)
                .map(str::to_string)
        }),
        other => other.user_id().map(str::to_string),
    }
}

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

/// `channel.updated` for a changed channel, plus `channel.frozen` / `channel.unfrozen` when the
/// change froze or unfroze it.
fn channel_update_events(
    before: &Channel,
    after: &Channel,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<Write> {
    let mut out = vec![outbox_write(
        &channel_event("channel.updated", after, now).with(
            "channel",
            Value::Object(after.to_wire(&ChannelView::default())),
        ),
    )];
    if before.frozen != after.frozen {
        let kind = if after.frozen {
            "channel.frozen"
        } else {
            "channel.unfrozen"
        };
        out.push(outbox_write(&channel_event(kind, after, now)));
    }
    out
}

/// An event addressed to one user (the `notification.*` family), stored under that user's scope.
fn notification_event(
    kind: &str,
    channel: &Channel,
    user_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Event {
    Event::new(kind, format!("user:{user_id}"), now)
        .with("cid", Value::String(channel.cid.clone()))
        .with("channel_id", Value::String(channel.id.clone()))
        .with("channel_type", Value::String(channel.channel_type.clone()))
        .with(
            "channel",
            Value::Object(channel.to_wire(&ChannelView::default())),
        )
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
        let user_json = |id: &str| {
            users
                .get(id)
                .map(|(u, _)| u.to_json())
                .unwrap_or_else(|| json!({"id": id}))
        };
        let wire = |m: &Member| Value::Object(m.to_wire(Some(&user_json(&m.user_id)), creator));
        let put = |m: &Member| -> Result<Write, ApiError> {
            Ok(Write::Put {
                table: TableName::Channels,
                item: member_item(&channel.cid, &m.user_id, to_doc(m)?),
                condition: Condition::None,
            })
        };
        let mut groups: Vec<Vec<Write>> = Vec::new();
        for m in &self.added {
            let notice = if m.invited {
                "notification.invited"
            } else {
                "notification.added_to_channel"
            };
            groups.push(vec![
                put(m)?,
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
                Write::Delete {
                    table: TableName::Channels,
                    pk: channel_pk(&channel.cid),
                    sk: member_sk(&m.user_id),
                    condition: Condition::None,
                },
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
                put(m)?,
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
                put(m)?,
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
        let mut channel = None;
        let mut members = Vec::new();
        let mut readers = Vec::new();
        let mut cursor: Option<Cursor> = None;
        loop {
            let page = self
                .store
                .query(
                    Query::new(TableName::Channels, channel_pk(cid))
                        .limit(1000)
                        .start_after(cursor),
                )
                .await?;
            for item in page.items {
                if item.sk == CHANNEL_SK {
                    let c: Channel = serde_json::from_value(item.data).map_err(|e| {
                        ApiError::internal(format!("stored channel is unreadable: {e}"))
                    })?;
                    channel = Some((c, item.version));
                } else if item.sk.starts_with(MEMBER_SK_PREFIX) {
                    let mut member: Member = serde_json::from_value(item.data).map_err(|e| {
                        ApiError::internal(format!("stored member is unreadable: {e}"))
                    })?;
                    member.version = item.version;
                    members.push(member);
                } else if item.sk.starts_with(READER_SK_PREFIX) {
                    let mut reader: Member = serde_json::from_value(item.data).map_err(|e| {
                        ApiError::internal(format!("stored read state is unreadable: {e}"))
                    })?;
                    reader.version = item.version;
                    readers.push(reader);
                }
            }
            match page.last {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(channel
            .filter(|(c, _): &(Channel, u64)| c.deleted_at.is_none())
            .map(|(channel, version)| Loaded {
                channel,
                version,
                members,
                readers,
            }))
    }

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

    /// After a committed channel change: its optional system message, then the channel state
    /// as the actor now sees it.
    async fn finish_change(
        &self,
        session: &Session,
        config: &ChannelTypeConfig,
        cid: &str,
        message: Option<&Value>,
        actor: Option<&str>,
    ) -> Result<(Value, Option<Value>), ApiError> {
        let message = self.post_change_message(cid, message, actor).await?;
        let next = self.require_channel(cid).await?;
        let state = self.updated_channel(session, config, &next, actor).await?;
        Ok((state, message))
    }

    /// What the channel update calls answer (Stream's `UpdateChannelResponse`): the channel as
    /// the actor sees it and its members, not a whole channel state.
    async fn updated_channel(
        &self,
        session: &Session,
        config: &ChannelTypeConfig,
        loaded: &Loaded,
        actor: Option<&str>,
    ) -> Result<Value, ApiError> {
        let page = StatePage {
            messages: MessagePage {
                anchor: MessageAnchor::Latest,
                limit: 0,
            },
            ..StatePage::default()
        };
        let state = self
            .channel_state(session, config, loaded, actor, page)
            .await?;
        Ok(json!({ "channel": state["channel"], "members": state["members"] }))
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

    /// Permission check for a client-side caller on a channel.
    pub(crate) fn check_channel_action(
        &self,
        session: &Session,
        config: &ChannelTypeConfig,
        loaded: Option<&Loaded>,
        channel: &Channel,
        action: &str,
    ) -> Result<(), ApiError> {
        self.check_action_on(
            session,
            config,
            loaded,
            channel,
            action,
            channel.created_by_id.as_deref(),
        )
    }

    /// Permission check for a client-side caller on something in a channel owned by `owner_id`
    /// (the channel's creator for channel actions, a message's author for message actions).
    pub(crate) fn check_action_on(
        &self,
        session: &Session,
        config: &ChannelTypeConfig,
        loaded: Option<&Loaded>,
        channel: &Channel,
        action: &str,
        owner_id: Option<&str>,
    ) -> Result<(), ApiError> {
        if session.caller.is_server() || session.settings.disable_permissions_checks {
            return Ok(());
        }
        let uid = session.caller.user_id().unwrap_or_default();
        let channel_role = loaded
            .and_then(|l| l.members.iter().find(|m| m.user_id == uid))
            .map(|m| m.channel_role.as_str());
        let grants = channel.effective_grants(&config.grants, &[])?;
        let subject = session.caller.subject(channel_role);
        let resource = Resource {
            owner_id,
            team: channel.team.as_deref(),
        };
        if permissions::is_allowed(&grants, &subject, action, &resource) {
            Ok(())
        } else {
            Err(ApiError::not_allowed(format!(
                "user {uid:?} is not allowed to perform action {action} in channel {}",
                channel.cid
            )))
        }
    }

    /// `watch: true` with a `connection_id` subscribes that connection to the channel.
    async fn watch_if_asked(
        &self,
        session: &Session,
        watch: Option<bool>,
        loaded: &Loaded,
    ) -> Result<(), ApiError> {
        match (&session.connection_id, watch) {
            (Some(conn), Some(true)) => self.watch_channel(conn, &loaded.channel).await,
            _ => Ok(()),
        }
    }

    /// `POST /channels/{type}/{id}/stop-watching`.
    pub async fn stop_watching_channel(
        &self,
        session: &Session,
        channel_type: &str,
        id: &str,
    ) -> Result<Value, ApiError> {
        let cid = Cid::new(channel_type, id)?.to_string();
        let conn = session.connection_id.clone().ok_or_else(|| {
            ApiError::field(
                "connection_id",
                "stop-watching needs the connection_id of the socket that watches",
            )
        })?;
        let user = session.caller.user_id().unwrap_or_default().to_string();
        let watcher = self
            .channel_watches(&cid)
            .await?
            .into_iter()
            .find(|w| w.connection_id == conn)
            .map(|w| w.user_id)
            .unwrap_or(user);
        self.stop_watching(&conn, &cid, &watcher).await?;
        Ok(json!({}))
    }

    /// Who reads messages in this channel: the reader and whether their roles may read others'
    /// restricted-visibility messages (server-side without a user reads everything).
    /// The viewer of messages in this channel: the reader and whether they read others'
    /// restricted messages.
    pub(crate) async fn viewer<'a>(
        &self,
        session: &Session,
        config: &ChannelTypeConfig,
        loaded: &Loaded,
        reader: Option<&'a str>,
    ) -> Result<Viewer<'a>, ApiError> {
        // `message_retention` (days) applies when messages are read; older ones are gone.
        let retention = loaded
            .channel
            .effective_config(config, &[])?
            .retention_days();
        Ok(Viewer {
            user_id: reader,
            reads_restricted: self.viewer_grants(session, config, loaded, reader).await?,
            retained_since: retention
                .map(|days| self.now() - chrono::Duration::days(i64::from(days))),
        })
    }

    async fn viewer_grants(
        &self,
        session: &Session,
        config: &ChannelTypeConfig,
        loaded: &Loaded,
        reader: Option<&str>,
    ) -> Result<bool, ApiError> {
        const ACTION: &str = "ReadRestrictedVisibilityMessage";
        let (role, teams) = match (&session.caller, reader) {
            (Caller::Server, None) => return Ok(true),
            (Caller::Server, Some(uid)) => match self.get_user(uid).await? {
                Some((user, _)) => (user.role, user.teams),
                None => return Ok(false),
            },
            (caller, _) => (caller.role().to_string(), caller.teams().to_vec()),
        };
        // Seed ("Restricted Message Delivery"): by default admins read restricted messages; the
        // grant tables do not list the permission, so it is the admin default here and a grant
        // for any other role.
        if role == "admin" {
            return Ok(true);
        }
        let uid = reader.unwrap_or_default();
        let channel_role = loaded
            .members
            .iter()
            .find(|m| m.user_id == uid)
            .map(|m| m.channel_role.as_str());
        let grants = loaded.channel.effective_grants(&config.grants, &[])?;
        let subject = permissions::Subject {
            user_id: uid,
            role: &role,
            channel_role,
            teams: &teams,
        };
        let resource = Resource {
            owner_id: loaded.channel.created_by_id.as_deref(),
            team: loaded.channel.team.as_deref(),
        };
        Ok(session.settings.disable_permissions_checks
            || permissions::is_allowed(&grants, &subject, ACTION, &resource))
    }

    /// The channel a request names, with its type's config, once the caller may read it.
    pub(crate) async fn readable_channel(
        &self,
        session: &Session,
        channel_type: &str,
        id: &str,
    ) -> Result<(String, ChannelTypeConfig, Loaded), ApiError> {
        let cid = Cid::new(channel_type, id)?.to_string();
        let config = self.channel_config(channel_type).await?;
        let loaded = self.require_channel(&cid).await?;
        self.check_readable(session, &config, &loaded)?;
        Ok((cid, config, loaded))
    }

    /// Reads of a channel by a client: `ReadChannel`, and a disabled channel answers 403.
    pub(crate) fn check_readable(
        &self,
        session: &Session,
        config: &ChannelTypeConfig,
        loaded: &Loaded,
    ) -> Result<(), ApiError> {
        if session.caller.is_server() {
            return Ok(());
        }
        if loaded.channel.disabled {
            return Err(ApiError::not_allowed(format!(
                "channel {} is disabled",
                loaded.channel.cid
            )));
        }
        self.check_channel_action(
            session,
            config,
            Some(loaded),
            &loaded.channel,
            "ReadChannel",
        )
    }

    /// `POST /channels/{type}/{id}/query`, or `/channels/{type}/query` for a distinct channel
    /// named by its members: creates the channel when missing (if allowed) and returns its state.
    pub async fn get_or_create_channel(
        &self,
        session: &Session,
        channel_type: &str,
        id: Option<&str>,
        req: ChannelQuery,
    ) -> Result<Value, ApiError> {
        validate_channel_type(channel_type)?;
        let config = self.channel_config(channel_type).await?;
        let page = req.page()?;
        let data = req.data.clone().unwrap_or_default();
        let new = NewChannelData::parse(&data)?;
        let actor =
            acting_user(session, &req.user_id, &req.user).or_else(|| new.created_by_id.clone());
        let id = match id {
            Some(id) => id.to_string(),
            None => {
                let mut ids: Vec<String> = new.members.iter().map(|m| m.user_id.clone()).collect();
                if let Some(a) = &actor {
                    ids.push(a.clone());
                }
                if ids.len() < 2 {
                    return Err(ApiError::field(
                        "members",
                        "a channel without an id needs at least two members (a distinct channel)",
                    ));
                }
                distinct_channel_id(&ids)?
            }
        };
        let cid = Cid::new(channel_type, &id)?.to_string();
        let loaded = match self.load_channel(&cid).await? {
            Some(l) => l,
            None => {
                self.create_channel(
                    session,
                    &config,
                    &cid,
                    new,
                    actor.clone(),
                    req.hide_for_creator.unwrap_or(false),
                )
                .await?
            }
        };
        self.check_readable(session, &config, &loaded)?;
        self.watch_if_asked(session, req.watch, &loaded).await?;
        if let (Some(true), Some(conn)) = (req.presence, &session.connection_id) {
            let ids: Vec<&str> = loaded.members.iter().map(|m| m.user_id.as_str()).collect();
            self.subscribe_presence(conn, &ids).await?;
        }
        self.channel_state(session, &config, &loaded, actor.as_deref(), page)
            .await
    }

    async fn create_channel(
        &self,
        session: &Session,
        config: &ChannelTypeConfig,
        cid: &str,
        new: NewChannelData,
        actor: Option<String>,
        hide_for_creator: bool,
    ) -> Result<Loaded, ApiError> {
        let cid_parsed = Cid::parse(cid)?;
        let now = self.now_str();
        if session.caller.is_server() && actor.is_none() {
            return Err(ApiError::field("created_by", "either data.created_by or user_id must be provided when creating a channel with server-side auth"));
        }
        let mut channel = Channel::new(&cid_parsed, actor.clone(), new.data, &now);
        if config.count_messages {
            channel.message_count = Some(0);
        }
        let mut wanted: Vec<NewMember> = new.members;
        if channel.is_distinct() {
            if let Some(a) = &actor {
                if !wanted.iter().any(|m| &m.user_id == a) {
                    wanted.push(NewMember {
                        user_id: a.clone(),
                        channel_role: None,
                        custom: Map::new(),
                    });
                }
            }
        }
        // Invitees join as pending members.
        for inv in &new.invites {
            if !wanted.iter().any(|m| &m.user_id == inv) {
                wanted.push(NewMember {
                    user_id: inv.clone(),
                    channel_role: None,
                    custom: Map::new(),
                });
            }
        }
        check_member_batch("members", wanted.len())?;
        if !session.caller.is_server() && wanted.iter().any(|m| m.channel_role.is_some()) {
            return Err(ApiError::not_allowed(
                "channel roles can only be assigned with server-side authentication",
            ));
        }
        let ids: Vec<&str> = wanted
            .iter()
            .map(|m| m.user_id.as_str())
            .chain(actor.as_deref())
            .collect();
        let users = self.users_by_id(&ids).await?;
        if let Some(missing) = wanted.iter().find(|m| !users.contains_key(&m.user_id)) {
            let field = if new.invites.contains(&missing.user_id) {
                "invites"
            } else {
                "members"
            };
            return Err(ApiError::field(
                field,
                format!(
                    "the following users are specified in channel.{field} but don't exist: {}",
                    missing.user_id
                ),
            ));
        }
        let members: Vec<Member> = wanted
            .into_iter()
            .map(|m| {
                let invited = new.invites.contains(&m.user_id);
                let mut member = Member::new(m, invited, None, &now);
                member.hidden =
                    hide_for_creator && actor.as_deref() == Some(member.user_id.as_str());
                member
            })
            .collect();
        channel.member_count = members.len() as u32;
        if !session.caller.is_server() {
            let creating = Loaded {
                channel: channel.clone(),
                version: 0,
                members: members.clone(),
                readers: Vec::new(),
            };
            self.check_channel_action(session, config, Some(&creating), &channel, "CreateChannel")?;
        }
        let stamp = self.now();
        // A soft-deleted channel's item is replaced: the cid starts afresh.
        let (condition, version) = match self
            .store
            .get(TableName::Channels, &channel_pk(cid), CHANNEL_SK)
            .await?
        {
            Some(old) => (Condition::Version(old.version), old.version + 1),
            None => (Condition::NotExists, 1),
        };
        let mut head = vec![Write::Put {
            table: TableName::Channels,
            item: channel_item(cid, &channel.channel_type, to_doc(&channel)?, version),
            condition,
        }];
        head.push(outbox_write(
            &channel_event("channel.created", &channel, stamp).with(
                "channel",
                Value::Object(channel.to_wire(&ChannelView::default())),
            ),
        ));
        let loaded = Loaded {
            channel: channel.clone(),
            version,
            members: members.clone(),
            readers: Vec::new(),
        };
        let changes = MemberChanges {
            added: members,
            ..MemberChanges::default()
        };
        let mut batches = changes.writes(&channel, &users, stamp)?;
        // The channel item and the first members commit together; DynamoDB's transaction limit
        // splits the rest, each member with its own events.
        if let Some(first) = batches.first() {
            if first.len() + head.len() <= MAX_TRANSACTION_WRITES {
                head.extend(batches.remove(0));
            }
        }
        match self.store.transact(head).await {
            Ok(()) => {}
            Err(StoreError::TransactionCanceled { .. }) => {
                // Created concurrently: read the winner.
                return self
                    .load_channel(cid)
                    .await?
                    .ok_or_else(|| ApiError::internal("channel vanished during creation"));
            }
            Err(e) => return Err(e.into()),
        }
        for batch in batches {
            self.store.transact(batch).await?;
        }
        Ok(loaded)
    }

    /// The channel state a query returns (`ChannelAPIResponse`): channel with config and the
    /// reader's capabilities, members, membership, and the (not yet populated) message lists.
    async fn channel_state(
        &self,
        session: &Session,
        config: &ChannelTypeConfig,
        loaded: &Loaded,
        reader: Option<&str>,
        page: StatePage,
    ) -> Result<Value, ApiError> {
        let limit = page.member_limit.unwrap_or(DEFAULT_CHANNEL_MEMBER_LIMIT);
        let offset = page.member_offset.unwrap_or(0);
        let mut members: Vec<&Member> = loaded.members.iter().collect();
        members.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then(a.user_id.cmp(&b.user_id))
        });
        let shown: Vec<&Member> = members.iter().skip(offset).take(limit).copied().collect();
        let mut ids: Vec<&str> = shown.iter().map(|m| m.user_id.as_str()).collect();
        ids.extend(loaded.channel.created_by_id.as_deref());
        ids.extend(loaded.channel.truncated_by_id.as_deref());
        ids.extend(reader);
        let viewer = self.viewer(session, config, loaded, reader).await?;
        let cutoff = reader
            .and_then(|r| loaded.members.iter().find(|m| m.user_id == r))
            .and_then(|m| m.hide_history_before.as_deref());
        let messages = if page.messages.limit == 0 {
            Vec::new()
        } else {
            self.channel_messages(&loaded.channel, cutoff, &page.messages, &viewer)
                .await?
        };
        let pending = self.pending_messages(&loaded.channel.cid, reader).await?;
        ids.extend(pending.iter().filter_map(|m| m.user_id.as_deref()));
        let watchers = self.channel_watchers(&loaded.channel.cid).await?;
        ids.extend(
            watchers
                .iter()
                .take(MAX_CHANNEL_MEMBER_LIMIT)
                .map(String::as_str),
        );
        ids.extend(messages.iter().filter_map(|m| m.user_id.as_deref()));
        let users = self.users_by_id(&ids).await?;
        let user_json = |id: &str| {
            users
                .get(id)
                .map(|(u, _)| u.to_json())
                .unwrap_or_else(|| json!({"id": id}))
        };
        let membership = reader.and_then(|r| loaded.members.iter().find(|m| m.user_id == r));
        let effective = loaded.channel.effective_config(config, &[])?;
        let capabilities = match (&session.caller, reader) {
            (Caller::Server, None) => Vec::new(),
            (caller, reader) => {
                let (role, teams): (String, Vec<String>) =
                    match (caller, reader.and_then(|r| users.get(r))) {
                        (Caller::Server, Some((u, _))) => (u.role.clone(), u.teams.clone()),
                        (Caller::Server, None) => ("user".into(), Vec::new()),
                        (c, _) => (c.role().to_string(), c.teams().to_vec()),
                    };
                let subject = permissions::Subject {
                    user_id: reader.unwrap_or(""),
                    role: &role,
                    channel_role: membership.map(|m| m.channel_role.as_str()),
                    teams: &teams,
                };
                advertised_capabilities(&loaded.channel, &effective, &subject, &[])
            }
        };
        let created_by = loaded.channel.created_by_id.as_deref().map(user_json);
        let truncated_by = loaded.channel.truncated_by_id.as_deref().map(user_json);
        let view = ChannelView {
            created_by: created_by.as_ref(),
            truncated_by: truncated_by.as_ref(),
            config: Some(effective.to_channel_config(&[])),
            own_capabilities: Some(capabilities),
            hidden: membership.map(|m| m.hidden),
            ..ChannelView::default()
        };
        let channel = loaded.channel.to_wire(&view);
        let creator = loaded.channel.created_by_id.as_deref();
        // Read entries of every member shown, except those who keep their read receipts private
        // (the reader always sees their own).
        let read: Vec<Value> = shown
            .iter()
            .copied()
            // Read states kept for non-members (a user who joined since reads as a member).
            .chain(
                loaded
                    .readers
                    .iter()
                    .filter(|r| !loaded.members.iter().any(|m| m.user_id == r.user_id)),
            )
            .filter(|m| {
                Some(m.user_id.as_str()) == reader
                    || users
                        .get(&m.user_id)
                        .is_none_or(|(u, _)| u.read_receipts_enabled())
            })
            .map(|m| {
                m.read
                    .to_wire(user_json(&m.user_id), loaded.channel.counted_messages)
            })
            .collect();
        let mut pinned = self
            .pinned_messages(
                &loaded.channel,
                &crate::service::messages::PinnedPage::latest(),
                &viewer,
            )
            .await?;
        pinned.reverse();
        let mut pinned_wires = self.messages_wire(&pinned, reader).await?;
        self.as_seen_by(&loaded.channel.cid, reader, &mut pinned_wires)
            .await?;
        let mut message_wires = self.messages_wire(&messages, reader).await?;
        self.as_seen_by(&loaded.channel.cid, reader, &mut message_wires)
            .await?;
        let member_list: Vec<Value> = shown
            .iter()
            .map(|m| Value::Object(m.to_wire(Some(&user_json(&m.user_id)), creator)))
            .collect();
        let mut state = json!({
            "channel": channel,
            "members": member_list,
            "messages": message_wires,
            "pinned_messages": pinned_wires,
            "pending_messages": self.messages_wire(&pending, reader).await?,
            "read": read,
            "watcher_count": watchers.len(),
            "watchers": watchers.iter().map(|id| user_json(id)).collect::<Vec<_>>(),
        });
        if let Some(m) = membership {
            state["membership"] = Value::Object(m.to_wire(Some(&user_json(&m.user_id)), creator));
        }
        Ok(state)
    }

    pub(crate) async fn require_channel(&self, cid: &str) -> Result<Loaded, ApiError> {
        self.load_channel(cid)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("Can't find channel with id {cid}")))
    }

    /// `POST /channels/{type}/{id}`: full update of the channel data and member changes (add,
    /// remove, invite, accept or reject an invite, moderators, roles), each member change written
    /// with its events.
    pub async fn update_channel(
        &self,
        session: &Session,
        channel_type: &str,
        id: &str,
        req: ChannelUpdate,
    ) -> Result<Value, ApiError> {
        let (cid, config, loaded) = self.readable_channel(session, channel_type, id).await?;
        let actor = acting_user(session, &req.user_id, &req.user);
        let now = self.now_str();
        let stamp = self.now();
        let mut channel = loaded.channel.clone();

        if let Some(data) = &req.data {
            let next = channel.apply_full_update(ChannelData::for_update(data)?, &now);
            if !session.caller.is_server() {
                if let Some(field) = channel.server_only_changes(&next) {
                    return Err(ApiError::not_allowed(format!(
                        "{field} can only be changed with server-side authentication"
                    )));
                }
                for action in channel.update_actions(&next) {
                    self.check_channel_action(session, &config, Some(&loaded), &channel, action)?;
                }
            }
            next.effective_grants(&config.grants, &[])?;
            channel = next;
        }

        let mut members: BTreeMap<String, Member> = loaded
            .members
            .iter()
            .map(|m| (m.user_id.clone(), m.clone()))
            .collect();
        let mut changes = MemberChanges::default();
        let hide_before =
            hide_history_cutoff(req.hide_history, req.hide_history_before.as_deref(), stamp)?;

        // Added members and invitees: new memberships (an invite is a pending membership).
        for (field, value, invited) in [
            ("add_members", &req.add_members, false),
            ("invites", &req.invites, true),
        ] {
            let Some(v) = value else { continue };
            let wanted = NewMember::parse_list(field, v)?;
            if wanted.is_empty() {
                continue;
            }
            if channel.is_distinct() {
                return Err(ApiError::input(
                    "cannot add members to a distinct channel: it is defined by its member list",
                ));
            }
            self.check_channel_action(
                session,
                &config,
                Some(&loaded),
                &channel,
                "UpdateChannelMembers",
            )?;
            if !session.caller.is_server() && wanted.iter().any(|m| m.channel_role.is_some()) {
                return Err(ApiError::not_allowed(
                    "channel roles can only be assigned with server-side authentication",
                ));
            }
            let ids: Vec<&str> = wanted.iter().map(|m| m.user_id.as_str()).collect();
            let users = self.users_by_id(&ids).await?;
            if let Some(missing) = wanted.iter().find(|m| !users.contains_key(&m.user_id)) {
                return Err(ApiError::field(
                    field,
                    format!(
                        "the following users are specified in {field} but don't exist: {}",
                        missing.user_id
                    ),
                ));
            }
            for m in wanted {
                if members.contains_key(&m.user_id) {
                    continue;
                }
                let mut member = Member::new(m, invited, hide_before.clone(), &now);
                // Joining reads what came before: unread counts start from here.
                member.read.read_seq = channel.counted_messages;
                members.insert(member.user_id.clone(), member.clone());
                changes.added.push(member);
            }
        }

        if let Some(v) = &req.remove_members {
            let ids = parse_user_ids("remove_members", v)?;
            check_member_batch("remove_members", ids.len())?;
            let only_self = actor.as_ref().is_some_and(|a| ids.iter().all(|i| i == a));
            let action = if only_self {
                "RemoveOwnChannelMembership"
            } else {
                "UpdateChannelMembers"
            };
            self.check_channel_action(session, &config, Some(&loaded), &channel, action)?;
            changes
                .removed
                .extend(ids.iter().filter_map(|id| members.remove(id)));
        }

        // Moderators and roles: server-side only; promoting a non-member adds them.
        let role_changes = [
            (
                "add_moderators",
                req.add_moderators.as_ref().map(|v| {
                    parse_user_ids("add_moderators", v).map(|ids| {
                        ids.into_iter()
                            .map(|id| (id, CHANNEL_MODERATOR_ROLE.to_string()))
                            .collect::<Vec<_>>()
                    })
                }),
            ),
            (
                "demote_moderators",
                req.demote_moderators.as_ref().map(|v| {
                    parse_user_ids("demote_moderators", v).map(|ids| {
                        ids.into_iter()
                            .map(|id| (id, CHANNEL_MEMBER_ROLE.to_string()))
                            .collect()
                    })
                }),
            ),
            (
                "assign_roles",
                req.assign_roles.as_ref().map(|v| {
                    NewMember::parse_list("assign_roles", v).map(|ms| {
                        ms.into_iter()
                            .map(|m| {
                                (
                                    m.user_id,
                                    m.channel_role
                                        .unwrap_or_else(|| CHANNEL_MEMBER_ROLE.to_string()),
                                )
                            })
                            .collect()
                    })
                }),
            ),
        ];
        for (field, parsed) in role_changes {
            let Some(parsed) = parsed else { continue };
            let pairs = parsed?;
            if pairs.is_empty() {
                continue;
            }
            session.caller.require_server(field)?;
            check_member_batch(field, pairs.len())?;
            let missing: Vec<&str> = pairs
                .iter()
                .map(|(id, _)| id.as_str())
                .filter(|id| !members.contains_key(*id))
                .collect();
            if !missing.is_empty() {
                if field != "add_moderators" {
                    return Err(ApiError::field(
                        field,
                        format!("user {:?} is not a member of {cid}", missing[0]),
                    ));
                }
                let users = self.users_by_id(&missing).await?;
                if let Some(m) = missing.iter().find(|m| !users.contains_key(**m)) {
                    return Err(ApiError::field(field, format!("user {m:?} does not exist")));
                }
            }
            for (id, role) in pairs {
                if let Some(m) = members.get_mut(&id) {
                    if m.channel_role != role {
                        m.channel_role = role;
                        m.updated_at = now.clone();
                        changes.updated(m.clone());
                    }
                } else {
                    let mut member = Member::new(
                        NewMember {
                            user_id: id,
                            channel_role: Some(role),
                            custom: Map::new(),
                        },
                        false,
                        None,
                        &now,
                    );
                    member.read.read_seq = channel.counted_messages;
                    members.insert(member.user_id.clone(), member.clone());
                    changes.added.push(member);
                }
            }
        }

        // The acting user answers their own invite.
        let answer = match (
            req.accept_invite.unwrap_or(false),
            req.reject_invite.unwrap_or(false),
        ) {
            (true, true) => {
                return Err(ApiError::input(
                    "accept_invite and reject_invite cannot both be set",
                ))
            }
            (true, false) => Some(true),
            (false, true) => Some(false),
            (false, false) => None,
        };
        if let Some(accept) = answer {
            let uid = actor.clone().ok_or_else(|| {
                ApiError::field(
                    "user_id",
                    "answering an invite needs the invited user (user_id)",
                )
            })?;
            let m = members
                .get_mut(&uid)
                .ok_or_else(|| ApiError::input(format!("user {uid:?} is not a member of {cid}")))?;
            if !m.invited {
                return Err(ApiError::input(format!(
                    "user {uid:?} was not invited to {cid}"
                )));
            }
            if m.invite_status() == "pending" {
                if accept {
                    m.invite_accepted_at = Some(now.clone());
                } else {
                    m.invite_rejected_at = Some(now.clone());
                }
                m.updated_at = now.clone();
                changes.answered = Some((m.clone(), accept));
            }
        }

        channel.member_count = members.len() as u32;
        let data_changed = req.data.is_some();
        if data_changed
            || channel.member_count != loaded.channel.member_count
            || !changes.is_empty()
        {
            channel.updated_at = now.clone();
        }
        let mut head = vec![Write::Put {
            table: TableName::Channels,
            item: channel_item(&cid, channel_type, to_doc(&channel)?, loaded.version + 1),
            condition: Condition::Version(loaded.version),
        }];
        if data_changed {
            head.extend(channel_update_events(&loaded.channel, &channel, stamp));
        }
        let user_ids: Vec<&str> = changes.user_ids();
        let users = self.users_by_id(&user_ids).await?;
        let batches = changes.writes(&channel, &users, stamp)?;
        self.commit_channel_change(&cid, head).await?;
        for batch in batches {
            self.store.transact(batch).await?;
        }
        let (mut state, message) = self
            .finish_change(
                session,
                &config,
                &cid,
                req.message.as_ref(),
                actor.as_deref(),
            )
            .await?;
        if let Some(m) = message {
            state["message"] = m;
        }
        Ok(state)
    }

    /// `PATCH /channels/{type}/{id}`: `set` / `unset` on the channel data.
    pub async fn update_channel_partial(
        &self,
        session: &Session,
        channel_type: &str,
        id: &str,
        set: Map<String, Value>,
        unset: Vec<String>,
        actor: Option<String>,
    ) -> Result<Value, ApiError> {
        let cid = Cid::new(channel_type, id)?.to_string();
        let config = self.channel_config(channel_type).await?;
        let loaded = self.require_channel(&cid).await?;
        let now = self.now_str();
        let next = loaded.channel.apply_partial(&set, &unset, &now)?;
        if !session.caller.is_server() {
            if let Some(field) = loaded.channel.server_only_changes(&next) {
                return Err(ApiError::not_allowed(format!(
                    "{field} can only be changed with server-side authentication"
                )));
            }
            for action in loaded.channel.update_actions(&next) {
                self.check_channel_action(
                    session,
                    &config,
                    Some(&loaded),
                    &loaded.channel,
                    action,
                )?;
            }
        }
        next.effective_grants(&config.grants, &[])?;
        let mut writes = vec![Write::Put {
            table: TableName::Channels,
            item: channel_item(&cid, channel_type, to_doc(&next)?, loaded.version + 1),
            condition: Condition::Version(loaded.version),
        }];
        writes.extend(channel_update_events(&loaded.channel, &next, self.now()));
        self.commit_channel_change(&cid, writes).await?;
        let loaded = Loaded {
            channel: next,
            version: loaded.version + 1,
            members: loaded.members,
            readers: loaded.readers,
        };
        self.updated_channel(session, &config, &loaded, actor.as_deref())
            .await
    }

    /// `DELETE /channels/{type}/{id}`: soft delete (`hard_delete` removes the channel item too);
    /// either way the same cid later starts an empty channel.
    pub async fn delete_channel(
        &self,
        session: &Session,
        channel_type: &str,
        id: &str,
        hard: bool,
    ) -> Result<Value, ApiError> {
        let cid = Cid::new(channel_type, id)?.to_string();
        let config = self.channel_config(channel_type).await?;
        let loaded = self.require_channel(&cid).await?;
        self.check_channel_action(
            session,
            &config,
            Some(&loaded),
            &loaded.channel,
            "DeleteChannel",
        )?;
        let wire = self.remove_channel(loaded, hard).await?;
        Ok(json!({ "channel": wire }))
    }

    /// `POST /channels/{type}/{id}/truncate`: messages before `truncated_at` (default now) are
    /// no longer part of the channel for anyone; `channel.truncated` records it.
    pub async fn truncate_channel(
        &self,
        session: &Session,
        channel_type: &str,
        id: &str,
        req: TruncateRequest,
    ) -> Result<Value, ApiError> {
        let (cid, config, loaded) = self.readable_channel(session, channel_type, id).await?;
        self.check_channel_action(
            session,
            &config,
            Some(&loaded),
            &loaded.channel,
            "TruncateChannel",
        )?;
        let actor = acting_user(session, &req.user_id, &req.user);
        let now = self.now();
        let at = match &req.truncated_at {
            None => now,
            Some(s) => {
                let t = parse_time(s).ok_or_else(|| {
                    ApiError::field("truncated_at", "truncated_at must be an RFC 3339 timestamp")
                })?;
                if t > now {
                    return Err(ApiError::field(
                        "truncated_at",
                        "truncated_at cannot be in the future",
                    ));
                }
                t
            }
        };
        let mut channel = loaded.channel.clone();
        channel.truncated_at = Some(format_time(at));
        channel.truncated_by_id = actor.clone();
        channel.updated_at = format_time(now);
        let mut event = channel_event("channel.truncated", &channel, now).with(
            "channel",
            Value::Object(channel.to_wire(&ChannelView::default())),
        );
        if let Some(a) = &actor {
            event = event.with("user", json!({ "id": a }));
        }
        let writes = vec![
            Write::Put {
                table: TableName::Channels,
                item: channel_item(&cid, channel_type, to_doc(&channel)?, loaded.version + 1),
                condition: Condition::Version(loaded.version),
            },
            outbox_write(&event),
        ];
        self.commit_channel_change(&cid, writes).await?;
        if req.hard_delete.unwrap_or(false) {
            self.remove_messages_before(&cid, at).await?;
        }
        let (state, message) = self
            .finish_change(
                session,
                &config,
                &cid,
                req.message.as_ref(),
                actor.as_deref(),
            )
            .await?;
        let mut out = json!({ "channel": state["channel"] });
        if let Some(m) = message {
            out["message"] = m;
        }
        Ok(out)
    }

    /// `POST /channels/delete`: up to 100 channels deleted by a task (server-side).
    pub async fn delete_channels(
        &self,
        session: &Session,
        cids: Vec<String>,
        hard: bool,
    ) -> Result<Value, ApiError> {
        session
            .caller
            .require_server("deleting channels in batch")?;
        if cids.is_empty() {
            return Err(ApiError::field(
                "cids",
                "cids must name at least one channel",
            ));
        }
        if cids.len() > MAX_DELETE_CHANNELS {
            return Err(ApiError::field(
                "cids",
                format!("at most {MAX_DELETE_CHANNELS} channels can be deleted at once"),
            ));
        }
        for cid in &cids {
            Cid::parse(cid)?;
        }
        let task_id = self
            .start_task(TaskJob::DeleteChannels {
                cids,
                hard_delete: hard,
            })
            .await?;
        Ok(json!({ "task_id": task_id }))
    }

    /// The task side of a batch delete: each cid's outcome.
    pub(crate) async fn finish_channel_deletion(
        &self,
        cid: &str,
        hard: bool,
    ) -> Result<(), ApiError> {
        let loaded = self.require_channel(cid).await?;
        self.remove_channel(loaded, hard).await.map(|_| ())
    }

    /// Marks the channel deleted (or removes it and its messages) with `channel.deleted`; its members lose the
    /// membership and it leaves the type index, so neither "my channels" nor the type-in-use
    /// check sees it. Returns the deleted channel's payload.
    async fn remove_channel(
        &self,
        loaded: Loaded,
        hard: bool,
    ) -> Result<Map<String, Value>, ApiError> {
        let cid = loaded.channel.cid.clone();
        let mut channel = loaded.channel.clone();
        channel.deleted_at = Some(self.now_str());
        let wire = channel.to_wire(&ChannelView::default());
        let stamp = self.now();
        let channel_write = if hard {
            Write::Delete {
                table: TableName::Channels,
                pk: channel_pk(&cid),
                sk: CHANNEL_SK.into(),
                condition: Condition::Version(loaded.version),
            }
        } else {
            let mut item = channel_item(
                &cid,
                &channel.channel_type,
                to_doc(&channel)?,
                loaded.version + 1,
            );
            item.gsi2 = None;
            Write::Put {
                table: TableName::Channels,
                item,
                condition: Condition::Version(loaded.version),
            }
        };
        let mut event = channel_event("channel.deleted", &channel, stamp)
            .with("channel", Value::Object(wire.clone()));
        if hard {
            event = event.with("hard_delete", Value::Bool(true));
        }
        let head = vec![channel_write, outbox_write(&event)];
        let members: Vec<Vec<Write>> = loaded
            .members
            .iter()
            .map(|m| {
                vec![Write::Delete {
                    table: TableName::Channels,
                    pk: channel_pk(&cid),
                    sk: member_sk(&m.user_id),
                    condition: Condition::None,
                }]
            })
            .collect();
        let mut batches = pack(members);
        let mut head = head;
        if batches
            .first()
            .is_some_and(|b| b.len() + head.len() <= MAX_TRANSACTION_WRITES)
        {
            head.extend(batches.remove(0));
        }
        self.commit_channel_change(&cid, head).await?;
        for batch in batches {
            self.store.transact(batch).await?;
        }
        if hard {
            // The channel's messages go with it (a soft delete keeps them out of the next life
            // of the cid by time instead).
            let end_of_time = chrono::DateTime::from_timestamp(253_402_300_799, 0).unwrap_or(stamp);
            self.remove_messages_before(&cid, end_of_time).await?;
        }
        Ok(wire)
    }

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
            .matching_channels(session, &filter, actor.as_deref())
            .await?;
        matched.sort_by(|(_, a), (_, b)| compare_json(&sort, a, b));
        let mut channels = Vec::new();
        // `presence: true`: the connection hears the returned channels' members come and go.
        let mut presence_of: Vec<String> = Vec::new();
        for (loaded, _) in matched.into_iter().skip(offset).take(limit) {
            let config = &configs[&loaded.channel.channel_type];
            self.watch_if_asked(session, q.watch, &loaded).await?;
            if q.presence == Some(true) {
                presence_of.extend(loaded.members.iter().map(|m| m.user_id.clone()));
            }
            let page = StatePage {
                member_limit: Some(member_limit),
                member_offset: None,
                messages: MessagePage {
                    anchor: MessageAnchor::Latest,
                    limit: message_limit,
                },
            };
            channels.push(
                self.channel_state(session, config, &loaded, actor.as_deref(), page)
                    .await?,
            );
        }
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
    pub(crate) async fn matching_channels(
        &self,
        session: &Session,
        filter: &Filter,
        actor: Option<&str>,
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
        let asks_hidden = filter.mentions("hidden");
        let member_names = filter.mentions("member.user.name");
        let app_banned = filter.mentions("app_banned");
        let cids = self.candidate_cids(session, filter, actor).await?;
        let mut matched = Vec::new();
        let mut configs: HashMap<String, ChannelTypeConfig> = HashMap::new();
        for cid in cids {
            let Some(loaded) = self.load_channel(&cid).await? else {
                continue;
            };
            let ct = loaded.channel.channel_type.clone();
            if !configs.contains_key(&ct) {
                match self.channel_type(&ct).await? {
                    Some((c, _)) => configs.insert(ct.clone(), c),
                    None => continue,
                };
            }
            let config = &configs[&ct];
            if !session.caller.is_server()
                && self
                    .check_channel_action(
                        session,
                        config,
                        Some(&loaded),
                        &loaded.channel,
                        "ReadChannel",
                    )
                    .is_err()
            {
                continue;
            }
            let view = ReaderView {
                user_id: actor,
                muted: muted.contains(&cid),
                member_names,
                app_banned,
            };
            let doc = self.filter_doc(&loaded, &view).await?;
            let hidden = doc.get("hidden").and_then(Value::as_bool).unwrap_or(false);
            if hidden && !asks_hidden {
                continue;
            }
            if filter.matches_json(&doc) {
                matched.push((loaded, doc));
            }
        }
        Ok((matched, configs))
    }

    /// The document query-channels filters and sorts see: the channel's fields and custom data,
    /// its member ids and names, and the reader's view (joined, invite status, muted, hidden,
    /// archived, pinned, banned).
    async fn filter_doc(
        &self,
        loaded: &Loaded,
        reader: &ReaderView<'_>,
    ) -> Result<Value, ApiError> {
        let c = &loaded.channel;
        let mut doc = c.to_wire(&ChannelView::default());
        doc.insert("type".into(), Value::String(c.channel_type.clone()));
        doc.insert(
            "members".into(),
            loaded
                .members
                .iter()
                .map(|m| Value::String(m.user_id.clone()))
                .collect::<Vec<_>>()
                .into(),
        );
        doc.insert(
            "created_by_id".into(),
            c.created_by_id
                .clone()
                .map(Value::String)
                .unwrap_or(Value::Null),
        );
        // Seed: the time of the last message, or when there is none, of the channel's creation.
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

    async fn candidate_cids(
        &self,
        session: &Session,
        filter: &Filter,
        actor: Option<&str>,
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
        let member_ids: Option<Vec<String>> = filter
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
            });
        let mut out = BTreeSet::new();
        if let Some(ids) = member_ids {
            for uid in ids {
                self.collect_index(Index::Gsi1, &memberships_pk(&uid), &mut out)
                    .await?;
            }
            return Ok(out.into_iter().collect());
        }
        let types: Vec<String> = match filter.key_values("type") {
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
        };
        for t in types {
            self.collect_index(Index::Gsi2, &channels_of_type_pk(&t), &mut out)
                .await?;
        }
        Ok(out.into_iter().collect())
    }

    /// Every cid listed under an index partition (the index sort key is the cid).
    pub(crate) async fn collect_index(
        &self,
        index: Index,
        pk: &str,
        out: &mut BTreeSet<String>,
    ) -> Result<(), ApiError> {
        let mut cursor = None;
        loop {
            let page = self
                .store
                .query(
                    Query::new(TableName::Channels, pk)
                        .index(index)
                        .range(SkRange::All)
                        .limit(1000)
                        .start_after(cursor),
                )
                .await?;
            out.extend(
                page.items
                    .iter()
                    .filter_map(|i| i.index_key(index))
                    .map(|k| k.sk.clone()),
            );
            match page.last {
                Some(c) => cursor = Some(c),
                None => return Ok(()),
            }
        }
    }
}

/// Body of `POST /channels/{type}/{id}/event`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct SendEvent {
    pub event: Map<String, Value>,
}

/// Event types a client may send itself; any other name is a custom event.
const TYPING_EVENTS: &[&str] = &["typing.start", "typing.stop"];
/// Event types only the server makes.
const SERVER_EVENT_PREFIXES: &[&str] = &[
    "message.",
    "channel.",
    "member.",
    "notification.",
    "user.",
    "reaction.",
    "health.",
    "connection.",
    "thread.",
    "poll.",
];

impl Chat {
    /// `POST /channels/{type}/{id}/event`: typing events (the type's `typing_events`, the user's
    /// typing privacy) and custom events (the type's `custom_events`, `SendCustomEvent`), sent to
    /// the channel's watchers.
    pub async fn send_channel_event(
        &self,
        session: &Session,
        channel_type: &str,
        id: &str,
        req: SendEvent,
    ) -> Result<Value, ApiError> {
        let (_, config, loaded) = self.readable_channel(session, channel_type, id).await?;
        let kind = req
            .event
            .get("type")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::field("event.type", "event.type is required"))?
            .to_string();
        let actor = acting_user(
            session,
            &req.event
                .get("user_id")
                .and_then(Value::as_str)
                .map(str::to_string),
            &req.event.get("user").and_then(Value::as_object).cloned(),
        )
        .ok_or_else(|| {
            ApiError::field(
                "event.user",
                "event.user_id is required with server-side authentication",
            )
        })?;
        let effective = loaded.channel.effective_config(&config, &[])?;
        let (user, _) = self
            .get_user(&actor)
            .await?
            .ok_or_else(|| ApiError::input(format!("user {actor:?} does not exist")))?;
        if TYPING_EVENTS.contains(&kind.as_str()) {
            if !effective.typing_events {
                return Err(ApiError::input(
                    "typing events are disabled for this channel",
                ));
            }
            // As the `send-typing-events` capability: whoever may send messages may type.
            self.check_channel_action(
                session,
                &config,
                Some(&loaded),
                &loaded.channel,
                "CreateMessage",
            )?;
        } else {
            if SERVER_EVENT_PREFIXES.iter().any(|p| kind.starts_with(p)) {
                return Err(ApiError::field(
                    "event.type",
                    format!("{kind} is an event only the server sends"),
                ));
            }
            if !effective.custom_events {
                return Err(ApiError::input(
                    "custom events are disabled for this channel",
                ));
            }
            self.check_channel_action(
                session,
                &config,
                Some(&loaded),
                &loaded.channel,
                "SendCustomEvent",
            )?;
        }
        let mut event =
            channel_event(&kind, &loaded.channel, self.now()).with("user", user.to_json());
        for (k, v) in &req.event {
            if !matches!(
                k.as_str(),
                "type" | "user" | "user_id" | "cid" | "channel_id" | "channel_type" | "created_at"
            ) {
                event = event.with(k, v.clone());
            }
        }
        // Typing stays private for users who turned typing indicators off.
        let private_typing = TYPING_EVENTS.contains(&kind.as_str())
            && user
                .privacy_settings
                .as_ref()
                .and_then(|p| p.get("typing_indicators"))
                .and_then(|t| t.get("enabled"))
                .and_then(Value::as_bool)
                == Some(false);
        if !private_typing {
            self.store.write(outbox_write(&event)).await?;
        }
        Ok(json!({ "event": event.to_json() }))
    }
}

/// Channel summaries a connection can ask for on connect (`prefetch-on=connect`, seed 001).
pub const PREFETCH_CHANNELS: usize = 50;
const PREFETCH_MESSAGES: usize = 20;
const PREFETCH_MEMBERS: usize = 30;

impl Chat {
    /// `CHANNEL_DETAILS` of the user's channels, unread first then newest: each channel with its
    /// latest 20 messages, up to 30 members, the user's read marker and whether older messages
    /// exist.
    pub async fn channel_details(
        &self,
        session: &Session,
        user_id: &str,
    ) -> Result<Vec<Value>, ApiError> {
        let mut found = Vec::new();
        for cid in self.membership_cids(user_id).await? {
            let Some(loaded) = self.load_channel(&cid).await? else {
                continue;
            };
            let Some((config, _)) = self.channel_type(&loaded.channel.channel_type).await? else {
                continue;
            };
            if self.check_readable(session, &config, &loaded).is_err() {
                continue;
            }
            let unread = loaded
                .members
                .iter()
                .find(|m| m.user_id == user_id)
                .map_or(0, |m| m.read.unread(loaded.channel.counted_messages));
            let updated = loaded
                .channel
                .last_message_at
                .clone()
                .unwrap_or_else(|| loaded.channel.created_at.clone());
            found.push((unread, updated, loaded, config));
        }
        found.sort_by(|a, b| (b.0 > 0).cmp(&(a.0 > 0)).then(b.1.cmp(&a.1)));
        let mut out = Vec::new();
        for (_, _, loaded, config) in found.into_iter().take(PREFETCH_CHANNELS) {
            let page = StatePage {
                member_limit: Some(PREFETCH_MEMBERS),
                member_offset: None,
                messages: MessagePage {
                    anchor: MessageAnchor::Latest,
                    limit: PREFETCH_MESSAGES + 1,
                },
            };
            let state = self
                .channel_state(session, &config, &loaded, Some(user_id), page)
                .await?;
            let mut messages = state["messages"].as_array().cloned().unwrap_or_default();
            let has_more = messages.len() > PREFETCH_MESSAGES;
            if has_more {
                messages.remove(0);
            }
            let read = state["read"]
                .as_array()
                .and_then(|r| r.iter().find(|e| e["user"]["id"] == user_id))
                .cloned()
                .unwrap_or(Value::Null);
            out.push(json!({
                "type": "CHANNEL_DETAILS",
                "cid": loaded.channel.cid,
                "channel": state["channel"],
                "messages": messages,
                "members": state["members"],
                "read": read,
                "has_more": has_more,
                "created_at": self.now_str(),
            }));
        }
        Ok(out)
    }
}
