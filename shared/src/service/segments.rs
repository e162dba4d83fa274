//! Segments (server-side): create, read, update, delete and query them; add, remove, check and
//! query their targets; and list their audience in id order for campaigns. A segment and its
//! targets are owned here: the segment item keeps the count of targets added one by one.

use super::{decode, to_doc, Chat, QueryParts};
use crate::domain::caller::Session;
use crate::domain::campaign::{
    Segment, SegmentFields, SegmentType, MAX_ADD_TARGETS, MAX_DELETE_TARGETS, MAX_QUERY_PAGE,
    MAX_TARGETS_PAGE,
};
use crate::domain::filter::{compare_json, Filter, SortField};
use crate::domain::ids::random_id;
use crate::domain::user::User;
use crate::domain::ApiError;
use crate::store::layout::{
    channels_of_type_pk, memberships_pk, segment_key, segment_targets_pk, SEGMENTS_PK,
    USERS_INDEX_PK,
};
use crate::store::{
    query_all, Condition, Index, Item, Query, SkRange, StoreError, TableName, Write,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Users read per page while walking a filter segment's audience.
const WALK_PAGE: usize = 500;
/// Attempts at a write that concurrent writers keep winning.
const ATTEMPTS: usize = 20;

/// Body of `POST /segments/query` and `POST /segments/{id}/targets/query`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct QueryPage {
    #[serde(alias = "Filter")]
    pub filter: Option<Value>,
    #[serde(alias = "Sort")]
    pub sort: Option<Value>,
    pub limit: Option<usize>,
    pub next: Option<String>,
    pub prev: Option<String>,
}

impl QueryPage {
    /// The offset a `next` cursor of an offset-paged listing names.
    pub(crate) fn offset(&self) -> Result<usize, ApiError> {
        if self.prev.as_deref().is_some_and(|p| !p.is_empty()) {
            return Err(ApiError::field(
                "prev",
                "paging back with prev is not supported: page with next",
            ));
        }
        match self.next.as_deref().filter(|n| !n.is_empty()) {
            None => Ok(0),
            Some(n) => n
                .strip_prefix("o")
                .and_then(|o| o.parse().ok())
                .ok_or_else(|| ApiError::field("next", "next is not a cursor this query gave")),
        }
    }
}

/// The `next` cursor of an offset-paged listing.
pub(crate) fn offset_cursor(offset: usize) -> String {
    format!("o{offset}")
}

/// An offset-paged listing's filter, sort (newest first when none is given) and page.
pub(crate) struct Listing {
    filter: Filter,
    sort: Vec<SortField>,
    limit: usize,
    offset: usize,
}

impl Listing {
    pub(crate) fn parse(
        q: &QueryPage,
        rules: &crate::domain::filter::FieldRules,
        sortable: &[&str],
    ) -> Result<Listing, ApiError> {
        let offset = q.offset()?;
        let QueryParts {
            filter,
            mut sort,
            limit,
            ..
        } = QueryParts::parse(
            q.filter.as_ref(),
            rules,
            q.sort.as_ref(),
            q.limit.filter(|l| *l > 0),
            (MAX_QUERY_PAGE, MAX_QUERY_PAGE),
            None,
        )?;
        if let Some(s) = sort.iter().find(|s| !sortable.contains(&s.field.as_str())) {
            return Err(ApiError::field(
                "sort",
                format!(
                    "cannot sort by {:?} (sortable: {})",
                    s.field,
                    sortable.join(", ")
                ),
            ));
        }
        if sort.is_empty() {
            sort.push(SortField::new("created_at", -1));
        }
        Ok(Listing {
            filter,
            sort,
            limit,
            offset,
        })
    }

    /// The answer listing `page` under `key`, with `next` when there is more.
    pub(crate) fn reply(key: &str, page: Vec<Value>, next: Option<String>) -> Value {
        let mut out = json!({ key: page });
        if let Some(next) = next {
            out["next"] = next.into();
        }
        out
    }

    /// The records whose documents match, sorted (ties by id) and paged, and the cursor of
    /// the next page when there is one.
    pub(crate) fn page<T>(&self, records: Vec<(T, Value)>) -> (Vec<T>, Option<String>) {
        let mut matched: Vec<(T, Value)> = records
            .into_iter()
            .filter(|(_, doc)| self.filter.matches_json(doc))
            .collect();
        matched.sort_by(|(_, a), (_, b)| {
            compare_json(&self.sort, a, b).then_with(|| a["id"].as_str().cmp(&b["id"].as_str()))
        });
        let next = (self.offset + self.limit < matched.len())
            .then(|| offset_cursor(self.offset + self.limit));
        let page = matched
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .map(|(t, _)| t)
            .collect();
        (page, next)
    }
}

fn segment_rules() -> crate::domain::filter::FieldRules {
    use crate::domain::filter::{FieldRules, Op::*, ValueKind};
    let ordered = &[Eq, Exists, Gt, Gte, In, Lt, Lte];
    FieldRules::new()
        .typed("id", ValueKind::String, ordered)
        .typed("name", ValueKind::String, ordered)
        .typed("type", ValueKind::String, &[Eq, Exists, In])
        .typed("all_users", ValueKind::Bool, &[Eq, Exists])
        .typed("created_at", ValueKind::Timestamp, ordered)
        .typed("updated_at", ValueKind::Timestamp, ordered)
}

fn target_rules() -> crate::domain::filter::FieldRules {
    use crate::domain::filter::{FieldRules, Op::*, ValueKind};
    FieldRules::new().typed("target_id", ValueKind::String, &[Eq, Gt, Gte, In, Lt, Lte])
}

fn segment_item(segment: &Segment, version: u64) -> Result<Item, ApiError> {
    let (pk, sk) = segment_key(&segment.id);
    let mut item = Item::new(pk, sk, to_doc(segment)?).with_gsi1(
        SEGMENTS_PK,
        format!("{}#{}", segment.created_at, segment.id),
    );
    item.version = version;
    Ok(item)
}

/// A segment's filter: query users' for user segments, query channels' for channel segments.
fn segment_filter(kind: SegmentType, f: &Value) -> Result<Filter, ApiError> {
    let rules = match kind {
        SegmentType::User => None,
        SegmentType::Channel => Some(crate::domain::channel::query_channels_rules()),
    };
    Filter::parse(f, rules.as_ref()).map_err(|e| ApiError::field("filter", e.to_string()))
}

fn check_target_ids(kind: SegmentType, ids: &[String], max: usize) -> Result<(), ApiError> {
    if ids.is_empty() || ids.len() > max {
        return Err(ApiError::field(
            "target_ids",
            format!("target_ids must list 1 to {max} ids"),
        ));
    }
    for id in ids {
        if id.is_empty() || id.len() > 255 {
            return Err(ApiError::field(
                "target_ids",
                "a target id is 1 to 255 characters",
            ));
        }
        if kind == SegmentType::Channel && !id.contains(':') {
            return Err(ApiError::field(
                "target_ids",
                format!("the targets of a channel segment are cids (type:id), got {id:?}"),
            ));
        }
    }
    Ok(())
}

impl Chat {
    /// A segment and its version, unless deleted.
    pub(crate) async fn load_segment(&self, id: &str) -> Result<Option<(Segment, u64)>, ApiError> {
        let found = self
            .load::<Segment>(TableName::App, segment_key(id))
            .await?;
        Ok(found.map(|(segment, item)| (segment, item.version)))
    }

    async fn segment_or_404(&self, id: &str) -> Result<(Segment, u64), ApiError> {
        self.load_segment(id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("segment {id:?} does not exist")))
    }

    /// `POST /segments`.
    pub async fn create_segment(
        &self,
        session: &Session,
        fields: SegmentFields,
    ) -> Result<Value, ApiError> {
        session.caller.require_server("creating segments")?;
        let id = fields
            .id
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(random_id);
        let now = crate::domain::clock::format_time(self.now());
        let mut segment = Segment::create(fields, id, &now)?;
        self.check_segment_source(&segment)?;
        segment.size = self.audience_size(&segment).await?;
        let write = Write::Put {
            table: TableName::App,
            item: segment_item(&segment, 1)?,
            condition: Condition::NotExists,
        };
        match self.store.write(write).await {
            Ok(()) => Ok(json!({ "segment": segment })),
            Err(StoreError::ConditionFailed) => Err(ApiError::input(format!(
                "a segment with id {:?} already exists",
                segment.id
            ))),
            Err(e) => Err(e.into()),
        }
    }

    fn check_segment_source(&self, segment: &Segment) -> Result<(), ApiError> {
        if let Some(f) = &segment.filter {
            segment_filter(segment.kind, f)?;
        }
        Ok(())
    }

    /// `GET /segments/{id}`.
    pub async fn get_segment(&self, session: &Session, id: &str) -> Result<Value, ApiError> {
        session.caller.require_server("reading segments")?;
        let (segment, _) = self.segment_or_404(id).await?;
        Ok(json!({ "segment": segment }))
    }

    /// `PUT /segments/{id}`: the fields given replace the segment's.
    pub async fn update_segment(
        &self,
        session: &Session,
        id: &str,
        fields: SegmentFields,
    ) -> Result<Value, ApiError> {
        session.caller.require_server("updating segments")?;
        // A filter's (or everyone's) size is worked out before the write.
        let (mut updated, _) = self.segment_or_404(id).await?;
        updated.apply(fields.clone(), "")?;
        self.check_segment_source(&updated)?;
        let source_changed = fields.filter.is_some()
            || fields.all_users.is_some()
            || fields.all_sender_channels.is_some();
        let size = match source_changed && !updated.by_targets() {
            true => Some(self.audience_size(&updated).await?),
            false => None,
        };
        let segment = self
            .change_segment(id, |segment, now| {
                segment.apply(fields.clone(), &crate::domain::clock::format_time(now))?;
                if let Some(size) = size {
                    segment.size = size;
                }
                Ok(Vec::new())
            })
            .await?;
        Ok(json!({ "segment": segment }))
    }

    async fn change_segment(
        &self,
        id: &str,
        change: impl FnMut(&mut Segment, chrono::DateTime<chrono::Utc>) -> Result<Vec<Write>, ApiError>,
    ) -> Result<Segment, ApiError> {
        self.change_app_record(segment_key(id), "segment", |s| segment_item(s, 0), change)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("segment {id:?} does not exist")))
    }

    /// `DELETE /segments/{id}`: the segment and its targets.
    pub async fn delete_segment(&self, session: &Session, id: &str) -> Result<Value, ApiError> {
        session.caller.require_server("deleting segments")?;
        self.segment_or_404(id).await?;
        let (pk, sk) = segment_key(id);
        self.store
            .write(Write::Delete {
                table: TableName::App,
                pk,
                sk,
                condition: Condition::None,
            })
            .await?;
        let targets = Query::new(TableName::App, segment_targets_pk(id)).keys_only();
        let keys: Vec<Write> = query_all(self.store.as_ref(), targets)
            .await?
            .into_iter()
            .map(|i| Write::Delete {
                table: TableName::App,
                pk: i.pk,
                sk: i.sk,
                condition: Condition::None,
            })
            .collect();
        for chunk in keys.chunks(crate::store::MAX_TRANSACTION_WRITES) {
            self.store.transact(chunk.to_vec()).await?;
        }
        Ok(json!({}))
    }

    /// `POST /segments/query`: filter, sort (newest first by default) and page.
    pub async fn query_segments(&self, session: &Session, q: QueryPage) -> Result<Value, ApiError> {
        session.caller.require_server("querying segments")?;
        let listing = Listing::parse(
            &q,
            &segment_rules(),
            &["id", "name", "type", "created_at", "updated_at"],
        )?;
        let listed = query_all(
            self.store.as_ref(),
            Query::new(TableName::App, SEGMENTS_PK).index(Index::Gsi1),
        )
        .await?;
        let (page, next) = listing.page(
            listed
                .into_iter()
                .map(|i| (i.data.clone(), i.data))
                .collect(),
        );
        Ok(Listing::reply("segments", page, next))
    }

    /// `POST /segments/{id}/addtargets`: targets already there are left as they are.
    pub async fn add_segment_targets(
        &self,
        session: &Session,
        id: &str,
        target_ids: Vec<String>,
    ) -> Result<Value, ApiError> {
        session.caller.require_server("adding segment targets")?;
        let (segment, _) = self.segment_or_404(id).await?;
        check_target_ids(segment.kind, &target_ids, MAX_ADD_TARGETS)?;
        if !segment.by_targets() {
            return Err(ApiError::input(
                "this segment is defined by its filter (or everyone): targets cannot be added",
            ));
        }
        let ids: BTreeSet<String> = target_ids.into_iter().collect();
        let ids: Vec<String> = ids.into_iter().collect();
        let pk = segment_targets_pk(id);
        let now = crate::domain::clock::format_time(self.now());
        let mut added = 0u64;
        for chunk in ids.chunks(crate::store::MAX_TRANSACTION_WRITES) {
            for attempt in 1..=ATTEMPTS {
                let keys: Vec<(String, String)> =
                    chunk.iter().map(|t| (pk.clone(), t.clone())).collect();
                let present: BTreeSet<String> = self
                    .store
                    .batch_get(TableName::App, &keys)
                    .await?
                    .into_iter()
                    .map(|i| i.sk)
                    .collect();
                let writes: Vec<Write> = chunk
                    .iter()
                    .filter(|t| !present.contains(*t))
                    .map(|t| Write::Put {
                        table: TableName::App,
                        item: Item::new(pk.clone(), t.clone(), json!({ "created_at": now })),
                        condition: Condition::NotExists,
                    })
                    .collect();
                let n = writes.len() as u64;
                match self.store.transact(writes).await {
                    Ok(()) => {
                        added += n;
                        break;
                    }
                    Err(StoreError::TransactionCanceled { .. }) if attempt < ATTEMPTS => {
                        super::contention_pause(attempt).await
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.adjust_segment_size(id, added as i64).await?;
        Ok(json!({}))
    }

    /// `POST /segments/{id}/deletetargets`: targets not there are no error.
    pub async fn delete_segment_targets(
        &self,
        session: &Session,
        id: &str,
        target_ids: Vec<String>,
    ) -> Result<Value, ApiError> {
        session.caller.require_server("removing segment targets")?;
        let (segment, _) = self.segment_or_404(id).await?;
        check_target_ids(segment.kind, &target_ids, MAX_DELETE_TARGETS)?;
        let pk = segment_targets_pk(id);
        let ids: BTreeSet<String> = target_ids.into_iter().collect();
        let keys: Vec<(String, String)> = ids.iter().map(|t| (pk.clone(), t.clone())).collect();
        let mut removed = 0i64;
        for attempt in 1..=ATTEMPTS {
            let present = self.store.batch_get(TableName::App, &keys).await?;
            let writes: Vec<Write> = present
                .into_iter()
                .map(|i| Write::Delete {
                    table: TableName::App,
                    pk: i.pk,
                    sk: i.sk,
                    condition: Condition::Exists,
                })
                .collect();
            let n = writes.len() as i64;
            match self.store.transact(writes).await {
                Ok(()) => {
                    removed = n;
                    break;
                }
                Err(StoreError::TransactionCanceled { .. }) if attempt < ATTEMPTS => {
                    super::contention_pause(attempt).await
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.adjust_segment_size(id, -removed).await?;
        Ok(json!({}))
    }

    async fn adjust_segment_size(&self, id: &str, by: i64) -> Result<(), ApiError> {
        if by != 0 {
            self.change_segment(id, |segment, _| {
                segment.size = (segment.size as i64 + by).max(0) as u64;
                Ok(Vec::new())
            })
            .await?;
        }
        Ok(())
    }

    /// `GET /segments/{id}/target/{target_id}`: 404 unless the target is in the segment.
    pub async fn segment_target_exists(
        &self,
        session: &Session,
        id: &str,
        target_id: &str,
    ) -> Result<Value, ApiError> {
        session.caller.require_server("reading segment targets")?;
        let (segment, _) = self.segment_or_404(id).await?;
        let found = if segment.by_targets() {
            self.store
                .get(TableName::App, &segment_targets_pk(id), target_id)
                .await?
                .is_some()
        } else {
            let page = self
                .audience_page(&segment, None, None, Some(target_id), 1)
                .await?;
            page.first().is_some_and(|t| t == target_id)
        };
        if !found {
            return Err(ApiError::not_found(format!(
                "target {target_id:?} is not in segment {id:?}"
            )));
        }
        Ok(json!({}))
    }

    /// `POST /segments/{id}/targets/query`: the targets added one by one, in `target_id` order
    /// (ascending unless sorted descending), paged with `next`.
    pub async fn query_segment_targets(
        &self,
        session: &Session,
        id: &str,
        q: QueryPage,
    ) -> Result<Value, ApiError> {
        session.caller.require_server("querying segment targets")?;
        self.segment_or_404(id).await?;
        let QueryParts {
            filter,
            sort,
            limit,
            ..
        } = QueryParts::parse(
            q.filter.as_ref(),
            &target_rules(),
            q.sort.as_ref(),
            q.limit.filter(|l| *l > 0),
            (MAX_QUERY_PAGE, MAX_TARGETS_PAGE),
            None,
        )?;
        let descending = match sort.as_slice() {
            [] => false,
            [s] if s.field == "target_id" => s.direction < 0,
            _ => return Err(ApiError::field("sort", "targets sort by target_id only")),
        };
        if q.prev.as_deref().is_some_and(|p| !p.is_empty()) {
            return Err(ApiError::field(
                "prev",
                "paging back with prev is not supported: page with next",
            ));
        }
        let after = match q.next.as_deref().filter(|n| !n.is_empty()) {
            None => None,
            Some(n) => Some(
                n.strip_prefix("t")
                    .ok_or_else(|| ApiError::field("next", "next is not a cursor this query gave"))?
                    .to_string(),
            ),
        };
        let pk = segment_targets_pk(id);
        let mut targets = Vec::new();
        let mut cursor = None;
        let mut more = false;
        'pages: loop {
            let mut query = Query::new(TableName::App, pk.clone())
                .limit(WALK_PAGE)
                .start_after(cursor);
            query = match (&after, descending) {
                (Some(a), false) => query.range(SkRange::Gt(a.clone())),
                (Some(a), true) => query.range(SkRange::Lt(a.clone())).backward(),
                (None, false) => query,
                (None, true) => query.backward(),
            };
            let page = self.store.query(query).await?;
            for item in page.items {
                let doc = json!({
                    "app_pk": 1,
                    "segment_id": id,
                    "target_id": item.sk,
                    "created_at": item.data["created_at"],
                });
                if filter.matches_json(&doc) {
                    if targets.len() == limit {
                        more = true;
                        break 'pages;
                    }
                    targets.push(doc);
                }
            }
            cursor = page.last;
            if cursor.is_none() {
                break;
            }
        }
        let next = match (more, targets.last()) {
            (true, Some(t)) => format!("t{}", t["target_id"].as_str().unwrap_or_default()),
            _ => String::new(),
        };
        Ok(json!({ "targets": targets, "next": next }))
    }

    /// Up to `limit` channels in cid order in `range` that a server-side query channels with
    /// `filter` finds: each type's channels (the filter's types, or every type) walked in cid
    /// order, merged.
    async fn channels_matching(
        &self,
        filter: &Filter,
        range: SkRange,
        limit: usize,
    ) -> Result<Vec<String>, ApiError> {
        let mut found = BTreeSet::new();
        for kind in self.filter_types(filter).await? {
            let mut taken = 0;
            let mut cursor = None;
            loop {
                let query = Query::new(TableName::Channels, channels_of_type_pk(&kind))
                    .index(Index::Gsi2)
                    .range(range.clone())
                    .limit(WALK_PAGE)
                    .start_after(cursor)
                    .keys_only();
                let page = self.store.query(query).await?;
                for cid in page.items.into_iter().filter_map(|i| i.gsi2.map(|k| k.sk)) {
                    if taken < limit && self.channel_matches(&cid, filter).await? {
                        found.insert(cid);
                        taken += 1;
                    }
                }
                cursor = page.last;
                if cursor.is_none() || taken == limit {
                    break;
                }
            }
        }
        // Each type gave its first `limit`, so the union's first `limit` are the audience's.
        Ok(found.into_iter().take(limit).collect())
    }

    /// How many targets a segment has: its count of targets added one by one, or its
    /// audience walked (a filter's or everyone's).
    async fn audience_size(&self, segment: &Segment) -> Result<u64, ApiError> {
        // The sender's channels are known only to a campaign (Stream leaves their size 0 too).
        if segment.by_targets() || segment.all_sender_channels {
            return Ok(segment.size);
        }
        let mut n = 0u64;
        let mut after: Option<String> = None;
        loop {
            let page = self
                .audience_page(segment, None, after.as_deref(), None, WALK_PAGE)
                .await?;
            n += page.len() as u64;
            match page.last() {
                Some(last) if page.len() == WALK_PAGE => after = Some(last.clone()),
                _ => return Ok(n),
            }
        }
    }

    /// Up to `limit` of a segment's targets in id order, after `after` (or from `from`
    /// inclusive): user ids of a user segment, cids of a channel segment. A filter segment
    /// walks the users in id order, keeping those the filter matches (deleted and deactivated
    /// users are left out); `all_sender_channels` lists the channels `sender` is a member of.
    pub(crate) async fn audience_page(
        &self,
        segment: &Segment,
        sender: Option<&str>,
        after: Option<&str>,
        from: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, ApiError> {
        let range = match (after, from) {
            (Some(a), _) => SkRange::Gt(a.to_string()),
            (None, Some(f)) => SkRange::Ge(f.to_string()),
            (None, None) => SkRange::All,
        };
        if segment.all_sender_channels {
            let sender = sender.ok_or_else(|| {
                ApiError::input(
                    "an all_sender_channels segment's channels are its campaign sender's",
                )
            })?;
            let query = Query::new(TableName::Channels, memberships_pk(sender))
                .index(Index::Gsi1)
                .range(range)
                .limit(limit)
                .keys_only();
            let page = self.store.query(query).await?;
            return Ok(page
                .items
                .into_iter()
                .filter_map(|i| i.gsi1.map(|k| k.sk))
                .collect());
        }
        if segment.by_targets() {
            let query = Query::new(TableName::App, segment_targets_pk(&segment.id))
                .range(range)
                .limit(limit)
                .keys_only();
            let page = self.store.query(query).await?;
            return Ok(page.items.into_iter().map(|i| i.sk).collect());
        }
        let filter = match &segment.filter {
            Some(f) => Some(segment_filter(segment.kind, f)?),
            None => None,
        };
        if let (SegmentType::Channel, Some(filter)) = (segment.kind, &filter) {
            return self.channels_matching(filter, range, limit).await;
        }
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let query = Query::new(TableName::App, USERS_INDEX_PK)
                .index(Index::Gsi1)
                .range(range.clone())
                .limit(WALK_PAGE.max(limit))
                .start_after(cursor);
            let page = self.store.query(query).await?;
            for item in page.items {
                let user: User = decode(item.data, "user")?;
                if user.is_deleted() || user.is_deactivated() {
                    continue;
                }
                let takes = match &filter {
                    Some(f) => f.matches_json(&super::users::user_doc_for_filter(&user)),
                    None => true,
                };
                if takes {
                    out.push(user.id);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            cursor = page.last;
            if cursor.is_none() {
                return Ok(out);
            }
        }
    }
}
