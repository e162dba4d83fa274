//! The hook-dispatch function's handler: a batch of DynamoDB Streams records of the events
//! table (the outbox), each new event read back by its keys and handed to the app's hooks in
//! the batch's order. Failed deliveries are kept (see `failures`), so a batch fails only when
//! that could not be done: the records from the first one are then reported as failed
//! (`ReportBatchItemFailures`) and Lambda retries them, bisecting a batch that keeps failing,
//! before the on-failure destination gets it.

use super::{Hooks, OutboxEvent};
use crate::domain::ApiError;
use crate::service::Chat;
use crate::store::TableName;
use serde_json::{json, Value};

/// Handles one stream batch; answers `{delivered, failed, batchItemFailures}`.
pub async fn on_stream(chat: &Chat, hooks: &Hooks, event: &Value) -> Result<Value, ApiError> {
    let records: Vec<&Value> = event["Records"].as_array().into_iter().flatten().collect();
    let mut events = Vec::new();
    let mut first_sequence: Option<&str> = None;
    for record in &records {
        if record["eventName"] != "INSERT" {
            continue;
        }
        let keys = &record["dynamodb"]["Keys"];
        let (Some(pk), Some(sk)) = (keys["pk"]["S"].as_str(), keys["sk"]["S"].as_str()) else {
            continue;
        };
        first_sequence = first_sequence.or(record["dynamodb"]["SequenceNumber"].as_str());
        // An event that expired before it was read has nothing left to send.
        if let Some(item) = chat.store.get(TableName::Events, pk, sk).await? {
            events.push(OutboxEvent {
                scope: item.pk,
                sk: item.sk,
                event: item.data,
            });
        }
    }
    match hooks.dispatch(chat, &events).await {
        Ok(done) => Ok(json!({
            "delivered": done.delivered,
            "failed": done.failed,
            "batchItemFailures": [],
        })),
        Err(e) => {
            tracing::warn!(error = %e, "hook dispatch failed; the batch will be retried");
            let failures: Vec<Value> = first_sequence
                .map(|s| json!({ "itemIdentifier": s }))
                .into_iter()
                .collect();
            Ok(json!({ "delivered": 0, "failed": 0, "batchItemFailures": failures }))
        }
    }
}
