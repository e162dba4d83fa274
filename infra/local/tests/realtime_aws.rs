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

#[tokio::test]
async fn connect_hello_delivery_ping_and_disconnect_through_aws() {
    let moto = moto::Moto::shared();
    let chat = chat_on(&moto).await;
    let recorder = Recorder::default();

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
    aws::on_stream(
        &chat,
        &recorder,
        &event("stream-fanout/connection-insert.json"),
    )
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
    let send = shared::service::messages::SendMessage {
        message: json!({"id": "aws-m1", "text": "over api gateway", "user_id": "john"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        ..Default::default()
    };
    chat.send_message(&session, "messaging", "aws-rt", send)
        .await
        .expect("send");
    let batch = chat
        .store
        .read_changes(TableName::Events, None, 1000)
        .await
        .expect("feed");
    let inserted: Vec<_> = batch
        .changes
        .iter()
        .filter_map(|c| c.new.as_ref())
        .filter(|i| i.data["type"] == "message.new")
        .collect();
    assert_eq!(inserted.len(), 1);
    aws::on_stream(
        &chat,
        &recorder,
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

#[tokio::test]
async fn a_refused_connect_gets_its_error_frame_then_closes() {
    let moto = moto::Moto::shared();
    let chat = chat_on(&moto).await;
    let recorder = Recorder::default();
    let mut connect = event("ws-connect/connect.json");
    connect["queryStringParameters"]["authorization"] = json!("not-a-jwt");
    aws::on_connect(&chat, &connect)
        .await
        .expect("accepted, to refuse");
    aws::on_stream(
        &chat,
        &recorder,
        &event("stream-fanout/connection-insert.json"),
    )
    .await
    .expect("refusal");
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
