//! Blocklists: `POST/GET /blocklists`, `GET/PUT/DELETE /blocklists/{name}` (server-side), and the
//! check a message's text goes through when its channel type names lists (`blocklist` with
//! `blocklist_behavior`, and `blocklists`). A list is one app-table item, listed on `gsi1`;
//! compiled matchers are kept for a second (changes made through this process apply at once),
//! so a send checks its text without reading or compiling the lists.

use super::Chat;
use crate::domain::blocklist::{self, Blocklist, BlocklistRequest, Matcher};
use crate::domain::caller::Session;
use crate::domain::channel_type::{ChannelTypeConfig, ModerationBehavior};
use crate::domain::ApiError;
use crate::store::{query_all, Condition, Index, Item, Query, StoreError, TableName, Write};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a compiled list is used before it is read again (other processes' changes).
const FRESH_FOR: Duration = Duration::from_secs(1);
const BLOCKLISTS_INDEX_PK: &str = "blocklists";

fn blocklist_key(name: &str) -> (String, String) {
    (format!("blocklist#{name}"), "blocklist".into())
}

/// A list as compiled from the item version it was read at (`None`: it does not exist).
type Versioned = Option<(u64, Arc<Matcher>)>;
type Compiled = (Instant, Versioned);

/// Compiled lists by name, with when they were read.
#[derive(Default)]
pub struct CompiledBlocklists(Mutex<HashMap<String, Compiled>>);

impl CompiledBlocklists {
    /// The compiled list and whether it is fresh (a stale one is reused if its item did not
    /// change: a large regex list is compiled once per change, not once per second).
    fn get(&self, name: &str) -> Option<(bool, Versioned)> {
        let map = self.0.lock().ok()?;
        map.get(name)
            .map(|(at, m)| (at.elapsed() < FRESH_FOR, m.clone()))
    }

    fn put(&self, name: &str, matcher: Versioned) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(name.to_string(), (Instant::now(), matcher));
        }
    }

    fn forget(&self, name: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(name);
        }
    }
}

/// What a channel type's lists say of a text.
#[derive(Clone, Debug, PartialEq)]
pub struct BlocklistHit {
    pub blocklist: String,
    pub behavior: ModerationBehavior,
    pub phrase: String,
}

impl Chat {
    async fn stored_blocklist(&self, name: &str) -> Result<Option<(Blocklist, u64)>, ApiError> {
        let (pk, sk) = blocklist_key(name);
        match self.store.get(TableName::App, &pk, &sk).await? {
            Some(item) => Ok(Some((super::decode(item.data, "blocklist")?, item.version))),
            None => Ok(None),
        }
    }

    async fn write_blocklist(
        &self,
        list: &Blocklist,
        condition: Condition,
    ) -> Result<(), ApiError> {
        let (pk, sk) = blocklist_key(&list.name);
        let data = serde_json::to_value(list).map_err(|e| ApiError::internal(e.to_string()))?;
        let item = Item::new(pk, sk, data).with_gsi1(BLOCKLISTS_INDEX_PK, &list.name);
        match self
            .store
            .write(Write::Put {
                table: TableName::App,
                item,
                condition,
            })
            .await
        {
            Ok(()) => {
                self.blocklists.forget(&list.name);
                Ok(())
            }
            Err(StoreError::ConditionFailed) => Err(ApiError::input(format!(
                "blocklist {:?} already exists or changed meanwhile",
                list.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// `POST /blocklists`.
    pub async fn create_blocklist(
        &self,
        session: &Session,
        req: BlocklistRequest,
    ) -> Result<Value, ApiError> {
        session.caller.require_server("creating blocklists")?;
        req.check_variants()?;
        let name = req.name.clone().unwrap_or_default();
        blocklist::validate_name(&name)?;
        let kind = req.kind.clone().unwrap_or_else(|| "word".into());
        let words = req.words.clone().unwrap_or_default();
        blocklist::validate(&kind, &words)?;
        let now = self.now_str();
        let list = Blocklist {
            name,
            kind,
            words,
            created_at: now.clone(),
            updated_at: now,
        };
        self.write_blocklist(&list, Condition::NotExists).await?;
        Ok(json!({ "blocklist": list.to_wire() }))
    }

    /// `GET /blocklists`.
    pub async fn list_blocklists(&self, session: &Session) -> Result<Value, ApiError> {
        session.caller.require_server("listing blocklists")?;
        let items = query_all(
            self.store.as_ref(),
            Query::new(TableName::App, BLOCKLISTS_INDEX_PK).index(Index::Gsi1),
        )
        .await?;
        let lists: Vec<Value> = items
            .into_iter()
            .filter_map(|i| serde_json::from_value::<Blocklist>(i.data).ok())
            .map(|l| l.to_wire())
            .collect();
        Ok(json!({ "blocklists": lists }))
    }

    /// `GET /blocklists/{name}`.
    pub async fn get_blocklist(&self, session: &Session, name: &str) -> Result<Value, ApiError> {
        session.caller.require_server("reading blocklists")?;
        let (list, _) = self
            .stored_blocklist(name)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("blocklist {name:?} does not exist")))?;
        Ok(json!({ "blocklist": list.to_wire() }))
    }

    /// `PUT /blocklists/{name}`: replaces the words.
    pub async fn update_blocklist(
        &self,
        session: &Session,
        name: &str,
        req: BlocklistRequest,
    ) -> Result<Value, ApiError> {
        session.caller.require_server("updating blocklists")?;
        req.check_variants()?;
        let (mut list, version) = self
            .stored_blocklist(name)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("blocklist {name:?} does not exist")))?;
        if let Some(words) = req.words {
            blocklist::validate(&list.kind, &words)?;
            list.words = words;
        }
        list.updated_at = self.now_str();
        self.write_blocklist(&list, Condition::Version(version))
            .await?;
        Ok(json!({ "blocklist": list.to_wire() }))
    }

    /// `DELETE /blocklists/{name}`.
    pub async fn delete_blocklist(&self, session: &Session, name: &str) -> Result<Value, ApiError> {
        session.caller.require_server("deleting blocklists")?;
        if self.stored_blocklist(name).await?.is_none() {
            return Err(ApiError::not_found(format!(
                "blocklist {name:?} does not exist"
            )));
        }
        let (pk, sk) = blocklist_key(name);
        self.store
            .write(Write::Delete {
                table: TableName::App,
                pk,
                sk,
                condition: Condition::None,
            })
            .await?;
        self.blocklists.forget(name);
        Ok(json!({}))
    }

    /// The compiled list `name` (kept for a second), `None` when it does not exist.
    async fn matcher(&self, name: &str) -> Result<Option<Arc<Matcher>>, ApiError> {
        let kept = match self.blocklists.get(name) {
            Some((true, m)) => return Ok(m.map(|(_, m)| m)),
            Some((false, m)) => m,
            None => None,
        };
        let matcher = match self.stored_blocklist(name).await? {
            None => None,
            Some((_, version)) if kept.as_ref().is_some_and(|(v, _)| *v == version) => kept,
            // Validated when written: a list that no longer compiles checks nothing.
            Some((list, version)) => Matcher::for_list(&list.kind, &list.words)
                .ok()
                .map(|m| (version, Arc::new(m))),
        };
        self.blocklists.put(name, matcher.clone());
        Ok(matcher.map(|(_, m)| m))
    }

    /// The first of the channel's lists `text` trips, with what the channel does about it:
    /// `blocklist` (with `blocklist_behavior`, flag when none is set) first, then `blocklists`.
    pub(crate) async fn blocklist_hit(
        &self,
        config: &ChannelTypeConfig,
        text: &str,
    ) -> Result<Option<BlocklistHit>, ApiError> {
        let mut lists: Vec<(&str, ModerationBehavior)> = Vec::new();
        if let Some(name) = config.blocklist.as_deref().filter(|n| !n.is_empty()) {
            lists.push((
                name,
                config
                    .blocklist_behavior
                    .unwrap_or(ModerationBehavior::Flag),
            ));
        }
        lists.extend(
            config
                .blocklists
                .iter()
                .map(|b| (b.blocklist.as_str(), b.behavior)),
        );
        if lists.is_empty() || text.is_empty() {
            return Ok(None);
        }
        for (name, behavior) in lists {
            if let Some(phrase) = self.matcher(name).await?.and_then(|m| m.first_match(text)) {
                return Ok(Some(BlocklistHit {
                    blocklist: name.to_string(),
                    behavior,
                    phrase,
                }));
            }
        }
        Ok(None)
    }
}
