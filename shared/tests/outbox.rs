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

/// Every event in the events table: (type, scope) with the stored document.
async fn all_events(store: &Embedded) -> Vec<(String, String, Value)> {
    let batch = store
        .read_changes(TableName::Events, None, 1000)
        .await
        .expect("change feed");
    batch
        .changes
        .iter()
        .filter_map(|c| c.new.as_ref())
        .map(|item| {
            (
                item.data["type"].as_str().unwrap_or("").to_string(),
                item.pk.clone(),
                item.data.clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn channel_changes_write_their_events() {
    use shared::service::channels::{ChannelQuery, ChannelUpdate, TruncateRequest};
    use shared::service::members::ChannelMuteRequest;

    let store = Arc::new(Embedded::in_memory().expect("store"));
    let chat = chat(store.clone());
    chat.bootstrap().await.expect("bootstrap");
    let users = ["ann", "bob", "cat"].map(|id| obj(json!({ "id": id })));
    chat.upsert_users(&server(&chat).await, users.to_vec())
        .await
        .expect("users");
    let before = all_events(&store).await.len();
    let s = server(&chat).await;

    let create = ChannelQuery {
        data: Some(obj(
            json!({"members": ["ann", "bob"], "created_by_id": "ann"}),
        )),
        ..Default::default()
    };
    chat.get_or_create_channel(&s, "messaging", Some("talk"), create)
        .await
        .expect("create");
    let freeze = ChannelUpdate {
        data: Some(obj(json!({"frozen": true}))),
        ..Default::default()
    };
    chat.update_channel(&s, "messaging", "talk", freeze)
        .await
        .expect("freeze");
    let invite = ChannelUpdate {
        invites: Some(json!(["cat"])),
        ..Default::default()
    };
    chat.update_channel(&s, "messaging", "talk", invite)
        .await
        .expect("invite");
    let accept = ChannelUpdate {
        accept_invite: Some(true),
        user_id: Some("cat".into()),
        ..Default::default()
    };
    chat.update_channel(&s, "messaging", "talk", accept)
        .await
        .expect("accept");
    let remove = ChannelUpdate {
        remove_members: Some(json!(["bob"])),
        ..Default::default()
    };
    chat.update_channel(&s, "messaging", "talk", remove)
        .await
        .expect("remove");
    chat.set_channel_hidden(&s, "messaging", "talk", true, false, Some("ann".into()))
        .await
        .expect("hide");
    chat.set_channel_hidden(&s, "messaging", "talk", false, false, Some("ann".into()))
        .await
        .expect("show");
    let mute = ChannelMuteRequest {
        channel_cid: Some("messaging:talk".into()),
        user_id: Some("ann".into()),
        ..Default::default()
    };
    chat.mute_channels(&s, mute, true).await.expect("mute");
    chat.update_channel_partial(
        &s,
        "messaging",
        "talk",
        obj(json!({"frozen": false})),
        Vec::new(),
        None,
    )
    .await
    .expect("unfreeze");
    chat.truncate_channel(&s, "messaging", "talk", TruncateRequest::default())
        .await
        .expect("truncate");
    chat.delete_channel(&s, "messaging", "talk", false)
        .await
        .expect("delete");

    let events = all_events(&store).await.split_off(before);
    let kinds: Vec<&str> = events.iter().map(|(k, _, _)| k.as_str()).collect();
    let expected = [
        "channel.created",
        "member.added",
        "notification.added_to_channel",
        "member.added",
        "notification.added_to_channel",
        "channel.updated",
        "channel.frozen",
        "member.added",
        "notification.invited",
        "member.updated",
        "notification.invite_accepted",
        "member.removed",
        "notification.removed_from_channel",
        "channel.hidden",
        "channel.visible",
        "notification.channel_mutes_updated",
        "channel.updated",
        "channel.unfrozen",
        "channel.truncated",
        "channel.deleted",
    ];
    assert_eq!(kinds, expected);
    for (kind, scope, doc) in &events {
        if kind.starts_with("notification.") {
            let user = doc["user"]["id"]
                .as_str()
                .or(doc["me"]["id"].as_str())
                .expect("notifications name their user");
            assert_eq!(
                scope,
                &format!("user:{user}"),
                "{kind} is addressed to its user"
            );
        } else {
            assert_eq!(scope, "messaging:talk", "{kind} is scoped to its channel");
            assert_eq!(doc["cid"], "messaging:talk");
            assert_eq!(doc["channel_type"], "messaging");
            assert_eq!(doc["channel_id"], "talk");
        }
        assert!(doc["created_at"].is_string());
    }
    let added = &events[1].2;
    assert_eq!(added["member"]["user_id"], "ann");
    assert_eq!(added["user"]["id"], "ann");
    let mutes = &events[15].2["me"]["channel_mutes"];
    assert_eq!(mutes[0]["channel"]["cid"], "messaging:talk");
}

#[tokio::test]
async fn message_changes_write_their_events() {
    use shared::service::channels::ChannelQuery;
    use shared::service::messages::{DeleteMessageOptions, SendMessage};
    use shared::service::reactions::SendReaction;
    use shared::service::reads::ReadRequest;

    let store = Arc::new(Embedded::in_memory().expect("store"));
    let chat = chat(store.clone());
    chat.bootstrap().await.expect("bootstrap");
    let users = ["ann", "bob"].map(|id| obj(json!({ "id": id })));
    chat.upsert_users(&server(&chat).await, users.to_vec())
        .await
        .expect("users");
    let s = server(&chat).await;
    let create = ChannelQuery {
        data: Some(obj(
            json!({"members": ["ann", "bob"], "created_by_id": "ann"}),
        )),
        ..Default::default()
    };
    chat.get_or_create_channel(&s, "messaging", Some("talk"), create)
        .await
        .expect("create");
    let before = all_events(&store).await.len();

    let send = SendMessage {
        message: obj(json!({"id": "m1", "text": "hi", "user_id": "ann"})),
        ..Default::default()
    };
    chat.send_message(&s, "messaging", "talk", send)
        .await
        .expect("send");
    chat.update_message(&s, "m1", obj(json!({"id": "m1", "text": "hello"})), false)
        .await
        .expect("update");
    let like = SendReaction {
        reaction: obj(json!({"type": "like", "user_id": "bob"})),
        ..Default::default()
    };
    chat.send_reaction(&s, "m1", like.clone())
        .await
        .expect("react");
    chat.send_reaction(&s, "m1", like)
        .await
        .expect("react again");
    chat.delete_reaction(&s, "m1", "like", Some("bob".into()))
        .await
        .expect("unreact");
    let read = ReadRequest {
        user_id: Some("bob".into()),
        ..Default::default()
    };
    chat.mark_read(&s, "messaging", "talk", read)
        .await
        .expect("read");
    let unread = ReadRequest {
        user_id: Some("bob".into()),
        message_id: Some("m1".into()),
        ..Default::default()
    };
    chat.mark_unread(&s, "messaging", "talk", unread)
        .await
        .expect("unread");
    chat.delete_message(&s, "m1", DeleteMessageOptions::default())
        .await
        .expect("delete");
    chat.undelete_message(&s, "m1", Some("ann".into()))
        .await
        .expect("undelete");

    let events = all_events(&store).await.split_off(before);
    let kinds: Vec<&str> = events.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "message.new",
            "message.updated",
            "reaction.new",
            "reaction.updated",
            "reaction.deleted",
            "message.read",
            "notification.mark_read",
            "notification.mark_unread",
            "message.deleted",
            "message.undeleted",
        ]
    );
    let new = &events[0].2;
    assert_eq!(new["message"]["id"], "m1");
    assert_eq!(new["user"]["id"], "ann");
    assert_eq!(new["cid"], "messaging:talk");
    assert_eq!(events[2].2["reaction"]["type"], "like");
    assert_eq!(events[2].2["message"]["reaction_counts"]["like"], 1);
    assert_eq!(events[6].1, "user:bob");
    assert_eq!(events[6].2["total_unread_count"], 0);
    assert_eq!(events[7].2["unread_messages"], 1);
}

/// A delivery worker starts where the outbox ends now (one read, not the retained log) and is
/// woken by the next commit.
#[tokio::test]
async fn a_worker_starts_at_the_feed_end_and_wakes_on_commit() {
    let store = Arc::new(Embedded::in_memory().expect("store"));
    let chat = chat(store.clone());
    chat.bootstrap().await.expect("bootstrap");
    let first = [obj(json!({ "id": "early" }))];
    chat.upsert_users(&server(&chat).await, first.to_vec())
        .await
        .expect("user");
    let end = store.change_feed_end(TableName::Events).await.expect("end");
    let after_end = store
        .read_changes(TableName::Events, Some(&end), 100)
        .await
        .expect("read");
    assert!(after_end.changes.is_empty(), "nothing lies past the end");

    let commits = store.change_notifier();
    let woken = commits.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    let patch = UserPatch {
        id: "early".into(),
        set: Some(obj(json!({ "name": "Early" }))),
        unset: None,
    };
    chat.update_users_partial(&server(&chat).await, vec![patch])
        .await
        .expect("update");
    tokio::time::timeout(std::time::Duration::from_secs(1), woken)
        .await
        .expect("the commit wakes the worker");
    let next = store
        .read_changes(TableName::Events, Some(&end), 100)
        .await
        .expect("read");
    let kinds: Vec<&str> = next
        .changes
        .iter()
        .filter_map(|c| c.new.as_ref())
        .filter_map(|i| i.data["type"].as_str())
        .collect();
    assert_eq!(kinds, ["user.updated"]);
}
