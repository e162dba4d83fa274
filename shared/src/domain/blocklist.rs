//! Blocklists: named lists of words and phrases a channel type checks messages against
//! (`blocklist` / `blocklists` with `blocklist_behavior` flag, block or shadow_block). The
//! stored list, its validation, and the matcher a message's text is checked with: whole words,
//! case-insensitive, phrases as consecutive words, in time proportional to the text, not the list.

use crate::domain::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashSet;

/// The most entries one list holds.
pub const MAX_BLOCKLIST_WORDS: usize = 10_000;
/// The longest list name and entry, in characters.
pub const MAX_BLOCKLIST_NAME: usize = 255;
pub const MAX_BLOCKLIST_WORD: usize = 255;
/// List types Stream names; only `word` lists are built (the others are refused, not stored).
const BUILT_TYPES: &[&str] = &["word"];
const KNOWN_TYPES: &[&str] = &[
    "word",
    "regex",
    "domain",
    "domain_allowlist",
    "email",
    "email_allowlist",
];

/// A stored blocklist.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Blocklist {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub words: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// Body of `POST /blocklists` and `PUT /blocklists/{name}`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct BlocklistRequest {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub words: Option<Vec<String>>,
}

/// Checks a list name (it is also a path segment).
pub fn validate_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.chars().count() > MAX_BLOCKLIST_NAME || name.contains('/') {
        return Err(ApiError::field(
            "name",
            format!("name must be 1 to {MAX_BLOCKLIST_NAME} characters, without /"),
        ));
    }
    Ok(())
}

/// Checks a list's type and entries.
pub fn validate(kind: &str, words: &[String]) -> Result<(), ApiError> {
    if !KNOWN_TYPES.contains(&kind) {
        return Err(ApiError::field(
            "type",
            format!("type must be one of {}", KNOWN_TYPES.join(", ")),
        ));
    }
    if !BUILT_TYPES.contains(&kind) {
        return Err(ApiError::field(
            "type",
            format!("{kind} blocklists are not supported yet: only word lists are"),
        ));
    }
    if words.len() > MAX_BLOCKLIST_WORDS {
        return Err(ApiError::field(
            "words",
            format!("a blocklist holds at most {MAX_BLOCKLIST_WORDS} words"),
        ));
    }
    if let Some(bad) = words
        .iter()
        .find(|w| w.trim().is_empty() || w.chars().count() > MAX_BLOCKLIST_WORD)
    {
        return Err(ApiError::field(
            "words",
            format!(
                "word {:?} must be 1 to {MAX_BLOCKLIST_WORD} characters",
                bad.chars().take(20).collect::<String>()
            ),
        ));
    }
    Ok(())
}

impl Blocklist {
    pub fn to_wire(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "words": self.words,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "is_leet_check_enabled": false,
            "is_plural_check_enabled": false,
            "is_confusable_folding_enabled": false,
            "is_substring_matching_enabled": false,
        })
    }
}

/// The words of a text as a blocklist sees them: runs of letters and digits (apostrophes
/// inside a word kept), lowercased.
fn words_of(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let inner_apostrophe = (c == '\'' || c == '’')
            && !current.is_empty()
            && chars.peek().is_some_and(|n| n.is_alphanumeric());
        if c.is_alphanumeric() || inner_apostrophe {
            current.extend(c.to_lowercase());
        } else if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A list ready to check texts: its entries as lowercased word sequences.
#[derive(Debug, Default)]
pub struct Matcher {
    entries: HashSet<String>,
    /// The most words one entry has (phrases are looked up up to this length).
    longest: usize,
}

impl Matcher {
    pub fn new(words: &[String]) -> Self {
        let mut entries = HashSet::with_capacity(words.len());
        let mut longest = 0;
        for w in words {
            let tokens = words_of(w);
            if tokens.is_empty() {
                continue;
            }
            longest = longest.max(tokens.len());
            entries.insert(tokens.join(" "));
        }
        Matcher { entries, longest }
    }

    /// The first entry `text` contains, as a whole word or phrase.
    pub fn first_match(&self, text: &str) -> Option<String> {
        if self.entries.is_empty() {
            return None;
        }
        let words = words_of(text);
        let mut phrase = String::new();
        for start in 0..words.len() {
            phrase.clear();
            for (n, w) in words[start..].iter().take(self.longest).enumerate() {
                if n > 0 {
                    phrase.push(' ');
                }
                phrase.push_str(w);
                if self.entries.contains(&phrase) {
                    return Some(phrase.clone());
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(words: &[&str]) -> Matcher {
        Matcher::new(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn whole_words_case_insensitive_and_phrases() {
        let list = m(&["fudge", "Heck", "good grief"]);
        assert_eq!(list.first_match("oh FUDGE!").as_deref(), Some("fudge"));
        assert_eq!(list.first_match("what the heck."), Some("heck".into()));
        assert_eq!(list.first_match("fudgesicle and checkers"), None);
        assert_eq!(
            list.first_match("Good   grief, Charlie"),
            Some("good grief".into())
        );
        assert_eq!(list.first_match("good, not grief"), None);
        assert_eq!(m(&[]).first_match("anything"), None);
        assert_eq!(
            m(&["don't"]).first_match("I don't know"),
            Some("don't".into())
        );
        assert_eq!(m(&["straße"]).first_match("Die STRASSE"), None);
        assert_eq!(
            m(&["Ünïcode"]).first_match("ünïcode rocks"),
            Some("ünïcode".into())
        );
    }

    #[test]
    fn limits() {
        assert!(validate("word", &["ok".into()]).is_ok());
        assert!(validate("regex", &["a+".into()]).is_err());
        assert!(validate("nope", &[]).is_err());
        assert!(validate("word", &[" ".into()]).is_err());
        assert!(validate("word", &vec!["w".to_string(); MAX_BLOCKLIST_WORDS + 1]).is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("").is_err());
        assert!(validate_name("Foo").is_ok());
    }
}
