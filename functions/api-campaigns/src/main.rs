//! Lambda entry point: build the product from the environment and serve the router.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let chat = shared::environment::lambda_chat().await?;
    lambda_http::run(api_campaigns::router(chat)).await
}
