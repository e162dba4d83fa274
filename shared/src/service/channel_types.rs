//! Channel type use cases: the built-ins seeded on first start, create/get/list/update/delete,
//! and their grants (permissions v2 for the channel scope).

use super::{to_doc, Chat};
use crate::domain::app_settings::AppSettings;
use crate::domain::caller::Caller;
use crate::domain::channel_type::{self, ChannelTypeConfig, MAX_CHANNEL_TYPES};
use crate::domain::permissions::{self, Grants};
use crate::domain::ApiError;
use crate::store::layout::{app_settings_key, channel_type_key, channel_types_query};
use crate::store::{Condition, Item, StoreError, TableName, Write};
use serde_json::{Map, Value};

/// The grants scope a channel type starts from: its own for the built-ins, messaging's otherwise.
fn default_scope(name: &str) -> &str {
    match name {
        "messaging" | "livestream" | "team" | "commerce" | "gaming" => name,
        _ => "messaging",
    }
}

fn grants_from_request(name: &str, current: &Grants, value: &Value) -> Result<Grants, ApiError> {
    match value {
        Value::Null => Ok(permissions::default_grants(default_scope(name))),
        v => {
            let update: Grants = serde_json::from_value(v.clone())
                .map_err(|_| ApiError::field("grants", "grants must map role names to lists of permission ids"))?;
            permissions::apply_grants_update(current, &update).map_err(|e| ApiError::field("grants", e.to_string()))
        }
    }
}

fn channel_type_item(ct: &ChannelTypeConfig, version: u64) -> Result<Item, ApiError> {
    let (pk, sk) = channel_type_key(&ct.name);
    let mut item = Item::new(pk, sk, to_doc(ct)?);
    item.version = version;
    Ok(item)
}

impl Chat {
    /// First start of an app: store the default settings and the built-in channel types, once.
    pub async fn bootstrap(&self) -> Result<(), ApiError> {
        let (pk, sk) = app_settings_key();
        if self.store.get(TableName::App, &pk, &sk).await?.is_some() {
            return Ok(());
        }
        let now = self.now_str();
        let mut writes = vec![Write::Put {
            table: TableName::App,
            item: Item::new(pk, sk, to_doc(&AppSettings::default())?),
            condition: Condition::NotExists,
        }];
        for mut ct in channel_type::builtin_channel_types() {
            ct.grants = permissions::default_grants(&ct.name);
            ct.created_at = now.clone();
            ct.updated_at = now.clone();
            writes.push(Write::Put { table: TableName::App, item: channel_type_item(&ct, 1)?, condition: Condition::NotExists });
        }
        match self.store.transact(writes).await {
            Ok(()) | Err(StoreError::TransactionCanceled { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn list_channel_types_raw(&self) -> Result<Vec<ChannelTypeConfig>, ApiError> {
        let page = self.store.query(channel_types_query().limit(1000)).await?;
        page.items
            .into_iter()
            .map(|i| serde_json::from_value(i.data).map_err(|e| ApiError::internal(format!("stored channel type is unreadable: {e}"))))
            .collect()
    }

    pub async fn list_channel_types(&self, caller: &Caller) -> Result<Vec<ChannelTypeConfig>, ApiError> {
        caller.require_server("listing channel types")?;
        self.list_channel_types_raw().await
    }

    /// A channel type by name (used by every channel operation).
    pub async fn channel_type(&self, name: &str) -> Result<Option<(ChannelTypeConfig, u64)>, ApiError> {
        Ok(self.load::<ChannelTypeConfig>(TableName::App, channel_type_key(name)).await?.map(|(c, i)| (c, i.version)))
    }

    pub async fn get_channel_type(&self, caller: &Caller, name: &str) -> Result<ChannelTypeConfig, ApiError> {
        caller.require_server("reading channel types")?;
        self.channel_type(name).await?.map(|(c, _)| c).ok_or_else(|| ApiError::not_found(format!("channel type {name:?} does not exist")))
    }

    pub async fn create_channel_type(&self, caller: &Caller, body: &Map<String, Value>) -> Result<ChannelTypeConfig, ApiError> {
        caller.require_server("creating channel types")?;
        let mut body = body.clone();
        let grants = body.remove("grants");
        let mut ct = channel_type::create(&body).map_err(|e| ApiError::input(e.to_string()))?;
        let defaults = permissions::default_grants(default_scope(&ct.name));
        ct.grants = match grants {
            Some(v) => grants_from_request(&ct.name, &defaults, &v)?,
            None => defaults,
        };
        let now = self.now_str();
        ct.created_at = now.clone();
        ct.updated_at = now;
        if self.list_channel_types_raw().await?.len() >= MAX_CHANNEL_TYPES {
            return Err(ApiError::input(format!("an app can have at most {MAX_CHANNEL_TYPES} channel types")));
        }
        match self.store.write(Write::Put { table: TableName::App, item: channel_type_item(&ct, 1)?, condition: Condition::NotExists }).await {
            Ok(()) => Ok(ct),
            Err(StoreError::ConditionFailed) => Err(ApiError::input(format!("channel type {:?} already exists", ct.name))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn update_channel_type(&self, caller: &Caller, name: &str, body: &Map<String, Value>) -> Result<ChannelTypeConfig, ApiError> {
        caller.require_server("updating channel types")?;
        let (mut ct, version) = self.channel_type(name).await?.ok_or_else(|| ApiError::not_found(format!("channel type {name:?} does not exist")))?;
        let mut body = body.clone();
        if let Some(v) = body.remove("grants") {
            ct.grants = grants_from_request(name, &ct.grants, &v)?;
        }
        channel_type::apply_update(&mut ct, &body).map_err(|e| ApiError::input(e.to_string()))?;
        ct.updated_at = self.now_str();
        match self.store.write(Write::Put { table: TableName::App, item: channel_type_item(&ct, version + 1)?, condition: Condition::Version(version) }).await {
            Ok(()) => Ok(ct),
            Err(StoreError::ConditionFailed) => Err(ApiError::input(format!("channel type {name:?} was changed concurrently; try again"))),
            Err(e) => Err(e.into()),
        }
    }

    /// Refused while channels of the type exist (the channels feature supplies that check).
    pub async fn delete_channel_type(&self, caller: &Caller, name: &str) -> Result<(), ApiError> {
        caller.require_server("deleting channel types")?;
        let (pk, sk) = channel_type_key(name);
        match self.store.write(Write::Delete { table: TableName::App, pk, sk, condition: Condition::Exists }).await {
            Ok(()) => Ok(()),
            Err(StoreError::ConditionFailed) => Err(ApiError::not_found(format!("channel type {name:?} does not exist"))),
            Err(e) => Err(e.into()),
        }
    }
}
