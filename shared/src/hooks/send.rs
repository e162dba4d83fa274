//! Sending events to the customer's targets: webhooks (signed POSTs), SQS queues
//! (`SendMessageBatch`; FIFO queues grouped by the event's scope, deduplicated by its id) and
//! SNS topics (`PublishBatch`), each with the credentials its hook names. AWS clients are kept
//! per queue endpoint, region and credentials.

use super::targets::AwsAuth;
use crate::domain::aws_names::{sns_region, sqs_endpoint};
use aws_sdk_sqs::config::{Credentials, Region};
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::OnceCell;

/// The largest event a queue or topic takes (seed: "Set the maximum message size set to 256
/// KB"; SNS has the same limit).
pub const MAX_QUEUE_MESSAGE_BYTES: usize = 256 * 1024;
/// Entries in one `SendMessageBatch` / `PublishBatch` (the AWS limit).
const BATCH_ENTRIES: usize = 10;
/// Time for one call to SQS or SNS.
const AWS_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One event on its way to a target.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// Stable across attempts and processes: the webhook's delivery id, the FIFO dedup id.
    pub id: String,
    /// The event type (a message attribute on SQS and SNS).
    pub kind: String,
    /// What the event is about (cid or `user:<id>`): a FIFO queue's message group, so one
    /// channel's events keep their order.
    pub scope: String,
    /// The JSON body, exactly as signed and sent.
    pub body: String,
}

/// Why a send failed.
#[derive(Clone, Debug, PartialEq)]
pub enum SendError {
    /// Worth another attempt (the target is down, slow, or refused for now).
    Retry(String),
    /// Another attempt cannot succeed (e.g. the event is over the target's size limit).
    Permanent(String),
}

impl SendError {
    pub fn message(&self) -> &str {
        match self {
            SendError::Retry(m) | SendError::Permanent(m) => m,
        }
    }
}

type ClientKey = (String, String, AwsAuth);

/// The clients events leave through.
pub struct Senders {
    api_key: String,
    api_secret: String,
    http: OnceCell<Client<HttpsConnector<HttpConnector>, Full<Bytes>>>,
    aws: OnceCell<aws_config::SdkConfig>,
    sqs: Mutex<HashMap<ClientKey, aws_sdk_sqs::Client>>,
    sns: Mutex<HashMap<ClientKey, aws_sdk_sns::Client>>,
}

impl Senders {
    /// Webhooks are signed with the app's secret and carry its key.
    pub fn new(api_key: &str, api_secret: &str) -> Self {
        Senders {
            api_key: api_key.to_string(),
            api_secret: api_secret.to_string(),
            http: OnceCell::new(),
            aws: OnceCell::new(),
            sqs: Mutex::default(),
            sns: Mutex::default(),
        }
    }

    /// `X-Signature`: lowercase hex HMAC-SHA256 of the raw body, keyed by the API secret (what
    /// the SDKs' `verify_webhook` checks).
    pub fn signature(&self, body: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.api_secret.as_bytes())
            .expect("HMAC takes any key");
        mac.update(body.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    async fn http(&self) -> Result<&Client<HttpsConnector<HttpConnector>, Full<Bytes>>, String> {
        self.http
            .get_or_try_init(|| async {
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_native_roots()
                    .map_err(|e| format!("no TLS root certificates: {e}"))?
                    .https_or_http()
                    .enable_http1()
                    .build();
                Ok(Client::builder(hyper_util::rt::TokioExecutor::new()).build(https))
            })
            .await
    }

    /// POSTs one event to a webhook; `attempt` counts from 1.
    pub async fn webhook(
        &self,
        url: &str,
        timeout: Duration,
        event: &Outgoing,
        attempt: u32,
    ) -> Result<(), SendError> {
        let client = self.http().await.map_err(SendError::Permanent)?;
        let request = hyper::Request::post(url)
            .header("content-type", "application/json")
            .header("user-agent", "chat-webhooks")
            .header("x-signature", self.signature(&event.body))
            .header("x-api-key", &self.api_key)
            .header("x-webhook-id", &event.id)
            .header("x-webhook-attempt", attempt.to_string())
            .body(Full::new(Bytes::from(event.body.clone())))
            .map_err(|e| SendError::Permanent(format!("bad webhook request: {e}")))?;
        match tokio::time::timeout(timeout, client.request(request)).await {
            Err(_) => Err(SendError::Retry(format!(
                "no answer within {} ms",
                timeout.as_millis()
            ))),
            Ok(Err(e)) => Err(SendError::Retry(format!("request failed: {e}"))),
            Ok(Ok(response)) if response.status().is_success() => Ok(()),
            Ok(Ok(response)) => Err(SendError::Retry(format!("answered {}", response.status()))),
        }
    }

    /// POSTs a signed JSON body to an app's handler (the before-send hook) and reads its JSON
    /// answer; one attempt within `timeout`. An empty answer reads as `null`.
    pub async fn call(
        &self,
        url: &str,
        timeout: Duration,
        body: String,
    ) -> Result<serde_json::Value, SendError> {
        use http_body_util::BodyExt;
        let client = self.http().await.map_err(SendError::Permanent)?;
        let request = hyper::Request::post(url)
            .header("content-type", "application/json")
            .header("user-agent", "chat-webhooks")
            .header("x-signature", self.signature(&body))
            .header("x-api-key", &self.api_key)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| SendError::Permanent(format!("bad request: {e}")))?;
        let exchange = async {
            let response = client
                .request(request)
                .await
                .map_err(|e| SendError::Retry(format!("request failed: {e}")))?;
            if !response.status().is_success() {
                return Err(SendError::Retry(format!("answered {}", response.status())));
            }
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| SendError::Retry(format!("answer unreadable: {e}")))?
                .to_bytes();
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(serde_json::Value::Null);
            }
            serde_json::from_slice(&bytes)
                .map_err(|e| SendError::Permanent(format!("answer is not JSON: {e}")))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| SendError::Retry(format!("no answer within {} ms", timeout.as_millis())))?
    }

    async fn aws_base(&self) -> &aws_config::SdkConfig {
        self.aws
            .get_or_init(|| aws_config::defaults(aws_config::BehaviorVersion::latest()).load())
            .await
    }

    async fn credentials(
        &self,
        auth: &AwsAuth,
        region: &str,
    ) -> Option<aws_credential_types::provider::SharedCredentialsProvider> {
        use aws_credential_types::provider::SharedCredentialsProvider;
        match auth {
            AwsAuth::Keys { key, secret } => Some(SharedCredentialsProvider::new(
                Credentials::new(key, secret, None, None, "event-hook"),
            )),
            AwsAuth::Resource => None,
            AwsAuth::Role { arn } => {
                let provider = aws_config::sts::AssumeRoleProvider::builder(arn)
                    .session_name("chat-event-hooks")
                    .region(Region::new(region.to_string()))
                    .configure(self.aws_base().await)
                    .build()
                    .await;
                Some(SharedCredentialsProvider::new(provider))
            }
        }
    }

    async fn sqs_client(
        &self,
        queue_url: &str,
        region: Option<&str>,
        auth: &AwsAuth,
    ) -> Result<aws_sdk_sqs::Client, SendError> {
        let (endpoint, url_region) = sqs_endpoint(queue_url)
            .ok_or_else(|| SendError::Permanent(format!("invalid SQS url {queue_url:?}")))?;
        let base = self.aws_base().await;
        let region = url_region
            .or(region.map(str::to_string))
            .or_else(|| base.region().map(|r| r.to_string()))
            .unwrap_or_else(|| "us-east-1".into());
        let key = (endpoint.clone(), region.clone(), auth.clone());
        if let Some(c) = self.sqs.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(c);
        }
        // Our own attempts and backoff decide when to try again.
        let mut config = aws_sdk_sqs::config::Builder::from(base)
            .region(Region::new(region.clone()))
            .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
            .endpoint_url(endpoint);
        if let Some(creds) = self.credentials(auth, &region).await {
            config = config.credentials_provider(creds);
        }
        let client = aws_sdk_sqs::Client::from_conf(config.build());
        if let Ok(mut m) = self.sqs.lock() {
            m.insert(key, client.clone());
        }
        Ok(client)
    }

    async fn sns_client(
        &self,
        topic_arn: &str,
        region: Option<&str>,
        auth: &AwsAuth,
    ) -> Result<aws_sdk_sns::Client, SendError> {
        let arn_region = sns_region(topic_arn)
            .ok_or_else(|| SendError::Permanent(format!("invalid SNS topic ARN {topic_arn:?}")))?;
        let base = self.aws_base().await;
        let region = region.map(str::to_string).unwrap_or(arn_region);
        let key = (String::new(), region.clone(), auth.clone());
        if let Some(c) = self.sns.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(c);
        }
        let mut config = aws_sdk_sns::config::Builder::from(base)
            .region(Region::new(region.clone()))
            .retry_config(aws_sdk_sns::config::retry::RetryConfig::disabled());
        if let Some(creds) = self.credentials(auth, &region).await {
            config = config.credentials_provider(creds);
        }
        let client = aws_sdk_sns::Client::from_conf(config.build());
        if let Ok(mut m) = self.sns.lock() {
            m.insert(key, client.clone());
        }
        Ok(client)
    }

    /// Sends events to a queue, in batches of up to 10 (each under the size limit); one result
    /// per event, in order.
    pub async fn sqs(
        &self,
        queue_url: &str,
        region: Option<&str>,
        auth: &AwsAuth,
        events: &[Outgoing],
    ) -> Vec<Result<(), SendError>> {
        use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
        let client = match self.sqs_client(queue_url, region, auth).await {
            Ok(c) => c,
            Err(e) => return vec![Err(e); events.len()],
        };
        let fifo = queue_url.ends_with(".fifo");
        in_batches(events, "SQS", |batch| {
            let entries = batch
                .iter()
                .map(|&i| {
                    let e = &events[i];
                    let kind = MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(&e.kind)
                        .build()
                        .expect("data type is set");
                    let entry = SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(&e.body)
                        .message_attributes("event_type", kind);
                    let entry = if fifo {
                        entry
                            .message_group_id(&e.scope)
                            .message_deduplication_id(&e.id)
                    } else {
                        entry
                    };
                    entry.build().expect("id and body are set")
                })
                .collect();
            let call = client
                .send_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send();
            async move {
                let out = call
                    .await
                    .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
                Ok(out
                    .failed()
                    .iter()
                    .map(|f| {
                        (
                            f.id().to_string(),
                            f.code().to_string(),
                            f.message().unwrap_or("").to_string(),
                            f.sender_fault(),
                        )
                    })
                    .collect())
            }
        })
        .await
    }

    /// Publishes events to a topic, in batches of up to 10; one result per event, in order.
    pub async fn sns(
        &self,
        topic_arn: &str,
        region: Option<&str>,
        auth: &AwsAuth,
        events: &[Outgoing],
    ) -> Vec<Result<(), SendError>> {
        use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
        let client = match self.sns_client(topic_arn, region, auth).await {
            Ok(c) => c,
            Err(e) => return vec![Err(e); events.len()],
        };
        let fifo = topic_arn.ends_with(".fifo");
        in_batches(events, "SNS", |batch| {
            let entries = batch
                .iter()
                .map(|&i| {
                    let e = &events[i];
                    let kind = MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(&e.kind)
                        .build()
                        .expect("data type is set");
                    let entry = PublishBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message(&e.body)
                        .message_attributes("event_type", kind);
                    let entry = if fifo {
                        entry
                            .message_group_id(&e.scope)
                            .message_deduplication_id(&e.id)
                    } else {
                        entry
                    };
                    entry.build().expect("id and message are set")
                })
                .collect();
            let call = client
                .publish_batch()
                .topic_arn(topic_arn)
                .set_publish_batch_request_entries(Some(entries))
                .send();
            async move {
                let out = call
                    .await
                    .map_err(|e| aws_sdk_sns::error::DisplayErrorContext(e).to_string())?;
                Ok(out
                    .failed()
                    .iter()
                    .map(|f| {
                        (
                            f.id().to_string(),
                            f.code().to_string(),
                            f.message().unwrap_or("").to_string(),
                            f.sender_fault(),
                        )
                    })
                    .collect())
            }
        })
        .await
    }

    /// `POST /check_sqs`: one test message to the queue.
    pub async fn check_sqs(
        &self,
        queue_url: &str,
        auth: &AwsAuth,
        probe: &Outgoing,
    ) -> Result<(), String> {
        if sqs_endpoint(queue_url).is_none() {
            return Err(format!("invalid SQS url {queue_url:?}"));
        }
        match self
            .sqs(queue_url, None, auth, std::slice::from_ref(probe))
            .await
            .remove(0)
        {
            Ok(()) => Ok(()),
            Err(e) => Err(format!(
                "sending a message to the queue failed: {}",
                e.message()
            )),
        }
    }

    /// `POST /check_sns`: one test message to the topic.
    pub async fn check_sns(
        &self,
        topic_arn: &str,
        auth: &AwsAuth,
        probe: &Outgoing,
    ) -> Result<(), String> {
        if sns_region(topic_arn).is_none() {
            return Err(format!("invalid SNS topic ARN {topic_arn:?}"));
        }
        match self
            .sns(topic_arn, None, auth, std::slice::from_ref(probe))
            .await
            .remove(0)
        {
            Ok(()) => Ok(()),
            Err(e) => Err(format!("publishing the message failed. {}", e.message())),
        }
    }
}

/// Groups events into batches of at most 10 entries and the size limit in all; events over the
/// limit on their own are marked failed (permanently) and left out.
fn batches(events: &[Outgoing], results: &mut [Result<(), SendError>]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut size = 0;
    for (i, e) in events.iter().enumerate() {
        let bytes = e.body.len();
        if bytes > MAX_QUEUE_MESSAGE_BYTES {
            results[i] = Err(SendError::Permanent(format!(
                "the event is {bytes} bytes, over the {MAX_QUEUE_MESSAGE_BYTES}-byte message limit"
            )));
            continue;
        }
        match out.last_mut() {
            Some(b) if b.len() < BATCH_ENTRIES && size + bytes <= MAX_QUEUE_MESSAGE_BYTES => {
                b.push(i);
                size += bytes;
            }
            _ => {
                out.push(vec![i]);
                size = bytes;
            }
        }
    }
    out
}

/// An entry a batch call refused: its id, the error code and message, and whether the fault is
/// ours (then another attempt cannot succeed).
type Refused = (String, String, String, bool);

/// Sends `events` in batches (see [`batches`]) through `call`, which sends the events at the
/// given indexes as one batch call; one result per event, in order.
async fn in_batches<F, Fut>(
    events: &[Outgoing],
    service: &str,
    call: F,
) -> Vec<Result<(), SendError>>
where
    F: Fn(&[usize]) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Refused>, String>>,
{
    let mut results: Vec<Result<(), SendError>> = vec![Ok(()); events.len()];
    for batch in batches(events, &mut results) {
        match tokio::time::timeout(AWS_CALL_TIMEOUT, call(&batch)).await {
            Err(_) => fail(
                &mut results,
                &batch,
                &format!("{service} did not answer in time"),
            ),
            Ok(Err(e)) => fail(&mut results, &batch, &e),
            Ok(Ok(refused)) => {
                for (id, code, message, ours) in refused {
                    if let Ok(i) = id.parse::<usize>() {
                        let msg = format!("{code}: {message}");
                        results[i] = Err(if ours {
                            SendError::Permanent(msg)
                        } else {
                            SendError::Retry(msg)
                        });
                    }
                }
            }
        }
    }
    results
}

fn fail(results: &mut [Result<(), SendError>], batch: &[usize], error: &str) {
    for &i in batch {
        results[i] = Err(SendError::Retry(error.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_count_and_size() {
        let ev = |n: usize| Outgoing {
            id: "i".into(),
            kind: "message.new".into(),
            scope: "c".into(),
            body: "x".repeat(n),
        };
        let events: Vec<Outgoing> = (0..12)
            .map(|_| ev(10))
            .chain([ev(MAX_QUEUE_MESSAGE_BYTES + 1), ev(200_000), ev(100_000)])
            .collect();
        let mut results = vec![Ok(()); events.len()];
        let b = batches(&events, &mut results);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 3, 1]);
        assert!(matches!(results[12], Err(SendError::Permanent(_))));
    }

    #[test]
    fn signature_matches_the_sdks() {
        // The SDKs' verify_webhook: hmac.new(secret, body, sha256).hexdigest()
        let s = Senders::new("key", "secret");
        assert_eq!(
            s.signature(r#"{"type":"message.new"}"#),
            "9639707553946e47447c6b6e8baf14cd9793648e82714e66b6eca57a5c3dd78b"
        );
    }
}
