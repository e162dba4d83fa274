//! The Table port: a small DynamoDB-shaped storage interface (items under a partition and
//! sort key, conditional writes, range queries, two secondary indexes, transactions, a change
//! feed) and its two adapters, `embedded` (SQLite on disk or in memory) and `dynamodb`.

use async_trait::async_trait;
use serde_json::Value;

pub mod dynamodb;
pub mod embedded;
pub mod layout;

/// The product's tables. Each adapter maps a name to its physical table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableName {
    /// App settings, channel types, roles, users, devices, tasks.
    App,
    /// Channels, members, read state.
    Channels,
    /// Messages in channel time order, reactions under their message.
    Messages,
    /// WebSocket connections and their watch subscriptions.
    Connections,
    /// The transactional outbox: one item per event, written with the change it describes.
    Events,
}

impl TableName {
    pub const ALL: [TableName; 5] = [
        TableName::App,
        TableName::Channels,
        TableName::Messages,
        TableName::Connections,
        TableName::Events,
    ];

    /// Logical name; adapters add their own prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            TableName::App => "app",
            TableName::Channels => "channels",
            TableName::Messages => "messages",
            TableName::Connections => "connections",
            TableName::Events => "events",
        }
    }

    /// Tables whose changes feed workers (DynamoDB Streams in AWS, the local change log here).
    pub fn has_change_feed(self) -> bool {
        matches!(self, TableName::Events | TableName::Connections)
    }

    /// Tables whose items are only ever inserted (and expire): the outbox. The embedded change
    /// log names their changes by key and an insert's image is read from the table, as the AWS
    /// delivery worker reads an event by the keys of its stream record.
    pub fn is_append_only(self) -> bool {
        matches!(self, TableName::Events)
    }
}

/// The two secondary indexes every table has (items opt in by carrying the index's keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Index {
    Gsi1,
    Gsi2,
}

impl Index {
    pub fn as_str(self) -> &'static str {
        match self {
            Index::Gsi1 => "gsi1",
            Index::Gsi2 => "gsi2",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndexKey {
    pub pk: String,
    pub sk: String,
}

/// One stored item. `data` is the document; keys, index keys, `ttl` and `version` are the
/// attributes the store itself understands.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub pk: String,
    pub sk: String,
    pub gsi1: Option<IndexKey>,
    pub gsi2: Option<IndexKey>,
    /// Expiry in epoch seconds. Expired items are invisible to reads (DynamoDB deletes lazily).
    pub ttl: Option<i64>,
    /// Optimistic-concurrency counter, checked by `Condition::Version`.
    pub version: u64,
    pub data: Value,
}

impl Item {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>, data: Value) -> Self {
        Item {
            pk: pk.into(),
            sk: sk.into(),
            gsi1: None,
            gsi2: None,
            ttl: None,
            version: 1,
            data,
        }
    }

    pub fn with_gsi1(mut self, pk: impl Into<String>, sk: impl Into<String>) -> Self {
        self.gsi1 = Some(IndexKey {
            pk: pk.into(),
            sk: sk.into(),
        });
        self
    }

    pub fn with_gsi2(mut self, pk: impl Into<String>, sk: impl Into<String>) -> Self {
        self.gsi2 = Some(IndexKey {
            pk: pk.into(),
            sk: sk.into(),
        });
        self
    }

    pub fn index_key(&self, index: Index) -> Option<&IndexKey> {
        match index {
            Index::Gsi1 => self.gsi1.as_ref(),
            Index::Gsi2 => self.gsi2.as_ref(),
        }
    }
}

/// Condition on the item currently stored under the written key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    None,
    /// No (unexpired) item under the key.
    NotExists,
    /// An (unexpired) item exists under the key.
    Exists,
    /// An item exists and its version equals this one.
    Version(u64),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    Put {
        table: TableName,
        item: Item,
        condition: Condition,
    },
    Delete {
        table: TableName,
        pk: String,
        sk: String,
        condition: Condition,
    },
    /// Only checks; writes nothing (DynamoDB's ConditionCheck).
    Check {
        table: TableName,
        pk: String,
        sk: String,
        condition: Condition,
    },
}

impl Write {
    /// The put of a record that was read at `read_version` (0: not stored yet), conditioned on
    /// that version: a concurrent change or removal cancels it instead of being overwritten or
    /// undone (the caller reads again and retries).
    pub fn put_read_at(table: TableName, mut item: Item, read_version: u64) -> Write {
        item.version = read_version + 1;
        let condition = match read_version {
            0 => Condition::NotExists,
            v => Condition::Version(v),
        };
        Write::Put {
            table,
            item,
            condition,
        }
    }
}

/// Sort-key condition of a query (DynamoDB's KeyConditionExpression on the sort key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkRange {
    All,
    Eq(String),
    BeginsWith(String),
    /// Inclusive on both ends.
    Between(String, String),
    Lt(String),
    Le(String),
    Gt(String),
    Ge(String),
}

/// Position after which a query resumes (DynamoDB's LastEvaluatedKey).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub pk: String,
    pub sk: String,
    /// The index keys of the last item, when the query ran on an index.
    pub index: Option<IndexKey>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub table: TableName,
    pub index: Option<Index>,
    pub pk: String,
    pub range: SkRange,
    pub limit: Option<usize>,
    /// Ascending sort-key order when true.
    pub forward: bool,
    pub start_after: Option<Cursor>,
    /// Items come back without their document (`data` is null): for listings that need only
    /// keys, index keys and versions, which then cost no decoding.
    pub keys_only: bool,
}

impl Query {
    pub fn new(table: TableName, pk: impl Into<String>) -> Self {
        Query {
            table,
            index: None,
            pk: pk.into(),
            range: SkRange::All,
            limit: None,
            forward: true,
            start_after: None,
            keys_only: false,
        }
    }
    pub fn keys_only(mut self) -> Self {
        self.keys_only = true;
        self
    }
    pub fn index(mut self, index: Index) -> Self {
        self.index = Some(index);
        self
    }
    pub fn range(mut self, range: SkRange) -> Self {
        self.range = range;
        self
    }
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
    pub fn backward(mut self) -> Self {
        self.forward = false;
        self
    }
    pub fn start_after(mut self, cursor: Option<Cursor>) -> Self {
        self.start_after = cursor;
        self
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    /// Set when more items may follow; pass back as `start_after`.
    pub last: Option<Cursor>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Insert,
    Modify,
    Remove,
}

/// One committed change to a table with a change feed (a DynamoDB Streams record).
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub table: TableName,
    pub kind: ChangeKind,
    pub pk: String,
    pub sk: String,
    /// The item after the change (absent on removal).
    pub new: Option<Item>,
    /// The item before the change (absent on insert).
    pub old: Option<Item>,
}

/// A batch of changes and the position to read the next batch from.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeBatch {
    pub changes: Vec<Change>,
    pub next: ChangePosition,
}

/// Opaque position in a table's change feed.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ChangePosition(pub String);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("condition failed")]
    ConditionFailed,
    /// A transaction was refused; `index` is the first write whose condition failed, if known.
    #[error("transaction canceled (write {index:?} failed its condition)")]
    TransactionCanceled { index: Option<usize> },
    #[error("invalid request to the store: {0}")]
    Invalid(String),
    #[error("store backend error: {0}")]
    Backend(String),
}

/// Most writes in one transaction (DynamoDB's TransactWriteItems limit).
pub const MAX_TRANSACTION_WRITES: usize = 100;

#[async_trait]
pub trait Table: Send + Sync + 'static {
    async fn get(&self, table: TableName, pk: &str, sk: &str) -> Result<Option<Item>, StoreError>;

    /// Items that exist among `keys`, in no particular order.
    async fn batch_get(
        &self,
        table: TableName,
        keys: &[(String, String)],
    ) -> Result<Vec<Item>, StoreError>;

    /// One conditional write.
    async fn write(&self, write: Write) -> Result<(), StoreError>;

    /// Up to `MAX_TRANSACTION_WRITES` writes, all or none; at most one write per key.
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError>;

    async fn query(&self, query: Query) -> Result<Page, StoreError>;

    /// Changes to `table` after `from` (from the oldest retained change when `None`).
    async fn read_changes(
        &self,
        table: TableName,
        from: Option<&ChangePosition>,
        limit: usize,
    ) -> Result<ChangeBatch, StoreError>;
}

/// Every item a query finds, read page by page.
pub async fn query_all(store: &dyn Table, query: Query) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.query(query.clone().start_after(cursor)).await?;
        items.extend(page.items);
        match page.last {
            Some(last) => cursor = Some(last),
            None => return Ok(items),
        }
    }
}

// Rules both adapters apply the same way.

/// The key a write targets, and its condition.
pub(crate) fn write_key(write: &Write) -> (TableName, &str, &str, &Condition) {
    match write {
        Write::Put {
            table,
            item,
            condition,
        } => (*table, &item.pk, &item.sk, condition),
        Write::Delete {
            table,
            pk,
            sk,
            condition,
        }
        | Write::Check {
            table,
            pk,
            sk,
            condition,
        } => (*table, pk, sk, condition),
    }
}

/// DynamoDB's limits on a transaction: at most `MAX_TRANSACTION_WRITES`, one write per item.
pub(crate) fn validate_transaction(writes: &[Write]) -> Result<(), StoreError> {
    if writes.len() > MAX_TRANSACTION_WRITES {
        return Err(StoreError::Invalid(format!(
            "a transaction holds at most {MAX_TRANSACTION_WRITES} writes, got {}",
            writes.len()
        )));
    }
    let mut keys = std::collections::HashSet::new();
    for write in writes {
        let (table, pk, sk, _) = write_key(write);
        if !keys.insert((table, pk, sk)) {
            return Err(StoreError::Invalid(format!(
                "a transaction writes {}/{pk}/{sk} twice",
                table.as_str()
            )));
        }
    }
    Ok(())
}

/// Expired items are invisible: DynamoDB deletes them lazily, so reads must filter.
pub(crate) fn is_live(item: &Item, now: i64) -> bool {
    item.ttl.is_none_or(|ttl| ttl >= now)
}

/// Epoch seconds, the unit of `ttl`.
pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
