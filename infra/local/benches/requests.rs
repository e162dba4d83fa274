//! Request-path benchmark: the chat-local router in process on the on-disk embedded store,
//! each operation timed against a baseline measured in the same run (`GET /health`, which
//! passes through the same edge but touches no store). Prints figures; asserts nothing.
//!
//! Run: `cargo bench -p chat-local --bench requests`

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use serde_json::json;
use shared::domain::clock::Clock;
use shared::service::{AppKeys, Chat, TaskMode};
use shared::store::embedded::Embedded;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const KEY: &str = "bench-key";
const SECRET: &str = "bench-secret";
const USERS: usize = 2000;
const CHANNELS: usize = 1000;

fn server_token() -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"server": true}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token")
}

fn user_token(id: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"user_id": id}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token")
}

fn request(
    method: &str,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> Request<Body> {
    let sep = if path.contains('?') { '&' } else { '?' };
    Request::builder()
        .method(method)
        .uri(format!("{path}{sep}api_key={KEY}"))
        .header("authorization", token)
        .header("stream-auth-type", "jwt")
        .header("content-type", "application/json")
        .body(
            body.map(|b| Body::from(b.to_string()))
                .unwrap_or_else(Body::empty),
        )
        .expect("request")
}

async fn send(router: &Router, req: Request<Body>) {
    let uri = req.uri().clone();
    let res = router.clone().oneshot(req).await.expect("response");
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    assert!(
        status.is_success(),
        "benchmark request {uri} failed: {status} {}",
        String::from_utf8_lossy(&body)
    );
}

struct Figures {
    name: &'static str,
    per_op: Duration,
    p99: Duration,
}

async fn measure<F>(name: &'static str, n: usize, mut make: F, router: &Router) -> Figures
where
    F: FnMut(usize) -> Request<Body>,
{
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let req = make(i);
        let t = Instant::now();
        send(router, req).await;
        samples.push(t.elapsed());
    }
    samples.sort();
    let total: Duration = samples.iter().sum();
    Figures {
        name,
        per_op: total / n as u32,
        p99: samples[(n * 99 / 100).min(n - 1)],
    }
}

/// The system clock, moved forward on demand: the unread phase runs as if the seeded channels
/// had been quiet for minutes, as most of a member's channels are.
#[derive(Default)]
struct ShiftedClock(std::sync::atomic::AtomicI64);

impl Clock for ShiftedClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
            + chrono::Duration::seconds(self.0.load(std::sync::atomic::Ordering::Relaxed))
    }
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // The benchmark sends thousands of requests a minute as one user: it measures the request
    // path, not the per-user rate limit (which is still counted, only never refuses).
    std::env::set_var("CHAT_RATE_LIMITS", "off");
    let dir = tempfile::tempdir().expect("data dir");
    let store = Embedded::open(dir.path()).expect("store");
    let clock = Arc::new(ShiftedClock::default());
    let chat = Chat::new(
        Arc::new(store),
        clock.clone(),
        AppKeys {
            api_key: KEY.into(),
            api_secret: SECRET.into(),
        },
        TaskMode::Inline,
    );
    chat.bootstrap().await.expect("bootstrap");
    let router = shared::http::with_edge(
        api_app::routes()
            .merge(api_users::routes())
            .merge(api_channels::routes())
            .merge(api_messages::routes()),
        chat,
    );
    let server = server_token();
    let rss_before = rss_kib();

    // Seed users in batches of 100.
    let t = Instant::now();
    for batch in 0..USERS / 100 {
        let users: serde_json::Map<String, serde_json::Value> = (0..100)
            .map(|i| {
                let id = format!("user-{:05}", batch * 100 + i);
                (id.clone(), json!({"id": id, "name": format!("Person {}", batch * 100 + i), "age": (batch * 100 + i) % 90}))
            })
            .collect();
        send(
            &router,
            request("POST", "/users", &server, Some(json!({"users": users}))),
        )
        .await;
    }
    send(
        &router,
        request(
            "POST",
            "/users",
            &server,
            Some(json!({"users": {"solo": {"id": "solo"}}})),
        ),
    )
    .await;
    let seed = t.elapsed();

    // Seed channels: user-00000 is in every one, user-00001 in every tenth, `solo` in the
    // first only; five members each.
    let t = Instant::now();
    for c in 0..CHANNELS {
        let mut members: Vec<String> = (2..6)
            .map(|k| format!("user-{:05}", (c * 4 + k) % USERS))
            .collect();
        members.push("user-00000".into());
        if c % 10 == 0 {
            members.push("user-00001".into());
        }
        if c == 0 {
            members.push("solo".into());
        }
        let body = json!({"data": {"created_by_id": "user-00000", "members": members, "rank": c}});
        send(
            &router,
            request(
                "POST",
                &format!("/channels/messaging/bench-{c}/query"),
                &server,
                Some(body),
            ),
        )
        .await;
    }
    let channel_seed = t.elapsed();

    let n = 500;
    let figures = vec![
        measure("GET /health (baseline)", n, |_| Request::builder().uri("/health").body(Body::empty()).expect("req"), &router).await,
        measure("GET /app (server token)", n, |_| request("GET", "/app", &server, None), &router).await,
        measure("GET /app (user token)", n, |i| request("GET", "/app", &user_token(&format!("user-{:05}", i % USERS)), None), &router).await,
        measure("POST /users (1 user)", n, |i| request("POST", "/users", &server, Some(json!({"users": {format!("u-{i}"): {"id": format!("u-{i}"), "x": i}}}))), &router).await,
        measure("PATCH /users (1 user)", n, |i| request("PATCH", "/users", &server, Some(json!({"users": [{"id": format!("user-{:05}", i % USERS), "set": {"color": "red"}}]}))), &router).await,
        measure("GET /users by id", n, |i| {
            let payload = json!({"filter_conditions": {"id": format!("user-{:05}", i % USERS)}, "sort": []}).to_string();
            request("GET", &format!("/users?payload={}", urlencode(&payload)), &server, None)
        }, &router).await,
        measure("GET /users custom filter (2000 users)", 50, |i| {
            let payload = json!({"filter_conditions": {"age": {"$gte": i % 90}}, "sort": [{"field": "age", "direction": -1}], "limit": 30}).to_string();
            request("GET", &format!("/users?payload={}", urlencode(&payload)), &server, None)
        }, &router).await,
        measure("GET /users custom range, unsorted (2000 users)", 50, |i| {
            let payload = json!({"filter_conditions": {"age": {"$gte": i % 90, "$lt": i % 90 + 3}}, "sort": [{"field": "id", "direction": 1}], "limit": 30}).to_string();
            request("GET", &format!("/users?payload={}", urlencode(&payload)), &server, None)
        }, &router).await,
        measure("GET /users custom $eq (2000 users)", 50, |i| {
            let payload = json!({"filter_conditions": {"age": i % 90}, "sort": [{"field": "id", "direction": 1}], "limit": 30}).to_string();
            request("GET", &format!("/users?payload={}", urlencode(&payload)), &server, None)
        }, &router).await,
        measure("POST channel query: create (3 members)", n, |i| {
            let members: Vec<String> = (0..3).map(|k| format!("user-{:05}", (i * 3 + k) % USERS)).collect();
            request("POST", &format!("/channels/messaging/new-{i}/query"), &server, Some(json!({"data": {"created_by_id": "user-00000", "members": members}})))
        }, &router).await,
        measure("POST channel query: existing (member)", n, |i| {
            request("POST", &format!("/channels/messaging/bench-{}/query", i % CHANNELS), &user_token("user-00000"), Some(json!({"state": true})))
        }, &router).await,
        measure("POST channel update: add a member", n, |i| {
            request("POST", &format!("/channels/messaging/bench-{}", i % CHANNELS), &server, Some(json!({"add_members": [format!("user-{:05}", 1000 + i % 1000)]})))
        }, &router).await,
        measure("POST message (server side)", n, |i| {
            request("POST", &format!("/channels/messaging/bench-{}/message", i % CHANNELS), &server, Some(json!({"message": {"text": format!("hello number {i}"), "user_id": "user-00000"}})))
        }, &router).await,
        measure("POST /channels: mine (in 1 channel)", 100, |_| {
            request("POST", "/channels", &user_token("solo"), Some(json!({"filter_conditions": {"members": {"$in": ["solo"]}}, "limit": 10})))
        }, &router).await,
        measure("POST /channels: mine (in 100 channels)", 100, |_| {
            request("POST", "/channels", &user_token("user-00001"), Some(json!({"filter_conditions": {"members": {"$in": ["user-00001"]}}, "limit": 10})))
        }, &router).await,
        measure("POST /channels: mine (in 1000 channels)", 100, |_| {
            request("POST", "/channels", &user_token("user-00000"), Some(json!({"filter_conditions": {"members": {"$in": ["user-00000"]}}, "limit": 10})))
        }, &router).await,
        measure("POST /channels: mine, by last_message_at (1000)", 100, |_| {
            request("POST", "/channels", &user_token("user-00000"), Some(json!({"filter_conditions": {"type": "messaging", "members": {"$in": ["user-00000"]}}, "sort": [{"field": "last_message_at", "direction": -1}], "limit": 10})))
        }, &router).await,
    ];
    // Unread counts: two minutes on, with unread messages in 20 of user-00000's channels.
    clock.0.store(120, std::sync::atomic::Ordering::Relaxed);
    for c in 0..20 {
        let body = json!({"message": {"text": "unread", "user_id": format!("user-{:05}", (c * 4 + 2) % USERS)}});
        send(
            &router,
            request(
                "POST",
                &format!("/channels/messaging/bench-{c}/message"),
                &server,
                Some(body),
            ),
        )
        .await;
    }
    let t = Instant::now();
    send(
        &router,
        request("GET", "/unread", &user_token("user-00000"), None),
    )
    .await;
    let first_unread = t.elapsed();
    let mut figures = figures;
    figures.extend(vec![
        measure("GET /unread (in 1000 channels)", 100, |_| {
            request("GET", "/unread", &user_token("user-00000"), None)
        }, &router).await,
        measure("POST channel query (25 newest messages)", n, |i| {
            request("POST", &format!("/channels/messaging/bench-{}/query", i % CHANNELS), &user_token("user-00000"), Some(json!({"state": true, "messages": {"limit": 25}})))
        }, &router).await,
        measure("POST read (mark read)", n, |i| {
            request("POST", &format!("/channels/messaging/bench-{}/read", i % CHANNELS), &user_token("user-00000"), Some(json!({})))
        }, &router).await,
        measure("GET /search one channel (~3 messages)", n, |i| {
            let payload = json!({"filter_conditions": {"cid": format!("messaging:bench-{}", i % CHANNELS)}, "query": "number", "limit": 10}).to_string();
            request("GET", &format!("/search?payload={}", urlencode(&payload)), &server, None)
        }, &router).await,
        measure("GET /members custom sort", n, |i| {
            let payload = json!({"type": "messaging", "id": format!("bench-{}", i % CHANNELS), "filter_conditions": {}, "sort": [{"field": "user_id", "direction": -1}]}).to_string();
            request("GET", &format!("/members?payload={}", urlencode(&payload)), &server, None)
        }, &router).await,
    ]);
    let baseline = figures[0].per_op;
    println!("request path on the embedded store (on disk), {USERS} users seeded in {seed:.2?} ({:.0} users/s)", USERS as f64 / seed.as_secs_f64());
    println!(
        "{CHANNELS} channels of 5-7 members created in {channel_seed:.2?} ({:.0} channels/s)",
        CHANNELS as f64 / channel_seed.as_secs_f64()
    );
    println!(
        "{:<40} {:>12} {:>12} {:>12}",
        "operation", "mean", "p99", "x baseline"
    );
    for f in &figures {
        println!(
            "{:<40} {:>12.2?} {:>12.2?} {:>12.1}",
            f.name,
            f.per_op,
            f.p99,
            f.per_op.as_secs_f64() / baseline.as_secs_f64()
        );
    }
    println!("first GET /unread after the quiet spell (removes the flags of read channels): {first_unread:.2?}");
    if let (Some(before), Some(after)) = (rss_before, rss_kib()) {
        println!("resident memory: {before} KiB before seeding, {after} KiB after");
    }
}

fn urlencode(s: &str) -> String {
    shared::realtime::sigv4::uri_encode(s)
}
