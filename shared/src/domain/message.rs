//! Messages as stored and as responses carry them, the new-message rules (id, type, text length,
//! custom data) and the channel-state page of messages (`id_lt` / `id_gt` / `id_lte` / `id_gte`
//! / `id_around`, limit ≤ 300).

// Wire names follow stream-chat-js `MessageResponse`.

use crate::domain::channel::check_custom_size;
use crate::domain::limits::{
    DEFAULT_CHANNEL_MESSAGE_LIMIT, MAX_CHANNEL_MESSAGE_LIMIT, MAX_MESSAGE_ID_LEN,
};
use crate::domain::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Message types a request may ask for; the others (`deleted`, `error`, `ephemeral`, `reply`)
/// are the server's.
pub const CLIENT_MESSAGE_TYPES: &[&str] = &["regular", "system"];

/// Keys of a message payload that are not custom data.
const MESSAGE_KEYS: &[&str] = &[
    "id",
    "text",
    "type",
    "user",
    "user_id",
    "silent",
    "cid",
    "created_at",
    "updated_at",
    "html",
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub cid: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: String,
    /// The author; system messages made by the server may have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub silent: bool,
    #[serde(flatten)]
    pub custom: Map<String, Value>,
}

impl Message {
    /// A message from a request payload (`message` of send, or the optional system message of a
    /// channel change). `id` is the payload's or `fallback_id`.
    pub fn from_payload(
        payload: &Map<String, Value>,
        cid: &str,
        user_id: Option<String>,
        fallback_id: String,
        now: &str,
    ) -> Result<Message, ApiError> {
        let id = match payload.get("id") {
            None | Some(Value::Null) => fallback_id,
            Some(Value::String(s)) if s.is_empty() => fallback_id,
            Some(Value::String(s)) => {
                validate_message_id(s)?;
                s.clone()
            }
            Some(_) => return Err(ApiError::field("message.id", "message.id must be a string")),
        };
        let text = match payload.get("text") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(ApiError::field(
                    "message.text",
                    "message.text must be a string",
                ))
            }
        };
        let kind = match payload.get("type") {
            None | Some(Value::Null) => "regular".to_string(),
            Some(Value::String(t)) if t.is_empty() => "regular".to_string(),
            Some(Value::String(t)) if CLIENT_MESSAGE_TYPES.contains(&t.as_str()) => t.clone(),
            Some(other) => {
                return Err(ApiError::field(
                    "message.type",
                    format!("message type {other} cannot be sent; use regular or system"),
                ))
            }
        };
        let silent = match payload.get("silent") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(ApiError::field(
                    "message.silent",
                    "message.silent must be a boolean",
                ))
            }
        };
        let custom: Map<String, Value> = payload
            .iter()
            .filter(|(k, _)| !MESSAGE_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        check_custom_size("message", &custom)?;
        Ok(Message {
            id,
            cid: cid.to_string(),
            kind,
            text,
            user_id,
            created_at: now.to_string(),
            updated_at: now.to_string(),
            silent,
            custom,
        })
    }

    /// The response shape, with the author's user object and the (empty until reactions,
    /// replies and mentions land) lists every SDK reads.
    pub fn to_wire(&self, user: Option<&Value>) -> Value {
        let mut doc = match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        doc.remove("user_id");
        if let Some(u) = user {
            doc.insert("user".into(), u.clone());
        }
        let defaults = json!({
            "attachments": [],
            "latest_reactions": [],
            "own_reactions": [],
            "reaction_counts": {},
            "reaction_scores": {},
            "reaction_groups": null,
            "reply_count": 0,
            "deleted_reply_count": 0,
            "mentioned_users": [],
            "shadowed": false,
            "pinned": false,
            "pinned_at": null,
            "pinned_by": null,
            "pin_expires": null,
            "html": "",
        });
        if let Value::Object(d) = defaults {
            for (k, v) in d {
                doc.entry(k).or_insert(v);
            }
        }
        Value::Object(doc)
    }
}

/// Seed: a message id is at most 255 characters and contains neither `,` nor `%`.
pub fn validate_message_id(id: &str) -> Result<(), ApiError> {
    if id.len() > MAX_MESSAGE_ID_LEN {
        return Err(ApiError::field(
            "message.id",
            format!("message.id is longer than {MAX_MESSAGE_ID_LEN} characters"),
        ));
    }
    if id.contains(',') || id.contains('%') {
        return Err(ApiError::field(
            "message.id",
            "message.id cannot contain , or %",
        ));
    }
    Ok(())
}

/// Where a page of channel messages starts, relative to an anchor message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageAnchor {
    /// The newest messages.
    Latest,
    Before {
        id: String,
        inclusive: bool,
    },
    After {
        id: String,
        inclusive: bool,
    },
    Around(String),
}

/// `messages` of a channel query: the anchor and the page size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessagePage {
    pub anchor: MessageAnchor,
    pub limit: usize,
}

impl MessagePage {
    pub fn parse(v: Option<&Map<String, Value>>) -> Result<MessagePage, ApiError> {
        let Some(m) = v else {
            return Ok(MessagePage {
                anchor: MessageAnchor::Latest,
                limit: DEFAULT_CHANNEL_MESSAGE_LIMIT,
            });
        };
        let limit = match m.get("limit") {
            None | Some(Value::Null) => DEFAULT_CHANNEL_MESSAGE_LIMIT,
            Some(v) => v.as_u64().map(|n| n as usize).ok_or_else(|| {
                ApiError::field("messages.limit", "messages.limit must be a number")
            })?,
        };
        if limit > MAX_CHANNEL_MESSAGE_LIMIT {
            return Err(ApiError::field(
                "messages",
                format!("messages.limit must be at most {MAX_CHANNEL_MESSAGE_LIMIT}"),
            ));
        }
        let s = |k: &str| {
            m.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let anchor = if let Some(id) = s("id_around") {
            MessageAnchor::Around(id)
        } else if let Some(id) = s("id_lt") {
            MessageAnchor::Before {
                id,
                inclusive: false,
            }
        } else if let Some(id) = s("id_lte") {
            MessageAnchor::Before {
                id,
                inclusive: true,
            }
        } else if let Some(id) = s("id_gt") {
            MessageAnchor::After {
                id,
                inclusive: false,
            }
        } else if let Some(id) = s("id_gte") {
            MessageAnchor::After {
                id,
                inclusive: true,
            }
        } else {
            MessageAnchor::Latest
        };
        Ok(MessagePage { anchor, limit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn message_ids_follow_the_seed() {
        assert!(validate_message_id("abc-123").is_ok());
        assert!(validate_message_id("a,b").is_err());
        assert!(validate_message_id("a%b").is_err());
        assert!(validate_message_id(&"x".repeat(256)).is_err());
    }

    #[test]
    fn payload_custom_fields_and_types() {
        let m = Message::from_payload(
            &obj(json!({"text": "hi", "color": "red"})),
            "messaging:a",
            Some("ann".into()),
            "gen".into(),
            "t",
        )
        .expect("ok");
        assert_eq!(m.id, "gen");
        assert_eq!(m.kind, "regular");
        assert_eq!(m.custom["color"], "red");
        assert!(Message::from_payload(
            &obj(json!({"type": "deleted"})),
            "c",
            None,
            "g".into(),
            "t"
        )
        .is_err());
        assert!(Message::from_payload(
            &obj(json!({"blob": "x".repeat(6000)})),
            "c",
            None,
            "g".into(),
            "t"
        )
        .is_err());
        let wire = m.to_wire(Some(&json!({"id": "ann"})));
        assert_eq!(wire["user"]["id"], "ann");
        assert_eq!(wire["latest_reactions"], json!([]));
        assert!(wire.get("user_id").is_none());
    }

    #[test]
    fn message_pages() {
        assert_eq!(MessagePage::parse(None).expect("ok").limit, 25);
        let p = MessagePage::parse(Some(&obj(json!({"limit": 10, "id_lt": "m5"})))).expect("ok");
        assert_eq!(
            p.anchor,
            MessageAnchor::Before {
                id: "m5".into(),
                inclusive: false
            }
        );
        assert!(MessagePage::parse(Some(&obj(json!({"limit": 301})))).is_err());
    }
}
