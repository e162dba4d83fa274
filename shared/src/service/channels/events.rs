//! Typing and custom events a client sends to a channel.

use super::*;
use crate::domain::caller::Session;
use crate::domain::ApiError;
use crate::service::Chat;
use crate::store::layout::outbox_write;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Body of `POST /channels/{type}/{id}/event`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct SendEvent {
    pub event: Map<String, Value>,
}

/// Event types a client may send itself; any other name is a custom event.
const TYPING_EVENTS: &[&str] = &["typing.start", "typing.stop"];

impl Chat {
    /// `POST /channels/{type}/{id}/event`: typing events (the type's `typing_events`, the user's
    /// typing privacy) and custom events (the type's `custom_events`, `SendCustomEvent`), sent to
    /// the channel's watchers.
    pub async fn send_channel_event(
        &self,
        session: &Session,
        channel_type: &str,
        id: &str,
        req: SendEvent,
    ) -> Result<Value, ApiError> {
        let (_, config, loaded) = self.readable_channel(session, channel_type, id).await?;
        let kind = req
            .event
            .get("type")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::field("event.type", "event.type is required"))?
            .to_string();
        let actor = acting_user(
            session,
            &req.event
                .get("user_id")
                .and_then(Value::as_str)
                .map(str::to_string),
            &req.event.get("user").and_then(Value::as_object).cloned(),
        )
        .ok_or_else(|| {
            ApiError::field(
                "event.user",
                "event.user_id is required with server-side authentication",
            )
        })?;
        let effective = loaded.channel.effective_config(&config, &[])?;
        let (user, _) = self
            .get_user(&actor)
            .await?
            .ok_or_else(|| ApiError::input(format!("user {actor:?} does not exist")))?;
        if TYPING_EVENTS.contains(&kind.as_str()) {
            if !effective.typing_events {
                return Err(ApiError::input(
                    "typing events are disabled for this channel",
                ));
            }
            // As the `send-typing-events` capability: whoever may send messages may type.
            self.check_channel_action(
                session,
                &config,
                Some(&loaded),
                &loaded.channel,
                "CreateMessage",
            )?;
        } else {
            if crate::domain::event_kind::is_server_event(&kind) {
                return Err(ApiError::field(
                    "event.type",
                    format!("{kind} is an event only the server sends"),
                ));
            }
            if !effective.custom_events {
                return Err(ApiError::input(
                    "custom events are disabled for this channel",
                ));
            }
            self.check_channel_action(
                session,
                &config,
                Some(&loaded),
                &loaded.channel,
                "SendCustomEvent",
            )?;
        }
        let mut event =
            channel_event(&kind, &loaded.channel, self.now()).with("user", user.to_json());
        for (k, v) in &req.event {
            if !matches!(
                k.as_str(),
                "type" | "user" | "user_id" | "cid" | "channel_id" | "channel_type" | "created_at"
            ) {
                event = event.with(k, v.clone());
            }
        }
        // Typing stays private for users who turned typing indicators off.
        let private_typing = TYPING_EVENTS.contains(&kind.as_str())
            && user
                .privacy_settings
                .as_ref()
                .and_then(|p| p.get("typing_indicators"))
                .and_then(|t| t.get("enabled"))
                .and_then(Value::as_bool)
                == Some(false);
        if !private_typing {
            self.store.write(outbox_write(&event)).await?;
        }
        Ok(json!({ "event": event.to_json() }))
    }
}
