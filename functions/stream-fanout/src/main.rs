//! DynamoDB Streams of the events and connections tables: every new outbox event delivered to
//! its connections, every new connection greeted (`shared::realtime::aws::on_stream`).

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let chat = shared::environment::lambda_chat().await?;
    let gateway = shared::environment::gateway_from_env().await?;
    let (chat, gateway) = (&chat, &gateway);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<Value, lambda_runtime::Error>(
            shared::realtime::aws::on_stream(chat, gateway, &event.payload).await?,
        )
    }))
    .await
}
