//! Identifier generation in one place: random ids for tasks, hooks and guests, and
//! time-ordered ids whose lexical order is their creation order (outbox sort keys).

use chrono::{DateTime, Utc};

pub fn random_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `<microseconds since epoch, zero-padded>-<random>`: sorts by time, unique across writers.
pub fn time_ordered_id(at: DateTime<Utc>) -> String {
    let micros = at.timestamp_micros().max(0);
    let suffix: u64 = rand::random();
    format!("{micros:016}-{suffix:016x}")
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
}
