//! The transactional outbox: user changes write their Stream-shaped events in the same
//! transaction, and the change feed of the events table yields them in commit order.

use serde_json::{json, Map, Value};
use shared::domain::caller::Session;
use shared::domain::clock::SystemClock;
use shared::service::users::UserPatch;
use shared::service::{AppKeys, Chat, TaskMode};
use shared::store::embedded::Embedded;
use shared::store::{Table, TableName};
use std::sync::Arc;

fn chat(store: Arc<Embedded>) -> Chat {
    let keys = AppKeys {
        api_key: "k".into(),
        api_secret: "s".into(),
    };
    Chat::new(store, Arc::new(SystemClock), keys, TaskMode::Inline)
}

/// A server-side session with the app's current settings.
async fn server(chat: &Chat) -> Session {
    Session::server(chat.app_settings().await.expect("settings"))
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

async fn event_types(store: &Embedded) -> Vec<(String, String)> {
    let batch = store
        .read_changes(TableName::Events, None, 100)
        .await
        .expect("change feed");
    batch
        .changes
        .iter()
        .filter_map(|c| c.new.as_ref())
        .map(|item| {
            (
                item.data["type"].as_str().unwrap_or("").to_string(),
                item.data["user"]["id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn user_changes_write_their_events_in_order() {
    let store = Arc::new(Embedded::in_memory().expect("store"));
    let chat = chat(store.clone());
    chat.bootstrap().await.expect("bootstrap");
    chat.upsert_users(&server(&chat).await, vec![obj(json!({"id": "ann"}))])
        .await
        .expect("create");
    chat.upsert_users(
        &server(&chat).await,
        vec![obj(json!({"id": "ann", "name": "Ann"}))],
    )
    .await
    .expect("replace");
    let patch = UserPatch {
        id: "ann".into(),
        set: Some(obj(json!({"color": "red"}))),
        unset: None,
    };
    chat.update_users_partial(&server(&chat).await, vec![patch])
        .await
        .expect("patch");
    chat.deactivate_user(&server(&chat).await, "ann", false, None)
        .await
        .expect("deactivate");
    chat.reactivate_user(&server(&chat).await, "ann", false, None, None)
        .await
        .expect("reactivate");
    chat.delete_user(&server(&chat).await, "ann", Default::default())
        .await
        .expect("delete");

    let events = event_types(&store).await;
    let expected = [
        "user.updated",
        "user.updated",
        "user.deactivated",
        "user.reactivated",
        "user.deleted",
    ];
    assert_eq!(
        events,
        expected
            .iter()
            .map(|t| (t.to_string(), "ann".to_string()))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_refused_change_writes_no_event() {
    let store = Arc::new(Embedded::in_memory().expect("store"));
    let chat = chat(store.clone());
    chat.bootstrap().await.expect("bootstrap");
    chat.update_app_settings(
        &server(&chat).await,
        &obj(json!({"enforce_unique_usernames": "app"})),
    )
    .await
    .expect("settings");
    chat.upsert_users(
        &server(&chat).await,
        vec![obj(json!({"id": "a", "name": "Same Name"}))],
    )
    .await
    .expect("first");
    chat.upsert_users(&server(&chat).await, vec![obj(json!({"id": "b"}))])
        .await
        .expect("second");
    let before = event_types(&store).await.len();
    let patch = UserPatch {
        id: "b".into(),
        set: Some(obj(json!({"name": "same.name"}))),
        unset: None,
    };
    let err = chat
        .update_users_partial(&server(&chat).await, vec![patch])
        .await
        .expect_err("duplicate username");
    assert_eq!(err.code.number(), 6);
    assert_eq!(event_types(&store).await.len(), before);
}
