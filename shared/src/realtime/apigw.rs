//! The gateway in AWS: `PostToConnection` of the API Gateway Management API; a connection API
//! Gateway reports gone (`GoneException`) is removed by the caller.

use super::{Gateway, GatewayError};
use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::primitives::Blob;

pub struct ApiGatewayManagement {
    client: aws_sdk_apigatewaymanagement::Client,
}

impl ApiGatewayManagement {
    pub fn new(client: aws_sdk_apigatewaymanagement::Client) -> Self {
        ApiGatewayManagement { client }
    }

    /// A client for the WebSocket API's callback URL (`https://{api}.execute-api.{region}.
    /// amazonaws.com/{stage}`).
    pub fn from_config(config: &aws_config::SdkConfig, endpoint: &str) -> Self {
        let conf = aws_sdk_apigatewaymanagement::config::Builder::from(config)
            .endpoint_url(endpoint)
            .build();
        Self::new(aws_sdk_apigatewaymanagement::Client::from_conf(conf))
    }
}

#[async_trait]
impl Gateway for ApiGatewayManagement {
    async fn post(&self, connection_id: &str, frame: &str) -> Result<(), GatewayError> {
        match self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(frame.as_bytes().to_vec()))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                if e.as_service_error().is_some_and(|s| s.is_gone_exception()) {
                    Err(GatewayError::Gone)
                } else {
                    Err(GatewayError::Other(
                        aws_sdk_apigatewaymanagement::error::DisplayErrorContext(e).to_string(),
                    ))
                }
            }
        }
    }

    async fn close(&self, connection_id: &str) -> Result<(), GatewayError> {
        match self
            .client
            .delete_connection()
            .connection_id(connection_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_gone_exception()) => Ok(()),
            Err(e) => Err(GatewayError::Other(
                aws_sdk_apigatewaymanagement::error::DisplayErrorContext(e).to_string(),
            )),
        }
    }
}
