//! The Translator port (message text into another language) and its Amazon Translate adapter.
//! Translation is optional: without a translator, the translate endpoint says so.

use async_trait::async_trait;

/// A translated text and the language it was translated from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Translated {
    pub text: String,
    pub source_language: String,
}

#[derive(Debug, thiserror::Error)]
#[error("translation failed: {0}")]
pub struct TranslateError(pub String);

#[async_trait]
pub trait Translator: Send + Sync {
    /// `text` into `target` (a language code of the seed's list); `source` when known, else the
    /// service detects it.
    async fn translate(
        &self,
        text: &str,
        source: Option<&str>,
        target: &str,
    ) -> Result<Translated, TranslateError>;
}

/// Amazon Translate (`TranslateText`), configured from the environment (region, credentials,
/// `AWS_ENDPOINT_URL_TRANSLATE`).
pub struct AmazonTranslate {
    client: aws_sdk_translate::Client,
}

impl AmazonTranslate {
    pub fn new(client: aws_sdk_translate::Client) -> Self {
        AmazonTranslate { client }
    }

    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        Self::new(aws_sdk_translate::Client::new(config))
    }
}

#[async_trait]
impl Translator for AmazonTranslate {
    async fn translate(
        &self,
        text: &str,
        source: Option<&str>,
        target: &str,
    ) -> Result<Translated, TranslateError> {
        let out = self
            .client
            .translate_text()
            .text(text)
            .source_language_code(source.unwrap_or("auto"))
            .target_language_code(target)
            .send()
            .await
            .map_err(|e| {
                TranslateError(aws_sdk_translate::error::DisplayErrorContext(e).to_string())
            })?;
        Ok(Translated {
            text: out.translated_text().to_string(),
            source_language: out.source_language_code().to_string(),
        })
    }
}

/// The seed's "Available Languages" codes.
pub const LANGUAGES: &[&str] = &[
    "af", "sq", "am", "ar", "az", "bn", "bs", "bg", "zh", "zh-TW", "hr", "cs", "da", "fa-AF", "nl",
    "en", "et", "fi", "fr", "fr-CA", "ka", "de", "el", "ht", "ha", "he", "hi", "hu", "id", "it",
    "ja", "ko", "lv", "lt", "ms", "no", "fa", "ps", "pl", "pt", "ro", "ru", "sr", "sk", "sl", "so",
    "es", "es-MX", "sw", "sv", "tl", "ta", "th", "tr", "uk", "ur", "vi",
];

/// Messages longer than this are not translated (seed: up to 5,000 characters).
pub const MAX_TRANSLATED_CHARS: usize = 5000;
