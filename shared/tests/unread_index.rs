//! Unread counts read the unread index (only channels flagged as possibly unread); this checks
//! them against every joined channel's own read state through a random history with a moving
//! clock: sends by the user and by others, quick and late reads, mark unread, mark all read,
//! mutes, leaving and rejoining, a channel larger than the activity entries follow, on both
//! stores; and that flags of channels read and quiet are removed.

mod support;

use serde_json::json;
use shared::service::channels::{ChannelQuery, ChannelUpdate};
use shared::service::members::ChannelMuteRequest;
use shared::service::messages::SendMessage;
use shared::service::reads::ReadRequest;
use shared::store::{layout::unread_flags_pk, query_all, Query, TableName};
use std::collections::{BTreeMap, BTreeSet};
use support::chat::{obj, TestChat};
use support::Lcg;

const ME: &str = "ui-me";

/// Unread per channel from each joined, unmuted channel's own state (the index not involved).
async fn expected(
    t: &TestChat,
    channels: &[String],
    left: &BTreeSet<String>,
    muted: &BTreeSet<String>,
) -> BTreeMap<String, u64> {
    let me = t.user(ME).await;
    let mut out = BTreeMap::new();
    for id in channels {
        if left.contains(id) || muted.contains(id) {
            continue;
        }
        let state = t
            .chat
            .get_or_create_channel(&me, "messaging", Some(id), ChannelQuery::default())
            .await
            .expect("channel state");
        let unread = state["read"]
            .as_array()
            .expect("read")
            .iter()
            .find(|r| r["user"]["id"] == ME)
            .and_then(|r| r["unread_messages"].as_u64())
            .unwrap_or(0);
        if unread > 0 {
            out.insert(format!("messaging:{id}"), unread);
        }
    }
    out
}

async fn counted(t: &TestChat) -> (u64, BTreeMap<String, u64>) {
    let counts = t
        .chat
        .unread_counts(&t.user(ME).await, None)
        .await
        .expect("unread counts");
    let by_channel = counts["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .map(|c| {
            (
                c["channel_id"].as_str().unwrap_or_default().to_string(),
                c["unread_count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    (
        counts["total_unread_count"].as_u64().unwrap_or(0),
        by_channel,
    )
}

async fn flags(t: &TestChat) -> usize {
    query_all(
        t.chat.store.as_ref(),
        Query::new(TableName::Channels, unread_flags_pk(ME)),
    )
    .await
    .expect("flags")
    .len()
}

fn send(text: String, user: &str) -> SendMessage {
    SendMessage {
        message: obj(json!({"text": text, "user_id": user})),
        ..Default::default()
    }
}

async fn counts_match_every_channels_state(t: TestChat, created: usize, steps: usize) {
    let others: Vec<String> = (0..205).map(|i| format!("ui-u{i}")).collect();
    let mut ids: Vec<&str> = vec![ME];
    ids.extend(others.iter().map(String::as_str));
    for chunk in ids.chunks(100) {
        t.users(chunk).await;
    }
    let server = t.server().await;
    let mut channels = Vec::new();
    for i in 0..created {
        let id = format!("ui-c{i}");
        t.clock.advance(chrono::Duration::milliseconds(200));
        t.channel(&id, &[ME, &others[i % 5]]).await;
        if i == 0 {
            // Larger than the activity entries follow: its flags are never removed.
            for chunk in others[5..].chunks(100) {
                let add = ChannelUpdate {
                    add_members: Some(json!(chunk)),
                    ..Default::default()
                };
                t.chat
                    .update_channel(&server, "messaging", &id, add)
                    .await
                    .expect("add members");
            }
        }
        channels.push(id);
    }
    let mut rng = Lcg(11);
    let mut left = BTreeSet::new();
    let mut muted = BTreeSet::new();
    let mut last: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for step in 0..steps {
        let pick = channels[rng.below(channels.len() as u64) as usize].clone();
        let other = &others[channels.iter().position(|c| *c == pick).unwrap_or(0) % 5];
        let gap = match rng.below(10) {
            0 => 70_000,
            1 => 8_000,
            _ => 50 + rng.below(900),
        };
        t.clock.advance(chrono::Duration::milliseconds(gap as i64));
        let cid = format!("messaging:{pick}");
        let member = !left.contains(&pick);
        match rng.below(24) {
            0..=9 => {
                for k in 0..(1 + rng.below(3)) {
                    let sent = t
                        .chat
                        .send_message(
                            &server,
                            "messaging",
                            &pick,
                            send(format!("{step}.{k}"), other),
                        )
                        .await
                        .expect("send");
                    let id = sent["message"]["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    last.entry(pick.clone()).or_default().push(id);
                }
            }
            10 if member => {
                t.chat
                    .send_message(
                        &server,
                        "messaging",
                        &pick,
                        send(format!("mine {step}"), ME),
                    )
                    .await
                    .expect("send");
            }
            11..=13 if member => {
                let read = ReadRequest {
                    user_id: Some(ME.into()),
                    ..Default::default()
                };
                t.chat
                    .mark_read(&server, "messaging", &pick, read)
                    .await
                    .expect("mark read");
            }
            14 if member => {
                let Some(sent) = last.get(&pick).filter(|l| !l.is_empty()) else {
                    continue;
                };
                let back = sent.len().saturating_sub(1 + rng.below(4) as usize);
                let unread = ReadRequest {
                    user_id: Some(ME.into()),
                    message_id: Some(sent[back].clone()),
                    ..Default::default()
                };
                // Refused when the message is too far back or the channel was emptied.
                let _ = t
                    .chat
                    .mark_unread(&server, "messaging", &pick, unread)
                    .await;
            }
            15 => {
                let all = ReadRequest {
                    user_id: Some(ME.into()),
                    ..Default::default()
                };
                t.chat.mark_all_read(&server, all).await.expect("read all");
            }
            16 if member => {
                let mute = !muted.contains(&pick);
                let req = ChannelMuteRequest {
                    channel_cid: Some(cid.clone()),
                    user_id: Some(ME.into()),
                    ..Default::default()
                };
                t.chat
                    .mute_channels(&server, req, mute)
                    .await
                    .expect("mute");
                if mute {
                    muted.insert(pick.clone());
                } else {
                    muted.remove(&pick);
                }
            }
            17 if pick != channels[0] => {
                let (change, key) = if member {
                    ("remove_members", true)
                } else {
                    ("add_members", false)
                };
                let update: ChannelUpdate =
                    serde_json::from_value(json!({ change: [ME] })).expect("update");
                t.chat
                    .update_channel(&server, "messaging", &pick, update)
                    .await
                    .expect("leave or join");
                if key {
                    left.insert(pick.clone());
                } else {
                    left.remove(&pick);
                }
            }
            _ => {}
        }
        let want = expected(&t, &channels, &left, &muted).await;
        let (total, got) = counted(&t).await;
        assert_eq!(got, want, "step {step}: unread channels");
        assert_eq!(total, want.values().sum::<u64>(), "step {step}: total");
    }
    // Everything read and quiet: only the large channel's flag (and the marker) stay.
    let all = ReadRequest {
        user_id: Some(ME.into()),
        ..Default::default()
    };
    t.chat.mark_all_read(&server, all).await.expect("read all");
    t.clock.advance(chrono::Duration::seconds(120));
    assert_eq!(counted(&t).await.0, 0);
    let kept = flags(&t).await;
    assert!(kept <= 2, "{kept} flags left after everything was read");
    assert_eq!(counted(&t).await.0, 0);
}

#[tokio::test]
async fn counts_match_every_channels_state_embedded() {
    counts_match_every_channels_state(TestChat::embedded().await, 24, 400).await;
}

#[tokio::test]
async fn counts_match_every_channels_state_dynamodb() {
    counts_match_every_channels_state(TestChat::dynamodb().await, 12, 60).await;
}
