//! A channel's state as a reader sees it: get-or-create (with watch and presence), the state
//! payload (channel, members, messages, reads, watchers, capabilities) and channel details on
//! connect.

use super::*;
use crate::domain::caller::{Caller, Session};
use crate::domain::capabilities::advertised_capabilities;
use crate::domain::channel::{
    check_member_batch, distinct_channel_id, validate_channel_type, Channel, ChannelView, Cid,
    Member, NewChannelData, NewMember,
};
use crate::domain::channel_type::ChannelTypeConfig;
use crate::domain::limits::{DEFAULT_CHANNEL_MEMBER_LIMIT, MAX_CHANNEL_MEMBER_LIMIT};
use crate::domain::message::{MessageAnchor, MessagePage};
use crate::domain::permissions::{self};
use crate::domain::ApiError;
use crate::service::Chat;
use crate::store::layout::outbox_write;
use crate::store::{StoreError, TableName, MAX_TRANSACTION_WRITES};
use serde_json::{json, Map, Value};

/// Channel summaries a connection can ask for on connect (`prefetch-on=connect`, seed 001).
pub const PREFETCH_CHANNELS: usize = 50;

const PREFETCH_MESSAGES: usize = 20;

const PREFETCH_MEMBERS: usize = 30;

impl Chat {
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

    pub(crate) async fn create_channel(
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
        // A user cannot add someone who blocked them (a distinct channel is its member list).
        if !channel.is_distinct() {
            wanted = self.without_blockers(actor.as_deref(), wanted).await?;
        }
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
        channel.activity_indexed = Some(super::activity::entry_for(&channel));
        // Members the creator banned from their future channels start banned here.
        let (members, ban_records) = self
            .apply_future_bans(cid, channel.created_by_id.as_deref(), members)
            .await?;
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
        let (pk, sk) = channel_record::key(cid);
        let read_version = self
            .store
            .get(TableName::Channels, &pk, &sk)
            .await?
            .map_or(0, |old| old.version);
        let version = read_version + 1;
        let mut head = vec![channel_record::put(&channel, read_version)?];
        head.extend(ban_records);
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
    pub(super) async fn channel_state(
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
        let user_json = |id: &str| crate::service::users::shown(&users, id);
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
            config: Some(effective.to_channel_config(&self.custom_commands().await?)),
            own_capabilities: Some(capabilities),
            hidden: membership.map(|m| m.hidden),
            blocked: crate::service::blocks::is_blocked_direct(loaded, reader, &viewer.blocked)
                .then_some(true),
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
