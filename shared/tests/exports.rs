//! Exports in AWS: export files written to S3 (moto) and downloaded through presigned URLs,
//! by a channels export and a users export running on DynamoDB (moto), as the app function runs
//! them (tasks inline).

mod support;

use serde_json::{json, Value};
use shared::domain::export::ExportChannelsRequest;
use shared::files::{FilePath, FileStore};
use std::sync::Arc;
use std::time::Duration;
use support::chat::{obj, TestChat};

/// GET `url`: status, content type and body.
async fn download(url: &str) -> (u16, String, Vec<u8>) {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<hyper::body::Bytes>>();
    let res = client
        .get(url.parse().expect("url"))
        .await
        .expect("download");
    let status = res.status().as_u16();
    let kind = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, kind, body.to_vec())
}

#[tokio::test]
async fn s3_files_download_through_presigned_urls() {
    let moto = support::moto::Moto::shared();
    let files = support::s3::bucket(&moto, "files-presigned").await;
    let path = FilePath::parse("exports/channels/t1/channels.json").expect("path");
    files
        .put(&path, br#"{"channels":[]}"#.to_vec())
        .await
        .expect("put");
    let url = files
        .url(&path, Duration::from_secs(3600))
        .await
        .expect("url");
    assert!(url.contains("/exports/channels/t1/channels.json"), "{url}");
    assert!(url.contains("X-Amz-Expires=3600"), "{url}");
    let (status, kind, body) = download(&url).await;
    assert_eq!(status, 200);
    assert_eq!(kind, "application/json");
    assert_eq!(body, br#"{"channels":[]}"#);
}

async fn send(t: &TestChat, user: &str, text: &str) -> Value {
    let send = shared::service::messages::SendMessage {
        message: obj(json!({ "text": text, "user_id": user })),
        ..Default::default()
    };
    t.chat
        .send_message(&t.server().await, "messaging", "ledger", send)
        .await
        .expect("send")
}

#[tokio::test]
async fn exports_on_dynamodb_land_in_s3() {
    let moto = support::moto::Moto::shared();
    let mut t = TestChat::dynamodb().await;
    t.chat = t
        .chat
        .clone()
        .with_files(Arc::new(support::s3::bucket(&moto, "files-exports").await));
    t.users(&["ex-ann", "ex-bob"]).await;
    t.channel("ledger", &["ex-ann", "ex-bob"]).await;
    send(&t, "ex-ann", "first").await;
    send(&t, "ex-bob", "second").await;
    let server = t.server().await;

    let req: ExportChannelsRequest =
        serde_json::from_value(json!({"channels": [{"type": "messaging", "id": "ledger"}]}))
            .expect("request");
    let task = t.chat.export_channels(&server, req).await.expect("export");
    let status = t.chat.task_status(&task).await.expect("status");
    assert_eq!(status["status"], "completed", "{status}");
    assert!(status.get("error").is_none());
    let url = status["result"]["url"].as_str().expect("url").to_string();
    let (code, _, body) = download(&url).await;
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_slice(&body).expect("json export");
    let texts: Vec<&str> = doc["channels"][0]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["first", "second"]);
    assert_eq!(doc["channels"][0]["channel"]["cid"], "messaging:ledger");
    assert_eq!(
        doc["channels"][0]["members"].as_array().map(Vec::len),
        Some(2)
    );

    // Each status request makes a new link to the same file.
    let again = t.chat.task_status(&task).await.expect("status");
    let (code, _, body_again) = download(again["result"]["url"].as_str().expect("url")).await;
    assert_eq!((code, body_again), (200, body));

    let task = t
        .chat
        .export_users(&server, vec!["ex-bob".into()])
        .await
        .expect("users export");
    let status = t.chat.task_status(&task).await.expect("status");
    let url = status["result"]["url"].as_str().expect("url");
    assert!(url.contains("/exports/users/"), "{url}");
    let (code, _, body) = download(url).await;
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_slice(&body).expect("json export");
    assert_eq!(doc["users"][0]["user"]["id"], "ex-bob");
    assert_eq!(doc["users"][0]["messages"][0]["text"], "second");
}

#[tokio::test]
async fn exports_without_a_file_store_say_so() {
    let t = TestChat::embedded().await;
    t.users(&["nf-ann"]).await;
    let err = t
        .chat
        .export_users(&t.server().await, vec!["nf-ann".into()])
        .await
        .expect_err("no file store");
    assert!(err.message.contains("no file store"), "{}", err.message);
}
