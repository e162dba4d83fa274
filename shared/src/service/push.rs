//! `POST /check_push` (server-side): what a push for a message would carry to a user, rendered
//! as Stream's standard data payload (`rendered_message`), sent to each of the user's devices
//! (once, through its provider) with what went wrong per device in `device_errors`;
//! `skip_devices` renders without sending.

use crate::domain::caller::Session;
use crate::domain::device::PushService;
use crate::domain::ApiError;
use crate::service::Chat;
use crate::store::layout::memberships_pk;
use crate::store::{Index, Query, TableName};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The events Stream renders pushes for.
const PUSH_EVENTS: &[&str] = &[
    "message.new",
    "message.updated",
    "reaction.new",
    "reaction.updated",
    "notification.reminder_due",
];

/// Body of `POST /check_push`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CheckPush {
    pub message_id: Option<String>,
    pub apn_template: Option<String>,
    pub firebase_template: Option<String>,
    pub firebase_data_template: Option<String>,
    pub skip_devices: Option<bool>,
    pub push_provider_type: Option<String>,
    pub push_provider_name: Option<String>,
    pub event_type: Option<String>,
    pub user_id: Option<String>,
    pub user: Option<Map<String, Value>>,
}

impl Chat {
    /// `POST /check_push`.
    pub async fn check_push(&self, session: &Session, req: CheckPush) -> Result<Value, ApiError> {
        session.caller.require_server("checking push settings")?;
        let user_id = req
            .user_id
            .clone()
            .or_else(|| {
                req.user
                    .as_ref()
                    .and_then(|u| u.get("id"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .filter(|u| !u.is_empty())
            .ok_or_else(|| ApiError::field("user_id", "user_id is required"))?;
        if self.get_user(&user_id).await?.is_none() {
            return Err(ApiError::not_found(format!(
                "user {user_id:?} does not exist"
            )));
        }
        let event_type = req
            .event_type
            .clone()
            .unwrap_or_else(|| "message.new".into());
        if !PUSH_EVENTS.contains(&event_type.as_str()) {
            return Err(ApiError::field(
                "event_type",
                format!("event_type must be one of {}", PUSH_EVENTS.join(", ")),
            ));
        }
        let service = req
            .push_provider_type
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(PushService::parse)
            .transpose()?;
        if [
            &req.apn_template,
            &req.firebase_template,
            &req.firebase_data_template,
        ]
        .iter()
        .any(|t| t.as_deref().is_some_and(|t| !t.is_empty()))
        {
            return Err(ApiError::input(
                "push templates are not supported yet: check_push renders Stream's standard payload",
            ));
        }
        let message = match req.message_id.as_deref().filter(|m| !m.is_empty()) {
            Some(id) => self
                .message_or_preview(id)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("message {id:?} does not exist")))?,
            None => self.a_message_for(&user_id).await?,
        };
        let sender = match message.user_id.as_deref() {
            Some(id) => self.get_user(id).await?.map(|(u, _)| u.to_json()),
            None => None,
        };
        let wire = json!({
            "id": message.id, "cid": message.cid, "text": message.text,
            "user": sender.unwrap_or_else(|| json!({})),
        });
        let muted = self.muted_cids(&user_id).await?;
        let badge: u64 = self
            .channel_unreads(&user_id, &muted, None)
            .await?
            .iter()
            .map(|c| c.unread)
            .sum();
        let push = crate::push::payload::Push::of_message(&event_type, &wire, &user_id, badge);
        let skip_devices = req.skip_devices.unwrap_or(false);
        let mut reply = json!({
            "rendered_message": push.data(),
            "skip_devices": skip_devices,
            "event_type": event_type,
            "general_errors": [],
            "device_errors": {},
        });
        if !skip_devices {
            let devices: Vec<_> = self
                .user_devices(&user_id)
                .await?
                .into_iter()
                .filter(|d| service.is_none_or(|s| d.push_provider == s))
                .filter(|d| {
                    req.push_provider_name
                        .as_deref()
                        .is_none_or(|n| n.is_empty() || d.push_provider_name.as_deref() == Some(n))
                })
                .collect();
            if devices.is_empty() {
                reply["general_errors"] = json!([format!("user {user_id:?} has no devices")]);
            }
            let settings = self.app_settings().await?;
            let providers = self.push_settings(&settings).await?;
            // One attempt: the caller sees at once what the service said.
            let mut pushes = crate::push::Pushes::new().with_retry(crate::push::Retry {
                attempts: 1,
                first_backoff: std::time::Duration::ZERO,
            });
            if let Some(sns) = crate::push::sns::from_env().await? {
                pushes = pushes.with_sns(sns);
            }
            for d in devices {
                let error =
                    match providers.for_device(d.push_provider, d.push_provider_name.as_deref()) {
                        None => Some(format!(
                            "no enabled push provider of type {} is configured",
                            d.push_provider.as_str()
                        )),
                        Some(provider) => match pushes.deliver(self, provider, &d, &push).await {
                            crate::push::send::Outcome::Delivered => None,
                            crate::push::send::Outcome::InvalidToken(why) => {
                                self.drop_invalid_device(&user_id, &d.id).await?;
                                Some(format!("{why} (the device was removed)"))
                            }
                            crate::push::send::Outcome::Retry(why)
                            | crate::push::send::Outcome::Failed(why) => Some(why),
                        },
                    };
                if let Some(error_message) = error {
                    reply["device_errors"][d.id.as_str()] = json!({
                        "provider": d.push_provider.as_str(),
                        "provider_name": d.push_provider_name.clone().unwrap_or_default(),
                        "error_message": error_message,
                    });
                }
            }
        }
        Ok(reply)
    }

    /// The latest message of one of the user's channels (check_push without a message).
    async fn a_message_for(
        &self,
        user_id: &str,
    ) -> Result<crate::domain::message::Message, ApiError> {
        let page = self
            .store
            .query(
                Query::new(TableName::Channels, memberships_pk(user_id))
                    .index(Index::Gsi1)
                    .limit(50),
            )
            .await?;
        for item in page.items {
            let Some(cid) = item.gsi1.as_ref().map(|k| k.sk.clone()) else {
                continue;
            };
            let Some(loaded) = self.load_channel(&cid).await? else {
                continue;
            };
            if let Some(id) = &loaded.channel.last_message_id {
                if let Some(stored) = self.find_message(id).await? {
                    return Ok(stored.message);
                }
            }
        }
        Err(ApiError::input(format!(
            "user {user_id:?} has no channel with a message: give message_id"
        )))
    }
}
