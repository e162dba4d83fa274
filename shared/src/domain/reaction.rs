//! Reactions: one per user and type on a message, with a score and custom data (≤ 1 KB), and
//! the aggregates a message carries (`reaction_counts`, `reaction_scores`, `reaction_groups`,
//! `latest_reactions`).

// Wire names follow stream-chat-js `ReactionResponse` and `ReactionGroupResponse`.

use crate::domain::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Newest reactions a message carries (`latest_reactions`).
pub const LATEST_REACTIONS: usize = 10;
/// Custom data of one reaction (seed: 1 KB).
pub const MAX_REACTION_CUSTOM_BYTES: usize = 1024;
/// Reactions list: default and largest page, largest offset.
pub const DEFAULT_REACTIONS_LIMIT: usize = 10;
pub const MAX_REACTIONS_LIMIT: usize = 300;
pub const MAX_REACTIONS_OFFSET: usize = 1000;

/// Payload keys that are not custom data.
const REACTION_KEYS: &[&str] = &[
    "type",
    "score",
    "user",
    "user_id",
    "message_id",
    "created_at",
    "updated_at",
    "emoji_code",
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reaction {
    pub message_id: String,
    pub user_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub score: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji_code: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(flatten)]
    pub custom: Map<String, Value>,
}

impl Reaction {
    pub fn from_payload(
        payload: &Map<String, Value>,
        message_id: &str,
        user_id: &str,
        now: &str,
    ) -> Result<Reaction, ApiError> {
        let kind = payload
            .get("type")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::field("reaction.type", "reaction.type is required"))?;
        if kind.len() > 30 || kind.chars().any(|c| c.is_whitespace()) {
            return Err(ApiError::field(
                "reaction.type",
                "reaction.type must be a short word without spaces",
            ));
        }
        let score = match payload.get("score") {
            None | Some(Value::Null) => 1,
            Some(v) => v.as_i64().filter(|s| *s >= 1).ok_or_else(|| {
                ApiError::field(
                    "reaction.score",
                    "reaction.score must be a positive integer",
                )
            })?,
        };
        let custom: Map<String, Value> = payload
            .iter()
            .filter(|(k, _)| !REACTION_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if serde_json::to_vec(&custom)
            .map(|v| v.len())
            .unwrap_or(usize::MAX)
            > MAX_REACTION_CUSTOM_BYTES
        {
            return Err(ApiError::field(
                "reaction",
                format!("reaction custom data is larger than {MAX_REACTION_CUSTOM_BYTES} bytes"),
            ));
        }
        Ok(Reaction {
            message_id: message_id.to_string(),
            user_id: user_id.to_string(),
            kind: kind.to_string(),
            score,
            emoji_code: payload
                .get("emoji_code")
                .and_then(Value::as_str)
                .map(str::to_string),
            created_at: now.to_string(),
            updated_at: now.to_string(),
            custom,
        })
    }

    /// The response shape, with the user object.
    pub fn to_wire(&self, user: Option<&Value>) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let (Some(u), Value::Object(m)) = (user, &mut v) {
            m.insert("user".into(), u.clone());
        }
        v
    }
}

/// What a message carries about its reactions, kept with the message.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReactionSummary {
    #[serde(default)]
    pub counts: Map<String, Value>,
    #[serde(default)]
    pub scores: Map<String, Value>,
    #[serde(default)]
    pub groups: Map<String, Value>,
    /// The newest reactions, newest first.
    #[serde(default)]
    pub latest: Vec<Reaction>,
}

impl ReactionSummary {
    /// How many reactions the message has, of every type.
    pub fn total(&self) -> usize {
        self.counts.values().filter_map(Value::as_u64).sum::<u64>() as usize
    }

    /// A reaction added (`old` is the same user's previous reaction of that type, replaced).
    pub fn add(&mut self, r: &Reaction, old: Option<&Reaction>) {
        if let Some(o) = old {
            self.bump(&o.kind, 0, r.score - o.score, &r.created_at);
        } else {
            self.bump(&r.kind, 1, r.score, &r.created_at);
        }
        self.latest
            .retain(|x| !(x.user_id == r.user_id && x.kind == r.kind));
        self.latest.insert(0, r.clone());
        self.latest.truncate(LATEST_REACTIONS);
    }

    /// A reaction removed; `newest` refills `latest` (the message's newest reactions after it).
    pub fn remove(&mut self, r: &Reaction, newest: Vec<Reaction>) {
        self.bump(&r.kind, -1, -r.score, &r.updated_at);
        self.latest = newest;
    }

    fn bump(&mut self, kind: &str, count: i64, score: i64, at: &str) {
        let n = self.counts.get(kind).and_then(Value::as_i64).unwrap_or(0) + count;
        let s = self.scores.get(kind).and_then(Value::as_i64).unwrap_or(0) + score;
        if n <= 0 {
            self.counts.remove(kind);
            self.scores.remove(kind);
            self.groups.remove(kind);
            return;
        }
        self.counts.insert(kind.into(), n.into());
        self.scores.insert(kind.into(), s.into());
        let first = self
            .groups
            .get(kind)
            .and_then(|g| g.get("first_reaction_at"))
            .and_then(Value::as_str)
            .unwrap_or(at)
            .to_string();
        let last = if count > 0 {
            at.to_string()
        } else {
            self.groups
                .get(kind)
                .and_then(|g| g.get("last_reaction_at"))
                .and_then(Value::as_str)
                .unwrap_or(at)
                .to_string()
        };
        self.groups.insert(kind.into(), json!({ "count": n, "sum_scores": s, "first_reaction_at": first, "last_reaction_at": last }));
    }
}

/// `POST /messages/{id}/reactions` filter policy: `user_id`, `type`, `created_at` and custom
/// reaction fields.
pub fn query_reactions_rules() -> crate::domain::filter::FieldRules {
    use crate::domain::filter::{FieldRules, Op, ValueKind};
    FieldRules::new()
        .typed("user_id", ValueKind::String, &[Op::Eq, Op::In])
        .typed("type", ValueKind::String, &[Op::Eq, Op::In])
        .typed(
            "created_at",
            ValueKind::Timestamp,
            &[Op::Eq, Op::Gt, Op::Gte, Op::Lt, Op::Lte],
        )
        .custom_fields(&[Op::Eq, Op::In])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(user: &str, kind: &str, score: i64, at: &str) -> Reaction {
        let mut p = Map::new();
        p.insert("type".into(), kind.into());
        p.insert("score".into(), score.into());
        Reaction::from_payload(&p, "m", user, at).expect("valid")
    }

    #[test]
    fn summary_counts_scores_and_groups() {
        let mut s = ReactionSummary::default();
        let a = r("ann", "like", 1, "t1");
        s.add(&a, None);
        s.add(&r("bob", "like", 3, "t2"), None);
        assert_eq!(s.counts["like"], 2);
        assert_eq!(s.scores["like"], 4);
        assert_eq!(s.groups["like"]["first_reaction_at"], "t1");
        assert_eq!(s.groups["like"]["last_reaction_at"], "t2");
        s.add(&r("bob", "like", 5, "t3"), Some(&r("bob", "like", 3, "t2")));
        assert_eq!(s.counts["like"], 2);
        assert_eq!(s.scores["like"], 6);
        assert_eq!(s.latest.len(), 2);
        assert_eq!(s.latest[0].user_id, "bob");
        s.remove(&a, Vec::new());
        assert_eq!(s.counts["like"], 1);
        s.remove(&r("bob", "like", 5, "t4"), Vec::new());
        assert!(s.counts.is_empty() && s.groups.is_empty());
    }

    #[test]
    fn payload_rules() {
        let mut p = Map::new();
        assert!(Reaction::from_payload(&p, "m", "u", "t").is_err());
        p.insert("type".into(), "love".into());
        p.insert("count".into(), 42.into());
        let x = Reaction::from_payload(&p, "m", "u", "t").expect("ok");
        assert_eq!(x.score, 1);
        assert_eq!(x.custom["count"], 42);
        p.insert("blob".into(), "x".repeat(1100).into());
        assert!(Reaction::from_payload(&p, "m", "u", "t").is_err());
    }
}
