//! Building the product from a Lambda function's environment: the DynamoDB store named by
//! `TABLE_PREFIX`, the app's credentials, the export files' bucket (`FILES_BUCKET`) and the
//! optional translator (`CHAT_TRANSLATOR`).

use crate::domain::clock::SystemClock;
use crate::service::{AppKeys, Chat, TaskMode};
use crate::store::dynamodb::DynamoDb;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum EnvironmentError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Api(#[from] crate::domain::ApiError),
    #[error("{0}")]
    Invalid(String),
}

fn required(name: &'static str) -> Result<String, EnvironmentError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(EnvironmentError::Missing(name))
}

/// The AWS configuration of this process (region, credentials, `AWS_ENDPOINT_URL*`), loaded
/// once and shared by every client (DynamoDB, the Management API, SQS, Translate).
async fn aws() -> &'static aws_config::SdkConfig {
    static CONFIG: tokio::sync::OnceCell<aws_config::SdkConfig> =
        tokio::sync::OnceCell::const_new();
    CONFIG.get_or_init(aws_config::load_from_env).await
}

/// The product for a Lambda function: DynamoDB tables `<TABLE_PREFIX><name>`, credentials from
/// `CHAT_API_KEY` / `CHAT_API_SECRET`, async tasks run before the invocation returns.
pub async fn chat_from_env() -> Result<Chat, EnvironmentError> {
    let prefix = std::env::var("TABLE_PREFIX").unwrap_or_else(|_| "chat-".into());
    let keys = AppKeys {
        api_key: required("CHAT_API_KEY")?,
        api_secret: required("CHAT_API_SECRET")?,
    };
    let store = DynamoDb::from_config(aws().await, prefix);
    let mut chat = Chat::new(
        Arc::new(store),
        Arc::new(SystemClock),
        keys,
        TaskMode::Inline,
    );
    // FILES_BUCKET: export files and uploads go to this S3 bucket (exports and uploads answer
    // an error without it).
    if let Some(bucket) = std::env::var("FILES_BUCKET").ok().filter(|v| !v.is_empty()) {
        chat = chat.with_files(Arc::new(crate::files::s3::S3Files::from_config(
            aws().await,
            &bucket,
        )));
    }
    chat = chat.with_campaign_limits(
        crate::service::campaigns::CampaignLimits::from_env().map_err(EnvironmentError::Invalid)?,
    );
    // CAMPAIGN_QUEUE_URL: campaign fan-out jobs go to this SQS queue (starting a campaign
    // answers an error without it).
    if let Some(url) = std::env::var("CAMPAIGN_QUEUE_URL")
        .ok()
        .filter(|v| !v.is_empty())
    {
        let client = aws_sdk_sqs::Client::new(aws().await);
        chat = chat.with_campaign_queue(Arc::new(
            crate::service::campaigns::SqsCampaignQueue::new(client, url),
        ));
    }
    // CHAT_PUBLIC_URL: the API's address for links to uploads (a custom domain); without it,
    // the address API Gateway was called at.
    if let Some(url) = std::env::var("CHAT_PUBLIC_URL")
        .ok()
        .filter(|v| !v.is_empty())
    {
        chat = chat.with_public_url(&url);
    }
    let chat = with_previews_from_env(chat)?;
    Ok(with_translator_from_env(with_gifs_from_env(chat)?).await)
}

/// Link previews from the web (`CHAT_URL_PREVIEW_ALLOW` lists internal addresses they may
/// reach, for tests).
pub fn with_previews_from_env(chat: Chat) -> Result<Chat, EnvironmentError> {
    let previews = crate::previews::WebPreviews::from_env().map_err(EnvironmentError::Invalid)?;
    Ok(chat.with_previews(Arc::new(previews)))
}

/// `GIPHY_API_KEY` makes `/giphy` search Giphy (`GIPHY_API_URL` to point elsewhere,
/// `GIPHY_RATING`, `g` by default); without it GIFs are made locally.
pub fn with_gifs_from_env(chat: Chat) -> Result<Chat, EnvironmentError> {
    let Some(key) = std::env::var("GIPHY_API_KEY")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        return Ok(chat);
    };
    let url = std::env::var("GIPHY_API_URL").unwrap_or_else(|_| "https://api.giphy.com".into());
    let rating = std::env::var("GIPHY_RATING").unwrap_or_else(|_| "g".into());
    let giphy = crate::gifs::GiphyApi::new(&key, &url, &rating)
        .map_err(|e| EnvironmentError::Invalid(e.to_string()))?;
    Ok(chat.with_gifs(Arc::new(giphy)))
}

/// `CHAT_TRANSLATOR=amazon` turns on message translation with Amazon Translate.
pub async fn with_translator_from_env(chat: Chat) -> Chat {
    match std::env::var("CHAT_TRANSLATOR").ok().as_deref() {
        Some("amazon") => chat.with_translator(Arc::new(
            crate::translate::AmazonTranslate::from_config(aws().await),
        )),
        _ => chat,
    }
}

/// The API Gateway Management API client for the WebSocket API's callback URL (`WS_ENDPOINT`).
pub async fn gateway_from_env(
) -> Result<crate::realtime::apigw::ApiGatewayManagement, EnvironmentError> {
    let endpoint = required("WS_ENDPOINT")?;
    Ok(crate::realtime::apigw::ApiGatewayManagement::from_config(
        aws().await,
        &endpoint,
    ))
}

/// The fan-out worker of a Lambda function: the API Gateway Management API gateway, the SQS
/// FIFO queue large audiences are split to (`FANOUT_QUEUE_URL`, optional; audiences above
/// `FANOUT_INLINE_AUDIENCE` connections, 200 by default) and message throttling
/// (`CHAT_MESSAGE_THROTTLE=off` turns it off).
pub async fn delivery_from_env() -> Result<crate::realtime::delivery::Delivery, EnvironmentError> {
    let gateway = Arc::new(gateway_from_env().await?);
    let mut delivery = crate::realtime::delivery::Delivery::new(gateway).throttling_from_env();
    if let Some(url) = std::env::var("FANOUT_QUEUE_URL")
        .ok()
        .filter(|v| !v.is_empty())
    {
        let inline = std::env::var("FANOUT_INLINE_AUDIENCE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(crate::realtime::delivery::INLINE_AUDIENCE);
        delivery = delivery.with_queue(
            Arc::new(crate::realtime::sqs::SqsFanoutQueue::from_config(
                aws().await,
                &url,
            )),
            inline,
        );
    }
    Ok(delivery)
}

/// What every Lambda function does first: JSON logs for CloudWatch, the product from the
/// environment, its built-in data in place.
pub async fn lambda_chat() -> Result<Chat, EnvironmentError> {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_target(false)
        .without_time()
        .try_init();
    let chat = chat_from_env().await?;
    chat.bootstrap().await?;
    Ok(chat)
}
