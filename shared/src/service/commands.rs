//! Custom commands (`/commands`, server-side): stored in the app table (partition `commands`,
//! one item per name), listed with the built-ins, and read through the config cache wherever a
//! channel type's `commands` are shown or checked. A command still named by a channel type
//! cannot be deleted.

use super::{decode, to_doc, Chat};
use crate::domain::caller::Session;
use crate::domain::command::{
    builtin_commands, legacy_builtin_commands, Command, CommandRequest, MAX_CUSTOM_COMMANDS,
};
use crate::domain::ApiError;
use crate::store::{Condition, Item, Query, StoreError, TableName, Write};
use serde_json::{json, Value};
use std::sync::Arc;

const COMMANDS_PK: &str = "commands";

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("command {name:?} does not exist"))
}

fn refuse_builtin(name: &str, what: &str) -> Result<(), ApiError> {
    if crate::domain::command::is_builtin_command(name) {
        return Err(ApiError::input(format!(
            "{name:?} is a built-in command and cannot be {what}"
        )));
    }
    Ok(())
}

impl Chat {
    /// The app's custom commands (kept decoded for a moment).
    pub(crate) async fn custom_commands(&self) -> Result<Arc<Vec<Command>>, ApiError> {
        if let Some(cached) = self.config.commands() {
            return Ok(cached);
        }
        let page = self
            .store
            .query(Query::new(TableName::App, COMMANDS_PK).limit(1000))
            .await?;
        let list: Vec<Command> = page
            .items
            .into_iter()
            .map(|i| decode(i.data, "command"))
            .collect::<Result<_, _>>()?;
        let list = Arc::new(list);
        self.config.keep_commands(&list);
        Ok(list)
    }

    async fn stored_command(&self, name: &str) -> Result<Option<(Command, u64)>, ApiError> {
        match self.store.get(TableName::App, COMMANDS_PK, name).await? {
            Some(item) => Ok(Some((decode(item.data, "command")?, item.version))),
            None => Ok(None),
        }
    }

    /// `GET /commands`: the built-ins, then the custom commands.
    pub async fn list_commands(&self, session: &Session) -> Result<Value, ApiError> {
        session.caller.require_server("listing commands")?;
        let custom = self.custom_commands().await?;
        let all: Vec<Command> = builtin_commands()
            .into_iter()
            .chain(legacy_builtin_commands())
            .chain(custom.iter().cloned())
            .collect();
        Ok(json!({ "commands": all }))
    }

    /// `GET /commands/{name}`: the command's fields at the top level.
    pub async fn get_command(&self, session: &Session, name: &str) -> Result<Value, ApiError> {
        session.caller.require_server("reading commands")?;
        let builtin = builtin_commands()
            .into_iter()
            .chain(legacy_builtin_commands())
            .find(|c| c.name == name);
        let command = match builtin {
            Some(c) => c,
            None => {
                self.stored_command(name)
                    .await?
                    .ok_or_else(|| not_found(name))?
                    .0
            }
        };
        serde_json::to_value(command).map_err(|e| ApiError::internal(e.to_string()))
    }

    /// `POST /commands`.
    pub async fn create_command(
        &self,
        session: &Session,
        req: CommandRequest,
    ) -> Result<Value, ApiError> {
        session.caller.require_server("creating commands")?;
        let command = req.create(&self.now_str())?;
        if self.custom_commands().await?.len() >= MAX_CUSTOM_COMMANDS {
            return Err(ApiError::input(format!(
                "an app can have at most {MAX_CUSTOM_COMMANDS} custom commands"
            )));
        }
        let item = Item::new(COMMANDS_PK, command.name.clone(), to_doc(&command)?);
        match self
            .store
            .write(Write::Put {
                table: TableName::App,
                item,
                condition: Condition::NotExists,
            })
            .await
        {
            Ok(()) => {
                self.config.clear();
                Ok(json!({ "command": command }))
            }
            Err(StoreError::ConditionFailed) => Err(ApiError::field(
                "name",
                format!("command {:?} already exists", command.name),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// `PUT /commands/{name}`.
    pub async fn update_command(
        &self,
        session: &Session,
        name: &str,
        req: CommandRequest,
    ) -> Result<Value, ApiError> {
        session.caller.require_server("updating commands")?;
        refuse_builtin(name, "changed")?;
        let (current, version) = self
            .stored_command(name)
            .await?
            .ok_or_else(|| not_found(name))?;
        let next = req.update(current, &self.now_str())?;
        let mut item = Item::new(COMMANDS_PK, name, to_doc(&next)?);
        item.version = version + 1;
        match self
            .store
            .write(Write::Put {
                table: TableName::App,
                item,
                condition: Condition::Version(version),
            })
            .await
        {
            Ok(()) => {
                self.config.clear();
                Ok(json!({ "command": next }))
            }
            Err(StoreError::ConditionFailed) => Err(ApiError::input(format!(
                "command {name:?} was changed concurrently; try again"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// `DELETE /commands/{name}`: refused while a channel type names it.
    pub async fn delete_command(&self, session: &Session, name: &str) -> Result<Value, ApiError> {
        session.caller.require_server("deleting commands")?;
        refuse_builtin(name, "deleted")?;
        if self.stored_command(name).await?.is_none() {
            return Err(not_found(name));
        }
        let users: Vec<String> = self
            .list_channel_types_raw()
            .await?
            .into_iter()
            .filter(|t| t.commands.iter().any(|c| c == name))
            .map(|t| t.name)
            .collect();
        if !users.is_empty() {
            return Err(ApiError::input(format!(
                "command {name:?} is used by channel types {}; remove it from them first",
                users.join(", ")
            )));
        }
        self.store
            .write(Write::Delete {
                table: TableName::App,
                pk: COMMANDS_PK.into(),
                sk: name.into(),
                condition: Condition::None,
            })
            .await?;
        self.config.clear();
        Ok(json!({ "name": name }))
    }
}
