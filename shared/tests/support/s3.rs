//! S3 buckets on the shared moto server, as the functions' file store.

use super::moto::Moto;
use shared::files::s3::S3Files;

/// A new bucket named `name` on `moto`.
pub async fn bucket(moto: &Moto, name: &str) -> S3Files {
    let config = moto.sdk_config();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket(name)
        .send()
        .await
        .expect("bucket on moto");
    S3Files::from_config(&config, name)
}
