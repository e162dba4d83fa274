//! chat-local's WebSocket side: `GET /connect` sockets on the same port as REST (`/longpoll` is
//! in `longpoll`), the start and end of every session, and the fan-out task that tails the
//! outbox (the events table's change feed) and delivers each event through the in-process
//! gateway.

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use shared::domain::caller::Caller;
use shared::domain::ApiError;
use shared::realtime::connect;
use shared::realtime::delivery::Delivery;
use shared::realtime::local::LocalGateway;
use shared::service::Chat;
use shared::store::embedded::Embedded;
use shared::store::{ChangePosition, TableName};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;

/// Keep-alive: a `health.check` at least this often (the JS client gives up after 35 s).
const HEALTH_CHECK_EVERY: Duration = Duration::from_secs(30);
/// The fan-out task wakes on every commit to the outbox; this is only its fallback.
pub const FANOUT_FALLBACK: Duration = Duration::from_secs(1);
/// The host name chat-local's connections are recorded under (one process per data directory).
pub const LOCAL_HOST: &str = "chat-local";
/// Close code of a server restart: the client reconnects (1000 would tell it not to).
const CLOSE_RESTART: u16 = 1012;

#[derive(Clone)]
pub struct Realtime {
    pub chat: Chat,
    pub gateway: Arc<LocalGateway>,
    pub polls: Arc<crate::longpoll::LongPolls>,
    pub stopping: watch::Receiver<bool>,
    pub sockets: Arc<OpenSockets>,
}

/// The WebSockets open now, so a stop can wait for each to send its close frame (hyper does not
/// track upgraded connections in its graceful shutdown).
#[derive(Default)]
pub struct OpenSockets {
    open: std::sync::atomic::AtomicUsize,
    closed: tokio::sync::Notify,
}

/// One open socket; dropping it counts the socket closed.
pub struct SocketGuard(Arc<OpenSockets>);

impl OpenSockets {
    pub fn opened(self: &Arc<Self>) -> SocketGuard {
        self.open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        SocketGuard(self.clone())
    }

    /// Waits until no socket is open, or `limit` has passed.
    pub async fn wait_closed(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            loop {
                let notified = self.closed.notified();
                if self.open.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        })
        .await;
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        self.0
            .open
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.0.closed.notify_waiters();
    }
}

pub fn routes(rt: Realtime) -> Router {
    Router::new()
        .route("/connect", get(connect_socket))
        .with_state(rt)
}

async fn connect_socket(
    State(rt): State<Realtime>,
    Query(query): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
    extensions: axum::http::Extensions,
    ws: WebSocketUpgrade,
) -> Response {
    let ip = peer_ip(&extensions);
    // The Host the request came to: what a SigV4 pre-signed URL was signed for.
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    let guard = rt.sockets.opened();
    ws.on_upgrade(move |socket| async move {
        run(rt, query, host, ip, socket).await;
        drop(guard);
    })
}

/// The address a request came from (IP bans), when the server knows it.
pub fn peer_ip(extensions: &axum::http::Extensions) -> Option<String> {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip().to_string())
}

async fn send_json(socket: &mut WebSocket, v: &serde_json::Value) -> bool {
    socket
        .send(Message::Text(v.to_string().into()))
        .await
        .is_ok()
}

async fn run(
    rt: Realtime,
    query: HashMap<String, String>,
    host: Option<String>,
    ip: Option<String>,
    mut socket: WebSocket,
) {
    let arrival = connect::Arrival {
        host: host.unwrap_or_default(),
        paths: vec!["/connect".into()],
        ip,
    };
    let opened = match connect::open(&rt.chat, &query, &arrival).await {
        Ok(o) => o,
        Err(e) => {
            // Seed 002 / the JS client: an error frame, then close 1000 (do not retry).
            let _ = send_json(&mut socket, &connect::error_frame(&e)).await;
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code: 1000,
                    reason: e.message.clone().into(),
                })))
                .await;
            return;
        }
    };
    let anonymous = matches!(opened.session.caller, Caller::Anonymous);
    let (connection_id, mut outgoing, hello) = match begin(&rt, &opened.user_id, anonymous).await {
        Ok(started) => started,
        Err(e) => {
            let _ = send_json(&mut socket, &connect::error_frame(&e)).await;
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code: 1011,
                    reason: "".into(),
                })))
                .await;
            return;
        }
    };
    let mut stopping = rt.stopping.clone();
    let mut greeted = send_json(&mut socket, &hello).await;
    // Seed 001: `prefetch-on=connect` delivers the user's channel details right after the hello.
    if greeted && !anonymous && query.get("prefetch-on").map(String::as_str) == Some("connect") {
        match rt
            .chat
            .channel_details(&opened.session, &opened.user_id)
            .await
        {
            Ok(details) => {
                for d in &details {
                    greeted = greeted && send_json(&mut socket, d).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "prefetch failed"),
        }
    }
    if greeted {
        let mut keep_alive = tokio::time::interval(HEALTH_CHECK_EVERY);
        keep_alive.tick().await;
        loop {
            tokio::select! {
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        // The client's only frame: `[{"type":"health.check","client_id":...}]`.
                        if text.contains("health.check") && !send_json(&mut socket, &connect::health_check(&rt.chat, &connection_id)).await {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
                frame = outgoing.recv() => match frame {
                    Some(f) => {
                        if socket.send(Message::Text(f.into())).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
                _ = keep_alive.tick() => {
                    if !send_json(&mut socket, &connect::health_check(&rt.chat, &connection_id)).await {
                        break;
                    }
                    if let Err(e) = rt.chat.refresh_connection(&connection_id).await {
                        tracing::warn!(connection = %connection_id, error = %e, "refreshing a connection failed");
                    }
                }
                _ = stopping.changed() => {
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: CLOSE_RESTART, reason: "server restarting".into() }))).await;
                    break;
                }
            }
        }
    }
    end(&rt, &connection_id, &opened.user_id, anonymous).await;
}

/// Starts a session for an authenticated user: a connection id registered with the gateway, its
/// record, presence, and the hello to send first.
pub(crate) async fn begin(
    rt: &Realtime,
    user_id: &str,
    anonymous: bool,
) -> Result<(String, UnboundedReceiver<String>, serde_json::Value), ApiError> {
    let connection_id = shared::domain::ids::random_id();
    let outgoing = rt.gateway.register(&connection_id);
    let opened = async {
        let first = rt
            .chat
            .open_connection(&connection_id, user_id, LOCAL_HOST, anonymous, false)
            .await?;
        if first && !anonymous {
            rt.chat.set_online(user_id, true).await?;
        }
        connect::hello(&rt.chat, &connection_id, user_id, anonymous).await
    }
    .await;
    match opened {
        Ok(hello) => Ok((connection_id, outgoing, hello)),
        Err(e) => {
            end(rt, &connection_id, user_id, anonymous).await;
            Err(e)
        }
    }
}

/// Ends a session: the gateway forgets it, its records go, and the user goes offline with their
/// last connection.
pub(crate) async fn end(rt: &Realtime, connection_id: &str, user_id: &str, anonymous: bool) {
    rt.gateway.unregister(connection_id);
    match rt.chat.close_connection(connection_id).await {
        Ok(true) if !anonymous => {
            let _ = rt.chat.set_online(user_id, false).await;
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(connection = %connection_id, error = %e, "closing a connection failed")
        }
    }
}

/// The outbox's change feed as chat-local reads it: where it ended when the process started
/// (events before that were for sockets that are gone) and the store's commit notifier.
pub struct OutboxFeed {
    pub start: ChangePosition,
    /// The store the feed is read from: its commit notifier wakes the fan-out, and what the
    /// fan-out delivered is forgotten there.
    pub store: Embedded,
    /// How far the hook dispatcher has handed events off: nothing after it is forgotten.
    pub held: watch::Receiver<ChangePosition>,
}

/// Delivered events are forgotten at most this often (each time is one write transaction).
const FORGET_EVERY: Duration = Duration::from_secs(1);

/// Tails the events table from `feed.start` and delivers every new event, waking on each commit
/// (idle, it does nothing).
pub async fn fan_out(
    chat: Chat,
    delivery: Delivery,
    mut stopping: watch::Receiver<bool>,
    feed: OutboxFeed,
) {
    let commits = feed.store.change_notifier();
    let mut position = Some(feed.start);
    let mut forgotten_at = tokio::time::Instant::now();
    let mut delivered: Option<ChangePosition> = None;
    loop {
        // Armed before the read, so a commit between the read and the wait is not missed.
        let committed = commits.notified();
        tokio::pin!(committed);
        committed.as_mut().enable();
        let batch = match chat
            .store
            .read_changes(TableName::Events, position.as_ref(), 500)
            .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "events feed read failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let idle = batch.changes.is_empty();
        for change in &batch.changes {
            if let Some(item) = &change.new {
                if let Err(e) = chat.deliver(&delivery, &item.pk, &item.data).await {
                    tracing::warn!(event = %item.data["type"], error = %e, "delivery failed");
                }
            }
        }
        // What the fan-out delivered and the hook dispatcher handed off is not kept (the store
        // would otherwise hold every event for a day). Forgotten at most once a second while
        // busy, and when the feed goes quiet.
        if !idle {
            delivered = Some(batch.next.clone());
        }
        if let Some(delivered_upto) = delivered
            .as_ref()
            .filter(|_| idle || forgotten_at.elapsed() >= FORGET_EVERY)
        {
            forgotten_at = tokio::time::Instant::now();
            let upto = &crate::hooks::earlier(delivered_upto, &feed.held.borrow());
            if let Err(e) = feed.store.forget_through(TableName::Events, upto).await {
                tracing::warn!(error = %e, "forgetting delivered events failed");
            }
            delivered = None;
        }
        position = Some(batch.next);
        if idle {
            tokio::select! {
                _ = &mut committed => {}
                _ = tokio::time::sleep(FANOUT_FALLBACK) => {}
                _ = stopping.changed() => return,
            }
        }
    }
}
