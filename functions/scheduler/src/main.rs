//! The scheduler function: every minute (EventBridge) it fires the timers already due and puts
//! the ones due within the minute on its SQS queue with the delay left; the queue brings each
//! back when it is due, to the second (`Chat::on_scheduler_event`). Idle, it reads one empty
//! index range per shard a minute.

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use shared::service::timers::SqsDelayQueue;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let chat = shared::environment::lambda_chat().await?;
    let queue_url = std::env::var("TIMER_QUEUE_URL")
        .map_err(|_| "TIMER_QUEUE_URL is not set: the scheduler needs its queue")?;
    let config = aws_config::load_from_env().await;
    let queue = SqsDelayQueue::new(aws_sdk_sqs::Client::new(&config), queue_url);
    let (chat, queue) = (&chat, &queue);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<Value, lambda_runtime::Error>(chat.on_scheduler_event(queue, &event.payload).await?)
    }))
    .await
}
