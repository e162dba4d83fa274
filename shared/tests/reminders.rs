//! Unread reminders and the timers behind them, in process on the in-memory store with a clock
//! the test moves: the hook dispatcher sets a channel's timer from its `message.new`, the
//! timer fires once the interval has passed, each member who has not read gets one
//! `user.unread_message_reminder` (to the hooks only), later messages bring another one, and
//! channels of more than 10 members or without `reminders` get none.

mod support;

use serde_json::{json, Value};
use shared::hooks::Hooks;
use shared::service::reads::ReadRequest;
use shared::service::timers::TimerKind;
use std::sync::{Arc, Mutex};
use support::chat::{obj, OutboxFeed, TestChat};

/// A loopback webhook that records every body it is sent.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let store = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let store = store.clone();
            async move {
                store
                    .lock()
                    .unwrap()
                    .push(serde_json::from_str(&body).unwrap());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

struct Setup {
    t: TestChat,
    hooks: Hooks,
    feed: OutboxFeed,
    got: Arc<Mutex<Vec<Value>>>,
}

impl Setup {
    async fn new(reminders: bool) -> Setup {
        let t = TestChat::embedded().await;
        let (url, got) = receiver().await;
        let server = t.server().await;
        t.chat
            .update_channel_type(
                &server,
                "messaging",
                &obj(json!({ "reminders": reminders })),
            )
            .await
            .expect("channel type");
        t.chat
            .update_app_settings(
                &server,
                &obj(json!({
                    "reminders_interval": 60,
                    "event_hooks": [{"hook_type": "webhook", "webhook_url": url,
                                     "event_types": ["user.unread_message_reminder"]}],
                })),
            )
            .await
            .expect("settings");
        let hooks = Hooks::new(&t.chat);
        Setup {
            t,
            hooks,
            feed: OutboxFeed::default(),
            got,
        }
    }

    /// Hands every new outbox event to the hooks, as the dispatcher does.
    async fn dispatch(&mut self) {
        let events = self.feed.next(&self.t).await;
        self.hooks
            .dispatch(&self.t.chat, &events)
            .await
            .expect("dispatch");
    }

    async fn send(&mut self, channel: &str, user: &str, text: &str) {
        let send = shared::service::messages::SendMessage {
            message: obj(json!({ "text": text, "user_id": user })),
            ..Default::default()
        };
        self.t
            .chat
            .send_message(&self.t.server().await, "messaging", channel, send)
            .await
            .expect("send");
        self.dispatch().await;
    }

    /// Moves the clock, fires what is due and hands the reminders to the hooks.
    async fn after(&mut self, seconds: i64) {
        self.t.clock.advance(chrono::Duration::seconds(seconds));
        self.t.chat.run_due_timers().await.expect("timers");
        self.dispatch().await;
    }

    /// Reminders received so far: (user id, the messages' texts).
    fn reminders(&self) -> Vec<(String, Vec<String>)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "user.unread_message_reminder")
            .map(|b| {
                let channels = b["channels"].as_object().unwrap();
                let texts = channels
                    .values()
                    .flat_map(|c| c["messages"].as_array().unwrap().clone())
                    .map(|m| m["text"].as_str().unwrap().to_string())
                    .collect();
                (b["user"]["id"].as_str().unwrap().to_string(), texts)
            })
            .collect()
    }
}

#[tokio::test]
async fn members_who_did_not_read_are_reminded_once_per_new_messages() {
    let mut s = Setup::new(true).await;
    s.t.users(&["ann", "bob", "cat"]).await;
    s.t.channel("trip", &["ann", "bob", "cat"]).await;
    s.send("trip", "ann", "one").await;
    s.send("trip", "ann", "two").await;
    let timer =
        s.t.chat
            .timer(TimerKind::UnreadReminder, "messaging:trip")
            .await
            .unwrap()
            .expect("a timer for the channel");
    // Timers keep milliseconds.
    let due_in = (timer.due_at - s.t.chat.now()).num_milliseconds();
    assert!(
        (59_999..=60_000).contains(&due_in),
        "due one interval after the first unread message: {due_in} ms"
    );

    // Not yet: the interval has not passed.
    s.after(30).await;
    assert!(s.reminders().is_empty());

    // bob reads; cat does not; ann sent them.
    let read = ReadRequest {
        user_id: Some("bob".into()),
        ..Default::default()
    };
    s.t.chat
        .mark_read(&s.t.server().await, "messaging", "trip", read)
        .await
        .expect("read");
    s.after(31).await;
    let got = s.reminders();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "cat");
    assert_eq!(got[0].1, ["two", "one"], "the last messages, newest first");
    let body = s.got.lock().unwrap().last().cloned().unwrap();
    let channel = &body["channels"]["messaging:trip"]["channel"];
    assert_eq!(channel["members"].as_array().map(Vec::len), Some(3));
    assert_eq!(channel["cid"], "messaging:trip");

    // Once: nothing new, no second reminder.
    s.after(120).await;
    assert_eq!(s.reminders().len(), 1);

    // A new message: after the interval, both readers who have not read it are reminded again.
    s.send("trip", "ann", "three").await;
    s.after(61).await;
    let mut users: Vec<String> = s.reminders()[1..].iter().map(|r| r.0.clone()).collect();
    users.sort();
    assert_eq!(users, ["bob", "cat"]);
}

#[tokio::test]
async fn large_channels_and_types_without_reminders_get_none() {
    let mut s = Setup::new(true).await;
    let ids: Vec<String> = (0..11).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    s.t.users(&refs).await;
    s.t.channel("crowd", &refs).await;
    s.send("crowd", "m0", "hello all").await;
    assert!(s
        .t
        .chat
        .timer(TimerKind::UnreadReminder, "messaging:crowd")
        .await
        .unwrap()
        .is_none());

    let mut off = Setup::new(false).await;
    off.t.users(&["ann", "bob"]).await;
    off.t.channel("quiet", &["ann", "bob"]).await;
    off.send("quiet", "ann", "hi").await;
    off.after(61).await;
    assert!(off.reminders().is_empty());
    assert!(off
        .t
        .chat
        .timer(TimerKind::UnreadReminder, "messaging:quiet")
        .await
        .unwrap()
        .is_none());
}

fn sample(path: &str) -> Value {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(path);
    serde_json::from_str(&std::fs::read_to_string(file).expect("sample")).expect("json")
}

/// The scheduler function on DynamoDB and SQS (moto) with its `events/scheduler` samples: the
/// minute's run queues the timer due within the minute with the delay left (nothing fires
/// early), and the queue's record fires it once it is due.
#[tokio::test]
async fn the_scheduler_function_queues_timers_due_within_the_minute_and_fires_them() {
    let t = TestChat::dynamodb().await;
    let server = t.server().await;
    t.chat
        .update_channel_type(&server, "messaging", &obj(json!({ "reminders": true })))
        .await
        .expect("channel type");
    t.chat
        .update_app_settings(&server, &obj(json!({ "reminders_interval": 60 })))
        .await
        .expect("settings");
    t.users(&["ann", "bob"]).await;
    t.channel("sched-sample", &["ann", "bob"]).await;
    let send = shared::service::messages::SendMessage {
        message: obj(json!({ "text": "are you there?", "user_id": "ann" })),
        ..Default::default()
    };
    let sent = t
        .chat
        .send_message(&server, "messaging", "sched-sample", send)
        .await
        .expect("send");
    let event = json!({
        "type": "message.new", "cid": "messaging:sched-sample", "channel_type": "messaging",
        "message": sent["message"],
    });
    t.chat
        .note_message_for_reminders("messaging:sched-sample", &event)
        .await
        .expect("timer");

    let moto = support::moto::Moto::shared();
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config());
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("timers-{}", std::process::id()))
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    let queue = shared::service::timers::SqsDelayQueue::new(sqs.clone(), &queue_url);

    t.clock.advance(chrono::Duration::seconds(20));
    let run = t
        .chat
        .on_scheduler_event(&queue, &sample("scheduler/every-minute.json"))
        .await
        .expect("minute");
    assert_eq!(run, json!({ "fired": 0, "queued": 1 }));
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .expect("attributes");
    let delayed = attrs
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        })
        .cloned();
    assert_eq!(delayed.as_deref(), Some("1"), "queued with the delay left");

    // Delivered early (or twice): nothing fires before the timer is due.
    let record = sample("scheduler/timer-due.json");
    let early = t
        .chat
        .on_scheduler_event(&queue, &record)
        .await
        .expect("early");
    assert_eq!(early["batchItemFailures"], json!([]));
    assert!(reminders_in_outbox(&t).await.is_empty());

    t.clock.advance(chrono::Duration::seconds(41));
    t.chat
        .on_scheduler_event(&queue, &record)
        .await
        .expect("due");
    assert_eq!(reminders_in_outbox(&t).await, ["user:bob"]);
    // Fired once: the timer is gone.
    t.chat
        .on_scheduler_event(&queue, &record)
        .await
        .expect("again");
    assert_eq!(reminders_in_outbox(&t).await, ["user:bob"]);
}

/// Scopes of the reminder events in the outbox.
async fn reminders_in_outbox(t: &TestChat) -> Vec<String> {
    t.outbox("user.unread_message_reminder")
        .await
        .into_iter()
        .map(|i| i.pk)
        .collect()
}
