//! Per-member channel state: member partial update (custom data, archive, pin, role), hide and
//! show, channel mutes, and query members.

use super::acting_user;
use super::channel_record::{channel_event, Loaded};
use super::{contention_pause, member_record, to_doc, Chat, QueryParts, CONTENDED_ATTEMPTS};
use crate::domain::caller::Session;
use crate::domain::channel::{
    check_filter_values, query_members_rules, ChannelMute, ChannelView, Cid, Member,
};
use crate::domain::filter::{compare_json, Filter, SortField};
use crate::domain::limits::{
    DEFAULT_QUERY_MEMBERS_LIMIT, MAX_MUTE_TARGETS, MAX_QUERY_MEMBERS_LIMIT,
};
use crate::domain::ApiError;
use crate::service::decode;
use crate::store::layout::{channel_mutes_pk, outbox_write};
use crate::store::{query_all, Condition, Query, StoreError, TableName, Write};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Body of `POST /moderation/mute/channel` and `/moderation/unmute/channel`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChannelMuteRequest {
    pub channel_cid: Option<String>,
    #[serde(default, deserialize_with = "crate::domain::ids::unique_ids_opt")]
    pub channel_cids: Option<Vec<String>>,
    /// Milliseconds until the mute lifts.
    pub expiration: Option<i64>,
    pub user_id: Option<String>,
    pub user: Option<Map<String, Value>>,
}

impl ChannelMuteRequest {
    fn cids(&self) -> Result<Vec<String>, ApiError> {
        let mut cids: Vec<String> = self.channel_cids.clone().unwrap_or_default();
        cids.extend(self.channel_cid.clone());
        let cids = crate::domain::ids::unique(cids);
        if cids.len() > MAX_MUTE_TARGETS {
            return Err(ApiError::field(
                "channel_cids",
                format!("at most {MAX_MUTE_TARGETS} channels at once"),
            ));
        }
        if cids.is_empty() {
            return Err(ApiError::field(
                "channel_cid",
                "channel_cid or channel_cids is required",
            ));
        }
        for cid in &cids {
            Cid::parse(cid)?;
        }
        Ok(cids)
    }
}

/// Query members (`GET /members?payload=`): the channel (by type and id, or by members for a
/// distinct channel), filter, sort and paging.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct QueryMembers {
    #[serde(rename = "type")]
    pub channel_type: String,
    pub id: Option<String>,
    pub members: Option<Vec<Value>>,
    pub filter_conditions: Option<Value>,
    pub sort: Option<Value>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
    pub user_id_lt: Option<String>,
    pub user_id_lte: Option<String>,
    pub user_id_gt: Option<String>,
    pub user_id_gte: Option<String>,
    pub created_at_after: Option<String>,
    pub created_at_after_or_equal: Option<String>,
    pub created_at_before: Option<String>,
    pub created_at_before_or_equal: Option<String>,
    pub user_id: Option<String>,
    pub user: Option<Map<String, Value>>,
}

impl QueryMembers {
    /// The `user_id_*` / `created_at_*` pagination options as one filter.
    fn paging_filter(&self) -> Result<Filter, ApiError> {
        use crate::domain::filter::Op;
        let mut f = Filter::All;
        let ids = [
            (&self.user_id_lt, Op::Lt),
            (&self.user_id_lte, Op::Lte),
            (&self.user_id_gt, Op::Gt),
            (&self.user_id_gte, Op::Gte),
        ];
        for (v, op) in ids {
            if let Some(v) = v {
                f = f.and(Filter::field("user_id", op, Value::String(v.clone())));
            }
        }
        let times = [
            ("created_at_after", &self.created_at_after, Op::Gt),
            (
                "created_at_after_or_equal",
                &self.created_at_after_or_equal,
                Op::Gte,
            ),
            ("created_at_before", &self.created_at_before, Op::Lt),
            (
                "created_at_before_or_equal",
                &self.created_at_before_or_equal,
                Op::Lte,
            ),
        ];
        for (name, v, op) in times {
            if let Some(v) = v {
                let t = crate::domain::clock::parse_time(v).ok_or_else(|| {
                    ApiError::field(name, format!("{name} must be an RFC 3339 timestamp"))
                })?;
                f = f.and(Filter::field(
                    "created_at",
                    op,
                    Value::String(crate::domain::clock::format_time(t)),
                ));
            }
        }
        Ok(f)
    }
}

impl Chat {
    /// `PATCH /channels/{type}/{id}/member/{user_id}`: custom member data, `archived`, `pinned`
    /// and (server-side) `channel_role`. Clients change only their own membership.
    pub async fn update_member_partial(
        &self,
        session: &Session,
        channel_type: &str,
        id: &str,
        user_id: &str,
        set: Map<String, Value>,
        unset: Vec<String>,
    ) -> Result<Value, ApiError> {
        let cid = Cid::new(channel_type, id)?.to_string();
        let loaded = self.require_channel(&cid).await?;
        if !session.caller.is_server() {
            if session.caller.user_id() != Some(user_id) {
                return Err(ApiError::not_allowed(format!("only the member {user_id:?} or a server-side request can update this membership")));
            }
            if set.contains_key("channel_role") || unset.iter().any(|u| u == "channel_role") {
                return Err(ApiError::not_allowed(
                    "channel_role can only be changed with server-side authentication",
                ));
            }
        }
        let users = self.users_by_id(&[user_id]).await?;
        let user = crate::service::users::shown(&users, user_id);
        let mut loaded = loaded;
        for attempt in 1..=CONTENDED_ATTEMPTS {
            let member = member_of(&loaded, user_id)?;
            let next = member.apply_partial(&set, &unset, &self.now_str())?;
            let wire =
                Value::Object(next.to_wire(Some(&user), loaded.channel.created_by_id.as_deref()));
            let event = channel_event("member.updated", &loaded.channel, self.now())
                .with("member", wire.clone())
                .with("user", user.clone());
            match self
                .store
                .transact(vec![member_record::put(&cid, &next)?, outbox_write(&event)])
                .await
            {
                Ok(()) => return Ok(json!({ "channel_member": wire })),
                // The member changed (or went) meanwhile: apply the patch to what is there now.
                Err(StoreError::TransactionCanceled { .. }) => {
                    contention_pause(attempt).await;
                    loaded = self.require_channel(&cid).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(contended(&cid))
    }

    /// `POST /channels/{type}/{id}/hide` and `/show`: the channel leaves (or rejoins) the
    /// member's channel list; `clear_history` hides the messages so far from that member.
    pub async fn set_channel_hidden(
        &self,
        session: &Session,
        channel_type: &str,
        id: &str,
        hidden: bool,
        clear_history: bool,
        user_id: Option<String>,
    ) -> Result<Value, ApiError> {
        let cid = Cid::new(channel_type, id)?.to_string();
        let actor = acting_user(session, &user_id, &None).ok_or_else(|| {
            ApiError::field(
                "user_id",
                "user_id is required with server-side authentication",
            )
        })?;
        let users = self.users_by_id(&[actor.as_str()]).await?;
        let user = crate::service::users::shown(&users, &actor);
        for attempt in 1..=CONTENDED_ATTEMPTS {
            let loaded = self.require_channel(&cid).await?;
            let mut member = member_of(&loaded, &actor)?.clone();
            let now = self.now_str();
            member.hidden = hidden;
            if hidden && clear_history {
                member.hide_history_before = Some(now.clone());
            }
            member.updated_at = now;
            let mut event = channel_event(
                if hidden {
                    "channel.hidden"
                } else {
                    "channel.visible"
                },
                &loaded.channel,
                self.now(),
            )
            .with("user", user.clone())
            .with(
                "channel",
                Value::Object(loaded.channel.to_wire(&ChannelView::default())),
            );
            if hidden {
                event = event.with("clear_history", Value::Bool(clear_history));
            }
            match self
                .store
                .transact(vec![
                    member_record::put(&cid, &member)?,
                    outbox_write(&event),
                ])
                .await
            {
                Ok(()) => return Ok(json!({})),
                Err(StoreError::TransactionCanceled { .. }) => contention_pause(attempt).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(contended(&cid))
    }

    /// A user's channel mutes still in force.
    pub async fn active_channel_mutes(&self, user_id: &str) -> Result<Vec<ChannelMute>, ApiError> {
        let now = self.now();
        let mut out = Vec::new();
        let query = Query::new(TableName::Channels, channel_mutes_pk(user_id));
        for item in query_all(self.store.as_ref(), query).await? {
            let mute: ChannelMute = decode(item.data, "channel mute")?;
            if mute.is_active(now) {
                out.push(mute);
            }
        }
        Ok(out)
    }

    /// `me.channel_mutes` entries: each mute with its channel and the user.
    async fn channel_mutes_wire(
        &self,
        user: &Value,
        mutes: &[ChannelMute],
    ) -> Result<Vec<Value>, ApiError> {
        let mut out = Vec::with_capacity(mutes.len());
        for m in mutes {
            let channel = match self.load_channel(&m.channel_cid).await? {
                Some(l) => Value::Object(l.channel.to_wire(&ChannelView::default())),
                None => json!({ "cid": m.channel_cid }),
            };
            out.push(m.to_wire(user.clone(), channel));
        }
        Ok(out)
    }

    /// `POST /moderation/mute/channel` (`mute` true) and `/moderation/unmute/channel`: the
    /// user's mutes of one or more channels, answered with the user's full mute list and
    /// announced to the user as `notification.channel_mutes_updated`.
    pub async fn mute_channels(
        &self,
        session: &Session,
        req: ChannelMuteRequest,
        mute: bool,
    ) -> Result<Value, ApiError> {
        let actor = acting_user(session, &req.user_id, &req.user).ok_or_else(|| {
            ApiError::field(
                "user_id",
                "user_id is required with server-side authentication",
            )
        })?;
        let cids = req.cids()?;
        let expires = match req.expiration {
            None => None,
            Some(ms) if ms > 0 => Some(crate::domain::clock::format_time(
                chrono::Duration::try_milliseconds(ms)
                    .and_then(|d| self.now().checked_add_signed(d))
                    .ok_or_else(|| {
                        ApiError::field("expiration", "expiration is too far in the future")
                    })?,
            )),
            Some(_) => {
                return Err(ApiError::field(
                    "expiration",
                    "expiration must be a positive number of milliseconds",
                ))
            }
        };
        let (user, _) = self
            .get_user(&actor)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("user {actor:?} does not exist")))?;
        let now = self.now_str();
        let mut writes = Vec::new();
        let mut changed = Vec::new();
        for cid in &cids {
            let loaded = self.require_channel(cid).await?;
            if mute {
                if !session.caller.is_server() && !loaded.members.iter().any(|m| m.user_id == actor)
                {
                    return Err(ApiError::not_allowed(format!(
                        "user {actor:?} is not a member of {cid}"
                    )));
                }
                let m = ChannelMute {
                    user_id: actor.clone(),
                    channel_cid: cid.clone(),
                    created_at: now.clone(),
                    updated_at: now.clone(),
                    expires: expires.clone(),
                };
                let item =
                    crate::store::Item::new(channel_mutes_pk(&actor), cid.clone(), to_doc(&m)?);
                writes.push(Write::Put {
                    table: TableName::Channels,
                    item,
                    condition: Condition::None,
                });
                changed.push(m);
            } else {
                writes.push(Write::Delete {
                    table: TableName::Channels,
                    pk: channel_mutes_pk(&actor),
                    sk: cid.clone(),
                    condition: Condition::None,
                });
            }
        }
        let user_json = user.to_json();
        let mut all = self.active_channel_mutes(&actor).await?;
        all.retain(|m| !cids.contains(&m.channel_cid));
        all.extend(changed.iter().cloned());
        let mutes = self.channel_mutes_wire(&user_json, &all).await?;
        let mut me = user_json.clone();
        me["channel_mutes"] = Value::Array(mutes.clone());
        let event = crate::domain::event::Event::new(
            "notification.channel_mutes_updated",
            crate::domain::event::user_scope(&actor),
            self.now(),
        )
        .with("me", me.clone());
        writes.push(outbox_write(&event));
        self.store.transact(writes).await?;
        let mut out = json!({ "own_user": me, "channel_mutes": mutes });
        if mute {
            if let [one] = changed.as_slice() {
                out["channel_mute"] = self
                    .channel_mutes_wire(&user_json, std::slice::from_ref(one))
                    .await?
                    .remove(0);
            }
        }
        Ok(out)
    }

    /// `GET /members`: a channel's members matching a filter, sorted (created_at ascending by
    /// default) and paged by offset or by `user_id_*` / `created_at_*`.
    pub async fn query_members(
        &self,
        session: &Session,
        q: QueryMembers,
    ) -> Result<Value, ApiError> {
        let QueryParts {
            filter,
            mut sort,
            limit,
            offset,
        } = QueryParts::parse(
            q.filter_conditions.as_ref(),
            &query_members_rules(),
            q.sort.as_ref(),
            q.limit,
            (DEFAULT_QUERY_MEMBERS_LIMIT, MAX_QUERY_MEMBERS_LIMIT),
            q.offset,
        )?;
        check_filter_values(&filter)?;
        if sort.is_empty() {
            sort.push(SortField {
                field: "created_at".into(),
                direction: 1,
            });
        }
        sort.push(SortField {
            field: "user_id".into(),
            direction: 1,
        });
        let cid = match (&q.id, &q.members) {
            (Some(id), _) if !id.is_empty() => Cid::new(&q.channel_type, id)?.to_string(),
            (_, Some(members)) if !members.is_empty() => {
                let ids: Vec<String> = members
                    .iter()
                    .filter_map(|m| {
                        m.as_str().map(str::to_string).or_else(|| {
                            m.get("user_id").and_then(Value::as_str).map(str::to_string)
                        })
                    })
                    .collect();
                Cid::new(
                    &q.channel_type,
                    &crate::domain::channel::distinct_channel_id(&ids)?,
                )?
                .to_string()
            }
            _ => {
                return Err(ApiError::field(
                    "id",
                    "query members needs the channel id, or members for a distinct channel",
                ))
            }
        };
        let config = self.channel_config(&q.channel_type).await?;
        let loaded = self.require_channel(&cid).await?;
        self.check_readable(session, &config, &loaded)?;
        let filter = filter.and(q.paging_filter()?);
        let ids: Vec<&str> = loaded.members.iter().map(|m| m.user_id.as_str()).collect();
        let users = self.users_by_id(&ids).await?;
        let creator = loaded.channel.created_by_id.as_deref();
        let mut matched = Vec::new();
        for m in &loaded.members {
            let user = crate::service::users::shown(&users, &m.user_id);
            let wire = m.to_wire(Some(&user), creator);
            let doc = member_filter_doc(m, &wire, &user, &cid);
            if filter.matches_json(&doc) {
                matched.push((wire, doc));
            }
        }
        matched.sort_by(|(_, a), (_, b)| compare_json(&sort, a, b));
        let members: Vec<Value> = matched
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(w, _)| Value::Object(w))
            .collect();
        Ok(json!({ "members": members }))
    }
}

fn member_of<'a>(loaded: &'a Loaded, user_id: &str) -> Result<&'a Member, ApiError> {
    loaded
        .members
        .iter()
        .find(|m| m.user_id == user_id)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "user {user_id:?} is not a member of channel {}",
                loaded.channel.cid
            ))
        })
}

/// What member filters and sorts see: the member's fields and custom data, and the user's id,
/// name, email, last_active, banned.
fn member_filter_doc(m: &Member, wire: &Map<String, Value>, user: &Value, cid: &str) -> Value {
    let mut doc = wire.clone();
    doc.insert("id".into(), Value::String(m.user_id.clone()));
    doc.insert("cid".into(), Value::String(cid.to_string()));
    doc.insert(
        "invite".into(),
        Value::String(m.invite_status().to_string()),
    );
    doc.insert("joined".into(), Value::Bool(m.is_joined()));
    for key in ["name", "last_active"] {
        if let Some(v) = user.get(key) {
            doc.insert(key.into(), v.clone());
        }
    }
    if user.get("banned").and_then(Value::as_bool) == Some(true) {
        doc.insert("banned".into(), Value::Bool(true));
    }
    Value::Object(doc)
}

/// The answer when a member record keeps changing under every attempt.
pub(crate) fn contended(cid: &str) -> ApiError {
    ApiError::input(format!(
        "channel {cid} membership is changing too fast; try again"
    ))
}
