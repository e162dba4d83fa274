//! Query channels in its default order (newest activity first) reads the activity index; this
//! checks it against the same query answered without it (the order made equivalent by a second
//! sort field) through a random history with a moving clock: sends a little or a lot apart,
//! busy spells, members leaving and rejoining, channels hidden and shown, new channels, a
//! channel larger than the index rewrites, on both stores.

mod support;

use serde_json::{json, Value};
use shared::service::channels::{ChannelQuery, ChannelUpdate, QueryChannels};
use shared::service::messages::SendMessage;
use support::chat::{obj, TestChat};
use support::Lcg;

async fn query(t: &TestChat, sort: Value, limit: usize, offset: usize) -> Vec<String> {
    let session = t.user("ao-me").await;
    let out = t
        .chat
        .query_channels(
            &session,
            QueryChannels {
                filter_conditions: Some(json!({"members": {"$in": ["ao-me"]}})),
                sort: Some(sort),
                limit: Some(limit),
                offset: Some(offset),
                message_limit: Some(0),
                ..Default::default()
            },
        )
        .await
        .expect("query channels");
    out["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .map(|c| c["channel"]["cid"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn create(t: &TestChat, id: &str, members: &[String]) {
    let create = ChannelQuery {
        data: Some(obj(json!({"members": members, "created_by_id": "ao-me"}))),
        ..Default::default()
    };
    t.chat
        .get_or_create_channel(&t.server().await, "messaging", Some(id), create)
        .await
        .expect("channel");
}

async fn same_order_with_and_without_the_index(
    t: TestChat,
    created: usize,
    steps: usize,
    every: usize,
) {
    let others: Vec<String> = (0..210).map(|i| format!("ao-u{i}")).collect();
    let mut ids: Vec<&str> = vec!["ao-me"];
    ids.extend(others.iter().map(String::as_str));
    for chunk in ids.chunks(100) {
        t.users(chunk).await;
    }
    let mut channels: Vec<String> = Vec::new();
    // More than a page of the index, so readers stop part-way.
    for i in 0..created {
        let members = vec!["ao-me".to_string(), others[i % 10].clone()];
        t.clock.advance(chrono::Duration::milliseconds(300));
        create(&t, &format!("ao-c{i}"), &members).await;
        if i == 0 {
            // Larger than the index rewrites: always read.
            for chunk in others[10..].chunks(100) {
                let add = ChannelUpdate {
                    add_members: Some(json!(chunk)),
                    ..Default::default()
                };
                t.chat
                    .update_channel(&t.server().await, "messaging", "ao-c0", add)
                    .await
                    .expect("add members");
            }
        }
        channels.push(format!("ao-c{i}"));
    }
    let server = t.server().await;
    let mut rng = Lcg(7);
    let mut left: Vec<String> = Vec::new();
    for step in 0..steps {
        let pick = channels[rng.below(channels.len() as u64) as usize].clone();
        // Inside the step (10 s) most of the time, beyond it sometimes.
        let gap = match rng.below(10) {
            0 => 15_000,
            1..=3 => 2_500,
            _ => 40 + rng.below(400),
        };
        t.clock.advance(chrono::Duration::milliseconds(gap as i64));
        match rng.below(20) {
            0 if !left.contains(&pick) => {
                let leave = ChannelUpdate {
                    remove_members: Some(json!(["ao-me"])),
                    ..Default::default()
                };
                t.chat
                    .update_channel(&server, "messaging", &pick, leave)
                    .await
                    .expect("leave");
                left.push(pick);
            }
            1 if !left.is_empty() => {
                let back = left.remove(0);
                let join = ChannelUpdate {
                    add_members: Some(json!(["ao-me"])),
                    ..Default::default()
                };
                t.chat
                    .update_channel(&server, "messaging", &back, join)
                    .await
                    .expect("join");
            }
            2 if !left.contains(&pick) => {
                let hidden = rng.below(2) == 0;
                t.chat
                    .set_channel_hidden(
                        &server,
                        "messaging",
                        &pick,
                        hidden,
                        false,
                        Some("ao-me".into()),
                    )
                    .await
                    .expect("hide or show");
            }
            4..=6 if !left.contains(&pick) => {
                // A busy spell: sends less than a second apart.
                for k in 0..(2 + rng.below(4)) {
                    t.clock
                        .advance(chrono::Duration::milliseconds(150 + rng.below(500) as i64));
                    let send = SendMessage {
                        message: obj(
                            json!({"text": format!("busy {step}.{k}"), "user_id": "ao-me"}),
                        ),
                        ..Default::default()
                    };
                    t.chat
                        .send_message(&server, "messaging", &pick, send)
                        .await
                        .expect("send");
                }
            }
            3 => {
                let id = format!("ao-n{step}");
                create(&t, &id, &["ao-me".to_string(), others[step % 10].clone()]).await;
                channels.push(id);
            }
            _ => {
                let author = if rng.below(2) == 0 {
                    "ao-me".to_string()
                } else {
                    others[0].clone()
                };
                let send = SendMessage {
                    message: obj(json!({"text": format!("step {step}"), "user_id": author})),
                    ..Default::default()
                };
                // The other author may not be a member: a send there is refused, nothing else.
                let _ = t.chat.send_message(&server, "messaging", &pick, send).await;
            }
        }
        if step % every == 0 {
            let limit = 1 + rng.below(12) as usize;
            let offset = rng.below(4) as usize;
            for field in ["last_updated", "last_message_at"] {
                let fast = query(
                    &t,
                    json!([{ "field": field, "direction": -1 }]),
                    limit,
                    offset,
                )
                .await;
                let plain = query(
                    &t,
                    json!([{ "field": field, "direction": -1 }, {"field": "type", "direction": 1}]),
                    limit,
                    offset,
                )
                .await;
                assert_eq!(
                    fast, plain,
                    "step {step}: by {field}, limit {limit} offset {offset}"
                );
            }
        }
    }
}

#[tokio::test]
async fn same_order_with_and_without_the_index_embedded() {
    same_order_with_and_without_the_index(TestChat::embedded().await, 60, 600, 1).await;
}

#[tokio::test]
async fn same_order_with_and_without_the_index_dynamodb() {
    same_order_with_and_without_the_index(TestChat::dynamodb().await, 40, 60, 4).await;
}
