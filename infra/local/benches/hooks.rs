//! Events to the app's hooks: a release `chat-local` on the on-disk store sends `message.new`
//! for every message to a loopback webhook, then to an SQS queue on moto (the customer's account;
//! skipped when `moto_server` is missing), and the same sends with no hook in the same run.
//! Prints events/s delivered (from the first send to the last event received) and the send
//! path's rate and p50 / p99 with and without hooks. Asserts nothing.
//!
//! Run: `cargo bench -p chat-local --bench hooks` (`MOTO_SERVER` names moto_server, else the
//! workspace's `.venv/bin/moto_server`).

#[path = "support/http.rs"]
mod http;

use http::{call, free_port, message_phase, ms, Http, Server};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Messages per phase.
const MESSAGES: usize = 2000;
/// Messages of the SQS phase (moto takes a few hundred a second).
const SQS_MESSAGES: usize = 500;
const CLIENTS: usize = 8;
const CHANNELS: usize = 64;

/// The loopback webhook: counts the `message.new` bodies and when the last one came.
#[derive(Default)]
struct Received {
    count: AtomicUsize,
    last: Mutex<Option<Instant>>,
}

async fn webhook() -> (String, Arc<Received>) {
    let got = Arc::new(Received::default());
    let counter = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let got = counter.clone();
            async move {
                if body.contains("\"message.new\"") {
                    got.count.fetch_add(1, Ordering::SeqCst);
                    *got.last.lock().unwrap() = Some(Instant::now());
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn moto_binary() -> PathBuf {
    match std::env::var_os("MOTO_SERVER") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server"),
    }
}

async fn start_moto() -> Option<(Moto, String)> {
    let binary = moto_binary();
    if !binary.exists() {
        return None;
    }
    let port = free_port();
    let child = Command::new(binary)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let moto = Moto(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some((moto, format!("http://127.0.0.1:{port}")))
}

/// Sends `n` messages over the channels from `CLIENTS` clients: (sends/s, p50, p99).
async fn sends(http: &Http, url: &str, round: usize, n: usize) -> (f64, Duration, Duration) {
    message_phase(http, url, "hk", CHANNELS, CLIENTS, round, n).await
}

async fn configure(http: &Http, url: &str, settings: serde_json::Value) {
    assert_eq!(call(http, url, "PATCH", "/app", Some(&settings)).await, 200);
    // The settings are cached for up to a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

fn row(phase: &str, sends: (f64, Duration, Duration), delivered: Option<f64>) {
    println!(
        "{:<30}{:>10.0}{:>11}{:>11}{:>14}",
        phase,
        sends.0,
        ms(sends.1),
        ms(sends.2),
        delivered.map_or("-".to_string(), |d| format!("{d:.0}"))
    );
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("data dir");
    let moto = start_moto().await;
    let (server, http) = Server::start(dir.path()).await;
    let users: Vec<serde_json::Value> = (0..CHANNELS)
        .map(|c| json!({"id": format!("hk-{c:02}")}))
        .collect();
    call(
        &http,
        &server.url,
        "POST",
        "/users",
        Some(&json!({ "users": users })),
    )
    .await;
    for c in 0..CHANNELS {
        let u = format!("hk-{c:02}");
        let body = json!({"data": {"members": [u], "created_by_id": u}});
        call(
            &http,
            &server.url,
            "POST",
            &format!("/channels/messaging/hk-{c:02}/query"),
            Some(&body),
        )
        .await;
    }

    println!("Events to hooks from chat-local (release, on-disk store): {MESSAGES} messages a phase, {CLIENTS} clients");
    println!(
        "{:<30}{:>10}{:>11}{:>11}{:>14}",
        "phase", "sends/s", "send p50", "send p99", "delivered/s"
    );
    row(
        "no hooks (baseline)",
        sends(&http, &server.url, 0, MESSAGES).await,
        None,
    );

    let (hook_url, got) = webhook().await;
    configure(
        &http,
        &server.url,
        json!({"event_hooks": [{"hook_type": "webhook", "webhook_url": hook_url, "event_types": ["message.new"]}]}),
    )
    .await;
    let started = Instant::now();
    let sent = sends(&http, &server.url, 1, MESSAGES).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while got.count.load(Ordering::SeqCst) < MESSAGES && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let received = got.count.load(Ordering::SeqCst);
    let last = got.last.lock().unwrap().unwrap_or_else(Instant::now);
    row(
        "webhook (loopback)",
        sent,
        Some(received as f64 / (last - started).as_secs_f64()),
    );
    if received < MESSAGES {
        println!("  only {received} of {MESSAGES} reached the webhook within 2 minutes");
    }

    let Some((_moto, endpoint)) = moto else {
        println!(
            "SQS phase skipped: no moto_server at {}",
            moto_binary().display()
        );
        return;
    };
    let config = aws_config::SdkConfig::builder()
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(
            aws_sdk_sqs::config::Credentials::new("bench", "bench", None, None, "bench"),
        ))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = sqs
        .create_queue()
        .queue_name("bench-events")
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    // moto's own pace: the same batches sent straight to it (bodies the size of a message.new).
    let baseline_queue = sqs
        .create_queue()
        .queue_name("bench-baseline")
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    let body = json!({"type": "message.new", "pad": "x".repeat(1500)}).to_string();
    let started = Instant::now();
    for _ in 0..SQS_MESSAGES / 10 {
        let entries = (0..10)
            .map(|j| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(j.to_string())
                    .message_body(&body)
                    .build()
                    .expect("entry")
            })
            .collect();
        sqs.send_message_batch()
            .queue_url(&baseline_queue)
            .set_entries(Some(entries))
            .send()
            .await
            .expect("baseline batch");
    }
    println!(
        "{:<30}{:>10}{:>11}{:>11}{:>14.0}",
        "SQS (moto) direct, baseline",
        "-",
        "-",
        "-",
        SQS_MESSAGES as f64 / started.elapsed().as_secs_f64()
    );
    configure(
        &http,
        &server.url,
        json!({"event_hooks": [{"hook_type": "sqs", "sqs_queue_url": queue, "sqs_key": "bench", "sqs_secret": "bench",
                                 "event_types": ["message.new"]}]}),
    )
    .await;
    let started = Instant::now();
    let sent = sends(&http, &server.url, 2, SQS_MESSAGES).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut queued = 0;
    while Instant::now() < deadline {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&queue)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .expect("attributes");
        queued = attrs
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            })
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        if queued >= SQS_MESSAGES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    row(
        "SQS (moto)",
        sent,
        Some(queued as f64 / started.elapsed().as_secs_f64()),
    );
    drop(server);
}
