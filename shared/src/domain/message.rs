//! Messages as stored and as responses carry them, the new-message rules (id, type, text length,
//! custom data) and the channel-state page of messages (`id_lt` / `id_gt` / `id_lte` / `id_gte`
//! / `id_around`, limit ≤ 300).

// Wire names follow stream-chat-js `MessageResponse`.

use crate::domain::channel::check_custom_size;
use crate::domain::limits::{
    CHANNEL_QUERY_MESSAGE_LIMIT, MAX_ATTACHMENTS, MAX_CHANNEL_MESSAGE_LIMIT, MAX_MENTIONED_USERS,
    MAX_MESSAGE_ID_LEN,
};
use crate::domain::reaction::ReactionSummary;
use crate::domain::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Message types a request may ask for; the others (`deleted`, `error`, `ephemeral`, `reply`)
/// are the server's.
pub const CLIENT_MESSAGE_TYPES: &[&str] = &["regular", "system"];

/// Keys of a message payload that are not custom data: the typed fields, and the response-only
/// fields an SDK echoes back when it sends a whole message object to update it.
const MESSAGE_KEYS: &[&str] = &[
    "id",
    "text",
    "type",
    "user",
    "user_id",
    "silent",
    "cid",
    "created_at",
    "updated_at",
    "html",
    "deleted_at",
    "message_text_updated_at",
    "pinned",
    "pinned_at",
    "pinned_by",
    "pin_expires",
    "attachments",
    "latest_reactions",
    "own_reactions",
    "reaction_counts",
    "reaction_scores",
    "reaction_groups",
    "reply_count",
    "deleted_reply_count",
    "mentioned_users",
    "shadowed",
    "channel",
    "status",
    "parent_id",
    "show_in_channel",
    "quoted_message_id",
    "reactions",
    "seq",
    "type_before_delete",
    "restricted_visibility",
    "pending",
    "pending_message_metadata",
    "pending_expires_at",
    "enrich_url",
    "i18n",
    "thread_participants",
    "quoted_message",
    "member",
];

/// Whether `key` names one of a message's own fields rather than custom data (commands' `command`
/// and `args` included).
pub fn is_message_key(key: &str) -> bool {
    MESSAGE_KEYS.contains(&key) || key == "command" || key == "args"
}

/// Fields a message partial update may not touch (server-managed).
const NOT_SETTABLE: &[&str] = &[
    "id",
    "cid",
    "type",
    "user",
    "user_id",
    "created_at",
    "updated_at",
    "deleted_at",
    "html",
    "message_text_updated_at",
    "pinned_by",
    "latest_reactions",
    "own_reactions",
    "reaction_counts",
    "reaction_scores",
    "reaction_groups",
    "reply_count",
    "deleted_reply_count",
    "shadowed",
    "parent_id",
    "quoted_message_id",
    "i18n",
    "restricted_visibility",
    "pending",
    "pending_message_metadata",
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub cid: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: String,
    /// The author; system messages made by the server may have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub silent: bool,
    /// Sent while its author was shadow-banned: only the author (and the server) sees it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_text_updated_at: Option<String>,
    #[serde(default)]
    pub pinned: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_by_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_expires: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Value>,
    /// Mentioned user ids; responses carry the users (`mentioned_users`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentioned_user_ids: Vec<String>,
    /// The thread a reply belongs to (type `reply`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub show_in_channel: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quoted_message_id: Option<String>,
    #[serde(default)]
    pub reply_count: u32,
    #[serde(default, skip_serializing_if = "is_empty_summary")]
    pub reactions: ReactionSummary,
    /// Sent with `skip_push`: no push notification for it (stored, never on the wire).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_push: bool,
    /// Sent by a campaign with `skip_webhook`: the hooks do not hear of it (never on the wire).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_webhook: bool,
    /// The first link of the text, recorded for URL enrichment (not on the wire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrich_url: Option<String>,
    /// Translations: `<lang>_text` per language and the original `language`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub i18n: Map<String, Value>,
    /// The channel's `counted_messages` after this message, when it counts as unread (not on the
    /// wire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Only the sender, these users and roles that may read restricted messages see it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restricted_visibility: Vec<String>,
    /// Held for review: only the sender sees it until committed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub pending: bool,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub pending_message_metadata: Map<String, Value>,
    /// When an uncommitted pending message times out (the type's `mark_messages_pending`
    /// timeout), for the scheduler. Not on the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_expires_at: Option<String>,
    /// The type a soft-deleted message had, restored by undelete (not on the wire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_before_delete: Option<String>,
    #[serde(flatten)]
    pub custom: Map<String, Value>,
}

fn is_empty_summary(s: &ReactionSummary) -> bool {
    s.counts.is_empty() && s.latest.is_empty()
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Who reads messages: a user (or the server, `user_id: None`) and whether they may read
/// restricted-visibility messages of others.
#[derive(Clone, Debug)]
pub struct Viewer<'a> {
    pub user_id: Option<&'a str>,
    pub reads_restricted: bool,
    /// The channel type's `message_retention`: messages created before this are gone.
    pub retained_since: Option<chrono::DateTime<chrono::Utc>>,
    /// Users the reader blocked: their messages are not shown to the reader.
    pub blocked: std::sync::Arc<Vec<String>>,
}

/// The parts of a message payload beyond text and custom data: attachments (≤ 30), mentions
/// (≤ 25, ids or user objects), thread and quote references.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MessageLinks {
    pub attachments: Vec<Value>,
    pub mentioned_user_ids: Vec<String>,
    pub parent_id: Option<String>,
    pub show_in_channel: bool,
    pub quoted_message_id: Option<String>,
    pub restricted_visibility: Vec<String>,
}

impl MessageLinks {
    pub fn parse(payload: &Map<String, Value>) -> Result<MessageLinks, ApiError> {
        let attachments = match payload.get("attachments") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => {
                return Err(ApiError::field(
                    "message.attachments",
                    "attachments must be a list",
                ))
            }
        };
        if attachments.len() > MAX_ATTACHMENTS {
            return Err(ApiError::field(
                "message.attachments",
                format!("a message can have at most {MAX_ATTACHMENTS} attachments"),
            ));
        }
        if attachments.iter().any(|a| !a.is_object()) {
            return Err(ApiError::field(
                "message.attachments",
                "every attachment must be an object",
            ));
        }
        let mentioned_user_ids: Vec<String> = match payload.get("mentioned_users") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .or_else(|| v.get("id").and_then(Value::as_str))
                        .map(str::to_string)
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    ApiError::field(
                        "message.mentioned_users",
                        "mentioned_users must be user ids or {id} objects",
                    )
                })?,
            Some(_) => {
                return Err(ApiError::field(
                    "message.mentioned_users",
                    "mentioned_users must be a list",
                ))
            }
        };
        if mentioned_user_ids.len() > MAX_MENTIONED_USERS {
            return Err(ApiError::field(
                "message.mentioned_users",
                format!("a message can mention at most {MAX_MENTIONED_USERS} users"),
            ));
        }
        let text_field = |k: &str| {
            payload
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Ok(MessageLinks {
            attachments,
            mentioned_user_ids,
            parent_id: text_field("parent_id"),
            show_in_channel: payload
                .get("show_in_channel")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            quoted_message_id: text_field("quoted_message_id"),
            restricted_visibility: match payload.get("restricted_visibility") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        ApiError::field(
                            "message.restricted_visibility",
                            "restricted_visibility must be a list of user ids",
                        )
                    })?,
                Some(_) => {
                    return Err(ApiError::field(
                        "message.restricted_visibility",
                        "restricted_visibility must be a list of user ids",
                    ))
                }
            },
        })
    }
}

impl Message {
    /// A message from a request payload (`message` of send, or the optional system message of a
    /// channel change). `id` is the payload's or `fallback_id`.
    pub fn from_payload(
        payload: &Map<String, Value>,
        cid: &str,
        user_id: Option<String>,
        fallback_id: String,
        now: &str,
    ) -> Result<Message, ApiError> {
        let id = match payload.get("id") {
            None | Some(Value::Null) => fallback_id,
            Some(Value::String(s)) if s.is_empty() => fallback_id,
            Some(Value::String(s)) => {
                validate_message_id(s)?;
                s.clone()
            }
            Some(_) => return Err(ApiError::field("message.id", "message.id must be a string")),
        };
        let text = match payload.get("text") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(ApiError::field(
                    "message.text",
                    "message.text must be a string",
                ))
            }
        };
        let kind = match payload.get("type") {
            None | Some(Value::Null) => "regular".to_string(),
            Some(Value::String(t)) if t.is_empty() => "regular".to_string(),
            Some(Value::String(t)) if CLIENT_MESSAGE_TYPES.contains(&t.as_str()) => t.clone(),
            Some(other) => {
                return Err(ApiError::field(
                    "message.type",
                    format!("message type {other} cannot be sent; use regular or system"),
                ))
            }
        };
        let silent = match payload.get("silent") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(ApiError::field(
                    "message.silent",
                    "message.silent must be a boolean",
                ))
            }
        };
        let custom: Map<String, Value> = payload
            .iter()
            .filter(|(k, _)| !MESSAGE_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        check_custom_size("message", &custom)?;
        Ok(Message {
            id,
            cid: cid.to_string(),
            kind,
            text,
            user_id,
            created_at: now.to_string(),
            updated_at: now.to_string(),
            silent,
            shadowed: false,
            deleted_at: None,
            message_text_updated_at: None,
            pinned: false,
            pinned_at: None,
            pinned_by_id: None,
            pin_expires: None,
            attachments: Vec::new(),
            mentioned_user_ids: Vec::new(),
            parent_id: None,
            show_in_channel: false,
            quoted_message_id: None,
            reply_count: 0,
            reactions: ReactionSummary::default(),
            i18n: Map::new(),
            enrich_url: None,
            skip_push: false,
            skip_webhook: false,
            seq: None,
            type_before_delete: None,
            restricted_visibility: Vec::new(),
            pending: false,
            pending_message_metadata: Map::new(),
            pending_expires_at: None,
            custom,
        }
        .with_links(MessageLinks::parse(payload)?))
    }

    fn with_links(mut self, links: MessageLinks) -> Message {
        self.attachments = links.attachments;
        self.mentioned_user_ids = links.mentioned_user_ids;
        self.show_in_channel = links.show_in_channel;
        self.quoted_message_id = links.quoted_message_id;
        self.restricted_visibility = links.restricted_visibility;
        if links.parent_id.is_some() && self.kind == "regular" {
            self.kind = "reply".into();
        }
        self.parent_id = links.parent_id;
        self
    }

    /// Pins the message (by `by`, expiring per `pin_expires`: null, seconds or a timestamp).
    pub fn pin(
        &mut self,
        by: Option<&str>,
        expires: Option<&Value>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ApiError> {
        self.pinned = true;
        self.pinned_at = Some(crate::domain::clock::format_time(now));
        self.pinned_by_id = by.map(str::to_string);
        self.pin_expires = match expires {
            None => None,
            Some(v) => pin_expiry(v, now)?,
        };
        Ok(())
    }

    /// Undelete: back to the type it had, as it was.
    pub fn undeleted(&self, now: &str) -> Message {
        let mut next = self.clone();
        next.kind = next.type_before_delete.take().unwrap_or_else(|| {
            if next.parent_id.is_some() {
                "reply".into()
            } else {
                "regular".into()
            }
        });
        next.deleted_at = None;
        next.updated_at = now.to_string();
        next
    }

    /// Records a translation of the text (`<target>_text`, and the original as
    /// `<source>_text` with `language`).
    pub fn add_translation(&mut self, source: &str, target: &str, text: String) {
        self.i18n
            .insert("language".into(), Value::String(source.to_string()));
        self.i18n
            .insert(format!("{source}_text"), Value::String(self.text.clone()));
        self.i18n
            .insert(format!("{target}_text"), Value::String(text));
    }

    /// Counts as unread for the channel's members.
    pub fn counts_as_unread(&self) -> bool {
        !self.pending
            && !self.shadowed
            && self.restricted_visibility.is_empty()
            && !self.silent
            && self.in_channel_list()
            && matches!(self.kind.as_str(), "regular" | "reply" | "system")
    }

    /// Can `viewer` see this message? Restricted messages: the sender, the listed users, or a
    /// viewer allowed to read restricted messages; pending ones: the sender only.
    pub fn visible_to(&self, viewer: &Viewer) -> bool {
        if let Some(since) = viewer.retained_since {
            if crate::domain::clock::parse_time(&self.created_at).is_some_and(|t| t < since) {
                return false;
            }
        }
        let own = viewer.user_id.is_some() && viewer.user_id == self.user_id.as_deref();
        if self.pending && !own {
            return false;
        }
        // A shadow-banned author's message: theirs alone (the server, reading for no one, too).
        if self.shadowed && !own && viewer.user_id.is_some() {
            return false;
        }
        // Nothing of a user the reader blocked.
        if let Some(author) = self.user_id.as_deref() {
            if !own && viewer.blocked.iter().any(|b| b == author) {
                return false;
            }
        }
        self.restricted_visibility.is_empty()
            || own
            || viewer.reads_restricted
            || viewer
                .user_id
                .is_some_and(|u| self.restricted_visibility.iter().any(|r| r == u))
    }

    /// Shown in the channel's message list: not a thread reply, unless also sent to the channel.
    pub fn in_channel_list(&self) -> bool {
        self.parent_id.is_none() || self.show_in_channel
    }

    /// Full update (`POST /messages/{id}`): text and custom data replaced by the payload's (the
    /// id, author, type and times stay); `message_text_updated_at` when the text changed.
    pub fn apply_full_update(
        &self,
        payload: &Map<String, Value>,
        now: &str,
    ) -> Result<Message, ApiError> {
        let given = Message::from_payload(
            payload,
            &self.cid,
            self.user_id.clone(),
            self.id.clone(),
            now,
        )?;
        if given.id != self.id {
            return Err(ApiError::field(
                "message.id",
                "message.id does not match the message being updated",
            ));
        }
        let mut next = self.clone();
        if next.text != given.text {
            next.message_text_updated_at = Some(now.to_string());
            next.i18n = Map::new();
        }
        next.text = given.text;
        next.silent = given.silent;
        next.custom = given.custom;
        next.attachments = given.attachments;
        next.mentioned_user_ids = given.mentioned_user_ids;
        next.quoted_message_id = given.quoted_message_id;
        next.updated_at = now.to_string();
        Ok(next)
    }

    /// Partial update (`PUT /messages/{id}`): `set` / `unset` with dotted paths on the text and
    /// custom data; `pinned` / `pin_expires` pin or unpin (by `actor`).
    pub fn apply_partial(
        &self,
        set: &Map<String, Value>,
        unset: &[String],
        actor: Option<&str>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Message, ApiError> {
        use crate::domain::patch::{set_path, top_field, unset_path};
        for path in set.keys().chain(unset.iter()) {
            let field = top_field(path);
            if NOT_SETTABLE.contains(&field) {
                return Err(ApiError::field(
                    field,
                    format!("{field} cannot be changed with a partial update"),
                ));
            }
        }
        let stamp = crate::domain::clock::format_time(now);
        let mut next = self.clone();
        for (path, value) in set {
            match path.as_str() {
                "text" => {
                    let text = value
                        .as_str()
                        .ok_or_else(|| ApiError::field("text", "text must be a string"))?
                        .to_string();
                    if text != next.text {
                        next.message_text_updated_at = Some(stamp.clone());
                        next.i18n = Map::new();
                    }
                    next.text = text;
                }
                "silent" => {
                    next.silent = value
                        .as_bool()
                        .ok_or_else(|| ApiError::field("silent", "silent must be a boolean"))?
                }
                "pinned" => {
                    let on = value
                        .as_bool()
                        .ok_or_else(|| ApiError::field("pinned", "pinned must be a boolean"))?;
                    next.pinned = on;
                    next.pinned_at = on.then(|| stamp.clone());
                    next.pinned_by_id = if on { actor.map(str::to_string) } else { None };
                }
                "pin_expires" => next.pin_expires = pin_expiry(value, now)?,
                // The JS client sends `pinned_at` with every pin: null means now.
                "pinned_at" => {
                    if let Some(t) = value.as_str() {
                        let at = crate::domain::clock::parse_time(t).ok_or_else(|| {
                            ApiError::field("pinned_at", "pinned_at must be an RFC 3339 timestamp")
                        })?;
                        next.pinned_at = Some(crate::domain::clock::format_time(at));
                    } else if !value.is_null() {
                        return Err(ApiError::field(
                            "pinned_at",
                            "pinned_at must be a timestamp or null",
                        ));
                    }
                }
                _ => set_path(&mut next.custom, path, value.clone()),
            }
        }
        for path in unset {
            match path.as_str() {
                "text" => next.text = String::new(),
                "silent" => next.silent = false,
                "pinned" => {
                    next.pinned = false;
                    next.pinned_at = None;
                    next.pinned_by_id = None;
                }
                "pin_expires" => next.pin_expires = None,
                _ => unset_path(&mut next.custom, path),
            }
        }
        if !next.pinned {
            next.pin_expires = None;
            next.pinned_at = None;
            next.pinned_by_id = None;
        }
        check_custom_size("message", &next.custom)?;
        next.updated_at = stamp;
        Ok(next)
    }

    /// Soft delete: the message stays as type `deleted` (reactions and replies kept).
    pub fn soft_deleted(&self, now: &str) -> Message {
        let mut next = self.clone();
        next.type_before_delete = Some(self.kind.clone());
        next.kind = "deleted".into();
        next.deleted_at = Some(now.to_string());
        next.updated_at = now.to_string();
        next
    }

    /// The response shape, with the author's user object and the (empty until reactions,
    /// replies and mentions land) lists every SDK reads.
    pub fn to_wire(&self, user: Option<&Value>) -> Value {
        let mut doc = match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        doc.remove("user_id");
        doc.remove("mentioned_user_ids");
        doc.remove("reactions");
        doc.remove("seq");
        doc.remove("type_before_delete");
        doc.remove("pending_expires_at");
        doc.remove("enrich_url");
        doc.remove("skip_push");
        doc.remove("skip_webhook");
        if !is_empty_summary(&self.reactions) {
            let r = &self.reactions;
            doc.insert("reaction_counts".into(), Value::Object(r.counts.clone()));
            doc.insert("reaction_scores".into(), Value::Object(r.scores.clone()));
            doc.insert("reaction_groups".into(), Value::Object(r.groups.clone()));
            doc.insert(
                "latest_reactions".into(),
                r.latest
                    .iter()
                    .map(|x| x.to_wire(None))
                    .collect::<Vec<_>>()
                    .into(),
            );
        }
        if let Some(u) = user {
            doc.insert("user".into(), u.clone());
        }
        // A deleted message keeps its place but not its text (server-side reads may ask for it).
        if self.kind == "deleted" {
            doc.insert("text".into(), Value::String(String::new()));
        } else {
            doc.insert(
                "html".into(),
                Value::String(crate::domain::markup::render(&self.text)),
            );
        }
        if let Some(by) = doc.remove("pinned_by_id") {
            doc.insert("pinned_by".into(), json!({ "id": by }));
        }
        let defaults = json!({
            "attachments": [],
            "latest_reactions": [],
            "own_reactions": [],
            "reaction_counts": {},
            "reaction_scores": {},
            "reaction_groups": null,
            "reply_count": 0,
            "deleted_reply_count": 0,
            "mentioned_users": [],
            "shadowed": false,
            "pinned": false,
            "pinned_at": null,
            "pinned_by": null,
            "pin_expires": null,
            "html": "",
        });
        if let Value::Object(d) = defaults {
            for (k, v) in d {
                doc.entry(k).or_insert(v);
            }
        }
        Value::Object(doc)
    }
}

/// `pin_expires`: null (never), a number of seconds from now, or an RFC 3339 time in the future.
fn pin_expiry(v: &Value, now: chrono::DateTime<chrono::Utc>) -> Result<Option<String>, ApiError> {
    use crate::domain::clock::{format_time, parse_time};
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => {
            let secs = n.as_i64().filter(|s| *s > 0).ok_or_else(|| {
                ApiError::field(
                    "pin_expires",
                    "pin_expires must be a positive number of seconds",
                )
            })?;
            let at = chrono::Duration::try_seconds(secs)
                .and_then(|d| now.checked_add_signed(d))
                .ok_or_else(|| {
                    ApiError::field("pin_expires", "pin_expires is too far in the future")
                })?;
            Ok(Some(format_time(at)))
        }
        Value::String(s) => {
            let t = parse_time(s).ok_or_else(|| {
                ApiError::field("pin_expires", "pin_expires must be an RFC 3339 timestamp")
            })?;
            if t <= now {
                return Err(ApiError::field(
                    "pin_expires",
                    "pin_expires must be in the future",
                ));
            }
            Ok(Some(format_time(t)))
        }
        _ => Err(ApiError::field(
            "pin_expires",
            "pin_expires must be seconds or a timestamp",
        )),
    }
}

/// The first link of a text (recorded for URL enrichment; fetching it is not on the send path).
pub fn first_url(text: &str) -> Option<String> {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| {
                matches!(
                    c,
                    '(' | ')' | '<' | '>' | ',' | '.' | '!' | '?' | '"' | '\''
                )
            })
        })
        .find(|w| {
            let l = w.to_ascii_lowercase();
            l.starts_with("http://") || l.starts_with("https://") || l.starts_with("www.")
        })
        .map(str::to_string)
}

/// Seed: a message id is at most 255 characters and contains neither `,` nor `%`.
pub fn validate_message_id(id: &str) -> Result<(), ApiError> {
    if id.len() > MAX_MESSAGE_ID_LEN {
        return Err(ApiError::field(
            "message.id",
            format!("message.id is longer than {MAX_MESSAGE_ID_LEN} characters"),
        ));
    }
    if id.contains(',') || id.contains('%') {
        return Err(ApiError::field(
            "message.id",
            "message.id cannot contain , or %",
        ));
    }
    Ok(())
}

/// Where a page of channel messages starts, relative to an anchor message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageAnchor {
    /// The newest messages.
    Latest,
    Before {
        id: String,
        inclusive: bool,
    },
    After {
        id: String,
        inclusive: bool,
    },
    Around(String),
}

/// `messages` of a channel query: the anchor and the page size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessagePage {
    pub anchor: MessageAnchor,
    pub limit: usize,
}

impl MessagePage {
    /// A page of a channel query: 100 messages unless asked otherwise (the JS client decides
    /// whether older messages exist from a full page of its own default, 100).
    pub fn parse(v: Option<&Map<String, Value>>) -> Result<MessagePage, ApiError> {
        Self::parse_with_default(v, CHANNEL_QUERY_MESSAGE_LIMIT)
    }

    /// A page with `default` messages unless `limit` says otherwise.
    pub fn parse_with_default(
        v: Option<&Map<String, Value>>,
        default: usize,
    ) -> Result<MessagePage, ApiError> {
        let Some(m) = v else {
            return Ok(MessagePage {
                anchor: MessageAnchor::Latest,
                limit: default,
            });
        };
        let limit = match m.get("limit") {
            None | Some(Value::Null) => default,
            Some(v) => v.as_u64().map(|n| n as usize).ok_or_else(|| {
                ApiError::field("messages.limit", "messages.limit must be a number")
            })?,
        };
        if limit > MAX_CHANNEL_MESSAGE_LIMIT {
            return Err(ApiError::field(
                "messages",
                format!("messages.limit must be at most {MAX_CHANNEL_MESSAGE_LIMIT}"),
            ));
        }
        let s = |k: &str| {
            m.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let anchor = if let Some(id) = s("id_around") {
            MessageAnchor::Around(id)
        } else if let Some(id) = s("id_lt") {
            MessageAnchor::Before {
                id,
                inclusive: false,
            }
        } else if let Some(id) = s("id_lte") {
            MessageAnchor::Before {
                id,
                inclusive: true,
            }
        } else if let Some(id) = s("id_gt") {
            MessageAnchor::After {
                id,
                inclusive: false,
            }
        } else if let Some(id) = s("id_gte") {
            MessageAnchor::After {
                id,
                inclusive: true,
            }
        } else {
            MessageAnchor::Latest
        };
        Ok(MessagePage { anchor, limit })
    }
}

/// `GET /search` message filter policy: the seed's "Message Filter Conditions" table plus
/// custom fields.
pub fn search_rules() -> crate::domain::filter::FieldRules {
    use crate::domain::filter::{FieldRules, Op, ValueKind};
    const CMP: &[Op] = &[Op::Eq, Op::Gt, Op::Gte, Op::Lt, Op::Lte, Op::In];
    FieldRules::new()
        .typed("id", ValueKind::String, CMP)
        .typed(
            "text",
            ValueKind::String,
            &[
                Op::Q,
                Op::Autocomplete,
                Op::Eq,
                Op::Gt,
                Op::Gte,
                Op::Lt,
                Op::Lte,
                Op::In,
            ],
        )
        .typed("type", ValueKind::String, CMP)
        .typed("parent_id", ValueKind::String, CMP)
        .typed("reply_count", ValueKind::Number, CMP)
        .field(
            "attachments",
            &[Op::Exists, Op::Eq, Op::Gt, Op::Gte, Op::Lt, Op::Lte, Op::In],
        )
        .typed("attachments.type", ValueKind::String, &[Op::Eq, Op::In])
        .field("mentioned_users.id", &[Op::Contains])
        .typed("user.id", ValueKind::String, CMP)
        .typed("created_at", ValueKind::Timestamp, CMP)
        .typed("updated_at", ValueKind::Timestamp, CMP)
        .typed("pinned", ValueKind::Bool, &[Op::Eq])
        .custom_fields(CMP)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn first_url_of_a_text() {
        assert_eq!(
            first_url("see (https://example.com/a), ok").as_deref(),
            Some("https://example.com/a")
        );
        assert_eq!(
            first_url("www.stream.io and http://x.y").as_deref(),
            Some("www.stream.io")
        );
        assert_eq!(first_url("no links here"), None);
    }

    #[test]
    fn message_ids_follow_the_seed() {
        assert!(validate_message_id("abc-123").is_ok());
        assert!(validate_message_id("a,b").is_err());
        assert!(validate_message_id("a%b").is_err());
        assert!(validate_message_id(&"x".repeat(256)).is_err());
    }

    #[test]
    fn payload_custom_fields_and_types() {
        let m = Message::from_payload(
            &obj(json!({"text": "hi", "color": "red"})),
            "messaging:a",
            Some("ann".into()),
            "gen".into(),
            "t",
        )
        .expect("ok");
        assert_eq!(m.id, "gen");
        assert_eq!(m.kind, "regular");
        assert_eq!(m.custom["color"], "red");
        assert!(Message::from_payload(
            &obj(json!({"type": "deleted"})),
            "c",
            None,
            "g".into(),
            "t"
        )
        .is_err());
        assert!(Message::from_payload(
            &obj(json!({"blob": "x".repeat(6000)})),
            "c",
            None,
            "g".into(),
            "t"
        )
        .is_err());
        let wire = m.to_wire(Some(&json!({"id": "ann"})));
        assert_eq!(wire["user"]["id"], "ann");
        assert_eq!(wire["latest_reactions"], json!([]));
        assert!(wire.get("user_id").is_none());
    }

    #[test]
    fn message_pages() {
        assert_eq!(MessagePage::parse(None).expect("ok").limit, 100);
        let p = MessagePage::parse(Some(&obj(json!({"limit": 10, "id_lt": "m5"})))).expect("ok");
        assert_eq!(
            p.anchor,
            MessageAnchor::Before {
                id: "m5".into(),
                inclusive: false
            }
        );
        assert!(MessagePage::parse(Some(&obj(json!({"limit": 301})))).is_err());
    }

    #[test]
    fn retention_hides_older_messages() {
        let m = Message::from_payload(
            &obj(json!({"text": "old"})),
            "messaging:a",
            Some("u".into()),
            "m1".into(),
            "2020-01-01T00:00:00Z",
        )
        .unwrap();
        let mut viewer = Viewer {
            user_id: Some("u"),
            reads_restricted: false,
            retained_since: None,
            blocked: Default::default(),
        };
        assert!(m.visible_to(&viewer));
        viewer.retained_since = crate::domain::clock::parse_time("2021-01-01T00:00:00Z");
        assert!(!m.visible_to(&viewer));
        viewer.retained_since = crate::domain::clock::parse_time("2019-01-01T00:00:00Z");
        assert!(m.visible_to(&viewer));
    }
}
