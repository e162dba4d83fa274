//! Push devices: `POST /devices`, `GET /devices`, `DELETE /devices` (and a connection's
//! `device`). A user manages their own; the server names whose. Devices are kept per user in
//! the app table; past 25 the oldest go. They are listed in the user's `me` (`devices`) and
//! removed with a hard-deleted user.

use crate::domain::caller::{Caller, Session};
use crate::domain::device::{over_the_limit, Device, NewDevice};
use crate::domain::ApiError;
use crate::service::{decode, Chat};
use crate::store::layout::devices_pk;
use crate::store::{query_all, Condition, Item, Query, StoreError, TableName, Write};
use serde_json::{json, Value};

impl Chat {
    /// Whose devices a call is about: a user's own (naming another is refused), or for the
    /// server the user it names (required).
    fn device_owner(&self, session: &Session, named: Option<String>) -> Result<String, ApiError> {
        push_settings_owner(session, named, "push devices")
    }

    /// `POST /devices`: registers a device (again: no effect), keeping the user's 25 newest.
    pub async fn add_device(&self, session: &Session, new: NewDevice) -> Result<(), ApiError> {
        let named = new.user_id.clone().or_else(|| {
            new.user
                .as_ref()
                .and_then(|u| u.get("id"))
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        let owner = self.device_owner(session, named)?;
        let device = new.into_device(&owner, &self.now_str())?;
        if let Some(name) = device.push_provider_name.as_deref() {
            if !self
                .push_provider_exists(device.push_provider, name)
                .await?
            {
                return Err(ApiError::field(
                    "push_provider_name",
                    format!(
                        "push provider {name:?} of type {} does not exist",
                        device.push_provider.as_str()
                    ),
                ));
            }
        }
        if self.get_user(&owner).await?.is_none() {
            return Err(ApiError::not_found(format!(
                "user {owner:?} does not exist"
            )));
        }
        let item = Item::new(
            devices_pk(&owner),
            device.id.clone(),
            serde_json::to_value(&device).map_err(|e| ApiError::internal(e.to_string()))?,
        );
        match self
            .store
            .transact(vec![Write::Put {
                table: TableName::App,
                item,
                condition: Condition::NotExists,
            }])
            .await
        {
            Ok(()) => {}
            // Registered already: as Stream, no effect.
            Err(StoreError::TransactionCanceled { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        // Past the limit the oldest go (concurrent adds trim each other's excess too).
        let devices = self.user_devices(&owner).await?;
        let gone: Vec<Write> = over_the_limit(&devices)
            .into_iter()
            .map(|d| Write::Delete {
                table: TableName::App,
                pk: devices_pk(&owner),
                sk: d.id.clone(),
                condition: Condition::None,
            })
            .collect();
        if !gone.is_empty() {
            self.store.transact(gone).await?;
        }
        Ok(())
    }

    /// `GET /devices`.
    pub async fn list_devices(
        &self,
        session: &Session,
        user_id: Option<String>,
    ) -> Result<Value, ApiError> {
        let owner = self.device_owner(session, user_id)?;
        let devices = self.user_devices(&owner).await?;
        Ok(json!({ "devices": devices.iter().map(Device::to_wire).collect::<Vec<_>>() }))
    }

    /// `DELETE /devices?id=`: a device that is not there is an error, as on Stream.
    pub async fn remove_device(
        &self,
        session: &Session,
        id: &str,
        user_id: Option<String>,
    ) -> Result<(), ApiError> {
        if id.is_empty() {
            return Err(ApiError::field("id", "id is required"));
        }
        let owner = self.device_owner(session, user_id)?;
        match self
            .store
            .transact(vec![Write::Delete {
                table: TableName::App,
                pk: devices_pk(&owner),
                sk: id.to_string(),
                condition: Condition::Exists,
            }])
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::TransactionCanceled { .. }) => Err(ApiError::not_found(format!(
                "device {id:?} of user {owner:?} does not exist"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// A user's devices, oldest first.
    pub(crate) async fn user_devices(&self, user_id: &str) -> Result<Vec<Device>, ApiError> {
        let items = query_all(
            self.store.as_ref(),
            Query::new(TableName::App, devices_pk(user_id)),
        )
        .await?;
        let mut devices = items
            .into_iter()
            .map(|i| decode::<Device>(i.data, "device"))
            .collect::<Result<Vec<_>, _>>()?;
        devices.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(devices)
    }

    /// Removes a device a push service refused (its token is no longer valid).
    pub(crate) async fn drop_invalid_device(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<(), ApiError> {
        self.store
            .write(Write::Delete {
                table: TableName::App,
                pk: devices_pk(user_id),
                sk: id.to_string(),
                condition: Condition::None,
            })
            .await?;
        Ok(())
    }

    /// A hard-deleted user's devices go with them.
    pub(crate) async fn remove_devices_of(&self, user_id: &str) -> Result<(), ApiError> {
        let devices = self.user_devices(user_id).await?;
        for chunk in devices.chunks(25) {
            let writes = chunk
                .iter()
                .map(|d| Write::Delete {
                    table: TableName::App,
                    pk: devices_pk(user_id),
                    sk: d.id.clone(),
                    condition: Condition::None,
                })
                .collect();
            self.store.transact(writes).await?;
        }
        Ok(())
    }
}

/// Whose push settings (devices, preferences) a call manages: server-side the named user; a user
/// their own; anonymous callers none.
pub(crate) fn push_settings_owner(
    session: &Session,
    named: Option<String>,
    what: &str,
) -> Result<String, ApiError> {
    let named = named.filter(|n| !n.is_empty());
    match &session.caller {
        Caller::Server => named.ok_or_else(|| {
            ApiError::field(
                "user_id",
                "user_id is required with server-side authentication",
            )
        }),
        Caller::Anonymous => Err(ApiError::not_allowed(format!(
            "anonymous users cannot manage {what}"
        ))),
        Caller::User { id, .. } => match named {
            Some(other) if &other != id => Err(ApiError::not_allowed(format!(
                "users can only manage their own {what}"
            ))),
            _ => Ok(id.clone()),
        },
    }
}
