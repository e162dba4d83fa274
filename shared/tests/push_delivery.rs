//! Push delivery end to end on loopback stand-ins of the platform services: an FCM HTTP v1
//! stand-in (HTTP/1.1, with its OAuth token endpoint checking the service account's signed
//! assertion) and an APNs stand-in (HTTP/2 only, checking the ES256 provider token). Messages
//! sent through the service reach the pipeline from the outbox; each offline member's device
//! gets exactly one push with Stream's payload; the sender, a watching member, a member who
//! muted the channel or the sender, `skip_push`, a type without `push_notifications` and a
//! thread reply's non-participants get none; an unregistered token removes its device.

mod support;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{json, Value};
use shared::domain::device::NewDevice;
use shared::hooks::Hooks;
use shared::service::channels::ChannelQuery;
use shared::service::messages::SendMessage;
use std::sync::{Arc, Mutex};
use support::chat::{obj, OutboxFeed, TestChat};

const APNS_KEY: &str = include_str!("fixtures/push/apns_key.p8");
const APNS_PUB: &str = include_str!("fixtures/push/apns_pub.pem");
const FCM_KEY: &str = include_str!("fixtures/push/fcm_key.pem");
const FCM_PUB: &str = include_str!("fixtures/push/fcm_pub.pem");
const ACCESS_TOKEN: &str = "stand-in-access-token";

/// One request a stand-in took: its path, headers and JSON body.
#[derive(Clone, Debug)]
struct Taken {
    path: String,
    headers: hyper::HeaderMap,
    body: Value,
}

type Log = Arc<Mutex<Vec<Taken>>>;
type Answer = fn(&Taken, u16) -> (u16, Value);

/// Serves `answer` on a loopback port (HTTP/2 only when `h2`); returns the port and the log.
async fn stand_in(h2: bool, answer: Answer) -> (u16, Log) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let log: Log = Arc::default();
    let kept = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let log = kept.clone();
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let log = log.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            let headers = req.headers().clone();
                            let bytes = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                                Value::String(String::from_utf8_lossy(&bytes).into())
                            });
                            let taken = Taken {
                                path,
                                headers,
                                body,
                            };
                            let (status, reply) = answer(&taken, port);
                            log.lock().expect("log").push(taken);
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(reply.to_string())))
                                    .expect("response"),
                            )
                        }
                    },
                );
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(io, service)
                    .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                }
            });
        }
    });
    (port, log)
}

fn no_spec_claims(alg: jsonwebtoken::Algorithm) -> jsonwebtoken::Validation {
    let mut v = jsonwebtoken::Validation::new(alg);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    v
}

/// APNs: a valid provider token for team T1 / key K1 and topic `app.chat`; token `dead…` is
/// unregistered.
fn apns(taken: &Taken, _: u16) -> (u16, Value) {
    let bearer = taken.headers["authorization"].to_str().unwrap_or_default();
    let jwt = bearer.strip_prefix("bearer ").unwrap_or_default();
    let key = jsonwebtoken::DecodingKey::from_ec_pem(APNS_PUB.as_bytes()).expect("key");
    let ok = jsonwebtoken::decode_header(jwt).is_ok_and(|h| h.kid.as_deref() == Some("K1"))
        && jsonwebtoken::decode::<Value>(
            jwt,
            &key,
            &no_spec_claims(jsonwebtoken::Algorithm::ES256),
        )
        .is_ok_and(|d| d.claims["iss"] == "T1");
    if !ok {
        return (403, json!({"reason": "InvalidProviderToken"}));
    }
    if taken.headers["apns-topic"] != "app.chat" {
        return (400, json!({"reason": "DeviceTokenNotForTopic"}));
    }
    if taken.path.ends_with("/dead-apn") {
        return (410, json!({"reason": "Unregistered"}));
    }
    (200, Value::Null)
}

/// FCM: the token endpoint takes the service account's assertion; sends need its token.
fn fcm(taken: &Taken, port: u16) -> (u16, Value) {
    if taken.path == "/token" {
        let form = taken.body.as_str().unwrap_or_default();
        let assertion = form
            .split('&')
            .find_map(|kv| kv.strip_prefix("assertion="))
            .unwrap_or_default();
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(FCM_PUB.as_bytes()).expect("key");
        let claims = jsonwebtoken::decode::<Value>(
            assertion,
            &key,
            &no_spec_claims(jsonwebtoken::Algorithm::RS256),
        );
        return match claims {
            Ok(d)
                if d.claims["iss"] == "pusher@test.iam"
                    && d.claims["aud"] == format!("http://127.0.0.1:{port}/token") =>
            {
                (
                    200,
                    json!({"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"}),
                )
            }
            _ => (400, json!({"error": "invalid_grant"})),
        };
    }
    if taken.headers["authorization"] != format!("Bearer {ACCESS_TOKEN}").as_str() {
        return (401, json!({"error": {"status": "UNAUTHENTICATED"}}));
    }
    if taken.path != "/v1/projects/chat-test/messages:send" {
        return (
            404,
            json!({"error": {"status": "NOT_FOUND", "message": "no such project"}}),
        );
    }
    if taken.body["message"]["token"] == "dead-fcm" {
        return (
            404,
            json!({"error": {"code": 404, "status": "NOT_FOUND", "message": "Requested entity was not found.", "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}}),
        );
    }
    (200, json!({"name": "projects/chat-test/messages/1"}))
}

struct Pipeline {
    hooks: Hooks,
    feed: OutboxFeed,
}

impl Pipeline {
    /// Hands every event committed since the last call to the pipeline.
    async fn run(&mut self, t: &TestChat) {
        let events = self.feed.next(t).await;
        self.hooks
            .dispatch(&t.chat, &events)
            .await
            .expect("dispatch");
    }
}

/// Adds a Firebase provider named `name` whose service account's tokens come from `port`
/// (and, when `host`, whose sends go there too).
async fn firebase_provider(t: &TestChat, name: &str, port: u16, host: bool) {
    let credentials = json!({
        "type": "service_account", "project_id": "chat-test", "client_email": "pusher@test.iam",
        "private_key": FCM_KEY, "token_uri": format!("http://127.0.0.1:{port}/token"),
    });
    let mut provider = json!({"name": name, "type": "firebase",
        "firebase_credentials": credentials.to_string()});
    if host {
        provider["firebase_host"] = json!(format!("http://127.0.0.1:{port}"));
    }
    t.chat
        .upsert_push_provider(&t.server().await, Some(provider))
        .await
        .expect("firebase provider");
}

async fn device_count(t: &TestChat, user: &str) -> usize {
    let listed = t
        .chat
        .list_devices(&t.server().await, Some(user.into()))
        .await
        .expect("devices");
    listed["devices"].as_array().map_or(0, Vec::len)
}

async fn device(t: &TestChat, user: &str, id: &str, provider: &str, name: Option<&str>) {
    let new = NewDevice {
        id: id.into(),
        push_provider: provider.into(),
        push_provider_name: name.map(str::to_string),
        user_id: Some(user.into()),
        ..Default::default()
    };
    t.chat
        .add_device(&t.server().await, new)
        .await
        .expect("device");
}

async fn send(t: &TestChat, channel: &str, body: Value) -> String {
    let send: SendMessage = serde_json::from_value(body).expect("send body");
    let sent = t
        .chat
        .send_message(&t.server().await, "messaging", channel, send)
        .await
        .expect("send");
    sent["message"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The device tokens pushed to since the log was cleared.
fn tokens(apns: &Log, fcm: &Log) -> Vec<String> {
    let mut out: Vec<String> = apns
        .lock()
        .expect("log")
        .iter()
        .map(|t| t.path.rsplit('/').next().unwrap_or_default().to_string())
        .collect();
    out.extend(
        fcm.lock()
            .expect("log")
            .iter()
            .filter(|t| t.path != "/token")
            .map(|t| {
                t.body["message"]["token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            }),
    );
    out.sort();
    apns.lock().expect("log").clear();
    fcm.lock().expect("log").retain(|t| t.path == "/token");
    out
}

#[tokio::test]
async fn offline_members_get_one_push_per_message() {
    let t = TestChat::embedded().await;
    let (apns_port, apns_log) = stand_in(true, apns).await;
    let (fcm_port, fcm_log) = stand_in(false, fcm).await;
    let server = t.server().await;
    // The legacy APNs config, and a named Firebase provider.
    let apn_config = json!({"apn_config": {
        "auth_type": "token", "auth_key": APNS_KEY, "key_id": "K1", "team_id": "T1",
        "bundle_id": "app.chat", "host": format!("http://127.0.0.1:{apns_port}"),
    }});
    t.chat
        .update_app_settings(&server, apn_config.as_object().expect("object"))
        .await
        .expect("apn config");
    firebase_provider(&t, "android", fcm_port, true).await;

    let people = ["ann", "bob", "cat", "dan", "eve", "fay", "gus"];
    t.users(&people).await;
    t.channel("room", &people).await;
    device(&t, "ann", "ann-apn", "apn", None).await;
    device(&t, "bob", "bob-fcm", "firebase", Some("android")).await;
    device(&t, "cat", "cat-apn", "apn", None).await;
    device(&t, "dan", "dan-apn", "apn", None).await;
    device(&t, "eve", "eve-fcm", "firebase", Some("android")).await;
    device(&t, "fay", "dead-fcm", "firebase", Some("android")).await;
    device(&t, "fay", "dead-apn", "apn", None).await;
    device(&t, "gus", "gus-apn", "apn", None).await;
    // dan watches the room; eve muted it; gus muted ann.
    t.chat
        .open_connection("dan-conn", "dan", "test", false, false)
        .await
        .expect("connection");
    let mut dan = t.user("dan").await;
    dan.connection_id = Some("dan-conn".into());
    let watch = ChannelQuery {
        watch: Some(true),
        ..Default::default()
    };
    t.chat
        .get_or_create_channel(&dan, "messaging", Some("room"), watch)
        .await
        .expect("watch");
    let mute: shared::service::members::ChannelMuteRequest =
        serde_json::from_value(json!({"channel_cid": "messaging:room", "user_id": "eve"}))
            .expect("mute");
    t.chat
        .mute_channels(&server, mute, true)
        .await
        .expect("mute channel");
    t.chat
        .mute_users(
            &t.user("gus").await,
            serde_json::from_value(json!({"target_ids": ["ann"]})).expect("mute"),
            true,
        )
        .await
        .expect("mute user");

    let mut pipeline = Pipeline {
        hooks: Hooks::new(&t.chat),
        feed: OutboxFeed::default(),
    };
    pipeline.run(&t).await;
    tokens(&apns_log, &fcm_log);

    let id = send(
        &t,
        "room",
        json!({"message": {"text": "hello there", "user_id": "ann"}}),
    )
    .await;
    pipeline.run(&t).await;
    let apns_taken = apns_log.lock().expect("log").clone();
    assert_eq!(
        tokens(&apns_log, &fcm_log),
        ["bob-fcm", "cat-apn", "dead-apn", "dead-fcm"],
        "pushed devices"
    );
    let cat = apns_taken
        .iter()
        .find(|t| t.path == "/3/device/cat-apn")
        .expect("cat's push");
    assert_eq!(cat.headers["apns-push-type"], "alert");
    assert_eq!(cat.body["aps"]["alert"]["title"], "New message from ann");
    assert_eq!(cat.body["aps"]["alert"]["body"], "hello there");
    assert_eq!(cat.body["aps"]["badge"], 1);
    assert_eq!(cat.body["stream"]["id"], id.as_str());
    assert_eq!(cat.body["stream"]["cid"], "messaging:room");
    assert_eq!(cat.body["stream"]["receiver_id"], "cat");
    // Unregistered tokens removed their devices; the others stay.
    assert_eq!(device_count(&t, "fay").await, 0);
    assert_eq!(device_count(&t, "bob").await, 1);

    // skip_push: nothing; the next message goes again, with the badge counting both.
    send(
        &t,
        "room",
        json!({"message": {"text": "quiet", "user_id": "ann"}, "skip_push": true}),
    )
    .await;
    pipeline.run(&t).await;
    assert!(tokens(&apns_log, &fcm_log).is_empty(), "skip_push pushed");
    send(
        &t,
        "room",
        json!({"message": {"text": "again", "user_id": "bob"}}),
    )
    .await;
    pipeline.run(&t).await;
    // gus muted ann, not bob.
    assert_eq!(
        tokens(&apns_log, &fcm_log),
        ["ann-apn", "cat-apn", "gus-apn"]
    );

    // A thread reply goes to the thread's participants only.
    send(
        &t,
        "room",
        json!({"message": {"text": "reply", "user_id": "cat", "parent_id": id}}),
    )
    .await;
    pipeline.run(&t).await;
    assert_eq!(tokens(&apns_log, &fcm_log), ["ann-apn"], "thread reply");

    // Preferences: bob wants nothing from the room, cat only mentions, gus snoozed.
    let until = shared::domain::clock::format_time(t.chat.now() + chrono::Duration::hours(1));
    let prefs: shared::service::push_preferences::UpsertPushPreferences =
        serde_json::from_value(json!({"preferences": [
            {"user_id": "bob", "channel_cid": "messaging:room", "chat_level": "none"},
            {"user_id": "cat", "chat_level": "mentions"},
            {"user_id": "gus", "disabled_until": until},
        ]}))
        .expect("preferences");
    let answer = t
        .chat
        .upsert_push_preferences(&server, prefs)
        .await
        .expect("preferences");
    assert_eq!(answer["user_preferences"]["cat"]["chat_level"], "mentions");
    assert_eq!(
        answer["user_channel_preferences"]["bob"]["messaging:room"]["chat_level"],
        "none"
    );
    send(
        &t,
        "room",
        json!({"message": {"text": "plain", "user_id": "ann"}}),
    )
    .await;
    pipeline.run(&t).await;
    assert!(
        tokens(&apns_log, &fcm_log).is_empty(),
        "preferences ignored"
    );
    send(
        &t,
        "room",
        json!({"message": {"text": "hey @cat", "user_id": "ann", "mentioned_users": ["cat", "bob"]}}),
    )
    .await;
    pipeline.run(&t).await;
    assert_eq!(tokens(&apns_log, &fcm_log), ["cat-apn"], "mentions only");

    // A channel change's system message pushes like a send, unless skip_push says not to.
    let quiet: shared::service::channels::ChannelUpdate = serde_json::from_value(json!({
        "data": {"name": "renamed"}, "skip_push": true,
        "message": {"text": "renamed the room", "user_id": "ann"},
    }))
    .expect("update");
    t.chat
        .update_channel(&server, "messaging", "room", quiet)
        .await
        .expect("update");
    pipeline.run(&t).await;
    assert!(
        tokens(&apns_log, &fcm_log).is_empty(),
        "skip_push on an update pushed"
    );
    let truncate: shared::service::channels::TruncateRequest = serde_json::from_value(
        json!({"message": {"text": "cleared the room", "user_id": "ann", "mentioned_users": ["cat"]}}),
    )
    .expect("truncate");
    t.chat
        .truncate_channel(&server, "messaging", "room", truncate)
        .await
        .expect("truncate");
    pipeline.run(&t).await;
    assert_eq!(
        tokens(&apns_log, &fcm_log),
        ["cat-apn"],
        "a truncation's message"
    );

    // A type without push notifications pushes nothing.
    let nopush = json!({"name": "nopush", "push_notifications": false});
    t.chat
        .create_channel_type(&server, nopush.as_object().expect("object"))
        .await
        .expect("type");
    let create = ChannelQuery {
        data: Some(obj(
            json!({"members": ["ann", "cat"], "created_by_id": "ann"}),
        )),
        ..Default::default()
    };
    t.chat
        .get_or_create_channel(&server, "nopush", Some("quiet"), create)
        .await
        .expect("channel");
    let send_body: SendMessage =
        serde_json::from_value(json!({"message": {"text": "hi", "user_id": "ann"}})).expect("send");
    t.chat
        .send_message(&server, "nopush", "quiet", send_body)
        .await
        .expect("send");
    pipeline.run(&t).await;
    assert!(
        tokens(&apns_log, &fcm_log).is_empty(),
        "push_notifications: false pushed"
    );
    let counts = &pipeline.hooks.pushes().counts;
    assert_eq!(
        counts
            .devices_removed
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[tokio::test]
async fn a_service_that_is_down_is_skipped_for_a_while() {
    let t = TestChat::embedded().await;
    // A service that hangs up on every request, counting them.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let closed = listener.local_addr().expect("addr").port();
    let tried = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = tried.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    firebase_provider(&t, "down", closed, false).await;
    t.users(&["ann", "bob"]).await;
    t.channel("down-room", &["ann", "bob"]).await;
    device(&t, "bob", "bob-token", "firebase", Some("down")).await;
    let pushes = shared::push::Pushes::new().with_retry(shared::push::Retry {
        attempts: 2,
        first_backoff: std::time::Duration::from_millis(10),
    });
    let mut pipeline = Pipeline {
        hooks: Hooks::new(&t.chat).with_pushes(pushes),
        feed: OutboxFeed::default(),
    };
    pipeline.run(&t).await;
    for text in ["one", "two"] {
        send(
            &t,
            "down-room",
            json!({"message": {"text": text, "user_id": "ann"}}),
        )
        .await;
        let started = std::time::Instant::now();
        pipeline.run(&t).await;
        // Tried with its retries the first time; skipped (at once) the second.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
    assert_eq!(
        tried.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the first push's two attempts, none for the second"
    );
    let counts = &pipeline.hooks.pushes().counts;
    assert_eq!(counts.failed.load(std::sync::atomic::Ordering::Relaxed), 2);
    assert_eq!(counts.sent.load(std::sync::atomic::Ordering::Relaxed), 0);
    // The device stays: the service said nothing about its token.
    assert_eq!(device_count(&t, "bob").await, 1);
}
