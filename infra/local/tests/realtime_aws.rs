//! Real time through AWS: the `$connect` / `$default` / `$disconnect` handlers and the streams
//! fan-out run on the sample events in `events/`, on DynamoDB (moto), posting through the API
//! Gateway Management API — moto's for the adapter's happy path, a loopback stand-in answering
//! `GoneException` for the stale-connection path (moto never answers it), and a recording
//! gateway to read what each connection received.

#[allow(dead_code)]
#[path = "../../../shared/tests/support/moto.rs"]
mod moto;

use async_trait::async_trait;
use serde_json::{json, Value};
use shared::domain::clock::SystemClock;
use shared::realtime::apigw::ApiGatewayManagement;
use shared::realtime::delivery::Delivery;
use shared::realtime::{aws, Gateway, GatewayError};
use shared::service::{AppKeys, Chat, TaskMode};
use shared::store::dynamodb::DynamoDb;
use shared::store::TableName;
use std::path::Path;
use std::sync::{Arc, Mutex};

fn event(path: &str) -> Value {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(path);
    serde_json::from_str(&std::fs::read_to_string(&file).expect("event file")).expect("event json")
}

async fn chat_on(moto: &moto::Moto) -> Chat {
    let config = moto.sdk_config();
    let prefix = format!("rt-{}-{}-", std::process::id(), rand_suffix());
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
            api_key: "events-key".into(),
            api_secret: "events-secret".into(),
        },
        TaskMode::Inline,
    );
    chat.bootstrap().await.expect("bootstrap");
    chat
}

fn rand_suffix() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// What each connection was sent, and which were closed.
#[derive(Default)]
struct Recorder {
    frames: Mutex<Vec<(String, Value)>>,
    closed: Mutex<Vec<String>>,
}

#[async_trait]
impl Gateway for Recorder {
    async fn post(&self, connection_id: &str, frame: &str) -> Result<(), GatewayError> {
        let v = serde_json::from_str(frame).map_err(|e| GatewayError::Other(e.to_string()))?;
        self.frames
            .lock()
            .expect("lock")
            .push((connection_id.to_string(), v));
        Ok(())
    }
    async fn close(&self, connection_id: &str) -> Result<(), GatewayError> {
        self.closed
            .lock()
            .expect("lock")
            .push(connection_id.to_string());
        Ok(())
    }
}

fn stream_record(table: &str, pk: &str, sk: &str) -> Value {
    json!({ "Records": [{
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "dynamodb": { "Keys": { "pk": { "S": pk }, "sk": { "S": sk } } },
        "eventSourceARN": format!("arn:aws:dynamodb:us-east-1:123456789012:table/x-{table}/stream/2024"),
    }]})
}

/// Sends `message` (a JSON object with `user_id`) to `messaging:<channel>` server-side.
async fn send(chat: &Chat, channel: &str, message: Value) {
    let session =
        shared::domain::caller::Session::server(chat.app_settings().await.expect("settings"));
    let send = shared::service::messages::SendMessage {
        message: message.as_object().cloned().unwrap_or_default(),
        ..Default::default()
    };
    chat.send_message(&session, "messaging", channel, send)
        .await
        .expect("send");
}

/// The outbox events of one type recorded so far.
async fn outbox(chat: &Chat, kind: &str) -> Vec<shared::store::Item> {
    let feed = chat
        .store
        .read_changes(TableName::Events, None, 1000)
        .await
        .expect("feed");
    feed.changes
        .into_iter()
        .filter_map(|c| c.new)
        .filter(|i| i.data["type"] == kind)
        .collect()
}

#[tokio::test]
async fn connect_hello_delivery_ping_and_disconnect_through_aws() {
    let moto = moto::Moto::shared();
    let chat = chat_on(&moto).await;
    let recorder = Arc::new(Recorder::default());
    let out = Delivery::new(recorder.clone());

    // $connect upserts the user and records the connection; its insert brings the hello.
    assert_eq!(
        aws::on_connect(&chat, &event("ws-connect/connect.json"))
            .await
            .expect("connect")["statusCode"],
        200
    );
    let conn = "Z2hvc3RfY29ubg=";
    assert_eq!(
        chat.get_user("john")
            .await
            .expect("read")
            .expect("john")
            .0
            .custom["name"],
        "John"
    );
    aws::on_stream(&chat, &out, &event("stream-fanout/connection-insert.json"))
        .await
        .expect("hello");
    {
        let frames = recorder.frames.lock().expect("lock");
        assert_eq!(frames[0].0, conn);
        assert_eq!(frames[0].1["type"], "health.check");
        assert_eq!(frames[0].1["connection_id"], conn);
        assert_eq!(frames[0].1["me"]["id"], "john");
        assert!(frames[0].1["me"]["channel_mutes"].is_array());
    }

    // Watching, then a message: the outbox insert reaches the connection.
    let session =
        shared::domain::caller::Session::server(chat.app_settings().await.expect("settings"));
    let create = shared::service::channels::ChannelQuery {
        data: Some(
            json!({"members": ["john"], "created_by_id": "john"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        ),
        ..Default::default()
    };
    chat.get_or_create_channel(&session, "messaging", Some("aws-rt"), create)
        .await
        .expect("channel");
    // A channel query with `watch` over this connection subscribes it.
    let mut watching = session.clone();
    watching.connection_id = Some(conn.to_string());
    let watch = shared::service::channels::ChannelQuery {
        watch: Some(true),
        ..Default::default()
    };
    let state = chat
        .get_or_create_channel(&watching, "messaging", Some("aws-rt"), watch)
        .await
        .expect("watch");
    assert_eq!(state["watcher_count"], 1);
    send(
        &chat,
        "aws-rt",
        json!({"id": "aws-m1", "text": "over api gateway", "user_id": "john"}),
    )
    .await;
    let inserted = outbox(&chat, "message.new").await;
    assert_eq!(inserted.len(), 1);
    aws::on_stream(
        &chat,
        &out,
        &stream_record("events", &inserted[0].pk, &inserted[0].sk),
    )
    .await
    .expect("deliver");
    assert!(recorder
        .frames
        .lock()
        .expect("lock")
        .iter()
        .any(|(c, f)| c == conn && f["type"] == "message.new" && f["message"]["id"] == "aws-m1"));

    // $default answers the client's ping through the Management API on moto.
    let moto_gateway = ApiGatewayManagement::new(aws_sdk_apigatewaymanagement::Client::from_conf(
        aws_sdk_apigatewaymanagement::config::Builder::from(&moto.sdk_config())
            .endpoint_url(moto.endpoint())
            .build(),
    ));
    assert_eq!(
        aws::on_message(&chat, &moto_gateway, &event("ws-default/health-check.json"))
            .await
            .expect("ping")["statusCode"],
        200
    );
    assert!(
        chat.connection(conn).await.expect("read").is_some(),
        "moto accepted the post"
    );
    assert!(
        chat.get_user("john")
            .await
            .expect("read")
            .expect("john")
            .0
            .online
    );

    // $disconnect removes the connection, its watch and the presence.
    aws::on_disconnect(&chat, &event("ws-disconnect/disconnect.json"))
        .await
        .expect("disconnect");
    assert!(chat.connection(conn).await.expect("read").is_none());
    assert!(chat
        .channel_watches("messaging:aws-rt")
        .await
        .expect("watches")
        .is_empty());
    assert!(
        !chat
            .get_user("john")
            .await
            .expect("read")
            .expect("john")
            .0
            .online
    );
}

/// `$connect` with `connect`, then the connection record's stream insert: what the new connection
/// was sent, and whether it was closed.
async fn connect_through_aws(chat: &Chat, connect: &Value) -> Arc<Recorder> {
    let recorder = Arc::new(Recorder::default());
    let out = Delivery::new(recorder.clone());
    aws::on_connect(chat, connect).await.expect("connect");
    aws::on_stream(chat, &out, &event("stream-fanout/connection-insert.json"))
        .await
        .expect("greeting");
    recorder
}

#[tokio::test]
async fn a_refused_connect_gets_its_error_frame_then_closes() {
    let moto = moto::Moto::shared();
    let chat = chat_on(&moto).await;
    let mut connect = event("ws-connect/connect.json");
    connect["queryStringParameters"]["authorization"] = json!("not-a-jwt");
    let recorder = connect_through_aws(&chat, &connect).await;
    let frames = recorder.frames.lock().expect("lock");
    assert_eq!(frames[0].1["error"]["StatusCode"], 401);
    assert_eq!(
        recorder.closed.lock().expect("lock").as_slice(),
        ["Z2hvc3RfY29ubg="]
    );
    assert!(frames.iter().all(|(_, f)| f["type"] != "health.check"));
}

/// A loopback stand-in for the Management API that answers every post with `GoneException`.
async fn gone_endpoint() -> String {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/@connections/{id}",
        post(|| async {
            (
                axum::http::StatusCode::GONE,
                [
                    ("x-amzn-errortype", "GoneException"),
                    ("content-type", "application/json"),
                ],
                r#"{"message":"gone"}"#,
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_gone_connection_is_removed() {
    let moto = moto::Moto::shared();
    let chat = chat_on(&moto).await;
    aws::on_connect(&chat, &event("ws-connect/connect.json"))
        .await
        .expect("connect");
    let endpoint = gone_endpoint().await;
    let gone = ApiGatewayManagement::new(aws_sdk_apigatewaymanagement::Client::from_conf(
        aws_sdk_apigatewaymanagement::config::Builder::from(&moto.sdk_config())
            .endpoint_url(endpoint)
            .build(),
    ));
    aws::on_message(&chat, &gone, &event("ws-default/health-check.json"))
        .await
        .expect("ping");
    assert!(
        chat.connection("Z2hvc3RfY29ubg=")
            .await
            .expect("read")
            .is_none(),
        "GoneException removed the connection"
    );
}

/// A server-side session and a channel `messaging:<id>` with `members`, one message from the
/// first.
async fn channel_with_message(chat: &Chat, id: &str, members: &[&str]) {
    let session =
        shared::domain::caller::Session::server(chat.app_settings().await.expect("settings"));
    for m in members {
        let mut user = serde_json::Map::new();
        user.insert("id".into(), json!(m));
        chat.connect_user_details(m, user).await.expect("user");
    }
    let create = shared::service::channels::ChannelQuery {
        data: json!({"members": members, "created_by_id": members[0]})
            .as_object()
            .cloned(),
        ..Default::default()
    };
    chat.get_or_create_channel(&session, "messaging", Some(id), create)
        .await
        .expect("channel");
    send(chat, id, json!({"text": "first", "user_id": members[0]})).await;
}

#[tokio::test]
async fn a_presigned_connect_through_api_gateway_gets_its_channel_details() {
    let moto = moto::Moto::shared();
    let chat = chat_on(&moto).await;
    channel_with_message(&chat, "prefetched", &["sam", "john"]).await;

    // API Gateway's URL: the stage is the path that was signed.
    let host = "abcdef1234.execute-api.us-east-1.amazonaws.com";
    let query = shared::realtime::sigv4::presign(
        "/v1",
        host,
        &[
            ("user_id".into(), "john".into()),
            ("prefetch-on".into(), "connect".into()),
        ],
        "events-key",
        "events-secret",
        chat.now(),
        60,
    );
    let mut connect = event("ws-connect/connect.json");
    connect["queryStringParameters"] = Value::Object(
        query
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    );
    let recorder = connect_through_aws(&chat, &connect).await;
    let frames: Vec<Value> = recorder
        .frames
        .lock()
        .expect("lock")
        .iter()
        .map(|(_, f)| f.clone())
        .collect();
    assert_eq!(frames[0]["type"], "health.check");
    assert_eq!(frames[0]["me"]["id"], "john");
    assert_eq!(frames[0]["me"]["total_unread_count"], 1);
    let details: Vec<&Value> = frames
        .iter()
        .filter(|f| f["type"] == "CHANNEL_DETAILS")
        .collect();
    assert_eq!(details.len(), 1, "{frames:?}");
    assert_eq!(details[0]["channel"]["cid"], "messaging:prefetched");
    assert_eq!(details[0]["messages"][0]["text"], "first");

    // Signed for another host: refused with the error frame, then closed.
    connect["requestContext"]["domainName"] = json!("elsewhere.example.com");
    let recorder = connect_through_aws(&chat, &connect).await;
    let frames = recorder.frames.lock().expect("lock");
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].1["error"]["StatusCode"], 401);
    assert_eq!(recorder.closed.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn a_large_audience_goes_through_the_fanout_queue_in_order() {
    use shared::realtime::sqs::SqsFanoutQueue;
    let moto = moto::Moto::shared();
    let chat = chat_on(&moto).await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config());
    let queue_url = sqs
        .create_queue()
        .queue_name(format!(
            "fanout-{}-{}.fifo",
            std::process::id(),
            rand_suffix()
        ))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("queue on moto")
        .queue_url
        .expect("url");
    let recorder = Arc::new(Recorder::default());
    // Above 3 connections an audience is queued.
    let out = Delivery::new(recorder.clone())
        .with_queue(Arc::new(SqsFanoutQueue::new(sqs.clone(), &queue_url)), 3);

    let watchers: Vec<String> = (0..8).map(|i| format!("w{i}")).collect();
    let mut members: Vec<&str> = vec!["host"];
    members.extend(watchers.iter().map(String::as_str));
    channel_with_message(&chat, "big", &members).await;
    let settings = chat.app_settings().await.expect("settings");
    for w in &watchers {
        let conn = format!("conn-{w}");
        chat.open_connection(&conn, w, aws::AWS_HOST, false, false)
            .await
            .expect("connection");
        let mut session = shared::domain::caller::Session::server(settings.clone());
        session.connection_id = Some(conn);
        let watch = shared::service::channels::ChannelQuery {
            watch: Some(true),
            ..Default::default()
        };
        chat.get_or_create_channel(&session, "messaging", Some("big"), watch)
            .await
            .expect("watch");
    }
    for text in ["one", "two"] {
        send(&chat, "big", json!({"text": text, "user_id": "host"})).await;
    }
    for item in outbox(&chat, "message.new")
        .await
        .iter()
        .filter(|i| i.data["message"]["text"] != "first")
    {
        let queued = aws::on_stream(&chat, &out, &stream_record("events", &item.pk, &item.sk))
            .await
            .expect("split");
        assert_eq!(queued["delivered"], 8);
    }
    assert!(
        recorder.frames.lock().expect("lock").is_empty(),
        "nothing was posted inline"
    );

    // The fan-out worker: SQS records, as the event source mapping hands them over.
    let mut records = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in &messages {
            records.push(json!({
                "eventSource": "aws:sqs",
                "messageId": m.message_id,
                "body": m.body,
            }));
            sqs.delete_message()
                .queue_url(&queue_url)
                .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
    assert!(!records.is_empty());
    // An unreadable record is dropped without holding back the others.
    records.insert(
        0,
        json!({"eventSource": "aws:sqs", "messageId": "junk", "body": "not a batch"}),
    );
    let worked = aws::on_stream(&chat, &out, &json!({ "Records": records }))
        .await
        .expect("worker");
    assert_eq!(worked["batchItemFailures"], json!([]));
    let frames = recorder.frames.lock().expect("lock");
    for w in &watchers {
        let texts: Vec<&str> = frames
            .iter()
            .filter(|(c, f)| *c == format!("conn-{w}") && f["type"] == "message.new")
            .filter_map(|(_, f)| f["message"]["text"].as_str())
            .collect();
        assert_eq!(texts, ["one", "two"], "{w} got both, in order");
    }
}
