//! Pushes through Amazon SNS mobile push, on moto: a platform application per provider (GCM
//! for Firebase, APNS_SANDBOX for a development APNs config) made once and updated when the
//! provider's credentials change, an endpoint per device token kept on the device, `Publish`
//! with each platform's message, and a disabled endpoint removing its device.

mod support;

use http_body_util::BodyExt;
use serde_json::{json, Value};
use shared::domain::device::NewDevice;
use shared::hooks::Hooks;
use shared::push::sns::SnsPush;
use shared::push::{Pushes, Retry};
use shared::service::messages::SendMessage;
use std::time::Duration;
use support::chat::{OutboxFeed, TestChat};
use support::moto::Moto;

const APNS_KEY: &str = include_str!("fixtures/push/apns_key.p8");
const FCM_KEY: &str = include_str!("fixtures/push/fcm_key.pem");

fn credentials(email: &str) -> String {
    json!({"type": "service_account", "project_id": "chat-test", "client_email": email,
        "private_key": FCM_KEY})
    .to_string()
}

/// Every platform endpoint moto holds, with the messages published to it.
async fn endpoints(moto: &Moto) -> Vec<Value> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<hyper::body::Bytes>>();
    let uri: hyper::Uri = format!("{}/moto-api/data.json", moto.endpoint())
        .parse()
        .expect("uri");
    let response = client.get(uri).await.expect("moto data");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let data: Value = serde_json::from_slice(&body).expect("json");
    data["sns"]["PlatformEndpoint"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn run(hooks: &Hooks, t: &TestChat, feed: &mut OutboxFeed) {
    let events = feed.next(t).await;
    hooks.dispatch(&t.chat, &events).await.expect("dispatch");
}

async fn send(t: &TestChat, text: &str) {
    let send: SendMessage =
        serde_json::from_value(json!({"message": {"text": text, "user_id": "ann"}})).expect("send");
    t.chat
        .send_message(&t.server().await, "messaging", "sns-room", send)
        .await
        .expect("send");
}

#[tokio::test]
async fn pushes_go_through_sns_platform_endpoints() {
    let moto = Moto::shared();
    let sns = aws_sdk_sns::Client::new(&moto.sdk_config());
    let t = TestChat::embedded().await;
    let server = t.server().await;
    let apn = json!({"apn_config": {"auth_key": APNS_KEY, "key_id": "K1", "team_id": "T1",
        "bundle_id": "app.chat", "development": true}});
    t.chat
        .update_app_settings(&server, apn.as_object().expect("object"))
        .await
        .expect("apn config");
    let firebase = json!({"name": "android", "type": "firebase",
        "firebase_credentials": credentials("pusher@test.iam")});
    t.chat
        .upsert_push_provider(&server, Some(firebase))
        .await
        .expect("provider");
    t.users(&["ann", "bob", "cat", "dan"]).await;
    t.channel("sns-room", &["ann", "bob", "cat", "dan"]).await;
    let tokens = [
        ("bob", "sns-bob-token", "firebase", Some("android")),
        ("cat", "sns-cat-token", "apn", None),
        ("dan", "sns-dan-token", "apn", None),
    ];
    for (user, token, provider, name) in tokens {
        let new = NewDevice {
            id: token.into(),
            push_provider: provider.into(),
            push_provider_name: name.map(str::to_string),
            user_id: Some(user.into()),
            ..Default::default()
        };
        t.chat.add_device(&server, new).await.expect("device");
    }
    let pushes = Pushes::new()
        .with_sns(SnsPush::new(sns.clone()))
        .with_retry(Retry {
            attempts: 2,
            first_backoff: Duration::from_millis(10),
        });
    let hooks = Hooks::new(&t.chat).with_pushes(pushes);
    let mut feed = OutboxFeed::default();
    run(&hooks, &t, &mut feed).await;

    send(&t, "through sns").await;
    run(&hooks, &t, &mut feed).await;
    let apps = sns
        .list_platform_applications()
        .send()
        .await
        .expect("applications");
    let arns: Vec<String> = apps
        .platform_applications()
        .iter()
        .filter_map(|a| a.platform_application_arn().map(str::to_string))
        .filter(|a| a.contains("/chat-"))
        .collect();
    assert!(
        arns.iter()
            .any(|a| a.contains("app/GCM/chat-firebase-android")),
        "{arns:?}"
    );
    assert!(
        arns.iter()
            .any(|a| a.contains("app/APNS_SANDBOX/chat-apn-default")),
        "{arns:?}"
    );
    let published = endpoints(&moto).await;
    let messages = |token: &str| -> Vec<Value> {
        published
            .iter()
            .filter(|e| e["token"] == token)
            .flat_map(|e| {
                e["messages"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
                    .into_values()
            })
            .filter_map(|m| serde_json::from_str(m.as_str().unwrap_or_default()).ok())
            .collect()
    };
    let bob = messages("sns-bob-token");
    assert_eq!(bob.len(), 1, "{published:?}");
    let gcm: Value = serde_json::from_str(bob[0]["GCM"].as_str().unwrap_or_default()).expect("GCM");
    assert_eq!(gcm["fcmV1Message"]["message"]["data"]["receiver_id"], "bob");
    assert_eq!(
        gcm["fcmV1Message"]["message"]["data"]["cid"],
        "messaging:sns-room"
    );
    let cat = messages("sns-cat-token");
    assert_eq!(cat.len(), 1);
    let aps: Value =
        serde_json::from_str(cat[0]["APNS_SANDBOX"].as_str().unwrap_or_default()).expect("APNS");
    assert_eq!(aps["aps"]["alert"]["body"], "through sns");
    assert_eq!(aps["stream"]["receiver_id"], "cat");
    // The endpoint is kept on the device, never shown.
    let listed = t
        .chat
        .list_devices(&server, Some("cat".into()))
        .await
        .expect("devices");
    assert!(!listed.to_string().contains("endpoint"), "{listed}");

    // dan's endpoint is disabled (the platform refused the token): the next push removes it.
    let dan = published
        .iter()
        .find(|e| e["token"] == "sns-dan-token")
        .and_then(|e| e["arn"].as_str())
        .expect("dan's endpoint")
        .to_string();
    sns.set_endpoint_attributes()
        .endpoint_arn(&dan)
        .attributes("Enabled", "false")
        .send()
        .await
        .expect("disable");
    // New credentials update the application in place.
    let firebase = json!({"name": "android", "type": "firebase",
        "firebase_credentials": credentials("rotated@test.iam")});
    t.chat
        .upsert_push_provider(&server, Some(firebase))
        .await
        .expect("provider");
    send(&t, "second").await;
    run(&hooks, &t, &mut feed).await;
    let left = t
        .chat
        .list_devices(&server, Some("dan".into()))
        .await
        .expect("devices");
    assert_eq!(left["devices"], json!([]));
    let gcm_arn = arns
        .iter()
        .find(|a| a.contains("app/GCM/chat-firebase-android"))
        .expect("gcm");
    let attrs = sns
        .get_platform_application_attributes()
        .platform_application_arn(gcm_arn)
        .send()
        .await
        .expect("attributes");
    let credential = attrs
        .attributes()
        .and_then(|a| a.get("PlatformCredential"))
        .cloned()
        .unwrap_or_default();
    assert!(credential.contains("rotated@test.iam"), "{credential}");
    assert_eq!(
        endpoints(&moto)
            .await
            .iter()
            .filter(|e| e["token"] == "sns-bob-token")
            .count(),
        1
    );
    let counts = &hooks.pushes().counts;
    assert_eq!(counts.sent.load(std::sync::atomic::Ordering::Relaxed), 5);
    assert_eq!(
        counts
            .devices_removed
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}
