//! Channel type use cases: the built-ins seeded on first start, create/get/list/update/delete,
//! and their grants (permissions v2 for the channel scope).

use super::{to_doc, Chat};
use crate::domain::app_settings::AppSettings;
use crate::domain::caller::Session;
use crate::domain::channel_type::{self, ChannelTypeConfig};
use crate::domain::ApiError;
use crate::service::decode;
use crate::store::layout::{app_settings_key, channel_type_key, channel_types_query};
use crate::store::{Condition, Item, StoreError, TableName, Write};
use serde_json::{Map, Value};

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
        let now = self.now();
        let mut writes = vec![Write::Put {
            table: TableName::App,
            item: Item::new(pk, sk, to_doc(&AppSettings::default())?),
            condition: Condition::NotExists,
        }];
        // A new app has no users to list: its custom-field index is complete from the start.
        let (ready_pk, ready_sk) = crate::store::layout::user_field_index_ready_key();
        writes.push(Write::Put {
            table: TableName::App,
            item: Item::new(ready_pk, ready_sk, serde_json::json!({ "users": 0 })),
            condition: Condition::None,
        });
        for mut ct in channel_type::builtin_channel_types() {
            ct.created_at = now;
            ct.updated_at = now;
            writes.push(Write::Put {
                table: TableName::App,
                item: channel_type_item(&ct, 1)?,
                condition: Condition::NotExists,
            });
        }
        let stored = self.store.transact(writes).await;
        self.config.clear();
        match stored {
            // Another process bootstrapped first.
            Ok(()) | Err(StoreError::TransactionCanceled { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn list_channel_types_raw(&self) -> Result<Vec<ChannelTypeConfig>, ApiError> {
        let page = self.store.query(channel_types_query().limit(1000)).await?;
        page.items
            .into_iter()
            .map(|i| decode(i.data, "channel type"))
            .collect()
    }

    pub async fn list_channel_types(
        &self,
        session: &Session,
    ) -> Result<Vec<ChannelTypeConfig>, ApiError> {
        let caller = &session.caller;
        caller.require_server("listing channel types")?;
        self.list_channel_types_raw().await
    }

    /// A channel type by name, with its item version (used by every channel operation).
    pub async fn channel_type(
        &self,
        name: &str,
    ) -> Result<Option<(ChannelTypeConfig, u64)>, ApiError> {
        if let Some(cached) = self.config.channel_type(name) {
            return Ok(cached);
        }
        let found = self.stored_channel_type(name).await?;
        self.config.keep_channel_type(name, &found);
        Ok(found)
    }

    /// A channel type as stored now (for read-modify-writes).
    async fn stored_channel_type(
        &self,
        name: &str,
    ) -> Result<Option<(ChannelTypeConfig, u64)>, ApiError> {
        Ok(self
            .load::<ChannelTypeConfig>(TableName::App, channel_type_key(name))
            .await?
            .map(|(c, i)| (c, i.version)))
    }

    fn channel_type_missing(name: &str) -> ApiError {
        ApiError::not_found(format!("channel type {name:?} does not exist"))
    }

    pub async fn get_channel_type(
        &self,
        session: &Session,
        name: &str,
    ) -> Result<ChannelTypeConfig, ApiError> {
        let caller = &session.caller;
        caller.require_server("reading channel types")?;
        self.channel_type(name)
            .await?
            .map(|(c, _)| c)
            .ok_or_else(|| Self::channel_type_missing(name))
    }

    pub async fn create_channel_type(
        &self,
        session: &Session,
        body: &Map<String, Value>,
    ) -> Result<ChannelTypeConfig, ApiError> {
        let caller = &session.caller;
        caller.require_server("creating channel types")?;
        let custom = self.custom_commands().await?;
        let defs = channel_type::AppDefinitions {
            commands: &custom,
            ..Default::default()
        };
        let ct = channel_type::create_with(body, self.now(), &defs)?;
        channel_type::check_capacity(self.list_channel_types_raw().await?.len())?;
        match self
            .store
            .write(Write::Put {
                table: TableName::App,
                item: channel_type_item(&ct, 1)?,
                condition: Condition::NotExists,
            })
            .await
        {
            Ok(()) => {
                self.config.clear();
                Ok(ct)
            }
            Err(StoreError::ConditionFailed) => Err(ApiError::input(format!(
                "channel type {:?} already exists",
                ct.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn update_channel_type(
        &self,
        session: &Session,
        name: &str,
        body: &Map<String, Value>,
    ) -> Result<ChannelTypeConfig, ApiError> {
        let caller = &session.caller;
        caller.require_server("updating channel types")?;
        let (mut ct, version) = self
            .stored_channel_type(name)
            .await?
            .ok_or_else(|| Self::channel_type_missing(name))?;
        let custom = self.custom_commands().await?;
        let defs = channel_type::AppDefinitions {
            commands: &custom,
            ..Default::default()
        };
        channel_type::apply_update_with(&mut ct, body, &defs)?;
        ct.touch(self.now());
        match self
            .store
            .write(Write::Put {
                table: TableName::App,
                item: channel_type_item(&ct, version + 1)?,
                condition: Condition::Version(version),
            })
            .await
        {
            Ok(()) => {
                self.config.clear();
                Ok(ct)
            }
            Err(StoreError::ConditionFailed) => Err(ApiError::input(format!(
                "channel type {name:?} was changed concurrently; try again"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Refused while channels of the type exist.
    pub async fn delete_channel_type(&self, session: &Session, name: &str) -> Result<(), ApiError> {
        session.caller.require_server("deleting channel types")?;
        if self.channel_type_in_use(name).await? {
            return Err(ApiError::input(format!(
                "channel type {name:?} still has channels: delete them first"
            )));
        }
        let (pk, sk) = channel_type_key(name);
        match self
            .store
            .write(Write::Delete {
                table: TableName::App,
                pk,
                sk,
                condition: Condition::Exists,
            })
            .await
        {
            Ok(()) => {
                self.config.clear();
                Ok(())
            }
            Err(StoreError::ConditionFailed) => Err(Self::channel_type_missing(name)),
            Err(e) => Err(e.into()),
        }
    }
}
