//! Pushes through Amazon SNS mobile push (the deployment's choice, `PUSH_DELIVERY=sns`): a
//! platform application per provider (FCM: `GCM` with the service account; APNs: `APNS` or
//! `APNS_SANDBOX` with the signing key, its key id, team id and bundle id), made on first use and
//! updated when the provider's credentials change; a platform endpoint per device token, kept on
//! the device; one `Publish` per push with each platform's message. An endpoint SNS reports
//! disabled (the platform refused the token) removes its device, as the direct senders do.

use super::payload::Push;
use super::send::Outcome;
use crate::domain::device::Device;
use crate::domain::push_provider::PushProvider;
use crate::domain::ApiError;
use crate::service::Chat;
use crate::store::layout::devices_pk;
use crate::store::{Condition, Item, StoreError, TableName, Write};
use aws_sdk_sns::error::ProvideErrorMetadata;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Where the platform applications made for the providers are recorded (app table; sort key
/// `<type>:<name>`).
const APPLICATIONS_PK: &str = "push_sns_applications";

/// The SNS side of the push senders.
pub struct SnsPush {
    client: aws_sdk_sns::Client,
    /// Platform application ARNs by provider fingerprint, once known.
    applications: std::sync::Mutex<HashMap<String, String>>,
}

fn platform(p: &PushProvider) -> Option<(&'static str, HashMap<String, String>)> {
    let mut attrs = HashMap::new();
    match p.kind.as_str() {
        "firebase" => {
            attrs.insert("PlatformCredential".into(), p.firebase_credentials.clone());
            Some(("GCM", attrs))
        }
        "apn" => {
            attrs.insert("PlatformCredential".into(), p.apn_auth_key.clone());
            attrs.insert("PlatformPrincipal".into(), p.apn_key_id.clone());
            attrs.insert("ApplePlatformTeamID".into(), p.apn_team_id.clone());
            attrs.insert("ApplePlatformBundleID".into(), p.apn_topic.clone());
            Some((
                if p.apn_development {
                    "APNS_SANDBOX"
                } else {
                    "APNS"
                },
                attrs,
            ))
        }
        _ => None,
    }
}

/// What identifies a provider's application: its type, name, platform and credentials.
fn fingerprint(p: &PushProvider, platform: &str, attrs: &HashMap<String, String>) -> String {
    let mut sorted: Vec<_> = attrs.iter().collect();
    sorted.sort();
    let mut h = Sha256::new();
    h.update(format!("{}\n{}\n{platform}\n", p.kind, p.name));
    for (k, v) in sorted {
        h.update(format!("{k}={v}\n"));
    }
    hex::encode(h.finalize())
}

/// The `Publish` message: each platform's body, and a default.
pub fn message(push: &Push) -> Value {
    let apns = push.apns().to_string();
    json!({
        "default": format!("New message from {}", push.sender_name),
        "GCM": json!({ "fcmV1Message": { "message": push.fcm() } }).to_string(),
        "APNS": apns,
        "APNS_SANDBOX": apns,
    })
}

fn classify(operation: &str, code: Option<&str>, text: String) -> Outcome {
    let said = format!("SNS {operation}: {text}");
    match code {
        Some("EndpointDisabled" | "EndpointDisabledException") => Outcome::InvalidToken(said),
        Some("Throttling" | "ThrottledException" | "InternalError" | "InternalErrorException")
        | None => Outcome::Retry(said),
        _ => Outcome::Failed(said),
    }
}

impl SnsPush {
    pub fn new(client: aws_sdk_sns::Client) -> Self {
        SnsPush {
            client,
            applications: Default::default(),
        }
    }

    /// The platform application of a provider: recorded, updated when its credentials
    /// changed, or made.
    async fn application(&self, chat: &Chat, p: &PushProvider) -> Result<String, Outcome> {
        let (platform, attrs) = platform(p)
            .ok_or_else(|| Outcome::Failed(format!("no SNS platform for {}", p.kind)))?;
        let print = fingerprint(p, platform, &attrs);
        if let Some(arn) = self
            .applications
            .lock()
            .ok()
            .and_then(|m| m.get(&print).cloned())
        {
            return Ok(arn);
        }
        let sk = format!("{}:{}", p.kind, p.name);
        let store_error = |e: StoreError| Outcome::Retry(format!("store: {e}"));
        let recorded = chat
            .store
            .get(TableName::App, APPLICATIONS_PK, &sk)
            .await
            .map_err(store_error)?;
        let arn = match recorded {
            Some(item) if item.data["fingerprint"] == print.as_str() => {
                item.data["arn"].as_str().unwrap_or_default().to_string()
            }
            Some(item) if item.data["platform"] == platform => {
                let arn = item.data["arn"].as_str().unwrap_or_default().to_string();
                self.client
                    .set_platform_application_attributes()
                    .platform_application_arn(&arn)
                    .set_attributes(Some(attrs))
                    .send()
                    .await
                    .map_err(|e| {
                        classify("SetPlatformApplicationAttributes", e.code(), e.to_string())
                    })?;
                arn
            }
            _ => {
                let name: String = format!(
                    "chat-{}-{}",
                    p.kind,
                    if p.name.is_empty() {
                        "default"
                    } else {
                        &p.name
                    }
                )
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
                self.client
                    .create_platform_application()
                    .name(name)
                    .platform(platform)
                    .set_attributes(Some(attrs))
                    .send()
                    .await
                    .map_err(|e| classify("CreatePlatformApplication", e.code(), e.to_string()))?
                    .platform_application_arn
                    .unwrap_or_default()
            }
        };
        let item = Item::new(
            APPLICATIONS_PK,
            sk,
            json!({"arn": arn, "fingerprint": print, "platform": platform}),
        );
        chat.store
            .write(Write::Put {
                table: TableName::App,
                item,
                condition: Condition::None,
            })
            .await
            .map_err(store_error)?;
        if let Ok(mut m) = self.applications.lock() {
            m.insert(print, arn.clone());
        }
        Ok(arn)
    }

    /// The device's endpoint under `application`: kept on the device, or made and kept.
    async fn endpoint(
        &self,
        chat: &Chat,
        application: &str,
        device: &Device,
    ) -> Result<String, Outcome> {
        if let Some(e) = device
            .sns_endpoint
            .as_ref()
            .filter(|e| e.application == application)
        {
            return Ok(e.arn.clone());
        }
        let made = self
            .client
            .create_platform_endpoint()
            .platform_application_arn(application)
            .token(&device.id)
            .send()
            .await;
        let arn = match made {
            Ok(out) => out.endpoint_arn.unwrap_or_default(),
            Err(e) if e.code() == Some("InvalidParameter") => {
                return Err(Outcome::InvalidToken(format!(
                    "SNS CreatePlatformEndpoint: {e}"
                )))
            }
            Err(e) => return Err(classify("CreatePlatformEndpoint", e.code(), e.to_string())),
        };
        let mut kept = device.clone();
        kept.sns_endpoint = Some(crate::domain::device::SnsEndpoint {
            application: application.to_string(),
            arn: arn.clone(),
        });
        if let Ok(data) = serde_json::to_value(&kept) {
            // Gone meanwhile: nothing to keep.
            let _ = chat
                .store
                .write(Write::Put {
                    table: TableName::App,
                    item: Item::new(devices_pk(&device.user_id), device.id.clone(), data),
                    condition: Condition::Exists,
                })
                .await;
        }
        Ok(arn)
    }

    /// One push to one device through SNS.
    pub async fn deliver(
        &self,
        chat: &Chat,
        p: &PushProvider,
        device: &Device,
        push: &Push,
    ) -> Outcome {
        if device.voip {
            return Outcome::Failed(
                "VoIP pushes are not sent through SNS (they need an APNS_VOIP application)".into(),
            );
        }
        let application = match self.application(chat, p).await {
            Ok(a) => a,
            Err(o) => return o,
        };
        let endpoint = match self.endpoint(chat, &application, device).await {
            Ok(e) => e,
            Err(o) => return o,
        };
        let published = self
            .client
            .publish()
            .target_arn(&endpoint)
            .message_structure("json")
            .message(message(push).to_string())
            .send()
            .await;
        match published {
            Ok(_) => Outcome::Delivered,
            Err(e) => {
                let outcome = classify("Publish", e.code(), e.to_string());
                if matches!(outcome, Outcome::InvalidToken(_)) {
                    let _ = self
                        .client
                        .delete_endpoint()
                        .endpoint_arn(&endpoint)
                        .send()
                        .await;
                }
                outcome
            }
        }
    }
}

/// The SNS client of the deployment, when it pushes through SNS (`PUSH_DELIVERY=sns`).
pub async fn from_env() -> Result<Option<SnsPush>, ApiError> {
    if std::env::var("PUSH_DELIVERY").as_deref() != Ok("sns") {
        return Ok(None);
    }
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Ok(Some(SnsPush::new(aws_sdk_sns::Client::new(&config))))
}
