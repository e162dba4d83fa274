//! What a block does to channels, as Stream documents it for 1:1 channels (two members):
//! blocking hides the 1:1 channels the two share from the blocking user (unblocking shows them
//! again), query channels marks them `blocked: true` when hidden channels are asked for, and the
//! blocked user can no longer send in them. The blocked user cannot add the blocking user to any
//! channel either: the add leaves that user out. The block records are `muting`'s.

use super::muting::UserBlock;
use super::{channel_record::Loaded, member_record, Chat};
use crate::domain::caller::Session;
use crate::domain::channel::{Cid, NewMember};
use crate::domain::ApiError;
use crate::store::layout::blocked_by_pk;
use crate::store::{query_all, Index, Query, TableName};

impl Chat {
    /// The users who blocked `user_id`.
    pub(crate) async fn blockers_of(&self, user_id: &str) -> Result<Vec<String>, ApiError> {
        let items = query_all(
            self.store.as_ref(),
            Query::new(TableName::App, blocked_by_pk(user_id)).index(Index::Gsi1),
        )
        .await?;
        Ok(items
            .into_iter()
            .filter_map(|i| serde_json::from_value::<UserBlock>(i.data).ok())
            .map(|b| b.user_id)
            .collect())
    }

    /// A send by `author` into a 1:1 channel whose other member blocked them is refused.
    /// Costs one index query for a send into a two-member channel, none otherwise.
    pub(crate) async fn check_not_blocked_in_direct(
        &self,
        loaded: &Loaded,
        author: &str,
    ) -> Result<(), ApiError> {
        let member = loaded.members.iter().any(|m| m.user_id == author);
        if loaded.channel.member_count != 2 || !member {
            return Ok(());
        }
        let blockers = self.blockers_of(author).await?;
        if blockers.is_empty() {
            return Ok(());
        }
        let cid = &loaded.channel.cid;
        let keys: Vec<(String, String)> = blockers
            .iter()
            .map(|b| member_record::key(cid, b))
            .collect();
        if self
            .store
            .batch_get(TableName::Channels, &keys)
            .await?
            .is_empty()
        {
            return Ok(());
        }
        Err(ApiError::not_allowed(format!(
            "user {author:?} was blocked by the other member of this channel and cannot send messages to them"
        )))
    }

    /// The members `actor` may add: those who blocked the actor are left out.
    pub(crate) async fn without_blockers(
        &self,
        actor: Option<&str>,
        wanted: Vec<NewMember>,
    ) -> Result<Vec<NewMember>, ApiError> {
        let Some(actor) = actor else {
            return Ok(wanted);
        };
        let blockers = self.blockers_of(actor).await?;
        if blockers.is_empty() {
            return Ok(wanted);
        }
        Ok(wanted
            .into_iter()
            .filter(|m| !blockers.contains(&m.user_id))
            .collect())
    }

    /// On a block (`hidden`) or unblock: the 1:1 channels `blocker` shares with `blocked`
    /// leave (or rejoin) the blocker's channel list.
    pub(crate) async fn set_direct_channels_hidden(
        &self,
        blocker: &str,
        blocked: &str,
        hidden: bool,
    ) -> Result<(), ApiError> {
        let theirs = self.membership_cids(blocked).await?;
        let shared: Vec<String> = self
            .membership_cids(blocker)
            .await?
            .into_iter()
            .filter(|cid| theirs.binary_search(cid).is_ok())
            .collect();
        let session = Session::server(self.app_settings().await?);
        for cid in shared {
            let Some(loaded) = self.load_channel(&cid).await? else {
                continue;
            };
            let Some(mine) = loaded.members.iter().find(|m| m.user_id == blocker) else {
                continue;
            };
            if loaded.members.len() != 2 || mine.hidden == hidden {
                continue;
            }
            let parsed = Cid::parse(&cid)?;
            self.set_channel_hidden(
                &session,
                &parsed.channel_type,
                &parsed.id,
                hidden,
                false,
                Some(blocker.to_string()),
            )
            .await?;
        }
        Ok(())
    }
}

/// Whether `reader` sees this channel as a 1:1 channel with a user they blocked.
pub(crate) fn is_blocked_direct(loaded: &Loaded, reader: Option<&str>, blocked: &[String]) -> bool {
    let Some(reader) = reader else {
        return false;
    };
    loaded.members.len() == 2
        && loaded.members.iter().any(|m| m.user_id == reader)
        && loaded
            .members
            .iter()
            .any(|m| m.user_id != reader && blocked.contains(&m.user_id))
}
