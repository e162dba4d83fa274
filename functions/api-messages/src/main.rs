//! Lambda entry point: build the product from the environment and serve the router.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_target(false)
        .without_time()
        .init();
    let chat = shared::environment::chat_from_env().await?;
    chat.bootstrap().await?;
    lambda_http::run(api_messages::router(chat)).await
}
