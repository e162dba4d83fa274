//! Connection records over time: a live connection's keep-alive keeps its records (and so its
//! watches) from expiring; a connection nobody refreshes stops being an audience.

use serde_json::json;
use shared::domain::caller::Session;
use shared::domain::clock::FixedClock;
use shared::service::channels::ChannelQuery;
use shared::service::{AppKeys, Chat, TaskMode};
use shared::store::embedded::Embedded;
use std::sync::Arc;

async fn watching(chat: &Chat, conn: &str, channel: &str) {
    let settings = chat.app_settings().await.expect("settings");
    let mut session = Session::server(settings.clone());
    let create = ChannelQuery {
        data: json!({"members": ["ann"], "created_by_id": "ann"})
            .as_object()
            .cloned(),
        ..Default::default()
    };
    chat.get_or_create_channel(&session, "messaging", Some(channel), create)
        .await
        .expect("channel");
    session.connection_id = Some(conn.to_string());
    let watch = ChannelQuery {
        watch: Some(true),
        ..Default::default()
    };
    chat.get_or_create_channel(&session, "messaging", Some(channel), watch)
        .await
        .expect("watch");
}

#[tokio::test]
async fn keep_alive_keeps_a_long_lived_connection_an_audience() {
    let clock = Arc::new(FixedClock::new(chrono::Utc::now()));
    let keys = AppKeys {
        api_key: "k".into(),
        api_secret: "s".into(),
    };
    let chat = Chat::new(
        Arc::new(Embedded::in_memory().expect("store")),
        clock.clone(),
        keys,
        TaskMode::Inline,
    );
    chat.bootstrap().await.expect("bootstrap");
    let mut ann = serde_json::Map::new();
    ann.insert("id".into(), json!("ann"));
    chat.connect_user_details("ann", ann).await.expect("user");
    for conn in ["kept", "left"] {
        chat.open_connection(conn, "ann", "test", false, false)
            .await
            .expect("connection");
        watching(&chat, conn, conn).await;
    }
    let audience = |cid: &'static str| {
        let chat = chat.clone();
        async move {
            chat.channel_watches(&format!("messaging:{cid}"))
                .await
                .expect("watches")
                .len()
        }
    };
    // Every 20 minutes for three hours, only "kept" has its keep-alive.
    for _ in 0..9 {
        clock.advance(chrono::Duration::minutes(20));
        assert!(chat.refresh_connection("kept").await.expect("refresh"));
    }
    assert_eq!(audience("kept").await, 1, "still watching after 3 hours");
    assert!(chat.connection("kept").await.expect("read").is_some());
    assert_eq!(audience("left").await, 0, "an unrefreshed watch expired");
    assert_eq!(chat.user_connections("ann").await.expect("conns").len(), 1);
    assert!(!chat.refresh_connection("gone").await.expect("refresh"));
}
