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
                None => self.scan_users_index(&q).await?,
            },
        };
        let include_deactivated = q.include_deactivated_users.unwrap_or(false);
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
        matched.sort_by(|(_, a), (_, b)| compare_json(&sort, a, b));
        Ok(matched
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(u, _)| u)
            .collect())
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
fn user_doc_for_filter(u: &User) -> Value {
    let mut doc = serde_json::to_value(u).unwrap_or(Value::Null);
    if doc.get("username").is_none() {
        if let Some(name) = u.name() {
            doc["username"] = Value::String(name.to_string());
        }
    }
    doc
}
