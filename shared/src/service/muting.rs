//! Between users: mutes (`POST /moderation/mute`, `/moderation/unmute`, optional `timeout` in
//! minutes) and blocks (`POST /users/block`, `/users/unblock`, `GET /users/block`). A user's
//! mutes and blocks are items under the user (one read for `me.mutes` / `me.blocked_user_ids`),
//! keyed by the other user, so delivery checks a whole audience with one batch read.

use super::acting_user;
use super::{to_doc, Chat};
use crate::domain::caller::Session;
use crate::domain::clock::{format_time, parse_time};
use crate::domain::event::Event;
use crate::domain::limits::MAX_MUTE_TARGETS;
use crate::domain::ApiError;
use crate::store::layout::{
    blocked_by_pk, muted_by_pk, outbox_write, user_blocks_pk, user_mutes_pk,
};
use crate::store::{Condition, Index, Item, Query, TableName, Write};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// Longest mute timeout, in minutes (one year).
const MAX_MUTE_MINUTES: i64 = 525_600;

/// One user muting another.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserMute {
    pub user_id: String,
    pub target_id: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

impl UserMute {
    pub fn is_active(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.expires
            .as_deref()
            .and_then(parse_time)
            .is_none_or(|t| t > now)
    }
}

/// One user blocking another.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserBlock {
    pub user_id: String,
    pub blocked_user_id: String,
    pub created_at: String,
}

/// Body of `POST /moderation/mute` and `/moderation/unmute`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct MuteRequest {
    pub target_id: Option<String>,
    #[serde(default, deserialize_with = "crate::domain::ids::unique_ids_opt")]
    pub target_ids: Option<Vec<String>>,
    /// Minutes.
    pub timeout: Option<i64>,
    pub user_id: Option<String>,
    pub user: Option<Map<String, Value>>,
}

/// Body of `POST /users/block` and `/users/unblock`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct BlockRequest {
    pub blocked_user_id: Option<String>,
    pub user_id: Option<String>,
    pub user: Option<Map<String, Value>>,
}

fn actor_of(
    session: &Session,
    user_id: &Option<String>,
    user: &Option<Map<String, Value>>,
) -> Result<String, ApiError> {
    acting_user(session, user_id, user).ok_or_else(|| {
        ApiError::field(
            "user_id",
            "user_id is required with server-side authentication",
        )
    })
}

impl Chat {
    /// The items of one of a user's partitions (mutes or blocks), decoded.
    async fn user_items<T: serde::de::DeserializeOwned>(
        &self,
        pk: String,
    ) -> Result<Vec<T>, ApiError> {
        let page = self
            .store
            .query(Query::new(TableName::App, pk).limit(1000))
            .await?;
        Ok(page
            .items
            .into_iter()
            .filter_map(|i| serde_json::from_value(i.data).ok())
            .collect())
    }

    /// A user's mutes still in force.
    pub(crate) async fn active_user_mutes(&self, user_id: &str) -> Result<Vec<UserMute>, ApiError> {
        let now = self.now();
        let mut mutes: Vec<UserMute> = self.user_items(user_mutes_pk(user_id)).await?;
        mutes.retain(|m| m.is_active(now));
        Ok(mutes)
    }

    /// Who muted `user_id` (mutes still in force): one index query.
    pub(crate) async fn who_muted(&self, user_id: &str) -> Result<BTreeSet<String>, ApiError> {
        self.listed_under(muted_by_pk(user_id)).await
    }

    /// Who blocked `user_id`: one index query.
    pub(crate) async fn who_blocked(&self, user_id: &str) -> Result<BTreeSet<String>, ApiError> {
        self.listed_under(blocked_by_pk(user_id)).await
    }

    /// The users whose mute or block items are listed under `pk` on `gsi1` (expired mutes left
    /// out).
    async fn listed_under(&self, pk: String) -> Result<BTreeSet<String>, ApiError> {
        let now = self.now();
        let page = self
            .store
            .query(
                Query::new(TableName::App, pk)
                    .index(Index::Gsi1)
                    .limit(1000),
            )
            .await?;
        Ok(page
            .items
            .into_iter()
            .filter(|i| {
                serde_json::from_value::<UserMute>(i.data.clone())
                    .map_or(true, |m| m.is_active(now))
            })
            .filter_map(|i| i.gsi1.map(|k| k.sk))
            .collect())
    }

    /// The users a user blocked.
    pub(crate) async fn user_blocks(&self, user_id: &str) -> Result<Vec<UserBlock>, ApiError> {
        self.user_items(user_blocks_pk(user_id)).await
    }

    /// A user as responses carry it, or just its id when it no longer exists.
    async fn user_or_id(&self, id: &str) -> Result<Value, ApiError> {
        Ok(self
            .get_user(id)
            .await?
            .map_or_else(|| json!({ "id": id }), |(u, _)| u.to_json()))
    }

    /// `me.mutes` entries: each mute with the user and target objects.
    pub(crate) async fn user_mutes_wire(&self, mutes: &[UserMute]) -> Result<Vec<Value>, ApiError> {
        let mut out = Vec::with_capacity(mutes.len());
        for m in mutes {
            let user = self.user_or_id(&m.user_id).await?;
            let target = self.user_or_id(&m.target_id).await?;
            let mut v = json!({
                "user": user,
                "target": target,
                "created_at": m.created_at,
                "updated_at": m.updated_at,
            });
            if let Some(e) = &m.expires {
                v["expires"] = Value::String(e.clone());
            }
            out.push(v);
        }
        Ok(out)
    }

    /// `POST /moderation/mute` (`mute` true) and `/moderation/unmute`: answered with the mute(s)
    /// and the user's own user, announced to the user as `notification.mutes_updated`.
    pub async fn mute_users(
        &self,
        session: &Session,
        req: MuteRequest,
        mute: bool,
    ) -> Result<Value, ApiError> {
        let actor = actor_of(session, &req.user_id, &req.user)?;
        let targets: Vec<String> = match (&req.target_id, &req.target_ids) {
            (Some(t), None) => vec![t.clone()],
            (None, Some(ts)) if !ts.is_empty() => ts.clone(),
            (Some(_), Some(_)) => {
                return Err(ApiError::input("give target_id or target_ids, not both"))
            }
            _ => return Err(ApiError::field("target_id", "target_id is required")),
        };
        if targets.len() > MAX_MUTE_TARGETS {
            return Err(ApiError::field(
                "target_ids",
                format!("at most {MAX_MUTE_TARGETS} users at once"),
            ));
        }
        if targets.contains(&actor) {
            return Err(ApiError::input("a user cannot mute themselves"));
        }
        let expires = match req.timeout {
            None => None,
            Some(min) if (1..=MAX_MUTE_MINUTES).contains(&min) => {
                Some(format_time(self.now() + chrono::Duration::minutes(min)))
            }
            Some(_) => {
                return Err(ApiError::field(
                    "timeout",
                    format!("timeout must be between 1 and {MAX_MUTE_MINUTES} minutes"),
                ))
            }
        };
        let (user, _) = self
            .get_user(&actor)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("user {actor:?} does not exist")))?;
        for t in &targets {
            if mute && self.get_user(t).await?.is_none() {
                return Err(ApiError::not_found(format!("user {t:?} does not exist")));
            }
        }
        let now = self.now_str();
        let mut writes = Vec::new();
        let mut changed = Vec::new();
        for t in &targets {
            if mute {
                let m = UserMute {
                    user_id: actor.clone(),
                    target_id: t.clone(),
                    created_at: now.clone(),
                    updated_at: now.clone(),
                    expires: expires.clone(),
                };
                writes.push(Write::Put {
                    table: TableName::App,
                    item: Item::new(user_mutes_pk(&actor), t.clone(), to_doc(&m)?)
                        .with_gsi1(muted_by_pk(t), actor.clone()),
                    condition: Condition::None,
                });
                changed.push(m);
            } else {
                writes.push(Write::Delete {
                    table: TableName::App,
                    pk: user_mutes_pk(&actor),
                    sk: t.clone(),
                    condition: Condition::None,
                });
            }
        }
        let mut all = self.active_user_mutes(&actor).await?;
        all.retain(|m| !targets.contains(&m.target_id));
        all.extend(changed.iter().cloned());
        // The whole own user (unread counts, devices, channel mutes...) with its mutes as they
        // are once this change commits.
        let mut me = self.own_user(&user.id).await?;
        me["mutes"] = Value::Array(self.user_mutes_wire(&all).await?);
        let event = Event::new(
            "notification.mutes_updated",
            crate::domain::event::user_scope(&actor),
            self.now(),
        )
        .with("me", me.clone());
        writes.push(outbox_write(&event));
        for batch in writes.chunks(crate::store::MAX_TRANSACTION_WRITES) {
            self.store.transact(batch.to_vec()).await?;
        }
        // Stream answers a mute with the fresh own user, an unmute with nothing but `duration`.
        let mut out = json!({});
        if mute {
            out["own_user"] = me;
            let wire = self.user_mutes_wire(&changed).await?;
            match (&req.target_id, wire.as_slice()) {
                (Some(_), [one]) => out["mute"] = one.clone(),
                _ => out["mutes"] = Value::Array(wire),
            }
        }
        Ok(out)
    }

    /// `POST /users/block` (`block` true) and `/users/unblock`.
    pub async fn block_user(
        &self,
        session: &Session,
        req: BlockRequest,
        block: bool,
    ) -> Result<Value, ApiError> {
        let actor = actor_of(session, &req.user_id, &req.user)?;
        let target = req
            .blocked_user_id
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::field("blocked_user_id", "blocked_user_id is required"))?;
        if target == actor {
            return Err(ApiError::input("a user cannot block themselves"));
        }
        if self.get_user(&target).await?.is_none() {
            return Err(ApiError::not_found(format!(
                "user {target:?} does not exist"
            )));
        }
        let now = self.now_str();
        let write = if block {
            let b = UserBlock {
                user_id: actor.clone(),
                blocked_user_id: target.clone(),
                created_at: now.clone(),
            };
            Write::Put {
                table: TableName::App,
                item: Item::new(user_blocks_pk(&actor), target.clone(), to_doc(&b)?)
                    .with_gsi1(blocked_by_pk(&target), actor.clone()),
                condition: Condition::None,
            }
        } else {
            Write::Delete {
                table: TableName::App,
                pk: user_blocks_pk(&actor),
                sk: target.clone(),
                condition: Condition::None,
            }
        };
        self.store.write(write).await?;
        // Their 1:1 channels leave the blocker's list (and come back on unblock).
        self.set_direct_channels_hidden(&actor, &target, block)
            .await?;
        Ok(if block {
            json!({ "blocked_by_user_id": actor, "blocked_user_id": target, "blocked_at": now })
        } else {
            json!({})
        })
    }

    /// `GET /users/block`: the users `user_id` blocked.
    pub async fn blocked_users(
        &self,
        session: &Session,
        user_id: Option<String>,
    ) -> Result<Value, ApiError> {
        let actor = actor_of(session, &user_id, &None)?;
        let me = self.user_or_id(&actor).await?;
        let mut blocks = Vec::new();
        for b in self.user_blocks(&actor).await? {
            let blocked = self.user_or_id(&b.blocked_user_id).await?;
            blocks.push(json!({
                "user_id": b.user_id,
                "user": me,
                "blocked_user_id": b.blocked_user_id,
                "blocked_user": blocked,
                "created_at": b.created_at,
            }));
        }
        Ok(json!({ "blocks": blocks }))
    }
}
