//! Events as Stream sends them (`type`, `created_at`, payload fields), the unit the
//! transactional outbox stores and every delivery path sends.

use crate::domain::clock::format_time;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Stream's event type, e.g. `user.updated`.
    pub kind: String,
    /// What the event is about, e.g. `user:<id>` or a channel cid; orders events per scope.
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub payload: Map<String, Value>,
}

impl Event {
    pub fn new(kind: &str, scope: impl Into<String>, created_at: DateTime<Utc>) -> Self {
        Event {
            kind: kind.to_string(),
            scope: scope.into(),
            created_at,
            payload: Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.payload.insert(key.to_string(), value);
        self
    }

    /// The wire form.
    pub fn to_json(&self) -> Value {
        let mut m = self.payload.clone();
        m.insert("type".into(), Value::String(self.kind.clone()));
        m.insert(
            "created_at".into(),
            Value::String(format_time(self.created_at)),
        );
        Value::Object(m)
    }
}
