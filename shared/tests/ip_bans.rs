//! IP bans, in process on both stores: an app-wide ban with `ip_ban` bans the address the user
//! last connected from; connections from it are refused for anyone (Stream's code 17), the
//! banned user is refused from anywhere, and lifting the ban or its end lets them back.

mod support;

use shared::domain::ban::BanRequest;
use shared::realtime::connect::{open, Arrival};
use std::collections::HashMap;
use support::chat::{token, TestChat, API_KEY};

async fn connect(t: &TestChat, user: &str, ip: &str) -> Result<(), shared::domain::ApiError> {
    let query: HashMap<String, String> = [
        ("api_key", API_KEY.to_string()),
        ("authorization", token(Some(user))),
        ("stream-auth-type", "jwt".to_string()),
        (
            "json",
            format!(r#"{{"user_id":"{user}","user_details":{{"id":"{user}"}}}}"#),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let arrival = Arrival {
        host: "localhost".into(),
        paths: vec!["/connect".into()],
        ip: Some(ip.into()),
    };
    open(&t.chat, &query, &arrival).await.map(|_| ())
}

fn ban(v: serde_json::Value) -> BanRequest {
    serde_json::from_value(v).expect("ban request")
}

async fn ip_bans_follow_the_address(t: TestChat) {
    t.users(&["ip-bob", "ip-eve", "ip-mod"]).await;
    connect(&t, "ip-bob", "10.0.0.7")
        .await
        .expect("bob connects");
    connect(&t, "ip-eve", "10.0.0.8")
        .await
        .expect("eve connects");
    let server = t.server().await;
    t.chat
        .ban_user(
            &server,
            ban(serde_json::json!({"target_user_id": "ip-bob", "ip_ban": true, "timeout": 60, "banned_by_id": "ip-mod"})),
        )
        .await
        .expect("ip ban");
    for (user, ip) in [
        ("ip-bob", "10.0.0.7"),
        ("ip-bob", "10.0.0.99"),
        ("ip-eve", "10.0.0.7"),
    ] {
        let err = connect(&t, user, ip).await.expect_err("refused");
        assert_eq!(err.code.number(), 17, "{user} from {ip}: {}", err.message);
        assert!(err.message.contains("IP address"), "{}", err.message);
    }
    connect(&t, "ip-eve", "10.0.0.8")
        .await
        .expect("other addresses are fine");
    // A plain ban leaves connections alone.
    t.chat
        .ban_user(
            &server,
            ban(serde_json::json!({"target_user_id": "ip-eve", "banned_by_id": "ip-mod"})),
        )
        .await
        .expect("ban");
    connect(&t, "ip-eve", "10.0.0.8")
        .await
        .expect("a banned user still connects");

    // The ban ends by itself: after its hour, everyone is back.
    t.clock.advance(chrono::Duration::minutes(61));
    connect(&t, "ip-eve", "10.0.0.7")
        .await
        .expect("ended ip ban");
    connect(&t, "ip-bob", "10.0.0.7")
        .await
        .expect("ended ip ban");

    // Banned again, then unbanned: lifted at once.
    t.chat
        .ban_user(&server, ban(serde_json::json!({"target_user_id": "ip-bob", "ip_ban": true, "banned_by_id": "ip-mod"})))
        .await
        .expect("ip ban");
    assert!(connect(&t, "ip-eve", "10.0.0.7").await.is_err());
    t.chat
        .unban_user(
            &server,
            ban(serde_json::json!({"target_user_id": "ip-bob"})),
        )
        .await
        .expect("unban");
    connect(&t, "ip-eve", "10.0.0.7")
        .await
        .expect("unbanned address");
    connect(&t, "ip-bob", "10.0.0.7")
        .await
        .expect("unbanned user");
}

#[tokio::test]
async fn ip_bans_follow_the_address_embedded() {
    ip_bans_follow_the_address(TestChat::embedded().await).await;
}

#[tokio::test]
async fn ip_bans_follow_the_address_dynamodb() {
    ip_bans_follow_the_address(TestChat::dynamodb().await).await;
}

#[tokio::test]
async fn ip_bans_are_app_wide_and_open_only() {
    let t = TestChat::embedded().await;
    t.users(&["ipc-bob"]).await;
    t.channel("ipc", &["ipc-bob"]).await;
    let server = t.server().await;
    for req in [
        serde_json::json!({"target_user_id": "ipc-bob", "ip_ban": true, "type": "messaging", "id": "ipc"}),
        serde_json::json!({"target_user_id": "ipc-bob", "ip_ban": true, "shadow": true}),
    ] {
        let err = t
            .chat
            .ban_user(&server, ban(req))
            .await
            .expect_err("refused");
        assert_eq!(err.code.number(), 4, "{}", err.message);
    }
}
