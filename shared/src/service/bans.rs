//! Bans: `POST /moderation/ban`, `DELETE /moderation/ban`, `GET /query_banned_users`, and what a
//! ban does. The ban record (app table, partition `bans`, one per user and scope) is what
//! queries list; the banned user's item (app-wide) or member item (channel) carries `banned` /
//! `shadow_banned` / `ban_expires`, written in the same transaction with the `user.banned` /
//! `user.unbanned` event, so the send path, which reads both anyway, decides without another
//! read. A timed ban ends by itself: it stops applying at `expires` (checked where it applies).

use super::timers::{self, Timer, TimerKind};
use super::{acting_user, channel_record, member_record, Chat};
use crate::domain::ban::{Ban, BanRequest};
use crate::domain::caller::Session;
use crate::domain::channel::Member;
use crate::domain::clock::parse_time;
use crate::domain::event::{user_scope, Event};
use crate::domain::filter::{compare_json, parse_sort, FieldRules, Filter, SortField, ValueKind};
use crate::domain::permissions::{self, Resource};
use crate::domain::user::User;
use crate::domain::ApiError;
use crate::store::layout::{outbox_write, user_item};
use crate::store::{query_all, Condition, Item, Query, StoreError, TableName, Write};
use serde::Deserialize;
use serde_json::{json, Value};

/// Attempts at a ban or unban whose user or member changed meanwhile.
const ATTEMPTS: u32 = 5;

const BANS_PK: &str = "bans";

fn ban_key(target: &str, cid: Option<&str>, shadow: bool) -> (String, String) {
    (BANS_PK.into(), ban_timer_key(target, cid, shadow))
}

/// What a ban is keyed by: its user, scope (`*`: app-wide) and kind (a user may be banned
/// and shadow-banned in one scope; each is lifted on its own).
fn ban_timer_key(target: &str, cid: Option<&str>, shadow: bool) -> String {
    let kind = if shadow { "shadow" } else { "ban" };
    format!("{target}#{}#{kind}", cid.unwrap_or("*"))
}

/// Where a user's app-wide (open) ban is.
pub(crate) fn app_ban_key(target: &str) -> (String, String) {
    ban_key(target, None, false)
}

/// The future-channels bans a user made: who is banned from the channels they create.
fn future_bans_pk(banner: &str) -> String {
    format!("future_bans#{banner}")
}

/// The payload of `GET /query_future_channel_bans`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct QueryFutureBans {
    /// Server-side: whose future bans (the banning user).
    pub user_id: Option<String>,
    pub target_user_id: Option<String>,
    pub exclude_expired_bans: Option<bool>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

/// The field rules of `query_banned_users` filters (Stream's `QueryBannedUsersPayload`).
fn ban_filter_rules() -> FieldRules {
    use crate::domain::filter::Op::*;
    let ordered = [Eq, Exists, Gt, Gte, In, Lt, Lte];
    FieldRules::new()
        .typed("user_id", ValueKind::String, &ordered)
        .typed("banned_by_id", ValueKind::String, &ordered)
        .typed("channel_cid", ValueKind::String, &[Eq, In])
        .typed("created_at", ValueKind::Timestamp, &ordered)
        .typed(
            "reason",
            ValueKind::String,
            &[Eq, Exists, Gt, Gte, In, Lt, Lte, Autocomplete],
        )
}

/// The payload of `GET /query_banned_users`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct QueryBans {
    pub filter_conditions: Value,
    pub sort: Value,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
    pub exclude_expired_bans: Option<bool>,
    pub user_id: Option<String>,
}

/// Why a user may not act in a channel: an app-wide or channel ban in force.
pub(crate) fn ban_error(user_id: &str, channel: bool) -> ApiError {
    ApiError::not_allowed(if channel {
        format!("user {user_id:?} is banned from this channel")
    } else {
        format!("user {user_id:?} is banned")
    })
}

impl Chat {
    /// May the caller ban (or unban) in this scope? The server may; a user needs `BanUser`
    /// (app-wide, as the type grants of `messaging` give it) or `BanChannelMember` in the
    /// channel (its channel moderators too).
    async fn check_ban_permission(
        &self,
        session: &Session,
        cid: Option<&str>,
    ) -> Result<(), ApiError> {
        if session.caller.is_server() {
            return Ok(());
        }
        let caller = match (&session.caller, session.caller.user_id()) {
            (crate::domain::caller::Caller::Anonymous, _) | (_, None) => {
                return Err(ApiError::not_allowed("anonymous users cannot ban"))
            }
            (_, Some(id)) => id.to_string(),
        };
        match cid {
            Some(cid) => {
                let (channel_type, _) = cid.split_once(':').unwrap_or((cid, ""));
                let config = self.channel_config(channel_type).await?;
                let loaded = self.load_channel_as(cid, Some(&caller)).await?;
                self.check_channel_action(
                    session,
                    &config,
                    Some(&loaded),
                    &loaded.channel,
                    "BanChannelMember",
                )
            }
            None => {
                let config = self
                    .channel_config(permissions::DEFAULT_CHANNEL_SCOPE)
                    .await?;
                let resource = Resource {
                    owner_id: None,
                    team: None,
                };
                if permissions::is_allowed(
                    &config.grants,
                    &session.caller.subject(None),
                    "BanUser",
                    &resource,
                ) {
                    Ok(())
                } else {
                    Err(ApiError::not_allowed(format!(
                        "user {caller:?} is not allowed to ban users"
                    )))
                }
            }
        }
    }

    /// `POST /moderation/ban`.
    pub async fn ban_user(&self, session: &Session, req: BanRequest) -> Result<Value, ApiError> {
        let by = acting_user(
            session,
            &req.banned_by_id.clone().or(req.user_id.clone()),
            &req.banned_by.clone().or(req.user.clone()),
        );
        let mut ban = req.ban(by.clone(), self.now())?;
        if by.as_deref() == Some(ban.target_user_id.as_str()) {
            return Err(ApiError::input("a user cannot ban themselves"));
        }
        if ban.ip_ban {
            // The address they last connected from is banned with them.
            ban.ip = self.last_ip(&ban.target_user_id).await?;
        }
        self.check_ban_permission(session, ban.channel_cid.as_deref())
            .await?;
        self.apply_ban(&ban, true).await?;
        if req.ban_from_future_channels == Some(true) {
            let banner = by.as_deref().ok_or_else(|| {
                ApiError::field(
                    "banned_by_id",
                    "ban_from_future_channels needs the banning user (banned_by_id)",
                )
            })?;
            let future = Ban {
                channel_cid: None,
                ..ban.clone()
            };
            let data =
                serde_json::to_value(&future).map_err(|e| ApiError::internal(e.to_string()))?;
            self.store
                .write(Write::Put {
                    table: TableName::App,
                    item: Item::new(future_bans_pk(banner), &future.target_user_id, data),
                    condition: Condition::None,
                })
                .await?;
        }
        Ok(json!({}))
    }

    /// `DELETE /moderation/ban`: lifts the ban (or, with `shadow`, the shadow ban) in its scope.
    pub async fn unban_user(&self, session: &Session, req: BanRequest) -> Result<Value, ApiError> {
        let target = req.target()?.to_string();
        let cid = req.channel()?;
        self.check_ban_permission(session, cid.as_deref()).await?;
        if req.remove_future_channels_ban == Some(true) {
            if let Some(by) = acting_user(session, &req.user_id, &req.user) {
                self.store
                    .write(Write::Delete {
                        table: TableName::App,
                        pk: future_bans_pk(&by),
                        sk: target.clone(),
                        condition: Condition::None,
                    })
                    .await?;
            }
        }
        // Removing a shadow ban leaves an open ban alone, and the other way round.
        let (pk, sk) = ban_key(&target, cid.as_deref(), req.shadow.unwrap_or(false));
        if let Some(item) = self.store.get(TableName::App, &pk, &sk).await? {
            let ban: Ban = super::decode(item.data, "ban")?;
            self.apply_ban(&ban, false).await?;
        }
        Ok(json!({}))
    }

    /// Stores (`on`) or lifts a ban with the flags it sets and its event, retried when the
    /// user or member changed meanwhile.
    async fn apply_ban(&self, ban: &Ban, on: bool) -> Result<(), ApiError> {
        let target = ban.target_user_id.as_str();
        for _ in 0..ATTEMPTS {
            let (user, version) = self
                .get_user(target)
                .await?
                .filter(|(u, _)| !u.is_deleted())
                .ok_or_else(|| ApiError::not_found(format!("user {target:?} does not exist")))?;
            let (pk, sk) = ban_key(target, ban.channel_cid.as_deref(), ban.shadow);
            let mut writes = vec![if on {
                let data =
                    serde_json::to_value(ban).map_err(|e| ApiError::internal(e.to_string()))?;
                Write::Put {
                    table: TableName::App,
                    item: Item::new(pk, sk, data),
                    condition: Condition::None,
                }
            } else {
                Write::Delete {
                    table: TableName::App,
                    pk,
                    sk,
                    condition: Condition::None,
                }
            }];
            // A timed ban is lifted by a timer when it ends; lifting it removes the timer.
            let timer_key = ban_timer_key(target, ban.channel_cid.as_deref(), ban.shadow);
            match (on, ban.expires.as_deref().and_then(parse_time)) {
                (true, Some(end)) => writes.push(timers::timer_replace_write(
                    TimerKind::BanExpiry,
                    &timer_key,
                    end,
                )),
                _ => writes.push(timers::timer_delete_write(TimerKind::BanExpiry, &timer_key)),
            }
            writes.extend(super::ip_bans::ip_ban_write(ban, on)?);
            let kind = if on { "user.banned" } else { "user.unbanned" };
            let mut event = match &ban.channel_cid {
                None => Event::new(kind, user_scope(target), self.now()),
                Some(cid) => {
                    let loaded = self.load_channel_as(cid, Some(target)).await?;
                    let mut event =
                        channel_record::channel_event(kind, &loaded.channel, self.now());
                    if let Some(member) = loaded.members.first() {
                        writes.push(member_record::put(cid, &banned_member(member, ban, on))?);
                    }
                    event.payload.insert(
                        "channel_member_count".into(),
                        loaded.channel.member_count.into(),
                    );
                    event
                }
            };
            let mut shown = user.clone();
            if ban.channel_cid.is_none() {
                let next = banned_user(&user, ban, on);
                writes.push(Write::Put {
                    table: TableName::App,
                    item: user_item(&next.id, &next.role, super::to_doc(&next)?, version + 1),
                    condition: Condition::Version(version),
                });
                shown = next;
            }
            event = event.with("user", shown.to_json());
            if on {
                if let Some(by) = &ban.banned_by_id {
                    event = event.with("created_by", json!({ "id": by }));
                }
                if let Some(r) = &ban.reason {
                    event = event.with("reason", Value::String(r.clone()));
                }
                if let Some(e) = &ban.expires {
                    event = event.with("expiration", Value::String(e.clone()));
                }
                event = event.with("shadow", Value::Bool(ban.shadow));
            }
            writes.push(outbox_write(&event));
            match self.store.transact(writes).await {
                Ok(()) => return Ok(()),
                Err(StoreError::TransactionCanceled { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::input(format!(
            "user {target:?} is changing too often to ban now; try again"
        )))
    }

    /// A timed ban's timer: lifts the ban if it is still the one that ends now.
    pub(crate) async fn fire_ban_expiry(&self, timer: &Timer) -> Result<(), ApiError> {
        let (pk, sk) = (BANS_PK.to_string(), timer.key.clone());
        if let Some(item) = self.store.get(TableName::App, &pk, &sk).await? {
            let ban: Ban = super::decode(item.data, "ban")?;
            if !ban.is_active(self.now()) {
                // Lifting it removes this timer too.
                return self.apply_ban(&ban, false).await;
            }
        }
        match self.store.write(timer.claim()).await {
            Ok(()) | Err(StoreError::ConditionFailed) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The future-channels bans `banner` made (ended ones too).
    async fn future_bans(&self, banner: &str) -> Result<Vec<Ban>, ApiError> {
        Ok(query_all(
            self.store.as_ref(),
            Query::new(TableName::App, future_bans_pk(banner)),
        )
        .await?
        .into_iter()
        .filter_map(|i| serde_json::from_value::<Ban>(i.data).ok())
        .collect())
    }

    /// A new channel's members as its creator's future-channels bans leave them, with the ban
    /// records of the channel to write with it.
    pub(crate) async fn apply_future_bans(
        &self,
        cid: &str,
        creator: Option<&str>,
        members: Vec<Member>,
    ) -> Result<(Vec<Member>, Vec<Write>), ApiError> {
        let Some(creator) = creator else {
            return Ok((members, Vec::new()));
        };
        let now = self.now();
        let bans: Vec<Ban> = self
            .future_bans(creator)
            .await?
            .into_iter()
            .filter(|b| b.is_active(now))
            .collect();
        if bans.is_empty() {
            return Ok((members, Vec::new()));
        }
        let mut records = Vec::new();
        let members = members
            .into_iter()
            .map(|m| {
                let mut m = m;
                let user_id = m.user_id.clone();
                for ban in bans.iter().filter(|b| b.target_user_id == user_id) {
                    let ban = Ban {
                        channel_cid: Some(cid.to_string()),
                        ..ban.clone()
                    };
                    m = banned_member(&m, &ban, true);
                    let (pk, sk) = ban_key(&ban.target_user_id, Some(cid), ban.shadow);
                    if let Ok(data) = serde_json::to_value(&ban) {
                        records.push(Write::Put {
                            table: TableName::App,
                            item: Item::new(pk, sk, data),
                            condition: Condition::None,
                        });
                    }
                }
                m
            })
            .collect();
        Ok((members, records))
    }

    /// `GET /query_future_channel_bans`: the future-channels bans the calling (or, server-side,
    /// the named) user made.
    pub async fn query_future_channel_bans(
        &self,
        session: &Session,
        q: QueryFutureBans,
    ) -> Result<Value, ApiError> {
        let banner = acting_user(session, &q.user_id, &None).ok_or_else(|| {
            ApiError::field(
                "user_id",
                "user_id is required with server-side authentication",
            )
        })?;
        let (limit, offset) = crate::domain::limits::moderation_page(q.limit, q.offset)?;
        let now = self.now();
        let mut bans: Vec<Ban> = self
            .future_bans(&banner)
            .await?
            .into_iter()
            .filter(|b| !q.exclude_expired_bans.unwrap_or(false) || b.is_active(now))
            .filter(|b| {
                q.target_user_id
                    .as_deref()
                    .is_none_or(|t| t == b.target_user_id)
            })
            .collect();
        bans.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        let page: Vec<Ban> = bans.into_iter().skip(offset).take(limit).collect();
        let ids: Vec<&str> = page.iter().map(|b| b.target_user_id.as_str()).collect();
        let users = self.users_by_id(&ids).await?;
        let out: Vec<Value> = page
            .iter()
            .map(|b| {
                b.to_wire(
                    crate::service::users::shown(&users, &b.target_user_id),
                    None,
                    None,
                )
            })
            .collect();
        Ok(json!({ "bans": out }))
    }

    /// `GET /query_banned_users`: bans matching `filter_conditions` (`user_id`, `channel_cid`,
    /// `reason`, `banned_by_id`, `created_at`), newest first unless sorted, with `limit` (≤ 300)
    /// and `offset` (≤ 10,000).
    pub async fn query_banned_users(
        &self,
        session: &Session,
        q: QueryBans,
    ) -> Result<Value, ApiError> {
        if !session.caller.is_server() {
            self.check_ban_permission(session, None).await?;
        }
        let (limit, offset) = crate::domain::limits::moderation_page(q.limit, q.offset)?;
        let filter = Filter::parse(&q.filter_conditions, Some(&ban_filter_rules()))
            .map_err(|e| ApiError::field("filter_conditions", e.to_string()))?;
        let mut sort = parse_sort(&q.sort).map_err(|e| ApiError::field("sort", e.to_string()))?;
        if sort.is_empty() {
            sort.push(SortField {
                field: "created_at".into(),
                direction: -1,
            });
        }
        let now = self.now();
        let mut bans: Vec<(Ban, Value)> =
            query_all(self.store.as_ref(), Query::new(TableName::App, BANS_PK))
                .await?
                .into_iter()
                .filter_map(|i| serde_json::from_value::<Ban>(i.data).ok())
                .filter(|b| !q.exclude_expired_bans.unwrap_or(false) || b.is_active(now))
                .map(|b| {
                    let doc = b.filter_doc();
                    (b, doc)
                })
                .filter(|(_, doc)| filter.matches_json(doc))
                .collect();
        bans.sort_by(|(_, a), (_, b)| compare_json(&sort, a, b));
        let page: Vec<Ban> = bans
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(b, _)| b)
            .collect();
        let mut ids: Vec<&str> = page.iter().map(|b| b.target_user_id.as_str()).collect();
        ids.extend(page.iter().filter_map(|b| b.banned_by_id.as_deref()));
        let users = self.users_by_id(&ids).await?;
        let user_json = |id: &str| crate::service::users::shown(&users, id);
        let mut out = Vec::with_capacity(page.len());
        for b in &page {
            let channel = match &b.channel_cid {
                Some(cid) => Some(match self.load_channel(cid).await? {
                    Some(l) => Value::Object(
                        l.channel
                            .to_wire(&crate::domain::channel::ChannelView::default()),
                    ),
                    None => json!({ "cid": cid }),
                }),
                None => None,
            };
            out.push(b.to_wire(
                user_json(&b.target_user_id),
                b.banned_by_id.as_deref().map(user_json),
                channel,
            ));
        }
        Ok(json!({ "bans": out }))
    }

    /// The channel bans (open and shadow) of `user_id` in `cid` that are in force now: for a
    /// user who is not a member (a member's item carries its bans) and for members joining.
    pub(crate) async fn channel_bans(
        &self,
        user_id: &str,
        cid: &str,
    ) -> Result<Vec<Ban>, ApiError> {
        let keys: Vec<(String, String)> = [false, true]
            .into_iter()
            .map(|shadow| ban_key(user_id, Some(cid), shadow))
            .collect();
        let now = self.now();
        Ok(self
            .store
            .batch_get(TableName::App, &keys)
            .await?
            .into_iter()
            .filter_map(|i| serde_json::from_value::<Ban>(i.data).ok())
            .filter(|b| b.is_active(now))
            .collect())
    }

    /// A new member with the channel bans the user has there (banned before joining, or
    /// removed and added back).
    pub(crate) async fn with_channel_bans(
        &self,
        cid: &str,
        member: Member,
    ) -> Result<Member, ApiError> {
        let mut member = member;
        for ban in self.channel_bans(&member.user_id, cid).await? {
            member = banned_member(&member, &ban, true);
        }
        Ok(member)
    }

    /// Refuses a user who is banned where they act: app-wide (`user`), or from the channel
    /// (`member`, when they are one). Timed bans that ran out no longer apply.
    pub(crate) fn check_not_banned(
        &self,
        user: &User,
        member: Option<&Member>,
    ) -> Result<(), ApiError> {
        let now = self.now();
        let in_force = |expires: Option<&str>| expires.and_then(parse_time).is_none_or(|e| e > now);
        if user.banned && in_force(user.ban_expires.as_deref()) {
            return Err(ban_error(&user.id, false));
        }
        if let Some(m) = member.filter(|m| m.banned && in_force(m.ban_expires.as_deref())) {
            return Err(ban_error(&m.user_id, true));
        }
        Ok(())
    }

    /// [`Chat::check_not_banned`] for the user a request acts as (the caller, or the user a
    /// server-side request names) in `loaded`'s channel.
    pub(crate) async fn check_actor_not_banned(
        &self,
        actor: Option<&str>,
        loaded: &channel_record::Loaded,
    ) -> Result<(), ApiError> {
        let Some(uid) = actor else {
            return Ok(());
        };
        if let Some((user, _)) = self.get_user(uid).await? {
            self.check_not_banned(&user, loaded.members.iter().find(|m| m.user_id == uid))?;
        }
        Ok(())
    }

    /// Whether what `user` sends now is shadowed (a shadow ban in force, app-wide or here).
    pub(crate) fn is_shadow_banned(&self, user: &User, member: Option<&Member>) -> bool {
        let now = self.now();
        let in_force = |expires: Option<&str>| expires.and_then(parse_time).is_none_or(|e| e > now);
        (user.shadow_banned && in_force(user.ban_expires.as_deref()))
            || member.is_some_and(|m| m.shadow_banned && in_force(m.ban_expires.as_deref()))
    }
}

/// Sets (`on`) or lifts `ban`'s kind in a user's or member's ban fields; the end shown is the
/// newest ban's, and goes with the last one lifted.
fn set_ban_fields(
    banned: &mut bool,
    shadow_banned: &mut bool,
    ban_expires: &mut Option<String>,
    ban: &Ban,
    on: bool,
) {
    if ban.shadow {
        *shadow_banned = on;
    } else {
        *banned = on;
    }
    if on {
        *ban_expires = ban.expires.clone();
    } else if !*banned && !*shadow_banned {
        *ban_expires = None;
    }
}

/// The user with an app-wide ban set (`on`) or lifted.
fn banned_user(user: &User, ban: &Ban, on: bool) -> User {
    let mut next = user.clone();
    set_ban_fields(
        &mut next.banned,
        &mut next.shadow_banned,
        &mut next.ban_expires,
        ban,
        on,
    );
    next
}

/// The member with a channel ban set (`on`) or lifted.
pub(crate) fn banned_member(member: &Member, ban: &Ban, on: bool) -> Member {
    let mut next = member.clone();
    set_ban_fields(
        &mut next.banned,
        &mut next.shadow_banned,
        &mut next.ban_expires,
        ban,
        on,
    );
    next
}
