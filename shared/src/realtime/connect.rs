//! Opening a WebSocket session, the same for chat-local's sockets and API Gateway's `$connect`:
//! the query the JS client sends (`json`, `api_key`, `authorization`, `stream-auth-type`),
//! authentication, the user upserted from `user_details` (never its role), and the
//! `health.check` hello carrying `connection_id` and `me`.

use crate::domain::caller::{Caller, Session};
use crate::domain::user::ANONYMOUS_USER_ID;
use crate::domain::ApiError;
use crate::http::auth::{authenticate, Credentials};
use crate::http::reply::error_body;
use crate::service::users::{refuse_client_change, server_controlled_fields};
use crate::service::Chat;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Who opened a connection.
pub struct Opened {
    pub session: Session,
    pub user_id: String,
}

/// Where a connect request arrived: the host and the paths a SigV4 pre-signed URL may have been
/// signed for (`/connect` on chat-local; through API Gateway also the stage, `/<stage>`).
pub struct Arrival {
    pub host: String,
    pub paths: Vec<String>,
    /// The address the connection came from (IP bans), when known.
    pub ip: Option<String>,
}

/// Authenticates a connect request and brings the user up to date from `user_details`.
pub async fn open(
    chat: &Chat,
    query: &HashMap<String, String>,
    arrival: &Arrival,
) -> Result<Opened, ApiError> {
    let pairs: Vec<(String, String)> = query.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if super::sigv4::is_presigned(&pairs) {
        return open_presigned(chat, query, &pairs, arrival).await;
    }
    let creds = Credentials {
        api_key: query.get("api_key").cloned(),
        auth_type: query.get("stream-auth-type").cloned(),
        token: query.get("authorization").cloned(),
    };
    let payload: Map<String, Value> = match query.get("json") {
        None => Map::new(),
        Some(raw) => serde_json::from_str(raw).map_err(|e| {
            ApiError::input(format!(
                "the json parameter is not valid: {}",
                crate::domain::error::describe_json_error(&e)
            ))
        })?,
    };
    let session = authenticate(chat, creds).await?;
    let details = payload
        .get("user_details")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let user_id = match &session.caller {
        // An anonymous connection is a visitor of its own for the socket's lifetime, whatever
        // its payload names: `!anon-…` can be no user's id, so it hears no user's events.
        Caller::Anonymous => format!("{ANONYMOUS_USER_ID}-{}", crate::domain::ids::random_id()),
        Caller::Server => {
            return Err(ApiError::auth(
                "server-side tokens cannot open a WebSocket; connect as a user",
            ))
        }
        caller => caller.user_id().unwrap_or_default().to_string(),
    };
    if let Some(ip) = &arrival.ip {
        let user = (!matches!(session.caller, Caller::Anonymous)).then_some(user_id.as_str());
        chat.admit_connection(ip, user).await?;
    }
    if let Some(claimed) = payload.get("user_id").and_then(Value::as_str) {
        if !matches!(session.caller, Caller::Anonymous) && claimed != user_id {
            return Err(ApiError::auth(format!(
                "the token is for user {user_id:?}, not {claimed:?}"
            )));
        }
    }
    if !matches!(session.caller, Caller::Anonymous) {
        let current = chat.get_user(&user_id).await?.map(|(u, _)| u);
        refuse_client_change(
            &session,
            current.as_ref(),
            &server_controlled_fields(&details),
        )?;
        let mut user: Map<String, Value> = details
            .into_iter()
            .filter(|(k, _)| crate::domain::user::is_client_settable(k))
            .collect();
        user.insert("id".into(), Value::String(user_id.clone()));
        // Only a change is written: reconnecting with the same details is no `user.updated` for
        // every watcher of the user's channels.
        let changes = match current.as_ref().map(|u| u.to_json()) {
            None => true,
            Some(stored) => user
                .iter()
                .any(|(k, v)| k != "id" && stored.get(k) != Some(v)),
        };
        if changes {
            // Upserted as the server would, merging (a partial update keeps other fields).
            chat.connect_user_details(&user_id, user).await?;
        }
    }
    // A device the app set before connecting (`setLocalDevice`) is registered for the user.
    if let Some(device) = payload.get("device").filter(|d| d.is_object()) {
        if !matches!(session.caller, Caller::Anonymous) {
            let device: crate::domain::device::NewDevice = serde_json::from_value(device.clone())
                .map_err(|_| {
                ApiError::field(
                    "device",
                    "device must be {id, push_provider, push_provider_name}",
                )
            })?;
            chat.add_device(&session, device).await?;
        }
    }
    Ok(Opened { session, user_id })
}

/// A SigV4 pre-signed connect: the app key and secret are the credentials, the user is
/// `user_id` (or the last part of an `userArn`).
async fn open_presigned(
    chat: &Chat,
    query: &HashMap<String, String>,
    pairs: &[(String, String)],
    arrival: &Arrival,
) -> Result<Opened, ApiError> {
    let mut verified = Err(ApiError::auth("the pre-signed URL names no path"));
    for path in &arrival.paths {
        verified = super::sigv4::verify(
            path,
            &arrival.host,
            pairs,
            &chat.keys.api_key,
            &chat.keys.api_secret,
            chat.now(),
        );
        if verified.is_ok() {
            break;
        }
    }
    verified?;
    let user_id = query
        .get("user_id")
        .cloned()
        .or_else(|| {
            query
                .get("userArn")
                .and_then(|a| a.rsplit("/user/").next())
                .map(str::to_string)
        })
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::auth("a pre-signed connect names its user with user_id"))?;
    let session = user_session(chat, &user_id).await?;
    if let Some(ip) = &arrival.ip {
        chat.admit_connection(ip, Some(&user_id)).await?;
    }
    if chat.get_user(&user_id).await?.is_none() {
        let mut user = Map::new();
        user.insert("id".into(), Value::String(user_id.clone()));
        chat.connect_user_details(&user_id, user).await?;
    }
    Ok(Opened { session, user_id })
}

/// A session acting as `user_id`, as a token naming the user would give (deactivated, deleted
/// or banned users refused the same way).
pub async fn user_session(chat: &Chat, user_id: &str) -> Result<Session, ApiError> {
    let settings = chat.app_settings().await?;
    let mut claims = Map::new();
    claims.insert("user_id".into(), Value::String(user_id.to_string()));
    let caller = crate::http::auth::caller_from_claims(chat, &settings, &claims).await?;
    Ok(Session {
        caller,
        settings,
        connection_id: None,
    })
}

/// The first frame of a connection: `health.check` with `connection_id` and `me`.
pub async fn hello(
    chat: &Chat,
    connection_id: &str,
    user_id: &str,
    anonymous: bool,
) -> Result<Value, ApiError> {
    let me = if anonymous {
        json!({ "id": user_id, "role": "anonymous", "mutes": [], "channel_mutes": [], "devices": [], "total_unread_count": 0, "unread_count": 0, "unread_channels": 0, "unread_threads": 0 })
    } else {
        chat.own_user(user_id).await?
    };
    Ok(json!({
        "type": "health.check",
        "connection_id": connection_id,
        "cid": "*",
        "me": me,
        "created_at": chat.now_str(),
    }))
}

/// A `health.check` answer (and the periodic keep-alive).
pub fn health_check(chat: &Chat, connection_id: &str) -> Value {
    json!({ "type": "health.check", "connection_id": connection_id, "cid": "*", "created_at": chat.now_str() })
}

/// The frame a refused connect gets before the socket closes with 1000.
pub fn error_frame(e: &ApiError) -> Value {
    let mut body = error_body(e);
    body.insert("duration".into(), Value::String(String::new()));
    json!({ "error": body })
}
