//! The WebSocket API's `$connect` route: authenticate and record the connection
//! (`shared::realtime::aws::on_connect`); the hello follows through stream-fanout.

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let chat = shared::environment::lambda_chat().await?;
    let chat = &chat;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<Value, lambda_runtime::Error>(
            shared::realtime::aws::on_connect(chat, &event.payload).await?,
        )
    }))
    .await
}
