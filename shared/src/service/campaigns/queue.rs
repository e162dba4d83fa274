//! The campaign queue: where fan-out jobs wait for a worker. In AWS an SQS queue feeds the
//! campaign-worker function (`Chat::on_campaign_queue_event`, partial batch failures); in
//! chat-local the jobs are items of the app table, run by a pool of tasks and removed once
//! done, so a restart runs what was left.

use super::fanout::CampaignJob;
use crate::domain::ApiError;
use crate::service::Chat;
use crate::store::layout::CAMPAIGN_QUEUE_PK;
use crate::store::{query_all, Condition, Item, Query, Table, TableName, Write};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::{mpsc, Mutex, Semaphore};

#[async_trait::async_trait]
pub trait CampaignQueue: Send + Sync {
    /// Queues the jobs (each runs at least once).
    async fn send(&self, jobs: Vec<CampaignJob>) -> Result<(), ApiError>;
}

/// Jobs to an SQS queue (the campaign worker's event source).
pub struct SqsCampaignQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsCampaignQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        SqsCampaignQueue {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait::async_trait]
impl CampaignQueue for SqsCampaignQueue {
    async fn send(&self, jobs: Vec<CampaignJob>) -> Result<(), ApiError> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        for chunk in jobs.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, job)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(serde_json::to_string(job).unwrap_or_default())
                        .build()
                        .map_err(|e| ApiError::internal(format!("campaign job: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            crate::realtime::sqs::send_batch(&self.client, &self.queue_url, entries)
                .await
                .map_err(|e| ApiError::internal(format!("campaign queue: {e}")))?;
        }
        Ok(())
    }
}

impl Chat {
    /// The campaign worker's handler: runs each SQS record's job; answers the records to
    /// deliver again (`batchItemFailures`), so only the failed jobs are retried.
    pub async fn on_campaign_queue_event(&self, event: &Value) -> Value {
        let mut failures = Vec::new();
        for record in event["Records"].as_array().into_iter().flatten() {
            let id = record["messageId"].as_str().unwrap_or_default();
            let job: Result<CampaignJob, _> =
                serde_json::from_str(record["body"].as_str().unwrap_or_default());
            let outcome = match job {
                Ok(job) => self.run_campaign_job(&job).await,
                // Not a job of ours: retrying it cannot help.
                Err(e) => {
                    tracing::warn!(message_id = id, error = %e, "not a campaign job; dropped");
                    Ok(())
                }
            };
            if let Err(e) = outcome {
                tracing::warn!(message_id = id, error = %e, "campaign job failed; retried");
                failures.push(json!({ "itemIdentifier": id }));
            }
        }
        json!({ "batchItemFailures": failures })
    }
}

/// chat-local's queue: jobs stored in the app table, run by [`StoreQueue::run`].
pub struct StoreQueue {
    store: Arc<dyn Table>,
    tx: mpsc::UnboundedSender<String>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
}

impl StoreQueue {
    pub fn new(store: Arc<dyn Table>) -> Arc<StoreQueue> {
        let (tx, rx) = mpsc::unbounded_channel();
        Arc::new(StoreQueue {
            store,
            tx,
            rx: Mutex::new(Some(rx)),
        })
    }

    /// Runs the jobs, `workers` at a time: those left from before first, then each as it is
    /// queued. A failing job is tried again after a pause (doubling to a minute). Returns when
    /// the queue is dropped or already running.
    pub async fn run(self: Arc<Self>, chat: Chat, workers: usize) {
        let Some(mut rx) = self.rx.lock().await.take() else {
            return;
        };
        match query_all(
            self.store.as_ref(),
            Query::new(TableName::App, CAMPAIGN_QUEUE_PK).keys_only(),
        )
        .await
        {
            Ok(left) => {
                if !left.is_empty() {
                    tracing::info!(jobs = left.len(), "resuming campaign jobs");
                }
                for item in left {
                    let _ = self.tx.send(item.sk);
                }
            }
            Err(e) => tracing::warn!(error = %e, "campaign jobs left from before not read"),
        }
        let permits = Arc::new(Semaphore::new(workers.max(1)));
        while let Some(key) = rx.recv().await {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (queue, chat) = (self.clone(), chat.clone());
            tokio::spawn(async move {
                queue.run_one(&chat, key).await;
                drop(permit);
            });
        }
    }

    async fn run_one(&self, chat: &Chat, key: String) {
        let mut pause = std::time::Duration::from_millis(500);
        loop {
            let item = match self
                .store
                .get(TableName::App, CAMPAIGN_QUEUE_PK, &key)
                .await
            {
                Ok(Some(item)) => item,
                // Done already (listed twice at a restart).
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "campaign job not read");
                    tokio::time::sleep(pause).await;
                    continue;
                }
            };
            let outcome = match serde_json::from_value::<CampaignJob>(item.data) {
                Ok(job) => chat.run_campaign_job(&job).await,
                Err(e) => {
                    tracing::warn!(error = %e, "not a campaign job; dropped");
                    Ok(())
                }
            };
            match outcome {
                Ok(()) => {
                    let done = Write::Delete {
                        table: TableName::App,
                        pk: CAMPAIGN_QUEUE_PK.into(),
                        sk: key.clone(),
                        condition: Condition::None,
                    };
                    if let Err(e) = self.store.write(done).await {
                        tracing::warn!(error = %e, "a done campaign job was not removed");
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "campaign job failed; tried again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(60));
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl CampaignQueue for StoreQueue {
    async fn send(&self, jobs: Vec<CampaignJob>) -> Result<(), ApiError> {
        let stamp = chrono::Utc::now().timestamp_micros();
        let keyed: Vec<(String, Value)> = jobs
            .iter()
            .map(|job| {
                let key = format!("{stamp:020}-{}", crate::domain::ids::random_id());
                (key, serde_json::to_value(job).unwrap_or_default())
            })
            .collect();
        for chunk in keyed.chunks(crate::store::MAX_TRANSACTION_WRITES) {
            let writes = chunk
                .iter()
                .map(|(key, job)| Write::Put {
                    table: TableName::App,
                    item: Item::new(CAMPAIGN_QUEUE_PK, key.clone(), job.clone()),
                    condition: Condition::None,
                })
                .collect();
            self.store.transact(writes).await?;
        }
        for (key, _) in keyed {
            let _ = self.tx.send(key);
        }
        Ok(())
    }
}
