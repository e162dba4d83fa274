//! Load over HTTP: a release `chat-local` on the on-disk store, driven by 8 / 32 / 128
//! concurrent keep-alive clients, each phase next to a `GET /health` baseline at the same
//! concurrency in the same run. Sends into distinct channels and into one hot channel (sends/s,
//! p50 / p99, refusals), the disk the messages took, the CPU chat-local uses idle, and query
//! channels for a member of 1 / 100 / 1,000 channels. Prints figures; asserts nothing.
//!
//! Run: `cargo bench -p chat-local --bench load`. The server runs with `CHAT_RATE_LIMITS=off`:
//! one app sending thousands of messages a minute is what this measures, not Stream's budgets.

#[path = "support/http.rs"]
mod http;

use http::{call, ms, phase_of, Http, Server};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// Requests per phase (split over the clients).
const REQUESTS: usize = 4000;
const CLIENTS: [usize; 3] = [8, 32, 128];
const CHANNELS: usize = 128;

/// [`phase_of`] with `REQUESTS` requests.
async fn phase<F>(
    http: &Http,
    url: &str,
    clients: usize,
    make: F,
) -> (f64, Duration, Duration, usize)
where
    F: Fn(usize) -> (&'static str, String, Option<serde_json::Value>) + Send + Sync + 'static,
{
    phase_of(http, url, clients, REQUESTS, make).await
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("data dir");
    let (server, http) = Server::start(dir.path()).await;
    let users: Vec<String> = (0..CHANNELS).map(|i| format!("load-{i:03}")).collect();
    for batch in users.chunks(64) {
        let upsert = json!({ "users": batch.iter().map(|u| json!({"id": u})).collect::<Vec<_>>() });
        let status = call(&http, &server.url, "POST", "/users", Some(&upsert)).await;
        assert!(status == 200 || status == 201, "seeding users: {status}");
    }
    for (i, u) in users.iter().enumerate() {
        let body = json!({"data": {"members": [u], "created_by_id": u}});
        call(
            &http,
            &server.url,
            "POST",
            &format!("/channels/messaging/load-{i:03}/query"),
            Some(&body),
        )
        .await;
    }
    // A channel takes at most 100 members per call.
    let hot = json!({"data": {"members": users[..100], "created_by_id": users[0]}});
    let created = call(
        &http,
        &server.url,
        "POST",
        "/channels/messaging/hot/query",
        Some(&hot),
    )
    .await;
    assert_eq!(created, 200, "creating the hot channel");

    println!("HTTP load on chat-local (release, on-disk store), {REQUESTS} requests per phase");
    println!(
        "{:<34}{:>12}{:>11}{:>11}{:>9}{:>12}",
        "phase", "requests/s", "p50", "p99", "refused", "x baseline"
    );
    let mut sent = 0;
    let before = dir_bytes(dir.path());
    for clients in CLIENTS {
        let (base, b50, b99, _) = phase(&http, &server.url, clients, |_| {
            ("GET", "/health".to_string(), None)
        })
        .await;
        println!(
            "{:<34}{:>12.0}{:>11}{:>11}{:>9}{:>12}",
            format!("GET /health, {clients} clients"),
            base,
            ms(b50),
            ms(b99),
            "-",
            "1.00"
        );
        let u = users.clone();
        let (rate, p50, p99, refused) = phase(&http, &server.url, clients, move |i| {
            let c = i % CHANNELS;
            let body = json!({"message": {"text": format!("load {i}"), "user_id": u[c]}});
            (
                "POST",
                format!("/channels/messaging/load-{c:03}/message"),
                Some(body),
            )
        })
        .await;
        sent += REQUESTS;
        println!(
            "{:<34}{:>12.0}{:>11}{:>11}{:>9}{:>12.2}",
            format!("send, distinct channels, {clients} c."),
            rate,
            ms(p50),
            ms(p99),
            refused,
            rate / base
        );
        let u = users.clone();
        let (rate, p50, p99, refused) = phase(&http, &server.url, clients, move |i| {
            let body = json!({"message": {"text": format!("hot {i}"), "user_id": u[i % 100]}});
            (
                "POST",
                "/channels/messaging/hot/message".to_string(),
                Some(body),
            )
        })
        .await;
        sent += REQUESTS;
        println!(
            "{:<34}{:>12.0}{:>11}{:>11}{:>9}{:>12.2}",
            format!("send, one hot channel, {clients} c."),
            rate,
            ms(p50),
            ms(p99),
            refused,
            rate / base
        );
    }
    // Let the outbox's deliveries and the WAL settle before measuring the disk.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = dir_bytes(dir.path());
    println!(
        "disk: {:.0} bytes per message ({sent} messages, database + WAL, events and change log included)",
        after.saturating_sub(before) as f64 / sent as f64
    );

    // Idle: the process's CPU time over a few quiet seconds.
    let pid = server.child.id();
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(5)).await;
    if let (Some(a), Some(b)) = (before, cpu_ticks(pid)) {
        // Linux counts CPU time in ticks of 1/100 s.
        println!(
            "idle: {:.2}% of one core over 5 s",
            (b - a) as f64 / 100.0 / 5.0 * 100.0
        );
    }

    // Query channels for members of 1, 100 and 1,000 channels (server side, on the member's
    // behalf, one client: the latency of one app opening its channel list), next to the baseline.
    let member_of = |n: usize| format!("qc-{n}");
    let members: Vec<serde_json::Value> = [1, 100, 1000]
        .iter()
        .map(|n| json!({ "id": member_of(*n) }))
        .collect();
    let upsert = json!({ "users": members });
    call(&http, &server.url, "POST", "/users", Some(&upsert)).await;
    for i in 0..1000 {
        let mut members = vec![member_of(1000), users[i % CHANNELS].clone()];
        if i < 100 {
            members.push(member_of(100));
        }
        if i == 0 {
            members.push(member_of(1));
        }
        let body = json!({"data": {"members": members, "created_by_id": users[i % CHANNELS]}});
        call(
            &http,
            &server.url,
            "POST",
            &format!("/channels/messaging/qc-{i:04}/query"),
            Some(&body),
        )
        .await;
        if i % 7 == 0 {
            let message = json!({"message": {"text": "hello", "user_id": users[i % CHANNELS]}});
            call(
                &http,
                &server.url,
                "POST",
                &format!("/channels/messaging/qc-{i:04}/message"),
                Some(&message),
            )
            .await;
        }
    }
    let (base, b50, b99, _) = phase_of(&http, &server.url, 1, 2000, |_| {
        ("GET", "/health".to_string(), None)
    })
    .await;
    println!(
        "{:<34}{:>12.0}{:>11}{:>11}{:>9}{:>12}",
        "GET /health, 1 client",
        base,
        ms(b50),
        ms(b99),
        "-",
        "1.00"
    );
    for n in [1, 100, 1000] {
        let user = member_of(n);
        let (rate, p50, p99, refused) = phase_of(&http, &server.url, 1, 200, move |_| {
            let body = json!({"filter_conditions": {"members": {"$in": [user]}}, "sort": [{"field": "last_message_at", "direction": -1}], "limit": 10, "user_id": user, "state": true});
            ("POST", "/channels".to_string(), Some(body))
        })
        .await;
        println!(
            "{:<34}{:>12.0}{:>11}{:>11}{:>9}{:>12.3}",
            format!("query channels, member of {n}"),
            rate,
            ms(p50),
            ms(p99),
            refused,
            rate / base
        );
    }
    drop(server);
}

/// User plus system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}
