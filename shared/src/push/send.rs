//! Sending one push to one device, straight to the platform services: Apple's APNs over HTTP/2
//! with token authentication (an ES256 JWT per key, renewed every 50 minutes), and Firebase
//! Cloud Messaging HTTP v1 with an OAuth access token from the service account (an RS256 JWT
//! exchanged at its `token_uri`, renewed before it expires). The hosts come from the provider
//! (`apn_host`, `firebase_host`, the account's `token_uri`), so tests point them at loopback
//! stand-ins.

use crate::domain::push_provider::{PushProvider, ServiceAccount};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

const APNS_PRODUCTION: &str = "https://api.push.apple.com";
const APNS_SANDBOX: &str = "https://api.sandbox.push.apple.com";
const FCM_HOST: &str = "https://fcm.googleapis.com";
/// How long one request to a service may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// APNs provider tokens are good for an hour; they are renewed before.
const APNS_TOKEN_LIFE: Duration = Duration::from_secs(50 * 60);
const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// What became of one push.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Delivered,
    /// The service says the token is no good (unregistered, malformed, not for this app): the
    /// device is removed.
    InvalidToken(String),
    /// Worth trying again (throttled, unavailable, a network error).
    Retry(String),
    /// Refused for a reason another attempt will not change (bad credentials, a bad payload).
    Failed(String),
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The senders, with their clients and cached credentials.
#[derive(Default)]
pub struct Senders {
    /// HTTP/1.1 or HTTP/2 by ALPN (FCM, token endpoints).
    http: OnceCell<HttpClient>,
    /// HTTP/2 only (APNs; prior knowledge on a plain-text loopback stand-in).
    h2: OnceCell<HttpClient>,
    apns_tokens: Mutex<HashMap<String, (String, Instant)>>,
    fcm_tokens: Mutex<HashMap<String, (String, Instant)>>,
}

fn connector(h2_only: bool) -> Result<HttpsConnector<HttpConnector>, String> {
    // Small requests answered at once: no waiting on Nagle's algorithm.
    let mut tcp = HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("no TLS roots: {e}"))?
        .https_or_http();
    Ok(if h2_only {
        builder.enable_http2().wrap_connector(tcp)
    } else {
        builder.enable_http1().enable_http2().wrap_connector(tcp)
    })
}

async fn read(response: hyper::Response<hyper::body::Incoming>) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = match tokio::time::timeout(REQUEST_TIMEOUT, response.into_body().collect()).await {
        Ok(Ok(b)) => b.to_bytes(),
        _ => Bytes::new(),
    };
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn cached(cache: &Mutex<HashMap<String, (String, Instant)>>, key: &str) -> Option<String> {
    let cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .get(key)
        .filter(|(_, until)| *until > Instant::now())
        .map(|(t, _)| t.clone())
}

fn remember(
    cache: &Mutex<HashMap<String, (String, Instant)>>,
    key: &str,
    token: &str,
    life: Duration,
) {
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key.to_string(), (token.to_string(), Instant::now() + life));
}

fn forget(cache: &Mutex<HashMap<String, (String, Instant)>>, key: &str) {
    cache.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Senders {
    async fn client(&self, h2_only: bool) -> Result<&HttpClient, String> {
        let cell = if h2_only { &self.h2 } else { &self.http };
        cell.get_or_try_init(|| async {
            let mut builder = Client::builder(hyper_util::rt::TokioExecutor::new());
            builder.pool_idle_timeout(Duration::from_secs(60));
            if h2_only {
                builder.http2_only(true);
            }
            Ok(builder.build(connector(h2_only)?))
        })
        .await
    }

    async fn send(
        &self,
        h2_only: bool,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<(u16, Value), String> {
        let client = self.client(h2_only).await?;
        match tokio::time::timeout(REQUEST_TIMEOUT, client.request(request)).await {
            Ok(Ok(response)) => Ok(read(response).await),
            Ok(Err(e)) => Err(format!("request failed: {e}")),
            Err(_) => Err("no answer within 10 s".into()),
        }
    }

    /// The APNs provider token of a provider (cached per key).
    fn apns_token(&self, p: &PushProvider) -> Result<String, String> {
        let key = format!("{}:{}", p.apn_team_id, p.apn_key_id);
        if let Some(t) = cached(&self.apns_tokens, &key) {
            return Ok(t);
        }
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(p.apn_key_id.clone());
        let signing = jsonwebtoken::EncodingKey::from_ec_pem(p.apn_auth_key.as_bytes())
            .map_err(|e| format!("apn_auth_key: {e}"))?;
        let token = jsonwebtoken::encode(
            &header,
            &json!({"iss": p.apn_team_id, "iat": now_secs()}),
            &signing,
        )
        .map_err(|e| format!("signing the APNs token: {e}"))?;
        remember(&self.apns_tokens, &key, &token, APNS_TOKEN_LIFE);
        Ok(token)
    }

    /// One push to an APNs device token.
    pub async fn apns(&self, p: &PushProvider, token: &str, voip: bool, body: &Value) -> Outcome {
        let jwt = match self.apns_token(p) {
            Ok(t) => t,
            Err(e) => return Outcome::Failed(e),
        };
        let host = match p.apn_host.as_str() {
            "" if p.apn_development => APNS_SANDBOX,
            "" => APNS_PRODUCTION,
            h => h,
        };
        let (topic, kind) = if voip {
            (format!("{}.voip", p.apn_topic), "voip")
        } else {
            (p.apn_topic.clone(), "alert")
        };
        let request =
            hyper::Request::post(format!("{}/3/device/{token}", host.trim_end_matches('/')))
                .header("authorization", format!("bearer {jwt}"))
                .header("apns-topic", topic)
                .header("apns-push-type", kind)
                .header("apns-priority", "10")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())));
        let request = match request {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(format!("bad request: {e}")),
        };
        match self.send(true, request).await {
            Err(e) => Outcome::Retry(e),
            Ok((200, _)) => Outcome::Delivered,
            Ok((status, body)) => {
                let reason = body["reason"].as_str().unwrap_or_default().to_string();
                match (status, reason.as_str()) {
                    (410, _)
                    | (400, "BadDeviceToken" | "DeviceTokenNotForTopic" | "Unregistered") => {
                        Outcome::InvalidToken(format!("APNs {status} {reason}"))
                    }
                    (403, "ExpiredProviderToken" | "InvalidProviderToken") => {
                        forget(
                            &self.apns_tokens,
                            &format!("{}:{}", p.apn_team_id, p.apn_key_id),
                        );
                        Outcome::Retry(format!("APNs {status} {reason}"))
                    }
                    (429 | 500..=599, _) => Outcome::Retry(format!("APNs {status} {reason}")),
                    _ => Outcome::Failed(format!("APNs {status} {reason}")),
                }
            }
        }
    }

    /// The OAuth access token of a service account (cached until shortly before it expires).
    async fn fcm_token(&self, account: &ServiceAccount) -> Result<String, Outcome> {
        if let Some(t) = cached(&self.fcm_tokens, &account.client_email) {
            return Ok(t);
        }
        let iat = now_secs();
        let claims = json!({
            "iss": account.client_email, "scope": FCM_SCOPE, "aud": account.token_uri,
            "iat": iat, "exp": iat + 3600,
        });
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(account.private_key.as_bytes())
            .map_err(|e| Outcome::Failed(format!("firebase_credentials: {e}")))?;
        let assertion = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &key,
        )
        .map_err(|e| Outcome::Failed(format!("signing the token request: {e}")))?;
        let form = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
        );
        let request = hyper::Request::post(&account.token_uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| Outcome::Failed(format!("bad token_uri: {e}")))?;
        match self.send(false, request).await {
            Err(e) => Err(Outcome::Retry(e)),
            Ok((200, body)) => {
                let token = body["access_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if token.is_empty() {
                    return Err(Outcome::Failed(
                        "the token endpoint gave no access_token".into(),
                    ));
                }
                let life = body["expires_in"]
                    .as_u64()
                    .unwrap_or(3600)
                    .saturating_sub(300);
                remember(
                    &self.fcm_tokens,
                    &account.client_email,
                    &token,
                    Duration::from_secs(life),
                );
                Ok(token)
            }
            Ok((status @ (429 | 500..=599), _)) => {
                Err(Outcome::Retry(format!("token endpoint {status}")))
            }
            Ok((status, body)) => Err(Outcome::Failed(format!(
                "token endpoint {status}: {}",
                body["error_description"]
                    .as_str()
                    .or(body["error"].as_str())
                    .unwrap_or_default()
            ))),
        }
    }

    /// One push to an FCM registration token.
    pub async fn fcm(&self, p: &PushProvider, token: &str, message: &Value) -> Outcome {
        let account = match p.service_account() {
            Ok(a) => a,
            Err(e) => return Outcome::Failed(e.message),
        };
        let access = match self.fcm_token(&account).await {
            Ok(t) => t,
            Err(o) => return o,
        };
        let host = if p.firebase_host.is_empty() {
            FCM_HOST
        } else {
            p.firebase_host.as_str()
        };
        let mut message = message.clone();
        message["token"] = Value::String(token.to_string());
        let request = hyper::Request::post(format!(
            "{}/v1/projects/{}/messages:send",
            host.trim_end_matches('/'),
            account.project_id
        ))
        .header("authorization", format!("Bearer {access}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            json!({ "message": message }).to_string(),
        )));
        let request = match request {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(format!("bad request: {e}")),
        };
        match self.send(false, request).await {
            Err(e) => Outcome::Retry(e),
            Ok((200, _)) => Outcome::Delivered,
            Ok((status, body)) => {
                let error = &body["error"];
                let code = error["details"]
                    .as_array()
                    .and_then(|d| d.iter().find_map(|x| x["errorCode"].as_str()))
                    .or(error["status"].as_str())
                    .unwrap_or_default()
                    .to_string();
                let said = format!(
                    "FCM {status} {code}: {}",
                    error["message"].as_str().unwrap_or_default()
                );
                match (status, code.as_str()) {
                    (404, _) | (_, "UNREGISTERED") => Outcome::InvalidToken(said),
                    (400, "INVALID_ARGUMENT")
                        if error["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("registration token")) =>
                    {
                        Outcome::InvalidToken(said)
                    }
                    (401, _) => {
                        forget(&self.fcm_tokens, &account.client_email);
                        Outcome::Retry(said)
                    }
                    (429 | 500..=599, _) => Outcome::Retry(said),
                    _ => Outcome::Failed(said),
                }
            }
        }
    }
}
