//! A user's lifecycle: deactivate and reactivate, delete (one or in batches, with their messages
//! and conversations as asked) and restore.

use super::*;

#[derive(Clone, Debug, Default, Deserialize)]
pub struct DeleteUserOptions {
    #[serde(default)]
    pub mark_messages_deleted: Option<bool>,
    #[serde(default)]
    pub hard_delete: Option<bool>,
    #[serde(default)]
    pub delete_conversation_channels: Option<bool>,
    #[serde(default)]
    pub new_channel_owner_id: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct DeleteUsers {
    #[serde(default)]
    #[serde(deserialize_with = "crate::domain::ids::unique_ids")]
    pub user_ids: Vec<String>,
    /// soft | pruning | hard
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub messages: Option<String>,
    #[serde(default)]
    pub conversations: Option<String>,
    #[serde(default)]
    pub new_channel_owner_id: Option<String>,
}

const USER_DELETE_MODES: &[&str] = &["soft", "pruning", "hard"];
const MESSAGE_DELETE_MODES: &[&str] = &["soft", "pruning", "hard"];
const CONVERSATION_DELETE_MODES: &[&str] = &["soft", "hard"];

impl Chat {
    /// `POST /users/{id}/deactivate` (server-side).
    pub async fn deactivate_user(
        &self,
        session: &Session,
        id: &str,
        mark_messages_deleted: bool,
        created_by_id: Option<&str>,
    ) -> Result<User, ApiError> {
        let caller = &session.caller;
        caller.require_server("deactivating users")?;
        self.set_deactivated(
            &session.settings,
            id,
            true,
            mark_messages_deleted,
            created_by_id,
        )
        .await
    }

    /// `POST /users/{id}/reactivate` (server-side); `name` optionally renames the user.
    pub async fn reactivate_user(
        &self,
        session: &Session,
        id: &str,
        restore_messages: bool,
        name: Option<&str>,
        created_by_id: Option<&str>,
    ) -> Result<User, ApiError> {
        let caller = &session.caller;
        caller.require_server("reactivating users")?;
        if let Some(name) = name {
            let (old, version) = self.require_user(id).await?;
            let mut next = old.clone();
            next.custom
                .insert("name".into(), Value::String(name.into()));
            let settings = &session.settings;
            self.save_user(settings, Some((&old, version)), &next, Vec::new())
                .await?;
        }
        self.set_deactivated(
            &session.settings,
            id,
            false,
            restore_messages,
            created_by_id,
        )
        .await
    }

    /// Deactivate (`on`) or reactivate a user. The message flag (`mark_messages_deleted` /
    /// `restore_messages`) is recorded on the event for the messages feature to act on.
    pub(crate) async fn set_deactivated(
        &self,
        settings: &AppSettings,
        id: &str,
        on: bool,
        messages_flag: bool,
        created_by_id: Option<&str>,
    ) -> Result<User, ApiError> {
        let (old, version) = self.require_user(id).await?;
        if on == old.is_deactivated() {
            return Ok(old);
        }
        let mut next = old.clone();
        next.deactivated_at = if on { Some(self.now_str()) } else { None };
        next.updated_at = self.now_str();
        let mut event = self.user_event(
            if on {
                "user.deactivated"
            } else {
                "user.reactivated"
            },
            &next,
        );
        event = event.with(
            if on {
                "mark_messages_deleted"
            } else {
                "restore_messages"
            },
            Value::Bool(messages_flag),
        );
        if let Some(by) = created_by_id {
            event = event.with("created_by", json!({"id": by}));
        }
        self.save_user(settings, Some((&old, version)), &next, vec![event])
            .await?;
        match (on, messages_flag, &old.deactivated_at) {
            (true, true, _) => {
                self.delete_messages_of(id, false).await?;
            }
            // What the deactivation deleted comes back.
            (false, true, Some(since)) => {
                self.restore_messages_of(id, since).await?;
            }
            _ => {}
        }
        Ok(next)
    }

    /// `POST /users/deactivate` and `/users/reactivate`: up to 100 users, as a task.
    pub async fn deactivate_users(
        &self,
        session: &Session,
        user_ids: Vec<String>,
        on: bool,
        messages_flag: bool,
        created_by_id: Option<String>,
    ) -> Result<String, ApiError> {
        let caller = &session.caller;
        caller.require_server(if on {
            "deactivating users"
        } else {
            "reactivating users"
        })?;
        check_user_ids(&user_ids)?;
        for id in &user_ids {
            self.require_user(id).await?;
        }
        let job = if on {
            TaskJob::DeactivateUsers {
                user_ids,
                mark_messages_deleted: messages_flag,
                created_by_id,
            }
        } else {
            TaskJob::ReactivateUsers {
                user_ids,
                restore_messages: messages_flag,
                created_by_id,
            }
        };
        self.start_task(job).await
    }

    /// `DELETE /users/{id}`: soft delete (the id stays taken, restorable) or hard delete.
    pub async fn delete_user(
        &self,
        session: &Session,
        id: &str,
        opts: DeleteUserOptions,
    ) -> Result<User, ApiError> {
        let caller = &session.caller;
        caller.require_server("deleting users")?;
        let hard = opts.hard_delete.unwrap_or(false);
        let settings = &session.settings;
        let (old, version) = self.require_user(id).await?;
        let mut deleted = old.clone();
        deleted.deleted_at = Some(self.now_str());
        deleted.updated_at = self.now_str();
        let event = self
            .user_event("user.deleted", &deleted)
            .with("hard_delete", Value::Bool(hard))
            .with(
                "mark_messages_deleted",
                Value::Bool(opts.mark_messages_deleted.unwrap_or(false)),
            )
            .with(
                "delete_conversation_channels",
                Value::Bool(opts.delete_conversation_channels.unwrap_or(false)),
            );
        if let Some(owner) = opts
            .new_channel_owner_id
            .as_deref()
            .filter(|o| !o.is_empty())
        {
            self.transfer_channels_of(id, owner).await?;
        }
        if opts.mark_messages_deleted.unwrap_or(false) {
            self.delete_messages_of(id, hard).await?;
        }
        if opts.delete_conversation_channels.unwrap_or(false) {
            self.delete_conversations_of(id, hard).await?;
        }
        if hard {
            self.remove_user(settings, &old, version, vec![event])
                .await?;
        } else {
            self.save_user(settings, Some((&old, version)), &deleted, vec![event])
                .await?;
        }
        Ok(deleted)
    }

    async fn remove_user(
        &self,
        settings: &AppSettings,
        old: &User,
        version: u64,
        events: Vec<Event>,
    ) -> Result<(), ApiError> {
        self.remove_devices_of(&old.id).await?;
        let (pk, sk) = user_key(&old.id);
        let mut writes = vec![Write::Delete {
            table: TableName::App,
            pk,
            sk,
            condition: Condition::Version(version),
        }];
        writes.extend(super::custom_index_writes(Some(old), None));
        for key in username_claims(settings, old) {
            writes.push(Write::Delete {
                table: TableName::App,
                pk: key.0,
                sk: key.1,
                condition: Condition::None,
            });
        }
        writes.extend(events.iter().map(outbox_write));
        self.store.transact(writes).await.map_err(|e| match e {
            StoreError::TransactionCanceled { .. } => ApiError::input(format!(
                "user {:?} was changed concurrently; try again",
                old.id
            )),
            e => e.into(),
        })
    }

    /// `POST /users/delete`: mark up to 100 users deleted now, finish (hard deletes) in a task.
    pub async fn delete_users(
        &self,
        session: &Session,
        req: DeleteUsers,
    ) -> Result<String, ApiError> {
        let caller = &session.caller;
        caller.require_server("deleting users")?;
        check_user_ids(&req.user_ids)?;
        let mode = req.user.clone().unwrap_or_else(|| "soft".into());
        check_mode("user", &mode, USER_DELETE_MODES)?;
        if let Some(m) = &req.messages {
            check_mode("messages", m, MESSAGE_DELETE_MODES)?;
        }
        if let Some(c) = &req.conversations {
            check_mode("conversations", c, CONVERSATION_DELETE_MODES)?;
        }
        if mode == "hard"
            && (req.messages.as_deref() != Some("hard")
                || req.conversations.as_deref().is_some_and(|c| c != "hard"))
        {
            return Err(ApiError::field(
                "user",
                "a hard user delete requires messages: hard (and conversations: hard when given)",
            ));
        }
        let settings = &session.settings;
        // The whole batch is checked before anything changes: one unknown id deletes nobody.
        let ids: Vec<&str> = req.user_ids.iter().map(String::as_str).collect();
        let mut found = self.users_by_id(&ids).await?;
        found.retain(|_, (u, _)| !u.is_deleted());
        let missing: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| !found.contains_key(*id))
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::not_found(format!(
                "users {missing:?} do not exist; no user was deleted"
            )));
        }
        for id in &req.user_ids {
            let Some((old, version)) = found.remove(id) else {
                continue;
            };
            let mut deleted = old.clone();
            deleted.deleted_at = Some(self.now_str());
            deleted.updated_at = self.now_str();
            self.save_user(settings, Some((&old, version)), &deleted, Vec::new())
                .await?;
        }
        self.start_task(TaskJob::DeleteUsers {
            user_ids: req.user_ids,
            user: mode,
            messages: req.messages,
            conversations: req.conversations,
            new_channel_owner_id: req.new_channel_owner_id,
        })
        .await
    }

    /// The asynchronous half of a batch delete: pruning blanks the user's data, hard removes it.
    pub(crate) async fn finish_user_deletion(
        &self,
        settings: &AppSettings,
        id: &str,
        mode: &str,
        messages: Option<&str>,
        conversations: Option<&str>,
        new_channel_owner_id: Option<&str>,
    ) -> Result<(), ApiError> {
        let Some((user, version)) = self.get_user(id).await? else {
            return Ok(());
        };
        if let Some(owner) = new_channel_owner_id.filter(|o| !o.is_empty()) {
            self.transfer_channels_of(id, owner).await?;
        }
        if let Some(c) = conversations.filter(|c| !c.is_empty()) {
            self.delete_conversations_of(id, c == "hard").await?;
        }
        // `messages`: soft (shown as deleted), pruning (the same here) or hard (removed).
        if let Some(m) = messages.filter(|m| !m.is_empty()) {
            self.delete_messages_of(id, m == "hard").await?;
        }
        let event = self
            .user_event("user.deleted", &user)
            .with("hard_delete", Value::Bool(mode == "hard"));
        match mode {
            "hard" => {
                self.remove_user(settings, &user, version, vec![event])
                    .await
            }
            "pruning" => {
                let mut pruned = user.clone();
                pruned.custom.clear();
                pruned.privacy_settings = None;
                pruned.teams.clear();
                pruned.teams_role.clear();
                self.save_user(settings, Some((&user, version)), &pruned, vec![event])
                    .await
            }
            _ => Ok(self.store.write(outbox_write(&event)).await?),
        }
    }

    /// `POST /users/restore`: undo soft deletes.
    pub async fn restore_users(
        &self,
        session: &Session,
        user_ids: Vec<String>,
    ) -> Result<(), ApiError> {
        let caller = &session.caller;
        caller.require_server("restoring users")?;
        check_user_ids(&user_ids)?;
        let settings = &session.settings;
        for id in &user_ids {
            let (old, version) = self
                .get_user(id)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("user {id:?} does not exist")))?;
            if !old.is_deleted() {
                continue;
            }
            let mut restored = old.clone();
            restored.deleted_at = None;
            restored.updated_at = self.now_str();
            let event = self.user_event("user.updated", &restored);
            self.save_user(settings, Some((&old, version)), &restored, vec![event])
                .await?;
        }
        Ok(())
    }
}

fn check_user_ids(ids: &[String]) -> Result<(), ApiError> {
    if ids.is_empty() {
        return Err(ApiError::field(
            "user_ids",
            "user_ids must name at least one user",
        ));
    }
    if ids.len() > MAX_USERS_PER_BATCH {
        return Err(ApiError::field(
            "user_ids",
            format!("at most {MAX_USERS_PER_BATCH} user ids per request"),
        ));
    }
    ids.iter().try_for_each(|id| validate_user_id(id))
}

fn check_mode(field: &str, mode: &str, allowed: &[&str]) -> Result<(), ApiError> {
    if allowed.contains(&mode) {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            format!("{field} must be one of {}", allowed.join(", ")),
        ))
    }
}
