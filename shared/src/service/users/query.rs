//! Query users: the filter's fields and operators, candidates from keys (ids), the role index
//! or the users index walked in id order, and the sorted page.

use super::*;

/// Query users request (the `payload` of `GET /users`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct QueryUsers {
    #[serde(default)]
    pub filter_conditions: Option<Value>,
    #[serde(default)]
    pub sort: Option<Value>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub offset: Option<usize>,
    #[serde(default)]
    pub include_deactivated_users: Option<bool>,
    #[serde(default)]
    pub presence: Option<bool>,
    #[serde(default)]
    pub id_gt: Option<String>,
    #[serde(default)]
    pub id_gte: Option<String>,
    #[serde(default)]
    pub id_lt: Option<String>,
    #[serde(default)]
    pub id_lte: Option<String>,
}

/// Filter fields of query users and their operators (seed: Querying Users); other fields are
/// custom and take any operator.
/// More spans than this (values of one `$in`) on a custom field read every user instead.
const MAX_INDEXED_VALUES: usize = 100;

fn query_users_rules() -> crate::domain::filter::FieldRules {
    use crate::domain::filter::{FieldRules, Op, Op::*, ValueKind};
    FieldRules::new()
        .typed(
            "id",
            ValueKind::String,
            &[Eq, Gt, Gte, Lt, Lte, In, Autocomplete],
        )
        .field("role", &[Eq, Gt, Gte, Lt, Lte, In])
        .typed("banned", ValueKind::Bool, &[Eq])
        .typed("shadow_banned", ValueKind::Bool, &[Eq])
        .typed(
            "created_at",
            ValueKind::Timestamp,
            &[Eq, Gt, Gte, Lt, Lte, In],
        )
        .typed(
            "updated_at",
            ValueKind::Timestamp,
            &[Eq, Gt, Gte, Lt, Lte, In],
        )
        .typed(
            "last_active",
            ValueKind::Timestamp,
            &[Eq, Gt, Gte, Lt, Lte, In, Exists],
        )
        .field("teams", &[Eq, Contains])
        .field("name", &[Eq, Autocomplete])
        .field("username", &[Eq, Autocomplete])
        .custom_fields(&Op::ALL)
}

impl Chat {
    /// `GET /users`: filter, sort and page users. Id lookups go straight to the users' keys;
    /// other queries walk the users index (in id order, bounded by `id_*` when given).
    pub async fn query_users(
        &self,
        session: &Session,
        q: QueryUsers,
    ) -> Result<Vec<User>, ApiError> {
        let caller = &session.caller;
        let settings = &session.settings;
        if !caller.is_server() && !settings.disable_permissions_checks {
            let subject = caller.subject(None);
            if !permissions::is_allowed(
                &settings.grants,
                &subject,
                "SearchUser",
                &Resource {
                    owner_id: None,
                    team: None,
                },
            ) {
                return Err(ApiError::not_allowed(format!(
                    "user {:?} is not allowed to search users",
                    subject.user_id
                )));
            }
        }
        let QueryParts {
            filter,
            mut sort,
            limit,
            offset,
        } = QueryParts::parse(
            q.filter_conditions.as_ref(),
            &query_users_rules(),
            q.sort.as_ref(),
            q.limit,
            (DEFAULT_QUERY_USERS_LIMIT, MAX_QUERY_USERS_LIMIT),
            q.offset,
        )?;
        let id_paging =
            q.id_gt.is_some() || q.id_gte.is_some() || q.id_lt.is_some() || q.id_lte.is_some();
        if sort.is_empty() {
            sort = if id_paging {
                vec![SortField {
                    field: "id".into(),
                    direction: -1,
                }]
            } else {
                vec![
                    SortField {
                        field: "created_at".into(),
                        direction: -1,
                    },
                    SortField {
                        field: "id".into(),
                        direction: -1,
                    },
                ]
            };
        }

        let include_deactivated = q.include_deactivated_users.unwrap_or(false);
        let candidates = match filter.key_values("id") {
            Some(ids) => {
                let ids: Vec<&str> = ids.iter().filter_map(Value::as_str).collect();
                self.users_by_id(&ids)
                    .await?
                    .into_values()
                    .map(|(u, _)| u)
                    .collect()
            }
            // Users of named roles come from the role index, not a walk of every user.
            None => match filter.key_values("role") {
                Some(roles) => {
                    let mut users = Vec::new();
                    for role in roles.iter().filter_map(Value::as_str) {
                        let query =
                            Query::new(TableName::App, users_with_role_pk(role)).index(Index::Gsi2);
                        for item in query_all(self.store.as_ref(), query).await? {
                            users.push(decode::<User>(item.data, "user")?);
                        }
                    }
                    users
                }
                None => match self
                    .users_by_custom_field(&filter, &sort, offset + limit, &|u| {
                        !u.is_deleted()
                            && (include_deactivated || !u.is_deactivated())
                            && id_in_range(&u.id, &q)
                            && filter.matches_json(&user_doc_for_filter(u))
                    })
                    .await?
                {
                    Some(users) => users,
                    None => self.scan_users_index(&q).await?,
                },
            },
        };
        let mut matched: Vec<(User, Value)> = candidates
            .into_iter()
            .filter(|u| !u.is_deleted() && (include_deactivated || !u.is_deactivated()))
            .filter(|u| id_in_range(&u.id, &q))
            .map(|u| {
                let doc = user_doc_for_filter(&u);
                (u, doc)
            })
            .filter(|(_, doc)| filter.matches_json(doc))
            .collect();
        // Ties in id order, whichever way the candidates were found, so pages do not overlap.
        matched.sort_by(|(x, a), (y, b)| compare_json(&sort, a, b).then_with(|| x.id.cmp(&y.id)));
        Ok(matched
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(u, _)| u)
            .collect())
    }

    /// The users listed in the custom-field index where the filter confines a custom field
    /// (`$eq`, `$in`, `$gt`, `$gte`, `$lt`, `$lte`), with the users too large to list; `None`
    /// when the filter confines no custom field (or in too many spans), so the caller walks
    /// every user. Sorted first on that field, only the first `needed` users the query takes
    /// (by `takes`) are read in the field's order, with the ties of the last one.
    async fn users_by_custom_field(
        &self,
        filter: &crate::domain::filter::Filter,
        sort: &[SortField],
        needed: usize,
        takes: &(dyn Fn(&User) -> bool + Sync),
    ) -> Result<Option<Vec<User>>, ApiError> {
        use crate::domain::user_index::{
            entry_user_id, is_indexed_field, merged, spans, ARRAY_KEY,
        };
        use crate::store::layout::{user_field_pk, UNINDEXED_USERS_PK};
        let best = filter
            .fields()
            .into_iter()
            .filter(|f| is_indexed_field(f))
            .filter_map(|f| Some((f, spans(filter, f)?)))
            .min_by_key(|(_, spans)| (!spans.iter().all(|s| s.is_exact()), spans.len()));
        let Some((field, spans)) = best.filter(|(_, spans)| spans.len() <= MAX_INDEXED_VALUES)
        else {
            return Ok(None);
        };
        self.complete_user_field_index().await?;
        let pk = user_field_pk(field);
        let mut ids = BTreeSet::new();
        let mut users = Vec::new();
        match sort.first().filter(|s| s.field == field) {
            Some(order) => {
                users = self
                    .walk_user_field(&pk, merged(spans), order.direction < 0, needed, takes)
                    .await?;
            }
            None => {
                for span in merged(spans) {
                    let query = Query::new(TableName::App, pk.clone())
                        .range(SkRange::Between(span.from, span.to));
                    for item in query_all(self.store.as_ref(), query).await? {
                        ids.extend(entry_user_id(&item.sk).map(str::to_string));
                    }
                }
            }
        }
        // Users whose field is an array: they may match by different elements than the spans
        // hold, and sort after every value, wherever their elements are listed.
        let arrays = SkRange::BeginsWith(format!("{ARRAY_KEY}\u{1}"));
        let query = Query::new(TableName::App, pk).range(arrays);
        for item in query_all(self.store.as_ref(), query).await? {
            ids.extend(entry_user_id(&item.sk).map(str::to_string));
        }
        let unindexed = Query::new(TableName::App, UNINDEXED_USERS_PK);
        for item in query_all(self.store.as_ref(), unindexed).await? {
            ids.insert(item.sk);
        }
        for user in &users {
            ids.remove(&user.id);
        }
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        users.extend(self.users_by_id(&ids).await?.into_values().map(|(u, _)| u));
        Ok(Some(users))
    }

    /// Reads a field's entries in its order (descending when `backward`), through disjoint
    /// ascending spans, until `needed` users are taken and the order key moves past the last
    /// one's (its ties may sort before it on later sort fields). Every user not read has a key
    /// past that one, so sorts after the users taken.
    async fn walk_user_field(
        &self,
        pk: &str,
        mut spans: Vec<crate::domain::user_index::Span>,
        backward: bool,
        needed: usize,
        takes: &(dyn Fn(&User) -> bool + Sync),
    ) -> Result<Vec<User>, ApiError> {
        use crate::domain::user_index::entry_parts;
        if backward {
            spans.reverse();
        }
        let page_size = (needed * 2).clamp(20, 500);
        let mut seen = HashSet::new();
        let mut taken = Vec::new();
        let mut last_key: Option<String> = None;
        for span in spans {
            let mut cursor = None;
            loop {
                let mut query = Query::new(TableName::App, pk)
                    .range(SkRange::Between(span.from.clone(), span.to.clone()))
                    .limit(page_size)
                    .start_after(cursor);
                if backward {
                    query = query.backward();
                }
                let page = self.store.query(query).await?;
                let entries: Vec<(String, String)> = page
                    .items
                    .iter()
                    .filter_map(|i| entry_parts(&i.sk))
                    .map(|(k, id)| (k.to_string(), id.to_string()))
                    .collect();
                let fresh: Vec<&str> = entries
                    .iter()
                    .map(|(_, id)| id.as_str())
                    .filter(|id| !seen.contains(*id))
                    .collect();
                let mut found = self.users_by_id(&fresh).await?;
                for (key, id) in entries {
                    if last_key.as_ref().is_some_and(|k| *k != key) {
                        return Ok(taken);
                    }
                    if !seen.insert(id.clone()) {
                        continue;
                    }
                    let Some((user, _)) = found.remove(&id) else {
                        continue;
                    };
                    if takes(&user) {
                        taken.push(user);
                        if taken.len() == needed {
                            last_key = Some(key);
                        }
                    }
                }
                cursor = page.last;
                if cursor.is_none() {
                    break;
                }
            }
        }
        Ok(taken)
    }

    /// Lists every user in the custom-field index once (users written since the index exists
    /// are listed by their writes), then marks it complete. Idempotent: a write racing the
    /// walk lists its user whole itself.
    pub(crate) async fn complete_user_field_index(&self) -> Result<(), ApiError> {
        let (pk, sk) = crate::store::layout::user_field_index_ready_key();
        if self.store.get(TableName::App, &pk, &sk).await?.is_some() {
            return Ok(());
        }
        let query = Query::new(TableName::App, USERS_INDEX_PK).index(Index::Gsi1);
        let mut listed = 0usize;
        for item in query_all(self.store.as_ref(), query).await? {
            let user: User = decode(item.data, "user")?;
            let writes = super::custom_index_writes(None, Some(&user));
            listed += 1;
            if !writes.is_empty() {
                self.store.transact(writes).await?;
            }
        }
        self.store
            .transact(vec![Write::Put {
                table: TableName::App,
                item: Item::new(pk, sk, json!({ "users": listed })),
                condition: Condition::None,
            }])
            .await?;
        tracing::info!(
            users = listed,
            "listed every user in the custom-field index"
        );
        Ok(())
    }

    async fn scan_users_index(&self, q: &QueryUsers) -> Result<Vec<User>, ApiError> {
        let range = match (&q.id_gt, &q.id_gte, &q.id_lt, &q.id_lte) {
            (Some(g), _, _, _) => SkRange::Gt(g.clone()),
            (_, Some(g), _, _) => SkRange::Ge(g.clone()),
            (_, _, Some(l), _) => SkRange::Lt(l.clone()),
            (_, _, _, Some(l)) => SkRange::Le(l.clone()),
            _ => SkRange::All,
        };
        let query = Query::new(TableName::App, USERS_INDEX_PK)
            .index(Index::Gsi1)
            .range(range);
        query_all(self.store.as_ref(), query)
            .await?
            .into_iter()
            .map(|item| decode::<User>(item.data, "user"))
            .collect()
    }
}

fn id_in_range(id: &str, q: &QueryUsers) -> bool {
    q.id_gt.as_deref().is_none_or(|b| id > b)
        && q.id_gte.as_deref().is_none_or(|b| id >= b)
        && q.id_lt.as_deref().is_none_or(|b| id < b)
        && q.id_lte.as_deref().is_none_or(|b| id <= b)
}

/// The document filters and sorts see: the user's fields with custom data at the top level (as
/// returned, without the `custom` copy), with `username` defaulting to `name`.
pub(crate) fn user_doc_for_filter(u: &User) -> Value {
    let mut doc = serde_json::to_value(u).unwrap_or(Value::Null);
    if doc.get("username").is_none() {
        if let Some(name) = u.name() {
            doc["username"] = Value::String(name.to_string());
        }
    }
    doc
}
