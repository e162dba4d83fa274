//! Campaigns (server-side): create, read, update, delete and query them, start them now or at
//! `scheduled_for`, stop them (or at `stop_at`). Starting only records the start; the fan-out
//! (`fanout`) lists the audience in pages and delivers it in batches through a queue. The
//! campaign item is owned here: its status, stats and the run's progress.

mod fanout;
mod queue;

pub use fanout::{CampaignJob, CampaignLimits};
pub use queue::{CampaignQueue, SqsCampaignQueue, StoreQueue};

use super::segments::{offset_cursor, Listing, QueryPage};
use super::{decode, to_doc, Chat};
use crate::domain::caller::Session;
use crate::domain::campaign::{
    Campaign, CampaignFields, CampaignStatus, Segment, SegmentType, MAX_USERS_PAGE,
};
use crate::domain::clock::{format_time, parse_time};
use crate::domain::event::{user_scope, Event};
use crate::domain::ids::random_id;
use crate::domain::ApiError;
use crate::service::timers::{timer_delete_write, timer_replace_write, Timer, TimerKind};
use crate::store::layout::{campaign_key, outbox_write, CAMPAIGNS_PK};
use crate::store::{query_all, Condition, Index, Item, Query, StoreError, TableName, Write};
use serde::Deserialize;
use serde_json::{json, Value};

/// How long a started campaign waits for its first expansion step before it is queued again.
const KICK_AFTER_SECS: i64 = 30;

/// Body of `POST /campaigns/{id}/start`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct StartCampaign {
    pub scheduled_for: Option<String>,
    pub stop_at: Option<String>,
}

/// Body of `POST /campaigns/query`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct QueryCampaigns {
    #[serde(flatten)]
    pub page: QueryPage,
    pub user_limit: Option<usize>,
}

/// A page of a `user_ids` campaign's users (`GET /campaigns/{id}?limit=&next=`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct UsersPage {
    pub limit: Option<usize>,
    pub next: Option<String>,
    pub prev: Option<String>,
}

fn campaign_rules() -> crate::domain::filter::FieldRules {
    use crate::domain::filter::{FieldRules, Op::*, ValueKind};
    let ordered = &[Eq, Exists, Gt, Gte, In, Lt, Lte];
    FieldRules::new()
        .typed("id", ValueKind::String, ordered)
        .typed("name", ValueKind::String, ordered)
        .typed("sender_id", ValueKind::String, ordered)
        .typed("status", ValueKind::String, ordered)
        .typed("created_at", ValueKind::Timestamp, ordered)
        .typed("updated_at", ValueKind::Timestamp, ordered)
        .field("segments", &[Contains, Eq, In])
}

pub(crate) fn campaign_item(campaign: &Campaign, version: u64) -> Result<Item, ApiError> {
    let (pk, sk) = campaign_key(&campaign.id);
    let mut item = Item::new(pk, sk, to_doc(campaign)?).with_gsi1(
        CAMPAIGNS_PK,
        format!("{}#{}", campaign.created_at, campaign.id),
    );
    item.version = version;
    Ok(item)
}

/// `campaign.started` / `campaign.completed` (to the hooks only), with the campaign.
fn campaign_event(kind: &str, campaign: &Campaign, at: chrono::DateTime<chrono::Utc>) -> Event {
    Event::new(kind, user_scope(&campaign.sender_id), at).with("campaign", campaign.to_wire())
}

fn parse_when(field: &str, v: &str) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    parse_time(v)
        .or_else(|| {
            // Python's isoformat of a naive datetime: no offset, taken as UTC.
            chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
        .ok_or_else(|| ApiError::field(field, format!("{field} must be an RFC 3339 time")))
}

impl Chat {
    pub(crate) async fn load_campaign(
        &self,
        id: &str,
    ) -> Result<Option<(Campaign, u64)>, ApiError> {
        let found = self
            .load::<Campaign>(TableName::App, campaign_key(id))
            .await?;
        Ok(found.map(|(campaign, item)| (campaign, item.version)))
    }

    async fn campaign_or_404(&self, id: &str) -> Result<(Campaign, u64), ApiError> {
        self.load_campaign(id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("campaign {id:?} does not exist")))
    }

    /// The campaign's wire form with its segments, its sender and a page of its users, and
    /// the page's cursors.
    async fn campaign_wire(
        &self,
        campaign: &Campaign,
        users: &UsersPage,
    ) -> Result<(Value, Value), ApiError> {
        let mut wire = campaign.to_wire();
        let mut segments = Vec::new();
        for id in &campaign.segment_ids {
            if let Some((s, _)) = self.load_segment(id).await? {
                segments.push(s);
            }
        }
        wire["segments"] = serde_json::to_value(segments).unwrap_or_default();
        if let Some((sender, _)) = self.get_user(&campaign.sender_id).await? {
            wire["sender"] = serde_json::to_value(sender).unwrap_or_default();
        }
        let limit = users.limit.unwrap_or(MAX_USERS_PAGE);
        if limit > MAX_USERS_PAGE {
            return Err(ApiError::field(
                "limit",
                format!("limit must be at most {MAX_USERS_PAGE}"),
            ));
        }
        let offset = QueryPage {
            next: users.next.clone(),
            prev: users.prev.clone(),
            ..Default::default()
        }
        .offset()?;
        let page: Vec<&str> = campaign
            .user_ids
            .iter()
            .skip(offset)
            .take(limit)
            .map(String::as_str)
            .collect();
        let found = self.users_by_id(&page).await?;
        let listed: Vec<Value> = page
            .iter()
            .filter_map(|id| found.get(*id))
            .map(|(u, _)| serde_json::to_value(u).unwrap_or_default())
            .collect();
        wire["users"] = Value::Array(listed);
        let mut cursors = json!({});
        if offset + limit < campaign.user_ids.len() {
            cursors["next"] = offset_cursor(offset + limit).into();
        }
        Ok((wire, cursors))
    }

    async fn campaign_reply(&self, campaign: &Campaign) -> Result<Value, ApiError> {
        let (wire, users) = self.campaign_wire(campaign, &UsersPage::default()).await?;
        Ok(json!({ "campaign": wire, "users": users }))
    }

    /// The sender exists, the segments exist, all of one type, and the template's channel
    /// type exists and takes the message's text.
    async fn check_audience(&self, campaign: &Campaign) -> Result<Option<SegmentType>, ApiError> {
        if self.get_user(&campaign.sender_id).await?.is_none() {
            return Err(ApiError::field(
                "sender_id",
                format!("user {:?} does not exist", campaign.sender_id),
            ));
        }
        let kind = campaign
            .channel_template()
            .map_or_else(|| "messaging".to_string(), |t| t.kind);
        let config = self.channel_config(&kind).await.map_err(|_| {
            ApiError::field(
                "channel_template.type",
                format!("channel type {kind:?} does not exist"),
            )
        })?;
        let text = campaign.message_template["text"]
            .as_str()
            .unwrap_or_default();
        if text.chars().count() > config.max_message_length as usize {
            return Err(ApiError::field(
                "message_template.text",
                format!(
                    "message_template.text is longer than the {} characters channel type {kind:?} allows",
                    config.max_message_length
                ),
            ));
        }
        let mut kind = None;
        for id in &campaign.segment_ids {
            let Some((segment, _)) = self.load_segment(id).await? else {
                return Err(ApiError::field(
                    "segment_ids",
                    format!("segment {id:?} does not exist"),
                ));
            };
            if kind.is_some_and(|k| k != segment.kind) {
                return Err(ApiError::field(
                    "segment_ids",
                    "a campaign's segments are all user segments or all channel segments",
                ));
            }
            kind = Some(segment.kind);
        }
        Ok(kind)
    }

    /// `POST /campaigns`: a draft.
    pub async fn create_campaign(
        &self,
        session: &Session,
        fields: CampaignFields,
    ) -> Result<Value, ApiError> {
        session.caller.require_server("creating campaigns")?;
        let id = fields
            .id
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(random_id);
        let now = format_time(self.now());
        let campaign = Campaign::create(fields, id, &now)?;
        self.check_audience(&campaign).await?;
        let write = Write::Put {
            table: TableName::App,
            item: campaign_item(&campaign, 1)?,
            condition: Condition::NotExists,
        };
        match self.store.write(write).await {
            Ok(()) => self.campaign_reply(&campaign).await,
            Err(StoreError::ConditionFailed) => Err(ApiError::input(format!(
                "a campaign with id {:?} already exists",
                campaign.id
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// `GET /campaigns/{id}` (a `user_ids` campaign's users paged with `limit` / `next`).
    pub async fn get_campaign(
        &self,
        session: &Session,
        id: &str,
        users: UsersPage,
    ) -> Result<Value, ApiError> {
        session.caller.require_server("reading campaigns")?;
        let (campaign, _) = self.campaign_or_404(id).await?;
        let (wire, cursors) = self.campaign_wire(&campaign, &users).await?;
        Ok(json!({ "campaign": wire, "users": cursors }))
    }

    /// `PUT /campaigns/{id}`: the fields given replace the draft's.
    pub async fn update_campaign(
        &self,
        session: &Session,
        id: &str,
        fields: CampaignFields,
    ) -> Result<Value, ApiError> {
        session.caller.require_server("updating campaigns")?;
        // Checked before anything is written: the sender, segments and channel type it names.
        let (mut updated, _) = self.campaign_or_404(id).await?;
        updated.apply(fields.clone(), "")?;
        self.check_audience(&updated).await?;
        let campaign = self
            .change_campaign(id, |c, now| {
                if !c.is_draft() {
                    return Err(ApiError::input(format!(
                        "campaign {:?} is {}: only a draft can be updated",
                        c.id,
                        c.status.as_str()
                    )));
                }
                c.apply(fields.clone(), &format_time(now))?;
                Ok(Vec::new())
            })
            .await?;
        self.campaign_reply(&campaign).await
    }

    /// `DELETE /campaigns/{id}`: the campaign, its receipts and its timers (a running one
    /// stops at its next batch).
    pub async fn delete_campaign(&self, session: &Session, id: &str) -> Result<Value, ApiError> {
        session.caller.require_server("deleting campaigns")?;
        self.campaign_or_404(id).await?;
        let (pk, _) = campaign_key(id);
        let items = query_all(
            self.store.as_ref(),
            Query::new(TableName::App, pk).keys_only(),
        )
        .await?;
        let mut writes: Vec<Write> = items
            .into_iter()
            .map(|i| Write::Delete {
                table: TableName::App,
                pk: i.pk,
                sk: i.sk,
                condition: Condition::None,
            })
            .collect();
        for kind in [
            TimerKind::CampaignStart,
            TimerKind::CampaignStop,
            TimerKind::CampaignKick,
        ] {
            writes.push(timer_delete_write(kind, id));
        }
        for chunk in writes.chunks(crate::store::MAX_TRANSACTION_WRITES) {
            self.store.transact(chunk.to_vec()).await?;
        }
        Ok(json!({}))
    }

    /// `POST /campaigns/query`: filter, sort (newest first by default) and page.
    pub async fn query_campaigns(
        &self,
        session: &Session,
        q: QueryCampaigns,
    ) -> Result<Value, ApiError> {
        session.caller.require_server("querying campaigns")?;
        let listing = Listing::parse(
            &q.page,
            &campaign_rules(),
            &[
                "id",
                "name",
                "sender_id",
                "status",
                "created_at",
                "updated_at",
            ],
        )?;
        // Each campaign's users only when asked for (`user_limit`).
        let users = UsersPage {
            limit: Some(q.user_limit.unwrap_or(0)),
            ..Default::default()
        };
        let listed = query_all(
            self.store.as_ref(),
            Query::new(TableName::App, CAMPAIGNS_PK).index(Index::Gsi1),
        )
        .await?;
        let mut records = Vec::new();
        for item in listed {
            let campaign: Campaign = decode(item.data, "campaign")?;
            let mut doc = campaign.to_wire();
            doc["segments"] = json!(campaign.segment_ids);
            records.push((campaign, doc));
        }
        let (page, next) = listing.page(records);
        let mut campaigns = Vec::new();
        for campaign in &page {
            campaigns.push(self.campaign_wire(campaign, &users).await?.0);
        }
        Ok(Listing::reply("campaigns", campaigns, next))
    }

    /// `POST /campaigns/{id}/start`: now (delivery is queued), or at `scheduled_for`; with
    /// `stop_at`, stopped then if still going.
    pub async fn start_campaign(
        &self,
        session: &Session,
        id: &str,
        req: StartCampaign,
    ) -> Result<Value, ApiError> {
        session.caller.require_server("starting campaigns")?;
        let queue = self.campaign_queue()?;
        let now = self.now();
        let scheduled = match req.scheduled_for.as_deref() {
            Some(v) => Some(parse_when("scheduled_for", v)?),
            None => None,
        };
        let stop_at = match req.stop_at.as_deref() {
            Some(v) => Some(parse_when("stop_at", v)?),
            None => None,
        };
        if let Some(stop) = stop_at {
            if stop <= scheduled.unwrap_or(now).max(now) {
                return Err(ApiError::field(
                    "stop_at",
                    "stop_at must be after the start",
                ));
            }
        }
        let later = scheduled.filter(|t| *t > now);
        let (existing, _) = self.campaign_or_404(id).await?;
        self.check_audience(&existing).await?;
        let estimate = self.audience_estimate(&existing).await?;
        let campaign = self
            .change_campaign(id, |c, now| {
                if !c.is_draft() {
                    return Err(ApiError::input(format!(
                        "campaign {:?} is {}: a campaign is sent once (create a new one to send again)",
                        c.id,
                        c.status.as_str()
                    )));
                }
                c.scheduled_for = scheduled.map(format_time);
                c.stop_at = stop_at.map(format_time);
                let mut writes = Vec::new();
                if let Some(stop) = stop_at {
                    writes.push(timer_replace_write(TimerKind::CampaignStop, &c.id, stop));
                }
                match later {
                    Some(at) => {
                        c.status = CampaignStatus::Scheduled;
                        writes.push(timer_replace_write(TimerKind::CampaignStart, &c.id, at));
                    }
                    None => writes.extend(Self::begin(c, now, estimate)),
                }
                c.updated_at = format_time(now);
                Ok(writes)
            })
            .await?;
        if campaign.status == CampaignStatus::InProgress {
            queue.send(vec![CampaignJob::first(&campaign.id)]).await?;
        }
        self.campaign_reply(&campaign).await
    }

    /// A campaign going from draft or scheduled to in progress: its status, start time, the
    /// `campaign.started` event and the kick timer, to write with it.
    fn begin(
        c: &mut Campaign,
        now: chrono::DateTime<chrono::Utc>,
        (estimate, to_users): (u64, bool),
    ) -> Vec<Write> {
        c.status = CampaignStatus::InProgress;
        c.run.estimate = estimate;
        c.run.to_users = to_users;
        c.stats.stats_started_at = Some(format_time(now));
        let kick = now + chrono::Duration::seconds(KICK_AFTER_SECS);
        vec![
            outbox_write(&campaign_event("campaign.started", c, now)),
            timer_replace_write(TimerKind::CampaignKick, &c.id, kick),
            timer_delete_write(TimerKind::CampaignStart, &c.id),
        ]
    }

    /// The audience's size as its segments count it (receivers in several count more than
    /// once), or its user ids; and whether its receivers are users.
    async fn audience_estimate(&self, campaign: &Campaign) -> Result<(u64, bool), ApiError> {
        let mut n = campaign.user_ids.len() as u64;
        let mut to_users = true;
        for id in &campaign.segment_ids {
            if let Some((segment, _)) = self.load_segment(id).await? {
                n += segment.size;
                to_users &= segment.kind == SegmentType::User;
            }
        }
        Ok((n, to_users))
    }

    /// `POST /campaigns/{id}/stop`: nothing more is sent (a batch under way finishes).
    pub async fn stop_campaign(&self, session: &Session, id: &str) -> Result<Value, ApiError> {
        session.caller.require_server("stopping campaigns")?;
        let campaign = self
            .change_campaign(id, |c, now| {
                if matches!(
                    c.status,
                    CampaignStatus::Completed | CampaignStatus::Stopped
                ) {
                    return Err(ApiError::input(format!(
                        "campaign {:?} is already {}",
                        c.id,
                        c.status.as_str()
                    )));
                }
                Ok(Self::halt(c, now))
            })
            .await?;
        self.campaign_reply(&campaign).await
    }

    /// A campaign stopping: its status and the removal of its timers.
    fn halt(c: &mut Campaign, now: chrono::DateTime<chrono::Utc>) -> Vec<Write> {
        c.status = CampaignStatus::Stopped;
        c.updated_at = format_time(now);
        [
            TimerKind::CampaignStart,
            TimerKind::CampaignStop,
            TimerKind::CampaignKick,
        ]
        .into_iter()
        .map(|k| timer_delete_write(k, &c.id))
        .collect()
    }

    /// Reads the campaign, lets `change` edit it (returning what to write with it) and writes
    /// it on the version read, again on a concurrent change.
    pub(crate) async fn change_campaign(
        &self,
        id: &str,
        change: impl FnMut(&mut Campaign, chrono::DateTime<chrono::Utc>) -> Result<Vec<Write>, ApiError>,
    ) -> Result<Campaign, ApiError> {
        self.change_app_record(
            campaign_key(id),
            "campaign",
            |c| campaign_item(c, 0),
            change,
        )
        .await?
        .ok_or_else(|| ApiError::not_found(format!("campaign {id:?} does not exist")))
    }

    /// The queue campaign delivery goes through.
    pub(crate) fn campaign_queue(&self) -> Result<std::sync::Arc<dyn CampaignQueue>, ApiError> {
        self.campaigns.clone().ok_or_else(|| {
            ApiError::input("campaign delivery is not configured here (no campaign queue)")
        })
    }

    /// A campaign timer firing: a scheduled start, a `stop_at`, or a start whose delivery was
    /// not seen to begin (queued again).
    pub(crate) async fn fire_campaign_timer(&self, timer: &Timer) -> Result<(), ApiError> {
        let claim = timer.claim();
        let outcome = match self.load_campaign(&timer.key).await? {
            None => None,
            Some((campaign, _)) => match (timer.kind, campaign.status) {
                (TimerKind::CampaignStart, CampaignStatus::Scheduled) => {
                    let queue = self.campaign_queue()?;
                    let estimate = self.audience_estimate(&campaign).await?;
                    let started = self
                        .change_campaign(&timer.key, |c, now| {
                            if c.status != CampaignStatus::Scheduled {
                                return Ok(Vec::new());
                            }
                            let mut writes = Self::begin(c, now, estimate);
                            writes.retain(|w| !matches!(w, Write::Delete { .. }));
                            writes.push(claim.clone());
                            Ok(writes)
                        })
                        .await?;
                    queue.send(vec![CampaignJob::first(&started.id)]).await?;
                    Some(())
                }
                (
                    TimerKind::CampaignStop,
                    CampaignStatus::Scheduled | CampaignStatus::InProgress,
                ) => {
                    self.change_campaign(&timer.key, |c, now| {
                        if !matches!(c.status, CampaignStatus::Scheduled | CampaignStatus::InProgress) {
                            return Ok(Vec::new());
                        }
                        let mut writes = Self::halt(c, now);
                        writes.retain(|w| !matches!(w, Write::Delete { pk, .. } if pk.contains("campaign_stop")));
                        writes.push(claim.clone());
                        Ok(writes)
                    })
                    .await?;
                    Some(())
                }
                (TimerKind::CampaignKick, CampaignStatus::InProgress)
                    if !campaign.run.expanding =>
                {
                    self.campaign_queue()?
                        .send(vec![CampaignJob::first(&campaign.id)])
                        .await?;
                    None
                }
                _ => None,
            },
        };
        if outcome.is_none() {
            match self.store.write(claim).await {
                Ok(()) | Err(StoreError::ConditionFailed) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// Whether a segment list reaches channels (channel segments) rather than users.
pub(crate) fn reaches_channels(segments: &[Segment]) -> bool {
    segments
        .first()
        .is_some_and(|s| s.kind == SegmentType::Channel)
}
