//! App settings use cases: read them (kept decoded for a moment, see `config_cache`) and
//! update them.

use super::{to_doc, Chat};
use crate::domain::app_settings::AppSettings;
use crate::domain::caller::Session;
use crate::domain::ApiError;
use crate::store::layout::app_settings_key;
use crate::store::{Condition, Item, StoreError, TableName, Write};
use serde_json::{Map, Value};

impl Chat {
    /// The settings (the defaults before the first update), as the request path reads them:
    /// decoded at most a second ago (see `config_cache`).
    pub async fn app_settings(&self) -> Result<std::sync::Arc<AppSettings>, ApiError> {
        if let Some(settings) = self.config.settings() {
            return Ok(settings);
        }
        let settings = std::sync::Arc::new(
            self.load::<AppSettings>(TableName::App, app_settings_key())
                .await?
                .map(|(s, _)| s)
                .unwrap_or_default(),
        );
        self.config.keep_settings(&settings);
        Ok(settings)
    }

    pub async fn update_app_settings(
        &self,
        session: &Session,
        body: &Map<String, Value>,
    ) -> Result<AppSettings, ApiError> {
        let caller = &session.caller;
        caller.require_server("updating app settings")?;
        // Optimistic concurrency: retry when another writer got in between.
        for _ in 0..5 {
            let stored = self
                .load::<AppSettings>(TableName::App, app_settings_key())
                .await?;
            let (mut settings, condition, version) = match stored {
                Some((s, item)) => (s, Condition::Version(item.version), item.version + 1),
                None => (AppSettings::default(), Condition::NotExists, 1),
            };
            settings.apply_update(body, self.now())?;
            let (pk, sk) = app_settings_key();
            let mut item = Item::new(pk, sk, to_doc(&settings)?);
            item.version = version;
            match self
                .store
                .write(Write::Put {
                    table: TableName::App,
                    item,
                    condition,
                })
                .await
            {
                Ok(()) => {
                    self.config.clear();
                    return Ok(settings);
                }
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::internal(
            "app settings are being changed concurrently; try again",
        ))
    }
}
