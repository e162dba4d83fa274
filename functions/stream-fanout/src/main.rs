//! The fan-out function: DynamoDB Streams of the events and connections tables (every new outbox
//! event delivered to its connections, every new connection greeted) and the SQS FIFO queue that
//! large audiences are split to (`shared::realtime::aws::on_stream`).

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let chat = shared::environment::lambda_chat().await?;
    // One delivery worker per instance: its throttling state lives as long as the instance.
    let delivery = shared::environment::delivery_from_env().await?;
    let (chat, delivery) = (&chat, &delivery);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<Value, lambda_runtime::Error>(
            shared::realtime::aws::on_stream(chat, delivery, &event.payload).await?,
        )
    }))
    .await
}
