//! User use cases: the user record (read, planned and committed writes with unique usernames
//! and a `user.*` event in the outbox for every change), upsert, partial update, guests, connect
//! details and presence. Queries are in `query`, deactivation, deletion and restore in
//! `lifecycle`.

mod content;
mod lifecycle;
mod query;

pub use lifecycle::{DeleteUserOptions, DeleteUsers};
pub(crate) use query::user_doc_for_filter;
pub use query::QueryUsers;

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

/// A user's object from users read by [`Chat::users_by_id`], or just `{id}` for one not stored.
pub(crate) fn shown(users: &std::collections::HashMap<String, (User, u64)>, id: &str) -> Value {
    users
        .get(id)
        .map(|(u, _)| u.to_json())
        .unwrap_or_else(|| json!({ "id": id }))
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
        writes.extend(custom_index_writes(old.map(|(u, _)| u), Some(user)));

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
        Event::new(kind, crate::domain::event::user_scope(&user.id), self.now())
            .with("user", user.to_json())
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

/// The custom-field index writes of a user changing from `old` to `new` (`None`: absent). Every
/// current entry is written (so a user written again is listed whole whatever happened before),
/// the entries it no longer has are removed, and it is listed as unindexed while its custom
/// data is too large to list.
pub(crate) fn custom_index_writes(old: Option<&User>, new: Option<&User>) -> Vec<Write> {
    use crate::domain::user_index::{entries, entry_sk};
    use crate::store::layout::{user_field_pk, UNINDEXED_USERS_PK};
    let (new_keys, new_complete) = new.map(entries).unwrap_or_default();
    let (old_keys, old_complete) = old.map(entries).unwrap_or((Default::default(), true));
    let Some(id) = new.or(old).map(|u| u.id.clone()) else {
        return Vec::new();
    };
    let mut writes: Vec<Write> = new_keys
        .iter()
        .map(|(field, key)| Write::Put {
            table: TableName::App,
            item: Item::new(user_field_pk(field), entry_sk(key, &id), json!({})),
            condition: Condition::None,
        })
        .collect();
    writes.extend(
        old_keys
            .difference(&new_keys)
            .map(|(field, key)| Write::Delete {
                table: TableName::App,
                pk: user_field_pk(field),
                sk: entry_sk(key, &id),
                condition: Condition::None,
            }),
    );
    if new.is_some() && !new_complete {
        writes.push(Write::Put {
            table: TableName::App,
            item: Item::new(UNINDEXED_USERS_PK, id.clone(), json!({ "user_id": id })),
            condition: Condition::None,
        });
    } else if !old_complete {
        writes.push(Write::Delete {
            table: TableName::App,
            pk: UNINDEXED_USERS_PK.into(),
            sk: id.clone(),
            condition: Condition::None,
        });
    }
    writes
}
