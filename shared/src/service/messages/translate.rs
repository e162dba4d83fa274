//! Translating messages: on request (`i18n`) and automatically per channel or app.

use crate::domain::caller::Session;
use crate::domain::message::Message;
use crate::domain::ApiError;
use crate::service::channel_record::Loaded;
use crate::service::Chat;
use serde_json::{json, Value};

impl Chat {
    /// `POST /messages/{id}/translate`: the text in `language`, kept in `i18n`; `message.updated`.
    pub async fn translate_message(
        &self,
        session: &Session,
        id: &str,
        language: &str,
    ) -> Result<Value, ApiError> {
        use crate::translate::{LANGUAGES, MAX_TRANSLATED_CHARS};
        if !LANGUAGES.contains(&language) {
            return Err(ApiError::field(
                "language",
                format!("language {language:?} is not one of the supported languages"),
            ));
        }
        let translator = self.translator.clone().ok_or_else(|| ApiError::input("message translation is not configured on this deployment (set CHAT_TRANSLATOR=amazon)"))?;
        let stored = self.require_message(id).await?;
        let (_, loaded) = self.message_channel(session, &stored.message).await?;
        let m = &stored.message;
        if m.text.chars().count() > MAX_TRANSLATED_CHARS {
            return Err(ApiError::input(format!(
                "only messages up to {MAX_TRANSLATED_CHARS} characters are translated"
            )));
        }
        let source = m
            .i18n
            .get("language")
            .and_then(Value::as_str)
            .map(str::to_string);
        let translated = translator
            .translate(&m.text, source.as_deref(), language)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let mut next = m.clone();
        next.add_translation(&translated.source_language, language, translated.text);
        let wire = self
            .save_message(&stored, &next, &loaded.channel, "message.updated", &[])
            .await?;
        Ok(json!({ "message": wire }))
    }

    /// Automatic translation of a new or edited message, when the channel or the app has it on:
    /// into the channel's `auto_translation_language`, or else the most common language of the
    /// other members. A failed translation never stops the message.
    pub(crate) async fn auto_translate(&self, session: &Session, loaded: &Loaded, m: &mut Message) {
        let Some(translator) = self.translator.clone() else {
            return;
        };
        let on =
            loaded.channel.auto_translation_enabled || session.settings.auto_translation_enabled;
        if !on
            || m.text.is_empty()
            || m.text.chars().count() > crate::translate::MAX_TRANSLATED_CHARS
            || !matches!(m.kind.as_str(), "regular" | "reply")
        {
            return;
        }
        // The other members' languages decide when the channel names none (a send's channel
        // carries only its author's member item, so the members are read here).
        let members = match &loaded.channel.auto_translation_language {
            Some(_) => Vec::new(),
            None => match self.load_channel(&loaded.channel.cid).await {
                Ok(Some(all)) => all.members,
                _ => return,
            },
        };
        let ids: Vec<&str> = members
            .iter()
            .map(|x| x.user_id.as_str())
            .chain(m.user_id.as_deref())
            .collect();
        let Ok(users) = self.users_by_id(&ids).await else {
            return;
        };
        let sender_language = m
            .user_id
            .as_deref()
            .and_then(|u| users.get(u))
            .map(|(u, _)| u.language.clone())
            .filter(|l| !l.is_empty());
        let target = match &loaded.channel.auto_translation_language {
            Some(l) => Some(l.clone()),
            None => {
                let mut counts: std::collections::BTreeMap<String, usize> =
                    std::collections::BTreeMap::new();
                for member in &members {
                    if Some(member.user_id.as_str()) == m.user_id.as_deref() {
                        continue;
                    }
                    if let Some((u, _)) = users.get(&member.user_id) {
                        if !u.language.is_empty() && Some(&u.language) != sender_language.as_ref() {
                            *counts.entry(u.language.clone()).or_default() += 1;
                        }
                    }
                }
                counts.into_iter().max_by_key(|(_, n)| *n).map(|(l, _)| l)
            }
        };
        let Some(target) = target.filter(|t| Some(t) != sender_language.as_ref()) else {
            return;
        };
        match translator
            .translate(&m.text, sender_language.as_deref(), &target)
            .await
        {
            Ok(t) => m.add_translation(&t.source_language, &target, t.text),
            Err(e) => tracing::warn!(message = %m.id, error = %e, "automatic translation failed"),
        }
    }
}
