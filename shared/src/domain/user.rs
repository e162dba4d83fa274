//! Users: the stored and wire shape (fixed fields plus flattened custom data), id and size
//! validation, username normalisation for uniqueness, and the fields only a server may set.

use crate::domain::limits::{MAX_CUSTOM_DATA_BYTES, MAX_USER_ID_LEN};
use crate::domain::patch::{set_path, top_field, unset_path};
use crate::domain::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub const DEFAULT_ROLE: &str = "user";
pub const GUEST_ROLE: &str = "guest";
pub const ANONYMOUS_ROLE: &str = "anonymous";
/// The acting user of anonymous requests.
pub const ANONYMOUS_USER_ID: &str = "!anon";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    #[serde(default = "default_role")]
    pub role: String,
    #[serde(default)]
    pub teams: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub teams_role: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_active: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    #[serde(default)]
    pub banned: bool,
    #[serde(default)]
    pub shadow_banned: bool,
    /// When a timed app-wide ban ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ban_expires: Option<String>,
    #[serde(default)]
    pub online: bool,
    #[serde(default)]
    pub invisible: bool,
    #[serde(default)]
    pub language: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy_settings: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_tokens_issued_before: Option<String>,
    #[serde(default)]
    pub blocked_user_ids: Vec<String>,
    /// Seconds the user takes on average to answer in a channel (`user_response_time_enabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_response_time: Option<u64>,
    /// How many answers `avg_response_time` averages (stored, not on the wire).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub response_time_count: u64,
    #[serde(flatten)]
    pub custom: Map<String, Value>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn default_role() -> String {
    DEFAULT_ROLE.to_string()
}

/// Fields the server owns: ignored when a client sends them in a user object.
const SERVER_OWNED: &[&str] = &[
    "created_at",
    "updated_at",
    "last_active",
    "online",
    "deactivated_at",
    "deleted_at",
    "banned",
    "shadow_banned",
    "ban_expires",
    "blocked_user_ids",
    "avg_response_time",
    "response_time_count",
];
/// Fields only server-side requests may change: a client-side request (upsert, partial update,
/// connect `user_details`, guest creation) that would change one is refused, never ignored, so
/// a user can neither raise their own role nor undo a ban or a token revocation.
pub const SERVER_CONTROLLED: &[&str] = &[
    "role",
    "teams",
    "teams_role",
    "revoke_tokens_issued_before",
    "banned",
    "shadow_banned",
    "ban_expires",
    "deactivated_at",
    "deleted_at",
    "blocked_user_ids",
];

/// Whether a user may set this field about themselves (e.g. in `user_details` on connect).
pub fn is_client_settable(field: &str) -> bool {
    !SERVER_OWNED.contains(&field) && !SERVER_CONTROLLED.contains(&field) && field != "anon"
}

/// The first server-controlled field that a client-side request would change. `requested` are
/// the top-level fields the request names, with their new value (`None`: unset); `current` is
/// the user as stored (`None`: the request creates the user, whose fields start empty, role
/// `user`). Sending a field's current value is not a change (clients echo the user back).
pub fn refused_client_change<'a>(
    current: Option<&User>,
    requested: impl IntoIterator<Item = (&'a str, Option<&'a Value>)>,
) -> Option<&'static str> {
    let doc = current
        .and_then(|u| serde_json::to_value(u).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_else(|| {
            let mut m = Map::new();
            m.insert("role".into(), Value::String(DEFAULT_ROLE.into()));
            m
        });
    let is_empty = |v: Option<&Value>| match v {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => !b,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(Value::Number(_)) => false,
    };
    requested.into_iter().find_map(|(field, value)| {
        let field = SERVER_CONTROLLED.iter().find(|f| **f == field)?;
        let was = doc.get(*field);
        let same = (is_empty(was) && is_empty(value)) || was == value;
        (!same).then_some(*field)
    })
}
/// Top-level keys a partial update may not touch at all.
const NOT_UPDATABLE: &[&str] = &[
    "id",
    "avg_response_time",
    "response_time_count",
    "created_at",
    "updated_at",
    "last_active",
    "online",
    "deactivated_at",
    "deleted_at",
    "banned",
    "shadow_banned",
    "ban_expires",
];

pub fn validate_user_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() {
        return Err(ApiError::field("id", "user id is required"));
    }
    if id.len() > MAX_USER_ID_LEN {
        return Err(ApiError::field(
            "id",
            format!("user id is longer than {MAX_USER_ID_LEN} characters"),
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '@' | '_' | '-')))
    {
        return Err(ApiError::field(
            "id",
            format!(
                "user id {id:?} contains {c:?}: ids may only contain letters, digits and @ _ -"
            ),
        ));
    }
    Ok(())
}

/// The name as compared for uniqueness: letters and digits only, lowercased
/// ("John Doe", "john.doe" and "johndoe" collide).
pub fn normalize_username(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

fn custom_size(custom: &Map<String, Value>) -> usize {
    serde_json::to_vec(custom)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

impl User {
    /// A new user from a client- or server-supplied object (`id` plus fields). Server-owned
    /// fields are dropped; timestamps are the caller's `now`.
    pub fn from_request(mut obj: Map<String, Value>, now: &str) -> Result<User, ApiError> {
        for k in SERVER_OWNED {
            obj.remove(*k);
        }
        let id = match obj.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(ApiError::field("id", "user id must be a string")),
            None => return Err(ApiError::field("id", "user id is required")),
        };
        validate_user_id(&id)?;
        // Stream's `custom` object holds custom data, as responses show it; fields given at the
        // top level win.
        if let Some(Value::Object(custom)) = obj.remove("custom") {
            for (k, v) in custom {
                obj.entry(k).or_insert(v);
            }
        }
        obj.insert("created_at".into(), Value::String(now.into()));
        obj.insert("updated_at".into(), Value::String(now.into()));
        if matches!(obj.get("role"), Some(Value::Null)) {
            obj.remove("role");
        }
        let user: User = serde_json::from_value(Value::Object(obj)).map_err(|e| {
            ApiError::input(format!(
                "invalid user {id:?}: {}",
                crate::domain::error::describe_json_error(&e)
            ))
        })?;
        user.validate()?;
        Ok(user)
    }

    pub fn validate(&self) -> Result<(), ApiError> {
        if self.role.is_empty() {
            return Err(ApiError::field("role", "role must not be empty"));
        }
        if custom_size(&self.custom) > MAX_CUSTOM_DATA_BYTES {
            return Err(ApiError::input(format!(
                "user {:?} custom data is larger than {} bytes",
                self.id, MAX_CUSTOM_DATA_BYTES
            )));
        }
        if let Some(p) = &self.privacy_settings {
            if !p.is_object() {
                return Err(ApiError::field(
                    "privacy_settings",
                    "privacy_settings must be an object",
                ));
            }
        }
        Ok(())
    }

    /// The user's display name (`name` custom field), if any.
    pub fn name(&self) -> Option<&str> {
        self.custom.get("name").and_then(Value::as_str)
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    pub fn is_deactivated(&self) -> bool {
        self.deactivated_at.is_some()
    }

    /// Replace this user's data with an upserted version, keeping what the server owns.
    pub fn replaced_by(&self, mut next: User) -> User {
        next.created_at = self.created_at.clone();
        next.last_active = self.last_active.clone();
        next.deactivated_at = self.deactivated_at.clone();
        next.deleted_at = self.deleted_at.clone();
        next.banned = self.banned;
        next.shadow_banned = self.shadow_banned;
        next.ban_expires = self.ban_expires.clone();
        next.blocked_user_ids = self.blocked_user_ids.clone();
        next.avg_response_time = self.avg_response_time;
        next.response_time_count = self.response_time_count;
        if next.revoke_tokens_issued_before.is_none() {
            next.revoke_tokens_issued_before = self.revoke_tokens_issued_before.clone();
        }
        next
    }

    /// Apply `set` / `unset` (dotted paths allowed) the way Stream's partial update does.
    pub fn apply_partial(
        &self,
        set: &Map<String, Value>,
        unset: &[String],
        now: &str,
    ) -> Result<User, ApiError> {
        for path in set.keys().chain(unset.iter()) {
            let field = top_field(path);
            if NOT_UPDATABLE.contains(&field) {
                return Err(ApiError::field(
                    field,
                    format!("{field} cannot be changed with a partial update"),
                ));
            }
        }
        let mut doc = match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => return Err(ApiError::internal("user could not be encoded")),
        };
        for (path, value) in set {
            set_path(&mut doc, path, value.clone());
        }
        for path in unset {
            if path == "role" {
                doc.insert("role".into(), Value::String(DEFAULT_ROLE.into()));
            } else {
                unset_path(&mut doc, path);
            }
        }
        doc.insert("updated_at".into(), Value::String(now.into()));
        let user: User = serde_json::from_value(Value::Object(doc)).map_err(|e| {
            ApiError::input(format!(
                "invalid partial update of user {:?}: {}",
                self.id,
                crate::domain::error::describe_json_error(&e)
            ))
        })?;
        user.validate()?;
        Ok(user)
    }

    /// Counts an answer that took `seconds` into the running `avg_response_time`.
    pub fn record_response_time(&mut self, seconds: u64) {
        let n = self.response_time_count;
        let avg = self.avg_response_time.unwrap_or(0);
        self.avg_response_time = Some((avg * n + seconds) / (n + 1));
        self.response_time_count = n + 1;
    }

    /// `privacy_settings.read_receipts.enabled` (on unless turned off).
    pub fn read_receipts_enabled(&self) -> bool {
        self.privacy_flag("read_receipts")
    }

    /// `privacy_settings.delivery_receipts.enabled` (on unless turned off).
    pub fn delivery_receipts_enabled(&self) -> bool {
        self.privacy_flag("delivery_receipts")
    }

    fn privacy_flag(&self, name: &str) -> bool {
        self.privacy_settings
            .as_ref()
            .and_then(|p| p.get(name))
            .and_then(|r| r.get("enabled"))
            .and_then(Value::as_bool)
            .unwrap_or(true)
    }

    /// The user as responses carry it: custom data at the top level (what the SDKs read) and
    /// also as Stream's `custom` object.
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(doc) = &mut v {
            doc.remove("response_time_count");
            if !self.custom.contains_key("custom") {
                doc.insert("custom".into(), Value::Object(self.custom.clone()));
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn ids_are_validated() {
        assert!(validate_user_id("john-doe_1@x").is_ok());
        assert!(validate_user_id("").is_err());
        assert!(validate_user_id("john doe").is_err());
        assert!(validate_user_id("a/b").is_err());
        assert!(validate_user_id(&"a".repeat(256)).is_err());
    }

    #[test]
    fn custom_fields_round_trip_and_are_capped() {
        let u = User::from_request(
            obj(json!({"id": "u1", "book": "dune", "nested": {"a": [1, 2]}, "created_at": "x"})),
            "t",
        )
        .unwrap();
        assert_eq!(u.role, "user");
        assert_eq!(u.created_at, "t");
        assert_eq!(u.to_json()["nested"], json!({"a": [1, 2]}));
        let big = "x".repeat(MAX_CUSTOM_DATA_BYTES);
        assert!(User::from_request(obj(json!({"id": "u1", "bio": big})), "t").is_err());
    }

    #[test]
    fn partial_update_sets_and_unsets_paths() {
        let u = User::from_request(
            obj(json!({"id": "u1", "field": {"text": "x", "keep": 1}})),
            "t",
        )
        .unwrap();
        let set = obj(json!({"field2.subfield": "test", "role": "admin"}));
        let next = u
            .apply_partial(&set, &["field.text".to_string()], "t2")
            .unwrap();
        assert_eq!(next.custom["field"], json!({"keep": 1}));
        assert_eq!(next.custom["field2"], json!({"subfield": "test"}));
        assert_eq!(
            refused_client_change(Some(&u), [("role", set.get("role"))]),
            Some("role")
        );
        assert_eq!(
            refused_client_change(Some(&u), [("role", Some(&json!("user")))]),
            None
        );
        assert_eq!(
            refused_client_change(Some(&next), [("revoke_tokens_issued_before", None)]),
            None
        );
        assert_eq!(
            refused_client_change(None, [("banned", Some(&json!(true)))]),
            Some("banned")
        );
        assert!(u
            .apply_partial(&obj(json!({"id": "other"})), &[], "t")
            .is_err());
    }

    #[test]
    fn usernames_normalise() {
        assert_eq!(normalize_username("John Doe"), "johndoe");
        assert_eq!(normalize_username("john.doe"), "johndoe");
        assert_eq!(normalize_username(" JOHN_doe!"), "johndoe");
    }
}
