//! Bans: a user banned app-wide or from one channel, for a while (`timeout` minutes) or until
//! unbanned, openly or in the shadow (their messages reach only themselves). The request of
//! `POST /moderation/ban`, the stored record and its wire form (`BanResponse`).

use crate::domain::clock::{format_time, parse_time};
use crate::domain::ApiError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The longest `timeout`, in minutes (a year).
pub const MAX_BAN_TIMEOUT_MINUTES: i64 = 525_600;
/// The longest `reason`, in characters.
pub const MAX_BAN_REASON: usize = 1_000;

/// Body of `POST /moderation/ban` (and the query of `DELETE /moderation/ban`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct BanRequest {
    pub target_user_id: Option<String>,
    /// A channel ban names its channel by `type` and `id`, or by `channel_cid`.
    #[serde(rename = "type")]
    pub channel_type: Option<String>,
    pub id: Option<String>,
    pub channel_cid: Option<String>,
    pub reason: Option<String>,
    /// Minutes until the ban ends by itself.
    pub timeout: Option<i64>,
    pub shadow: Option<bool>,
    pub ip_ban: Option<bool>,
    /// Also ban the target from every channel the banning user creates from now on.
    pub ban_from_future_channels: Option<bool>,
    /// Unban: also lift the banning user's future-channels ban of the target.
    pub remove_future_channels_ban: Option<bool>,
    /// Server-side: who bans (also `user_id` / `user`).
    pub banned_by_id: Option<String>,
    pub banned_by: Option<Map<String, Value>>,
    pub user_id: Option<String>,
    pub user: Option<Map<String, Value>>,
}

impl BanRequest {
    /// The banned user's id.
    pub fn target(&self) -> Result<&str, ApiError> {
        self.target_user_id
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::field("target_user_id", "target_user_id is required"))
    }

    /// The channel of a channel ban, `None` for an app-wide ban.
    pub fn channel(&self) -> Result<Option<String>, ApiError> {
        match (&self.channel_type, &self.id, &self.channel_cid) {
            (Some(t), Some(id), _) if !t.is_empty() && !id.is_empty() => {
                Ok(Some(format!("{t}:{id}")))
            }
            (_, _, Some(cid)) if !cid.is_empty() => match cid.split_once(':') {
                Some((t, id)) if !t.is_empty() && !id.is_empty() => Ok(Some(cid.clone())),
                _ => Err(ApiError::field(
                    "channel_cid",
                    "channel_cid must be <type>:<id>",
                )),
            },
            (Some(_), None, _) | (None, Some(_), _) => Err(ApiError::input(
                "a channel ban needs both the channel's type and id",
            )),
            _ => Ok(None),
        }
    }

    /// The ban this request makes, at `now`.
    pub fn ban(&self, banned_by: Option<String>, now: DateTime<Utc>) -> Result<Ban, ApiError> {
        let reason = self.reason.clone().filter(|r| !r.is_empty());
        if reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > MAX_BAN_REASON)
        {
            return Err(ApiError::field(
                "reason",
                format!("reason must be at most {MAX_BAN_REASON} characters"),
            ));
        }
        let expires = match self.timeout {
            None | Some(0) => None,
            Some(m) if (1..=MAX_BAN_TIMEOUT_MINUTES).contains(&m) => {
                Some(format_time(now + chrono::Duration::minutes(m)))
            }
            Some(_) => {
                return Err(ApiError::field(
                    "timeout",
                    format!("timeout must be between 1 and {MAX_BAN_TIMEOUT_MINUTES} minutes"),
                ))
            }
        };
        let channel_cid = self.channel()?;
        let ip_ban = self.ip_ban.unwrap_or(false);
        if ip_ban && channel_cid.is_some() {
            return Err(ApiError::field(
                "ip_ban",
                "ip_ban applies to app-wide bans only",
            ));
        }
        if ip_ban && self.shadow == Some(true) {
            return Err(ApiError::field(
                "ip_ban",
                "a shadow ban cannot also ban the user's IP address",
            ));
        }
        Ok(Ban {
            target_user_id: self.target()?.to_string(),
            channel_cid,
            reason,
            banned_by_id: banned_by,
            created_at: format_time(now),
            expires,
            shadow: self.shadow.unwrap_or(false),
            ip_ban,
            ip: None,
        })
    }
}

/// A stored ban.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ban {
    pub target_user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_cid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banned_by_id: Option<String>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(default)]
    pub shadow: bool,
    #[serde(default)]
    pub ip_ban: bool,
    /// With `ip_ban`: the address the user last connected from, banned with them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

impl Ban {
    /// Whether the ban still holds at `now` (a timed ban ends by itself).
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.expires
            .as_deref()
            .and_then(parse_time)
            .is_none_or(|end| end > now)
    }

    /// The document `query_banned_users` filters see.
    pub fn filter_doc(&self) -> Value {
        json!({
            "user_id": self.target_user_id,
            "channel_cid": self.channel_cid,
            "reason": self.reason,
            "banned_by_id": self.banned_by_id,
            "created_at": self.created_at,
            "expires": self.expires,
            "shadow": self.shadow,
        })
    }

    /// `BanResponse`, with the users' and channel's objects.
    pub fn to_wire(&self, user: Value, banned_by: Option<Value>, channel: Option<Value>) -> Value {
        let mut out = json!({
            "user": user,
            "created_at": self.created_at,
            "shadow": self.shadow,
        });
        if let Some(b) = banned_by {
            out["banned_by"] = b;
        }
        if let Some(c) = channel {
            out["channel"] = c;
        }
        if let Some(e) = &self.expires {
            out["expires"] = Value::String(e.clone());
        }
        if let Some(r) = &self.reason {
            out["reason"] = Value::String(r.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> BanRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn scope_timeout_and_limits() {
        let now = Utc::now();
        let app = req(json!({"target_user_id": "bob", "timeout": 60, "reason": "spam"}))
            .ban(Some("mod".into()), now)
            .unwrap();
        assert_eq!(app.channel_cid, None);
        assert!(app.is_active(now));
        assert!(!app.is_active(now + chrono::Duration::minutes(61)));
        let channel = req(json!({"target_user_id": "bob", "type": "messaging", "id": "a"}))
            .ban(None, now)
            .unwrap();
        assert_eq!(channel.channel_cid.as_deref(), Some("messaging:a"));
        assert!(channel.is_active(now + chrono::Duration::days(400)));
        assert!(req(json!({"target_user_id": "bob", "type": "messaging"}))
            .ban(None, now)
            .is_err());
        assert!(req(json!({"target_user_id": "bob", "timeout": -1}))
            .ban(None, now)
            .is_err());
        assert!(
            req(json!({"target_user_id": "bob", "reason": "x".repeat(1001)}))
                .ban(None, now)
                .is_err()
        );
        assert!(req(json!({"timeout": 5})).ban(None, now).is_err());
        assert!(
            req(json!({"target_user_id": "b", "channel_cid": "nocolon"}))
                .ban(None, now)
                .is_err()
        );
    }
}
