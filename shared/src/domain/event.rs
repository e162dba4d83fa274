//! Events as Stream sends them (`type`, `created_at`, payload fields), the unit the
//! transactional outbox stores and every delivery path sends.

use crate::domain::clock::format_time;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// What an event is about, which decides who hears it: a channel (its watchers) or a user (their
/// connections). Stored as the outbox item's partition key: the cid, or `user:<id>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope<'a> {
    Channel(&'a str),
    User(&'a str),
}

impl<'a> Scope<'a> {
    /// The scope a stored key names.
    pub fn parse(key: &'a str) -> Scope<'a> {
        match key.strip_prefix(USER_SCOPE_PREFIX) {
            Some(user) => Scope::User(user),
            None => Scope::Channel(key),
        }
    }

    pub fn is_channel(self) -> bool {
        matches!(self, Scope::Channel(_))
    }
}

const USER_SCOPE_PREFIX: &str = "user:";

/// The stored key of a user's scope.
pub fn user_scope(user_id: &str) -> String {
    format!("{USER_SCOPE_PREFIX}{user_id}")
}

/// Marks an outbox event that must not push (`skip_push`); taken off before the event reaches
/// a socket or a hook.
pub const SKIP_PUSH: &str = "skip_push";

/// Marks an outbox event the hooks must not hear (a campaign's `skip_webhook`); taken off
/// before the event reaches a socket.
pub const SKIP_HOOKS: &str = "skip_webhook";

/// Takes the delivery markers ([`SKIP_PUSH`], [`SKIP_HOOKS`]) off an event before it goes out.
pub fn strip_markers(event: &mut Value) {
    if let Some(m) = event.as_object_mut() {
        m.remove(SKIP_PUSH);
        m.remove(SKIP_HOOKS);
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Stream's event type, e.g. `user.updated`.
    pub kind: String,
    /// What the event is about (a [`Scope`]'s key: `user:<id>` or a channel cid); orders events
    /// per scope.
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
