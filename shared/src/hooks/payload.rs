//! The body a hook receives for an outbox event: the event as connections get it, without
//! per-recipient fields, and for `message.new` the channel's members when it was sent and its
//! watcher count when it is handed off (as Stream's webhooks carry them, so a backend can
//! notify offline members without a read).

use crate::domain::channel::Member;
use crate::domain::event::Scope;
use crate::domain::ApiError;
use crate::service::Chat;
use serde_json::{json, Value};

/// Members a `message.new` hook body lists at most.
const MAX_PAYLOAD_MEMBERS: usize = 100;

impl Chat {
    /// The hook body of the event stored under `scope`.
    pub async fn hook_payload(&self, scope: &str, event: &Value) -> Result<Value, ApiError> {
        // A pending message's callback body (seed "Pending Messages": `message` and `metadata`).
        if event["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("pending_message."))
        {
            return Ok(json!({ "message": event["message"], "metadata": event["metadata"] }));
        }
        let mut body = event.clone();
        crate::domain::event::strip_markers(&mut body);
        if event["type"] != "message.new" || !Scope::parse(scope).is_channel() {
            return Ok(body);
        }
        let Some(loaded) = self.load_channel(scope).await? else {
            return Ok(body);
        };
        // The members when the message was sent: those who joined since are left out (members
        // removed since are gone from the store and cannot be listed).
        let sent_at = event["created_at"].as_str().unwrap_or_default();
        let mut members: Vec<&Member> = loaded
            .members
            .iter()
            .filter(|m| sent_at.is_empty() || m.created_at.as_str() <= sent_at)
            .collect();
        members.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then(a.user_id.cmp(&b.user_id))
        });
        members.truncate(MAX_PAYLOAD_MEMBERS);
        let ids: Vec<&str> = members.iter().map(|m| m.user_id.as_str()).collect();
        let users = self.users_by_id(&ids).await?;
        let creator = loaded.channel.created_by_id.as_deref();
        let list: Vec<Value> = members
            .iter()
            .map(|m| {
                let user = crate::service::users::shown(&users, &m.user_id);
                Value::Object(m.to_wire(Some(&user), creator))
            })
            .collect();
        body["members"] = Value::Array(list);
        body["watcher_count"] = self.channel_watchers(scope).await?.len().into();
        Ok(body)
    }
}
