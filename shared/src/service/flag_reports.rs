//! Flag reports: the flags of one message taken together, for moderators to review
//! (`POST /moderation/reports` to query, `PATCH /moderation/reports/{id}` to review). A report
//! is identified by its message's id; its review (result, details, reviewer, time) is one
//! app-table item, written under the version it was read at.

use super::{acting_user, Chat};
use crate::domain::caller::Session;
use crate::domain::filter::{FieldRules, Filter, ValueKind};
use crate::domain::flag::Flag;
use crate::domain::permissions::{self, Resource};
use crate::domain::ApiError;
use crate::store::{query_all, Condition, Item, Query, SkRange, StoreError, TableName, Write};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

const REVIEWS_PK: &str = "flag_reviews";
/// The longest `review_result`, and the most review details (bytes of JSON).
const MAX_REVIEW_RESULT: usize = 255;
const MAX_REVIEW_DETAILS_BYTES: usize = 5 * 1024;

/// Body of `POST /moderation/reports`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct QueryFlagReports {
    pub filter_conditions: Value,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
    pub user_id: Option<String>,
}

/// Body of `PATCH /moderation/reports/{id}`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReviewFlagReport {
    pub review_result: Option<String>,
    pub review_details: Map<String, Value>,
    pub user_id: Option<String>,
    pub user: Option<Map<String, Value>>,
}

/// A stored review.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Review {
    review_result: String,
    #[serde(default)]
    review_details: Map<String, Value>,
    reviewed_by_id: String,
    reviewed_at: String,
}

fn report_filter_rules() -> FieldRules {
    use crate::domain::filter::Op::*;
    FieldRules::new()
        .typed("message_id", ValueKind::String, &[Eq, In])
        .typed("channel_cid", ValueKind::String, &[Eq, In])
        .typed("user_id", ValueKind::String, &[Eq, In])
        .typed("review_result", ValueKind::String, &[Eq, In])
        .typed("is_reviewed", ValueKind::Bool, &[Eq])
}

impl Chat {
    /// Allows the server, or a user whose role has `action` in the app's grants.
    fn check_report_action(&self, session: &Session, action: &str) -> Result<(), ApiError> {
        if session.caller.is_server() || session.settings.disable_permissions_checks {
            return Ok(());
        }
        let resource = Resource {
            owner_id: None,
            team: None,
        };
        if permissions::is_allowed(
            &session.settings.grants,
            &session.caller.subject(None),
            action,
            &resource,
        ) {
            Ok(())
        } else {
            Err(ApiError::not_allowed(format!(
                "this user is not allowed to {}",
                if action == "ReadFlagReports" {
                    "read flag reports"
                } else {
                    "review flag reports"
                }
            )))
        }
    }

    /// The ids of the messages whose report was reviewed.
    pub(crate) async fn reviewed_messages(
        &self,
    ) -> Result<std::collections::BTreeSet<String>, ApiError> {
        Ok(query_all(
            self.store.as_ref(),
            Query::new(TableName::App, REVIEWS_PK).keys_only(),
        )
        .await?
        .into_iter()
        .map(|i| i.sk)
        .collect())
    }

    async fn review_of(&self, message_id: &str) -> Result<Option<(Review, u64)>, ApiError> {
        Ok(
            match self
                .store
                .get(TableName::App, REVIEWS_PK, message_id)
                .await?
            {
                Some(item) => Some((super::decode(item.data, "review")?, item.version)),
                None => None,
            },
        )
    }

    /// The report of one message: its flags, author, channel and review.
    async fn report_wire(
        &self,
        message_id: &str,
        flags: &[Flag],
        review: Option<&Review>,
    ) -> Result<Option<Value>, ApiError> {
        let Some(stored) = self.find_message(message_id).await? else {
            return Ok(None);
        };
        let message = self.message_wire(&stored.message, false, None).await?;
        let first = flags
            .iter()
            .map(|f| f.created_at.as_str())
            .min()
            .unwrap_or("");
        let last = flags
            .iter()
            .map(|f| f.updated_at.as_str())
            .max()
            .unwrap_or("");
        let mut report = json!({
            "id": message_id,
            "message": message,
            "user": message["user"],
            "flags_count": flags.len(),
            "created_at": first,
            "updated_at": last,
        });
        if let Some(r) = review {
            report["review_result"] = Value::String(r.review_result.clone());
            report["review_details"] = Value::Object(r.review_details.clone());
            report["reviewed_by"] = json!({ "id": r.reviewed_by_id });
            report["reviewed_at"] = Value::String(r.reviewed_at.clone());
            report["updated_at"] = Value::String(r.reviewed_at.clone());
        }
        Ok(Some(report))
    }

    /// Every message flag, grouped by message.
    async fn flags_by_message(&self) -> Result<BTreeMap<String, Vec<Flag>>, ApiError> {
        let mut out: BTreeMap<String, Vec<Flag>> = BTreeMap::new();
        for item in query_all(
            self.store.as_ref(),
            Query::new(TableName::App, "flags").range(SkRange::BeginsWith("message#".into())),
        )
        .await?
        {
            if let Ok(f) = serde_json::from_value::<Flag>(item.data) {
                if let Some(id) = f.target_message_id.clone() {
                    out.entry(id).or_default().push(f);
                }
            }
        }
        Ok(out)
    }

    /// `POST /moderation/reports`: the flagged messages' reports matching the filter
    /// (`message_id`, `channel_cid`, `user_id` = the author, `review_result`, `is_reviewed`),
    /// newest first.
    pub async fn query_flag_reports(
        &self,
        session: &Session,
        q: QueryFlagReports,
    ) -> Result<Value, ApiError> {
        self.check_report_action(session, "ReadFlagReports")?;
        let (limit, offset) = crate::domain::limits::moderation_page(q.limit, q.offset)?;
        let filter = Filter::parse(&q.filter_conditions, Some(&report_filter_rules()))
            .map_err(|e| ApiError::field("filter_conditions", e.to_string()))?;
        let reviews: BTreeMap<String, Review> =
            query_all(self.store.as_ref(), Query::new(TableName::App, REVIEWS_PK))
                .await?
                .into_iter()
                .filter_map(|i| Some((i.sk.clone(), serde_json::from_value(i.data).ok()?)))
                .collect();
        let mut matched: Vec<(String, Vec<Flag>, String)> = Vec::new();
        for (message_id, flags) in self.flags_by_message().await? {
            let review = reviews.get(&message_id);
            let doc = json!({
                "message_id": message_id,
                "channel_cid": flags[0].channel_cid,
                "user_id": flags[0].message_user_id,
                "review_result": review.map(|r| r.review_result.clone()),
                "is_reviewed": review.is_some(),
            });
            if filter.matches_json(&doc) {
                let newest = flags
                    .iter()
                    .map(|f| f.created_at.clone())
                    .max()
                    .unwrap_or_default();
                matched.push((message_id, flags, newest));
            }
        }
        matched.sort_by(|a, b| b.2.cmp(&a.2));
        let mut out = Vec::new();
        for (message_id, flags, _) in matched.into_iter().skip(offset).take(limit) {
            if let Some(r) = self
                .report_wire(&message_id, &flags, reviews.get(&message_id))
                .await?
            {
                out.push(r);
            }
        }
        Ok(json!({ "flag_reports": out }))
    }

    /// `PATCH /moderation/reports/{id}`: records the review (`review_result`, free-form
    /// `review_details`, the reviewer).
    pub async fn review_flag_report(
        &self,
        session: &Session,
        report_id: &str,
        req: ReviewFlagReport,
    ) -> Result<Value, ApiError> {
        self.check_report_action(session, "UpdateFlagReport")?;
        let result = req
            .review_result
            .clone()
            .filter(|r| !r.is_empty())
            .ok_or_else(|| ApiError::field("review_result", "review_result is required"))?;
        if result.chars().count() > MAX_REVIEW_RESULT {
            return Err(ApiError::field(
                "review_result",
                format!("review_result must be at most {MAX_REVIEW_RESULT} characters"),
            ));
        }
        if Value::Object(req.review_details.clone()).to_string().len() > MAX_REVIEW_DETAILS_BYTES {
            return Err(ApiError::field(
                "review_details",
                format!("review_details must be at most {MAX_REVIEW_DETAILS_BYTES} bytes"),
            ));
        }
        let reviewer = acting_user(session, &req.user_id, &req.user).ok_or_else(|| {
            ApiError::field(
                "user_id",
                "user_id is required with server-side authentication",
            )
        })?;
        let flags = self
            .flags_by_message()
            .await?
            .remove(report_id)
            .ok_or_else(|| {
                ApiError::not_found(format!("flag report {report_id:?} does not exist"))
            })?;
        let review = Review {
            review_result: result,
            review_details: req.review_details,
            reviewed_by_id: reviewer,
            reviewed_at: self.now_str(),
        };
        let data = serde_json::to_value(&review).map_err(|e| ApiError::internal(e.to_string()))?;
        let condition = match self.review_of(report_id).await? {
            Some((_, version)) => Condition::Version(version),
            None => Condition::NotExists,
        };
        match self
            .store
            .write(Write::Put {
                table: TableName::App,
                item: Item::new(REVIEWS_PK, report_id, data),
                condition,
            })
            .await
        {
            Ok(()) => {}
            Err(StoreError::ConditionFailed) => {
                return Err(ApiError::input(format!(
                    "flag report {report_id:?} was reviewed meanwhile; try again"
                )))
            }
            Err(e) => return Err(e.into()),
        }
        let report = self
            .report_wire(report_id, &flags, Some(&review))
            .await?
            .ok_or_else(|| {
                ApiError::not_found(format!("flag report {report_id:?} does not exist"))
            })?;
        Ok(json!({ "flag_report": report }))
    }
}
