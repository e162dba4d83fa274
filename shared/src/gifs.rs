//! Finding a GIF for `/giphy`: one port, [`GifSearch`], with two adapters. [`GiphyApi`] asks
//! Giphy's search API (`GIPHY_API_KEY`); [`LocalGifs`] answers without any network, the same
//! GIF for the same query and position every time (a one-pixel GIF of a colour derived from
//! them, as a `data:` URL), for development, tests and deployments without a Giphy key.

use async_trait::async_trait;
use base64::Engine;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use serde_json::{json, Value};
use std::time::Duration;

/// The renditions Stream's giphy attachments carry (stream-chat-js `GiphyVersions`).
pub const RENDITIONS: &[&str] = &[
    "original",
    "fixed_height",
    "fixed_height_still",
    "fixed_height_downsampled",
    "fixed_width",
    "fixed_width_still",
    "fixed_width_downsampled",
];

/// One GIF: its page, its title and each rendition (`url`, `width`, `height`).
#[derive(Clone, Debug, PartialEq)]
pub struct Gif {
    pub page_url: String,
    pub title: String,
    pub renditions: serde_json::Map<String, Value>,
}

impl Gif {
    fn rendition_url(&self, name: &str) -> String {
        self.renditions
            .get(name)
            .and_then(|r| r.get("url"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    /// The attachment of a `/giphy` message (stream-chat-js `Attachment` with `giphy`).
    pub fn attachment(&self, query: &str) -> Value {
        json!({
            "type": "giphy",
            "title": query,
            "title_link": self.page_url,
            "thumb_url": self.rendition_url("fixed_height"),
            "image_url": self.rendition_url("fixed_height"),
            "giphy": self.renditions,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GifError {
    #[error("the GIF search is unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait GifSearch: Send + Sync {
    /// The GIF at `position` (from 0) among those matching `query`, if there is one.
    async fn find(&self, query: &str, position: u32) -> Result<Option<Gif>, GifError>;
}

/// GIFs made here: the same query and position give the same GIF.
#[derive(Default)]
pub struct LocalGifs;

/// A 1×1 GIF89a of one colour.
fn one_pixel_gif(rgb: [u8; 3]) -> Vec<u8> {
    let mut gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00".to_vec();
    gif.extend(rgb);
    gif.extend([0, 0, 0]);
    gif.extend(b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;");
    gif
}

#[async_trait]
impl GifSearch for LocalGifs {
    async fn find(&self, query: &str, position: u32) -> Result<Option<Gif>, GifError> {
        // FNV-1a of query and position: a stable colour per result.
        let hash = format!("{query}\n{position}")
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        let rgb = [(hash >> 16) as u8, (hash >> 8) as u8, hash as u8];
        let url = format!(
            "data:image/gif;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(one_pixel_gif(rgb))
        );
        let mut renditions = serde_json::Map::new();
        for name in RENDITIONS {
            renditions.insert(
                (*name).into(),
                json!({"url": url, "width": "200", "height": "200"}),
            );
        }
        Ok(Some(Gif {
            page_url: format!("https://giphy.com/search/{}", query.replace(' ', "-")),
            title: query.to_string(),
            renditions,
        }))
    }
}

/// Giphy's search API.
pub struct GiphyApi {
    key: String,
    base_url: String,
    rating: String,
    client: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        Empty<Bytes>,
    >,
}

/// How long a search may take before `/giphy` answers that it is unavailable.
const SEARCH_TIMEOUT: Duration = Duration::from_secs(5);

impl GiphyApi {
    /// `base_url` is `https://api.giphy.com` (another for tests); `rating` as Giphy names them
    /// (`g`, `pg`, `pg-13`, `r`).
    pub fn new(key: &str, base_url: &str, rating: &str) -> Result<GiphyApi, GifError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| GifError::Unavailable(format!("no TLS root certificates: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(GiphyApi {
            key: key.to_string(),
            base_url: base_url.trim_end_matches('/').to_string(),
            rating: rating.to_string(),
            client: hyper_util::client::legacy::Client::builder(
                hyper_util::rt::TokioExecutor::new(),
            )
            .build(https),
        })
    }
}

#[async_trait]
impl GifSearch for GiphyApi {
    async fn find(&self, query: &str, position: u32) -> Result<Option<Gif>, GifError> {
        let encode = crate::realtime::sigv4::uri_encode;
        let url = format!(
            "{}/v1/gifs/search?api_key={}&q={}&limit=1&offset={position}&rating={}",
            self.base_url,
            encode(&self.key),
            encode(query),
            encode(&self.rating)
        );
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| GifError::Unavailable(format!("bad Giphy URL: {e}")))?;
        let unavailable = |e: String| GifError::Unavailable(e);
        let response = tokio::time::timeout(SEARCH_TIMEOUT, self.client.get(uri))
            .await
            .map_err(|_| unavailable("Giphy did not answer in time".into()))?
            .map_err(|e| unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("Giphy answered {}", response.status())));
        }
        let body = tokio::time::timeout(SEARCH_TIMEOUT, response.into_body().collect())
            .await
            .map_err(|_| unavailable("Giphy did not answer in time".into()))?
            .map_err(|e| unavailable(e.to_string()))?
            .to_bytes();
        let doc: Value =
            serde_json::from_slice(&body).map_err(|e| unavailable(format!("bad answer: {e}")))?;
        let Some(found) = doc["data"].as_array().and_then(|d| d.first()) else {
            return Ok(None);
        };
        let mut renditions = serde_json::Map::new();
        for name in RENDITIONS {
            let r = &found["images"][*name];
            if let Some(url) = r["url"].as_str() {
                renditions.insert(
                    (*name).into(),
                    json!({"url": url, "width": r["width"], "height": r["height"]}),
                );
            }
        }
        Ok(Some(Gif {
            page_url: found["url"].as_str().unwrap_or_default().to_string(),
            title: found["title"].as_str().unwrap_or(query).to_string(),
            renditions,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_gifs_are_the_same_for_the_same_query_and_position() {
        let a = LocalGifs.find("cat", 0).await.unwrap().unwrap();
        let b = LocalGifs.find("cat", 0).await.unwrap().unwrap();
        let c = LocalGifs.find("cat", 1).await.unwrap().unwrap();
        assert_eq!(a, b);
        assert_ne!(a.renditions, c.renditions);
        let attachment = a.attachment("cat");
        assert_eq!(attachment["type"], "giphy");
        assert!(attachment["image_url"]
            .as_str()
            .unwrap()
            .starts_with("data:image/gif;base64,R0lGODlh"));
        assert_eq!(
            attachment["giphy"].as_object().unwrap().len(),
            RENDITIONS.len()
        );
    }
}
