//! Timed bans end by themselves, in process with a clock the test moves: the ban stops applying
//! at its end, and its timer lifts it (record gone, flags cleared, `user.unbanned`) once.

mod support;

use serde_json::json;
use shared::domain::ban::BanRequest;
use support::chat::{obj, TestChat};

async fn send(
    t: &TestChat,
    user: &str,
    text: &str,
) -> Result<serde_json::Value, shared::domain::ApiError> {
    let send = shared::service::messages::SendMessage {
        message: obj(json!({ "text": text, "user_id": user })),
        ..Default::default()
    };
    t.chat
        .send_message(&t.server().await, "messaging", "court", send)
        .await
}

async fn events(t: &TestChat, kind: &str) -> Vec<serde_json::Value> {
    t.outbox(kind).await.into_iter().map(|i| i.data).collect()
}

fn ban(v: serde_json::Value) -> BanRequest {
    serde_json::from_value(v).expect("request")
}

#[tokio::test]
async fn timed_bans_end_by_themselves() {
    let t = TestChat::embedded().await;
    t.users(&["ann", "bob", "judge"]).await;
    t.channel("court", &["ann", "bob"]).await;
    let server = t.server().await;
    t.chat
        .ban_user(
            &server,
            ban(json!({"target_user_id": "bob", "timeout": 10, "banned_by_id": "judge"})),
        )
        .await
        .expect("app ban");
    t.chat
        .ban_user(
            &server,
            ban(
                json!({"target_user_id": "ann", "type": "messaging", "id": "court", "timeout": 30}),
            ),
        )
        .await
        .expect("channel ban");
    assert!(send(&t, "bob", "objection").await.is_err());
    assert!(send(&t, "ann", "objection").await.is_err());

    // Nine minutes on: still banned, nothing lifted.
    t.clock.advance(chrono::Duration::minutes(9));
    assert_eq!(t.chat.run_due_timers().await.expect("timers"), 0);
    assert!(send(&t, "bob", "objection").await.is_err());

    // Past its end, bob's ban no longer applies, and its timer lifts it.
    t.clock.advance(chrono::Duration::minutes(2));
    assert!(send(&t, "bob", "sustained").await.is_ok());
    assert_eq!(t.chat.run_due_timers().await.expect("timers"), 1);
    let (bob, _) = t.chat.get_user("bob").await.unwrap().unwrap();
    assert!(!bob.banned && bob.ban_expires.is_none());
    let unbanned = events(&t, "user.unbanned").await;
    assert_eq!(unbanned.len(), 1);
    assert_eq!(unbanned[0]["user"]["id"], "bob");
    let bans = t
        .chat
        .query_banned_users(&server, Default::default())
        .await
        .expect("query");
    let left: Vec<&str> = bans["bans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["user"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(left, ["ann"], "only the channel ban is left");

    // The channel ban ends later, once.
    assert!(send(&t, "ann", "objection").await.is_err());
    t.clock.advance(chrono::Duration::minutes(20));
    assert_eq!(t.chat.run_due_timers().await.expect("timers"), 1);
    assert_eq!(t.chat.run_due_timers().await.expect("timers"), 0);
    assert!(send(&t, "ann", "at last").await.is_ok());
    let unbanned = events(&t, "user.unbanned").await;
    assert_eq!(unbanned.len(), 2);
    assert_eq!(unbanned[1]["cid"], "messaging:court");
}

#[tokio::test]
async fn a_ban_renewed_before_its_end_keeps_its_new_end() {
    let t = TestChat::embedded().await;
    t.users(&["ann", "bob"]).await;
    t.channel("court", &["ann", "bob"]).await;
    let server = t.server().await;
    for timeout in [10, 60] {
        t.chat
            .ban_user(
                &server,
                ban(json!({"target_user_id": "bob", "timeout": timeout})),
            )
            .await
            .expect("ban");
        t.clock.advance(chrono::Duration::minutes(1));
    }
    // The first ban's end passes: the renewed ban holds.
    t.clock.advance(chrono::Duration::minutes(15));
    t.chat.run_due_timers().await.expect("timers");
    assert!(send(&t, "bob", "let me speak").await.is_err());
    assert!(events(&t, "user.unbanned").await.is_empty());
    t.clock.advance(chrono::Duration::minutes(60));
    t.chat.run_due_timers().await.expect("timers");
    assert!(send(&t, "bob", "let me speak").await.is_ok());
}
