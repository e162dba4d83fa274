//! Pushes: a release `chat-local` on the on-disk store pushes every message to two offline
//! members, one on a loopback FCM HTTP v1 stand-in (HTTP/1.1, with its OAuth token endpoint)
//! and one on a loopback APNs stand-in (HTTP/2), after the same sends with no push provider in
//! the same run. Prints pushes/s delivered (from the first send to the last push received) and
//! the send path's rate and p50 / p99 with and without pushes. Asserts nothing.
//!
//! Run: `cargo bench -p chat-local --bench push`.

#[path = "support/http.rs"]
mod http;

use http::{call, message_phase, ms, Http, Server};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Messages per phase (two pushes each).
const MESSAGES: usize = 2000;
const CLIENTS: usize = 8;
const CHANNELS: usize = 64;

/// What a stand-in took: pushes counted, and when the last came.
#[derive(Default)]
struct Received {
    count: AtomicUsize,
    last: Mutex<Option<Instant>>,
    /// The messages pushed, by id (a message pushed twice counts once).
    ids: Mutex<std::collections::HashSet<String>>,
}

/// A loopback stand-in answering every request 200 (`/token` with an access token); counts
/// the pushes (every other path).
async fn stand_in(h2: bool) -> (u16, Arc<Received>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Received::default());
    let counter = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let got = counter.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let got = got.clone();
                        async move {
                            let token = req.uri().path() == "/token";
                            let bytes = http_body_util::BodyExt::collect(req.into_body())
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            if !token {
                                let v: serde_json::Value =
                                    serde_json::from_slice(&bytes).unwrap_or_default();
                                let id = v["message"]["data"]["id"]
                                    .as_str()
                                    .or(v["stream"]["id"].as_str())
                                    .unwrap_or_default()
                                    .to_string();
                                got.ids.lock().unwrap().insert(id);
                            }
                            let body = if token {
                                json!({"access_token": "bench", "expires_in": 3600})
                            } else {
                                got.count.fetch_add(1, Ordering::SeqCst);
                                *got.last.lock().unwrap() = Some(Instant::now());
                                json!({"name": "projects/bench/messages/1"})
                            };
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::from(body.to_string()),
                            )))
                        }
                    },
                );
                let io = TokioIo::new(stream);
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                }
            });
        }
    });
    (port, got)
}

async fn sends(http: &Http, url: &str, round: usize) -> (f64, Duration, Duration) {
    message_phase(http, url, "ps", CHANNELS, CLIENTS, round, MESSAGES).await
}

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/tests/fixtures/push")
        .join(name);
    std::fs::read_to_string(path).expect("push fixture")
}

fn row(phase: &str, sends: (f64, Duration, Duration), pushed: Option<f64>) {
    println!(
        "{:<34}{:>10.0}{:>11}{:>11}{:>12}",
        phase,
        sends.0,
        ms(sends.1),
        ms(sends.2),
        pushed.map_or("-".to_string(), |d| format!("{d:.0}"))
    );
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("data dir");
    let (server, http) = Server::start(dir.path()).await;
    // Each channel: its sender and two offline members, one on each service.
    let users: Vec<serde_json::Value> = (0..CHANNELS)
        .flat_map(|c| {
            ["ps", "pf", "pa"]
                .map(|p| json!({"id": format!("{p}-{c:02}"), "name": format!("{p} {c}")}))
        })
        .collect();
    for chunk in users.chunks(100) {
        let body = json!({ "users": chunk });
        let status = call(&http, &server.url, "POST", "/users", Some(&body)).await;
        assert!(status == 200 || status == 201, "users: {status}");
    }
    let (fcm_port, fcm) = stand_in(false).await;
    let (apns_port, apns) = stand_in(true).await;
    let credentials = json!({
        "type": "service_account", "project_id": "bench", "client_email": "bench@bench.iam",
        "private_key": fixture("fcm_key.pem"), "token_uri": format!("http://127.0.0.1:{fcm_port}/token"),
    });
    let provider = json!({"push_provider": {"name": "bench", "type": "firebase",
        "firebase_credentials": credentials.to_string(),
        "firebase_host": format!("http://127.0.0.1:{fcm_port}")}});
    for c in 0..CHANNELS {
        let body = json!({"data": {"members": [format!("ps-{c:02}"), format!("pf-{c:02}"), format!("pa-{c:02}")],
            "created_by_id": format!("ps-{c:02}")}});
        call(
            &http,
            &server.url,
            "POST",
            &format!("/channels/messaging/ps-{c:02}/query"),
            Some(&body),
        )
        .await;
    }
    println!("Pushes from chat-local (release, on-disk store): {MESSAGES} messages a phase, {CLIENTS} clients, 2 pushes a message");
    println!(
        "{:<34}{:>10}{:>11}{:>11}{:>12}",
        "phase", "sends/s", "send p50", "send p99", "pushes/s"
    );
    row(
        "no push provider (baseline)",
        sends(&http, &server.url, 0).await,
        None,
    );

    assert_eq!(
        call(
            &http,
            &server.url,
            "POST",
            "/push_providers",
            Some(&provider)
        )
        .await,
        200
    );
    let apn = json!({"apn_config": {"auth_key": fixture("apns_key.p8"), "key_id": "BENCH", "team_id": "TEAM",
        "bundle_id": "app.bench", "host": format!("http://127.0.0.1:{apns_port}")}});
    assert_eq!(
        call(&http, &server.url, "PATCH", "/app", Some(&apn)).await,
        200
    );
    for c in 0..CHANNELS {
        for (user, kind, name) in [("pf", "firebase", Some("bench")), ("pa", "apn", None)] {
            let mut device = json!({"id": format!("{user}-{c:02}-token"), "push_provider": kind, "user_id": format!("{user}-{c:02}")});
            if let Some(n) = name {
                device["push_provider_name"] = json!(n);
            }
            call(&http, &server.url, "POST", "/devices", Some(&device)).await;
        }
    }
    // The settings are cached for up to a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let started = Instant::now();
    let sent = sends(&http, &server.url, 1).await;
    let total = || fcm.count.load(Ordering::SeqCst) + apns.count.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(120);
    while total() < 2 * MESSAGES && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last = [&fcm, &apns]
        .iter()
        .filter_map(|r| *r.last.lock().unwrap())
        .max()
        .unwrap_or_else(Instant::now);
    row(
        "FCM + APNs stand-ins (loopback)",
        sent,
        Some(total() as f64 / (last - started).as_secs_f64()),
    );
    println!(
        "  pushes received: FCM {} ({} messages), APNs {} ({} messages), of {MESSAGES} each",
        fcm.count.load(Ordering::SeqCst),
        fcm.ids.lock().unwrap().len(),
        apns.count.load(Ordering::SeqCst),
        apns.ids.lock().unwrap().len(),
    );
    drop(server);
}
