//! The WebSocket API's `$default` route: client frames (health-check pings) answered through
//! the API Gateway Management API (`shared::realtime::aws::on_message`).

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let chat = shared::environment::lambda_chat().await?;
    let gateway = shared::environment::gateway_from_env().await?;
    let (chat, gateway) = (&chat, &gateway);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<Value, lambda_runtime::Error>(
            shared::realtime::aws::on_message(chat, gateway, &event.payload).await?,
        )
    }))
    .await
}
