//! The app's push providers: `POST /push_providers` (upsert), `GET /push_providers`, `DELETE
//! /push_providers/{type}/{name}` (server-side only), the legacy configs of the app settings
//! beside them, and `push_notifications` as `GET /app` reads them back (no secret).

use crate::domain::app_settings::AppSettings;
use crate::domain::caller::Session;
use crate::domain::device::PushService;
use crate::domain::push_provider::{
    self, ApnConfig, FirebaseConfig, PushConfig, PushProvider, MAX_PROVIDERS,
};
use crate::domain::ApiError;
use crate::service::{contention_pause, Chat, CONTENDED_ATTEMPTS};
use crate::store::{query_all, Condition, Item, Query, TableName, Write};
use serde_json::{json, Value};

/// The partition of the named providers in the app table (sort key `<type>:<name>`).
const PROVIDERS_PK: &str = "push_providers";

fn provider_sk(kind: &str, name: &str) -> String {
    format!("{kind}:{name}")
}

/// The push settings of the app: the legacy configs and the named providers.
pub struct PushSettings {
    pub config: PushConfig,
    /// Enabled legacy configs (name empty) first, then the named providers.
    pub providers: Vec<PushProvider>,
}

impl PushSettings {
    /// The provider a device goes through: the one it names, or else one of its type (the
    /// legacy config first, as Stream matches devices without a name by type).
    pub fn for_device(&self, service: PushService, name: Option<&str>) -> Option<&PushProvider> {
        let of_type = |p: &&PushProvider| p.kind == service.as_str() && !p.is_disabled();
        match name.filter(|n| !n.is_empty()) {
            Some(n) => self.providers.iter().filter(of_type).find(|p| p.name == n),
            None => self.providers.iter().find(of_type),
        }
    }
}

fn legacy<T: serde::de::DeserializeOwned + Default>(v: &Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

impl Chat {
    async fn named_providers(&self) -> Result<Vec<PushProvider>, ApiError> {
        Ok(query_all(
            self.store.as_ref(),
            Query::new(TableName::App, PROVIDERS_PK),
        )
        .await?
        .into_iter()
        .filter_map(|i| serde_json::from_value(i.data).ok())
        .collect())
    }

    /// The named providers as the API shows them (no secret).
    async fn providers_wire(&self) -> Result<Vec<Value>, ApiError> {
        Ok(self
            .named_providers()
            .await?
            .iter()
            .map(PushProvider::to_wire)
            .collect())
    }

    /// The app's push settings, for delivery.
    pub async fn push_settings(&self, settings: &AppSettings) -> Result<PushSettings, ApiError> {
        let mut providers: Vec<PushProvider> = [
            legacy::<ApnConfig>(&settings.apn_config).provider(),
            legacy::<FirebaseConfig>(&settings.firebase_config).provider(),
        ]
        .into_iter()
        .flatten()
        .collect();
        providers.extend(self.named_providers().await?);
        Ok(PushSettings {
            config: legacy(&settings.push_config),
            providers,
        })
    }

    /// `push_notifications` of `GET /app`.
    pub async fn push_notifications_wire(&self, settings: &AppSettings) -> Result<Value, ApiError> {
        let config: PushConfig = legacy(&settings.push_config);
        let enabled = |v: &Value| json!({"enabled": v["enabled"].as_bool().unwrap_or(false)});
        let providers = self.providers_wire().await?;
        Ok(json!({
            "version": config.version,
            "offline_only": config.offline_only,
            "apn": legacy::<ApnConfig>(&settings.apn_config).to_wire(),
            "firebase": enabled(&settings.firebase_config),
            "huawei": enabled(&settings.huawei_config),
            "xiaomi": enabled(&settings.xiaomi_config),
            "providers": providers,
        }))
    }

    /// `POST /push_providers`: creates or replaces a named provider (25 at most).
    pub async fn upsert_push_provider(
        &self,
        session: &Session,
        body: Option<Value>,
    ) -> Result<Value, ApiError> {
        session.caller.require_server("managing push providers")?;
        let body = body
            .filter(Value::is_object)
            .ok_or_else(|| ApiError::field("push_provider", "push_provider is required"))?;
        let mut provider = push_provider::from_request(&body, &self.now_str())?;
        let sk = provider_sk(&provider.kind, &provider.name);
        // A replacement keeps the creation time; both are written on the version read.
        for attempt in 1..=CONTENDED_ATTEMPTS {
            let stored = self.store.get(TableName::App, PROVIDERS_PK, &sk).await?;
            let version = stored.as_ref().map_or(0, |i| i.version);
            match stored.and_then(|i| serde_json::from_value::<PushProvider>(i.data).ok()) {
                Some(before) => provider.created_at = before.created_at,
                None if self.named_providers().await?.len() >= MAX_PROVIDERS => {
                    return Err(ApiError::input(format!(
                        "an app has at most {MAX_PROVIDERS} push providers"
                    )))
                }
                None => {}
            }
            let data =
                serde_json::to_value(&provider).map_err(|e| ApiError::internal(e.to_string()))?;
            let item = Item::new(PROVIDERS_PK, sk.clone(), data);
            match self
                .store
                .write(Write::put_read_at(TableName::App, item, version))
                .await
            {
                Ok(()) => return Ok(json!({ "push_provider": provider.to_wire() })),
                Err(crate::store::StoreError::ConditionFailed) => contention_pause(attempt).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::internal(
            "the push provider kept changing; try again",
        ))
    }

    /// `GET /push_providers`.
    pub async fn list_push_providers(&self, session: &Session) -> Result<Value, ApiError> {
        session.caller.require_server("listing push providers")?;
        let providers = self.providers_wire().await?;
        Ok(json!({ "push_providers": providers }))
    }

    /// `DELETE /push_providers/{type}/{name}`.
    pub async fn delete_push_provider(
        &self,
        session: &Session,
        kind: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        session.caller.require_server("deleting push providers")?;
        PushService::parse(kind).map_err(|_| {
            ApiError::field("type", "type must be one of apn, firebase, huawei, xiaomi")
        })?;
        if name.is_empty() || name.chars().count() > crate::domain::device::MAX_PROVIDER_NAME_LEN {
            return Err(ApiError::field("name", "name must be 1 to 36 characters"));
        }
        let deleted = self
            .store
            .write(Write::Delete {
                table: TableName::App,
                pk: PROVIDERS_PK.into(),
                sk: provider_sk(kind, name),
                condition: Condition::Exists,
            })
            .await;
        match deleted {
            Ok(()) => Ok(json!({})),
            Err(crate::store::StoreError::ConditionFailed) => Err(ApiError::not_found(format!(
                "push provider {name:?} of type {kind} does not exist"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether a device may name `name` as its provider of type `service`.
    pub(crate) async fn push_provider_exists(
        &self,
        service: PushService,
        name: &str,
    ) -> Result<bool, ApiError> {
        Ok(self
            .store
            .get(
                TableName::App,
                PROVIDERS_PK,
                &provider_sk(service.as_str(), name),
            )
            .await?
            .is_some())
    }
}
