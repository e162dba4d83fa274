//! The campaign worker: its SQS queue (`CAMPAIGN_QUEUE_URL`, which it also sends to) brings
//! campaign fan-out jobs, expansion steps and delivery batches; it runs each and reports the
//! failed ones, so only those come back (`Chat::on_campaign_queue_event`).

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let chat = shared::environment::lambda_chat().await?;
    if chat.campaigns.is_none() {
        return Err(
            "CAMPAIGN_QUEUE_URL is not set: the campaign worker queues what it lists".into(),
        );
    }
    let chat = &chat;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<Value, lambda_runtime::Error>(chat.on_campaign_queue_event(&event.payload).await)
    }))
    .await
}
