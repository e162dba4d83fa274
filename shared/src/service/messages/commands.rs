//! Slash commands: a message whose text invokes a command its channel type enables
//! (`/giphy cat`, `/ban @bob spam`) runs it instead of being sent. `/giphy` answers an
//! ephemeral message (seen by its author only, kept an hour under its own key, never in the
//! channel's history) with a GIF and `send` / `shuffle` / `cancel` actions, taken through
//! `POST /messages/{id}/action`; `send` posts it as a regular message. The moderation commands
//! (`ban`, `unban`, `mute`, `unmute`, `flag`) call the moderation use cases as the author, with
//! their permission checks, and answer an ephemeral confirmation. Custom commands go to the
//! app's custom action handler (`custom_commands`).

use super::SendMessage;
use crate::domain::ban::BanRequest;
use crate::domain::caller::Session;
use crate::domain::command::target_and_reason;
use crate::domain::flag::FlagRequest;
use crate::domain::message::Message;
use crate::domain::user::User;
use crate::domain::ApiError;
use crate::service::channel_record::Loaded;
use crate::service::muting::MuteRequest;
use crate::service::{acting_user, decode, Chat};
use crate::store::{Condition, Item, StoreError, TableName, Write};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// How long a `/giphy` preview can be acted on.
const EPHEMERAL_TTL_SECS: i64 = 3600;

/// An ephemeral message its author can act on: a `/giphy` preview (its search and which
/// result it shows) or a custom command's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Preview {
    pub message: Message,
    #[serde(default = "giphy")]
    pub command: String,
    /// The command's arguments (`/giphy`: the search).
    pub query: String,
    #[serde(default)]
    pub position: u32,
}

fn giphy() -> String {
    "giphy".into()
}

pub(super) fn preview_key(id: &str) -> (String, String) {
    (format!("ephemeral#{id}"), "message".into())
}

impl Chat {
    /// A message by id, or the author's ephemeral command preview of that id.
    pub(crate) async fn message_or_preview(&self, id: &str) -> Result<Option<Message>, ApiError> {
        if let Some(stored) = self.find_message(id).await? {
            return Ok(Some(stored.message));
        }
        let (pk, sk) = preview_key(id);
        match self.store.get(TableName::Messages, &pk, &sk).await? {
            Some(item) => Ok(Some(
                decode::<Preview>(item.data, "command preview")?.message,
            )),
            None => Ok(None),
        }
    }
}

/// The actions of a `/giphy` preview (stream-chat-js `Action`).
fn giphy_actions() -> Value {
    json!([
        {"name": "image_action", "text": "Send", "style": "primary", "type": "button", "value": "send"},
        {"name": "image_action", "text": "Shuffle", "style": "default", "type": "button", "value": "shuffle"},
        {"name": "image_action", "text": "Cancel", "style": "default", "type": "button", "value": "cancel"}
    ])
}

/// The response shape of an ephemeral message of `command`.
pub(super) fn ephemeral_wire(message: &Message, user: &Value, command: &str, args: &str) -> Value {
    let mut wire = message.to_wire(Some(user));
    wire["type"] = Value::String("ephemeral".into());
    wire["command"] = Value::String(command.into());
    wire["args"] = Value::String(args.into());
    wire
}

/// Body of `POST /messages/{id}/action`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct MessageAction {
    pub form_data: Map<String, Value>,
    pub user_id: Option<String>,
    pub user: Option<Map<String, Value>>,
}

impl Chat {
    /// Runs command `name` that `message` (not stored) invokes in `loaded`'s channel.
    pub(super) async fn run_command(
        &self,
        session: &Session,
        loaded: &Loaded,
        user: &User,
        message: Message,
        name: &str,
        args: &str,
    ) -> Result<Value, ApiError> {
        // A command whose message is kept or sent takes its id as any send does: a taken one
        // is refused (moderation commands keep nothing).
        let (pk, sk) = preview_key(&message.id);
        let keeps_id = !matches!(name, "ban" | "unban" | "mute" | "unmute" | "flag" | "imgur");
        if keeps_id
            && (self.find_message(&message.id).await?.is_some()
                || self
                    .store
                    .get(TableName::Messages, &pk, &sk)
                    .await?
                    .is_some())
        {
            return Err(ApiError::input(format!(
                "a message with id {} already exists",
                message.id
            )));
        }
        match name {
            "giphy" => self.giphy_preview(user, message, args).await,
            "ban" | "unban" | "mute" | "unmute" | "flag" => {
                self.moderation_command(session, loaded, user, message, name, args)
                    .await
            }
            "imgur" => Err(ApiError::input(
                "the imgur command is no longer available; use /giphy",
            )),
            custom => {
                self.custom_command(session, loaded, user, message, custom, args)
                    .await
            }
        }
    }

    async fn giphy_preview(
        &self,
        user: &User,
        mut message: Message,
        query: &str,
    ) -> Result<Value, ApiError> {
        if query.is_empty() {
            return Err(ApiError::input(
                "/giphy needs something to search for: /giphy cats",
            ));
        }
        let gif = self.find_gif(query, 0).await?;
        message.kind = "ephemeral".into();
        message.attachments = vec![with_actions(gif.attachment(query))];
        let preview = Preview {
            message,
            command: giphy(),
            query: query.to_string(),
            position: 0,
        };
        self.keep_preview(&preview, None).await?;
        Ok(json!({
            "message": ephemeral_wire(&preview.message, &user.to_json(), "giphy", query)
        }))
    }

    async fn find_gif(&self, query: &str, position: u32) -> Result<crate::gifs::Gif, ApiError> {
        self.gifs
            .find(query, position)
            .await
            .map_err(|e| ApiError::input(e.to_string()))?
            .ok_or_else(|| ApiError::input(format!("no GIF found for {query:?}")))
    }

    /// Stores a preview: new (`version` none) or replacing the one read at `version`.
    pub(super) async fn keep_preview(
        &self,
        preview: &Preview,
        version: Option<u64>,
    ) -> Result<(), ApiError> {
        let (pk, sk) = preview_key(&preview.message.id);
        let data = serde_json::to_value(preview).map_err(|e| ApiError::internal(e.to_string()))?;
        let mut item = Item::new(pk, sk, data);
        item.ttl = Some(self.now().timestamp() + EPHEMERAL_TTL_SECS);
        item.version = version.map_or(1, |v| v + 1);
        let condition = match version {
            None => Condition::NotExists,
            Some(v) => Condition::Version(v),
        };
        match self
            .store
            .write(Write::Put {
                table: TableName::Messages,
                item,
                condition,
            })
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::ConditionFailed) => Err(ApiError::input(
                "this message was changed meanwhile; try again",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// `POST /messages/{id}/action`: `image_action` `send`, `shuffle` or `cancel` on the
    /// author's `/giphy` preview.
    pub async fn message_action(
        &self,
        session: &Session,
        id: &str,
        req: MessageAction,
    ) -> Result<Value, ApiError> {
        let (pk, sk) = preview_key(id);
        let item = self
            .store
            .get(TableName::Messages, &pk, &sk)
            .await?
            .filter(|i| i.ttl.is_none_or(|t| t > self.now().timestamp()))
            .ok_or_else(|| ApiError::not_found(format!("message {id} does not exist")))?;
        let version = item.version;
        let mut preview: Preview = decode(item.data, "message")?;
        let actor = acting_user(session, &req.user_id, &req.user).ok_or_else(|| {
            ApiError::field(
                "user_id",
                "user_id is required with server-side authentication",
            )
        })?;
        if preview.message.user_id.as_deref() != Some(actor.as_str()) {
            return Err(ApiError::not_allowed(format!(
                "only the author of message {id} can act on it"
            )));
        }
        let user = user_of(self, &actor).await?;
        if preview.command != "giphy" {
            return self
                .custom_action(session, preview, version, &user, req.form_data)
                .await;
        }
        let action = req
            .form_data
            .get("image_action")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match action {
            "shuffle" => {
                preview.position += 1;
                let gif = self.find_gif(&preview.query, preview.position).await?;
                preview.message.attachments = vec![with_actions(gif.attachment(&preview.query))];
                preview.message.updated_at = self.now_str();
                self.keep_preview(&preview, Some(version)).await?;
                Ok(json!({
                    "message": ephemeral_wire(&preview.message, &user.to_json(), "giphy", &preview.query)
                }))
            }
            "send" => {
                let mut attachment = preview
                    .message
                    .attachments
                    .first()
                    .cloned()
                    .unwrap_or_default();
                if let Value::Object(a) = &mut attachment {
                    a.remove("actions");
                }
                let mut message = Map::new();
                message.insert("id".into(), Value::String(id.to_string()));
                message.insert("text".into(), Value::String(String::new()));
                message.insert("attachments".into(), json!([attachment]));
                message.insert("command".into(), Value::String("giphy".into()));
                message.insert("user_id".into(), Value::String(actor.clone()));
                if let Some(parent) = &preview.message.parent_id {
                    message.insert("parent_id".into(), Value::String(parent.clone()));
                }
                self.send_preview(session, &preview, version, message).await
            }
            "cancel" => {
                self.forget_preview(id, version).await?;
                Ok(json!({}))
            }
            other => Err(ApiError::field(
                "form_data",
                format!("image_action must be send, shuffle or cancel, got {other:?}"),
            )),
        }
    }

    /// Sends a preview's outcome to its channel as a regular message, then forgets the preview
    /// (a refused send leaves it to act on again; a second send finds its id taken).
    pub(super) async fn send_preview(
        &self,
        session: &Session,
        preview: &Preview,
        version: u64,
        message: Map<String, Value>,
    ) -> Result<Value, ApiError> {
        let cid = crate::domain::channel::Cid::parse(&preview.message.cid)?;
        let send = SendMessage {
            message,
            command_outcome: true,
            ..Default::default()
        };
        let sent = Box::pin(self.send_message(session, &cid.channel_type, &cid.id, send)).await?;
        match self.forget_preview(&preview.message.id, version).await {
            // Acted on meanwhile: the message is sent all the same.
            Ok(()) | Err(_) => Ok(sent),
        }
    }

    pub(super) async fn forget_preview(&self, id: &str, version: u64) -> Result<(), ApiError> {
        let (pk, sk) = preview_key(id);
        match self
            .store
            .write(Write::Delete {
                table: TableName::Messages,
                pk,
                sk,
                condition: Condition::Version(version),
            })
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::ConditionFailed) => Err(ApiError::input(
                "this message was changed meanwhile; try again",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// `/ban @user reason`, `/unban @user`, `/mute @user`, `/unmute @user`, `/flag @user
    /// reason`, as the author: channel bans in this channel, mutes and flags of the user.
    async fn moderation_command(
        &self,
        session: &Session,
        loaded: &Loaded,
        user: &User,
        message: Message,
        name: &str,
        args: &str,
    ) -> Result<Value, ApiError> {
        let (target, reason) = target_and_reason(args)
            .ok_or_else(|| ApiError::input(format!("/{name} needs a user: /{name} @user")))?;
        let author = user.id.as_str();
        let channel = &loaded.channel;
        let reason = (!reason.is_empty()).then_some(reason);
        let done = match name {
            "ban" => {
                let req: BanRequest = parse(
                    json!({"target_user_id": target, "type": channel.channel_type,
                    "id": channel.id, "reason": reason, "banned_by_id": author}),
                )?;
                self.ban_user(session, req).await?;
                format!("{target} was banned from this channel")
            }
            "unban" => {
                let req: BanRequest = parse(
                    json!({"target_user_id": target, "type": channel.channel_type,
                    "id": channel.id, "user_id": author}),
                )?;
                self.unban_user(session, req).await?;
                format!("{target} was unbanned")
            }
            "mute" | "unmute" => {
                let req: MuteRequest = parse(json!({"target_id": target, "user_id": author}))?;
                self.mute_users(session, req, name == "mute").await?;
                format!("{target} was {name}d")
            }
            _ => {
                let req: FlagRequest =
                    parse(json!({"target_user_id": target, "reason": reason, "user_id": author}))?;
                self.flag(session, req, true).await?;
                format!("{target} was flagged")
            }
        };
        let mut reply = message;
        reply.text = done;
        Ok(json!({ "message": ephemeral_wire(&reply, &user.to_json(), name, args) }))
    }
}

async fn user_of(chat: &Chat, id: &str) -> Result<User, ApiError> {
    chat.get_user(id)
        .await?
        .map(|(u, _)| u)
        .ok_or_else(|| ApiError::input(format!("user {id:?} does not exist")))
}

/// A use case's request built from a command's fields.
fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ApiError> {
    serde_json::from_value(v).map_err(|e| ApiError::input(e.to_string()))
}

fn with_actions(mut attachment: Value) -> Value {
    attachment["actions"] = giphy_actions();
    attachment
}
