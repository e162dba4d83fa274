//! Flags: `POST /moderation/flag`, `POST /moderation/unflag` and `GET /moderation/flags/message`.
//! A flag is one item per reporter and target in the app table (partition `flags`), so a user
//! flags a message or a user once; `message.flagged` / `user.flagged` (and their `unflagged`
//! counterparts) go to the app's hooks, not to the channel's watchers.

use super::{acting_user, Chat};
use crate::domain::caller::Session;
use crate::domain::event::{user_scope, Event};
use crate::domain::filter::{FieldRules, Filter, ValueKind};
use crate::domain::flag::{Flag, FlagRequest, FlagTarget};
use crate::domain::permissions::{self, Resource};
use crate::domain::ApiError;
use crate::service::channel_record::channel_event;
use crate::store::layout::outbox_write;
use crate::store::{query_all, Condition, Item, Query, SkRange, StoreError, TableName, Write};
use serde::Deserialize;
use serde_json::{json, Value};

const FLAGS_PK: &str = "flags";
/// The reporter of the flags blocklists raise.
const AUTOMOD: &str = "automod";

fn flag_key(target: &FlagTarget, reporter: &str) -> (String, String) {
    let sk = match target {
        FlagTarget::Message(id) => format!("message#{id}#{reporter}"),
        FlagTarget::User(id) => format!("user#{id}#{reporter}"),
    };
    (FLAGS_PK.into(), sk)
}

/// The payload of `GET /moderation/flags/message`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct QueryMessageFlags {
    pub filter_conditions: Value,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
    pub user_id: Option<String>,
}

/// The field rules of `query_message_flags` filters (Stream's `QueryMessageFlagsPayload`).
fn flag_filter_rules() -> FieldRules {
    use crate::domain::filter::Op::*;
    FieldRules::new()
        .typed("channel_cid", ValueKind::String, &[Eq, In])
        .typed("message_id", ValueKind::String, &[Eq, In])
        .typed("user_id", ValueKind::String, &[Eq, In])
        .typed("reporter_id", ValueKind::String, &[Eq])
        .typed("reason", ValueKind::String, &[Eq, In])
        .typed("is_reviewed", ValueKind::Bool, &[Eq])
}

impl Chat {
    /// `POST /moderation/flag` (`flag`) and `/moderation/unflag`.
    pub async fn flag(
        &self,
        session: &Session,
        req: FlagRequest,
        flag: bool,
    ) -> Result<Value, ApiError> {
        req.validate()?;
        let target = req.target()?;
        let reporter = acting_user(session, &req.user_id, &req.user).ok_or_else(|| {
            ApiError::field(
                "user_id",
                "user_id is required with server-side authentication",
            )
        })?;
        if matches!(session.caller, crate::domain::caller::Caller::Anonymous) {
            return Err(ApiError::not_allowed("anonymous users cannot flag"));
        }
        let reporter_user = self
            .get_user(&reporter)
            .await?
            .map(|(u, _)| u)
            .ok_or_else(|| ApiError::input(format!("user {reporter:?} does not exist")))?;
        let now = self.now_str();
        let (mut record, mut event) = match &target {
            FlagTarget::Message(id) => {
                let stored = self.require_message(id).await?;
                let (config, loaded) = self.message_channel(session, &stored.message).await?;
                self.check_action_on(
                    session,
                    &config,
                    Some(&loaded),
                    &loaded.channel,
                    "FlagMessage",
                    stored.message.user_id.as_deref(),
                )?;
                let wire = self.message_wire(&stored.message, false, None).await?;
                let kind = if flag {
                    "message.flagged"
                } else {
                    "message.unflagged"
                };
                let event = channel_event(kind, &loaded.channel, self.now()).with("message", wire);
                let record = Flag {
                    user_id: reporter.clone(),
                    target_message_id: Some(id.clone()),
                    target_user_id: None,
                    channel_cid: Some(loaded.channel.cid.clone()),
                    message_user_id: stored.message.user_id.clone(),
                    reason: req.reason.clone().filter(|r| !r.is_empty()),
                    custom: req.custom.clone(),
                    created_by_automod: false,
                    created_at: now.clone(),
                    updated_at: now.clone(),
                };
                (record, event)
            }
            FlagTarget::User(id) => {
                if *id == reporter {
                    return Err(ApiError::input("a user cannot flag themselves"));
                }
                let (target_user, _) = self
                    .get_user(id)
                    .await?
                    .filter(|(u, _)| !u.is_deleted())
                    .ok_or_else(|| ApiError::not_found(format!("user {id:?} does not exist")))?;
                if !session.caller.is_server() && !session.settings.disable_permissions_checks {
                    let resource = Resource {
                        owner_id: Some(id),
                        team: None,
                    };
                    let subject = session.caller.subject(None);
                    if !permissions::is_allowed(
                        &session.settings.grants,
                        &subject,
                        "FlagUser",
                        &resource,
                    ) {
                        return Err(ApiError::not_allowed(format!(
                            "user {reporter:?} is not allowed to flag users"
                        )));
                    }
                }
                let kind = if flag {
                    "user.flagged"
                } else {
                    "user.unflagged"
                };
                let event = Event::new(kind, user_scope(id), self.now())
                    .with("target_user", target_user.to_json());
                let record = Flag {
                    user_id: reporter.clone(),
                    target_message_id: None,
                    target_user_id: Some(id.clone()),
                    channel_cid: None,
                    message_user_id: None,
                    reason: req.reason.clone().filter(|r| !r.is_empty()),
                    custom: req.custom.clone(),
                    created_by_automod: false,
                    created_at: now.clone(),
                    updated_at: now.clone(),
                };
                (record, event)
            }
        };
        event = event.with("user", reporter_user.to_json());
        let (pk, sk) = flag_key(&target, &reporter);
        let existing = self.store.get(TableName::App, &pk, &sk).await?;
        if flag {
            // One flag per reporter and target: flagging again answers the flag there is.
            if let Some(item) = &existing {
                record = super::decode(item.data.clone(), "flag")?;
            } else {
                self.store_flag(&target, &record, &event).await?;
            }
        } else {
            let Some(item) = existing else {
                return Err(ApiError::not_found("there is no such flag to remove"));
            };
            record = super::decode(item.data.clone(), "flag")?;
            let writes = vec![
                Write::Delete {
                    table: TableName::App,
                    pk,
                    sk,
                    condition: Condition::Version(item.version),
                },
                outbox_write(&event),
            ];
            match self.store.transact(writes).await {
                Ok(()) | Err(StoreError::TransactionCanceled { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let target_json = match &target {
            FlagTarget::Message(_) => None,
            FlagTarget::User(id) => Some(("target_user", json!({ "id": id }))),
        };
        Ok(json!({ "flag": record.to_wire(reporter_user.to_json(), target_json) }))
    }

    /// Stores a new flag with its event, unless its reporter flagged the target already (then
    /// nothing changes).
    async fn store_flag(
        &self,
        target: &FlagTarget,
        record: &Flag,
        event: &Event,
    ) -> Result<(), ApiError> {
        let (pk, sk) = flag_key(target, &record.user_id);
        let data = serde_json::to_value(record).map_err(|e| ApiError::internal(e.to_string()))?;
        let writes = vec![
            Write::Put {
                table: TableName::App,
                item: Item::new(pk, sk, data),
                condition: Condition::NotExists,
            },
            outbox_write(event),
        ];
        match self.store.transact(writes).await {
            Ok(()) | Err(StoreError::TransactionCanceled { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A message a blocklist with `flag` behaviour caught: flagged by automod (reporter
    /// `automod`), with `message.flagged` to the hooks.
    pub(crate) async fn automod_flag(
        &self,
        message_id: &str,
        hit: &crate::service::blocklists::BlocklistHit,
    ) -> Result<(), ApiError> {
        let stored = self.require_message(message_id).await?;
        let Some(loaded) = self.load_channel(&stored.message.cid).await? else {
            return Ok(());
        };
        let now = self.now_str();
        let record = Flag {
            user_id: AUTOMOD.into(),
            target_message_id: Some(message_id.to_string()),
            target_user_id: None,
            channel_cid: Some(loaded.channel.cid.clone()),
            message_user_id: stored.message.user_id.clone(),
            reason: Some(format!("blocklist {}: {}", hit.blocklist, hit.phrase)),
            custom: Default::default(),
            created_by_automod: true,
            created_at: now.clone(),
            updated_at: now,
        };
        let wire = self.message_wire(&stored.message, false, None).await?;
        let event = channel_event("message.flagged", &loaded.channel, self.now())
            .with("message", wire)
            .with("user", json!({ "id": AUTOMOD }))
            .with("reason", json!(record.reason));
        self.store_flag(
            &FlagTarget::Message(message_id.to_string()),
            &record,
            &event,
        )
        .await
    }

    /// `GET /moderation/flags/message`: message flags matching the filter (`channel_cid`,
    /// `message_id`, `user_id` (the message's author), `reporter_id`, `reason`), newest first,
    /// `limit` ≤ 300, `offset` ≤ 10,000. Server-side, or users who may read message flags.
    pub async fn query_message_flags(
        &self,
        session: &Session,
        q: QueryMessageFlags,
    ) -> Result<Value, ApiError> {
        let (limit, offset) = crate::domain::limits::moderation_page(q.limit, q.offset)?;
        let filter = Filter::parse(&q.filter_conditions, Some(&flag_filter_rules()))
            .map_err(|e| ApiError::field("filter_conditions", e.to_string()))?;
        let reviewed = self.reviewed_messages().await?;
        let mut flags: Vec<Flag> = query_all(
            self.store.as_ref(),
            Query::new(TableName::App, FLAGS_PK).range(SkRange::BeginsWith("message#".into())),
        )
        .await?
        .into_iter()
        .filter_map(|i| serde_json::from_value::<Flag>(i.data).ok())
        .filter(|f| {
            let mut doc = f.filter_doc();
            doc["is_reviewed"] = f
                .target_message_id
                .as_ref()
                .is_some_and(|m| reviewed.contains(m))
                .into();
            filter.matches_json(&doc)
        })
        .collect();
        flags.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        let mut out = Vec::new();
        for f in flags.into_iter().skip(offset) {
            if out.len() >= limit {
                break;
            }
            let Some(id) = &f.target_message_id else {
                continue;
            };
            let Some(stored) = self.find_message(id).await? else {
                continue;
            };
            // Client-side readers see the flags of channels where they may read them.
            if !session.caller.is_server() {
                let (config, loaded) = self.message_channel(session, &stored.message).await?;
                if self
                    .check_channel_action(
                        session,
                        &config,
                        Some(&loaded),
                        &loaded.channel,
                        "ReadMessageFlags",
                    )
                    .is_err()
                {
                    continue;
                }
            }
            let reporter = match f.created_by_automod {
                true => json!({ "id": AUTOMOD }),
                false => self
                    .get_user(&f.user_id)
                    .await?
                    .map(|(u, _)| u.to_json())
                    .unwrap_or_else(|| json!({ "id": f.user_id })),
            };
            let message = self.message_wire(&stored.message, false, None).await?;
            out.push(f.to_wire(reporter, Some(("message", message))));
        }
        Ok(json!({ "flags": out }))
    }
}
