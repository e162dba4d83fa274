//! chat-local's long-poll transport (`GET /longpoll`), for clients that cannot keep a WebSocket
//! (the JS client's `enableWSFallback`): a connect without `connection_id` opens a session like
//! `/connect` and answers `{"event": <hello>}`; each poll with the `connection_id` waits up to
//! 20 s for that connection's events and answers `{"events": [...]}` in order; `close=true` ends
//! it. A connection that stops polling for a minute is closed. An unknown connection id is code
//! 46, after which the client connects again.

use crate::ws::{begin, end, Realtime};
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use axum::Router;
use serde_json::{json, Value};
use shared::domain::caller::Caller;
use shared::domain::{ApiError, ErrorCode};
use shared::http::auth::{authenticate, Credentials};
use shared::http::reply::ErrorReply;
use shared::realtime::connect;
use shared::service::Chat;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

/// How long a poll waits for the first event (the client gives up after 30 s).
const POLL_WAIT: Duration = Duration::from_secs(20);
/// A connection with no poll for this long is closed.
const IDLE_CLOSE: Duration = Duration::from_secs(60);

/// One long-poll connection: its user and its queued frames.
struct Poller {
    user_id: String,
    anonymous: bool,
    frames: tokio::sync::Mutex<UnboundedReceiver<String>>,
    last_poll: Mutex<Instant>,
}

/// The open long-poll connections of this process.
#[derive(Default)]
pub struct LongPolls {
    open: Mutex<HashMap<String, Arc<Poller>>>,
}

impl LongPolls {
    fn get(&self, id: &str) -> Option<Arc<Poller>> {
        self.open.lock().ok()?.get(id).cloned()
    }

    fn remove(&self, id: &str) -> Option<Arc<Poller>> {
        self.open.lock().ok()?.remove(id)
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `GET /longpoll`, a route among the REST routes (the same edge: envelope, CORS, headers).
pub fn routes(rt: Realtime) -> Router<Chat> {
    Router::new().route(
        "/longpoll",
        get(
            move |Query(query): Query<HashMap<String, String>>,
                  headers: HeaderMap,
                  extensions: axum::http::Extensions| {
                longpoll(rt.clone(), query, headers, super::ws::peer_ip(&extensions))
            },
        ),
    )
}

async fn longpoll(
    rt: Realtime,
    query: HashMap<String, String>,
    headers: HeaderMap,
    ip: Option<String>,
) -> Response {
    let creds = Credentials {
        api_key: query.get("api_key").cloned(),
        auth_type: header(&headers, "stream-auth-type"),
        token: header(&headers, "authorization"),
    };
    let result = match query.get("connection_id").filter(|c| !c.is_empty()) {
        None => open(&rt, &query, creds, ip).await,
        Some(id) if query.get("close").map(String::as_str) == Some("true") => {
            close(&rt, id, creds).await
        }
        Some(id) => poll(&rt, id, creds).await,
    };
    match result {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(e) => ErrorReply(e).into_response(),
    }
}

/// The connect: the same authentication and user upsert as `/connect`, then the hello.
async fn open(
    rt: &Realtime,
    query: &HashMap<String, String>,
    creds: Credentials,
    ip: Option<String>,
) -> Result<Value, ApiError> {
    let mut params = query.clone();
    params.extend(
        [
            ("authorization", creds.token),
            ("stream-auth-type", creds.auth_type),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v))),
    );
    let arrival = connect::Arrival {
        host: String::new(),
        paths: Vec::new(),
        ip,
    };
    let opened = connect::open(&rt.chat, &params, &arrival).await?;
    let anonymous = matches!(opened.session.caller, Caller::Anonymous);
    let (connection_id, frames, hello) = begin(rt, &opened.user_id, anonymous).await?;
    let poller = Arc::new(Poller {
        user_id: opened.user_id,
        anonymous,
        frames: tokio::sync::Mutex::new(frames),
        last_poll: Mutex::new(Instant::now()),
    });
    if let Ok(mut open) = rt.polls.open.lock() {
        open.insert(connection_id, poller);
    }
    Ok(json!({ "event": hello }))
}

/// The connection named by a poll or close, if it belongs to the caller.
async fn owned(rt: &Realtime, id: &str, creds: Credentials) -> Result<Arc<Poller>, ApiError> {
    let session = authenticate(&rt.chat, creds).await?;
    let unknown = || {
        ApiError::new(
            ErrorCode::ConnectionIdNotFound,
            format!("connection {id:?} does not exist; connect again"),
        )
    };
    let poller = rt.polls.get(id).ok_or_else(unknown)?;
    let caller = session.caller.user_id().unwrap_or_default();
    if !poller.anonymous && caller != poller.user_id {
        return Err(unknown());
    }
    Ok(poller)
}

/// Waits for the connection's next events (at most [`POLL_WAIT`]) and hands over all queued.
async fn poll(rt: &Realtime, id: &str, creds: Credentials) -> Result<Value, ApiError> {
    let poller = owned(rt, id, creds).await?;
    let touch = || {
        if let Ok(mut t) = poller.last_poll.lock() {
            *t = Instant::now();
        }
    };
    touch();
    let mut frames = poller.frames.lock().await;
    let mut stopping = rt.stopping.clone();
    let mut events = Vec::new();
    tokio::select! {
        first = frames.recv() => match first {
            Some(f) => events.push(f),
            None => return Err(ApiError::new(ErrorCode::ConnectionIdNotFound, "the connection was closed; connect again")),
        },
        _ = tokio::time::sleep(POLL_WAIT) => {}
        _ = stopping.changed() => {}
    }
    while let Ok(f) = frames.try_recv() {
        events.push(f);
    }
    touch();
    if let Err(e) = rt.chat.refresh_connection(id).await {
        tracing::warn!(connection = id, error = %e, "refreshing a connection failed");
    }
    let events: Vec<Value> = events
        .iter()
        .filter_map(|f| serde_json::from_str(f).ok())
        .collect();
    Ok(json!({ "events": events }))
}

async fn close(rt: &Realtime, id: &str, creds: Credentials) -> Result<Value, ApiError> {
    let poller = owned(rt, id, creds).await?;
    if rt.polls.remove(id).is_some() {
        end(rt, id, &poller.user_id, poller.anonymous).await;
    }
    Ok(json!({}))
}

/// Closes long-poll connections that stopped polling, until the process stops.
pub async fn close_idle(rt: Realtime) {
    let mut stopping = rt.stopping.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
            _ = stopping.changed() => return,
        }
        let idle: Vec<(String, Arc<Poller>)> = match rt.polls.open.lock() {
            Ok(open) => open
                .iter()
                .filter(|(_, p)| {
                    p.last_poll.lock().is_ok_and(|t| t.elapsed() > IDLE_CLOSE)
                        && p.frames.try_lock().is_ok()
                })
                .map(|(id, p)| (id.clone(), p.clone()))
                .collect(),
            Err(_) => continue,
        };
        for (id, p) in idle {
            rt.polls.remove(&id);
            end(&rt, &id, &p.user_id, p.anonymous).await;
        }
    }
}
