//! Custom commands and the custom action handler (`custom_action_handler_url`): a message
//! invoking a custom command is POSTed to the handler (signed like webhooks) with its author,
//! its channel and `form_data` (empty at first, the action's on `POST /messages/{id}/action`).
//! The handler's answered `message` decides: `type: ephemeral` is shown to the author only and
//! kept an hour for its actions; `type: error` is the author's error; any other type is sent to
//! the channel as a regular message (its `text`, `attachments` and custom fields, with
//! `command`). An answer without a message cancels an ephemeral one. Without a handler, or when
//! it fails or does not answer within 5 s, the command answers an error and nothing is sent.

use super::commands::{ephemeral_wire, Preview};
use super::SendMessage;
use crate::domain::caller::Session;
use crate::domain::channel::ChannelView;
use crate::domain::message::Message;
use crate::domain::user::User;
use crate::domain::ApiError;
use crate::service::channel_record::Loaded;
use crate::service::Chat;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// How long the handler has to answer.
const HANDLER_TIMEOUT: Duration = Duration::from_secs(5);

impl Chat {
    /// Calls the handler; its answered message, if any.
    async fn ask_handler(
        &self,
        session: &Session,
        channel: Value,
        user: &User,
        message: Value,
        form_data: Map<String, Value>,
    ) -> Result<Option<Map<String, Value>>, ApiError> {
        let url = session.settings.custom_action_handler_url.as_str();
        if url.is_empty() {
            return Err(ApiError::input(
                "custom commands need a custom action handler: set custom_action_handler_url",
            ));
        }
        let body = json!({
            "type": "custom_command",
            "message": message,
            "user": user.to_json(),
            "channel": channel,
            "form_data": form_data,
        });
        let answer = self
            .handlers
            .call(url, HANDLER_TIMEOUT, body.to_string())
            .await
            .map_err(|e| {
                ApiError::input(format!("the custom action handler failed: {}", e.message()))
            })?;
        Ok(answer.get("message").and_then(Value::as_object).cloned())
    }

    /// `/name args` of a custom command.
    pub(super) async fn custom_command(
        &self,
        session: &Session,
        loaded: &Loaded,
        user: &User,
        message: Message,
        name: &str,
        args: &str,
    ) -> Result<Value, ApiError> {
        let channel = Value::Object(loaded.channel.to_wire(&ChannelView::default()));
        let mut wire = message.to_wire(Some(&user.to_json()));
        wire["command"] = Value::String(name.into());
        wire["args"] = Value::String(args.into());
        let answer = self
            .ask_handler(session, channel, user, wire, Map::new())
            .await?;
        let preview = Preview {
            message,
            command: name.to_string(),
            query: args.to_string(),
            position: 0,
        };
        self.apply_answer(session, user, preview, None, answer)
            .await
    }

    /// `POST /messages/{id}/action` on a custom command's ephemeral message.
    pub(super) async fn custom_action(
        &self,
        session: &Session,
        preview: Preview,
        version: u64,
        user: &User,
        form_data: Map<String, Value>,
    ) -> Result<Value, ApiError> {
        let loaded = self.require_channel(&preview.message.cid).await?;
        let channel = Value::Object(loaded.channel.to_wire(&ChannelView::default()));
        let wire = ephemeral_wire(
            &preview.message,
            &user.to_json(),
            &preview.command,
            &preview.query,
        );
        let answer = self
            .ask_handler(session, channel, user, wire, form_data)
            .await?;
        self.apply_answer(session, user, preview, Some(version), answer)
            .await
    }

    /// What the handler's answer does (see the module).
    async fn apply_answer(
        &self,
        session: &Session,
        user: &User,
        mut preview: Preview,
        version: Option<u64>,
        answer: Option<Map<String, Value>>,
    ) -> Result<Value, ApiError> {
        let id = preview.message.id.clone();
        let Some(answer) = answer else {
            if let Some(v) = version {
                self.forget_preview(&id, v).await?;
            }
            return Ok(json!({}));
        };
        if let Some(Value::String(text)) = answer.get("text") {
            preview.message.text = text.clone();
        }
        if let Some(Value::Array(list)) = answer.get("attachments") {
            preview.message.attachments = list.clone();
        }
        for (k, v) in &answer {
            if !crate::domain::message::is_message_key(k) {
                preview.message.custom.insert(k.clone(), v.clone());
            }
        }
        let (command, args) = (preview.command.clone(), preview.query.clone());
        match answer.get("type").and_then(Value::as_str) {
            Some("error") => {
                let mut wire = ephemeral_wire(&preview.message, &user.to_json(), &command, &args);
                wire["type"] = Value::String("error".into());
                Ok(json!({ "message": wire }))
            }
            Some("ephemeral") => {
                preview.message.kind = "ephemeral".into();
                preview.message.updated_at = self.now_str();
                self.keep_preview(&preview, version).await?;
                Ok(json!({
                    "message": ephemeral_wire(&preview.message, &user.to_json(), &command, &args)
                }))
            }
            _ => {
                let mut message = preview.message.custom.clone();
                message.insert("id".into(), Value::String(id.clone()));
                message.insert("text".into(), Value::String(preview.message.text.clone()));
                message.insert("attachments".into(), json!(preview.message.attachments));
                message.insert("command".into(), Value::String(command));
                message.insert("user_id".into(), Value::String(user.id.clone()));
                if let Some(parent) = &preview.message.parent_id {
                    message.insert("parent_id".into(), Value::String(parent.clone()));
                }
                match version {
                    Some(v) => self.send_preview(session, &preview, v, message).await,
                    None => {
                        let cid = crate::domain::channel::Cid::parse(&preview.message.cid)?;
                        // Sent as is: its text runs no command again.
                        let send = SendMessage {
                            message,
                            command_outcome: true,
                            ..Default::default()
                        };
                        Box::pin(self.send_message(session, &cid.channel_type, &cid.id, send)).await
                    }
                }
            }
        }
    }
}
