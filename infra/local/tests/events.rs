//! Event replay: every sample API Gateway event in `events/<function>/` goes through that
//! function's router exactly as Lambda would hand it over, on the DynamoDB adapter against moto;
//! and every route `template.yaml` gives a function is served by that function's router.

#[allow(dead_code)]
#[path = "../../../shared/tests/support/moto.rs"]
mod moto;

use axum::Router;
use shared::domain::clock::SystemClock;
use shared::service::{AppKeys, Chat, TaskMode};
use shared::store::dynamodb::DynamoDb;
use shared::store::embedded::Embedded;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower::ServiceExt;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The keys the sample events were made with.
fn keys() -> AppKeys {
    AppKeys {
        api_key: "events-key".into(),
        api_secret: "events-secret".into(),
    }
}

/// The product as a Lambda function runs it: DynamoDB (here moto), tasks inline. Each call
/// gets tables of its own on the shared moto server.
async fn lambda_chat(moto: &moto::Moto) -> Chat {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let config = moto.sdk_config();
    let prefix = format!("replay-{}-{n}-", std::process::id());
    let store = DynamoDb::new(
        aws_sdk_dynamodb::Client::new(&config),
        aws_sdk_dynamodbstreams::Client::new(&config),
        prefix,
    );
    store.create_tables().await.expect("tables on moto");
    let chat = Chat::new(
        Arc::new(store),
        Arc::new(SystemClock),
        keys(),
        TaskMode::Inline,
    );
    chat.bootstrap().await.expect("bootstrap");
    chat
}

/// Route checks never reach storage: the embedded store in memory is enough.
fn local_chat() -> Chat {
    Chat::new(
        Arc::new(Embedded::in_memory().expect("in-memory store")),
        Arc::new(SystemClock),
        keys(),
        TaskMode::Inline,
    )
}

fn router_for(function: &str, chat: Chat) -> Router {
    match function {
        "api-app" => api_app::router(chat),
        "api-users" => api_users::router(chat),
        "api-channels" => api_channels::router(chat),
        "api-messages" => api_messages::router(chat),
        "api-campaigns" => api_campaigns::router(chat),
        other => panic!("no function named {other}"),
    }
}

/// Functions run with `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH=true` (template.yaml), so routes
/// see `/users`, not `/v1/users`.
fn lambda_environment() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::env::set_var("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true"));
}

async fn call(router: &Router, event_json: &str) -> (u16, serde_json::Value) {
    lambda_environment();
    let req =
        lambda_http::request::from_str(event_json).expect("event parses as an API Gateway request");
    let res = router.clone().oneshot(req).await.expect("router answers");
    let status = res.status().as_u16();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn sample_events_replay_through_their_functions() {
    let moto = moto::Moto::shared();
    let mut replayed = 0;
    for function in ["api-app", "api-users", "api-channels"] {
        let chat = lambda_chat(&moto).await;
        let router = router_for(function, chat);
        let dir = root().join("events").join(function);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("events dir")
            .flatten()
            .map(|e| e.path())
            .collect();
        // Writes before reads, so a query event sees what an upsert event stored.
        files.sort_by_key(|p| {
            !p.file_name()
                .map(|n| {
                    n.to_string_lossy().starts_with("upsert")
                        || n.to_string_lossy().starts_with("create")
                })
                .unwrap_or(false)
        });
        for file in files {
            let json = std::fs::read_to_string(&file).expect("event file");
            let (status, body) = call(&router, &json).await;
            assert_eq!(status, 200, "{}: {body}", file.display());
            assert!(
                body.get("duration").is_some(),
                "{}: no duration in {body}",
                file.display()
            );
            replayed += 1;
        }
    }
    assert!(replayed >= 6, "only {replayed} events replayed");
}

#[tokio::test]
async fn query_event_sees_the_upserted_user() {
    let moto = moto::Moto::shared();
    let chat = lambda_chat(&moto).await;
    let router = router_for("api-users", chat);
    let dir = root().join("events/api-users");
    let upsert = std::fs::read_to_string(dir.join("upsert-users.json")).expect("upsert event");
    let query = std::fs::read_to_string(dir.join("query-users.json")).expect("query event");
    assert_eq!(call(&router, &upsert).await.0, 200);
    let (status, body) = call(&router, &query).await;
    assert_eq!(status, 200);
    assert_eq!(body["users"][0]["id"], "john");
    assert_eq!(body["users"][0]["book"], "dune");
}

/// (function binary, method, path) for every API event in template.yaml.
fn template_routes() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml");
    let mut routes = Vec::new();
    let mut function = String::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(bin) = t.strip_prefix("Binary: ") {
            function = bin.trim().to_string();
        }
        if t.contains("Type: Api") {
            let field = |name: &str| {
                t.split(&format!("{name}: ")).nth(1).map(|r| {
                    r.split(',')
                        .next()
                        .unwrap_or("")
                        .trim_end_matches([' ', '}'])
                        .trim()
                        .trim_matches('"')
                        .to_string()
                })
            };
            if let (Some(path), Some(method)) = (field("Path"), field("Method")) {
                routes.push((function.clone(), method, path));
            }
        }
    }
    routes
}

#[tokio::test]
async fn every_template_route_is_served_by_its_function() {
    let routes = template_routes();
    assert!(routes.len() > 20, "template routes not found: {routes:?}");
    for (function, method, path) in routes {
        let router = router_for(&function, local_chat());
        let concrete = path
            .replace("{id}", "x")
            .replace("{name}", "x")
            .replace("{type}", "x")
            .replace("{user_id}", "x")
            .replace("{target_id}", "x")
            .replace("{path+}", "x/y");
        let req = axum::http::Request::builder()
            .method(method.as_str())
            .uri(&concrete)
            .body(axum::body::Body::empty())
            .expect("request");
        let res = router.oneshot(req).await.expect("router answers");
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .expect("body");
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let unrouted = body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("no route"))
            || body.is_null();
        assert!(
            !unrouted,
            "{function} does not serve {method} {path}: {body}"
        );
    }
}

#[tokio::test]
async fn query_channels_event_sees_the_created_channel() {
    let moto = moto::Moto::shared();
    let chat = lambda_chat(&moto).await;
    let router = router_for("api-channels", chat);
    let dir = root().join("events/api-channels");
    let create = std::fs::read_to_string(dir.join("create-channel.json")).expect("create event");
    let query = std::fs::read_to_string(dir.join("query-channels.json")).expect("query event");
    assert_eq!(call(&router, &create).await.0, 200);
    let (status, body) = call(&router, &query).await;
    assert_eq!(status, 200, "{body}");
    let cids: Vec<&str> = body["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .filter_map(|c| c["channel"]["cid"].as_str())
        .collect();
    assert!(cids.contains(&"messaging:general"), "{body}");
}
