//! A running campaign's fan-out, as jobs on the campaign queue. An expansion step lists the
//! next page of the audience in id order (the campaign's user ids, or its segments merged) and
//! queues it as delivery batches, then the next step. A delivery batch sends each receiver the
//! rendered message (in the channel its template names, created when asked), then counts the
//! batch into the campaign's stats together with the batch's receipt, so a batch delivered
//! twice (a retried job, a restarted worker) is counted once. Each receiver's message id comes
//! from the campaign and the receiver and is claimed like a client-chosen id, so nobody gets a
//! campaign's message twice. Every step reads the campaign first, and a batch again between
//! its waves of sends: a stopped (or deleted) campaign sends nothing more once the sends under
//! way are done.

use super::{campaign_event, campaign_item, reaches_channels};
use crate::domain::caller::Session;
use crate::domain::campaign::{render, render_value, Campaign, CampaignStatus, ChannelTemplate};
use crate::domain::channel::{distinct_channel_id, NewChannelData};
use crate::domain::clock::format_time;
use crate::domain::user::User;
use crate::domain::ApiError;
use crate::service::channels::ChannelUpdate;
use crate::service::messages::SendMessage;
use crate::service::timers::{timer_delete_write, TimerKind};
use crate::service::Chat;
use crate::store::layout::{campaign_batch_sk, campaign_key, message_id_key, outbox_write};
use crate::store::{Condition, Item, StoreError, TableName, Write};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// Receivers one expansion step lists.
pub const EXPAND_PAGE: usize = 1_000;

/// How fast a campaign goes: receivers per delivery batch (a queue message) and receivers of a
/// batch sent to at once (`CHAT_CAMPAIGN_BATCH`, `CHAT_CAMPAIGN_CONCURRENCY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CampaignLimits {
    pub batch: usize,
    pub concurrency: usize,
}

impl Default for CampaignLimits {
    fn default() -> Self {
        CampaignLimits {
            batch: 100,
            concurrency: 8,
        }
    }
}

impl CampaignLimits {
    /// The limits the environment sets (each 1 to its maximum), the defaults otherwise.
    pub fn from_env() -> Result<CampaignLimits, String> {
        let read = |name: &str, default: usize, max: usize| -> Result<usize, String> {
            match std::env::var(name).ok().filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(v) => v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| format!("{name} must be a number from 1 to {max}, got {v:?}")),
            }
        };
        let d = CampaignLimits::default();
        Ok(CampaignLimits {
            batch: read("CHAT_CAMPAIGN_BATCH", d.batch, EXPAND_PAGE)?,
            concurrency: read("CHAT_CAMPAIGN_CONCURRENCY", d.concurrency, 64)?,
        })
    }
}

/// A job on the campaign queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum CampaignJob {
    /// List the audience after `after` (from the start when none), `listed` receivers and
    /// `batch` batches being queued before it.
    Expand {
        campaign_id: String,
        after: Option<String>,
        listed: u64,
        batch: u64,
    },
    /// Send to these receivers (user ids, or cids for channel segments).
    Deliver {
        campaign_id: String,
        batch: u64,
        receivers: Vec<String>,
    },
}

impl CampaignJob {
    /// The first expansion step of a campaign.
    pub fn first(campaign_id: &str) -> CampaignJob {
        CampaignJob::Expand {
            campaign_id: campaign_id.to_string(),
            after: None,
            listed: 0,
            batch: 0,
        }
    }
}

/// What sending to one receiver came to.
#[derive(Default)]
struct Tally {
    sent: u64,
    channels_created: u64,
    channels_existing: u64,
    skipped: u64,
    errors: u64,
}

enum Outcome {
    /// Sent now or by an earlier attempt; whether the channel was created for it.
    Sent { created: bool },
    /// No channel to send in, or the receiver is gone.
    Skipped,
}

/// A receiver's message id: the campaign's id and a digest of the receiver.
fn message_id(campaign_id: &str, receiver: &str) -> String {
    let digest = Sha256::digest(receiver.as_bytes());
    format!("{campaign_id}-{}", hex::encode(&digest[..12]))
}

impl Chat {
    /// Runs one job of the campaign queue (at least once per job: running it again is safe).
    pub async fn run_campaign_job(&self, job: &CampaignJob) -> Result<(), ApiError> {
        match job {
            CampaignJob::Expand {
                campaign_id,
                after,
                listed,
                batch,
            } => {
                self.expand_campaign(campaign_id, after.as_deref(), *listed, *batch)
                    .await
            }
            CampaignJob::Deliver {
                campaign_id,
                batch,
                receivers,
            } => {
                self.deliver_campaign_batch(campaign_id, *batch, receivers)
                    .await
            }
        }
    }

    async fn expand_campaign(
        &self,
        id: &str,
        after: Option<&str>,
        listed: u64,
        batch: u64,
    ) -> Result<(), ApiError> {
        let Some((campaign, _)) = self.load_campaign(id).await? else {
            return Ok(());
        };
        if campaign.status != CampaignStatus::InProgress || campaign.run.expanded {
            return Ok(());
        }
        if after.is_none() && !campaign.run.expanding {
            self.change_campaign(id, |c, _| {
                c.run.expanding = true;
                Ok(vec![timer_delete_write(TimerKind::CampaignKick, &c.id)])
            })
            .await?;
        }
        let page = self
            .campaign_audience(&campaign, after, EXPAND_PAGE)
            .await?;
        let listed = listed + page.len() as u64;
        let mut jobs: Vec<CampaignJob> = page
            .chunks(self.campaign_limits.batch)
            .enumerate()
            .map(|(i, receivers)| CampaignJob::Deliver {
                campaign_id: id.to_string(),
                batch: batch + i as u64,
                receivers: receivers.to_vec(),
            })
            .collect();
        let last = page.len() < EXPAND_PAGE;
        if !last {
            jobs.push(CampaignJob::Expand {
                campaign_id: id.to_string(),
                after: page.last().cloned(),
                listed,
                batch: batch + jobs.len() as u64,
            });
        }
        self.campaign_queue()?.send(jobs).await?;
        self.change_campaign(id, |c, now| {
            c.run.receivers = c.run.receivers.max(listed);
            if last {
                c.run.expanded = true;
            }
            Ok(settle(c, now))
        })
        .await?;
        tracing::info!(
            campaign = id,
            listed,
            expanded = last,
            "campaign audience listed"
        );
        Ok(())
    }

    /// Up to `limit` receivers after `after`, in id order: the campaign's user ids, or the
    /// union of its segments' targets.
    async fn campaign_audience(
        &self,
        campaign: &Campaign,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, ApiError> {
        let mut ids = BTreeSet::new();
        if campaign.segment_ids.is_empty() {
            ids.extend(
                campaign
                    .user_ids
                    .iter()
                    .filter(|u| after.is_none_or(|a| u.as_str() > a))
                    .cloned(),
            );
        }
        for id in &campaign.segment_ids {
            if let Some((segment, _)) = self.load_segment(id).await? {
                let sender = Some(campaign.sender_id.as_str());
                ids.extend(
                    self.audience_page(&segment, sender, after, None, limit)
                        .await?,
                );
            }
        }
        // Each source gave its first `limit` after `after`, so the union's first `limit` are
        // the audience's.
        Ok(ids.into_iter().take(limit).collect())
    }

    async fn deliver_campaign_batch(
        &self,
        id: &str,
        batch: u64,
        receivers: &[String],
    ) -> Result<(), ApiError> {
        let Some((campaign, _)) = self.load_campaign(id).await? else {
            return Ok(());
        };
        if campaign.status != CampaignStatus::InProgress {
            return Ok(());
        }
        let (pk, _) = campaign_key(id);
        let receipt_sk = campaign_batch_sk(batch);
        if self
            .store
            .get(TableName::App, &pk, &receipt_sk)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let mut segments = Vec::new();
        for sid in &campaign.segment_ids {
            if let Some((s, _)) = self.load_segment(sid).await? {
                segments.push(s);
            }
        }
        let to_channels = reaches_channels(&segments);
        let sender = self.get_user(&campaign.sender_id).await?.map(|(u, _)| u);
        let session = Session::server(self.app_settings().await?);
        let mut tally = Tally::default();
        if let Some(sender) = &sender {
            // In waves of `concurrency` sends, the campaign read again before each: a stop
            // takes effect within a wave.
            let (campaign, session) = (&campaign, &session);
            let mut sends = Vec::with_capacity(receivers.len());
            for wave in receivers.chunks(self.campaign_limits.concurrency) {
                if !sends.is_empty() && !self.campaign_running(id).await? {
                    break;
                }
                let outcomes = futures::future::join_all(wave.iter().map(|r| async move {
                    let outcome = if to_channels {
                        self.send_to_channel(campaign, session, sender, r).await
                    } else {
                        self.send_to_user(campaign, session, sender, r).await
                    };
                    (r.clone(), outcome)
                }))
                .await;
                sends.extend(outcomes);
            }
            let mut retry = None;
            for (receiver, outcome) in sends {
                match outcome {
                    Ok(Outcome::Sent { created }) => {
                        tally.sent += 1;
                        tally.channels_created += u64::from(created);
                        tally.channels_existing += u64::from(!created);
                    }
                    Ok(Outcome::Skipped) => tally.skipped += 1,
                    // The store or a service failed: the batch runs again (who got it is not
                    // sent to twice).
                    Err(e) if e.status() >= 500 => retry = Some(e),
                    // Refused for good (a banned sender, a frozen channel): skipped.
                    Err(e) => {
                        tracing::warn!(campaign = id, receiver = %receiver, error = %e, "campaign message not sent");
                        tally.skipped += 1;
                        tally.errors += 1;
                    }
                }
            }
            if let Some(e) = retry {
                return Err(e);
            }
        } else {
            tally.skipped = receivers.len() as u64;
        }
        self.count_batch(id, batch, receivers.len() as u64, to_channels, tally)
            .await
    }

    async fn campaign_running(&self, id: &str) -> Result<bool, ApiError> {
        Ok(self
            .load_campaign(id)
            .await?
            .is_some_and(|(c, _)| c.status == CampaignStatus::InProgress))
    }

    /// Counts a delivered batch into the campaign with its receipt, once.
    async fn count_batch(
        &self,
        id: &str,
        batch: u64,
        size: u64,
        to_channels: bool,
        tally: Tally,
    ) -> Result<(), ApiError> {
        let (pk, _) = campaign_key(id);
        for attempt in 1..=crate::service::CONTENDED_ATTEMPTS {
            let Some((mut c, version)) = self.load_campaign(id).await? else {
                return Ok(());
            };
            let now = self.now();
            c.stats.stats_messages_sent += tally.sent;
            if !to_channels {
                c.stats.stats_users_sent += tally.sent;
            }
            c.stats.stats_channels_created += tally.channels_created;
            c.stats.stats_channels_existing += tally.channels_existing;
            c.stats.stats_errors += tally.errors;
            c.run.processed += size;
            c.run.skipped += tally.skipped;
            let receipt = Item::new(
                pk.clone(),
                campaign_batch_sk(batch),
                json!({ "sent": tally.sent, "skipped": tally.skipped }),
            );
            let completion = settle(&mut c, now);
            let mut writes = vec![
                Write::Put {
                    table: TableName::App,
                    item: receipt,
                    condition: Condition::NotExists,
                },
                Write::put_read_at(TableName::App, campaign_item(&c, 0)?, version),
            ];
            writes.extend(completion);
            match self.store.transact(writes).await {
                Ok(()) => {
                    tracing::info!(
                        campaign = id,
                        processed = c.run.processed,
                        receivers = c.run.receivers,
                        sent = c.stats.stats_messages_sent,
                        "campaign progress"
                    );
                    return Ok(());
                }
                // Counted already (the batch ran twice).
                Err(StoreError::TransactionCanceled { index: Some(0) }) => return Ok(()),
                Err(StoreError::TransactionCanceled { .. }) => {
                    crate::service::contention_pause(attempt).await
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::input("the campaign is being changed; try again"))
    }

    /// The template's channel of `receiver` (created when missing and asked to), then the
    /// message.
    async fn send_to_user(
        &self,
        campaign: &Campaign,
        session: &Session,
        sender: &User,
        receiver: &str,
    ) -> Result<Outcome, ApiError> {
        let Some((receiver_user, _)) = self.get_user(receiver).await? else {
            return Ok(Outcome::Skipped);
        };
        if receiver_user.is_deleted() || receiver_user.is_deactivated() {
            return Ok(Outcome::Skipped);
        }
        let mut context = json!({
            "sender": serde_json::to_value(sender).unwrap_or_default(),
            "receiver": serde_json::to_value(&receiver_user).unwrap_or_default(),
        });
        let template = campaign.channel_template().unwrap_or(ChannelTemplate {
            kind: "messaging".into(),
            id: None,
            custom: Map::new(),
            team: None,
            members: Vec::new(),
        });
        let exclude_sender = campaign.sender_mode.as_deref() == Some("exclude");
        // The new channel's members (a template member may be templated, and may name the
        // sender or the receiver with a role of their own).
        let mut members: Vec<Value> = template
            .members
            .iter()
            .map(|m| render_value(m, &context))
            .collect();
        let listed = |members: &[Value], id: &str| members.iter().any(|m| m["user_id"] == id);
        if !listed(&members, receiver) {
            members.insert(0, json!({ "user_id": receiver }));
        }
        if !exclude_sender && !listed(&members, &sender.id) {
            members.insert(0, json!({ "user_id": sender.id }));
        }
        let member_ids: Vec<String> = members
            .iter()
            .filter_map(|m| m["user_id"].as_str().map(str::to_string))
            .collect();
        let channel_id = match &template.id {
            Some(t) => render(t, &context),
            None => distinct_channel_id(&member_ids)?,
        };
        let cid = format!("{}:{channel_id}", template.kind);
        let (kind, id) = (template.kind.as_str(), channel_id.as_str());
        // The receiver's own channel, made by the sender since the campaign started, was made
        // for it (by an earlier attempt at this batch).
        let own = template.id.as_ref().is_none_or(|t| t.contains("receiver"));
        let started = campaign
            .stats
            .stats_started_at
            .as_deref()
            .unwrap_or_default();
        let mut created = false;
        let loaded = match self.load_channel(&cid).await? {
            Some(l) => {
                created = own
                    && l.channel.created_by_id.as_deref() == Some(sender.id.as_str())
                    && l.channel.created_at.as_str() >= started;
                // `sender_mode: include`: the sender joins existing channels too.
                let joined = l.members.iter().any(|m| m.user_id == sender.id);
                if campaign.sender_mode.as_deref() == Some("include") && !joined {
                    let join = ChannelUpdate {
                        add_members: Some(json!([sender.id])),
                        ..Default::default()
                    };
                    self.update_channel(session, kind, id, join).await?;
                }
                l
            }
            None if !campaign.create_channels => return Ok(Outcome::Skipped),
            None => {
                let config = self.channel_config(&template.kind).await?;
                let mut data = template.custom.clone();
                if let Some(team) = &template.team {
                    data.insert("team".into(), team.clone().into());
                }
                data.insert("members".into(), Value::Array(members));
                let new = NewChannelData::parse(&data)?;
                let visibility = campaign.sender_visibility.as_deref();
                match self
                    .create_channel(session, &config, &cid, new, Some(sender.id.clone()), false)
                    .await
                {
                    Ok(l) => {
                        created = true;
                        if visibility == Some("archived") && !exclude_sender {
                            let mut archived = Map::new();
                            archived.insert("archived".into(), true.into());
                            self.update_member_partial(
                                session,
                                kind,
                                id,
                                &sender.id,
                                archived,
                                Vec::new(),
                            )
                            .await?;
                        }
                        l
                    }
                    // Created meanwhile (another receiver's send into the same channel).
                    Err(e) => self.load_channel(&cid).await?.ok_or(e)?,
                }
            }
        };
        context["channel"] = Value::Object(loaded.channel.to_wire(&Default::default()));
        let sent = self
            .send_campaign_message(campaign, session, sender, &cid, receiver, &context)
            .await?;
        // Hidden for the sender once its message is in (a new message shows a channel again).
        let hide = campaign.sender_visibility.as_deref() == Some("hidden") && !exclude_sender;
        if sent && created && hide {
            let sender_id = Some(sender.id.clone());
            self.set_channel_hidden(session, kind, id, true, false, sender_id)
                .await?;
        }
        Ok(if sent {
            Outcome::Sent { created }
        } else {
            Outcome::Skipped
        })
    }

    async fn send_to_channel(
        &self,
        campaign: &Campaign,
        session: &Session,
        sender: &User,
        cid: &str,
    ) -> Result<Outcome, ApiError> {
        let Some(loaded) = self.load_channel(cid).await? else {
            return Ok(Outcome::Skipped);
        };
        let context = json!({
            "sender": serde_json::to_value(sender).unwrap_or_default(),
            "channel": Value::Object(loaded.channel.to_wire(&Default::default())),
        });
        self.send_campaign_message(campaign, session, sender, cid, cid, &context)
            .await
            .map(|sent| {
                if sent {
                    Outcome::Sent { created: false }
                } else {
                    Outcome::Skipped
                }
            })
    }

    /// Sends the rendered message as the sender under the receiver's message id; true when
    /// it is there (sent now or before).
    async fn send_campaign_message(
        &self,
        campaign: &Campaign,
        session: &Session,
        sender: &User,
        cid: &str,
        receiver: &str,
        context: &Value,
    ) -> Result<bool, ApiError> {
        let id = message_id(&campaign.id, receiver);
        let (pointer_pk, pointer_sk) = message_id_key(&id);
        let exists = || async {
            Ok::<bool, ApiError>(
                self.store
                    .get(TableName::Messages, &pointer_pk, &pointer_sk)
                    .await?
                    .is_some(),
            )
        };
        if exists().await? {
            return Ok(true);
        }
        let template = &campaign.message_template;
        let mut message = Map::new();
        if let Some(custom) = template.get("custom").and_then(Value::as_object) {
            for (k, v) in custom {
                message.insert(k.clone(), render_value(v, context));
            }
        }
        message.insert("id".into(), id.clone().into());
        message.insert(
            "text".into(),
            render(template["text"].as_str().unwrap_or_default(), context).into(),
        );
        if let Some(a) = template.get("attachments").filter(|a| a.is_array()) {
            message.insert("attachments".into(), render_value(a, context));
        }
        message.insert("type".into(), "regular".into());
        message.insert("user_id".into(), sender.id.clone().into());
        message.insert("campaign_id".into(), campaign.id.clone().into());
        let (kind, channel_id) = cid.split_once(':').unwrap_or(("messaging", cid));
        let req = SendMessage {
            message,
            skip_push: campaign.skip_push,
            skip_webhook: campaign.skip_webhook,
            ..Default::default()
        };
        match self.send_message(session, kind, channel_id, req).await {
            Ok(_) => Ok(true),
            // A concurrent attempt at the same receiver claimed the id first.
            Err(_) if exists().await? => Ok(true),
            Err(e) => Err(e),
        }
    }
}

/// Completes a campaign whose every listed receiver is counted: its status, completion time
/// and `campaign.completed`, to write with it.
fn settle(c: &mut Campaign, now: chrono::DateTime<chrono::Utc>) -> Vec<Write> {
    if c.status != CampaignStatus::InProgress
        || !c.run.expanded
        || c.run.processed < c.run.receivers
    {
        return Vec::new();
    }
    c.status = CampaignStatus::Completed;
    c.stats.stats_completed_at = Some(format_time(now));
    c.updated_at = format_time(now);
    vec![
        outbox_write(&campaign_event("campaign.completed", c, now)),
        timer_delete_write(TimerKind::CampaignStop, &c.id),
    ]
}
