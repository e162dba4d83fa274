//! `POST /check_sqs` and `POST /check_sns` (server-side): one test message to the queue or
//! topic the request names (fields left out or null: the app's settings), answered as
//! `{status: ok}` or `{status: error, error}`; a failed check is still a success response.

use super::send::{Outgoing, Senders};
use super::targets::aws_auth;
use crate::domain::caller::Session;
use crate::domain::ApiError;
use crate::service::Chat;
use serde::Deserialize;
use serde_json::{json, Value};

/// Body of `POST /check_sqs`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct CheckSqs {
    pub sqs_url: Option<String>,
    pub sqs_key: Option<String>,
    pub sqs_secret: Option<String>,
}

/// Body of `POST /check_sns`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct CheckSns {
    pub sns_topic_arn: Option<String>,
    pub sns_key: Option<String>,
    pub sns_secret: Option<String>,
}

/// The request's value, or the setting's when the request has none.
fn given_or(given: &Option<String>, setting: &str) -> String {
    given
        .as_deref()
        .filter(|v| !v.is_empty())
        .unwrap_or(setting)
        .to_string()
}

fn answer(result: Result<(), String>) -> Value {
    match result {
        Ok(()) => json!({ "status": "ok" }),
        Err(e) => json!({ "status": "error", "error": e }),
    }
}

impl Chat {
    fn probe(&self) -> Outgoing {
        let body = json!({ "type": "health.check", "created_at": self.now_str() });
        Outgoing {
            id: uuid::Uuid::new_v4().simple().to_string(),
            kind: "health.check".into(),
            scope: "check".into(),
            body: body.to_string(),
        }
    }

    pub async fn check_sqs(&self, session: &Session, req: CheckSqs) -> Result<Value, ApiError> {
        session.caller.require_server("checking SQS")?;
        let settings = self.app_settings().await?;
        let url = given_or(&req.sqs_url, &settings.sqs_url);
        if url.is_empty() {
            return Ok(answer(
                Err("invalid SQS url: no queue is configured".into()),
            ));
        }
        let (key, secret) = if req.sqs_key.is_some() || req.sqs_secret.is_some() {
            (given_or(&req.sqs_key, ""), given_or(&req.sqs_secret, ""))
        } else {
            (settings.sqs_key.clone(), settings.sqs_secret.clone())
        };
        let auth = aws_auth(
            &settings.sqs_auth_type,
            &key,
            &secret,
            &settings.sqs_role_arn,
        );
        let senders = Senders::new(&self.keys.api_key, &self.keys.api_secret);
        Ok(answer(senders.check_sqs(&url, &auth, &self.probe()).await))
    }

    pub async fn check_sns(&self, session: &Session, req: CheckSns) -> Result<Value, ApiError> {
        session.caller.require_server("checking SNS")?;
        let settings = self.app_settings().await?;
        let arn = given_or(&req.sns_topic_arn, &settings.sns_topic_arn);
        if arn.is_empty() {
            return Ok(answer(Err(
                "publishing the message failed. No SNS topic is configured".into(),
            )));
        }
        let (key, secret) = if req.sns_key.is_some() || req.sns_secret.is_some() {
            (given_or(&req.sns_key, ""), given_or(&req.sns_secret, ""))
        } else {
            (settings.sns_key.clone(), settings.sns_secret.clone())
        };
        let auth = aws_auth(
            &settings.sns_auth_type,
            &key,
            &secret,
            &settings.sns_role_arn,
        );
        let senders = Senders::new(&self.keys.api_key, &self.keys.api_secret);
        Ok(answer(senders.check_sns(&arn, &auth, &self.probe()).await))
    }
}
