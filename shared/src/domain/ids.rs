//! Identifier generation in one place: random ids for tasks, hooks and guests, and
//! time-ordered ids whose lexical order is their creation order (outbox sort keys).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

pub fn random_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `<microseconds since epoch, zero-padded>-<random>`: sorts by time, unique across writers.
pub fn time_ordered_id(at: DateTime<Utc>) -> String {
    let micros = at.timestamp_micros().max(0);
    let suffix: u64 = rand::random();
    format!("{micros:016}-{suffix:016x}")
}

/// A list of ids in a request is a set: a repeated id counts once (first order kept), so no
/// operation writes the same record twice.
pub fn unique(ids: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    ids.into_iter()
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

/// `#[serde(deserialize_with)]` for a list of ids, read as a set.
pub fn unique_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Vec::<String>::deserialize(d).map(unique)
}

/// `#[serde(deserialize_with)]` for an optional list of ids, read as a set.
pub fn unique_ids_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Option::<Vec<String>>::deserialize(d).map(|ids| ids.map(unique))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ordered_ids_sort_by_time() {
        let t = Utc::now();
        let a = time_ordered_id(t);
        let b = time_ordered_id(t + chrono::Duration::microseconds(1));
        assert!(a < b);
        assert_ne!(time_ordered_id(t), time_ordered_id(t));
    }

    #[test]
    fn id_lists_are_sets() {
        let ids = ["b", "a", "b", "c", "a"].map(String::from).to_vec();
        assert_eq!(unique(ids), ["b", "a", "c"].map(String::from).to_vec());
    }
}
