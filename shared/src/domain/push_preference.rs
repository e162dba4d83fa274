//! Push preferences (`POST /push_preferences`): per user, and per user and channel, which chat
//! messages push (`chat_level`: all, only those that mention the user, or none) and a snooze
//! (`disabled_until`). A channel's preference overrides the user's; with neither, everything
//! pushes; while either snooze runs, nothing does. Call and feed levels and the per-mention-kind
//! `chat_preferences` belong to products this server does not have and are refused.

use crate::domain::clock::{format_time, parse_time};
use crate::domain::ApiError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Preferences one call sets at most.
pub const MAX_PREFERENCES: usize = 100;

const CHAT_LEVELS: &[&str] = &[
    "all",
    "mentions",
    "direct_mentions",
    "all_mentions",
    "none",
    "default",
];

/// One preference as stored (the user's, or theirs for one channel).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PushPreference {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_until: Option<String>,
}

/// One entry of `preferences` as sent.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct PreferenceInput {
    pub user_id: Option<String>,
    pub channel_cid: Option<String>,
    pub chat_level: Option<String>,
    pub disabled_until: Option<String>,
    pub remove_disable: Option<bool>,
    pub chat_preferences: Option<Value>,
    pub call_level: Option<String>,
    pub feeds_level: Option<String>,
    pub feeds_preferences: Option<Value>,
}

impl PreferenceInput {
    /// The stored preference after this input.
    pub fn apply(&self, mut pref: PushPreference) -> Result<PushPreference, ApiError> {
        for (field, given) in [
            ("chat_preferences", self.chat_preferences.is_some()),
            ("call_level", self.call_level.is_some()),
            ("feeds_level", self.feeds_level.is_some()),
            ("feeds_preferences", self.feeds_preferences.is_some()),
        ] {
            if given {
                return Err(ApiError::field(
                    field,
                    format!("{field} is not supported: only chat_level and disabled_until are"),
                ));
            }
        }
        if let Some(level) = &self.chat_level {
            if !CHAT_LEVELS.contains(&level.as_str()) {
                return Err(ApiError::field(
                    "chat_level",
                    format!("chat_level must be one of {}", CHAT_LEVELS.join(", ")),
                ));
            }
            pref.chat_level = (level != "default").then(|| level.clone());
        }
        if let Some(until) = self.disabled_until.as_deref().filter(|u| !u.is_empty()) {
            let at = parse_time(until).ok_or_else(|| {
                ApiError::field(
                    "disabled_until",
                    "disabled_until must be an RFC 3339 timestamp",
                )
            })?;
            pref.disabled_until = Some(format_time(at));
        }
        if self.remove_disable == Some(true) {
            pref.disabled_until = None;
        }
        Ok(pref)
    }
}

impl PushPreference {
    pub fn is_empty(&self) -> bool {
        self.chat_level.is_none() && self.disabled_until.is_none()
    }

    pub fn to_wire(&self) -> Value {
        let mut m = Map::new();
        if let Some(l) = &self.chat_level {
            m.insert("chat_level".into(), Value::String(l.clone()));
        }
        if let Some(u) = &self.disabled_until {
            m.insert("disabled_until".into(), Value::String(u.clone()));
        }
        Value::Object(m)
    }

    fn snoozed(&self, now: DateTime<Utc>) -> bool {
        self.disabled_until
            .as_deref()
            .and_then(parse_time)
            .is_some_and(|until| until > now)
    }
}

/// Whether a message pushes to a user with these preferences (`mentioned`: it mentions them).
pub fn wants_push(
    user: Option<&PushPreference>,
    channel: Option<&PushPreference>,
    mentioned: bool,
    now: DateTime<Utc>,
) -> bool {
    if user.is_some_and(|p| p.snoozed(now)) || channel.is_some_and(|p| p.snoozed(now)) {
        return false;
    }
    let level = channel
        .and_then(|p| p.chat_level.as_deref())
        .or_else(|| user.and_then(|p| p.chat_level.as_deref()))
        .unwrap_or("all");
    match level {
        "none" => false,
        "mentions" | "direct_mentions" | "all_mentions" => mentioned,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pref(level: Option<&str>, until: Option<&str>) -> PushPreference {
        PushPreference {
            chat_level: level.map(str::to_string),
            disabled_until: until.map(str::to_string),
        }
    }

    #[test]
    fn the_channel_overrides_the_user_and_snoozes_win() {
        let now = Utc::now();
        let later = format_time(now + chrono::Duration::hours(1));
        let earlier = format_time(now - chrono::Duration::hours(1));
        assert!(wants_push(None, None, false, now));
        assert!(!wants_push(
            Some(&pref(Some("none"), None)),
            None,
            true,
            now
        ));
        assert!(wants_push(
            Some(&pref(Some("none"), None)),
            Some(&pref(Some("all"), None)),
            false,
            now
        ));
        assert!(!wants_push(
            None,
            Some(&pref(Some("mentions"), None)),
            false,
            now
        ));
        assert!(wants_push(
            None,
            Some(&pref(Some("mentions"), None)),
            true,
            now
        ));
        assert!(!wants_push(
            Some(&pref(None, Some(&later))),
            Some(&pref(Some("all"), None)),
            true,
            now
        ));
        assert!(wants_push(
            Some(&pref(None, Some(&earlier))),
            None,
            false,
            now
        ));
    }

    #[test]
    fn inputs_are_checked() {
        let input = |v: Value| serde_json::from_value::<PreferenceInput>(v).expect("input");
        let base = PushPreference::default();
        assert!(input(serde_json::json!({"chat_level": "loud"}))
            .apply(base.clone())
            .is_err());
        assert!(input(serde_json::json!({"call_level": "all"}))
            .apply(base.clone())
            .is_err());
        assert!(input(serde_json::json!({"disabled_until": "soon"}))
            .apply(base.clone())
            .is_err());
        let set = input(
            serde_json::json!({"chat_level": "mentions", "disabled_until": "2030-01-01T00:00:00Z"}),
        )
        .apply(base)
        .expect("set");
        assert_eq!(set.chat_level.as_deref(), Some("mentions"));
        let cleared = input(serde_json::json!({"chat_level": "default", "remove_disable": true}))
            .apply(set)
            .expect("cleared");
        assert!(cleared.is_empty());
    }
}
