//! Flags: a user reports a message or another user to the app's moderators. The request of
//! `POST /moderation/flag` / `unflag`, the stored flag (one per reporter and target) and its wire
//! form.

use crate::domain::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The longest `reason` (Stream's `FlagRequest`).
pub const MAX_FLAG_REASON: usize = 255;
/// The most custom data a flag carries, in bytes of JSON.
pub const MAX_FLAG_CUSTOM_BYTES: usize = 5 * 1024;

/// Body of `POST /moderation/flag` and `/moderation/unflag`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct FlagRequest {
    pub target_message_id: Option<String>,
    pub target_user_id: Option<String>,
    pub reason: Option<String>,
    pub custom: Map<String, Value>,
    /// Server-side: who flags (also `user`).
    pub user_id: Option<String>,
    pub user: Option<Map<String, Value>>,
}

/// What a flag is about.
#[derive(Clone, Debug, PartialEq)]
pub enum FlagTarget {
    Message(String),
    User(String),
}

impl FlagRequest {
    /// The one target the request names.
    pub fn target(&self) -> Result<FlagTarget, ApiError> {
        let given = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        match (given(&self.target_message_id), given(&self.target_user_id)) {
            (Some(m), None) => Ok(FlagTarget::Message(m)),
            (None, Some(u)) => Ok(FlagTarget::User(u)),
            (Some(_), Some(_)) => Err(ApiError::input(
                "give target_message_id or target_user_id, not both",
            )),
            (None, None) => Err(ApiError::field(
                "target_message_id",
                "target_message_id or target_user_id is required",
            )),
        }
    }

    /// Checks the reason and custom data.
    pub fn validate(&self) -> Result<(), ApiError> {
        if self
            .reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > MAX_FLAG_REASON)
        {
            return Err(ApiError::field(
                "reason",
                format!("reason must be at most {MAX_FLAG_REASON} characters"),
            ));
        }
        if Value::Object(self.custom.clone()).to_string().len() > MAX_FLAG_CUSTOM_BYTES {
            return Err(ApiError::field(
                "custom",
                format!("custom data must be at most {MAX_FLAG_CUSTOM_BYTES} bytes"),
            ));
        }
        Ok(())
    }
}

/// A stored flag.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    /// Who flagged.
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_user_id: Option<String>,
    /// For a message: its channel and author (what `query_message_flags` filters on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_cid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub custom: Map<String, Value>,
    /// Raised by the channel type's blocklists, not by a user.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub created_by_automod: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl Flag {
    /// The document `query_message_flags` filters see.
    pub fn filter_doc(&self) -> Value {
        json!({
            "channel_cid": self.channel_cid,
            "message_id": self.target_message_id,
            "user_id": self.message_user_id,
            "reporter_id": self.user_id,
            "reason": self.reason,
            "created_at": self.created_at,
            "is_reviewed": false,
        })
    }

    /// `FlagResponse` / `MessageFlagResponse`: the reporter as `user`, with the target.
    pub fn to_wire(&self, reporter: Value, target: Option<(&str, Value)>) -> Value {
        let mut out = json!({
            "user": reporter,
            "created_by_automod": self.created_by_automod,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "custom": self.custom,
        });
        if let Some(r) = &self.reason {
            out["reason"] = Value::String(r.clone());
        }
        if let Some(m) = &self.target_message_id {
            out["target_message_id"] = Value::String(m.clone());
        }
        if let Some((field, value)) = target {
            out[field] = value;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_target_and_bounded_fields() {
        let req = |v: Value| serde_json::from_value::<FlagRequest>(v).unwrap();
        assert_eq!(
            req(json!({"target_message_id": "m"})).target().unwrap(),
            FlagTarget::Message("m".into())
        );
        assert!(req(json!({})).target().is_err());
        assert!(
            req(json!({"target_message_id": "m", "target_user_id": "u"}))
                .target()
                .is_err()
        );
        assert!(req(json!({"reason": "x".repeat(256)})).validate().is_err());
        assert!(req(json!({"custom": {"a": "x".repeat(6000)}}))
            .validate()
            .is_err());
        assert!(req(json!({"reason": "spam", "custom": {"a": 1}}))
            .validate()
            .is_ok());
    }
}
