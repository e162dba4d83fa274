//! What happens to a user's messages and channels when the user goes: `mark_messages_deleted`
//! on delete and deactivate (soft, or hard with a hard delete or `messages: hard`),
//! `restore_messages` on reactivate (what the deactivation deleted comes back),
//! `delete_conversation_channels` (their 1:1 channels go) and `new_channel_owner_id` (the
//! channels they created get another creator). The user's messages are found in the
//! channels they are a member of and their past channels (left, removed from, soft-deleted,
//! written in as a non-member; replies included), and each goes through the message delete /
//! undelete use case, events included. A user's export reads the same content.

use crate::domain::caller::Session;
use crate::domain::message::Message;
use crate::domain::reaction::Reaction;
use crate::domain::ApiError;
use crate::service::messages::DeleteMessageOptions;
use crate::service::Chat;
use crate::store::layout::{channel_messages_pk, message_id_key, past_channels_pk};
use crate::store::{query_all, Condition, Query, TableName, Write};

impl Chat {
    /// Every message `user_id` wrote, in the channels they are a member of and their past
    /// channels (a channel's partition holds its thread replies too), with, when asked, the
    /// user's reactions there.
    pub(crate) async fn content_of(
        &self,
        user_id: &str,
        with_reactions: bool,
    ) -> Result<(Vec<Message>, Vec<Reaction>), ApiError> {
        let mut messages = Vec::new();
        let mut reactions = Vec::new();
        let mut cids = self.membership_cids(user_id).await?;
        cids.extend(
            query_all(
                self.store.as_ref(),
                Query::new(TableName::App, past_channels_pk(user_id)),
            )
            .await?
            .into_iter()
            .map(|item| item.sk),
        );
        cids.sort_unstable();
        cids.dedup();
        for cid in cids {
            let items = query_all(
                self.store.as_ref(),
                Query::new(TableName::Messages, channel_messages_pk(&cid)),
            )
            .await?;
            for item in items {
                let Ok(m) = serde_json::from_value::<Message>(item.data) else {
                    continue;
                };
                if with_reactions && m.reactions.total() > 0 {
                    if m.reactions.total() <= m.reactions.latest.len() {
                        reactions.extend(
                            m.reactions
                                .latest
                                .iter()
                                .filter(|r| r.user_id == user_id)
                                .cloned(),
                        );
                    } else {
                        reactions.extend(self.user_reactions(&m.id, user_id).await?);
                    }
                }
                if m.user_id.as_deref() == Some(user_id) {
                    messages.push(m);
                }
            }
        }
        Ok((messages, reactions))
    }

    async fn messages_of(&self, user_id: &str) -> Result<Vec<Message>, ApiError> {
        Ok(self.content_of(user_id, false).await?.0)
    }

    /// Deletes a user's messages (soft: shown as deleted; hard: removed). Returns how many.
    pub(crate) async fn delete_messages_of(
        &self,
        user_id: &str,
        hard: bool,
    ) -> Result<usize, ApiError> {
        let session = Session::server(self.app_settings().await?);
        let mut done = 0;
        for m in self.messages_of(user_id).await? {
            if m.kind == "deleted" && !hard {
                continue;
            }
            let opts = DeleteMessageOptions {
                hard,
                ..Default::default()
            };
            match self.delete_message(&session, &m.id, opts).await {
                Ok(_) => done += 1,
                // The channel is gone (soft-deleted): a hard delete still erases the message,
                // with no one to tell. Gone itself meanwhile (a hard-deleted parent took its
                // replies): nothing to do.
                Err(e) if e.code == crate::domain::ErrorCode::DoesNotExist => {
                    if hard && self.erase_message(&m.id).await? {
                        done += 1;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Removes a message's records (its item and its id's) without its channel; whether it
    /// was there.
    async fn erase_message(&self, id: &str) -> Result<bool, ApiError> {
        let Some(stored) = self.find_message(id).await? else {
            return Ok(false);
        };
        let (id_pk, id_sk) = message_id_key(id);
        let writes = vec![
            Write::Delete {
                table: TableName::Messages,
                pk: stored.pk,
                sk: stored.sk,
                condition: Condition::Version(stored.version),
            },
            Write::Delete {
                table: TableName::Messages,
                pk: id_pk,
                sk: id_sk,
                condition: Condition::None,
            },
        ];
        match self.store.transact(writes).await {
            Ok(()) => Ok(true),
            // Changed meanwhile: left for the next deletion of the user's messages.
            Err(crate::store::StoreError::TransactionCanceled { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Brings back a user's messages soft-deleted since `since` (their deactivation).
    pub(crate) async fn restore_messages_of(
        &self,
        user_id: &str,
        since: &str,
    ) -> Result<usize, ApiError> {
        let session = Session::server(self.app_settings().await?);
        let mut done = 0;
        for m in self.messages_of(user_id).await? {
            let deleted_since = m.deleted_at.as_deref().is_some_and(|at| at >= since);
            if m.kind != "deleted" || !deleted_since {
                continue;
            }
            match self
                .undelete_message(&session, &m.id, Some(user_id.to_string()))
                .await
            {
                Ok(_) => done += 1,
                // A message that cannot come back (its parent or channel went) stays deleted.
                Err(e)
                    if matches!(
                        e.code,
                        crate::domain::ErrorCode::Input | crate::domain::ErrorCode::DoesNotExist
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Deletes the user's conversation channels: those of exactly two members, them included.
    pub(crate) async fn delete_conversations_of(
        &self,
        user_id: &str,
        hard: bool,
    ) -> Result<usize, ApiError> {
        let mut done = 0;
        for cid in self.membership_cids(user_id).await? {
            let Some(loaded) = self.load_channel(&cid).await? else {
                continue;
            };
            if loaded.members.len() == 2 {
                self.finish_channel_deletion(&cid, hard).await?;
                done += 1;
            }
        }
        Ok(done)
    }

    /// Gives the channels `user_id` created (among their memberships) to `new_owner`.
    pub(crate) async fn transfer_channels_of(
        &self,
        user_id: &str,
        new_owner: &str,
    ) -> Result<usize, ApiError> {
        if self.get_user(new_owner).await?.is_none() {
            return Err(ApiError::field(
                "new_channel_owner_id",
                format!("user {new_owner:?} does not exist"),
            ));
        }
        let mut done = 0;
        for cid in self.membership_cids(user_id).await? {
            for _ in 0..crate::service::CONTENDED_ATTEMPTS {
                let Some(loaded) = self.load_channel(&cid).await? else {
                    break;
                };
                if loaded.channel.created_by_id.as_deref() != Some(user_id) {
                    break;
                }
                let mut channel = loaded.channel.clone();
                channel.created_by_id = Some(new_owner.to_string());
                let write = crate::service::channel_record::put(&channel, loaded.version)?;
                match self.store.transact(vec![write]).await {
                    Ok(()) => {
                        done += 1;
                        break;
                    }
                    // Changed meanwhile: read it again.
                    Err(crate::store::StoreError::TransactionCanceled { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(done)
    }
}
