//! Campaign fan-out: a release `chat-local` on the on-disk store delivers a campaign to every
//! user of the app (60,000 by default; `CAMPAIGN_BENCH_USERS`), each in a channel of its own
//! created for it (sender and receiver), and prints the time from start to `completed` next to
//! Stream's published figure (a campaign to 60,000 users "typically takes ~1 minute") and next
//! to the same work through the public API in the same run: 2,000 receivers, each a channel
//! created and a message sent from 8 clients, scaled to the audience. Asserts nothing.
//!
//! Run: `cargo bench -p chat-local --bench campaign`.

#[path = "support/http.rs"]
mod http;

use http::{call, call_json, phase_of, Server};
use serde_json::json;
use std::time::{Duration, Instant};

const BASELINE_RECEIVERS: usize = 2_000;
const CLIENTS: usize = 8;

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run());
}

async fn run() {
    let users: usize = std::env::var("CAMPAIGN_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60_000);
    let dir = tempfile::tempdir().expect("data dir");
    let (server, http) = Server::start(dir.path()).await;
    let url = server.url.clone();

    let seeding = Instant::now();
    let (rate, _, _, refused) = phase_of(&http, &url, 4, users.div_ceil(100), move |b| {
        let batch: serde_json::Map<String, serde_json::Value> = (b * 100
            ..((b + 1) * 100).min(users))
            .map(|i| {
                let id = format!("r-{i:06}");
                (
                    id.clone(),
                    json!({"id": id, "name": format!("Receiver {i}")}),
                )
            })
            .collect();
        (
            "POST",
            "/users".to_string(),
            Some(json!({ "users": batch })),
        )
    })
    .await;
    assert_eq!(refused, 0, "user upserts refused");
    let sender = json!({"users": {"sender": {"id": "sender", "name": "The Sender"}}});
    assert_eq!(
        call(&http, &url, "POST", "/users", Some(&sender)).await,
        200
    );
    println!(
        "campaign fan-out on the embedded store (on disk): {users} users seeded in {:.1}s ({:.0} batches of 100/s)",
        seeding.elapsed().as_secs_f64(),
        rate
    );

    // The same work through the public API: a channel created, then a message sent.
    let (create_rate, _, _, refused) = phase_of(&http, &url, CLIENTS, BASELINE_RECEIVERS, |i| {
        let body = json!({"data": {"created_by_id": "sender", "members": ["sender", format!("r-{i:06}")]}});
        ("POST", format!("/channels/messaging/base-{i:06}/query"), Some(body))
    })
    .await;
    assert_eq!(refused, 0, "channel creations refused");
    let (send_rate, _, _, refused) = phase_of(&http, &url, CLIENTS, BASELINE_RECEIVERS, |i| {
        let body = json!({"message": {"text": format!("Hi Receiver {i}"), "user_id": "sender"}});
        (
            "POST",
            format!("/channels/messaging/base-{i:06}/message"),
            Some(body),
        )
    })
    .await;
    assert_eq!(refused, 0, "sends refused");
    let per_receiver = 1.0 / create_rate + 1.0 / send_rate;
    let baseline = Duration::from_secs_f64(per_receiver * users as f64);

    let (status, segment) = call_json(
        &http,
        &url,
        "POST",
        "/segments",
        Some(&json!({"type": "user", "name": "everyone", "all_users": true})),
    )
    .await;
    assert_eq!(status, 200, "{segment}");
    let segment_id = segment["segment"]["id"]
        .as_str()
        .expect("segment id")
        .to_string();
    let (status, campaign) = call_json(
        &http,
        &url,
        "POST",
        "/campaigns",
        Some(&json!({
            "sender_id": "sender",
            "segment_ids": [segment_id],
            "message_template": {"text": "Hi {{ receiver.name }}, news from {{ sender.name }}"},
            "create_channels": true,
            "channel_template": {"type": "messaging", "id": "news-{{ receiver.id }}"},
        })),
    )
    .await;
    assert_eq!(status, 200, "{campaign}");
    let id = campaign["campaign"]["id"]
        .as_str()
        .expect("campaign id")
        .to_string();
    let started = Instant::now();
    let (status, body) =
        call_json(&http, &url, "POST", &format!("/campaigns/{id}/start"), None).await;
    assert_eq!(status, 200, "{body}");
    let mut last_print = Instant::now();
    let stats = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (status, body) = call_json(
            &http,
            &url,
            "GET",
            &format!("/campaigns/{id}?limit=0"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let c = &body["campaign"];
        if c["status"] == "completed" {
            break c["stats"].clone();
        }
        if last_print.elapsed() > Duration::from_secs(5) {
            println!(
                "  {:.0}s: {} sent, progress {:.2}",
                started.elapsed().as_secs_f64(),
                c["stats"]["stats_messages_sent"],
                c["stats"]["progress"].as_f64().unwrap_or(0.0)
            );
            last_print = Instant::now();
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "campaign did not complete"
        );
    };
    let took = started.elapsed();
    let sent = stats["stats_messages_sent"].as_u64().unwrap_or(0);
    println!("phase                                          time     receivers/s");
    println!(
        "campaign to {users} users, channels created  {:>8.1}s  {:>10.0}",
        took.as_secs_f64(),
        sent as f64 / took.as_secs_f64()
    );
    println!(
        "same work via the public API (8 clients)     {:>8.1}s  {:>10.0}   (measured on {BASELINE_RECEIVERS}: create {create_rate:.0}/s, send {send_rate:.0}/s)",
        baseline.as_secs_f64(),
        1.0 / per_receiver
    );
    println!("Stream's published figure for 60,000 users       ~60s");
    println!(
        "stats: {} messages sent, {} channels created, {} users sent",
        sent, stats["stats_channels_created"], stats["stats_users_sent"]
    );
    drop(server);
}
