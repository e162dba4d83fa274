//! Concurrent writers on one record, through the use cases, on both engines (the embedded store
//! and DynamoDB on moto): no acknowledged write is lost, a removed member is never recreated,
//! a hot channel takes every send, counters equal the stored items, and a member's count of open
//! connections stays true through racing opens and closes.
//!
//! Run one engine with e.g. `cargo test -p shared --test concurrency dynamodb::`.

mod support;

use serde_json::json;
use shared::realtime::delivery::Delivery;
use shared::realtime::{Gateway, GatewayError};
use shared::service::channels::ChannelUpdate;
use shared::service::messages::SendMessage;
use shared::service::reads::ReadRequest;
use std::sync::{Arc, Mutex};
use support::chat::{obj, TestChat};

async fn concurrent_member_updates_are_all_kept(t: TestChat) {
    t.users(&["ann", "bob"]).await;
    t.channel("patch", &["ann", "bob"]).await;
    let server = t.server().await;
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (chat, server) = (t.chat.clone(), server.clone());
            tokio::spawn(async move {
                let set = obj(json!({ format!("field_{i}"): true }));
                chat.update_member_partial(&server, "messaging", "patch", "ann", set, Vec::new())
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("every update is accepted");
    }
    let state = t
        .chat
        .get_or_create_channel(&server, "messaging", Some("patch"), Default::default())
        .await
        .expect("state");
    let ann = state["members"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["user_id"] == "ann"))
        .cloned()
        .expect("ann is a member");
    for i in 0..12 {
        assert_eq!(ann[format!("field_{i}")], true, "update {i} was lost");
    }
}

async fn a_member_removed_while_reading_stays_removed(t: TestChat) {
    t.users(&["ann", "bob"]).await;
    let server = t.server().await;
    for trial in 0..4 {
        let id = format!("race{trial}");
        t.channel(&id, &["ann", "bob"]).await;
        let send = SendMessage {
            message: obj(json!({"text": "hi", "user_id": "ann"})),
            ..Default::default()
        };
        t.chat
            .send_message(&server, "messaging", &id, send)
            .await
            .expect("send");
        let reading = {
            let (chat, server, id) = (t.chat.clone(), server.clone(), id.clone());
            tokio::spawn(async move {
                for _ in 0..4 {
                    let read = ReadRequest {
                        user_id: Some("bob".into()),
                        ..Default::default()
                    };
                    // Once bob is removed, "not a member" is the right answer.
                    if let Err(e) = chat.mark_read(&server, "messaging", &id, read).await {
                        assert!(e.message.contains("not a member"), "{e}");
                    }
                }
            })
        };
        let remove = ChannelUpdate {
            remove_members: Some(json!(["bob"])),
            ..Default::default()
        };
        t.chat
            .update_channel(&server, "messaging", &id, remove)
            .await
            .expect("remove");
        reading.await.expect("reader");
        let state = t
            .chat
            .get_or_create_channel(&server, "messaging", Some(&id), Default::default())
            .await
            .expect("state");
        let listed: Vec<&str> = state["members"]
            .as_array()
            .map(|ms| ms.iter().filter_map(|m| m["user_id"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(listed, ["ann"], "trial {trial}: bob is back");
        assert_eq!(state["channel"]["member_count"], 1);
    }
}

/// 40 sends at once into one channel (committed together while the channel is busy), two of
/// them reusing one id: every other send is taken, the reused id is refused once, commit order
/// is time order, every sender has read their own message, and the channel counts each.
async fn a_hot_channel_takes_every_send(t: TestChat) {
    let senders: Vec<String> = (0..20).map(|i| format!("s{i}")).collect();
    let ids: Vec<&str> = senders.iter().map(String::as_str).collect();
    t.users(&ids).await;
    t.channel("hot", &ids).await;
    let server = t.server().await;
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let s = &senders[i % senders.len()];
            let (chat, server) = (t.chat.clone(), server.clone());
            let id = if i == 39 {
                "m-3".to_string()
            } else {
                format!("m-{i}")
            };
            let send = SendMessage {
                message: obj(json!({"id": id, "text": format!("{i} from {s}"), "user_id": s})),
                ..Default::default()
            };
            tokio::spawn(async move { chat.send_message(&server, "messaging", "hot", send).await })
        })
        .collect();
    let mut refused = Vec::new();
    for task in tasks {
        if let Err(e) = task.await.expect("task") {
            refused.push(e.to_string());
        }
    }
    assert_eq!(
        refused.len(),
        1,
        "only the reused id is refused: {refused:?}"
    );
    assert!(refused[0].contains("already exists"), "{refused:?}");
    let query = shared::service::channels::ChannelQuery {
        messages: Some(obj(json!({"limit": 100}))),
        ..Default::default()
    };
    let state = t
        .chat
        .get_or_create_channel(&server, "messaging", Some("hot"), query)
        .await
        .expect("state");
    let messages = state["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(messages.len(), 39);
    // Commit order is time order: the page (oldest first) is strictly increasing.
    let times: Vec<&str> = messages
        .iter()
        .filter_map(|m| m["created_at"].as_str())
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    // Each sender has read up to their own latest message, and no further.
    for s in &senders {
        let last_own = messages
            .iter()
            .rposition(|m| m["user"]["id"] == s.as_str())
            .expect("a message of each sender");
        let read = state["read"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["user"]["id"] == s.as_str()))
            .cloned()
            .expect("a read state");
        assert_eq!(
            read["last_read_message_id"], messages[last_own]["id"],
            "{s}"
        );
        assert_eq!(
            read["unread_messages"],
            messages.len() - 1 - last_own,
            "{s}: unread are the messages after their own"
        );
    }
}

/// Frames posted, by connection.
#[derive(Default)]
struct Recorded(Mutex<Vec<(String, serde_json::Value)>>);

#[async_trait::async_trait]
impl Gateway for Recorded {
    async fn post(&self, connection_id: &str, frame: &str) -> Result<(), GatewayError> {
        let frame = serde_json::from_str(frame).expect("a JSON frame");
        self.0
            .lock()
            .expect("frames")
            .push((connection_id.to_string(), frame));
        Ok(())
    }
    async fn close(&self, _: &str) -> Result<(), GatewayError> {
        Ok(())
    }
}

async fn racing_opens_and_closes_never_hide_a_connected_member(t: TestChat) {
    t.users(&["al", "bo"]).await;
    t.channel("notify", &["al", "bo"]).await;
    let conns: Vec<String> = (0..12).map(|i| format!("bo-{i}")).collect();
    let opens = conns.iter().map(|c| {
        let (chat, c) = (t.chat.clone(), c.clone());
        tokio::spawn(async move { chat.open_connection(&c, "bo", "test", false, false).await })
    });
    for open in opens.collect::<Vec<_>>() {
        open.await.expect("task").expect("open");
    }
    // Every connection but the last closes, each closed twice at once.
    let closes = conns[..11].iter().chain(&conns[..11]).map(|c| {
        let (chat, c) = (t.chat.clone(), c.clone());
        tokio::spawn(async move { chat.close_connection(&c).await })
    });
    for close in closes.collect::<Vec<_>>() {
        close.await.expect("task").expect("close");
    }
    let recorded = Arc::new(Recorded::default());
    let delivery = Delivery::new(recorded.clone());
    let message_new = |text: &str| {
        json!({
            "type": "message.new",
            "cid": "messaging:notify",
            "channel_id": "notify",
            "channel_type": "messaging",
            "message": {"id": format!("m-{text}"), "text": text, "user": {"id": "al"}},
            "user": {"id": "al"},
        })
    };
    t.chat
        .deliver(&delivery, "messaging:notify", &message_new("one"))
        .await
        .expect("delivery");
    let frames = std::mem::take(&mut *recorded.0.lock().expect("frames"));
    let notified: Vec<(&str, &str)> = frames
        .iter()
        .map(|(c, f)| (c.as_str(), f["type"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(notified, [("bo-11", "notification.message_new")]);
    t.chat
        .close_connection("bo-11")
        .await
        .expect("the last close");
    t.chat
        .deliver(&delivery, "messaging:notify", &message_new("two"))
        .await
        .expect("delivery");
    assert!(recorded.0.lock().expect("frames").is_empty());
}

macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::TestChat::embedded().await).await; })*
        }
        mod dynamodb {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::TestChat::dynamodb().await).await; })*
        }
    };
}

on_both_engines!(
    concurrent_member_updates_are_all_kept,
    a_member_removed_while_reading_stays_removed,
    a_hot_channel_takes_every_send,
    racing_opens_and_closes_never_hide_a_connected_member,
);
