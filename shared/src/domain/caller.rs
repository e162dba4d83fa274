//! Who is making a request, as established by authentication: the server (full access), a
//! user (permission-checked) or an anonymous visitor (reads only where grants allow).

use crate::domain::permissions::Subject;
use crate::domain::user::{User, ANONYMOUS_ROLE, ANONYMOUS_USER_ID, DEFAULT_ROLE};
use crate::domain::ApiError;

#[derive(Clone, Debug, PartialEq)]
pub enum Caller {
    /// A server-side token: no permission checks.
    Server,
    /// A user token. `user` is `None` until the user first exists (connect creates it).
    User {
        id: String,
        user: Option<Box<User>>,
    },
    Anonymous,
}

impl Caller {
    pub fn is_server(&self) -> bool {
        matches!(self, Caller::Server)
    }

    pub fn user_id(&self) -> Option<&str> {
        match self {
            Caller::Server => None,
            Caller::User { id, .. } => Some(id),
            Caller::Anonymous => Some(ANONYMOUS_USER_ID),
        }
    }

    pub fn role(&self) -> &str {
        match self {
            Caller::Server => "admin",
            Caller::User { user: Some(u), .. } => &u.role,
            Caller::User { user: None, .. } => DEFAULT_ROLE,
            Caller::Anonymous => ANONYMOUS_ROLE,
        }
    }

    pub fn teams(&self) -> &[String] {
        match self {
            Caller::User { user: Some(u), .. } => &u.teams,
            _ => &[],
        }
    }

    /// The permission subject, with the caller's role in a channel when it is a member.
    pub fn subject<'a>(&'a self, channel_role: Option<&'a str>) -> Subject<'a> {
        Subject {
            user_id: self.user_id().unwrap_or(""),
            role: self.role(),
            channel_role,
            teams: self.teams(),
        }
    }

    /// Refuse anything but a server-side token.
    pub fn require_server(&self, what: &str) -> Result<(), ApiError> {
        if self.is_server() {
            Ok(())
        } else {
            Err(ApiError::not_allowed(format!(
                "{what} is allowed only with server-side authentication"
            )))
        }
    }
}

/// An authenticated request: who is asking, and the app settings read while authenticating
/// (so a request path reads them once).
#[derive(Clone, Debug)]
pub struct Session {
    pub caller: Caller,
    /// Shared, not copied: every request has them.
    pub settings: std::sync::Arc<crate::domain::app_settings::AppSettings>,
    /// The caller's WebSocket connection (`connection_id` on REST calls): what `watch` and
    /// `presence` subscribe.
    pub connection_id: Option<String>,
}

impl Session {
    /// A server-side session, for work the product does on its own behalf (tasks, tests).
    pub fn server(settings: std::sync::Arc<crate::domain::app_settings::AppSettings>) -> Self {
        Session {
            caller: Caller::Server,
            settings,
            connection_id: None,
        }
    }
}
