//! The before-send hook (`before_message_send_hook_url`): a new message is POSTed to the app's
//! handler (signed like webhooks: `X-Signature`, `X-Api-Key`) with its author, its channel and
//! `request_info`, before it is stored or seen by anyone. The handler may answer the message
//! changed (its `text`, `attachments` and custom fields are taken), rejected (`type: error`:
//! the author is answered with that error message and nothing is stored), or nothing (`{}` or
//! an empty body: sent as it is). Like Stream, the hook fails open: a handler that errs or does
//! not answer in time (`before_message_send_hook_attempt_timeout_ms`, 1.5 s by default) lets the
//! message through unchanged.

use crate::domain::caller::Session;
use crate::domain::channel::{Channel, ChannelView};
use crate::domain::message::Message;
use crate::domain::user::User;
use crate::domain::ApiError;
use crate::service::Chat;
use serde_json::{json, Value};
use std::time::Duration;

/// How long the handler has to answer unless the app says (Stream's default per attempt).
const DEFAULT_TIMEOUT_MS: u64 = 1500;

/// What the handler decided.
pub(super) enum Verdict {
    Unchanged,
    Changed(Box<Message>),
    /// The error message the author is answered with.
    Rejected(Value),
}

/// `before_message_send_hook_attempt_timeout_ms`, or the default.
fn timeout(session: &Session) -> Duration {
    match session.settings.before_message_send_hook_attempt_timeout_ms {
        ms @ 1..=5000 => Duration::from_millis(ms as u64),
        _ => Duration::from_millis(DEFAULT_TIMEOUT_MS),
    }
}

impl Chat {
    pub(super) async fn before_send(
        &self,
        session: &Session,
        channel: &Channel,
        user: &User,
        message: &Message,
    ) -> Result<Verdict, ApiError> {
        let url = session.settings.before_message_send_hook_url.as_str();
        if url.is_empty() {
            return Ok(Verdict::Unchanged);
        }
        let user_json = user.to_json();
        let wire = message.to_wire(Some(&user_json));
        let body = json!({
            "message": wire,
            "user": user_json,
            "channel": channel.to_wire(&ChannelView::default()),
            "request_info": {
                "type": if session.caller.is_server() { "server" } else { "client" },
            },
        });
        let answer = match self
            .handlers
            .call(url, timeout(session), body.to_string())
            .await
        {
            Ok(answer) => answer,
            Err(e) => {
                tracing::warn!(
                    message = %message.id,
                    error = %e.message(),
                    "before-send hook failed; the message goes through unchanged"
                );
                return Ok(Verdict::Unchanged);
            }
        };
        let Some(changed) = answer.get("message").and_then(Value::as_object) else {
            return Ok(Verdict::Unchanged);
        };
        if changed.get("type").and_then(Value::as_str) == Some("error") {
            let mut refused = wire;
            refused["type"] = Value::String("error".into());
            if let Some(text) = changed.get("text").and_then(Value::as_str) {
                refused["text"] = Value::String(text.to_string());
            }
            return Ok(Verdict::Rejected(refused));
        }
        // Only the text, the attachments and custom fields may change.
        let mut next = message.clone();
        for (key, value) in changed {
            match (key.as_str(), value) {
                ("text", Value::String(text)) => next.text = text.clone(),
                ("attachments", Value::Array(list)) => next.attachments = list.clone(),
                _ if !crate::domain::message::is_message_key(key) => {
                    next.custom.insert(key.clone(), value.clone());
                }
                _ => {}
            }
        }
        Ok(if next == *message {
            Verdict::Unchanged
        } else {
            Verdict::Changed(Box::new(next))
        })
    }
}
