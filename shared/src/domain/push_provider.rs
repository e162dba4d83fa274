//! Push providers: the credentials pushes go out with. An app has the legacy one-per-type configs
//! of its settings (`apn_config`, `firebase_config`, `push_config`) and up to 25 named providers
//! (`POST /push_providers`); both become a [`PushProvider`], checked the same way: the keys must
//! parse, so a provider that is accepted can sign its requests. Secrets are written, never read
//! back.
//!
//! Delivery goes to Apple (token authentication: a `.p8` key, its key id, the team id and the
//! app's bundle id as topic) and to Firebase Cloud Messaging HTTP v1 (a service account). What
//! is not built is refused when configured, never accepted and ignored: APNs certificates
//! (`p12`), the legacy FCM server keys Google shut down, Huawei and Xiaomi delivery, and custom
//! templates (pushes carry Stream's default payloads).

use crate::domain::device::{PushService, MAX_PROVIDER_NAME_LEN};
use crate::domain::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Named providers one app keeps (Stream's limit).
pub const MAX_PROVIDERS: usize = 25;
const MAX_DESCRIPTION_LEN: usize = 128;
const MAX_DISABLED_REASON_LEN: usize = 255;
/// The longest key, certificate or credentials document taken.
const MAX_SECRET_LEN: usize = 16 * 1024;

/// The push versions Stream names, and the one a new app has.
const PUSH_VERSIONS: &[&str] = &["v1", "v2", "v3"];

/// A push provider as stored (the field names are those of Stream's `PushProviderRequest`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PushProvider {
    /// Empty for a legacy config.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub disabled_at: Option<String>,
    pub disabled_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub apn_auth_type: String,
    pub apn_auth_key: String,
    pub apn_key_id: String,
    pub apn_team_id: String,
    pub apn_topic: String,
    pub apn_development: bool,
    pub apn_host: String,
    pub apn_p12_cert: String,
    pub apn_notification_template: String,
    pub firebase_credentials: String,
    pub firebase_server_key: String,
    pub firebase_host: String,
    pub firebase_data_template: String,
    pub firebase_notification_template: String,
    pub firebase_apn_template: String,
    pub huawei_app_id: String,
    pub huawei_app_secret: String,
    pub xiaomi_package_name: String,
    #[serde(alias = "xiaomi_secret")]
    pub xiaomi_app_secret: String,
}

/// The fields that are never read back.
const SECRETS: &[&str] = &[
    "apn_auth_key",
    "apn_p12_cert",
    "firebase_credentials",
    "firebase_server_key",
    "huawei_app_secret",
    "xiaomi_app_secret",
];

/// A Firebase service account (the parts FCM HTTP v1 needs).
#[derive(Clone, Debug, Deserialize)]
pub struct ServiceAccount {
    pub project_id: String,
    pub client_email: String,
    pub private_key: String,
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
}

fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".into()
}

fn refuse(field: &str, why: impl Into<String>) -> ApiError {
    ApiError::field(field, why)
}

fn check_host(field: &str, host: &str) -> Result<(), ApiError> {
    if host.is_empty() {
        return Ok(());
    }
    match host.parse::<hyper::Uri>() {
        Ok(u) if matches!(u.scheme_str(), Some("https" | "http")) && u.host().is_some() => Ok(()),
        _ => Err(refuse(field, format!("{field} must be an http(s) URL"))),
    }
}

impl PushProvider {
    pub fn service(&self) -> Result<PushService, ApiError> {
        PushService::parse(&self.kind).map_err(|_| {
            refuse(
                "type",
                format!(
                    "push provider type {:?} is not one of apn, firebase, huawei, xiaomi",
                    self.kind
                ),
            )
        })
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }

    /// The Firebase service account of a Firebase provider (its key is checked by [`Self::check`]).
    pub fn service_account(&self) -> Result<ServiceAccount, ApiError> {
        let field = "firebase_credentials";
        let account: ServiceAccount = serde_json::from_str(&self.firebase_credentials)
            .map_err(|_| {
                refuse(
                    field,
                    "firebase_credentials must be a service account JSON (project_id, client_email, private_key)",
                )
            })?;
        if account.project_id.is_empty() || account.client_email.is_empty() {
            return Err(refuse(
                field,
                "firebase_credentials needs project_id and client_email",
            ));
        }
        check_host("token_uri", &account.token_uri)?;
        Ok(account)
    }

    /// Checks everything a provider says; the credentials must be usable to sign requests.
    pub fn check(&self) -> Result<(), ApiError> {
        if self.description.chars().count() > MAX_DESCRIPTION_LEN {
            return Err(refuse(
                "description",
                format!("description must be at most {MAX_DESCRIPTION_LEN} characters"),
            ));
        }
        if self
            .disabled_reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > MAX_DISABLED_REASON_LEN)
        {
            return Err(refuse(
                "disabled_reason",
                format!("disabled_reason must be at most {MAX_DISABLED_REASON_LEN} characters"),
            ));
        }
        for (field, value) in [
            ("apn_auth_key", &self.apn_auth_key),
            ("apn_p12_cert", &self.apn_p12_cert),
            ("firebase_credentials", &self.firebase_credentials),
            ("firebase_server_key", &self.firebase_server_key),
        ] {
            if value.len() > MAX_SECRET_LEN {
                return Err(refuse(
                    field,
                    format!("{field} must be at most {MAX_SECRET_LEN} bytes"),
                ));
            }
        }
        for (field, template) in [
            ("apn_notification_template", &self.apn_notification_template),
            ("firebase_data_template", &self.firebase_data_template),
            (
                "firebase_notification_template",
                &self.firebase_notification_template,
            ),
            ("firebase_apn_template", &self.firebase_apn_template),
        ] {
            if !template.is_empty() {
                return Err(refuse(
                    field,
                    "custom push templates are not supported: pushes carry Stream's default payloads",
                ));
            }
        }
        match self.service()? {
            PushService::Apn => self.check_apn(),
            PushService::Firebase => {
                check_host("firebase_host", &self.firebase_host)?;
                if self.firebase_credentials.is_empty() {
                    return Err(refuse(
                        "firebase_credentials",
                        if self.firebase_server_key.is_empty() {
                            "firebase_credentials (a service account JSON) is required"
                        } else {
                            "Firebase server keys (the legacy FCM API) no longer work: give firebase_credentials, a service account JSON, for FCM HTTP v1"
                        },
                    ));
                }
                let account = self.service_account()?;
                jsonwebtoken::EncodingKey::from_rsa_pem(account.private_key.as_bytes()).map_err(
                    |_| {
                        refuse(
                            "firebase_credentials",
                            "the private_key of firebase_credentials is not an RSA private key in PEM",
                        )
                    },
                )?;
                Ok(())
            }
            other => Err(refuse(
                "type",
                format!("push delivery to {} is not supported", other.as_str()),
            )),
        }
    }

    fn check_apn(&self) -> Result<(), ApiError> {
        check_host("apn_host", &self.apn_host)?;
        let auth = match self.apn_auth_type.as_str() {
            "" if !self.apn_p12_cert.is_empty() && self.apn_auth_key.is_empty() => "certificate",
            "" => "token",
            other => other,
        };
        match auth {
            "token" => {}
            "certificate" => {
                return Err(refuse(
                    "apn_auth_type",
                    "APNs certificate (p12) authentication is not supported: use token authentication (apn_auth_key, apn_key_id, apn_team_id)",
                ))
            }
            other => {
                return Err(refuse(
                    "apn_auth_type",
                    format!("apn_auth_type {other:?} is not one of token, certificate"),
                ))
            }
        }
        for (field, value) in [
            ("apn_auth_key", &self.apn_auth_key),
            ("apn_key_id", &self.apn_key_id),
            ("apn_team_id", &self.apn_team_id),
            ("apn_topic", &self.apn_topic),
        ] {
            if value.trim().is_empty() {
                return Err(refuse(
                    field,
                    format!("{field} is required for APNs token authentication"),
                ));
            }
        }
        jsonwebtoken::EncodingKey::from_ec_pem(self.apn_auth_key.as_bytes()).map_err(|_| {
            refuse(
                "apn_auth_key",
                "apn_auth_key is not an APNs signing key (a .p8 EC private key in PEM)",
            )
        })?;
        Ok(())
    }

    /// `PushProviderResponse`: everything but the secrets.
    pub fn to_wire(&self) -> Value {
        let mut doc = match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let other = |k: &str| {
            ["apn_", "firebase_", "huawei_", "xiaomi_"]
                .iter()
                .any(|p| k.starts_with(p) && !p.starts_with(&format!("{}_", self.kind)))
        };
        doc.retain(|k, v| {
            !SECRETS.contains(&k.as_str())
                && !other(k)
                && !matches!(v, Value::Null)
                && !matches!(v, Value::String(s) if s.is_empty() && k != "name")
        });
        Value::Object(doc)
    }
}

/// `POST /push_providers`: a named provider from its request, checked.
pub fn from_request(body: &Value, now: &str) -> Result<PushProvider, ApiError> {
    let mut provider: PushProvider = serde_json::from_value(body.clone()).map_err(|e| {
        ApiError::input(format!(
            "invalid push_provider: {}",
            crate::domain::error::describe_json_error(&e)
        ))
    })?;
    let name = provider.name.trim();
    if name.is_empty() || name.chars().count() > MAX_PROVIDER_NAME_LEN {
        return Err(refuse(
            "name",
            format!("name must be 1 to {MAX_PROVIDER_NAME_LEN} characters"),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(refuse(
            "name",
            "name may only contain letters, digits, '-', '_' and '.'",
        ));
    }
    provider.name = name.to_string();
    provider.created_at = now.to_string();
    provider.updated_at = now.to_string();
    provider.check()?;
    Ok(provider)
}

/// The legacy `push_config` app setting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PushConfig {
    pub version: String,
    pub offline_only: bool,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            version: "v3".into(),
            offline_only: false,
        }
    }
}

impl PushConfig {
    pub fn check(&self) -> Result<(), ApiError> {
        if self.version == "v1" {
            return Err(refuse(
                "push_config",
                "push version v1 (legacy FCM templates) is not supported: use v2 or v3, which push Stream's standard payload",
            ));
        }
        if !PUSH_VERSIONS.contains(&self.version.as_str()) {
            return Err(refuse(
                "push_config",
                "push_config.version must be one of v1, v2, v3",
            ));
        }
        Ok(())
    }
}

/// The legacy `apn_config` app setting.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApnConfig {
    pub enabled: bool,
    pub auth_type: String,
    pub auth_key: String,
    pub key_id: String,
    pub team_id: String,
    pub bundle_id: String,
    pub development: bool,
    pub host: String,
    pub p12_cert: String,
    pub notification_template: String,
}

/// The legacy `firebase_config` app setting.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FirebaseConfig {
    pub enabled: bool,
    pub credentials_json: String,
    pub server_key: String,
    pub notification_template: String,
    pub data_template: String,
    pub apn_template: String,
}

/// The legacy `huawei_config` / `xiaomi_config` app settings: stored disabled only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OtherConfig {
    pub enabled: bool,
}

impl ApnConfig {
    pub fn provider(&self) -> Option<PushProvider> {
        self.enabled.then(|| PushProvider {
            kind: "apn".into(),
            apn_auth_type: self.auth_type.clone(),
            apn_auth_key: self.auth_key.clone(),
            apn_key_id: self.key_id.clone(),
            apn_team_id: self.team_id.clone(),
            apn_topic: self.bundle_id.clone(),
            apn_development: self.development,
            apn_host: self.host.clone(),
            apn_p12_cert: self.p12_cert.clone(),
            apn_notification_template: self.notification_template.clone(),
            ..Default::default()
        })
    }

    /// `push_notifications.apn` of `GET /app`.
    pub fn to_wire(&self) -> Value {
        let mut v = json!({"enabled": self.enabled, "development": self.development});
        for (k, val) in [
            ("auth_type", &self.auth_type),
            ("bundle_id", &self.bundle_id),
            ("key_id", &self.key_id),
            ("team_id", &self.team_id),
            ("host", &self.host),
        ] {
            if !val.is_empty() {
                v[k] = Value::String(val.clone());
            }
        }
        v
    }
}

impl FirebaseConfig {
    pub fn provider(&self) -> Option<PushProvider> {
        self.enabled.then(|| PushProvider {
            kind: "firebase".into(),
            firebase_credentials: self.credentials_json.clone(),
            firebase_server_key: self.server_key.clone(),
            firebase_notification_template: self.notification_template.clone(),
            firebase_data_template: self.data_template.clone(),
            firebase_apn_template: self.apn_template.clone(),
            ..Default::default()
        })
    }
}

/// A `PATCH /app` value of a legacy push config: `{"Disabled": true}` (or `null`) turns it off;
/// anything else is the new config, enabled and checked.
pub fn legacy_update(key: &str, value: &Value) -> Result<Value, ApiError> {
    let disabled = value.is_null()
        || value.get("Disabled").and_then(Value::as_bool) == Some(true)
        || value.get("disabled").and_then(Value::as_bool) == Some(true)
        || value.get("enabled").and_then(Value::as_bool) == Some(false);
    let invalid = |e: serde_json::Error| {
        ApiError::field(
            key,
            format!(
                "invalid {key}: {}",
                crate::domain::error::describe_json_error(&e)
            ),
        )
    };
    let mut body = value.clone();
    if let Some(m) = body.as_object_mut() {
        m.remove("Disabled");
        m.remove("disabled");
        m.insert("enabled".into(), Value::Bool(!disabled));
    }
    match key {
        "push_config" => {
            let config: PushConfig = if value.is_null() {
                PushConfig::default()
            } else {
                serde_json::from_value(value.clone()).map_err(invalid)?
            };
            config.check()?;
            Ok(serde_json::to_value(config).unwrap_or(Value::Null))
        }
        "apn_config" if disabled => {
            Ok(serde_json::to_value(ApnConfig::default()).unwrap_or_default())
        }
        "firebase_config" if disabled => {
            Ok(serde_json::to_value(FirebaseConfig::default()).unwrap_or_default())
        }
        "apn_config" => {
            let config: ApnConfig = serde_json::from_value(body).map_err(invalid)?;
            if let Some(p) = config.provider() {
                p.check()?;
            }
            Ok(serde_json::to_value(config).unwrap_or_default())
        }
        "firebase_config" => {
            let config: FirebaseConfig = serde_json::from_value(body).map_err(invalid)?;
            if let Some(p) = config.provider() {
                p.check()?;
            }
            Ok(serde_json::to_value(config).unwrap_or_default())
        }
        _ if disabled => Ok(json!({"enabled": false})),
        _ => Err(ApiError::field(
            key,
            format!(
                "push delivery to {} is not supported",
                key.trim_end_matches("_config")
            ),
        )),
    }
}
