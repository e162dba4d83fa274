//! The custom-field index of users: under which keys a user's custom data is listed, so that
//! query users with `$eq`, `$in`, `$gt`, `$gte`, `$lt` or `$lte` on a custom field reads the
//! users listed in those spans of the field's order instead of every user.
//!
//! A field's entries are ordered as the filter compares values: booleans, then numbers (by
//! value), then strings, timestamps (by instant) before other strings (lexically). A span is
//! read with inclusive bounds, so it may hold a few users the filter then rejects (numbers too
//! large for an `f64` to tell apart), never miss one. An array field lists each element, as
//! `{field: x}` and `{field: {$gt: x}}` match an array holding such an element. A user whose
//! custom data is too large to list whole is listed as unindexed, and read by every
//! custom-field query.

use crate::domain::clock::parse_time;
use crate::domain::filter::{Filter, Op};
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
/// Ends an entry's order key, before the user id. Strings holding it (or anything lower) are
/// not listed, so no order key is a prefix of another followed by a lower character.
const KEY_END: char = '\u{1}';
/// Above every [`KEY_END`]: the exclusive end of one value's entries.
const AFTER_KEY: char = '\u{2}';

/// The key of a user whose field holds an array, after every listed value: sorted on that
/// field, an array comes after every scalar (`filter::compare`), wherever its elements are
/// listed, so a walk in the field's order reads these users too.
pub const ARRAY_KEY: &str = "u";

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

/// Where a value sits in its field's order; `None` for values not listed (null, objects,
/// arrays, strings too long or holding control characters below [`AFTER_KEY`]).
pub fn order_key(v: &Value) -> Option<String> {
    match v {
        Value::Bool(b) => Some(format!("b{}", u8::from(*b))),
        Value::Number(n) => {
            // Integers beyond 2^53 round: equal keys for close values, which spans include.
            let f = n.as_f64()?;
            let f = if f == 0.0 { 0.0 } else { f };
            let bits = f.to_bits();
            let ordered = if bits >> 63 == 1 {
                !bits
            } else {
                bits | 1 << 63
            };
            Some(format!("n{ordered:016x}"))
        }
        Value::String(s) => {
            if s.len() > MAX_STRING_LEN || s.chars().any(|c| c <= AFTER_KEY) {
                return None;
            }
            Some(match parse_time(s) {
                Some(t) => format!("s0{:016x}", (t.timestamp_micros() as u64) ^ 1 << 63),
                None => format!("s1{s}"),
            })
        }
        _ => None,
    }
}

/// The sort key of a user's entry: the value's order key, then the user id.
pub fn entry_sk(key: &str, user_id: &str) -> String {
    format!("{key}{KEY_END}{user_id}")
}

/// The user id of an entry's sort key.
pub fn entry_user_id(sk: &str) -> Option<&str> {
    entry_parts(sk).map(|(_, id)| id)
}

/// The order key and the user id of an entry's sort key.
pub fn entry_parts(sk: &str) -> Option<(&str, &str)> {
    sk.split_once(KEY_END)
}

/// One stretch of a field's entries to read, both bounds inclusive.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    pub from: String,
    pub to: String,
}

/// The first and past-the-last order keys of a value's type.
fn type_bounds(key: &str) -> (String, String) {
    match key.as_bytes()[0] {
        b'b' => ("b".into(), "c".into()),
        b'n' => ("n".into(), "o".into()),
        _ => ("s".into(), "t".into()),
    }
}

/// The spans of `field` holding every user the filter can match whose value is not an array
/// (those are listed under [`ARRAY_KEY`] too, for whoever reads the spans to read them), or
/// `None` when the filter does not confine the field to listed values.
pub fn spans(filter: &Filter, field: &str) -> Option<Vec<Span>> {
    match filter {
        Filter::Field {
            field: f,
            op,
            value,
        } if f == field => {
            let exact = |v: &Value| {
                let key = order_key(v)?;
                let to = format!("{key}{AFTER_KEY}");
                Some(Span { from: key, to })
            };
            let out = match (op, value) {
                (Op::Eq, Value::Array(items)) | (Op::In, Value::Array(items)) => {
                    items.iter().map(exact).collect::<Option<Vec<_>>>()?
                }
                (Op::Eq, v) => vec![exact(v)?],
                (Op::Gt | Op::Gte, v) => {
                    let key = order_key(v)?;
                    vec![Span {
                        to: type_bounds(&key).1,
                        from: key,
                    }]
                }
                (Op::Lt | Op::Lte, v) => {
                    let key = order_key(v)?;
                    vec![Span {
                        from: type_bounds(&key).0,
                        to: format!("{key}{AFTER_KEY}"),
                    }]
                }
                _ => return None,
            };
            Some(dedup(out))
        }
        // A user matching every conjunct has each of its scalar values in every conjunct's
        // spans; an array may match them by different elements, so arrays are read on their own
        // (`ARRAY_KEY`).
        Filter::And(fs) => fs.iter().filter_map(|f| spans(f, field)).reduce(|a, b| {
            let both = a
                .iter()
                .flat_map(|x| b.iter().filter_map(|y| x.intersect(y)));
            dedup(both.collect())
        }),
        Filter::Or(fs) if !fs.is_empty() => {
            let mut out = Vec::new();
            for f in fs {
                out.extend(spans(f, field)?);
            }
            Some(dedup(out))
        }
        _ => None,
    }
}

impl Span {
    fn intersect(&self, other: &Span) -> Option<Span> {
        let from = self.from.as_str().max(other.from.as_str());
        let to = self.to.as_str().min(other.to.as_str());
        (from <= to).then(|| Span {
            from: from.to_string(),
            to: to.to_string(),
        })
    }

    /// Whether the span holds one value's entries.
    pub fn is_exact(&self) -> bool {
        self.to.strip_suffix(AFTER_KEY) == Some(self.from.as_str())
    }
}

/// The spans joined where they overlap, in ascending order: a walk in the field's order reads
/// each entry once.
pub fn merged(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort();
    let mut out: Vec<Span> = Vec::new();
    for span in spans {
        match out.last_mut() {
            Some(last) if span.from <= last.to => {
                if span.to > last.to {
                    last.to = span.to;
                }
            }
            _ => out.push(span),
        }
    }
    out
}

fn dedup(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort();
    spans.dedup();
    spans
}

/// A user's entries: `(field, order key)` pairs, and whether they list all of its custom data.
pub fn entries(user: &User) -> (BTreeSet<(String, String)>, bool) {
    let mut out = BTreeSet::new();
    let mut complete = true;
    for (field, value) in &user.custom {
        if !is_indexed_field(field) {
            // Queries never ask the index about these fields.
            continue;
        }
        if matches!(value, Value::Array(_)) && out.len() < MAX_ENTRIES_PER_USER {
            out.insert((field.clone(), ARRAY_KEY.to_string()));
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
            if matches!(v, Value::Object(_) | Value::Array(_) | Value::Null) {
                // Objects inside arrays: no comparison with a scalar finds them.
                continue;
            }
            let Some(key) = order_key(v) else {
                complete = false;
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

    /// Whether a span read finds the user: one of its entries for the field lies in a span.
    fn found(u: &User, filter: &Filter, field: &str) -> bool {
        let (keys, _) = entries(u);
        let spans = spans(filter, field).expect("spans");
        keys.iter().filter(|(f, _)| f == field).any(|(_, key)| {
            let sk = entry_sk(key, &u.id);
            key == ARRAY_KEY || spans.iter().any(|s| s.from <= sk && sk <= s.to)
        })
    }

    #[test]
    fn spans_hold_every_user_the_filter_matches() {
        let values = [
            json!(-2.5),
            json!(-1),
            json!(0),
            json!(-0.0),
            json!(1),
            json!(1.5),
            json!(30),
            json!(9007199254740993u64),
            json!(true),
            json!(false),
            json!(""),
            json!("a"),
            json!("ab"),
            json!("b"),
            json!("Z"),
            json!("2026-01-01"),
            json!("2026-01-01T00:00:00Z"),
            json!("2026-01-01T00:00:00.000+00:00"),
            json!("2025-12-31T23:59:59.999999Z"),
            json!(["a", 5]),
            json!([1, 100]),
        ];
        let ops = ["$eq", "$gt", "$gte", "$lt", "$lte"];
        let mut checked = 0;
        for stored in &values {
            let u = user(json!({ "f": stored }));
            let doc = serde_json::to_value(&u).unwrap();
            for asked in values.iter().filter(|v| !v.is_array()) {
                for op in ops {
                    let filter = Filter::parse(&json!({"f": { op: asked }}), None).unwrap();
                    if filter.matches_json(&doc) {
                        checked += 1;
                        assert!(found(&u, &filter, "f"), "{stored} {op} {asked}");
                    }
                }
                // Conjunctions matched by different elements of an array.
                for (lo, hi) in [("$gt", "$lt"), ("$gte", "$lte")] {
                    let filter = Filter::parse(&json!({"f": { lo: asked, hi: 2 }}), None).unwrap();
                    if filter.matches_json(&doc) {
                        assert!(found(&u, &filter, "f"), "{stored} {lo} {asked} {hi} 2");
                    }
                }
            }
            let any_of = Filter::parse(&json!({"f": {"$in": [stored.clone(), "zz"]}}), None);
            if let (Ok(filter), false) = (any_of, stored.is_array()) {
                assert!(found(&u, &filter, "f"), "$in {stored}");
            }
        }
        assert!(checked > 100, "{checked}");
        // Conjunctions intersect; filters on other fields give no spans.
        let range = Filter::parse(&json!({"f": {"$gt": 1, "$lte": 5}}), None).unwrap();
        let span = &spans(&range, "f").unwrap()[0];
        assert_eq!(span.from, order_key(&json!(1)).unwrap());
        assert!(span.to.starts_with(&order_key(&json!(5)).unwrap()));
        let both = Filter::parse(&json!({"f": {"$gt": 1}, "$and": [{"f": 3}]}), None).unwrap();
        assert_eq!(spans(&both, "f").unwrap().len(), 1);
        assert!(spans(&both, "f").unwrap()[0].is_exact());
        assert!(spans(&Filter::parse(&json!({"g": 1}), None).unwrap(), "f").is_none());
        assert!(spans(
            &Filter::parse(&json!({"f": {"$ne": 1}}), None).unwrap(),
            "f"
        )
        .is_none());
    }

    #[test]
    fn large_custom_data_is_listed_as_unindexed() {
        let long = "x".repeat(300);
        assert!(!entries(&user(json!({ "bio": long }))).1);
        assert!(!entries(&user(json!({ "bio": "a\u{1}b" }))).1);
        assert!(!entries(&user(json!({ "list": (0..11).collect::<Vec<_>>() }))).1);
        let many: serde_json::Map<String, Value> =
            (0..31).map(|i| (format!("f{i}"), json!(i))).collect();
        let (keys, complete) = entries(&user(Value::Object(many)));
        assert!(!complete);
        assert_eq!(keys.len(), MAX_ENTRIES_PER_USER);
        assert!(!is_indexed_field("role") && !is_indexed_field("a.b") && is_indexed_field("book"));
    }
}
