//! The hook-dispatch function: the events table's DynamoDB stream (the outbox) delivered to the
//! app's webhooks, SQS queues and SNS topics (`shared::hooks::aws::on_stream`), and its pushes
//! (`shared::push`: straight to APNs / FCM, or through SNS mobile push with `PUSH_DELIVERY=sns`).

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let chat = shared::environment::lambda_chat().await?;
    // One dispatcher per instance: its clients and failing-target state live as long as it.
    let mut pushes = shared::push::Pushes::new();
    if let Some(sns) = shared::push::sns::from_env().await? {
        pushes = pushes.with_sns(sns);
    }
    let hooks = shared::hooks::Hooks::new(&chat).with_pushes(pushes);
    let (chat, hooks) = (&chat, &hooks);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<Value, lambda_runtime::Error>(
            shared::hooks::aws::on_stream(chat, hooks, &event.payload).await?,
        )
    }))
    .await
}
