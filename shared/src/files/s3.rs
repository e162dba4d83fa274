//! Files in an Amazon S3 bucket (`FILES_BUCKET` in the Lambda functions), downloaded through
//! presigned `GetObject` URLs (the API's file links redirect there). The bucket stays private;
//! its lifecycle rules (the template's) remove old export files.

use super::{FileError, FilePath, FileStore};
use async_trait::async_trait;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use std::time::Duration;

pub struct S3Files {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Files {
    pub fn new(client: aws_sdk_s3::Client, bucket: &str) -> S3Files {
        S3Files {
            client,
            bucket: bucket.to_string(),
        }
    }

    /// A client from the process's AWS configuration; with an endpoint override (an emulator
    /// such as moto) buckets are addressed by path, as such endpoints have no bucket hostnames.
    pub fn from_config(config: &aws_config::SdkConfig, bucket: &str) -> S3Files {
        let mut s3 = aws_sdk_s3::config::Builder::from(config);
        if config.endpoint_url().is_some() {
            s3 = s3.force_path_style(true);
        }
        S3Files::new(aws_sdk_s3::Client::from_conf(s3.build()), bucket)
    }
}

fn unavailable(e: impl std::fmt::Display) -> FileError {
    FileError::Unavailable(e.to_string())
}

#[async_trait]
impl FileStore for S3Files {
    async fn put(&self, path: &FilePath, body: Vec<u8>) -> Result<(), FileError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(path.as_str())
            .content_type(path.content_type())
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    async fn url(&self, path: &FilePath, valid_for: Duration) -> Result<String, FileError> {
        let presigning = PresigningConfig::expires_in(valid_for).map_err(unavailable)?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(path.as_str())
            .presigned(presigning)
            .await
            .map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(request.uri().to_string())
    }

    async fn get(&self, path: &FilePath) -> Result<Option<Vec<u8>>, FileError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(path.as_str())
            .send()
            .await
        {
            Ok(out) => {
                let body = out.body.collect().await.map_err(unavailable)?;
                Ok(Some(body.into_bytes().to_vec()))
            }
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
            Err(e) => Err(unavailable(aws_sdk_s3::error::DisplayErrorContext(e))),
        }
    }

    async fn delete(&self, path: &FilePath) -> Result<(), FileError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(path.as_str())
            .send()
            .await
            .map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    async fn upload_url(
        &self,
        path: &FilePath,
        content_type: &str,
        size: u64,
        valid_for: Duration,
    ) -> Result<Option<String>, FileError> {
        let presigning = PresigningConfig::expires_in(valid_for).map_err(unavailable)?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(path.as_str())
            .content_type(content_type)
            .content_length(size as i64)
            .presigned(presigning)
            .await
            .map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(Some(request.uri().to_string()))
    }

    fn serves_its_urls(&self) -> bool {
        true
    }
}
