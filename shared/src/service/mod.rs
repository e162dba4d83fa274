//! Use cases: one function per API operation. Each reads through the Table port, checks the
//! caller's permissions and writes state together with its events in one transaction.

pub mod app;
pub mod channel_types;
pub mod roles;
pub mod tasks;
pub mod users;

use crate::domain::clock::{format_time, Clock};
use crate::domain::ApiError;
use crate::store::{Item, Table, TableName};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// The app's credentials: the key clients send as `api_key` and the secret tokens are signed with.
#[derive(Clone, Debug)]
pub struct AppKeys {
    pub api_key: String,
    pub api_secret: String,
}

/// How async tasks (batch deactivate, batch delete) run: on the runtime in the background
/// (long-lived process), or to completion before the request returns (Lambda, which freezes
/// between invocations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskMode {
    Background,
    Inline,
}

/// The product's use cases over one store.
#[derive(Clone)]
pub struct Chat {
    pub store: Arc<dyn Table>,
    pub clock: Arc<dyn Clock>,
    pub keys: AppKeys,
    pub task_mode: TaskMode,
}

impl Chat {
    pub fn new(
        store: Arc<dyn Table>,
        clock: Arc<dyn Clock>,
        keys: AppKeys,
        task_mode: TaskMode,
    ) -> Self {
        Chat {
            store,
            clock,
            keys,
            task_mode,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn now_str(&self) -> String {
        format_time(self.now())
    }

    /// Read one item and decode its document.
    pub(crate) async fn load<T: DeserializeOwned>(
        &self,
        table: TableName,
        key: (String, String),
    ) -> Result<Option<(T, Item)>, ApiError> {
        match self.store.get(table, &key.0, &key.1).await? {
            None => Ok(None),
            Some(item) => {
                let value = serde_json::from_value(item.data.clone()).map_err(|e| {
                    ApiError::internal(format!(
                        "stored record {}/{} is unreadable: {e}",
                        key.0, key.1
                    ))
                })?;
                Ok(Some((value, item)))
            }
        }
    }
}

/// Encode a record for storage.
pub(crate) fn to_doc<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(value)
        .map_err(|e| ApiError::internal(format!("record could not be encoded: {e}")))
}
