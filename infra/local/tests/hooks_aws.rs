//! The hook-dispatch function on moto: its `events/stream-hooks` sample (DynamoDB Streams
//! records of the events table) replayed against outbox items on DynamoDB, delivering to a
//! customer's SQS queue on moto, with a webhook that is down (its failures kept, the batch
//! still acknowledged), and a batch whose failures cannot be kept (reported for retry).

#[allow(dead_code)]
#[path = "../../../shared/tests/support/moto.rs"]
mod moto;

use serde_json::{json, Value};
use shared::domain::caller::Session;
use shared::domain::clock::SystemClock;
use shared::hooks::{aws, Hooks, Retry};
use shared::service::{AppKeys, Chat, TaskMode};
use shared::store::dynamodb::DynamoDb;
use shared::store::{Condition, Item, TableName, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn sample() -> Value {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/stream-hooks/outbox-batch.json");
    serde_json::from_str(&std::fs::read_to_string(&file).expect("sample")).expect("sample json")
}

async fn chat_on(moto: &moto::Moto, prefix: &str) -> Chat {
    let config = moto.sdk_config();
    let store = DynamoDb::new(
        aws_sdk_dynamodb::Client::new(&config),
        aws_sdk_dynamodbstreams::Client::new(&config),
        prefix,
    );
    store.create_tables().await.expect("tables on moto");
    let chat = Chat::new(
        Arc::new(store),
        Arc::new(SystemClock),
        AppKeys {
            api_key: "hooks-key".into(),
            api_secret: "hooks-secret".into(),
        },
        TaskMode::Inline,
    );
    chat.bootstrap().await.expect("bootstrap");
    chat
}

async fn session(chat: &Chat) -> Session {
    Session::server(chat.app_settings().await.expect("settings"))
}

/// The sample's channel with two members, and its two outbox items: two real `message.new`
/// events stored again under the sample's keys.
async fn seed(chat: &Chat) {
    let s = session(chat).await;
    for id in ["hk-ann", "hk-bob"] {
        let mut user = serde_json::Map::new();
        user.insert("id".into(), json!(id));
        chat.connect_user_details(id, user).await.expect("user");
    }
    let create = shared::service::channels::ChannelQuery {
        data: json!({"members": ["hk-ann", "hk-bob"], "created_by_id": "hk-ann"})
            .as_object()
            .cloned(),
        ..Default::default()
    };
    chat.get_or_create_channel(&s, "messaging", Some("hooks-sample"), create)
        .await
        .expect("channel");
    for text in ["first", "second"] {
        let send = shared::service::messages::SendMessage {
            message: json!({"text": text, "user_id": "hk-ann"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            ..Default::default()
        };
        chat.send_message(&s, "messaging", "hooks-sample", send)
            .await
            .expect("send");
    }
    let feed = chat
        .store
        .read_changes(TableName::Events, None, 1000)
        .await
        .expect("feed");
    let sent: Vec<Value> = feed
        .changes
        .into_iter()
        .filter_map(|c| c.new)
        .filter(|i| i.data["type"] == "message.new")
        .map(|i| i.data)
        .collect();
    assert_eq!(sent.len(), 2);
    for (record, data) in sample()["Records"].as_array().unwrap().iter().zip(sent) {
        let keys = &record["dynamodb"]["Keys"];
        let item = Item::new(
            keys["pk"]["S"].as_str().unwrap(),
            keys["sk"]["S"].as_str().unwrap(),
            data,
        );
        chat.store
            .write(Write::Put {
                table: TableName::Events,
                item,
                condition: Condition::None,
            })
            .await
            .expect("outbox item");
    }
}

async fn customer_queue(moto: &moto::Moto, name: &str) -> (aws_sdk_sqs::Client, String) {
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config());
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    (sqs, url)
}

async fn configure(chat: &Chat, hooks: Value) {
    let body = json!({ "event_hooks": hooks });
    chat.update_app_settings(&session(chat).await, body.as_object().unwrap())
        .await
        .expect("settings");
}

/// A loopback port nothing listens on: a webhook there is down.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn fast_retry() -> Retry {
    Retry {
        attempts: 2,
        first_backoff: Duration::from_millis(10),
    }
}

#[tokio::test]
async fn the_sample_reaches_the_customers_queue_and_a_down_webhook_is_kept_as_failed() {
    let moto = moto::Moto::shared();
    let chat = chat_on(&moto, &format!("hk1-{}-", std::process::id())).await;
    seed(&chat).await;
    let (sqs, queue) = customer_queue(&moto, &format!("customer-{}", std::process::id())).await;
    configure(
        &chat,
        json!([
            {"hook_type": "sqs", "sqs_queue_url": queue, "sqs_key": "customer", "sqs_secret": "secret"},
            {"hook_type": "webhook", "webhook_url": format!("http://127.0.0.1:{}/down", closed_port())},
        ]),
    )
    .await;
    let hooks = Hooks::new(&chat).with_retry(fast_retry());
    let out = aws::on_stream(&chat, &hooks, &sample())
        .await
        .expect("batch");
    assert_eq!(out["batchItemFailures"], json!([]));
    assert_eq!(out["delivered"], 2, "{out}");
    assert_eq!(out["failed"], 2, "{out}");

    let got = sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await
        .expect("receive");
    let bodies: Vec<Value> = got
        .messages()
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect();
    let texts: Vec<&str> = bodies
        .iter()
        .map(|b| b["message"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["first", "second"]);
    assert_eq!(bodies[0]["type"], "message.new");
    assert_eq!(bodies[0]["cid"], "messaging:hooks-sample");
    assert_eq!(bodies[0]["members"].as_array().map(Vec::len), Some(2));
    assert_eq!(bodies[0]["watcher_count"], 0);
    let attr = got.messages()[0].message_attributes().unwrap()["event_type"]
        .string_value()
        .unwrap()
        .to_string();
    assert_eq!(attr, "message.new");

    let failures = chat.hook_failures().await.expect("failures");
    assert_eq!(failures.len(), 2);
    assert!(failures.iter().all(|f| f.hook_type == "webhook"));
    assert_eq!(failures[0].event_type, "message.new");
    // The first event used its attempts; the webhook is then skipped, its next event kept untried.
    assert_eq!(failures[0].attempts, 2, "{:?}", failures[0]);
    assert_eq!(failures[1].attempts, 0, "{:?}", failures[1]);
    assert!(
        failures[1].error.starts_with("not tried"),
        "{:?}",
        failures[1]
    );
}

#[tokio::test]
async fn a_batch_whose_failures_cannot_be_kept_is_reported_for_retry() {
    let moto = moto::Moto::shared();
    let prefix = format!("hk2-{}-", std::process::id());
    let chat = chat_on(&moto, &prefix).await;
    seed(&chat).await;
    configure(
        &chat,
        json!([{"hook_type": "webhook", "webhook_url": format!("http://127.0.0.1:{}/down", closed_port())}]),
    )
    .await;
    // The settings stay cached for a moment; the table failures are kept in then disappears.
    chat.app_settings().await.expect("settings");
    aws_sdk_dynamodb::Client::new(&moto.sdk_config())
        .delete_table()
        .table_name(format!("{prefix}app"))
        .send()
        .await
        .expect("delete the app table");
    let hooks = Hooks::new(&chat).with_retry(fast_retry());
    let out = aws::on_stream(&chat, &hooks, &sample())
        .await
        .expect("batch");
    assert_eq!(
        out["batchItemFailures"],
        json!([{ "itemIdentifier": "211" }]),
        "{out}"
    );
}
