//! Use cases: one function per API operation. Each reads through the Table port, checks the
//! caller's permissions and writes state together with its events in one transaction.

pub mod app;
pub mod bans;
pub mod blocklists;
pub(crate) mod blocks;
pub mod campaigns;
pub(crate) mod channel_access;
pub(crate) mod channel_record;
pub mod channel_types;
pub mod channels;
pub mod commands;
pub mod config_cache;
pub mod devices;
pub mod exports;
pub mod flag_reports;
pub mod flags;
pub(crate) mod ip_bans;
pub(crate) mod member_record;
pub mod members;
pub mod messages;
pub mod muting;
pub mod push;
pub mod push_preferences;
pub mod push_providers;
pub mod reactions;
pub mod reads;
pub mod reminders;
pub mod roles;
pub mod search;
pub mod segments;
pub mod tasks;
pub mod threads;
pub mod timers;
pub(crate) mod unread_index;
pub mod uploads;
pub mod users;
pub mod writers;

use crate::domain::clock::{format_time, Clock};
use crate::domain::ApiError;
use crate::store::{Item, Table, TableName};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// The user acting in a request: the caller, or for server-side requests the `user_id` / `user`
/// the body names (Stream's server-side "on behalf of").
pub(crate) fn acting_user(
    session: &crate::domain::caller::Session,
    user_id: &Option<String>,
    user: &Option<serde_json::Map<String, serde_json::Value>>,
) -> Option<String> {
    match &session.caller {
        crate::domain::caller::Caller::Server => user_id.clone().or_else(|| {
            user.as_ref()
                .and_then(|u| u.get("id"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
        }),
        other => other.user_id().map(str::to_string),
    }
}

/// A stored document as its record type. An unreadable one is an internal error that names what
/// it is (the detail goes to the logs, never to the caller).
pub(crate) fn decode<T: DeserializeOwned>(
    data: serde_json::Value,
    what: &str,
) -> Result<T, ApiError> {
    serde_json::from_value(data)
        .map_err(|e| ApiError::internal(format!("stored {what} is unreadable: {e}")))
}

/// The app's credentials: the key clients send as `api_key` and the secret tokens are signed with.
#[derive(Clone, Debug)]
pub struct AppKeys {
    pub api_key: String,
    pub api_secret: String,
}

/// How async tasks (batch deactivate, batch delete) run: on the runtime in the background
/// (long-lived process), or to completion before the request returns (Lambda, which freezes
/// between invocations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskMode {
    Background,
    Inline,
}

/// The product's use cases over one store.
#[derive(Clone)]
pub struct Chat {
    pub store: Arc<dyn Table>,
    pub clock: Arc<dyn Clock>,
    pub keys: AppKeys,
    pub task_mode: TaskMode,
    /// Message translation, when configured.
    pub translator: Option<Arc<dyn crate::translate::Translator>>,
    /// Turns at writing hot records (a channel's sends, a message's reactions).
    pub writers: Arc<writers::Writers>,
    /// The settings and channel types the request path reads, kept decoded for a moment.
    pub(crate) config: Arc<config_cache::ConfigCache>,
    /// New messages waiting for their channel's turn, committed together.
    pub(crate) mailboxes: Arc<messages::Mailboxes>,
    /// Hook targets that failed lately (skipped for a while).
    pub(crate) failing_hooks: Arc<crate::hooks::FailingTargets>,
    /// Blocklists compiled for checking messages, kept for a moment.
    pub(crate) blocklists: Arc<blocklists::CompiledBlocklists>,
    /// Where export files and uploads are kept, when configured.
    pub files: Option<Arc<dyn crate::files::FileStore>>,
    /// The address clients reach the API at, for the links to uploads (when unset, the
    /// request's own address).
    pub public_url: Option<String>,
    /// Where link previews come from (`url_enrichment`, `GET /og`), when configured.
    pub previews: Option<Arc<dyn crate::previews::LinkPreviews>>,
    /// Where `/giphy` finds its GIFs.
    pub gifs: Arc<dyn crate::gifs::GifSearch>,
    /// The HTTP client of the app's handlers called on the request path (before-send hook).
    pub(crate) handlers: Arc<crate::hooks::send::Senders>,
    /// Where campaign fan-out jobs go, when configured.
    pub campaigns: Option<Arc<dyn campaigns::CampaignQueue>>,
    /// How fast campaigns go (batch size, sends at once).
    pub campaign_limits: campaigns::CampaignLimits,
}

impl Chat {
    pub fn new(
        store: Arc<dyn Table>,
        clock: Arc<dyn Clock>,
        keys: AppKeys,
        task_mode: TaskMode,
    ) -> Self {
        let handlers = Arc::new(crate::hooks::send::Senders::new(
            &keys.api_key,
            &keys.api_secret,
        ));
        Chat {
            store,
            clock,
            keys,
            task_mode,
            translator: None,
            writers: Arc::default(),
            config: Arc::default(),
            mailboxes: Arc::default(),
            failing_hooks: Arc::default(),
            blocklists: Arc::default(),
            files: None,
            public_url: None,
            previews: None,
            gifs: Arc::new(crate::gifs::LocalGifs),
            handlers,
            campaigns: None,
            campaign_limits: Default::default(),
        }
    }

    /// The same product, finding `/giphy` GIFs with `gifs`.
    pub fn with_gifs(mut self, gifs: Arc<dyn crate::gifs::GifSearch>) -> Self {
        self.gifs = gifs;
        self
    }

    /// The same product, previewing links with `previews`.
    pub fn with_previews(mut self, previews: Arc<dyn crate::previews::LinkPreviews>) -> Self {
        self.previews = Some(previews);
        self
    }

    /// The same product, linking uploads under `url`.
    pub fn with_public_url(mut self, url: &str) -> Self {
        self.public_url = Some(url.trim_end_matches('/').to_string());
        self
    }

    /// The same product, running campaigns at `limits`.
    pub fn with_campaign_limits(mut self, limits: campaigns::CampaignLimits) -> Self {
        self.campaign_limits = limits;
        self
    }

    /// The same product, queueing campaign fan-out on `queue`.
    pub fn with_campaign_queue(mut self, queue: Arc<dyn campaigns::CampaignQueue>) -> Self {
        self.campaigns = Some(queue);
        self
    }

    /// The same product, keeping export files and uploads in `files`.
    pub fn with_files(mut self, files: Arc<dyn crate::files::FileStore>) -> Self {
        self.files = Some(files);
        self
    }

    /// The same product, translating messages with `translator`.
    pub fn with_translator(mut self, translator: Arc<dyn crate::translate::Translator>) -> Self {
        self.translator = Some(translator);
        self
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn now_str(&self) -> String {
        format_time(self.now())
    }

    /// Read one item and decode its document.
    pub(crate) async fn load<T: DeserializeOwned>(
        &self,
        table: TableName,
        key: (String, String),
    ) -> Result<Option<(T, Item)>, ApiError> {
        match self.store.get(table, &key.0, &key.1).await? {
            None => Ok(None),
            Some(item) => {
                let value = serde_json::from_value(item.data.clone()).map_err(|e| {
                    ApiError::internal(format!(
                        "stored record {}/{} is unreadable: {e}",
                        key.0, key.1
                    ))
                })?;
                Ok(Some((value, item)))
            }
        }
    }
}

/// Encode a record for storage.
pub(crate) fn to_doc<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(value)
        .map_err(|e| ApiError::internal(format!("record could not be encoded: {e}")))
}

/// The parts every query endpoint shares: its filter (against the endpoint's field rules), its
/// sort (empty when none is given) and its page (`limit` up to `max`, `offset` up to
/// `MAX_QUERY_OFFSET`), each refused with the field it came from.
pub(crate) struct QueryParts {
    pub filter: crate::domain::filter::Filter,
    pub sort: Vec<crate::domain::filter::SortField>,
    pub limit: usize,
    pub offset: usize,
}

impl QueryParts {
    pub(crate) fn parse(
        filter: Option<&serde_json::Value>,
        rules: &crate::domain::filter::FieldRules,
        sort: Option<&serde_json::Value>,
        limit: Option<usize>,
        (default_limit, max_limit): (usize, usize),
        offset: Option<usize>,
    ) -> Result<QueryParts, ApiError> {
        use crate::domain::filter::{parse_sort, Filter};
        use crate::domain::limits::MAX_QUERY_OFFSET;
        use serde_json::Value;
        let filter = match filter {
            None | Some(Value::Null) => Filter::All,
            Some(v) => Filter::parse(v, Some(rules))
                .map_err(|e| ApiError::field("filter_conditions", e.to_string()))?,
        };
        let sort = match sort {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => parse_sort(v).map_err(|e| ApiError::field("sort", e.to_string()))?,
        };
        let limit = limit.unwrap_or(default_limit);
        if limit > max_limit {
            return Err(ApiError::field(
                "limit",
                format!("limit must be at most {max_limit}"),
            ));
        }
        let offset = offset.unwrap_or(0);
        if offset > MAX_QUERY_OFFSET {
            return Err(ApiError::field(
                "offset",
                format!("offset must be at most {MAX_QUERY_OFFSET}"),
            ));
        }
        Ok(QueryParts {
            filter,
            sort,
            limit,
            offset,
        })
    }
}

impl Chat {
    /// Reads the app-table record under `key`, lets `change` edit it (returning what to write
    /// with it) and writes it back on the version read (`item_of` makes its item); again,
    /// after a pause, when a concurrent change wins. `None` when there is no record.
    pub(crate) async fn change_app_record<T: serde::de::DeserializeOwned>(
        &self,
        key: (String, String),
        what: &'static str,
        item_of: impl Fn(&T) -> Result<Item, ApiError>,
        mut change: impl FnMut(
            &mut T,
            chrono::DateTime<chrono::Utc>,
        ) -> Result<Vec<crate::store::Write>, ApiError>,
    ) -> Result<Option<T>, ApiError> {
        for attempt in 1..=CONTENDED_ATTEMPTS {
            let Some((mut record, item)) = self.load::<T>(TableName::App, key.clone()).await?
            else {
                return Ok(None);
            };
            let extra = change(&mut record, self.now())?;
            let mut writes = vec![crate::store::Write::put_read_at(
                TableName::App,
                item_of(&record)?,
                item.version,
            )];
            writes.extend(extra);
            match self.store.transact(writes).await {
                Ok(()) => return Ok(Some(record)),
                Err(crate::store::StoreError::TransactionCanceled { .. }) => {
                    contention_pause(attempt).await
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::input(format!(
            "the {what} is being changed; try again"
        )))
    }
}

/// Attempts at a conditioned write that concurrent writers keep winning (a hot channel).
pub(crate) const CONTENDED_ATTEMPTS: usize = 25;

/// The pause before attempt `attempt` (from 1) of a contended write: exponential up to 32 ms,
/// with jitter so racing writers spread out.
pub(crate) async fn contention_pause(attempt: usize) {
    let base = 1u64 << attempt.min(5);
    let jitter: u64 = rand::random::<u64>() % (base + 1);
    tokio::time::sleep(std::time::Duration::from_millis(base / 2 + jitter)).await;
}
