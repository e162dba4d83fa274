//! The embedded Table adapter: every table in one SQLite database (a file in the data directory,
//! or memory) with DynamoDB's conditional, transactional and TTL semantics, plus a change log in
//! the same database standing in for DynamoDB Streams. One connection writes, on a thread of
//! its own that commits queued writes in groups (`writer`); on a file, reads run on a pool of
//! read-only connections (WAL snapshots), so they never wait behind writes.

mod writer;

use super::{
    is_live, now, validate_transaction, write_key, Change, ChangeBatch, ChangeKind, ChangePosition,
    Condition, Cursor, Index, IndexKey, Item, Page, Query, SkRange, StoreError, Table, TableName,
    Write,
};
use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// File name of the database inside the data directory.
const DATABASE_FILE: &str = "chat.db";
/// Bumped when the schema changes incompatibly; a newer database is refused rather than misread.
/// 2: items in a rowid table keyed by a unique index. (1 kept them in a WITHOUT ROWID table,
/// whose rows spill to a page of their own past about 1 KB: a 1.3 KB event took 5 KB.)
const SCHEMA_VERSION: i64 = 2;
/// DynamoDB Streams keeps records for 24 hours; the local change log keeps as long.
const CHANGE_RETENTION_SECS: i64 = 24 * 3600;
/// DynamoDB refuses items over 400 KB; refusing them here too keeps local runs honest.
const MAX_ITEM_BYTES: usize = 400 * 1024;
const HOUSEKEEPING_INTERVAL_SECS: i64 = 60;
/// Expired items removed per housekeeping pass, so one pass never holds the lock for long.
const PURGE_BATCH: i64 = 500;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS items (
    tbl     TEXT NOT NULL,
    pk      TEXT NOT NULL,
    sk      TEXT NOT NULL,
    gsi1pk  TEXT,
    gsi1sk  TEXT,
    gsi2pk  TEXT,
    gsi2sk  TEXT,
    ttl     INTEGER,
    version INTEGER NOT NULL,
    data    TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS items_key ON items (tbl, pk, sk);
CREATE INDEX IF NOT EXISTS items_gsi1 ON items (tbl, gsi1pk, gsi1sk, pk, sk) WHERE gsi1pk IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_gsi2 ON items (tbl, gsi2pk, gsi2sk, pk, sk) WHERE gsi2pk IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_ttl ON items (ttl) WHERE ttl IS NOT NULL;
CREATE TABLE IF NOT EXISTS changes (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    tbl  TEXT NOT NULL,
    kind TEXT NOT NULL,
    pk   TEXT NOT NULL,
    sk   TEXT NOT NULL,
    old  TEXT,
    new  TEXT,
    at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_by_table ON changes (tbl, seq);
CREATE INDEX IF NOT EXISTS changes_by_age ON changes (at);
";

const ITEM_COLUMNS: &str = "pk, sk, gsi1pk, gsi1sk, gsi2pk, gsi2sk, ttl, version, data";

/// The writer's page cache (SQLite's default is 2 MiB).
const WRITER_CACHE_KIB: i64 = 32 * 1024;

/// Read-only connections of a file database (none in memory: a memory database is one
/// connection's).
const READERS: usize = 4;

/// Change-feed reads of at most this many rows run on the calling worker (see `Embedded::read`).
const SMALL_READ_ROWS: usize = 100;

/// The SQLite-backed store. Cloning shares the same database.
#[derive(Clone)]
pub struct Embedded {
    writer: std::sync::mpsc::Sender<writer::Job>,
    notify: Arc<Notify>,
    readers: Option<Arc<Readers>>,
}

/// The read-only connections, each used by one read at a time.
struct Readers {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl Readers {
    fn open(path: &Path) -> Result<Self, StoreError> {
        let conns = (0..READERS)
            .map(|_| {
                let conn = Connection::open_with_flags(
                    path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(db)?;
                conn.busy_timeout(std::time::Duration::from_secs(5))
                    .map_err(db)?;
                Ok(Mutex::new(conn))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Readers {
            conns,
            next: AtomicUsize::new(0),
        })
    }

    /// A free connection if there is one, else the next in turn (waiting for it).
    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        for conn in &self.conns {
            if let Ok(mut c) = conn.try_lock() {
                return f(&mut c);
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        let mut c = self.conns[i]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut c)
    }
}

struct State {
    conn: Connection,
    last_housekeeping: i64,
}

impl Embedded {
    /// Opens (creating if needed) the database `chat.db` in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Backend(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join(DATABASE_FILE);
        let conn = Connection::open(&path)
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "{} does not support WAL (journal mode {mode})",
                path.display()
            )));
        }
        // In WAL mode NORMAL loses nothing when the process stops or crashes; only a power loss
        // can drop the last commits, which is acceptable for a local server.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db)?;
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
            .map_err(db)?;
        let mut store = Self::with_connection(conn)?;
        // Opened after the writer has created the schema.
        store.readers = Some(Arc::new(Readers::open(&path)?));
        Ok(store)
    }

    /// A throwaway store that lives as long as this value (and its clones).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::with_connection(Connection::open_in_memory().map_err(db)?)
    }

    fn with_connection(conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Backend(format!(
                "database schema version {version} is newer than this build understands ({SCHEMA_VERSION})"
            )));
        }
        if version == 1 {
            // The items move to the rowid table of version 2 (its indexes are recreated).
            conn.execute_batch(
                "BEGIN IMMEDIATE;
                 DROP INDEX IF EXISTS items_gsi1;
                 DROP INDEX IF EXISTS items_gsi2;
                 DROP INDEX IF EXISTS items_ttl;
                 ALTER TABLE items RENAME TO items_v1;",
            )
            .map_err(db)?;
            conn.execute_batch(SCHEMA).map_err(db)?;
            conn.execute_batch(&format!(
                "INSERT INTO items (tbl, {ITEM_COLUMNS}) SELECT tbl, {ITEM_COLUMNS} FROM items_v1;
                 DROP TABLE items_v1;
                 COMMIT;"
            ))
            .map_err(db)?;
        }
        conn.execute_batch(SCHEMA).map_err(db)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(db)?;
        let mut state = State {
            conn,
            last_housekeeping: 0,
        };
        state.housekeeping(now())?;
        let notify = Arc::new(Notify::new());
        let (jobs, queue) = std::sync::mpsc::channel();
        let woken = notify.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer::run(state, queue, woken))
            .map_err(|e| StoreError::Backend(format!("cannot start the store's writer: {e}")))?;
        Ok(Embedded {
            writer: jobs,
            notify,
            readers: None,
        })
    }

    /// Notified after every commit that appended to the change log.
    ///
    /// A worker should create its `notified()` future (and `enable()` it) before reading
    /// changes, so a commit between the read and the wait is not missed; a periodic read as a
    /// fallback costs little.
    pub fn change_notifier(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    /// Where `table`'s change feed ends now: a reader that starts here sees only what commits
    /// next (one index read, however long the retained log is).
    pub async fn change_feed_end(&self, table: TableName) -> Result<ChangePosition, StoreError> {
        self.read(Some(1), move |conn, _now| {
            let seq: i64 = conn
                .query_row(
                    "SELECT COALESCE(MAX(seq), 0) FROM changes WHERE tbl = ?1",
                    params![table.as_str()],
                    |r| r.get(0),
                )
                .map_err(db)?;
            Ok(ChangePosition(seq.to_string()))
        })
        .await
    }

    /// Forgets an append-only table's changes up to `upto` (inclusive) and the items they
    /// inserted: for the outbox, once its only reader has delivered them. Nothing is logged (this
    /// is compaction, not a change). Returns how many changes were forgotten.
    pub async fn forget_through(
        &self,
        table: TableName,
        upto: &ChangePosition,
    ) -> Result<usize, StoreError> {
        if !table.is_append_only() {
            return Err(StoreError::Invalid(format!(
                "table {} is not append-only",
                table.as_str()
            )));
        }
        let upto: i64 = upto
            .0
            .parse()
            .map_err(|_| StoreError::Invalid(format!("bad change position {:?}", upto.0)))?;
        writer::write(&self.writer, move |conn, _now| {
            conn.execute(
                "DELETE FROM items WHERE tbl = ?1 AND (pk, sk) IN
                 (SELECT pk, sk FROM changes WHERE tbl = ?1 AND seq <= ?2 AND kind = 'insert')",
                params![table.as_str(), upto],
            )
            .map_err(db)?;
            let forgotten = conn
                .execute(
                    "DELETE FROM changes WHERE tbl = ?1 AND seq <= ?2",
                    params![table.as_str(), upto],
                )
                .map_err(db)?;
            // Nothing new to read: no reader is woken.
            Ok((forgotten, 0))
        })
        .await
    }

    /// Runs a read: on a read-only connection of the pool when there is one (it sees every
    /// committed write), else on the writer's connection. Key reads and queries run right here
    /// on the worker: they take microseconds to a few milliseconds, less than handing the
    /// worker's other tasks to another thread (`block_in_place`) and back, which cost the load
    /// benchmark a third of its sends (1,780 sends/s at 32 clients against 2,830 inline, same
    /// machine). Change-feed reads of more than [`SMALL_READ_ROWS`] still give the worker's
    /// tasks away first. On a current-thread runtime every read goes to the blocking pool.
    async fn read<T, F>(&self, rows: Option<usize>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, i64) -> Result<T, StoreError> + Send + 'static,
    {
        let small = rows.is_some_and(|n| n <= SMALL_READ_ROWS);
        match &self.readers {
            Some(readers)
                if tokio::runtime::Handle::current().runtime_flavor()
                    == tokio::runtime::RuntimeFlavor::MultiThread =>
            {
                if small {
                    readers.with(|conn| f(conn, now()))
                } else {
                    tokio::task::block_in_place(|| readers.with(|conn| f(conn, now())))
                }
            }
            Some(readers) => {
                let readers = readers.clone();
                tokio::task::spawn_blocking(move || readers.with(|conn| f(conn, now())))
                    .await
                    .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
            }
            None => writer::read(&self.writer, f).await,
        }
    }
}

impl State {
    /// Removes expired items (logging their removal like DynamoDB's TTL deletes) and change-log
    /// entries past retention. Returns how many changes it logged.
    fn housekeeping(&mut self, now: i64) -> Result<usize, StoreError> {
        self.last_housekeeping = now;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let expired = {
            let mut stmt = tx
                .prepare_cached(&format!(
                    "SELECT tbl, {ITEM_COLUMNS} FROM items WHERE ttl < ?1 ORDER BY ttl LIMIT ?2"
                ))
                .map_err(db)?;
            let rows = stmt
                .query_map(params![now, PURGE_BATCH], |row| {
                    Ok((row.get::<_, String>(0)?, read_item(row, 1)?))
                })
                .map_err(db)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db)?
        };
        let mut logged = 0;
        for (tbl, item) in expired {
            tx.execute(
                "DELETE FROM items WHERE tbl = ?1 AND pk = ?2 AND sk = ?3",
                params![tbl, item.pk, item.sk],
            )
            .map_err(db)?;
            if let Some(table) = table_named(&tbl) {
                if table.has_change_feed() {
                    log_change(
                        &tx,
                        table,
                        ChangeKind::Remove,
                        &item.pk,
                        &item.sk,
                        Some(&item),
                        None,
                        now,
                    )?;
                    logged += 1;
                }
            }
        }
        tx.execute(
            "DELETE FROM changes WHERE at < ?1",
            params![now - CHANGE_RETENTION_SECS],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(logged)
    }
}

#[async_trait]
impl Table for Embedded {
    async fn get(&self, table: TableName, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let (pk, sk) = (pk.to_owned(), sk.to_owned());
        self.read(Some(1), move |conn, now| {
            Ok(load(conn, table, &pk, &sk)?.filter(|i| is_live(i, now)))
        })
        .await
    }

    async fn batch_get(
        &self,
        table: TableName,
        keys: &[(String, String)],
    ) -> Result<Vec<Item>, StoreError> {
        let keys: Vec<(String, String)> = {
            let mut seen = HashSet::new();
            keys.iter().filter(|k| seen.insert(*k)).cloned().collect()
        };
        self.read(Some(keys.len()), move |conn, now| {
            // One read transaction, so the batch sees a single snapshot.
            let tx = conn.transaction().map_err(db)?;
            let mut items = Vec::new();
            for (pk, sk) in &keys {
                if let Some(item) = load(&tx, table, pk, sk)?.filter(|i| is_live(i, now)) {
                    items.push(item);
                }
            }
            tx.commit().map_err(db)?;
            Ok(items)
        })
        .await
    }

    async fn write(&self, write: Write) -> Result<(), StoreError> {
        writer::write(&self.writer, move |conn, now| {
            match apply(conn, &write, now)? {
                Applied::ConditionFailed => Err(StoreError::ConditionFailed),
                Applied::Done { changed } => Ok(((), usize::from(changed))),
            }
        })
        .await
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        validate_transaction(&writes)?;
        if writes.is_empty() {
            return Ok(());
        }
        writer::write(&self.writer, move |conn, now| {
            let mut changes = 0;
            for (index, write) in writes.iter().enumerate() {
                match apply(conn, write, now)? {
                    // The writer rolls back whatever earlier writes did.
                    Applied::ConditionFailed => {
                        return Err(StoreError::TransactionCanceled { index: Some(index) })
                    }
                    Applied::Done { changed } => changes += usize::from(changed),
                }
            }
            Ok(((), changes))
        })
        .await
    }

    async fn query(&self, query: Query) -> Result<Page, StoreError> {
        let plan = QueryPlan::new(&query)?;
        // A partition (a channel's members, a user's memberships) is read in place too: even a
        // large one takes a few milliseconds, still less than the handoff costs the others.
        self.read(Some(1), move |conn, now| plan.run(conn, now))
            .await
    }

    async fn read_changes(
        &self,
        table: TableName,
        from: Option<&ChangePosition>,
        limit: usize,
    ) -> Result<ChangeBatch, StoreError> {
        if !table.has_change_feed() {
            return Err(StoreError::Invalid(format!(
                "table {} has no change feed",
                table.as_str()
            )));
        }
        let after = match from.map(|p| p.0.as_str()) {
            None | Some("") => 0,
            Some(p) => p
                .parse::<i64>()
                .map_err(|_| StoreError::Invalid(format!("bad change position {p:?}")))?,
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(usize::try_from(limit).ok(), move |conn, _now| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, kind, pk, sk, old, new FROM changes WHERE tbl = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map(params![table.as_str(), after, limit], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, Option<String>>(4)?,
                        row.get::<_, Option<String>>(5)?,
                    ))
                })
                .map_err(db)?;
            let mut last = after;
            let mut changes = Vec::new();
            for row in rows {
                let (seq, kind, pk, sk, old, new) = row.map_err(db)?;
                last = seq;
                let kind = parse_kind(&kind)?;
                let new = match (new, kind) {
                    (Some(logged), _) => Some(decode_logged(&logged)?),
                    (None, ChangeKind::Insert) => load(conn, table, &pk, &sk)?,
                    (None, _) => None,
                };
                changes.push(Change {
                    table,
                    kind,
                    pk,
                    sk,
                    new,
                    old: old.as_deref().map(decode_logged).transpose()?,
                });
            }
            Ok(ChangeBatch { changes, next: ChangePosition(last.to_string()) })
        })
        .await
    }
}

enum Applied {
    ConditionFailed,
    Done { changed: bool },
}

/// Checks the write's condition against the stored item and performs it; logs the change when
/// the table has a change feed.
fn apply(conn: &Connection, write: &Write, now: i64) -> Result<Applied, StoreError> {
    let (table, pk, sk, condition) = write_key(write);
    let current = load(conn, table, pk, sk)?;
    if !condition_holds(current.as_ref(), condition, now) {
        return Ok(Applied::ConditionFailed);
    }
    match write {
        Write::Put { item, .. } => {
            validate_item(item)?;
            let data = serde_json::to_string(&item.data)
                .map_err(|e| StoreError::Invalid(format!("item data: {e}")))?;
            if item.pk.len() + item.sk.len() + data.len() > MAX_ITEM_BYTES {
                return Err(StoreError::Invalid(format!(
                    "item {}/{} is larger than 400 KB",
                    item.pk, item.sk
                )));
            }
            let version = i64::try_from(item.version).map_err(|_| {
                StoreError::Invalid(format!("version {} is too large", item.version))
            })?;
            conn.prepare_cached(&format!(
                // An upsert rewrites a stored item in place (keeping its row), so rewriting a
                // channel on every send leaves no dead space behind in older pages.
                "INSERT INTO items (tbl, {ITEM_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (tbl, pk, sk) DO UPDATE SET gsi1pk = excluded.gsi1pk,
                 gsi1sk = excluded.gsi1sk, gsi2pk = excluded.gsi2pk, gsi2sk = excluded.gsi2sk,
                 ttl = excluded.ttl, version = excluded.version, data = excluded.data"
            ))
            .and_then(|mut stmt| {
                stmt.execute(params![
                    table.as_str(),
                    item.pk,
                    item.sk,
                    item.gsi1.as_ref().map(|k| &k.pk),
                    item.gsi1.as_ref().map(|k| &k.sk),
                    item.gsi2.as_ref().map(|k| &k.pk),
                    item.gsi2.as_ref().map(|k| &k.sk),
                    item.ttl,
                    version,
                    data,
                ])
            })
            .map_err(db)?;
            // Like DynamoDB Streams: a put that changes nothing produces no record.
            let changed = table.has_change_feed() && current.as_ref() != Some(item);
            if changed {
                let kind = if current.is_some() {
                    ChangeKind::Modify
                } else {
                    ChangeKind::Insert
                };
                log_change(conn, table, kind, pk, sk, current.as_ref(), Some(item), now)?;
            }
            Ok(Applied::Done { changed })
        }
        Write::Delete { .. } => {
            let Some(old) = current else {
                return Ok(Applied::Done { changed: false });
            };
            conn.prepare_cached("DELETE FROM items WHERE tbl = ?1 AND pk = ?2 AND sk = ?3")
                .and_then(|mut stmt| stmt.execute(params![table.as_str(), pk, sk]))
                .map_err(db)?;
            let changed = table.has_change_feed();
            if changed {
                log_change(
                    conn,
                    table,
                    ChangeKind::Remove,
                    pk,
                    sk,
                    Some(&old),
                    None,
                    now,
                )?;
            }
            Ok(Applied::Done { changed })
        }
        Write::Check { .. } => Ok(Applied::Done { changed: false }),
    }
}

/// DynamoDB refuses empty strings as table or index key values.
fn validate_item(item: &Item) -> Result<(), StoreError> {
    let empty_index_key = [&item.gsi1, &item.gsi2]
        .into_iter()
        .flatten()
        .any(|k| k.pk.is_empty() || k.sk.is_empty());
    if item.pk.is_empty() || item.sk.is_empty() || empty_index_key {
        return Err(StoreError::Invalid(format!(
            "item {:?}/{:?} has an empty key",
            item.pk, item.sk
        )));
    }
    Ok(())
}

fn condition_holds(current: Option<&Item>, condition: &Condition, now: i64) -> bool {
    let live = current.filter(|i| is_live(i, now));
    match condition {
        Condition::None => true,
        Condition::NotExists => live.is_none(),
        Condition::Exists => live.is_some(),
        Condition::Version(v) => live.is_some_and(|i| i.version == *v),
    }
}

/// The stored item under the key, expired or not.
fn load(
    conn: &Connection,
    table: TableName,
    pk: &str,
    sk: &str,
) -> Result<Option<Item>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {ITEM_COLUMNS} FROM items WHERE tbl = ?1 AND pk = ?2 AND sk = ?3"
    ))
    .and_then(|mut stmt| {
        stmt.query_row(params![table.as_str(), pk, sk], |row| read_item(row, 0))
            .optional()
    })
    .map_err(db)
}

/// Reads `ITEM_COLUMNS` starting at column `at`.
fn read_item(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Item> {
    let index_key = |pk: Option<String>, sk: Option<String>| match (pk, sk) {
        (Some(pk), Some(sk)) => Some(IndexKey { pk, sk }),
        _ => None,
    };
    let data: String = row.get(at + 8)?;
    let version: i64 = row.get(at + 7)?;
    Ok(Item {
        pk: row.get(at)?,
        sk: row.get(at + 1)?,
        gsi1: index_key(row.get(at + 2)?, row.get(at + 3)?),
        gsi2: index_key(row.get(at + 4)?, row.get(at + 5)?),
        ttl: row.get(at + 6)?,
        version: u64::try_from(version).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                at + 7,
                rusqlite::types::Type::Integer,
                Box::new(e),
            )
        })?,
        data: serde_json::from_str(&data).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                at + 8,
                rusqlite::types::Type::Text,
                Box::new(e),
            )
        })?,
    })
}

/// An item as kept in the change log.
#[derive(Serialize, Deserialize)]
struct LoggedItem {
    pk: String,
    sk: String,
    gsi1: Option<(String, String)>,
    gsi2: Option<(String, String)>,
    ttl: Option<i64>,
    version: u64,
    data: serde_json::Value,
}

fn encode_logged(item: &Item) -> Result<String, StoreError> {
    let pair = |k: &Option<IndexKey>| k.as_ref().map(|k| (k.pk.clone(), k.sk.clone()));
    serde_json::to_string(&LoggedItem {
        pk: item.pk.clone(),
        sk: item.sk.clone(),
        gsi1: pair(&item.gsi1),
        gsi2: pair(&item.gsi2),
        ttl: item.ttl,
        version: item.version,
        data: item.data.clone(),
    })
    .map_err(|e| StoreError::Backend(format!("cannot encode change: {e}")))
}

fn decode_logged(text: &str) -> Result<Item, StoreError> {
    let logged: LoggedItem = serde_json::from_str(text)
        .map_err(|e| StoreError::Backend(format!("corrupt change-log entry: {e}")))?;
    let key = |p: Option<(String, String)>| p.map(|(pk, sk)| IndexKey { pk, sk });
    Ok(Item {
        pk: logged.pk,
        sk: logged.sk,
        gsi1: key(logged.gsi1),
        gsi2: key(logged.gsi2),
        ttl: logged.ttl,
        version: logged.version,
        data: logged.data,
    })
}

#[allow(clippy::too_many_arguments)]
fn log_change(
    conn: &Connection,
    table: TableName,
    kind: ChangeKind,
    pk: &str,
    sk: &str,
    old: Option<&Item>,
    new: Option<&Item>,
    now: i64,
) -> Result<(), StoreError> {
    let kind = match kind {
        ChangeKind::Insert => "insert",
        ChangeKind::Modify => "modify",
        ChangeKind::Remove => "remove",
    };
    // An append-only table's changes are logged by their keys: an insert's image is the item.
    let (old, new) = match table.is_append_only() {
        true => (None, None),
        false => (
            old.map(encode_logged).transpose()?,
            new.map(encode_logged).transpose()?,
        ),
    };
    conn.prepare_cached(
        "INSERT INTO changes (tbl, kind, pk, sk, old, new, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut stmt| stmt.execute(params![table.as_str(), kind, pk, sk, old, new, now]))
    .map_err(db)?;
    Ok(())
}

fn parse_kind(kind: &str) -> Result<ChangeKind, StoreError> {
    match kind {
        "insert" => Ok(ChangeKind::Insert),
        "modify" => Ok(ChangeKind::Modify),
        "remove" => Ok(ChangeKind::Remove),
        other => Err(StoreError::Backend(format!(
            "corrupt change-log entry: kind {other:?}"
        ))),
    }
}

fn table_named(name: &str) -> Option<TableName> {
    TableName::ALL.into_iter().find(|t| t.as_str() == name)
}

/// A query translated to SQL. Text compares with SQLite's BINARY collation, which orders UTF-8
/// byte-wise exactly like DynamoDB orders string keys.
struct QueryPlan {
    sql: String,
    params: Vec<SqlValue>,
    index: Option<Index>,
    limit: Option<usize>,
}

impl QueryPlan {
    fn new(query: &Query) -> Result<Self, StoreError> {
        let (pk_col, sk_col) = match query.index {
            None => ("pk", "sk"),
            Some(Index::Gsi1) => ("gsi1pk", "gsi1sk"),
            Some(Index::Gsi2) => ("gsi2pk", "gsi2sk"),
        };
        let text = |s: &str| SqlValue::Text(s.to_owned());
        let columns = match query.keys_only {
            // The document is left out (read back as null).
            true => ITEM_COLUMNS.replace(", data", ", 'null'"),
            false => ITEM_COLUMNS.to_owned(),
        };
        let mut sql = format!("SELECT {columns} FROM items WHERE tbl = ? AND {pk_col} = ?");
        let mut params = vec![text(query.table.as_str()), text(&query.pk)];
        let mut bound = |sql: &mut String, op: &str, value: &str| {
            sql.push_str(&format!(" AND {sk_col} {op} ?"));
            params.push(text(value));
        };
        match &query.range {
            SkRange::All => {}
            SkRange::Eq(v) => bound(&mut sql, "=", v),
            SkRange::BeginsWith(prefix) if prefix.is_empty() => {}
            SkRange::BeginsWith(prefix) => {
                bound(&mut sql, ">=", prefix);
                if let Some(upper) = prefix_upper_bound(prefix) {
                    bound(&mut sql, "<", &upper);
                }
            }
            SkRange::Between(low, high) => {
                if low > high {
                    return Err(StoreError::Invalid(format!(
                        "sort-key range {low:?}..={high:?} is reversed"
                    )));
                }
                bound(&mut sql, ">=", low);
                bound(&mut sql, "<=", high);
            }
            SkRange::Lt(v) => bound(&mut sql, "<", v),
            SkRange::Le(v) => bound(&mut sql, "<=", v),
            SkRange::Gt(v) => bound(&mut sql, ">", v),
            SkRange::Ge(v) => bound(&mut sql, ">=", v),
        }
        let after = if query.forward { ">" } else { "<" };
        if let Some(cursor) = &query.start_after {
            match (query.index, &cursor.index) {
                (None, _) => {
                    if cursor.pk != query.pk {
                        return Err(StoreError::Invalid(
                            "cursor belongs to another partition".into(),
                        ));
                    }
                    bound(&mut sql, after, &cursor.sk);
                }
                (Some(_), Some(key)) => {
                    sql.push_str(&format!(" AND ({sk_col}, pk, sk) {after} (?, ?, ?)"));
                    params.extend([text(&key.sk), text(&cursor.pk), text(&cursor.sk)]);
                }
                (Some(_), None) => {
                    return Err(StoreError::Invalid(
                        "an index query needs a cursor with index keys".into(),
                    ))
                }
            }
        }
        // The ttl test sits outside the index, so it filters rows the index already narrowed.
        sql.push_str(" AND (ttl IS NULL OR ttl >= ?)");
        let direction = if query.forward { "ASC" } else { "DESC" };
        match query.index {
            None => sql.push_str(&format!(" ORDER BY sk {direction}")),
            Some(_) => sql.push_str(&format!(
                " ORDER BY {sk_col} {direction}, pk {direction}, sk {direction}"
            )),
        }
        if let Some(limit) = query.limit {
            if limit == 0 {
                return Err(StoreError::Invalid("query limit must be at least 1".into()));
            }
            // One row more than asked tells whether another page follows.
            sql.push_str(&format!(" LIMIT {}", limit.saturating_add(1)));
        }
        Ok(QueryPlan {
            sql,
            params,
            index: query.index,
            limit: query.limit,
        })
    }

    fn run(&self, conn: &Connection, now: i64) -> Result<Page, StoreError> {
        let mut stmt = conn.prepare_cached(&self.sql).map_err(db)?;
        let params = self.params.iter().cloned().chain([SqlValue::Integer(now)]);
        let mut items = stmt
            .query_map(params_from_iter(params), |row| read_item(row, 0))
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        let last = match self.limit {
            Some(limit) if items.len() > limit => {
                items.truncate(limit);
                items.last().map(|item| Cursor {
                    pk: item.pk.clone(),
                    sk: item.sk.clone(),
                    index: self.index.and_then(|index| item.index_key(index).cloned()),
                })
            }
            _ => None,
        };
        Ok(Page { items, last })
    }
}

/// The smallest string above every string starting with `prefix`, if any: the prefix with its
/// last incrementable character incremented (UTF-8 preserves code-point order).
fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_upper_bound_covers_exactly_the_prefixed_strings() {
        assert_eq!(prefix_upper_bound("abc").as_deref(), Some("abd"));
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
    }

    /// Request paths must be index lookups: no query plan may scan the items table.
    #[test]
    fn queries_use_indexes() {
        let conn = Connection::open_in_memory().expect("sqlite in memory");
        conn.execute_batch(SCHEMA).expect("schema");
        let cursor = Cursor {
            pk: "p".into(),
            sk: "s".into(),
            index: Some(IndexKey {
                pk: "g".into(),
                sk: "h".into(),
            }),
        };
        let queries = [
            Query::new(TableName::Messages, "p")
                .range(SkRange::BeginsWith("a".into()))
                .limit(10),
            Query::new(TableName::Messages, "p")
                .backward()
                .start_after(Some(cursor.clone())),
            Query::new(TableName::Messages, "g")
                .index(Index::Gsi1)
                .start_after(Some(cursor.clone()))
                .limit(5),
            Query::new(TableName::Messages, "g")
                .index(Index::Gsi2)
                .range(SkRange::Lt("z".into()))
                .backward(),
        ];
        for query in queries {
            let plan = QueryPlan::new(&query).expect("plan");
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {}", plan.sql))
                .expect("explain");
            let params = plan.params.iter().cloned().chain([SqlValue::Integer(0)]);
            let details: Vec<String> = stmt
                .query_map(params_from_iter(params), |r| r.get::<_, String>(3))
                .expect("explain rows")
                .collect::<Result<_, _>>()
                .expect("explain rows");
            let text = details.join("; ");
            assert!(
                text.contains("USING") && !text.contains("TEMP B-TREE"),
                "{query:?} plans as {text}"
            );
            if let Some(index) = query.index {
                assert!(
                    text.contains(&format!("items_{}", index.as_str())),
                    "{query:?} plans as {text}"
                );
            }
        }
    }
}
