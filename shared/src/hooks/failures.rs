//! Failed deliveries: an event a target would not take within its retry budget (or could never
//! take, e.g. over the queue's size limit) is kept here with the error, for 14 days, so nothing
//! is lost silently; the operator lists them and replays them once the target is back.

use super::send::Outgoing;
use crate::domain::ids::time_ordered_id;
use crate::domain::ApiError;
use crate::service::Chat;
use crate::store::{query_all, Condition, Item, Query, TableName, Write};
use serde::{Deserialize, Serialize};

/// How long a failed delivery is kept.
pub const FAILURE_RETENTION_SECS: i64 = 14 * 24 * 3600;
/// The partition of the app table failed deliveries live in.
const FAILURES_PK: &str = "hook_failures";
/// Bodies above this are kept without their body (a store item holds at most 400 KB); the
/// event's id and type still say what was lost.
const MAX_KEPT_BODY: usize = 300 * 1024;

/// One event a target did not take.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HookFailure {
    /// This record's id (to replay or forget it).
    #[serde(default)]
    pub id: String,
    pub hook_id: String,
    pub hook_type: String,
    pub event_id: String,
    pub event_type: String,
    pub scope: String,
    pub error: String,
    pub attempts: u32,
    pub failed_at: String,
    /// The body that was sent; absent when it was too large to keep.
    #[serde(default)]
    pub body: Option<String>,
}

impl HookFailure {
    pub fn new(
        hook_id: &str,
        hook_type: &str,
        event: &Outgoing,
        error: &str,
        attempts: u32,
        failed_at: String,
    ) -> Self {
        HookFailure {
            id: String::new(),
            hook_id: hook_id.to_string(),
            hook_type: hook_type.to_string(),
            event_id: event.id.clone(),
            event_type: event.kind.clone(),
            scope: event.scope.clone(),
            error: error.to_string(),
            attempts,
            failed_at,
            body: (event.body.len() <= MAX_KEPT_BODY).then(|| event.body.clone()),
        }
    }

    /// The event to send again (when its body was kept).
    pub fn outgoing(&self) -> Option<Outgoing> {
        Some(Outgoing {
            id: self.event_id.clone(),
            kind: self.event_type.clone(),
            scope: self.scope.clone(),
            body: self.body.clone()?,
        })
    }
}

impl Chat {
    /// Keeps failed deliveries.
    pub async fn record_hook_failures(&self, failures: Vec<HookFailure>) -> Result<(), ApiError> {
        let now = self.now();
        // Listed in the order they happened: each a microsecond after the one before.
        for (i, mut f) in failures.into_iter().enumerate() {
            f.id = time_ordered_id(now + chrono::Duration::microseconds(i as i64));
            let mut item = Item::new(
                FAILURES_PK,
                f.id.clone(),
                serde_json::to_value(&f).map_err(|e| ApiError::internal(e.to_string()))?,
            );
            item.ttl = Some(now.timestamp() + FAILURE_RETENTION_SECS);
            self.store
                .write(Write::Put {
                    table: TableName::App,
                    item,
                    condition: Condition::NotExists,
                })
                .await?;
        }
        Ok(())
    }

    /// Kept failed deliveries, oldest first.
    pub async fn hook_failures(&self) -> Result<Vec<HookFailure>, ApiError> {
        let items = query_all(self.store.as_ref(), Query::new(TableName::App, FAILURES_PK)).await?;
        Ok(items
            .into_iter()
            .filter_map(|i| serde_json::from_value(i.data).ok())
            .collect())
    }

    /// Forgets a failed delivery (replayed, or given up on).
    pub async fn forget_hook_failure(&self, id: &str) -> Result<(), ApiError> {
        self.store
            .write(Write::Delete {
                table: TableName::App,
                pk: FAILURES_PK.into(),
                sk: id.into(),
                condition: Condition::None,
            })
            .await?;
        Ok(())
    }
}
