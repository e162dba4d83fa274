//! Blocklists: named lists a channel type checks messages against (`blocklist` / `blocklists`
//! with `blocklist_behavior` flag, block or shadow_block). The stored list, its validation, and
//! the matcher a message's text is checked with, by the list's type:
//! - `word`: whole words, case-insensitive, phrases as consecutive words, in time proportional
//!   to the text, not the list;
//! - `regex`: case-insensitive regular expressions, any of which matches somewhere in the text;
//! - `domain` / `domain_allowlist`: the hosts of the text's links and bare domain names, listed
//!   (a listed domain covers its subdomains) or, for an allowlist, not listed;
//! - `email` / `email_allowlist`: the text's e-mail addresses, listed (as an address or as its
//!   domain) or, for an allowlist, not listed.

use crate::domain::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashSet;

/// The most entries one list holds.
pub const MAX_BLOCKLIST_WORDS: usize = 10_000;
/// The longest list name and entry, in characters.
pub const MAX_BLOCKLIST_NAME: usize = 255;
pub const MAX_BLOCKLIST_WORD: usize = 255;
/// The list types (Stream's).
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
    /// Matching variants Stream offers on word lists; not built, so only `false` is accepted.
    pub is_leet_check_enabled: Option<bool>,
    pub is_plural_check_enabled: Option<bool>,
    pub is_confusable_folding_enabled: Option<bool>,
    pub is_substring_matching_enabled: Option<bool>,
}

impl BlocklistRequest {
    /// Refuses the matching variants this product does not have.
    pub fn check_variants(&self) -> Result<(), ApiError> {
        for (field, on) in [
            ("is_leet_check_enabled", self.is_leet_check_enabled),
            ("is_plural_check_enabled", self.is_plural_check_enabled),
            (
                "is_confusable_folding_enabled",
                self.is_confusable_folding_enabled,
            ),
            (
                "is_substring_matching_enabled",
                self.is_substring_matching_enabled,
            ),
        ] {
            if on == Some(true) {
                return Err(ApiError::field(
                    field,
                    format!("{field} is not supported: lists match whole words and phrases"),
                ));
            }
        }
        Ok(())
    }
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
    Matcher::for_list(kind, words).map(|_| ())
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

/// A list ready to check texts.
#[derive(Debug)]
pub struct Matcher {
    check: Check,
}

#[derive(Debug)]
enum Check {
    /// Entries as lowercased word sequences, and the most words one has.
    Words {
        entries: HashSet<String>,
        longest: usize,
    },
    Patterns(regex::RegexSet, Vec<String>),
    Domains {
        listed: HashSet<String>,
        allow: bool,
    },
    Emails {
        listed: HashSet<String>,
        allow: bool,
    },
}

/// Compiled size bound of a regex list (the regex crate's own default is 10 MiB per pattern).
const REGEX_SIZE_LIMIT: usize = 32 * (1 << 20);

impl Default for Matcher {
    fn default() -> Self {
        Matcher::new(&[])
    }
}

/// A lowercased host name with at least one dot and a top-level label of letters, if `s` is one.
fn host(s: &str) -> Option<String> {
    let s = s.trim_end_matches('.').to_lowercase();
    let labels: Vec<&str> = s.split('.').collect();
    let ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|t| t.len() >= 2 && t.chars().all(char::is_alphabetic));
    ok.then_some(s)
}

/// The pieces of a text that may be links, domains or addresses (split on whitespace, outer
/// punctuation trimmed).
fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split_whitespace().map(|t| {
        t.trim_matches(|c: char| {
            matches!(
                c,
                ',' | ';' | '!' | '?' | '(' | ')' | '<' | '>' | '"' | '\'' | '[' | ']'
            )
        })
        .trim_end_matches('.')
    })
}

/// The hosts a text names: of its links (`scheme://host/...`, `www.…`) and bare domain names.
fn hosts_of(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for token in tokens(text) {
        if token.contains('@') && !token.contains("://") {
            continue;
        }
        let rest = token.split_once("://").map_or(token, |(_, r)| r);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let name = authority.rsplit('@').next().unwrap_or_default();
        let name = name.split(':').next().unwrap_or_default();
        out.extend(host(name));
    }
    out
}

/// The e-mail addresses a text names, lowercased.
fn emails_of(text: &str) -> Vec<String> {
    tokens(text)
        .map(|t| t.strip_prefix("mailto:").unwrap_or(t))
        .filter_map(|t| {
            let (local, domain) = t.split_once('@')?;
            let ok = !local.is_empty()
                && local
                    .chars()
                    .all(|c| c.is_alphanumeric() || "._%+-".contains(c));
            (ok && host(domain).is_some()).then(|| t.to_lowercase())
        })
        .collect()
}

/// Whether `host` is `listed` or a subdomain of a listed domain.
fn domain_listed(listed: &HashSet<String>, host: &str) -> bool {
    let mut h = host;
    loop {
        if listed.contains(h) {
            return true;
        }
        match h.split_once('.') {
            Some((_, parent)) if parent.contains('.') => h = parent,
            _ => return false,
        }
    }
}

/// Whether an address is listed, as itself or by its domain.
fn email_listed(listed: &HashSet<String>, address: &str) -> bool {
    listed.contains(address)
        || address
            .split_once('@')
            .is_some_and(|(_, d)| domain_listed(listed, d))
}

impl Matcher {
    /// A word list.
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
        Matcher {
            check: Check::Words { entries, longest },
        }
    }

    /// A list of type `kind`; a regex that does not compile, or an entry that is not a domain
    /// or an address where the type needs one, is an error naming it.
    pub fn for_list(kind: &str, words: &[String]) -> Result<Self, ApiError> {
        let bad = |what: &str, w: &str| {
            ApiError::field(
                "words",
                format!("{:?} is not {what}", w.chars().take(40).collect::<String>()),
            )
        };
        let check = match kind {
            "regex" => {
                let set = regex::RegexSetBuilder::new(words)
                    .case_insensitive(true)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| {
                        ApiError::field("words", format!("not a valid regex list: {e}"))
                    })?;
                Check::Patterns(set, words.to_vec())
            }
            "domain" | "domain_allowlist" => {
                let mut listed = HashSet::with_capacity(words.len());
                for w in words {
                    let name = w.trim().trim_start_matches("*.");
                    listed.insert(host(name).ok_or_else(|| bad("a domain name", w))?);
                }
                Check::Domains {
                    listed,
                    allow: kind == "domain_allowlist",
                }
            }
            "email" | "email_allowlist" => {
                let mut listed = HashSet::with_capacity(words.len());
                for w in words {
                    let entry = w.trim().trim_start_matches('@').to_lowercase();
                    let ok = match entry.split_once('@') {
                        Some(_) => !emails_of(&entry).is_empty(),
                        None => host(&entry).is_some(),
                    };
                    if !ok {
                        return Err(bad("an e-mail address or domain", w));
                    }
                    listed.insert(entry);
                }
                Check::Emails {
                    listed,
                    allow: kind == "email_allowlist",
                }
            }
            _ => return Ok(Matcher::new(words)),
        };
        Ok(Matcher { check })
    }

    /// What in `text` trips the list, if anything: a word or phrase, the matching pattern, a
    /// (not) listed domain or address.
    pub fn first_match(&self, text: &str) -> Option<String> {
        match &self.check {
            Check::Words { entries, longest } => {
                if entries.is_empty() {
                    return None;
                }
                let words = words_of(text);
                let mut phrase = String::new();
                for start in 0..words.len() {
                    phrase.clear();
                    for (n, w) in words[start..].iter().take(*longest).enumerate() {
                        if n > 0 {
                            phrase.push(' ');
                        }
                        phrase.push_str(w);
                        if entries.contains(&phrase) {
                            return Some(phrase.clone());
                        }
                    }
                }
                None
            }
            Check::Patterns(set, patterns) => {
                set.matches(text).iter().next().map(|i| patterns[i].clone())
            }
            Check::Domains { listed, allow } => hosts_of(text)
                .into_iter()
                .find(|h| domain_listed(listed, h) != *allow),
            Check::Emails { listed, allow } => emails_of(text)
                .into_iter()
                .find(|a| email_listed(listed, a) != *allow),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(kind: &str, words: &[&str]) -> Matcher {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        Matcher::for_list(kind, &words).expect("valid list")
    }

    #[test]
    fn regex_lists_match_anywhere_case_insensitive() {
        let l = list("regex", &[r"\b\d{3}-\d{4}\b", "free +money"]);
        assert_eq!(
            l.first_match("call 555-1234 now").as_deref(),
            Some(r"\b\d{3}-\d{4}\b")
        );
        assert_eq!(
            l.first_match("FREE   Money!").as_deref(),
            Some("free +money")
        );
        assert_eq!(l.first_match("nothing here"), None);
    }

    #[test]
    fn domain_lists_cover_links_bare_names_and_subdomains() {
        let l = list("domain", &["spam.example", "*.bad.io"]);
        assert_eq!(
            l.first_match("see https://www.spam.example/x?y").as_deref(),
            Some("www.spam.example")
        );
        assert_eq!(l.first_match("go to bad.io.").as_deref(), Some("bad.io"));
        assert_eq!(l.first_match("mail me at a@spam.example"), None);
        assert_eq!(l.first_match("good.example and notspam.example"), None);
        let allow = list("domain_allowlist", &["getstream.io"]);
        assert_eq!(allow.first_match("docs at https://getstream.io/chat"), None);
        assert_eq!(
            allow.first_match("or at evil.com").as_deref(),
            Some("evil.com")
        );
        assert_eq!(allow.first_match("version 1.2 is out"), None);
    }

    #[test]
    fn email_lists_by_address_or_domain() {
        let l = list("email", &["Boss@Corp.com", "@spam.example"]);
        assert_eq!(
            l.first_match("write boss@corp.com!").as_deref(),
            Some("boss@corp.com")
        );
        assert_eq!(
            l.first_match("mailto:x@mail.spam.example").as_deref(),
            Some("x@mail.spam.example")
        );
        assert_eq!(l.first_match("ceo@corp.com or corp.com"), None);
        let allow = list("email_allowlist", &["ourcompany.com"]);
        assert_eq!(allow.first_match("ask help@ourcompany.com"), None);
        assert_eq!(
            allow.first_match("or me@gmail.com").as_deref(),
            Some("me@gmail.com")
        );
    }

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
        assert!(validate("regex", &["a+".into()]).is_ok());
        assert!(validate("regex", &["(unclosed".into()]).is_err());
        assert!(validate("domain", &["not a domain".into()]).is_err());
        assert!(validate("email", &["nobody@".into()]).is_err());
        assert!(validate("nope", &[]).is_err());
        assert!(validate("word", &[" ".into()]).is_err());
        assert!(validate("word", &vec!["w".to_string(); MAX_BLOCKLIST_WORDS + 1]).is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("").is_err());
        assert!(validate_name("Foo").is_ok());
    }
}
