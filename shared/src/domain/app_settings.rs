//! App settings: the typed document behind `GET /app` / `PATCH /app`, its defaults and the
//! validation of every update (behaviour behind each setting lands with the feature using it).

use crate::domain::clock::{format_time, parse_time};
use crate::domain::limits::REMINDERS_INTERVAL_RANGE;
use crate::domain::permissions::{self, Grants};
use crate::domain::ApiError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FileUploadConfig {
    pub allowed_file_extensions: Vec<String>,
    pub blocked_file_extensions: Vec<String>,
    pub allowed_mime_types: Vec<String>,
    pub blocked_mime_types: Vec<String>,
    /// Bytes; 0 means the default maximum.
    pub size_limit: u64,
}

/// One entry of `event_hooks`: where events go (webhook, SQS, SNS, pending-message callbacks).
/// Fields beyond the ones validated here round-trip unchanged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventHook {
    #[serde(default)]
    pub id: String,
    pub hook_type: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub event_types: Vec<String>,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppSettings {
    pub name: String,
    pub disable_auth_checks: bool,
    pub disable_permissions_checks: bool,
    pub permission_version: String,
    pub multi_tenant_enabled: bool,
    /// Grants of the `.app` scope, role -> permission ids.
    pub grants: Grants,
    pub revoke_tokens_issued_before: Option<String>,
    pub enforce_unique_usernames: String,
    pub file_upload_config: FileUploadConfig,
    pub image_upload_config: FileUploadConfig,
    pub user_response_time_enabled: bool,
    pub reminders_interval: i64,
    pub auto_translation_enabled: bool,
    pub async_url_enrich_enabled: bool,
    pub image_moderation_enabled: bool,
    pub image_moderation_labels: Vec<String>,
    pub cdn_expiration_seconds: i64,
    pub event_hooks: Vec<EventHook>,
    pub webhook_url: String,
    pub webhook_events: Vec<String>,
    pub sqs_url: String,
    pub sqs_key: String,
    pub sqs_secret: String,
    pub sqs_auth_type: String,
    pub sqs_role_arn: String,
    pub sns_topic_arn: String,
    pub sns_key: String,
    pub sns_secret: String,
    pub sns_auth_type: String,
    pub sns_role_arn: String,
    pub before_message_send_hook_url: String,
    /// How long the before-send hook has to answer, in ms (1–5000; 0: the default, 1,500).
    pub before_message_send_hook_attempt_timeout_ms: i64,
    pub custom_action_handler_url: String,
    pub user_search_disallowed_roles: Vec<String>,
    pub push_config: Value,
    pub apn_config: Value,
    pub firebase_config: Value,
    pub huawei_config: Value,
    pub xiaomi_config: Value,
    pub suspended: bool,
}

impl Default for AppSettings {
    fn default() -> Self {
        AppSettings {
            name: "chat".into(),
            disable_auth_checks: false,
            disable_permissions_checks: false,
            permission_version: "v2".into(),
            multi_tenant_enabled: false,
            grants: permissions::default_grants(".app"),
            revoke_tokens_issued_before: None,
            enforce_unique_usernames: "no".into(),
            file_upload_config: FileUploadConfig::default(),
            image_upload_config: FileUploadConfig::default(),
            user_response_time_enabled: false,
            reminders_interval: 300,
            auto_translation_enabled: false,
            async_url_enrich_enabled: false,
            image_moderation_enabled: false,
            image_moderation_labels: Vec::new(),
            cdn_expiration_seconds: 1_209_600,
            event_hooks: Vec::new(),
            webhook_url: String::new(),
            webhook_events: Vec::new(),
            sqs_url: String::new(),
            sqs_key: String::new(),
            sqs_secret: String::new(),
            sqs_auth_type: "keys".into(),
            sqs_role_arn: String::new(),
            sns_topic_arn: String::new(),
            sns_key: String::new(),
            sns_secret: String::new(),
            sns_auth_type: "keys".into(),
            sns_role_arn: String::new(),
            before_message_send_hook_url: String::new(),
            before_message_send_hook_attempt_timeout_ms: 0,
            custom_action_handler_url: String::new(),
            user_search_disallowed_roles: Vec::new(),
            push_config: serde_json::json!({"version": "v3", "offline_only": false}),
            apn_config: serde_json::json!({"enabled": false}),
            firebase_config: serde_json::json!({"enabled": false}),
            huawei_config: serde_json::json!({"enabled": false}),
            xiaomi_config: serde_json::json!({"enabled": false}),
            suspended: false,
        }
    }
}

const UNIQUE_USERNAME_MODES: &[&str] = &["no", "app", "team"];
const HOOK_TYPES: &[&str] = &["webhook", "sqs", "sns", "pending_message"];
const AUTH_TYPES: &[&str] = &["keys", "resource", "role"];

impl AppSettings {
    /// Token revocation date, when one is set.
    pub fn tokens_revoked_before(&self) -> Option<DateTime<Utc>> {
        self.revoke_tokens_issued_before
            .as_deref()
            .and_then(parse_time)
    }

    /// Apply a `PATCH /app` body: every given field is validated and replaces the stored one;
    /// `null` resets a field to its default (for `grants`, the default grant table).
    pub fn apply_update(
        &mut self,
        body: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        let defaults = AppSettings::default();
        let mut doc = match serde_json::to_value(&*self) {
            Ok(Value::Object(m)) => m,
            _ => return Err(ApiError::internal("app settings could not be encoded")),
        };
        let default_doc = serde_json::to_value(&defaults).unwrap_or(Value::Null);
        for (key, value) in body {
            if !doc.contains_key(key) {
                return Err(ApiError::field(key, format!("{key} is not an app setting")));
            }
            match key.as_str() {
                "grants" => {
                    let grants = match value {
                        Value::Null => defaults.grants.clone(),
                        v => {
                            let update: Grants =
                                serde_json::from_value(v.clone()).map_err(|_| {
                                    ApiError::field(
                                        "grants",
                                        "grants must map role names to lists of permission ids",
                                    )
                                })?;
                            permissions::apply_grants_update(&self.grants, &update)
                                .map_err(|e| ApiError::field("grants", e.to_string()))?
                        }
                    };
                    doc.insert(
                        key.clone(),
                        serde_json::to_value(grants).unwrap_or(Value::Null),
                    );
                }
                "revoke_tokens_issued_before" => {
                    let v = match value {
                        Value::Null => Value::Null,
                        Value::String(s) if s.is_empty() => Value::Null,
                        Value::String(s) => match parse_time(s) {
                            Some(t) => Value::String(format_time(t)),
                            None => {
                                return Err(ApiError::field(
                                    key,
                                    "revoke_tokens_issued_before must be an RFC 3339 timestamp",
                                ))
                            }
                        },
                        _ => {
                            return Err(ApiError::field(
                                key,
                                "revoke_tokens_issued_before must be a timestamp or null",
                            ))
                        }
                    };
                    doc.insert(key.clone(), v);
                }
                "event_hooks" => {
                    let hooks = match value {
                        Value::Null => Vec::new(),
                        v => {
                            let hooks: Vec<EventHook> =
                                serde_json::from_value(v.clone()).map_err(|e| {
                                    ApiError::field(
                                        "event_hooks",
                                        format!(
                                            "event_hooks must be a list of hooks: {}",
                                            crate::domain::error::describe_json_error(&e)
                                        ),
                                    )
                                })?;
                            validate_hooks(hooks, now)?
                        }
                    };
                    doc.insert(
                        key.clone(),
                        serde_json::to_value(hooks).unwrap_or(Value::Null),
                    );
                }
                "push_config" | "apn_config" | "firebase_config" | "huawei_config"
                | "xiaomi_config" => {
                    doc.insert(
                        key.clone(),
                        crate::domain::push_provider::legacy_update(key, value)?,
                    );
                }
                _ => {
                    let v = if value.is_null() {
                        default_doc.get(key).cloned().unwrap_or(Value::Null)
                    } else {
                        value.clone()
                    };
                    doc.insert(key.clone(), v);
                }
            }
        }
        let updated: AppSettings = serde_json::from_value(Value::Object(doc)).map_err(|e| {
            ApiError::input(format!(
                "invalid app settings: {}",
                crate::domain::error::describe_json_error(&e)
            ))
        })?;
        updated.validate()?;
        *self = updated;
        Ok(())
    }

    fn validate(&self) -> Result<(), ApiError> {
        if self.permission_version != "v2" {
            return Err(ApiError::field(
                "permission_version",
                format!(
                    "permission_version {:?} is not supported: only permissions v2 exist",
                    self.permission_version
                ),
            ));
        }
        if !UNIQUE_USERNAME_MODES.contains(&self.enforce_unique_usernames.as_str()) {
            return Err(ApiError::field(
                "enforce_unique_usernames",
                "enforce_unique_usernames must be one of no, app, team",
            ));
        }
        if !REMINDERS_INTERVAL_RANGE.contains(&self.reminders_interval) {
            return Err(ApiError::field(
                "reminders_interval",
                "reminders_interval must be between 60 and 86400 seconds",
            ));
        }
        if !(0..=5000).contains(&self.before_message_send_hook_attempt_timeout_ms) {
            return Err(ApiError::field(
                "before_message_send_hook_attempt_timeout_ms",
                "before_message_send_hook_attempt_timeout_ms must be between 0 and 5000",
            ));
        }
        for (field, auth) in [
            ("sqs_auth_type", &self.sqs_auth_type),
            ("sns_auth_type", &self.sns_auth_type),
        ] {
            if !AUTH_TYPES.contains(&auth.as_str()) {
                return Err(ApiError::field(
                    field,
                    format!("{field} must be keys, resource or role"),
                ));
            }
        }
        for (field, url) in [
            ("webhook_url", &self.webhook_url),
            (
                "before_message_send_hook_url",
                &self.before_message_send_hook_url,
            ),
            ("custom_action_handler_url", &self.custom_action_handler_url),
        ] {
            validate_url(field, url)?;
        }
        if !self.sqs_url.is_empty() {
            validate_queue_url("sqs_url", &self.sqs_url)?;
        }
        if !self.sns_topic_arn.is_empty() {
            validate_topic_arn("sns_topic_arn", &self.sns_topic_arn)?;
        }
        for (field, auth, arn) in [
            ("sqs_role_arn", &self.sqs_auth_type, &self.sqs_role_arn),
            ("sns_role_arn", &self.sns_auth_type, &self.sns_role_arn),
        ] {
            validate_role(field, auth, arn)?;
        }
        for (field, cfg) in [
            ("file_upload_config", &self.file_upload_config),
            ("image_upload_config", &self.image_upload_config),
        ] {
            if !cfg.allowed_file_extensions.is_empty() && !cfg.blocked_file_extensions.is_empty() {
                return Err(ApiError::field(
                    field,
                    "use either allowed_file_extensions or blocked_file_extensions, not both",
                ));
            }
            if !cfg.allowed_mime_types.is_empty() && !cfg.blocked_mime_types.is_empty() {
                return Err(ApiError::field(
                    field,
                    "use either allowed_mime_types or blocked_mime_types, not both",
                ));
            }
            if cfg.size_limit > crate::domain::upload::DEFAULT_MAX_UPLOAD_BYTES {
                return Err(ApiError::field(
                    field,
                    format!(
                        "size_limit must be at most {} bytes",
                        crate::domain::upload::DEFAULT_MAX_UPLOAD_BYTES
                    ),
                ));
            }
            for m in cfg.allowed_mime_types.iter().chain(&cfg.blocked_mime_types) {
                if m.split('/').count() != 2 {
                    return Err(ApiError::field(
                        field,
                        format!("mime type {m:?} must follow the type/subtype pattern"),
                    ));
                }
            }
        }
        if self.cdn_expiration_seconds < 0 {
            return Err(ApiError::field(
                "cdn_expiration_seconds",
                "cdn_expiration_seconds must not be negative",
            ));
        }
        Ok(())
    }
}

fn validate_url(field: &str, url: &str) -> Result<(), ApiError> {
    if url.is_empty() || url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            format!("{field} must be an http(s) URL"),
        ))
    }
}

fn validate_queue_url(field: &str, url: &str) -> Result<(), ApiError> {
    match crate::domain::aws_names::sqs_endpoint(url) {
        Some(_) => Ok(()),
        None => Err(ApiError::field(
            field,
            format!("{field} must be an SQS queue URL (https://sqs.<region>.amazonaws.com/<account id>/<queue name>)"),
        )),
    }
}

fn validate_topic_arn(field: &str, arn: &str) -> Result<(), ApiError> {
    match crate::domain::aws_names::sns_region(arn) {
        Some(_) => Ok(()),
        None => Err(ApiError::field(
            field,
            format!("{field} must be an SNS topic ARN (arn:aws:sns:<region>:<account id>:<topic>)"),
        )),
    }
}

/// `role` authentication needs the role to assume.
fn validate_role(field: &str, auth_type: &str, role_arn: &str) -> Result<(), ApiError> {
    if auth_type == "role" && !role_arn.starts_with("arn:") {
        return Err(ApiError::field(
            field,
            format!("{field} must be the ARN of the role to assume when the auth type is role"),
        ));
    }
    Ok(())
}

fn validate_hooks(hooks: Vec<EventHook>, now: DateTime<Utc>) -> Result<Vec<EventHook>, ApiError> {
    use crate::domain::limits::{MAX_EVENT_HOOKS, MAX_HOOK_EVENT_TYPES};
    if hooks.len() > MAX_EVENT_HOOKS {
        return Err(ApiError::field(
            "event_hooks",
            format!("an app has at most {MAX_EVENT_HOOKS} event hooks"),
        ));
    }
    let mut pending = 0;
    hooks
        .into_iter()
        .map(|mut hook| {
            if hook.event_types.len() > MAX_HOOK_EVENT_TYPES {
                return Err(ApiError::field(
                    "event_hooks",
                    format!("a hook lists at most {MAX_HOOK_EVENT_TYPES} event types"),
                ));
            }
            if !HOOK_TYPES.contains(&hook.hook_type.as_str()) {
                return Err(ApiError::field(
                    "event_hooks",
                    format!(
                        "hook_type {:?} must be one of {}",
                        hook.hook_type,
                        HOOK_TYPES.join(", ")
                    ),
                ));
            }
            let required = match hook.hook_type.as_str() {
                "sqs" => "sqs_queue_url",
                "sns" => "sns_topic_arn",
                _ => "webhook_url",
            };
            match hook.fields.get(required) {
                Some(Value::String(s)) if !s.is_empty() => match required {
                    "webhook_url" => validate_url("event_hooks.webhook_url", s)?,
                    "sqs_queue_url" => validate_queue_url("event_hooks.sqs_queue_url", s)?,
                    _ => validate_topic_arn("event_hooks.sns_topic_arn", s)?,
                },
                _ => {
                    return Err(ApiError::field(
                        "event_hooks",
                        format!("a {} hook needs {required}", hook.hook_type),
                    ))
                }
            }
            for (field, role) in [
                ("sqs_auth_type", "sqs_role_arn"),
                ("sns_auth_type", "sns_role_arn"),
            ] {
                let text = |name: &str| {
                    hook.fields
                        .get(name)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                let auth = text(field);
                if !auth.is_empty() && !AUTH_TYPES.contains(&auth.as_str()) {
                    return Err(ApiError::field(
                        "event_hooks",
                        format!("{field} must be keys, resource or role"),
                    ));
                }
                validate_role(&format!("event_hooks.{role}"), &auth, &text(role))?;
            }
            if hook.hook_type == "pending_message" {
                pending += 1;
                if pending > 2 {
                    return Err(ApiError::field(
                        "event_hooks",
                        "at most two pending_message hooks per app",
                    ));
                }
            }
            if hook.id.is_empty() {
                hook.id = uuid::Uuid::new_v4().to_string();
            }
            let stamp = Value::String(format_time(now));
            hook.fields
                .entry("created_at")
                .or_insert_with(|| stamp.clone());
            hook.fields.insert("updated_at".into(), stamp);
            Ok(hook)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn update(settings: &mut AppSettings, body: Value) -> Result<(), ApiError> {
        settings.apply_update(body.as_object().unwrap(), Utc::now())
    }

    #[test]
    fn validates_each_setting() {
        let mut s = AppSettings::default();
        assert!(update(&mut s, json!({"reminders_interval": 59})).is_err());
        assert!(update(&mut s, json!({"permission_version": "v1"})).is_err());
        assert!(update(&mut s, json!({"permission_version": "v2"})).is_ok());
        assert!(update(&mut s, json!({"reminders_interval": 86401})).is_err());
        assert!(update(
            &mut s,
            json!({"before_message_send_hook_attempt_timeout_ms": -1})
        )
        .is_err());
        assert!(update(
            &mut s,
            json!({"before_message_send_hook_attempt_timeout_ms": 5001})
        )
        .is_err());
        let mut fresh = AppSettings::default();
        assert!(update(
            &mut fresh,
            json!({"before_message_send_hook_attempt_timeout_ms": 300})
        )
        .is_ok());
        assert!(update(&mut s, json!({"enforce_unique_usernames": "world"})).is_err());
        assert!(update(&mut s, json!({"not_a_setting": 1})).is_err());
        assert!(update(&mut s, json!({"webhook_url": "ftp://x"})).is_err());
        assert!(update(&mut s, json!({"event_hooks": [{"hook_type": "sqs"}]})).is_err());
        assert!(update(&mut s, json!({"sqs_url": "https://foo.com/bar"})).is_err());
        let many: Vec<Value> = (0..21)
            .map(|i| json!({"hook_type": "webhook", "webhook_url": format!("http://h{i}")}))
            .collect();
        assert!(update(&mut s, json!({ "event_hooks": many })).is_err());
        let types: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
        assert!(update(
            &mut s,
            json!({"event_hooks": [{"hook_type": "webhook", "webhook_url": "http://h", "event_types": types}]})
        )
        .is_err());
        assert!(update(&mut s, json!({"sns_topic_arn": "arn:aws:sqs:x"})).is_err());
        assert!(update(&mut s, json!({"sqs_auth_type": "role"})).is_err());
        assert!(update(
            &mut AppSettings::default(),
            json!({"sqs_auth_type": "role", "sqs_role_arn": "arn:aws:iam::123456789012:role/chat"})
        )
        .is_ok());
        assert!(update(
            &mut s,
            json!({"event_hooks": [{"hook_type": "sqs", "sqs_queue_url": "https://foo.com/bar"}]})
        )
        .is_err());
        assert!(update(
            &mut s,
            json!({"event_hooks": [{"hook_type": "sns", "sns_topic_arn": "arn:aws:sns:us-east-1:123456789012:t",
                                    "sns_auth_type": "role"}]})
        )
        .is_err());
        assert_eq!(s, AppSettings::default(), "failed updates change nothing");
        update(&mut s, json!({"reminders_interval": 60, "enforce_unique_usernames": "team", "disable_auth_checks": true})).unwrap();
        assert_eq!(
            (
                s.reminders_interval,
                s.enforce_unique_usernames.as_str(),
                s.disable_auth_checks
            ),
            (60, "team", true)
        );
    }

    #[test]
    fn hooks_get_ids_and_empty_list_clears() {
        let mut s = AppSettings::default();
        update(&mut s, json!({"event_hooks": [{"hook_type": "webhook", "webhook_url": "https://example.com/h", "event_types": ["message.new"]}]})).unwrap();
        assert_eq!(s.event_hooks.len(), 1);
        assert_eq!(s.event_hooks[0].id.len(), 36);
        update(&mut s, json!({"event_hooks": []})).unwrap();
        assert!(s.event_hooks.is_empty());
    }

    #[test]
    fn revocation_date_is_normalised_and_null_clears_it() {
        let mut s = AppSettings::default();
        update(
            &mut s,
            json!({"revoke_tokens_issued_before": "2024-01-02T03:04:05"}),
        )
        .unwrap();
        assert_eq!(
            s.revoke_tokens_issued_before.as_deref(),
            Some("2024-01-02T03:04:05.000000Z")
        );
        update(&mut s, json!({"revoke_tokens_issued_before": null})).unwrap();
        assert!(s.tokens_revoked_before().is_none());
    }
}
