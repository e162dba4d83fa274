//! Roles and permissions use cases: built-in and custom roles (create, list, delete with the
//! in-use checks) and the permission catalogue.

use super::{to_doc, Chat};
use crate::domain::caller::Session;
use crate::domain::limits::MAX_CUSTOM_ROLES;
use crate::domain::permissions::{self, Permission, BUILTIN_ROLES};
use crate::domain::ApiError;
use crate::service::decode;
use crate::store::layout::{role_key, roles_query, users_with_role_pk};
use crate::store::{Condition, Index, Item, Query, StoreError, TableName, Write};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    pub custom: bool,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

fn validate_role_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > 64 {
        return Err(ApiError::field(
            "name",
            "role name must be 1 to 64 characters",
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        return Err(ApiError::field(
            "name",
            format!("role name {name:?} may only contain a-z, 0-9, _ and -"),
        ));
    }
    Ok(())
}

impl Chat {
    async fn custom_roles(&self) -> Result<Vec<Role>, ApiError> {
        let page = self.store.query(roles_query().limit(1000)).await?;
        page.items
            .into_iter()
            .map(|i| decode(i.data, "role"))
            .collect()
    }

    /// Built-in roles first, then custom ones.
    pub async fn list_roles(&self, session: &Session) -> Result<Vec<Role>, ApiError> {
        let caller = &session.caller;
        caller.require_server("listing roles")?;
        let epoch = "2020-01-01T00:00:00.000000Z".to_string();
        let mut roles: Vec<Role> = BUILTIN_ROLES
            .iter()
            .map(|r| Role {
                name: r.to_string(),
                custom: false,
                scopes: Vec::new(),
                created_at: epoch.clone(),
                updated_at: epoch.clone(),
            })
            .collect();
        roles.extend(self.custom_roles().await?);
        Ok(roles)
    }

    pub async fn role_exists(&self, name: &str) -> Result<bool, ApiError> {
        if BUILTIN_ROLES.contains(&name) {
            return Ok(true);
        }
        let (pk, sk) = role_key(name);
        Ok(self.store.get(TableName::App, &pk, &sk).await?.is_some())
    }

    pub async fn create_role(&self, session: &Session, name: &str) -> Result<Role, ApiError> {
        let caller = &session.caller;
        caller.require_server("creating roles")?;
        validate_role_name(name)?;
        if BUILTIN_ROLES.contains(&name) {
            return Err(ApiError::input(format!("role {name:?} is a built-in role")));
        }
        if self.custom_roles().await?.len() >= MAX_CUSTOM_ROLES {
            return Err(ApiError::input(format!(
                "an app can have at most {MAX_CUSTOM_ROLES} custom roles"
            )));
        }
        let now = self.now_str();
        let role = Role {
            name: name.to_string(),
            custom: true,
            scopes: Vec::new(),
            created_at: now.clone(),
            updated_at: now,
        };
        let (pk, sk) = role_key(name);
        let item = Item::new(pk, sk, to_doc(&role)?);
        match self
            .store
            .write(Write::Put {
                table: TableName::App,
                item,
                condition: Condition::NotExists,
            })
            .await
        {
            Ok(()) => Ok(role),
            Err(StoreError::ConditionFailed) => {
                Err(ApiError::input(format!("role {name:?} already exists")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Refused for built-in roles, and while any grant or any user still uses the role.
    pub async fn delete_role(&self, session: &Session, name: &str) -> Result<(), ApiError> {
        let caller = &session.caller;
        caller.require_server("deleting roles")?;
        if BUILTIN_ROLES.contains(&name) {
            return Err(ApiError::input(format!(
                "role {name:?} is a built-in role and cannot be deleted"
            )));
        }
        if !self.role_exists(name).await? {
            return Err(ApiError::not_found(format!("role {name:?} does not exist")));
        }
        let settings = &session.settings;
        if settings.grants.get(name).is_some_and(|g| !g.is_empty()) {
            return Err(ApiError::input(format!(
                "role {name:?} still has grants in the app scope; remove them first"
            )));
        }
        for ct in self.list_channel_types_raw().await? {
            if ct.grants.get(name).is_some_and(|g| !g.is_empty()) {
                return Err(ApiError::input(format!(
                    "role {name:?} still has grants in channel type {:?}; remove them first",
                    ct.name
                )));
            }
        }
        let users = self
            .store
            .query(
                Query::new(TableName::App, users_with_role_pk(name))
                    .index(Index::Gsi2)
                    .limit(1),
            )
            .await?;
        if !users.items.is_empty() {
            return Err(ApiError::input(format!(
                "role {name:?} is still assigned to users"
            )));
        }
        let (pk, sk) = role_key(name);
        self.store
            .write(Write::Delete {
                table: TableName::App,
                pk,
                sk,
                condition: Condition::Exists,
            })
            .await?;
        Ok(())
    }

    pub fn list_permissions(&self) -> &'static [Permission] {
        permissions::all_permissions()
    }

    pub fn get_permission(&self, id: &str) -> Result<&'static Permission, ApiError> {
        permissions::permission(id)
            .ok_or_else(|| ApiError::not_found(format!("permission {id:?} does not exist")))
    }
}

/// The JSON of a permission as `GET /permissions` lists it.
pub fn permission_json(p: &Permission) -> Value {
    serde_json::to_value(p).unwrap_or(Value::Null)
}
