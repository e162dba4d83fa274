//! The fan-out queue in AWS: an SQS FIFO queue. Each batch is one message in its group (the
//! channel and the connection's group), so a connection's events keep their order while groups
//! are delivered in parallel by fan-out workers.

use super::delivery::{FanoutBatch, FanoutQueue};
use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use sha2::{Digest, Sha256};

/// Messages in one `SendMessageBatch` call (the SQS limit).
const SEND_BATCH: usize = 10;

pub struct SqsFanoutQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsFanoutQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        SqsFanoutQueue {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// A client for `queue_url` (`AWS_ENDPOINT_URL_SQS` in the configuration points elsewhere).
    pub fn from_config(config: &aws_config::SdkConfig, queue_url: &str) -> Self {
        Self::new(aws_sdk_sqs::Client::new(config), queue_url)
    }
}

#[async_trait]
impl FanoutQueue for SqsFanoutQueue {
    async fn enqueue(&self, batches: Vec<FanoutBatch>) -> Result<(), String> {
        for chunk in batches.chunks(SEND_BATCH) {
            let mut entries = Vec::new();
            for (i, batch) in chunk.iter().enumerate() {
                let body = serde_json::to_string(batch).map_err(|e| e.to_string())?;
                let dedup = hex::encode(Sha256::digest(body.as_bytes()));
                entries.push(
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .message_group_id(&batch.group)
                        .message_deduplication_id(dedup)
                        .build()
                        .map_err(|e| e.to_string())?,
                );
            }
            send_batch(&self.client, &self.queue_url, entries)
                .await
                .map_err(|e| format!("the fan-out queue: {e}"))?;
        }
        Ok(())
    }
}

/// One `SendMessageBatch` call (at most [`SEND_BATCH`] entries); an error if SQS refused any.
pub(crate) async fn send_batch(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    entries: Vec<SendMessageBatchRequestEntry>,
) -> Result<(), String> {
    let out = client
        .send_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
    match out.failed().first() {
        Some(failed) => Err(format!(
            "refused a message: {}",
            failed.message().unwrap_or(failed.code())
        )),
        None => Ok(()),
    }
}
