//! Who may do what to a channel: permission checks against the channel's grants, readable
//! channels, the viewer of restricted messages, watching and stop-watching. Below both the
//! channel and the message use cases.

use super::channel_record::Loaded;
use crate::domain::caller::{Caller, Session};
use crate::domain::channel::{Channel, Cid};
use crate::domain::channel_type::ChannelTypeConfig;
use crate::domain::message::Viewer;
use crate::domain::permissions::{self, Resource};
use crate::domain::ApiError;
use crate::service::Chat;
use serde_json::{json, Value};

impl Chat {
    /// Permission check for a client-side caller on a channel.
    pub(crate) fn check_channel_action(
        &self,
        session: &Session,
        config: &ChannelTypeConfig,
        loaded: Option<&Loaded>,
        channel: &Channel,
        action: &str,
    ) -> Result<(), ApiError> {
        self.check_action_on(
            session,
            config,
            loaded,
            channel,
            action,
            channel.created_by_id.as_deref(),
        )
    }

    /// Permission check for a client-side caller on something in a channel owned by `owner_id`
    /// (the channel's creator for channel actions, a message's author for message actions).
    pub(crate) fn check_action_on(
        &self,
        session: &Session,
        config: &ChannelTypeConfig,
        loaded: Option<&Loaded>,
        channel: &Channel,
        action: &str,
        owner_id: Option<&str>,
    ) -> Result<(), ApiError> {
        if session.caller.is_server() || session.settings.disable_permissions_checks {
            return Ok(());
        }
        let uid = session.caller.user_id().unwrap_or_default();
        let channel_role = loaded
            .and_then(|l| l.members.iter().find(|m| m.user_id == uid))
            .map(|m| m.channel_role.as_str());
        let grants = channel.effective_grants(&config.grants, &[])?;
        let subject = session.caller.subject(channel_role);
        let resource = Resource {
            owner_id,
            team: channel.team.as_deref(),
        };
        if permissions::is_allowed(&grants, &subject, action, &resource) {
            Ok(())
        } else {
            Err(ApiError::not_allowed(format!(
                "user {uid:?} is not allowed to perform action {action} in channel {}",
                channel.cid
            )))
        }
    }

    /// `watch: true` with a `connection_id` subscribes that connection to the channel.
    pub(super) async fn watch_if_asked(
        &self,
        session: &Session,
        watch: Option<bool>,
        loaded: &Loaded,
    ) -> Result<(), ApiError> {
        match (&session.connection_id, watch) {
            (Some(conn), Some(true)) => self.watch_channel(conn, &loaded.channel).await,
            _ => Ok(()),
        }
    }

    /// `POST /channels/{type}/{id}/stop-watching`.
    pub async fn stop_watching_channel(
        &self,
        session: &Session,
        channel_type: &str,
        id: &str,
    ) -> Result<Value, ApiError> {
        let cid = Cid::new(channel_type, id)?.to_string();
        let conn = session.connection_id.clone().ok_or_else(|| {
            ApiError::field(
                "connection_id",
                "stop-watching needs the connection_id of the socket that watches",
            )
        })?;
        let user = session.caller.user_id().unwrap_or_default().to_string();
        let watcher = self
            .channel_watches(&cid)
            .await?
            .into_iter()
            .find(|w| w.connection_id == conn)
            .map(|w| w.user_id)
            .unwrap_or(user);
        self.stop_watching(&conn, &cid, &watcher).await?;
        Ok(json!({}))
    }

    /// Who reads messages in this channel: the reader and whether their roles may read others'
    /// restricted-visibility messages (server-side without a user reads everything).
    /// The viewer of messages in this channel: the reader and whether they read others'
    /// restricted messages.
    pub(crate) async fn viewer<'a>(
        &self,
        session: &Session,
        config: &ChannelTypeConfig,
        loaded: &Loaded,
        reader: Option<&'a str>,
    ) -> Result<Viewer<'a>, ApiError> {
        // `message_retention` (days) applies when messages are read; older ones are gone.
        let retention = loaded
            .channel
            .effective_config(config, &[])?
            .retention_days();
        let blocked = match reader {
            Some(r) => self
                .user_blocks(r)
                .await?
                .into_iter()
                .map(|b| b.blocked_user_id)
                .collect(),
            None => Vec::new(),
        };
        Ok(Viewer {
            user_id: reader,
            reads_restricted: self.viewer_grants(session, config, loaded, reader).await?,
            retained_since: retention
                .map(|days| self.now() - chrono::Duration::days(i64::from(days))),
            blocked: std::sync::Arc::new(blocked),
        })
    }

    async fn viewer_grants(
        &self,
        session: &Session,
        config: &ChannelTypeConfig,
        loaded: &Loaded,
        reader: Option<&str>,
    ) -> Result<bool, ApiError> {
        const ACTION: &str = "ReadRestrictedVisibilityMessage";
        let (role, teams) = match (&session.caller, reader) {
            (Caller::Server, None) => return Ok(true),
            (Caller::Server, Some(uid)) => match self.get_user(uid).await? {
                Some((user, _)) => (user.role, user.teams),
                None => return Ok(false),
            },
            (caller, _) => (caller.role().to_string(), caller.teams().to_vec()),
        };
        // Seed ("Restricted Message Delivery"): by default admins read restricted messages; the
        // grant tables do not list the permission, so it is the admin default here and a grant
        // for any other role.
        if role == "admin" {
            return Ok(true);
        }
        let uid = reader.unwrap_or_default();
        let channel_role = loaded
            .members
            .iter()
            .find(|m| m.user_id == uid)
            .map(|m| m.channel_role.as_str());
        let grants = loaded.channel.effective_grants(&config.grants, &[])?;
        let subject = permissions::Subject {
            user_id: uid,
            role: &role,
            channel_role,
            teams: &teams,
        };
        let resource = Resource {
            owner_id: loaded.channel.created_by_id.as_deref(),
            team: loaded.channel.team.as_deref(),
        };
        Ok(session.settings.disable_permissions_checks
            || permissions::is_allowed(&grants, &subject, ACTION, &resource))
    }

    /// The channel a request names, with its type's config, once the caller may read it.
    pub(crate) async fn readable_channel(
        &self,
        session: &Session,
        channel_type: &str,
        id: &str,
    ) -> Result<(String, ChannelTypeConfig, Loaded), ApiError> {
        let cid = Cid::new(channel_type, id)?.to_string();
        let config = self.channel_config(channel_type).await?;
        let loaded = self.require_channel(&cid).await?;
        self.check_readable(session, &config, &loaded)?;
        Ok((cid, config, loaded))
    }

    /// Reads of a channel by a client: `ReadChannel`, and a disabled channel answers 403.
    pub(crate) fn check_readable(
        &self,
        session: &Session,
        config: &ChannelTypeConfig,
        loaded: &Loaded,
    ) -> Result<(), ApiError> {
        if session.caller.is_server() {
            return Ok(());
        }
        if loaded.channel.disabled {
            return Err(ApiError::not_allowed(format!(
                "channel {} is disabled",
                loaded.channel.cid
            )));
        }
        self.check_channel_action(
            session,
            config,
            Some(loaded),
            &loaded.channel,
            "ReadChannel",
        )
    }
}
