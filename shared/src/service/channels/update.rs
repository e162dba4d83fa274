//! Changing channels: full and partial updates, member changes with their events, truncation
//! and deletion (one, or a batch as a task).

use super::*;
use crate::domain::caller::Session;
use crate::domain::channel::{
    check_member_batch, hide_history_cutoff, parse_user_ids, Channel, ChannelData, ChannelView,
    Cid, Member, NewMember, CHANNEL_MEMBER_ROLE, CHANNEL_MODERATOR_ROLE,
};
use crate::domain::channel_type::ChannelTypeConfig;
use crate::domain::clock::{format_time, parse_time};
use crate::domain::limits::MAX_DELETE_CHANNELS;
use crate::domain::message::{MessageAnchor, MessagePage};
use crate::domain::ApiError;
use crate::service::tasks::TaskJob;
use crate::service::Chat;
use crate::store::layout::outbox_write;
use crate::store::{Write, MAX_TRANSACTION_WRITES};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

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

impl Chat {
    /// After a committed channel change: its optional system message, then the channel state
    /// as the actor now sees it.
    async fn finish_change(
        &self,
        session: &Session,
        config: &ChannelTypeConfig,
        cid: &str,
        message: Option<&Value>,
        actor: Option<&str>,
        skip_push: bool,
    ) -> Result<(Value, Option<Value>), ApiError> {
        let message = self
            .post_change_message(cid, message, actor, skip_push)
            .await?;
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
        // Changes to one channel from this process take turns with its sends (see `writers`),
        // so concurrent member changes are applied one after the other, not refused.
        let (turn, _) = self
            .writers
            .turn(&Cid::new(channel_type, id)?.to_string())
            .await;
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
            // Whoever blocked the acting user is left out.
            let wanted = self.without_blockers(actor.as_deref(), wanted).await?;
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
                // Banned from the channel before joining (or before leaving): still banned.
                let member = self.with_channel_bans(&cid, member).await?;
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
                    let member = self.with_channel_bans(&cid, member).await?;
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
        let mut head = vec![channel_record::put(&channel, loaded.version)?];
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
        // The optional system message is a send: it takes its own turn.
        drop(turn);
        let (mut state, message) = self
            .finish_change(
                session,
                &config,
                &cid,
                req.message.as_ref(),
                actor.as_deref(),
                req.skip_push.unwrap_or(false),
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
        // Takes the channel's turn like a full update (no refusal while sends go on).
        let (_turn, _) = self.writers.turn(&cid).await;
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
        let mut writes = vec![channel_record::put(&next, loaded.version)?];
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
        let (turn, _) = self
            .writers
            .turn(&Cid::new(channel_type, id)?.to_string())
            .await;
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
            channel_record::put(&channel, loaded.version)?,
            outbox_write(&event),
        ];
        self.commit_channel_change(&cid, writes).await?;
        if req.hard_delete.unwrap_or(false) {
            self.remove_messages_before(&cid, at).await?;
        }
        // The optional system message is a send: it takes its own turn.
        drop(turn);
        let (state, message) = self
            .finish_change(
                session,
                &config,
                &cid,
                req.message.as_ref(),
                actor.as_deref(),
                req.skip_push.unwrap_or(false),
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
            channel_record::delete(&cid, loaded.version)
        } else {
            channel_record::put_deleted(&channel, loaded.version)?
        };
        let mut event = channel_event("channel.deleted", &channel, stamp)
            .with("channel", Value::Object(wire.clone()));
        if hard {
            event = event.with("hard_delete", Value::Bool(true));
        }
        let head = vec![channel_write, outbox_write(&event)];
        // A soft-deleted channel keeps its messages: its members' past channels list it.
        let members: Vec<Vec<Write>> = loaded
            .members
            .iter()
            .map(|m| {
                let mut writes = vec![
                    member_record::delete(&cid, &m.user_id),
                    super::activity::entry_delete(&m.user_id, &cid),
                    crate::service::unread_index::flag_delete(&m.user_id, &cid),
                ];
                if !hard {
                    writes.push(crate::store::layout::past_channel_write(&m.user_id, &cid));
                }
                writes
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
            self.remove_channel_uploads(&cid).await?;
        }
        Ok(wire)
    }
}
