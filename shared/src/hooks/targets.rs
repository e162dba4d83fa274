//! Where the app's events go: the targets its settings name, from the `event_hooks` list
//! (`webhook`, `sqs` and `sns` hooks, and `pending_message` hooks, which are called back about
//! pending messages only) and from the legacy single-target fields (`webhook_url` with `webhook_events`,
//! `sqs_url`/`sqs_key`/`sqs_secret`, `sns_topic_arn`/`sns_key`/`sns_secret`), each with the
//! events it wants.

use crate::domain::app_settings::{AppSettings, EventHook};
use crate::domain::event_kind::{hook_delivery, HookDelivery};
use serde_json::Value;
use std::time::Duration;

/// A webhook's time to answer when its hook sets no `timeout_ms`.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(6);
/// The bounds of a hook's `timeout_ms`.
const TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u64> = 100..=30_000;

/// How we authenticate to the customer's queue or topic.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AwsAuth {
    /// The customer's access key and secret.
    Keys { key: String, secret: String },
    /// Our own credentials (the function's role, or chat-local's environment); the customer's
    /// resource policy lets that principal send.
    Resource,
    /// A role in the customer's account that our credentials assume.
    Role { arn: String },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Destination {
    Webhook {
        url: String,
    },
    Sqs {
        queue_url: String,
        region: Option<String>,
        auth: AwsAuth,
    },
    Sns {
        topic_arn: String,
        region: Option<String>,
        auth: AwsAuth,
    },
    /// A `pending_message` hook's callback: `<url>/PassOnPendingMessage` when a pending message
    /// is committed, `<url>/DeletedPendingMessage` when it is deleted or times out.
    PendingCallback {
        url: String,
    },
}

impl Destination {
    /// `webhook`, `sqs` or `sns`.
    pub fn kind(&self) -> &'static str {
        match self {
            Destination::Webhook { .. } => "webhook",
            Destination::Sqs { .. } => "sqs",
            Destination::Sns { .. } => "sns",
            Destination::PendingCallback { .. } => "pending_message",
        }
    }
}

/// One place events are delivered to.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The hook's id (legacy targets: the setting's name, e.g. `sqs_url`).
    pub id: String,
    pub destination: Destination,
    /// Event types it wants; empty means every event.
    pub event_types: Vec<String>,
    /// Whether custom events (types a client made up) reach it.
    pub custom_events: bool,
    pub timeout: Duration,
}

impl Target {
    /// Whether an event of type `kind` goes to this target.
    pub fn wants(&self, kind: &str) -> bool {
        if let Destination::PendingCallback { .. } = self.destination {
            return hook_delivery(kind) == HookDelivery::PendingCallbacks;
        }
        let listed =
            self.event_types.is_empty() || self.event_types.iter().any(|t| t == kind || t == "*");
        match hook_delivery(kind) {
            HookDelivery::Never | HookDelivery::PendingCallbacks => false,
            HookDelivery::Hooks => listed,
            HookDelivery::CustomHooks => {
                self.custom_events || self.event_types.iter().any(|t| t == kind)
            }
        }
    }
}

/// The targets `settings` name, enabled ones only, in a stable order.
pub fn targets(settings: &AppSettings) -> Vec<Target> {
    let mut out = Vec::new();
    if !settings.webhook_url.is_empty() {
        out.push(Target {
            id: "webhook_url".into(),
            destination: Destination::Webhook {
                url: settings.webhook_url.clone(),
            },
            event_types: settings.webhook_events.clone(),
            custom_events: true,
            timeout: DEFAULT_WEBHOOK_TIMEOUT,
        });
    }
    if !settings.sqs_url.is_empty() {
        out.push(Target {
            id: "sqs_url".into(),
            destination: Destination::Sqs {
                queue_url: settings.sqs_url.clone(),
                region: None,
                auth: aws_auth(
                    &settings.sqs_auth_type,
                    &settings.sqs_key,
                    &settings.sqs_secret,
                    &settings.sqs_role_arn,
                ),
            },
            event_types: Vec::new(),
            custom_events: true,
            timeout: DEFAULT_WEBHOOK_TIMEOUT,
        });
    }
    if !settings.sns_topic_arn.is_empty() {
        out.push(Target {
            id: "sns_topic_arn".into(),
            destination: Destination::Sns {
                topic_arn: settings.sns_topic_arn.clone(),
                region: None,
                auth: aws_auth(
                    &settings.sns_auth_type,
                    &settings.sns_key,
                    &settings.sns_secret,
                    &settings.sns_role_arn,
                ),
            },
            event_types: Vec::new(),
            custom_events: true,
            timeout: DEFAULT_WEBHOOK_TIMEOUT,
        });
    }
    out.extend(
        settings
            .event_hooks
            .iter()
            .filter(|h| h.enabled)
            .filter_map(hook_target),
    );
    out
}

fn field<'a>(hook: &'a EventHook, name: &str) -> &'a str {
    hook.fields
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn hook_target(hook: &EventHook) -> Option<Target> {
    let region = |name: &str| Some(field(hook, name).to_string()).filter(|r| !r.is_empty());
    let destination = match hook.hook_type.as_str() {
        "webhook" => Destination::Webhook {
            url: field(hook, "webhook_url").to_string(),
        },
        "sqs" => Destination::Sqs {
            queue_url: field(hook, "sqs_queue_url").to_string(),
            region: region("sqs_region"),
            auth: aws_auth(
                field(hook, "sqs_auth_type"),
                field(hook, "sqs_key"),
                field(hook, "sqs_secret"),
                field(hook, "sqs_role_arn"),
            ),
        },
        "sns" => Destination::Sns {
            topic_arn: field(hook, "sns_topic_arn").to_string(),
            region: region("sns_region"),
            auth: aws_auth(
                field(hook, "sns_auth_type"),
                field(hook, "sns_key"),
                field(hook, "sns_secret"),
                field(hook, "sns_role_arn"),
            ),
        },
        // Called back about pending messages, unless its callback mode is none.
        "pending_message" => {
            let url = field(hook, "webhook_url");
            let mode = hook
                .fields
                .get("callback")
                .and_then(|c| c.get("mode"))
                .and_then(Value::as_str)
                .unwrap_or("CALLBACK_MODE_REST");
            if url.is_empty() || mode == "CALLBACK_MODE_NONE" {
                return None;
            }
            Destination::PendingCallback {
                url: url.trim_end_matches('/').to_string(),
            }
        }
        _ => return None,
    };
    // A pending_message hook's timeout_ms is how long messages stay pending, not a call's.
    let timeout = hook
        .fields
        .get("timeout_ms")
        .filter(|_| hook.hook_type != "pending_message")
        .and_then(Value::as_u64)
        .map(|ms| {
            Duration::from_millis(ms.clamp(*TIMEOUT_MS_RANGE.start(), *TIMEOUT_MS_RANGE.end()))
        })
        .unwrap_or(DEFAULT_WEBHOOK_TIMEOUT);
    Some(Target {
        id: hook.id.clone(),
        destination,
        event_types: hook.event_types.clone(),
        custom_events: hook
            .fields
            .get("should_send_custom_events")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        timeout,
    })
}

/// The authentication a hook's fields describe: `role` with a role ARN assumes it; `resource`,
/// or `keys` without a key, uses our own credentials; else the key and secret.
pub(crate) fn aws_auth(auth_type: &str, key: &str, secret: &str, role_arn: &str) -> AwsAuth {
    match auth_type {
        "role" if !role_arn.is_empty() => AwsAuth::Role {
            arn: role_arn.to_string(),
        },
        "resource" | "role" => AwsAuth::Resource,
        _ if key.is_empty() || secret.is_empty() => AwsAuth::Resource,
        _ => AwsAuth::Keys {
            key: key.to_string(),
            secret: secret.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(v: Value) -> AppSettings {
        let mut s = AppSettings::default();
        s.apply_update(v.as_object().unwrap(), chrono::Utc::now())
            .unwrap();
        s
    }

    #[test]
    fn legacy_fields_and_hooks_become_targets() {
        let s = settings(json!({
            "webhook_url": "http://127.0.0.1:9/hook",
            "sqs_url": "https://sqs.us-east-1.amazonaws.com/123456789012/q",
            "sqs_key": "k", "sqs_secret": "s",
            "event_hooks": [
                {"hook_type": "sns", "sns_topic_arn": "arn:aws:sns:eu-west-1:123456789012:t",
                 "event_types": ["message.new"], "sns_auth_type": "resource"},
                {"hook_type": "webhook", "webhook_url": "http://x", "enabled": false},
                {"hook_type": "pending_message", "webhook_url": "http://p", "timeout_ms": 10000,
                 "callback": {"mode": "CALLBACK_MODE_NONE"}},
            ],
        }));
        let t = targets(&s);
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].id, "webhook_url");
        assert_eq!(
            t[1].destination,
            Destination::Sqs {
                queue_url: "https://sqs.us-east-1.amazonaws.com/123456789012/q".into(),
                region: None,
                auth: AwsAuth::Keys {
                    key: "k".into(),
                    secret: "s".into()
                }
            }
        );
        assert!(matches!(
            &t[2].destination,
            Destination::Sns {
                auth: AwsAuth::Resource,
                ..
            }
        ));
        assert!(t[2].wants("message.new"));
        assert!(!t[2].wants("reaction.new"));
        assert!(t[1].wants("reaction.new"));
        assert!(!t[1].wants("typing.start"));
    }

    #[test]
    fn pending_callbacks_hear_only_pending_messages() {
        let s = settings(json!({"event_hooks": [
            {"hook_type": "pending_message", "webhook_url": "http://p/", "timeout_ms": 10000},
            {"hook_type": "webhook", "webhook_url": "http://a"},
        ]}));
        let t = targets(&s);
        assert_eq!(
            t[0].destination,
            Destination::PendingCallback {
                url: "http://p".into()
            }
        );
        assert_eq!(t[0].timeout, DEFAULT_WEBHOOK_TIMEOUT);
        assert!(t[0].wants("pending_message.sent"));
        assert!(!t[0].wants("message.new"));
        assert!(!t[1].wants("pending_message.deleted"));
    }

    #[test]
    fn custom_events_only_where_asked() {
        let s = settings(json!({"event_hooks": [
            {"hook_type": "webhook", "webhook_url": "http://a"},
            {"hook_type": "webhook", "webhook_url": "http://b", "should_send_custom_events": true},
        ]}));
        let t = targets(&s);
        assert!(!t[0].wants("game.move"));
        assert!(t[1].wants("game.move"));
    }
}
