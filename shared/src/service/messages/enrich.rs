//! URL enrichment: a new message's first link (where the channel type has `url_enrichment`)
//! gets a preview attachment, before the message is stored, or after it with
//! `message.updated` when the app has `async_url_enrich_enabled`; `skip_enrich_url` and a
//! message that already carries a preview (`og_scrape_url`, as the UI kits send) skip it.
//! `GET /og?url=` answers a link's preview.

use crate::domain::caller::Session;
use crate::domain::message::Message;
use crate::domain::ApiError;
use crate::previews::PreviewError;
use crate::service::{Chat, TaskMode};
use serde_json::{Map, Value};

impl Chat {
    /// The link of `message` to preview, if it wants one.
    pub(crate) fn link_to_enrich(&self, message: &Message, skip: bool) -> Option<String> {
        if skip
            || self.previews.is_none()
            || message
                .attachments
                .iter()
                .any(|a| a.get("og_scrape_url").is_some())
        {
            return None;
        }
        message.enrich_url.clone()
    }

    async fn preview_of(&self, url: &str) -> Result<Map<String, Value>, PreviewError> {
        match &self.previews {
            Some(p) => p.preview(url).await,
            None => Err(PreviewError::Unavailable(
                "link previews are not configured".into(),
            )),
        }
    }

    /// Before the message is stored: its preview attached (a link without one is left as is).
    pub(crate) async fn enrich_now(&self, message: &mut Message, url: &str) {
        match self.preview_of(url).await {
            Ok(preview) => message.attachments.push(Value::Object(preview)),
            Err(e) => tracing::info!(error = %e, "no preview for a message's link"),
        }
    }

    /// After the message is stored (`async_url_enrich_enabled`): its preview added by an update
    /// (`message.updated`), in the background where the process outlives the request.
    pub(crate) async fn enrich_later(&self, message_id: String, url: String) {
        let chat = self.clone();
        let work = async move {
            let preview = match chat.preview_of(&url).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::info!(error = %e, "no preview for a message's link");
                    return;
                }
            };
            // Added under the message's version; a concurrent change is read again.
            for attempt in 1..=5u32 {
                let Ok(stored) = chat.require_message(&message_id).await else {
                    return;
                };
                let Ok(loaded) = chat.require_channel(&stored.message.cid).await else {
                    return;
                };
                // The text moved on to another link, or the preview is there already.
                let previewed = stored
                    .message
                    .attachments
                    .iter()
                    .any(|a| a.get("og_scrape_url").and_then(Value::as_str) == Some(&url));
                if stored.message.enrich_url.as_deref() != Some(url.as_str()) || previewed {
                    return;
                }
                let mut next = stored.message.clone();
                next.attachments.push(Value::Object(preview.clone()));
                match chat
                    .save_message(&stored, &next, &loaded.channel, "message.updated", &[])
                    .await
                {
                    Ok(_) => return,
                    Err(e) if attempt < 5 && e.code == crate::domain::ErrorCode::Input => {
                        tokio::time::sleep(std::time::Duration::from_millis(20 * attempt as u64))
                            .await
                    }
                    Err(e) => {
                        tracing::warn!(error = %e.message, "a link preview could not be added");
                        return;
                    }
                }
            }
        };
        match self.task_mode {
            TaskMode::Background => {
                tokio::spawn(work);
            }
            TaskMode::Inline => work.await,
        }
    }

    /// After an edit of the text (unless `skip`, as the UI kits send when they manage previews
    /// themselves): previews of links no longer its first go, and the new first link is
    /// previewed now, or returned to preview after the update in async mode.
    pub(crate) async fn follow_first_link(
        &self,
        session: &Session,
        enrichment: bool,
        before: &Message,
        next: &mut Message,
        skip: bool,
    ) -> Option<String> {
        if skip || next.text == before.text {
            return None;
        }
        next.enrich_url = if enrichment {
            crate::domain::message::first_url(&next.text)
        } else {
            None
        };
        let keep = next.enrich_url.clone();
        next.attachments
            .retain(|a| match a.get("og_scrape_url").and_then(Value::as_str) {
                Some(u) => Some(u) == keep.as_deref(),
                None => true,
            });
        let url = self.link_to_enrich(next, false)?;
        if session.settings.async_url_enrich_enabled {
            return Some(url);
        }
        self.enrich_now(next, &url).await;
        None
    }

    /// `GET /og?url=`: the preview of a link.
    pub async fn link_preview(&self, session: &Session, url: &str) -> Result<Value, ApiError> {
        if matches!(session.caller, crate::domain::caller::Caller::Anonymous) {
            return Err(ApiError::not_allowed(
                "anonymous users may not preview links",
            ));
        }
        if url.is_empty() {
            return Err(ApiError::field("url", "url is required"));
        }
        if url.len() > crate::previews::MAX_URL_LEN {
            return Err(ApiError::field(
                "url",
                format!(
                    "url is longer than {} characters",
                    crate::previews::MAX_URL_LEN
                ),
            ));
        }
        match self.preview_of(url).await {
            Ok(preview) => Ok(Value::Object(preview)),
            Err(PreviewError::Refused(why)) => Err(ApiError::field("url", why)),
            Err(PreviewError::Unavailable(why)) => {
                Err(ApiError::input(format!("no preview for this link: {why}")))
            }
        }
    }
}
