//! Threads: a parent message with replies, its participants and their read position, the title
//! and custom data a partial update sets, and the query-threads filter and sort rules.

// Wire names follow stream-chat-js `ThreadResponse`.

use crate::domain::filter::{FieldRules, Op, SortField, ValueKind};
use crate::domain::patch::{set_path, top_field, unset_path};
use crate::domain::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Query threads: default and largest page; replies and participants per thread.
pub const DEFAULT_THREADS_LIMIT: usize = 10;
pub const MAX_THREADS_LIMIT: usize = 25;
pub const DEFAULT_REPLY_LIMIT: usize = 2;
pub const DEFAULT_PARTICIPANT_LIMIT: usize = 100;
pub const MAX_THREAD_SUB_LIMIT: usize = 100;

/// Keys a thread partial update may not touch (the JS client's reserved list plus ids).
const RESERVED: &[&str] = &[
    "id",
    "type",
    "created_at",
    "updated_at",
    "last_message_at",
    "user",
    "reply_count",
    "participants",
    "channel",
    "custom",
    "channel_cid",
    "parent_message_id",
    "parent_message",
    "created_by_user_id",
    "created_by",
    "participant_count",
    "active_participant_count",
    "thread_participants",
    "latest_replies",
    "read",
    "deleted_at",
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    pub parent_message_id: String,
    pub channel_cid: String,
    pub created_by_user_id: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message_at: Option<String>,
    #[serde(default)]
    pub reply_count: u64,
    #[serde(default)]
    pub participant_count: u64,
    #[serde(default)]
    pub title: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub custom: Map<String, Value>,
}

impl Thread {
    /// `set` / `unset` of title and custom data (dotted paths).
    pub fn apply_partial(
        &self,
        set: &Map<String, Value>,
        unset: &[String],
        now: &str,
    ) -> Result<Thread, ApiError> {
        for path in set.keys().chain(unset.iter()) {
            let field = top_field(path);
            if RESERVED.contains(&field) {
                return Err(ApiError::field(
                    field,
                    format!("{field} is reserved and cannot be changed on a thread"),
                ));
            }
        }
        let mut next = self.clone();
        for (path, value) in set {
            if path == "title" {
                next.title = value
                    .as_str()
                    .ok_or_else(|| ApiError::field("title", "title must be a string"))?
                    .to_string();
            } else {
                set_path(&mut next.custom, path, value.clone());
            }
        }
        for path in unset {
            if path == "title" {
                next.title = String::new();
            } else {
                unset_path(&mut next.custom, path);
            }
        }
        next.updated_at = now.to_string();
        Ok(next)
    }

    /// The fields of a response (custom data flattened, as `ThreadResponse` extends it).
    pub fn to_wire(&self) -> Map<String, Value> {
        let mut doc = match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        doc.remove("custom");
        for (k, v) in &self.custom {
            doc.insert(k.clone(), v.clone());
        }
        doc.insert(
            "active_participant_count".into(),
            self.participant_count.into(),
        );
        doc
    }
}

/// One participant of a thread and how far they have read it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThreadParticipant {
    pub user_id: String,
    pub thread_id: String,
    pub channel_cid: String,
    pub created_at: String,
    pub last_read_at: String,
    /// The thread's reply count when they last read it.
    #[serde(default)]
    pub read_reply_count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_thread_message_at: Option<String>,
}

impl ThreadParticipant {
    pub fn unread(&self, thread: &Thread) -> u64 {
        thread.reply_count.saturating_sub(self.read_reply_count)
    }

    pub fn to_wire(&self, user: Option<&Value>) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.remove("read_reply_count");
            if let Some(u) = user {
                m.insert("user".into(), u.clone());
            }
        }
        v
    }
}

/// `POST /threads` filter policy (seed "Supported Filter Fields").
pub fn query_threads_rules() -> FieldRules {
    const TIME: &[Op] = &[Op::Eq, Op::Gt, Op::Gte, Op::Lt, Op::Lte];
    FieldRules::new()
        .typed("channel_cid", ValueKind::String, &[Op::Eq, Op::In])
        .typed("channel.disabled", ValueKind::Bool, &[Op::Eq])
        .typed("channel.team", ValueKind::String, &[Op::Eq, Op::In])
        .typed("parent_message_id", ValueKind::String, &[Op::Eq, Op::In])
        .typed("created_by_user_id", ValueKind::String, &[Op::Eq, Op::In])
        .typed("created_at", ValueKind::Timestamp, TIME)
        .typed("updated_at", ValueKind::Timestamp, TIME)
        .typed("last_message_at", ValueKind::Timestamp, TIME)
}

/// The seed's allowed sort combinations (field order matters; directions are free).
const ALLOWED_SORTS: &[&[&str]] = &[
    &["has_unread", "last_message_at", "parent_message_id"],
    &["last_message_at", "parent_message_id"],
    &["created_at"],
    &["updated_at"],
    &["reply_count"],
    &["participant_count"],
    &["active_participant_count"],
    &["parent_message_id"],
];

/// The sort to use: the given one if it is an allowed combination, or the default
/// `has_unread, last_message_at, parent_message_id` (all descending).
pub fn thread_sort(given: Vec<SortField>) -> Result<Vec<SortField>, ApiError> {
    if given.is_empty() {
        return Ok(vec![
            SortField::new("has_unread", -1),
            SortField::new("last_message_at", -1),
            SortField::new("parent_message_id", -1),
        ]);
    }
    let fields: Vec<&str> = given.iter().map(|s| s.field.as_str()).collect();
    if !ALLOWED_SORTS.contains(&fields.as_slice()) {
        return Err(ApiError::field(
            "sort",
            format!(
                "threads cannot be sorted by {}; see the allowed sort combinations",
                fields.join(", ")
            ),
        ));
    }
    Ok(given)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn thread() -> Thread {
        Thread {
            parent_message_id: "p".into(),
            channel_cid: "messaging:a".into(),
            created_by_user_id: "ann".into(),
            created_at: "t".into(),
            updated_at: "t".into(),
            last_message_at: None,
            reply_count: 3,
            participant_count: 2,
            title: String::new(),
            custom: Map::new(),
        }
    }

    #[test]
    fn partial_update_sets_title_and_custom_data() {
        let set = json!({"title": "T", "extra.a": 1})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let t = thread().apply_partial(&set, &[], "t2").expect("ok");
        assert_eq!(t.title, "T");
        assert_eq!(t.custom["extra"]["a"], 1);
        let wire = t.to_wire();
        assert_eq!(wire["extra"]["a"], 1);
        assert!(wire.get("custom").is_none());
        let bad = json!({"reply_count": 1})
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert!(thread().apply_partial(&bad, &[], "t").is_err());
    }

    #[test]
    fn sorts_follow_the_allowed_combinations() {
        assert_eq!(
            thread_sort(Vec::new()).expect("default")[0].field,
            "has_unread"
        );
        assert!(thread_sort(vec![SortField::new("created_at", -1)]).is_ok());
        assert!(thread_sort(vec![
            SortField::new("last_message_at", -1),
            SortField::new("parent_message_id", 1)
        ])
        .is_ok());
        assert!(thread_sort(vec![
            SortField::new("created_at", -1),
            SortField::new("reply_count", 1)
        ])
        .is_err());
    }
}
