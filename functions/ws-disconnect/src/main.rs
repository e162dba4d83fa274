//! The WebSocket API's `$disconnect` route: the connection, its watches and (for a user's last
//! connection) presence go (`shared::realtime::aws::on_disconnect`).

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let chat = shared::environment::lambda_chat().await?;
    let chat = &chat;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<Value, lambda_runtime::Error>(
            shared::realtime::aws::on_disconnect(chat, &event.payload).await?,
        )
    }))
    .await
}
