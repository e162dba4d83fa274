//! `POST /push_preferences`: a user's push preferences and theirs per channel, kept in the app
//! table (`push_prefs#<user>`; sort key `user` or the cid), each changed read-modify-write on
//! its version; `me.push_preferences` on connect; read by the push rules (`crate::push`).

use super::devices::push_settings_owner;
use super::{channel_record, member_record};
use crate::domain::caller::Session;
use crate::domain::push_preference::{PreferenceInput, PushPreference, MAX_PREFERENCES};
use crate::domain::ApiError;
use crate::service::{contention_pause, Chat, CONTENDED_ATTEMPTS};
use crate::store::{query_all, Condition, Item, Query, StoreError, TableName, Write};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

const USER_SK: &str = "user";

fn prefs_pk(user_id: &str) -> String {
    format!("push_prefs#{user_id}")
}

/// Body of `POST /push_preferences`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UpsertPushPreferences {
    pub preferences: Vec<PreferenceInput>,
}

/// A user's stored preferences: their own, and per channel.
#[derive(Debug, Default)]
pub struct UserPushPreferences {
    pub user: Option<PushPreference>,
    pub channels: HashMap<String, PushPreference>,
}

impl Chat {
    /// A user's preferences (one partition read).
    pub async fn push_preferences_of(
        &self,
        user_id: &str,
    ) -> Result<UserPushPreferences, ApiError> {
        let mut out = UserPushPreferences::default();
        let items = query_all(
            self.store.as_ref(),
            Query::new(TableName::App, prefs_pk(user_id)),
        )
        .await?;
        for item in items {
            let Ok(pref) = serde_json::from_value::<PushPreference>(item.data) else {
                continue;
            };
            if item.sk == USER_SK {
                out.user = Some(pref);
            } else {
                out.channels.insert(item.sk, pref);
            }
        }
        Ok(out)
    }

    /// `POST /push_preferences`.
    pub async fn upsert_push_preferences(
        &self,
        session: &Session,
        req: UpsertPushPreferences,
    ) -> Result<Value, ApiError> {
        if req.preferences.is_empty() {
            return Err(ApiError::field("preferences", "preferences is required"));
        }
        if req.preferences.len() > MAX_PREFERENCES {
            return Err(ApiError::field(
                "preferences",
                format!("at most {MAX_PREFERENCES} preferences at once"),
            ));
        }
        // Everything is checked before anything is written.
        let mut planned = Vec::with_capacity(req.preferences.len());
        for input in &req.preferences {
            let user_id = push_settings_owner(session, input.user_id.clone(), "push preferences")?;
            if self.get_user(&user_id).await?.is_none() {
                return Err(ApiError::not_found(format!(
                    "user {user_id:?} does not exist"
                )));
            }
            input.apply(PushPreference::default())?;
            let cid = input.channel_cid.clone().filter(|c| !c.is_empty());
            if let Some(cid) = &cid {
                // The channel item and the user's member item: two key reads.
                let (pk, sk) = channel_record::key(cid);
                let live = match self.store.get(TableName::Channels, &pk, &sk).await? {
                    Some(item) => channel_record::decode(item)?.0.deleted_at.is_none(),
                    None => false,
                };
                if !live {
                    return Err(ApiError::not_found(format!(
                        "channel {cid:?} does not exist"
                    )));
                }
                let (pk, sk) = member_record::key(cid, &user_id);
                if self
                    .store
                    .get(TableName::Channels, &pk, &sk)
                    .await?
                    .is_none()
                {
                    return Err(ApiError::input(format!(
                        "user {user_id:?} is not a member of channel {cid:?}"
                    )));
                }
            }
            planned.push((user_id, cid, input));
        }
        let mut users = Map::new();
        let mut channels: Map<String, Value> = Map::new();
        for (user_id, cid, input) in planned {
            let sk = cid.clone().unwrap_or_else(|| USER_SK.to_string());
            let pref = self.change_preference(&user_id, &sk, input).await?;
            if let Some(cid) = cid {
                let mine = channels
                    .entry(user_id.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                mine[cid.as_str()] = pref.to_wire();
            }
            users.entry(user_id).or_insert(Value::Null);
        }
        for (user_id, shown) in users.iter_mut() {
            *shown = self
                .push_preferences_of(user_id)
                .await?
                .user
                .map_or_else(|| json!({}), |p| p.to_wire());
        }
        Ok(json!({
            "user_preferences": users,
            "user_channel_preferences": channels,
        }))
    }

    /// Applies one input to one stored preference, on the version read.
    async fn change_preference(
        &self,
        user_id: &str,
        sk: &str,
        input: &PreferenceInput,
    ) -> Result<PushPreference, ApiError> {
        let pk = prefs_pk(user_id);
        for attempt in 1..=CONTENDED_ATTEMPTS {
            let stored = self.store.get(TableName::App, &pk, sk).await?;
            let version = stored.as_ref().map_or(0, |i| i.version);
            let current = stored
                .and_then(|i| serde_json::from_value(i.data).ok())
                .unwrap_or_default();
            let next = input.apply(current)?;
            let write = if next.is_empty() {
                if version == 0 {
                    return Ok(next);
                }
                Write::Delete {
                    table: TableName::App,
                    pk: pk.clone(),
                    sk: sk.to_string(),
                    condition: Condition::Version(version),
                }
            } else {
                let data =
                    serde_json::to_value(&next).map_err(|e| ApiError::internal(e.to_string()))?;
                Write::put_read_at(TableName::App, Item::new(pk.clone(), sk, data), version)
            };
            match self.store.write(write).await {
                Ok(()) => return Ok(next),
                Err(StoreError::ConditionFailed) => contention_pause(attempt).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::internal(
            "push preferences kept changing; try again",
        ))
    }
}
