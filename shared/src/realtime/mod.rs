//! Real time: WebSocket connections and their records, channel watching, and delivering every
//! outbox event to the connections it concerns (fan-out). The gateway that reaches a connection
//! is a port: in-process sockets locally, the API Gateway Management API in AWS.

pub mod apigw;
pub mod aws;
pub mod connect;
pub mod delivery;
pub mod local;
pub mod sigv4;
pub mod sqs;

use crate::domain::ApiError;
use crate::service::decode;
use crate::service::Chat;
use crate::service::{contention_pause, CONTENDED_ATTEMPTS};
use crate::store::layout::{
    connection_key, host_connections_pk, online_key, presence_sub_key, presence_subs_of_pk,
    user_connections_pk, watch_key, watches_of_pk,
};
use crate::store::{query_all, Condition, Index, Item, Query, StoreError, TableName, Write};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Users one `presence: true` request subscribes to (seed: up to 30).
pub const MAX_PRESENCE_SUBSCRIPTIONS: usize = 30;

/// Above this many watchers a channel is busy: read and typing events are not sent, watching
/// events at most every 5 s, and events carry no per-recipient fields.
pub const BUSY_CHANNEL_WATCHERS: usize = 100;

/// Connection records expire if nothing refreshes them (a crashed process leaves no ghosts).
pub const CONNECTION_TTL_SECS: i64 = 3600;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The connection is gone: its records should be removed.
    #[error("connection gone")]
    Gone,
    #[error("gateway: {0}")]
    Other(String),
}

/// Sends a text frame to one connection.
#[async_trait]
pub trait Gateway: Send + Sync {
    async fn post(&self, connection_id: &str, frame: &str) -> Result<(), GatewayError>;
    /// Closes a connection from the server side.
    async fn close(&self, connection_id: &str) -> Result<(), GatewayError>;
}

/// A WebSocket connection as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub connection_id: String,
    pub user_id: String,
    pub connected_at: String,
    #[serde(default)]
    pub anonymous: bool,
    /// `prefetch-on=connect`: the user's channel details follow the hello.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prefetch: bool,
    /// A connect that was refused: the error frame to send before the gateway closes it (API
    /// Gateway cannot answer during `$connect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<Value>,
}

/// One connection watching one channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Watch {
    pub cid: String,
    pub connection_id: String,
    pub user_id: String,
    pub created_at: String,
}

impl Chat {
    fn ttl(&self) -> i64 {
        self.now().timestamp() + CONNECTION_TTL_SECS
    }

    /// Records a new connection of `user_id`; true when it is the user's first (they come online).
    pub async fn open_connection(
        &self,
        connection_id: &str,
        user_id: &str,
        host: &str,
        anonymous: bool,
        prefetch: bool,
    ) -> Result<bool, ApiError> {
        let first = self.user_connections(user_id).await?.is_empty();
        let conn = Connection {
            connection_id: connection_id.into(),
            user_id: user_id.into(),
            connected_at: self.now_str(),
            anonymous,
            prefetch,
            refused: None,
        };
        let (pk, sk) = connection_key(connection_id);
        let mut item = Item::new(pk, sk, serde_json::to_value(&conn).unwrap_or(Value::Null))
            .with_gsi1(user_connections_pk(user_id), connection_id)
            .with_gsi2(host_connections_pk(host), connection_id);
        item.ttl = Some(self.ttl());
        for attempt in 1..=CONTENDED_ATTEMPTS {
            let (count, version) = self.open_count(user_id).await?;
            let writes = vec![
                Write::Put {
                    table: TableName::Connections,
                    item: item.clone(),
                    condition: Condition::None,
                },
                open_count_write(user_id, count + 1, version),
            ];
            match self.store.transact(writes).await {
                Ok(()) => return Ok(first),
                Err(StoreError::TransactionCanceled { .. }) => contention_pause(attempt).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::internal(format!(
            "the connections of {user_id:?} keep changing"
        )))
    }

    /// A user's count of open connections ([`online_key`]) and the version it was read at (0:
    /// none stored).
    async fn open_count(&self, user_id: &str) -> Result<(u64, u64), ApiError> {
        let (pk, sk) = online_key(user_id);
        Ok(self
            .store
            .get(TableName::Connections, &pk, &sk)
            .await?
            .map_or((0, 0), |i| {
                (i.data["connections"].as_u64().unwrap_or(0), i.version)
            }))
    }

    /// Which of `users` may have a connection: one batch read of their open-connection counts.
    pub(crate) async fn maybe_connected(
        &self,
        users: &[&str],
    ) -> Result<BTreeSet<String>, ApiError> {
        if users.is_empty() {
            return Ok(BTreeSet::new());
        }
        let keys: Vec<(String, String)> = users.iter().map(|u| online_key(u)).collect();
        Ok(self
            .store
            .batch_get(TableName::Connections, &keys)
            .await?
            .into_iter()
            .filter(|i| i.data["connections"].as_u64().unwrap_or(0) > 0)
            .filter_map(|i| i.pk.strip_prefix("online#").map(str::to_string))
            .collect())
    }

    /// Records a refused connect (its error frame), for the gateway to deliver and then close.
    pub async fn record_refused_connection(
        &self,
        connection_id: &str,
        frame: Value,
    ) -> Result<(), ApiError> {
        let conn = Connection {
            connection_id: connection_id.into(),
            user_id: String::new(),
            connected_at: self.now_str(),
            anonymous: true,
            prefetch: false,
            refused: Some(frame),
        };
        let (pk, sk) = connection_key(connection_id);
        let mut item = Item::new(pk, sk, serde_json::to_value(&conn).unwrap_or(Value::Null));
        item.ttl = Some(self.now().timestamp() + 60);
        self.store
            .write(Write::Put {
                table: TableName::Connections,
                item,
                condition: Condition::None,
            })
            .await?;
        Ok(())
    }

    /// The unexpired items of the connections table under `pk` (on `index` when given), every
    /// page of them.
    async fn live_items(&self, pk: String, index: Option<Index>) -> Result<Vec<Item>, ApiError> {
        let now = self.now().timestamp();
        let mut query = Query::new(TableName::Connections, pk);
        if let Some(index) = index {
            query = query.index(index);
        }
        Ok(query_all(self.store.as_ref(), query)
            .await?
            .into_iter()
            .filter(|i| i.ttl.is_none_or(|t| t > now))
            .collect())
    }

    /// Keeps a live connection's records (the connection, its watches and presence
    /// subscriptions) from expiring: they are rewritten with a fresh expiry once half of
    /// [`CONNECTION_TTL_SECS`] has passed. Called on the connection's keep-alive; false when the
    /// connection is gone.
    pub async fn refresh_connection(&self, connection_id: &str) -> Result<bool, ApiError> {
        let (pk, sk) = connection_key(connection_id);
        let Some(conn) = self.store.get(TableName::Connections, &pk, &sk).await? else {
            return Ok(false);
        };
        let now = self.now().timestamp();
        if conn.ttl.is_none_or(|t| t - now > CONNECTION_TTL_SECS / 2) {
            return Ok(true);
        }
        let mut items = vec![conn];
        for of in [
            watches_of_pk(connection_id),
            presence_subs_of_pk(connection_id),
        ] {
            items.extend(self.live_items(of, Some(Index::Gsi1)).await?);
        }
        let ttl = self.ttl();
        for mut item in items {
            item.ttl = Some(ttl);
            // Only what still exists: a connection closing meanwhile is not brought back.
            self.store
                .write(Write::Put {
                    table: TableName::Connections,
                    item,
                    condition: Condition::Exists,
                })
                .await
                .or_else(|e| match e {
                    crate::store::StoreError::ConditionFailed => Ok(()),
                    e => Err(e),
                })?;
        }
        Ok(true)
    }

    /// A connection's record.
    pub async fn connection(&self, connection_id: &str) -> Result<Option<Connection>, ApiError> {
        let (pk, sk) = connection_key(connection_id);
        Ok(self
            .store
            .get(TableName::Connections, &pk, &sk)
            .await?
            .and_then(|i| serde_json::from_value(i.data).ok()))
    }

    /// `presence: true`: the connection hears about these users' presence (at most 30 per call).
    pub async fn subscribe_presence(
        &self,
        connection_id: &str,
        user_ids: &[&str],
    ) -> Result<(), ApiError> {
        if self.connection(connection_id).await?.is_none() {
            return Ok(());
        }
        let writes: Vec<Write> = user_ids
            .iter()
            .take(MAX_PRESENCE_SUBSCRIPTIONS)
            .map(|u| {
                let (pk, sk) = presence_sub_key(u, connection_id);
                let mut item = Item::new(
                    pk,
                    sk,
                    json!({ "user_id": u, "connection_id": connection_id }),
                )
                .with_gsi1(presence_subs_of_pk(connection_id), *u);
                item.ttl = Some(self.ttl());
                Write::Put {
                    table: TableName::Connections,
                    item,
                    condition: Condition::None,
                }
            })
            .collect();
        for batch in writes.chunks(25) {
            self.store.transact(batch.to_vec()).await?;
        }
        Ok(())
    }

    /// The connections subscribed to a user's presence.
    async fn presence_subscribers(&self, user_id: &str) -> Result<Vec<String>, ApiError> {
        let (pk, _) = presence_sub_key(user_id, "");
        Ok(self
            .live_items(pk, None)
            .await?
            .into_iter()
            .map(|i| i.sk)
            .collect())
    }

    /// Closes every connection a host (a chat-local process) left behind when it stopped: their
    /// sockets are gone, so their watches and presence must go too.
    pub async fn close_host_connections(&self, host: &str) -> Result<usize, ApiError> {
        let mut closed = 0;
        for item in self
            .live_items(host_connections_pk(host), Some(Index::Gsi2))
            .await?
        {
            if let Ok(conn) = serde_json::from_value::<Connection>(item.data) {
                if self.close_connection(&conn.connection_id).await? {
                    self.set_online(&conn.user_id, false).await?;
                }
                closed += 1;
            }
        }
        Ok(closed)
    }

    /// Removes a connection and its watches; true when it was the user's last (they go offline).
    /// The channels it stopped watching get `user.watching.stop`.
    pub async fn close_connection(&self, connection_id: &str) -> Result<bool, ApiError> {
        let (pk, sk) = connection_key(connection_id);
        let Some(item) = self.store.get(TableName::Connections, &pk, &sk).await? else {
            return Ok(false);
        };
        let conn: Connection = decode(item.data, "connection")?;
        for w in self.connection_watches(connection_id).await? {
            self.stop_watching(connection_id, &w.cid, &conn.user_id)
                .await?;
        }
        for item in self
            .live_items(presence_subs_of_pk(connection_id), Some(Index::Gsi1))
            .await?
        {
            self.store
                .write(Write::Delete {
                    table: TableName::Connections,
                    pk: item.pk,
                    sk: item.sk,
                    condition: Condition::None,
                })
                .await?;
        }
        // The record goes with one off its user's open-connection count: only the closer that
        // removes the record counts it.
        for attempt in 1..=CONTENDED_ATTEMPTS {
            let (count, version) = self.open_count(&conn.user_id).await?;
            let mut writes = vec![Write::Delete {
                table: TableName::Connections,
                pk: pk.clone(),
                sk: sk.clone(),
                condition: Condition::Exists,
            }];
            if version > 0 {
                writes.push(open_count_write(
                    &conn.user_id,
                    count.saturating_sub(1),
                    version,
                ));
            }
            match self.store.transact(writes).await {
                Ok(()) => break,
                Err(StoreError::TransactionCanceled { .. }) => {
                    if self
                        .store
                        .get(TableName::Connections, &pk, &sk)
                        .await?
                        .is_none()
                    {
                        return Ok(false);
                    }
                    contention_pause(attempt).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(self.user_connections(&conn.user_id).await?.is_empty())
    }

    pub async fn user_connections(&self, user_id: &str) -> Result<Vec<Connection>, ApiError> {
        Ok(self
            .live_items(user_connections_pk(user_id), Some(Index::Gsi1))
            .await?
            .into_iter()
            .filter_map(|i| serde_json::from_value(i.data).ok())
            .collect())
    }

    async fn connection_watches(&self, connection_id: &str) -> Result<Vec<Watch>, ApiError> {
        Ok(self
            .live_items(watches_of_pk(connection_id), Some(Index::Gsi1))
            .await?
            .into_iter()
            .filter_map(|i| serde_json::from_value(i.data).ok())
            .collect())
    }

    /// The connections watching a channel.
    pub async fn channel_watches(&self, cid: &str) -> Result<Vec<Watch>, ApiError> {
        let (pk, _) = watch_key(cid, "");
        Ok(self
            .live_items(pk, None)
            .await?
            .into_iter()
            .filter_map(|i| serde_json::from_value(i.data).ok())
            .collect())
    }

    /// The users watching a channel (each once), for `watcher_count` and `watchers`.
    pub async fn channel_watchers(&self, cid: &str) -> Result<Vec<String>, ApiError> {
        let watches = self.channel_watches(cid).await?;
        Ok(watching_users(&watches)
            .into_iter()
            .map(str::to_string)
            .collect())
    }

    /// `connection_id` watches the channel for its user; `user.watching.start` when the user was not
    /// already watching through another connection.
    pub async fn watch_channel(
        &self,
        connection_id: &str,
        channel: &crate::domain::channel::Channel,
    ) -> Result<(), ApiError> {
        let cid = channel.cid.as_str();
        let Some(conn) = self.connection(connection_id).await? else {
            // An unknown or closed connection: nothing to subscribe (the client reconnects and
            // recovers its channels).
            return Ok(());
        };
        let user_id = conn.user_id.as_str();
        let watches = self.channel_watches(cid).await?;
        if watches.iter().any(|w| w.connection_id == connection_id) {
            return Ok(());
        }
        let already = watches.iter().any(|w| w.user_id == user_id);
        let watch = Watch {
            cid: cid.into(),
            connection_id: connection_id.into(),
            user_id: user_id.into(),
            created_at: self.now_str(),
        };
        let (pk, sk) = watch_key(cid, connection_id);
        let mut item = Item::new(pk, sk, serde_json::to_value(&watch).unwrap_or(Value::Null))
            .with_gsi1(watches_of_pk(connection_id), cid);
        item.ttl = Some(self.ttl());
        let mut writes = vec![Write::Put {
            table: TableName::Connections,
            item,
            condition: Condition::None,
        }];
        if !already {
            let count = watching_users(&watches).len() + 1;
            let user = self
                .get_user(user_id)
                .await?
                .map(|(u, _)| u.to_json())
                .unwrap_or_else(|| json!({ "id": user_id }));
            let event = crate::service::channel_record::channel_event(
                "user.watching.start",
                channel,
                self.now(),
            )
            .with("user", user)
            .with("watcher_count", count.into());
            writes.push(crate::store::layout::outbox_write(&event));
        }
        self.store.transact(writes).await?;
        Ok(())
    }

    /// Stops one connection watching a channel; `user.watching.stop` when no connection of the
    /// user watches it any more.
    pub async fn stop_watching(
        &self,
        connection_id: &str,
        cid: &str,
        user_id: &str,
    ) -> Result<(), ApiError> {
        let (pk, sk) = watch_key(cid, connection_id);
        self.store
            .write(Write::Delete {
                table: TableName::Connections,
                pk,
                sk,
                condition: Condition::None,
            })
            .await?;
        let watching = self.channel_watches(cid).await?;
        if !watching.iter().any(|w| w.user_id == user_id) {
            if let Some(loaded) = self.load_channel(cid).await? {
                let count = watching_users(&watching).len();
                let event = crate::service::channel_record::channel_event(
                    "user.watching.stop",
                    &loaded.channel,
                    self.now(),
                )
                .with("user", json!({ "id": user_id }))
                .with("watcher_count", count.into());
                self.store
                    .write(crate::store::layout::outbox_write(&event))
                    .await?;
            }
        }
        Ok(())
    }
}

/// The users behind a channel's watches, each once (`watcher_count`, `watchers`).
fn watching_users(watches: &[Watch]) -> BTreeSet<&str> {
    watches.iter().map(|w| w.user_id.as_str()).collect()
}

/// The write of a user's open-connection count read at `version` (0: none stored); at zero the
/// count is removed.
fn open_count_write(user_id: &str, count: u64, version: u64) -> Write {
    let (pk, sk) = online_key(user_id);
    if count == 0 {
        return Write::Delete {
            table: TableName::Connections,
            pk,
            sk,
            condition: Condition::Version(version),
        };
    }
    Write::put_read_at(
        TableName::Connections,
        Item::new(pk, sk, json!({ "connections": count })),
        version,
    )
}
