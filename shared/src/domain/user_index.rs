//! The custom-field index of users: under which keys a user's custom data is listed, so that
//! query users with `$eq` / `$in` on a custom field reads the users listed under those values
//! instead of every user. Keys follow the filter's equality (timestamps by instant, numbers by
//! value; an array field lists each element, as `{field: x}` matches an array containing x).
//! The index is a superset: queries still apply the whole filter to the users they read. A
//! user whose custom data is too large to list whole is listed as unindexed, and read by every
//! custom-field query.

use crate::domain::filter::equality_key;
use crate::domain::user::User;
use serde_json::Value;
use std::collections::BTreeSet;

/// The most entries one user has in the index.
pub const MAX_ENTRIES_PER_USER: usize = 30;
/// Longer field names and string values are not listed.
const MAX_FIELD_LEN: usize = 64;
const MAX_STRING_LEN: usize = 256;
/// Arrays longer than this are not listed.
const MAX_ARRAY_LEN: usize = 10;

/// The fields a user has of its own (not custom data), and `username` (a query's default of
/// `name`): query users filters on these are not answered from the index.
pub const OWN_FIELDS: &[&str] = &[
    "id",
    "role",
    "teams",
    "teams_role",
    "created_at",
    "updated_at",
    "last_active",
    "deactivated_at",
    "deleted_at",
    "banned",
    "shadow_banned",
    "ban_expires",
    "online",
    "invisible",
    "language",
    "privacy_settings",
    "revoke_tokens_issued_before",
    "blocked_user_ids",
    "avg_response_time",
    "response_time_count",
    "username",
];

/// Whether a query users filter field can be answered from the index.
pub fn is_indexed_field(field: &str) -> bool {
    !OWN_FIELDS.contains(&field) && !field.contains('.') && field.len() <= MAX_FIELD_LEN
}

/// A user's entries: `(field, key)` pairs, and whether they list all of its custom data.
pub fn entries(user: &User) -> (BTreeSet<(String, String)>, bool) {
    let mut out = BTreeSet::new();
    let mut complete = true;
    for (field, value) in &user.custom {
        if !is_indexed_field(field) {
            // Queries never ask the index about these fields.
            continue;
        }
        let values: Vec<&Value> = match value {
            Value::Array(items) if items.len() <= MAX_ARRAY_LEN => items.iter().collect(),
            Value::Array(_) => {
                complete = false;
                continue;
            }
            Value::Object(_) | Value::Null => continue,
            scalar => vec![scalar],
        };
        for v in values {
            if v.as_str().is_some_and(|s| s.len() > MAX_STRING_LEN) {
                complete = false;
                continue;
            }
            let Some(key) = equality_key(v) else {
                // Objects inside arrays: no `$eq` on a scalar finds them.
                continue;
            };
            if out.len() == MAX_ENTRIES_PER_USER {
                complete = false;
                continue;
            }
            out.insert((field.clone(), key));
        }
    }
    (out, complete)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::filter::Filter;
    use serde_json::json;

    fn user(custom: Value) -> User {
        let mut doc = json!({"id": "u", "created_at": "t", "updated_at": "t"});
        for (k, v) in custom.as_object().unwrap() {
            doc[k] = v.clone();
        }
        serde_json::from_value(doc).unwrap()
    }

    #[test]
    fn own_fields_are_the_struct_fields() {
        let doc = serde_json::to_value(user(json!({}))).unwrap();
        for key in doc.as_object().unwrap().keys() {
            assert!(OWN_FIELDS.contains(&key.as_str()), "{key} is not listed");
        }
    }

    #[test]
    fn entries_follow_the_filters_equality() {
        let u = user(json!({
            "book": "dune", "age": 30, "vip": true, "tags": ["a", "b"],
            "seen": "2026-01-01T00:00:00Z", "profile": {"city": "x"}, "nothing": null
        }));
        let (keys, complete) = entries(&u);
        assert!(complete);
        let doc = serde_json::to_value(&u).unwrap();
        // Every value an $eq on the field would match has the key the user is listed under.
        for (field, asked) in [
            ("book", json!("dune")),
            ("age", json!(30.0)),
            ("vip", json!(true)),
            ("tags", json!("b")),
            ("seen", json!("2026-01-01T00:00:00.000Z")),
        ] {
            let filter = Filter::parse(&json!({ field: asked }), None).unwrap();
            assert!(filter.matches_json(&doc), "{field}");
            let key = equality_key(&asked).unwrap();
            assert!(keys.contains(&(field.to_string(), key)), "{field} {asked}");
        }
        assert_eq!(keys.len(), 6);
    }

    #[test]
    fn large_custom_data_is_listed_as_unindexed() {
        let long = "x".repeat(300);
        assert!(!entries(&user(json!({ "bio": long }))).1);
        assert!(!entries(&user(json!({ "list": (0..11).collect::<Vec<_>>() }))).1);
        let many: serde_json::Map<String, Value> =
            (0..31).map(|i| (format!("f{i}"), json!(i))).collect();
        let (keys, complete) = entries(&user(Value::Object(many)));
        assert!(!complete);
        assert_eq!(keys.len(), MAX_ENTRIES_PER_USER);
        assert!(!is_indexed_field("role") && !is_indexed_field("a.b") && is_indexed_field("book"));
    }
}
