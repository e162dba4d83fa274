//! Message search (`GET /search`): channels chosen by a query-channels filter (at most 500,
//! readable, of types with `search` on), messages by a text query or a message filter, sorted by
//! relevance or any filterable field, paged by offset or by `next` / `previous` cursors.

use super::acting_user;
use super::Chat;
use crate::domain::caller::Session;
use crate::domain::channel::{check_filter_values, query_channels_rules, ChannelView};
use crate::domain::clock::parse_time;
use crate::domain::filter::{compare_json, parse_sort, words, Filter, Op, SortField};
use crate::domain::limits::MAX_QUERY_OFFSET;
use crate::domain::message::{search_rules, Message};
use crate::domain::ApiError;
use crate::service::decode;
use crate::store::layout::channel_messages_pk;
use crate::store::{Query, TableName};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Channels one search looks into (seed).
const MAX_SEARCH_CHANNELS: usize = 500;
const DEFAULT_SEARCH_LIMIT: usize = 100;
const MAX_SEARCH_LIMIT: usize = 100;

/// The `payload` of `GET /search`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct SearchRequest {
    pub filter_conditions: Option<Value>,
    pub query: Option<String>,
    pub message_filter_conditions: Option<Value>,
    pub sort: Option<Value>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
    pub next: Option<String>,
    pub user_id: Option<String>,
    pub user: Option<Map<String, Value>>,
}

/// What a `next` / `previous` value carries: the sort of the first page and where to resume.
#[derive(Serialize, Deserialize)]
struct Cursor {
    sort: Vec<SortField>,
    at: usize,
}

impl Cursor {
    fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        json.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn decode(s: &str) -> Result<Cursor, ApiError> {
        let bad = || ApiError::field("next", "next is not a value this API returned");
        if !s.len().is_multiple_of(2) || !s.is_ascii() {
            return Err(bad());
        }
        let bytes: Vec<u8> = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16))
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        serde_json::from_slice(&bytes).map_err(|_| bad())
    }
}

/// The text terms of `$q` / `$autocomplete` conditions (what relevance counts).
fn text_terms(filter: &Filter) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    filter.visit(&mut |field, op, value| {
        if field == "text" && matches!(op, Op::Q | Op::Autocomplete) {
            for w in value.as_str().map(words).unwrap_or_default() {
                out.push((w, op == Op::Autocomplete));
            }
        }
    });
    out
}

/// How often the terms occur in the text (prefixes for `$autocomplete`).
fn relevance(text: &str, terms: &[(String, bool)]) -> u64 {
    let text_words = words(text);
    terms
        .iter()
        .map(|(t, prefix)| {
            text_words
                .iter()
                .filter(|w| {
                    if *prefix {
                        w.starts_with(t.as_str())
                    } else {
                        *w == t
                    }
                })
                .count() as u64
        })
        .sum()
}

impl Chat {
    /// `GET /search`.
    pub async fn search(&self, session: &Session, req: SearchRequest) -> Result<Value, ApiError> {
        let channel_filter = match &req.filter_conditions {
            None | Some(Value::Null) => {
                return Err(ApiError::field(
                    "filter_conditions",
                    "filter_conditions is required: it chooses the channels to search",
                ))
            }
            Some(v) if v.as_object().is_some_and(Map::is_empty) => {
                return Err(ApiError::field(
                    "filter_conditions",
                    "filter_conditions cannot be empty",
                ))
            }
            Some(v) => Filter::parse(v, Some(&query_channels_rules()))
                .map_err(|e| ApiError::field("filter_conditions", e.to_string()))?,
        };
        check_filter_values(&channel_filter)?;
        let mut message_filter = match &req.message_filter_conditions {
            None | Some(Value::Null) => None,
            Some(v) if v.as_object().is_some_and(Map::is_empty) => None,
            Some(v) => Some(
                Filter::parse(v, Some(&search_rules()))
                    .map_err(|e| ApiError::field("message_filter_conditions", e.to_string()))?,
            ),
        };
        if let Some(q) = req.query.as_deref().filter(|q| !q.trim().is_empty()) {
            let text = Filter::field("text", Op::Q, Value::String(q.to_string()));
            message_filter = Some(match message_filter {
                Some(f) => f.and(text),
                None => text,
            });
        }
        let message_filter = message_filter.ok_or_else(|| {
            ApiError::field(
                "query",
                "either query or message_filter_conditions is required",
            )
        })?;
        let limit = req.limit.unwrap_or(DEFAULT_SEARCH_LIMIT);
        if limit == 0 || limit > MAX_SEARCH_LIMIT {
            return Err(ApiError::field(
                "limit",
                format!("limit must be between 1 and {MAX_SEARCH_LIMIT}"),
            ));
        }
        let offset = req.offset.unwrap_or(0);
        let given_sort = match &req.sort {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => parse_sort(v).map_err(|e| ApiError::field("sort", e.to_string()))?,
        };
        if offset > 0 && (!given_sort.is_empty() || req.next.is_some()) {
            return Err(ApiError::field(
                "offset",
                "offset cannot be used together with sort or next",
            ));
        }
        if offset > MAX_QUERY_OFFSET {
            return Err(ApiError::field(
                "offset",
                format!("offset must be at most {MAX_QUERY_OFFSET}"),
            ));
        }
        let (mut sort, position) = match req.next.as_deref().filter(|n| !n.is_empty()) {
            Some(n) => {
                let c = Cursor::decode(n)?;
                (c.sort, c.at)
            }
            None if given_sort.is_empty() => (
                vec![SortField::new("relevance", -1), SortField::new("id", 1)],
                offset,
            ),
            None => (given_sort, 0),
        };
        if !sort.iter().any(|s| s.field == "id") {
            sort.push(SortField::new("id", 1));
        }
        let actor = acting_user(session, &req.user_id, &req.user);
        let terms = text_terms(&message_filter);

        let (channels, configs) = self
            .matching_channels(session, &channel_filter, actor.as_deref(), None)
            .await?;
        let mut found: Vec<(Value, Message, Value)> = Vec::new();
        for (loaded, _) in channels.into_iter().take(MAX_SEARCH_CHANNELS) {
            let config = &configs[&loaded.channel.channel_type];
            if !loaded.channel.effective_config(config, &[])?.search {
                continue;
            }
            let viewer = self
                .viewer(session, config, &loaded, actor.as_deref())
                .await?;
            let floor = loaded.channel.messages_floor(None);
            let mine_deleted = self
                .deleted_for_me(&loaded.channel.cid, actor.as_deref())
                .await?;
            let channel_wire = Value::Object(loaded.channel.to_wire(&ChannelView::default()));
            let mut cursor = None;
            loop {
                let page = self
                    .store
                    .query(
                        Query::new(
                            TableName::Messages,
                            channel_messages_pk(&loaded.channel.cid),
                        )
                        .limit(500)
                        .start_after(cursor),
                    )
                    .await?;
                for item in page.items {
                    let m: Message = decode(item.data, "message")?;
                    let live =
                        floor.is_none_or(|f| parse_time(&m.created_at).is_none_or(|t| t >= f));
                    if !live
                        || matches!(m.kind.as_str(), "system" | "deleted")
                        || !m.visible_to(&viewer)
                        || mine_deleted.contains(&m.id)
                    {
                        continue;
                    }
                    let mut doc =
                        m.to_wire(m.user_id.as_ref().map(|u| json!({ "id": u })).as_ref());
                    doc["mentioned_users"] = m
                        .mentioned_user_ids
                        .iter()
                        .map(|id| json!({ "id": id }))
                        .collect::<Vec<_>>()
                        .into();
                    if m.attachments.is_empty() {
                        doc.as_object_mut().map(|o| o.remove("attachments"));
                    }
                    if message_filter.matches_json(&doc) {
                        doc["relevance"] = relevance(&m.text, &terms).into();
                        found.push((doc, m, channel_wire.clone()));
                    }
                }
                match page.last {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
        }
        found.sort_by(|(a, _, _), (b, _, _)| compare_json(&sort, a, b));
        let total = found.len();
        let page: Vec<(Value, Message, Value)> =
            found.into_iter().skip(position).take(limit).collect();
        let messages: Vec<Message> = page.iter().map(|(_, m, _)| m.clone()).collect();
        let wires = self.messages_wire(&messages, actor.as_deref()).await?;
        let results: Vec<Value> = wires
            .into_iter()
            .zip(page.iter())
            .map(|(mut w, (_, _, channel))| {
                w["channel"] = channel.clone();
                json!({ "message": w })
            })
            .collect();
        let mut out = json!({ "results": results });
        if position + limit < total {
            out["next"] = Value::String(
                Cursor {
                    sort: sort.clone(),
                    at: position + limit,
                }
                .encode(),
            );
        }
        if position > 0 {
            out["previous"] = Value::String(
                Cursor {
                    sort,
                    at: position.saturating_sub(limit),
                }
                .encode(),
            );
        }
        Ok(out)
    }
}
