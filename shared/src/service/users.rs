//! User use cases: upsert, partial update, query, deactivate/reactivate, delete/restore, guests,
//! with unique usernames and a `user.*` event in the outbox for every change.

use super::tasks::TaskJob;
use super::{to_doc, Chat, QueryParts};
use crate::domain::app_settings::AppSettings;
use crate::domain::caller::{Caller, Session};
use crate::domain::clock::{format_time, parse_time};
use crate::domain::event::Event;
use crate::domain::filter::{compare_json, SortField};
use crate::domain::limits::{
    DEFAULT_QUERY_USERS_LIMIT, MAX_QUERY_USERS_LIMIT, MAX_USERS_PER_BATCH,
};
use crate::domain::patch::top_field;
use crate::domain::permissions::{self, Resource};
use crate::domain::user::{
    normalize_username, refused_client_change, validate_user_id, User, GUEST_ROLE,
    SERVER_CONTROLLED,
};
use crate::domain::{ApiError, ErrorCode};
use crate::service::decode;
use crate::store::layout::{
    outbox_write, user_item, user_key, username_key, users_with_role_pk, USERS_INDEX_PK,
};
use crate::store::{
    query_all, Condition, Index, Item, Query, SkRange, StoreError, TableName, Write,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashSet};

/// One entry of a partial update: `{id, set, unset}`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct UserPatch {
    pub id: String,
    #[serde(default)]
    pub set: Option<Map<String, Value>>,
    #[serde(default)]
    pub unset: Option<Vec<String>>,
}

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

#[derive(Clone, Debug, Default, Deserialize)]
pub struct DeleteUserOptions {
    #[serde(default)]
    pub mark_messages_deleted: Option<bool>,
    #[serde(default)]
    pub hard_delete: Option<bool>,
    #[serde(default)]
    pub delete_conversation_channels: Option<bool>,
    #[serde(default)]
    pub new_channel_owner_id: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct DeleteUsers {
    #[serde(default)]
    #[serde(deserialize_with = "crate::domain::ids::unique_ids")]
    pub user_ids: Vec<String>,
    /// soft | pruning | hard
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub messages: Option<String>,
    #[serde(default)]
    pub conversations: Option<String>,
    #[serde(default)]
    pub new_channel_owner_id: Option<String>,
}

const USER_DELETE_MODES: &[&str] = &["soft", "pruning", "hard"];
const MESSAGE_DELETE_MODES: &[&str] = &["soft", "pruning", "hard"];
const CONVERSATION_DELETE_MODES: &[&str] = &["soft", "hard"];

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

fn check_batch_size(n: usize) -> Result<(), ApiError> {
    if n == 0 {
        return Err(ApiError::field("users", "at least one user is required"));
    }
    if n > MAX_USERS_PER_BATCH {
        return Err(ApiError::field(
            "users",
            format!("at most {MAX_USERS_PER_BATCH} users per request"),
        ));
    }
    Ok(())
}

/// Where a user's name must be unique under the app's `enforce_unique_usernames` mode.
fn username_claims(settings: &AppSettings, user: &User) -> BTreeSet<(String, String)> {
    let Some(norm) = user
        .name()
        .map(normalize_username)
        .filter(|n| !n.is_empty())
    else {
        return BTreeSet::new();
    };
    match settings.enforce_unique_usernames.as_str() {
        "app" => [username_key("app", &norm)].into_iter().collect(),
        "team" => user
            .teams
            .iter()
            .map(|t| username_key(&format!("team:{t}"), &norm))
            .collect(),
        _ => BTreeSet::new(),
    }
}

impl Chat {
    pub async fn get_user(&self, id: &str) -> Result<Option<(User, u64)>, ApiError> {
        Ok(self
            .load::<User>(TableName::App, user_key(id))
            .await?
            .map(|(u, item)| (u, item.version)))
    }

    async fn require_user(&self, id: &str) -> Result<(User, u64), ApiError> {
        match self.get_user(id).await? {
            Some((u, v)) if !u.is_deleted() => Ok((u, v)),
            _ => Err(ApiError::not_found(format!("user {id:?} does not exist"))),
        }
    }

    /// May a client-side caller change `target`, and the server-only fields it changes?
    fn check_user_write(&self, session: &Session, next: &User) -> Result<(), ApiError> {
        let (caller, settings) = (&session.caller, &session.settings);
        if caller.is_server() {
            return Ok(());
        }
        if matches!(caller, Caller::Anonymous) {
            return Err(ApiError::not_allowed("anonymous users cannot change users"));
        }
        if settings.disable_permissions_checks {
            return Ok(());
        }
        let subject = caller.subject(None);
        let resource = Resource {
            owner_id: Some(&next.id),
            team: None,
        };
        if permissions::is_allowed(&settings.grants, &subject, "UpdateUser", &resource) {
            Ok(())
        } else {
            Err(ApiError::not_allowed(format!(
                "user {:?} is not allowed to update user {:?}",
                subject.user_id, next.id
            )))
        }
    }

    /// Write a user with its username claims and events, all in one transaction.
    pub(crate) async fn save_user(
        &self,
        settings: &AppSettings,
        old: Option<(&User, u64)>,
        user: &User,
        events: Vec<Event>,
    ) -> Result<(), ApiError> {
        let writes = self
            .plan_user_write(settings, old, user, events, &mut BTreeSet::new())
            .await?;
        self.commit_user_write(user, writes).await
    }

    /// The writes that store `user` (replacing `old`), claim its username and record its events.
    /// Reads the username claims now, so a taken name fails before anything is written;
    /// `batch_claims` catches two users of one batch claiming the same name.
    async fn plan_user_write(
        &self,
        settings: &AppSettings,
        old: Option<(&User, u64)>,
        user: &User,
        events: Vec<Event>,
        batch_claims: &mut BTreeSet<(String, String)>,
    ) -> Result<Vec<Write>, ApiError> {
        let duplicate = || {
            ApiError::new(
                ErrorCode::DuplicateUsername,
                format!(
                    "username '{}' already exists",
                    user.name().unwrap_or_default()
                ),
            )
        };
        let version = old.map(|(_, v)| v + 1).unwrap_or(1);
        let condition = old
            .map(|(_, v)| Condition::Version(v))
            .unwrap_or(Condition::NotExists);
        let mut writes = vec![Write::Put {
            table: TableName::App,
            item: user_item(&user.id, &user.role, to_doc(user)?, version),
            condition,
        }];

        let new_claims = username_claims(settings, user);
        let old_claims = old
            .map(|(u, _)| username_claims(settings, u))
            .unwrap_or_default();
        for key in new_claims.difference(&old_claims) {
            if !batch_claims.insert(key.clone()) {
                return Err(duplicate());
            }
            let (condition, version) = match self.store.get(TableName::App, &key.0, &key.1).await? {
                None => (Condition::NotExists, 1),
                Some(item)
                    if item.data.get("user_id").and_then(Value::as_str) == Some(&user.id) =>
                {
                    (Condition::Version(item.version), item.version + 1)
                }
                Some(_) => return Err(duplicate()),
            };
            let mut item = Item::new(key.0.clone(), key.1.clone(), json!({"user_id": user.id}));
            item.version = version;
            writes.push(Write::Put {
                table: TableName::App,
                item,
                condition,
            });
        }
        for key in old_claims.difference(&new_claims) {
            writes.push(Write::Delete {
                table: TableName::App,
                pk: key.0.clone(),
                sk: key.1.clone(),
                condition: Condition::None,
            });
        }
        writes.extend(events.iter().map(outbox_write));
        Ok(writes)
    }

    async fn commit_user_write(&self, user: &User, writes: Vec<Write>) -> Result<(), ApiError> {
        match self.store.transact(writes).await {
            Ok(()) => Ok(()),
            Err(StoreError::TransactionCanceled { index: Some(0) }) => Err(ApiError::input(
                format!("user {:?} was changed concurrently; try again", user.id),
            )),
            // A claim was taken between planning and commit.
            Err(StoreError::TransactionCanceled { .. }) => Err(ApiError::new(
                ErrorCode::DuplicateUsername,
                format!(
                    "username '{}' already exists",
                    user.name().unwrap_or_default()
                ),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Current users by id (absent ids are left out), read in batches of 100.
    pub(crate) async fn users_by_id(
        &self,
        ids: &[&str],
    ) -> Result<std::collections::HashMap<String, (User, u64)>, ApiError> {
        let keys: Vec<(String, String)> = ids.iter().map(|id| user_key(id)).collect();
        let mut found = std::collections::HashMap::new();
        for chunk in keys.chunks(100) {
            for item in self.store.batch_get(TableName::App, chunk).await? {
                let user: User = decode(item.data, "user")?;
                found.insert(user.id.clone(), (user, item.version));
            }
        }
        Ok(found)
    }

    fn user_event(&self, kind: &str, user: &User) -> Event {
        Event::new(kind, format!("user:{}", user.id), self.now()).with("user", user.to_json())
    }

    /// `POST /users`: create or fully replace up to 100 users. Every user is validated and its
    /// username checked before anything is written, so one bad user fails the whole batch.
    pub async fn upsert_users(
        &self,
        session: &Session,
        users: Vec<Map<String, Value>>,
    ) -> Result<Vec<User>, ApiError> {
        check_batch_size(users.len())?;
        let now = self.now_str();
        let mut seen = HashSet::new();
        let mut requested = Vec::with_capacity(users.len());
        let mut controlled = Vec::with_capacity(users.len());
        for obj in users {
            controlled.push(server_controlled_fields(&obj));
            let mut next = User::from_request(obj, &now)?;
            if !seen.insert(next.id.clone()) {
                return Err(ApiError::field(
                    "users",
                    format!("user {:?} appears twice in the batch", next.id),
                ));
            }
            if let Some(r) = next.revoke_tokens_issued_before.take() {
                next.revoke_tokens_issued_before = normalize_revocation(&Value::String(r))?;
            }
            requested.push(next);
        }
        let ids: Vec<&str> = requested.iter().map(|u| u.id.as_str()).collect();
        let mut existing = self.users_by_id(&ids).await?;
        let mut planned = Vec::with_capacity(requested.len());
        let mut batch_claims = BTreeSet::new();
        for (mut next, fields) in requested.into_iter().zip(controlled) {
            let old = existing.remove(&next.id);
            refuse_client_change(session, old.as_ref().map(|(u, _)| u), &fields)?;
            if let (false, Some((old, _))) = (session.caller.is_server(), &old) {
                // What a client did not send keeps its stored value (it may not change it).
                next.role = old.role.clone();
                next.teams = old.teams.clone();
                next.teams_role = old.teams_role.clone();
            }
            let next = match &old {
                Some((o, _)) => o.replaced_by(next),
                None => next,
            };
            self.check_user_write(session, &next)?;
            let events = match &old {
                Some(_) => vec![self.user_event("user.updated", &next)],
                None => Vec::new(),
            };
            let writes = self
                .plan_user_write(
                    &session.settings,
                    old.as_ref().map(|(u, v)| (u, *v)),
                    &next,
                    events,
                    &mut batch_claims,
                )
                .await?;
            planned.push((next, writes));
        }
        let mut out = Vec::with_capacity(planned.len());
        for (next, writes) in planned {
            self.commit_user_write(&next, writes).await?;
            out.push(next);
        }
        Ok(out)
    }

    /// `PATCH /users`: `set` / `unset` on up to 100 existing users, all checked before any is written.
    pub async fn update_users_partial(
        &self,
        session: &Session,
        patches: Vec<UserPatch>,
    ) -> Result<Vec<User>, ApiError> {
        check_batch_size(patches.len())?;
        let now = self.now_str();
        for patch in &patches {
            validate_user_id(&patch.id)?;
        }
        let ids: Vec<&str> = patches.iter().map(|p| p.id.as_str()).collect();
        let mut existing = self.users_by_id(&ids).await?;
        let mut planned = Vec::with_capacity(patches.len());
        let mut batch_claims = BTreeSet::new();
        for patch in patches {
            let (old, version) = match existing.remove(&patch.id) {
                Some((u, v)) if !u.is_deleted() => (u, v),
                _ => {
                    return Err(ApiError::not_found(format!(
                        "user {:?} does not exist",
                        patch.id
                    )))
                }
            };
            let mut set = patch.set.unwrap_or_default();
            let unset = patch.unset.unwrap_or_default();
            let requested = set
                .iter()
                .map(|(k, v)| (top_field(k), Some(v)))
                .chain(unset.iter().map(|k| (top_field(k), None)));
            if !session.caller.is_server() {
                if let Some(field) = refused_client_change(Some(&old), requested) {
                    return Err(server_controlled_error(field));
                }
            }
            let revocation = set.remove("revoke_tokens_issued_before");
            let mut next = old.apply_partial(&set, &unset, &now)?;
            if let Some(r) = revocation {
                next.revoke_tokens_issued_before = normalize_revocation(&r)?;
            }
            if unset.iter().any(|f| f == "revoke_tokens_issued_before") {
                next.revoke_tokens_issued_before = None;
            }
            self.check_user_write(session, &next)?;
            let events = vec![self.user_event("user.updated", &next)];
            let writes = self
                .plan_user_write(
                    &session.settings,
                    Some((&old, version)),
                    &next,
                    events,
                    &mut batch_claims,
                )
                .await?;
            planned.push((next, writes));
        }
        let mut out = Vec::with_capacity(planned.len());
        for (next, writes) in planned {
            self.commit_user_write(&next, writes).await?;
            out.push(next);
        }
        Ok(out)
    }

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

    /// `POST /users/{id}/deactivate` (server-side).
    pub async fn deactivate_user(
        &self,
        session: &Session,
        id: &str,
        mark_messages_deleted: bool,
        created_by_id: Option<&str>,
    ) -> Result<User, ApiError> {
        let caller = &session.caller;
        caller.require_server("deactivating users")?;
        self.set_deactivated(
            &session.settings,
            id,
            true,
            mark_messages_deleted,
            created_by_id,
        )
        .await
    }

    /// `POST /users/{id}/reactivate` (server-side); `name` optionally renames the user.
    pub async fn reactivate_user(
        &self,
        session: &Session,
        id: &str,
        restore_messages: bool,
        name: Option<&str>,
        created_by_id: Option<&str>,
    ) -> Result<User, ApiError> {
        let caller = &session.caller;
        caller.require_server("reactivating users")?;
        if let Some(name) = name {
            let (old, version) = self.require_user(id).await?;
            let mut next = old.clone();
            next.custom
                .insert("name".into(), Value::String(name.into()));
            let settings = &session.settings;
            self.save_user(settings, Some((&old, version)), &next, Vec::new())
                .await?;
        }
        self.set_deactivated(
            &session.settings,
            id,
            false,
            restore_messages,
            created_by_id,
        )
        .await
    }

    /// Deactivate (`on`) or reactivate a user. The message flag (`mark_messages_deleted` /
    /// `restore_messages`) is recorded on the event for the messages feature to act on.
    pub(crate) async fn set_deactivated(
        &self,
        settings: &AppSettings,
        id: &str,
        on: bool,
        messages_flag: bool,
        created_by_id: Option<&str>,
    ) -> Result<User, ApiError> {
        let (old, version) = self.require_user(id).await?;
        if on == old.is_deactivated() {
            return Ok(old);
        }
        let mut next = old.clone();
        next.deactivated_at = if on { Some(self.now_str()) } else { None };
        next.updated_at = self.now_str();
        let mut event = self.user_event(
            if on {
                "user.deactivated"
            } else {
                "user.reactivated"
            },
            &next,
        );
        event = event.with(
            if on {
                "mark_messages_deleted"
            } else {
                "restore_messages"
            },
            Value::Bool(messages_flag),
        );
        if let Some(by) = created_by_id {
            event = event.with("created_by", json!({"id": by}));
        }
        self.save_user(settings, Some((&old, version)), &next, vec![event])
            .await?;
        Ok(next)
    }

    /// `POST /users/deactivate` and `/users/reactivate`: up to 100 users, as a task.
    pub async fn deactivate_users(
        &self,
        session: &Session,
        user_ids: Vec<String>,
        on: bool,
        messages_flag: bool,
        created_by_id: Option<String>,
    ) -> Result<String, ApiError> {
        let caller = &session.caller;
        caller.require_server(if on {
            "deactivating users"
        } else {
            "reactivating users"
        })?;
        check_user_ids(&user_ids)?;
        for id in &user_ids {
            self.require_user(id).await?;
        }
        let job = if on {
            TaskJob::DeactivateUsers {
                user_ids,
                mark_messages_deleted: messages_flag,
                created_by_id,
            }
        } else {
            TaskJob::ReactivateUsers {
                user_ids,
                restore_messages: messages_flag,
                created_by_id,
            }
        };
        self.start_task(job).await
    }

    /// `DELETE /users/{id}`: soft delete (the id stays taken, restorable) or hard delete.
    pub async fn delete_user(
        &self,
        session: &Session,
        id: &str,
        opts: DeleteUserOptions,
    ) -> Result<User, ApiError> {
        let caller = &session.caller;
        caller.require_server("deleting users")?;
        let hard = opts.hard_delete.unwrap_or(false);
        let settings = &session.settings;
        let (old, version) = self.require_user(id).await?;
        let mut deleted = old.clone();
        deleted.deleted_at = Some(self.now_str());
        deleted.updated_at = self.now_str();
        let event = self
            .user_event("user.deleted", &deleted)
            .with("hard_delete", Value::Bool(hard))
            .with(
                "mark_messages_deleted",
                Value::Bool(opts.mark_messages_deleted.unwrap_or(false)),
            )
            .with(
                "delete_conversation_channels",
                Value::Bool(opts.delete_conversation_channels.unwrap_or(false)),
            );
        if hard {
            self.remove_user(settings, &old, version, vec![event])
                .await?;
        } else {
            self.save_user(settings, Some((&old, version)), &deleted, vec![event])
                .await?;
        }
        Ok(deleted)
    }

    async fn remove_user(
        &self,
        settings: &AppSettings,
        old: &User,
        version: u64,
        events: Vec<Event>,
    ) -> Result<(), ApiError> {
        let (pk, sk) = user_key(&old.id);
        let mut writes = vec![Write::Delete {
            table: TableName::App,
            pk,
            sk,
            condition: Condition::Version(version),
        }];
        for key in username_claims(settings, old) {
            writes.push(Write::Delete {
                table: TableName::App,
                pk: key.0,
                sk: key.1,
                condition: Condition::None,
            });
        }
        writes.extend(events.iter().map(outbox_write));
        self.store.transact(writes).await.map_err(|e| match e {
            StoreError::TransactionCanceled { .. } => ApiError::input(format!(
                "user {:?} was changed concurrently; try again",
                old.id
            )),
            e => e.into(),
        })
    }

    /// `POST /users/delete`: mark up to 100 users deleted now, finish (hard deletes) in a task.
    pub async fn delete_users(
        &self,
        session: &Session,
        req: DeleteUsers,
    ) -> Result<String, ApiError> {
        let caller = &session.caller;
        caller.require_server("deleting users")?;
        check_user_ids(&req.user_ids)?;
        let mode = req.user.clone().unwrap_or_else(|| "soft".into());
        check_mode("user", &mode, USER_DELETE_MODES)?;
        if let Some(m) = &req.messages {
            check_mode("messages", m, MESSAGE_DELETE_MODES)?;
        }
        if let Some(c) = &req.conversations {
            check_mode("conversations", c, CONVERSATION_DELETE_MODES)?;
        }
        if mode == "hard"
            && (req.messages.as_deref() != Some("hard")
                || req.conversations.as_deref().is_some_and(|c| c != "hard"))
        {
            return Err(ApiError::field(
                "user",
                "a hard user delete requires messages: hard (and conversations: hard when given)",
            ));
        }
        let settings = &session.settings;
        // The whole batch is checked before anything changes: one unknown id deletes nobody.
        let ids: Vec<&str> = req.user_ids.iter().map(String::as_str).collect();
        let mut found = self.users_by_id(&ids).await?;
        found.retain(|_, (u, _)| !u.is_deleted());
        let missing: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| !found.contains_key(*id))
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::not_found(format!(
                "users {missing:?} do not exist; no user was deleted"
            )));
        }
        for id in &req.user_ids {
            let Some((old, version)) = found.remove(id) else {
                continue;
            };
            let mut deleted = old.clone();
            deleted.deleted_at = Some(self.now_str());
            deleted.updated_at = self.now_str();
            self.save_user(settings, Some((&old, version)), &deleted, Vec::new())
                .await?;
        }
        self.start_task(TaskJob::DeleteUsers {
            user_ids: req.user_ids,
            user: mode,
            messages: req.messages,
            conversations: req.conversations,
            new_channel_owner_id: req.new_channel_owner_id,
        })
        .await
    }

    /// The asynchronous half of a batch delete: pruning blanks the user's data, hard removes it.
    pub(crate) async fn finish_user_deletion(
        &self,
        settings: &AppSettings,
        id: &str,
        mode: &str,
    ) -> Result<(), ApiError> {
        let Some((user, version)) = self.get_user(id).await? else {
            return Ok(());
        };
        let event = self
            .user_event("user.deleted", &user)
            .with("hard_delete", Value::Bool(mode == "hard"));
        match mode {
            "hard" => {
                self.remove_user(settings, &user, version, vec![event])
                    .await
            }
            "pruning" => {
                let mut pruned = user.clone();
                pruned.custom.clear();
                pruned.privacy_settings = None;
                pruned.teams.clear();
                pruned.teams_role.clear();
                self.save_user(settings, Some((&user, version)), &pruned, vec![event])
                    .await
            }
            _ => Ok(self.store.write(outbox_write(&event)).await?),
        }
    }

    /// `POST /users/restore`: undo soft deletes.
    pub async fn restore_users(
        &self,
        session: &Session,
        user_ids: Vec<String>,
    ) -> Result<(), ApiError> {
        let caller = &session.caller;
        caller.require_server("restoring users")?;
        check_user_ids(&user_ids)?;
        let settings = &session.settings;
        for id in &user_ids {
            let (old, version) = self
                .get_user(id)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("user {id:?} does not exist")))?;
            if !old.is_deleted() {
                continue;
            }
            let mut restored = old.clone();
            restored.deleted_at = None;
            restored.updated_at = self.now_str();
            let event = self.user_event("user.updated", &restored);
            self.save_user(settings, Some((&old, version)), &restored, vec![event])
                .await?;
        }
        Ok(())
    }

    /// `POST /guest`: create (or reuse) a guest user; the caller gets a token for it.
    pub async fn create_guest(
        &self,
        session: &Session,
        mut obj: Map<String, Value>,
    ) -> Result<User, ApiError> {
        let id = match obj.get("id").and_then(Value::as_str) {
            Some(id) => id.to_string(),
            None => crate::domain::ids::random_id(),
        };
        obj.insert("id".into(), Value::String(id.clone()));
        refuse_client_change(session, None, &server_controlled_fields(&obj))?;
        obj.insert("role".into(), Value::String(GUEST_ROLE.into()));
        let settings = &session.settings;
        let now = self.now_str();
        let next = User::from_request(obj, &now)?;
        match self.get_user(&id).await? {
            Some((old, _)) if old.role != GUEST_ROLE => Err(ApiError::not_allowed(format!(
                "user {id:?} already exists and is not a guest"
            ))),
            Some((old, version)) => {
                let next = old.replaced_by(next);
                self.save_user(
                    settings,
                    Some((&old, version)),
                    &next,
                    vec![self.user_event("user.updated", &next)],
                )
                .await?;
                Ok(next)
            }
            None => {
                self.save_user(settings, None, &next, Vec::new()).await?;
                Ok(next)
            }
        }
    }
}

/// The server-controlled fields a user object names, with their values.
pub(crate) fn server_controlled_fields(obj: &Map<String, Value>) -> Map<String, Value> {
    obj.iter()
        .filter(|(k, _)| SERVER_CONTROLLED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Refuse a client-side request whose user object (`fields`) would change a server-controlled
/// field of `current`.
pub(crate) fn refuse_client_change(
    session: &Session,
    current: Option<&User>,
    fields: &Map<String, Value>,
) -> Result<(), ApiError> {
    if session.caller.is_server() {
        return Ok(());
    }
    let requested = fields.iter().map(|(k, v)| (k.as_str(), Some(v)));
    match refused_client_change(current, requested) {
        Some(field) => Err(server_controlled_error(field)),
        None => Ok(()),
    }
}

fn server_controlled_error(field: &str) -> ApiError {
    ApiError::not_allowed(format!(
        "{field} can only be changed with server-side authentication"
    ))
}

fn check_user_ids(ids: &[String]) -> Result<(), ApiError> {
    if ids.is_empty() {
        return Err(ApiError::field(
            "user_ids",
            "user_ids must name at least one user",
        ));
    }
    if ids.len() > MAX_USERS_PER_BATCH {
        return Err(ApiError::field(
            "user_ids",
            format!("at most {MAX_USERS_PER_BATCH} user ids per request"),
        ));
    }
    ids.iter().try_for_each(|id| validate_user_id(id))
}

fn check_mode(field: &str, mode: &str, allowed: &[&str]) -> Result<(), ApiError> {
    if allowed.contains(&mode) {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            format!("{field} must be one of {}", allowed.join(", ")),
        ))
    }
}

/// A revocation date from a request: a timestamp (normalised), or null / "" to clear it.
fn normalize_revocation(v: &Value) -> Result<Option<String>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => parse_time(s).map(|t| Some(format_time(t))).ok_or_else(|| {
            ApiError::field(
                "revoke_tokens_issued_before",
                "revoke_tokens_issued_before must be an RFC 3339 timestamp",
            )
        }),
        _ => Err(ApiError::field(
            "revoke_tokens_issued_before",
            "revoke_tokens_issued_before must be a timestamp or null",
        )),
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

impl Chat {
    /// The user a WebSocket connect names, brought up to date from its `user_details`: created
    /// if new, otherwise the given fields set (the role and other server-owned fields are never
    /// taken from a client).
    pub async fn connect_user_details(
        &self,
        user_id: &str,
        details: Map<String, Value>,
    ) -> Result<User, ApiError> {
        let session = Session::server(self.app_settings().await?);
        match self.get_user(user_id).await? {
            None => Ok(self.upsert_users(&session, vec![details]).await?.remove(0)),
            Some((u, _)) if u.is_deleted() || u.is_deactivated() => Err(ApiError::auth(format!(
                "user {user_id:?} is deactivated or deleted"
            ))),
            Some(_) => {
                let mut set = details;
                set.remove("id");
                if set.is_empty() {
                    return Ok(self.require_user(user_id).await?.0);
                }
                let patch = UserPatch {
                    id: user_id.to_string(),
                    set: Some(set),
                    unset: None,
                };
                Ok(self
                    .update_users_partial(&session, vec![patch])
                    .await?
                    .remove(0))
            }
        }
    }
}

impl Chat {
    /// Presence: the user comes online (first connection) or goes offline (last one closed);
    /// `last_active` follows, and `user.presence.changed` is recorded. Invisible users stay
    /// offline to others.
    pub async fn set_online(&self, user_id: &str, online: bool) -> Result<(), ApiError> {
        for _ in 0..3 {
            let Some((old, version)) = self.get_user(user_id).await? else {
                return Ok(());
            };
            let mut next = old.clone();
            next.online = online && !old.invisible;
            next.last_active = Some(self.now_str());
            let event = self.user_event("user.presence.changed", &next);
            let writes = vec![
                Write::Put {
                    table: TableName::App,
                    item: user_item(&next.id, &next.role, to_doc(&next)?, version + 1),
                    condition: Condition::Version(version),
                },
                outbox_write(&event),
            ];
            match self.store.transact(writes).await {
                Ok(()) => return Ok(()),
                Err(StoreError::TransactionCanceled { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
