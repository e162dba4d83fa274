//! Channels and their members: stored and wire shapes, type/id/cid rules, channel data on create,
//! full and partial update, distinct-channel ids, member payloads, and the query filter policies.

// Wire names follow stream-chat-js `ChannelResponse`, `ChannelMemberResponse` and `ChannelData`;
// the id charset is the JS SDK's own check (`/^[\w!_-]+$/`, "letters, numbers and "!-_" are
// allowed"), the length the seed's "max length 64 characters". Timestamps are strings in the one
// wire format (`clock::format_time`), like `User`'s.

use crate::domain::channel_type::{self, ChannelTypeConfig, ModerationBehavior};
use crate::domain::clock::{format_time, parse_time};
use crate::domain::filter::{FieldRules, Filter, Op, ValueKind};
use crate::domain::limits::{
    CHANNEL_COOLDOWN_RANGE, MAX_CHANNEL_ID_LEN, MAX_CUSTOM_DATA_BYTES, MAX_MEMBERS_PER_CALL,
};
use crate::domain::patch::{set_path, top_field, unset_path};
use crate::domain::permissions::{self, Grants, Permission, USER_LEVEL_ROLES};
use crate::domain::user::validate_user_id;
use crate::domain::ApiError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// Every distinct (member-list) channel id starts with this, as Stream's do.
pub const DISTINCT_ID_PREFIX: &str = "!members-";
/// The channel role of a plain member.
pub const CHANNEL_MEMBER_ROLE: &str = "channel_member";
/// The channel role that makes a member a moderator (`is_moderator`).
pub const CHANNEL_MODERATOR_ROLE: &str = "channel_moderator";

/// Channel data keys a client can never set: Stream answers them with an error, which is why
/// stream-chat-js strips exactly these before `channel.update()`. `members` is the seed's
/// "reserved field" (members change through add/remove members only).
pub const RESERVED_FIELDS: &[&str] = &[
    "cid",
    "config",
    "created_at",
    "created_by",
    "id",
    "last_message_at",
    "member_count",
    "members",
    "own_capabilities",
    "type",
    "updated_at",
];

/// Response-only or server-managed keys. Apps commonly send a channel's whole `data` back on a full
/// update (`channel.update({...channel.data, name})`), so these are dropped quietly there and on
/// create; a partial update that names one is refused (it could only be a mistake).
pub const SERVER_OWNED_FIELDS: &[&str] = &[
    "blocked",
    "created_by_id",
    "deleted_at",
    "hidden",
    "hide_messages_before",
    "invites",
    "joined",
    "membership",
    "message_count",
    "mute_expires_at",
    "muted",
    "truncated_at",
    "truncated_by",
    "truncated_by_id",
];

/// Keys `config_overrides` accepts: the channel-level settings of a type that a single channel
/// may change (the Python SDK tests override `shared_locations` and `user_message_reminders`).
pub const CONFIG_OVERRIDE_FLAGS: &[&str] = &[
    "typing_events",
    "reactions",
    "replies",
    "quotes",
    "uploads",
    "url_enrichment",
    "push_notifications",
    "user_message_reminders",
    "shared_locations",
];
pub const CONFIG_OVERRIDE_OTHER: &[&str] = &[
    "max_message_length",
    "blocklist",
    "blocklist_behavior",
    "commands",
    "grants",
];

/// Invite states as queries name them (`invite` filter, JS `InviteStatus` minus `member`).
pub const INVITE_STATUSES: &[&str] = &["pending", "accepted", "rejected"];

// ---------------------------------------------------------------------------------------------
// Identifiers

/// A channel type name in a cid or path: the channel type module's name rule, reported on `type`.
pub fn validate_channel_type(name: &str) -> Result<(), ApiError> {
    channel_type::validate_name(name).map_err(|_| {
        ApiError::field(
            "type",
            format!(
                "channel type {name:?} is invalid: use 1 to {} letters, digits, '_' or '-'",
                channel_type::MAX_NAME_LEN
            ),
        )
    })
}

/// A channel id: 1 to 64 ASCII letters, digits, `_`, `-` or `!`.
pub fn validate_channel_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() {
        return Err(ApiError::field("id", "channel id must not be empty"));
    }
    if id.chars().count() > MAX_CHANNEL_ID_LEN {
        return Err(ApiError::field(
            "id",
            format!("channel id is longer than {MAX_CHANNEL_ID_LEN} characters"),
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '!')))
    {
        return Err(ApiError::field(
            "id",
            format!(
                "channel id {id:?} contains {c:?}: ids may only contain letters, digits and ! _ -"
            ),
        ));
    }
    Ok(())
}

/// A channel's full id, `type:id`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cid {
    pub channel_type: String,
    pub id: String,
}

impl Cid {
    pub fn new(channel_type: &str, id: &str) -> Result<Cid, ApiError> {
        validate_channel_type(channel_type)?;
        validate_channel_id(id)?;
        Ok(Cid {
            channel_type: channel_type.to_string(),
            id: id.to_string(),
        })
    }

    /// Parse `type:id`. The type cannot contain `:`, so the first one splits.
    pub fn parse(cid: &str) -> Result<Cid, ApiError> {
        let (t, id) = cid.split_once(':').ok_or_else(|| {
            ApiError::field(
                "cid",
                format!("cid {cid:?} must have the form type:id, e.g. messaging:general"),
            )
        })?;
        Cid::new(t, id).map_err(|e| ApiError::field("cid", format!("cid {cid:?}: {}", e.message)))
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.channel_type, self.id)
    }
}

/// The id of the distinct channel of a member set: `!members-` plus 32 lowercase hex digits of
/// FNV-1a 128 over the sorted, deduplicated user ids, each followed by a NUL byte (user ids cannot
/// contain NUL, so different sets never share an input). Order and repetition of `members` do not
/// matter; the value never changes across builds (unlike std's `DefaultHasher`), so it may be
/// stored. 41 characters, within the 64 of a channel id.
pub fn distinct_channel_id<S: AsRef<str>>(members: &[S]) -> Result<String, ApiError> {
    let mut ids: Vec<&str> = members.iter().map(AsRef::as_ref).collect();
    if ids.is_empty() {
        return Err(ApiError::field(
            "members",
            "a channel without an id needs members: its id is derived from the member list",
        ));
    }
    for id in &ids {
        validate_user_id(id).map_err(|e| ApiError::field("members", e.message))?;
    }
    ids.sort_unstable();
    ids.dedup();
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013b;
    let mut hash = OFFSET;
    for id in ids {
        for b in id.bytes().chain(std::iter::once(0u8)) {
            hash ^= u128::from(b);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    Ok(format!("{DISTINCT_ID_PREFIX}{hash:032x}"))
}

/// Whether `id` is a distinct (member-list) channel's: those cannot gain or lose members.
pub fn is_distinct_id(id: &str) -> bool {
    id.starts_with(DISTINCT_ID_PREFIX)
}

// ---------------------------------------------------------------------------------------------
// Channel data (create / update payloads)

/// Slow mode cooldown from a request (`data.cooldown`, or the top-level `cooldown` of
/// `enableSlowMode` / `disableSlowMode`): 0 disables it, otherwise 1 to 120 seconds.
pub fn parse_cooldown(v: &Value) -> Result<u32, ApiError> {
    let bad = || {
        ApiError::field(
            "cooldown",
            format!(
                "cooldown must be 0 (off) or a whole number of seconds between {} and {}, got {v}",
                CHANNEL_COOLDOWN_RANGE.start(),
                CHANNEL_COOLDOWN_RANGE.end()
            ),
        )
    };
    let n = v
        .as_u64()
        .or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1e9)
                .map(|f| f as u64)
        })
        .ok_or_else(bad)?;
    let n = u32::try_from(n).map_err(|_| bad())?;
    if n == 0 || CHANNEL_COOLDOWN_RANGE.contains(&n) {
        Ok(n)
    } else {
        Err(bad())
    }
}

/// Check a `config_overrides` object: only channel-level settings, each of the right type.
/// Permission ids in `grants` are checked against the app's permissions by
/// [`Channel::effective_grants`], which needs the custom ones.
pub fn validate_config_overrides(o: &Map<String, Value>) -> Result<(), ApiError> {
    let bad = |key: &str, expected: &str| {
        ApiError::field(
            "config_overrides",
            format!("config_overrides.{key} must be {expected}"),
        )
    };
    for (key, v) in o {
        if v.is_null() {
            continue;
        }
        match key.as_str() {
            k if CONFIG_OVERRIDE_FLAGS.contains(&k) => {
                if !v.is_boolean() {
                    return Err(bad(k, "a boolean"));
                }
            }
            "max_message_length" => {
                if !v
                    .as_i64()
                    .is_some_and(|n| (1..=channel_type::MAX_MESSAGE_LENGTH_LIMIT).contains(&n))
                {
                    return Err(bad(key, "an integer between 1 and 20000"));
                }
            }
            "blocklist" => {
                if !v.is_string() {
                    return Err(bad(key, "a blocklist name"));
                }
            }
            "blocklist_behavior" => {
                if serde_json::from_value::<ModerationBehavior>(v.clone()).is_err() {
                    return Err(bad(key, "one of flag, block, shadow_block"));
                }
            }
            "commands" => {
                if serde_json::from_value::<Vec<String>>(v.clone()).is_err() {
                    return Err(bad(key, "a list of command names"));
                }
            }
            "grants" => {
                if serde_json::from_value::<Grants>(v.clone()).is_err() {
                    return Err(bad(
                        key,
                        "an object mapping roles to lists of permission ids (\"!id\" revokes)",
                    ));
                }
            }
            other => {
                return Err(ApiError::field(
                    "config_overrides",
                    format!(
                        "config_overrides.{other} cannot be overridden on a channel (allowed: {}, {})",
                        CONFIG_OVERRIDE_FLAGS.join(", "),
                        CONFIG_OVERRIDE_OTHER.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn custom_size(custom: &Map<String, Value>) -> usize {
    serde_json::to_vec(custom)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

pub(crate) fn check_custom_size(what: &str, custom: &Map<String, Value>) -> Result<(), ApiError> {
    if custom_size(custom) > MAX_CUSTOM_DATA_BYTES {
        return Err(ApiError::input(format!(
            "{what} custom data is larger than {MAX_CUSTOM_DATA_BYTES} bytes"
        )));
    }
    Ok(())
}

fn bool_field(key: &str, v: &Value) -> Result<bool, ApiError> {
    v.as_bool()
        .ok_or_else(|| ApiError::field(key, format!("{key} must be a boolean")))
}

fn string_field(key: &str, v: &Value) -> Result<String, ApiError> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| ApiError::field(key, format!("{key} must be a string")))
}

/// The settable part of a channel, parsed from a request's `data` (or a partial update's result):
/// typed fields when given (`None` = not given; `null` counts as not given, as the SDKs send
/// `null` for "absent") and everything else as custom data.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChannelData {
    pub frozen: Option<bool>,
    pub disabled: Option<bool>,
    pub cooldown: Option<u32>,
    pub team: Option<String>,
    pub auto_translation_enabled: Option<bool>,
    pub auto_translation_language: Option<String>,
    pub config_overrides: Option<Map<String, Value>>,
    pub filter_tags: Option<Vec<String>>,
    pub custom: Map<String, Value>,
}

/// What a create (`POST channels/{type}[/{id}]/query` with `data`) carries besides the data.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewChannelData {
    pub data: ChannelData,
    /// `created_by: {id}` or `created_by_id` (server-side creation names the creator this way).
    pub created_by_id: Option<String>,
    pub members: Vec<NewMember>,
    pub invites: Vec<String>,
}

impl ChannelData {
    /// Data of a full update (`POST channels/{type}/{id}` with `data`): reserved keys are refused,
    /// response-only keys dropped.
    pub fn for_update(data: &Map<String, Value>) -> Result<ChannelData, ApiError> {
        if let Some(k) = data.keys().find(|k| RESERVED_FIELDS.contains(&k.as_str())) {
            return Err(reserved_error(k));
        }
        ChannelData::parse(data)
    }

    fn parse(data: &Map<String, Value>) -> Result<ChannelData, ApiError> {
        let mut out = ChannelData::default();
        for (key, v) in data {
            let k = key.as_str();
            if RESERVED_FIELDS.contains(&k) || SERVER_OWNED_FIELDS.contains(&k) {
                continue;
            }
            if v.is_null() && is_typed(k) {
                continue;
            }
            match k {
                "frozen" => out.frozen = Some(bool_field(k, v)?),
                "disabled" => out.disabled = Some(bool_field(k, v)?),
                "auto_translation_enabled" => {
                    out.auto_translation_enabled = Some(bool_field(k, v)?)
                }
                "cooldown" => out.cooldown = Some(parse_cooldown(v)?),
                "team" => out.team = Some(string_field(k, v)?),
                "auto_translation_language" => {
                    out.auto_translation_language = Some(string_field(k, v)?)
                }
                "config_overrides" => {
                    let Value::Object(o) = v else {
                        return Err(ApiError::field(
                            k,
                            "config_overrides must be an object of channel settings",
                        ));
                    };
                    validate_config_overrides(o)?;
                    out.config_overrides = Some(o.clone());
                }
                "filter_tags" => {
                    out.filter_tags =
                        Some(serde_json::from_value(v.clone()).map_err(|_| {
                            ApiError::field(k, "filter_tags must be a list of strings")
                        })?)
                }
                _ => {
                    out.custom.insert(key.clone(), v.clone());
                }
            }
        }
        check_custom_size("channel", &out.custom)?;
        Ok(out)
    }
}

fn is_typed(k: &str) -> bool {
    matches!(
        k,
        "frozen"
            | "disabled"
            | "cooldown"
            | "team"
            | "auto_translation_enabled"
            | "auto_translation_language"
            | "config_overrides"
            | "filter_tags"
    )
}

fn reserved_error(field: &str) -> ApiError {
    let hint = if field == "members" {
        ": add or remove members with add_members / remove_members"
    } else {
        ""
    };
    ApiError::field(
        field,
        format!("{field} is a reserved channel field and cannot be set{hint}"),
    )
}

impl NewChannelData {
    /// The `data` of a get-or-create. Reserved and response-only keys other than `members`,
    /// `invites` and `created_by(_id)` are ignored: the path decides type and id, and the SDKs
    /// send the stored `created_by` back on every later query of the channel.
    pub fn parse(data: &Map<String, Value>) -> Result<NewChannelData, ApiError> {
        let created_by_id = match (data.get("created_by"), data.get("created_by_id")) {
            (Some(Value::Object(u)), _) => match u.get("id") {
                Some(Value::String(id)) => Some(id.clone()),
                _ => return Err(ApiError::field("created_by", "created_by.id is required")),
            },
            (Some(Value::String(id)), _) | (None | Some(Value::Null), Some(Value::String(id))) => {
                Some(id.clone())
            }
            (None | Some(Value::Null), None | Some(Value::Null)) => None,
            _ => {
                return Err(ApiError::field(
                    "created_by",
                    "created_by must be a user object with an id",
                ));
            }
        };
        if let Some(id) = &created_by_id {
            validate_user_id(id).map_err(|e| ApiError::field("created_by", e.message))?;
        }
        let members = match data.get("members") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => NewMember::parse_list("members", v)?,
        };
        let invites = match data.get("invites") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => parse_user_ids("invites", v)?,
        };
        Ok(NewChannelData {
            data: ChannelData::parse(data)?,
            created_by_id,
            members,
            invites,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Channel

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A channel as stored, and (through [`Channel::to_wire`]) as responses carry it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    #[serde(rename = "type")]
    pub channel_type: String,
    pub id: String,
    pub cid: String,
    /// The creator's user id; responses carry the user object as `created_by`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_by_id: Option<String>,
    #[serde(default)]
    pub frozen: bool,
    #[serde(default)]
    pub disabled: bool,
    /// Slow mode in seconds; 0 = off, and then absent from the wire (seed: "When slow mode is
    /// enabled, channels include a cooldown field").
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cooldown: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default)]
    pub member_count: u32,
    /// Present when the type counts messages (`count_messages`) since the channel was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub config_overrides: Map<String, Value>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub auto_translation_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_translation_language: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filter_tags: Vec<String>,
    /// Messages that count as unread for members (not silent, not thread-only, not pending);
    /// a member's unread count is this minus the count at their last read. Not on the wire.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub counted_messages: u64,
    /// The newest message's id (what "mark read" without a message id reads up to). Not on the
    /// wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message_id: Option<String>,
    /// The newest message's `created_at`, whatever its kind: a new message is stamped after it,
    /// so the order readers page in (time) is the order messages committed. Not on the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_message_at: Option<String>,
    /// The activity last written to the members' activity entries (query channels' order).
    /// Not on the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_indexed: Option<String>,
    #[serde(flatten)]
    pub custom: Map<String, Value>,
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// What a response adds to a stored channel for one reader.
#[derive(Clone, Debug, Default)]
pub struct ChannelView<'a> {
    /// The creator's user object (`created_by`); `None` leaves it out.
    pub created_by: Option<&'a Value>,
    /// The user object of whoever truncated the channel (`truncated_by`).
    pub truncated_by: Option<&'a Value>,
    /// The type's config with overrides applied (`ChannelTypeConfig::to_channel_config`).
    pub config: Option<Map<String, Value>>,
    pub own_capabilities: Option<Vec<String>>,
    /// Per-reader state: hidden for this user, muted by this user.
    pub hidden: Option<bool>,
    pub muted: Option<bool>,
    /// A 1:1 channel with a user the reader blocked.
    pub blocked: Option<bool>,
}

impl Channel {
    /// A new channel at `now` (a `format_time` string) from create data. Members are the
    /// caller's: `member_count` starts at 0 and follows the member rows it writes.
    pub fn new(cid: &Cid, created_by_id: Option<String>, data: ChannelData, now: &str) -> Channel {
        let blank = Channel {
            channel_type: cid.channel_type.clone(),
            id: cid.id.clone(),
            cid: cid.to_string(),
            created_by_id,
            created_at: now.to_string(),
            updated_at: now.to_string(),
            deleted_at: None,
            last_message_at: None,
            truncated_at: None,
            truncated_by_id: None,
            frozen: false,
            disabled: false,
            cooldown: 0,
            team: None,
            member_count: 0,
            message_count: None,
            config_overrides: Map::new(),
            auto_translation_enabled: false,
            auto_translation_language: None,
            filter_tags: Vec::new(),
            counted_messages: 0,
            last_message_id: None,
            newest_message_at: None,
            activity_indexed: None,
            custom: Map::new(),
        };
        blank.with_data(data, false, now)
    }

    /// Where the channel's messages start for a reader: its creation (a re-created channel
    /// starts empty), its truncation, and the reader's own history cutoff, whichever is latest.
    pub fn messages_floor(&self, reader_cutoff: Option<&str>) -> Option<DateTime<Utc>> {
        [
            Some(self.created_at.as_str()),
            self.truncated_at.as_deref(),
            reader_cutoff,
        ]
        .into_iter()
        .flatten()
        .filter_map(parse_time)
        .max()
    }

    pub fn parsed_cid(&self) -> Cid {
        Cid {
            channel_type: self.channel_type.clone(),
            id: self.id.clone(),
        }
    }

    pub fn is_distinct(&self) -> bool {
        is_distinct_id(&self.id)
    }

    /// `data` applied over this channel. `absent_keeps`: whether typed fields not given keep
    /// their value (full update) or fall back to their default (partial update, where "not
    /// given" means "unset"). Custom data is always replaced.
    fn with_data(&self, data: ChannelData, absent_keeps: bool, now: &str) -> Channel {
        let mut next = self.clone();
        macro_rules! take {
            ($field:ident, $default:expr) => {
                match data.$field {
                    Some(v) => next.$field = v,
                    None if !absent_keeps => next.$field = $default,
                    None => {}
                }
            };
        }
        take!(frozen, false);
        take!(disabled, false);
        take!(cooldown, 0);
        take!(auto_translation_enabled, false);
        take!(config_overrides, Map::new());
        take!(filter_tags, Vec::new());
        match data.team {
            Some(t) => next.team = Some(t).filter(|t| !t.is_empty()),
            None if !absent_keeps => next.team = None,
            None => {}
        }
        match data.auto_translation_language {
            Some(l) => next.auto_translation_language = Some(l).filter(|l| !l.is_empty()),
            None if !absent_keeps => next.auto_translation_language = None,
            None => {}
        }
        next.custom = data.custom;
        next.updated_at = now.to_string();
        next
    }

    /// Full update: custom fields not given are removed (seed: "Any data that is present on the
    /// channel and not included in a full update will be deleted"); the typed settings (frozen,
    /// disabled, cooldown, team, config_overrides, auto translation, filter_tags) change only when
    /// given, since they are not custom key-value data.
    pub fn apply_full_update(&self, data: ChannelData, now: &str) -> Channel {
        self.with_data(data, true, now)
    }

    /// Partial update: `set` / `unset` with dotted paths over the settable fields and custom data.
    /// Reserved and response-only keys are refused; unsetting a typed field restores its default
    /// (`frozen` false, `cooldown` 0, no team...). Validated as a whole afterwards.
    pub fn apply_partial(
        &self,
        set: &Map<String, Value>,
        unset: &[String],
        now: &str,
    ) -> Result<Channel, ApiError> {
        for path in set.keys().chain(unset.iter()) {
            let field = top_field(path);
            if RESERVED_FIELDS.contains(&field) || SERVER_OWNED_FIELDS.contains(&field) {
                return Err(reserved_error(field));
            }
        }
        let mut doc = self.settable_doc();
        for (path, value) in set {
            set_path(&mut doc, path, value.clone());
        }
        for path in unset {
            unset_path(&mut doc, path);
        }
        let data = ChannelData::parse(&doc)?;
        Ok(self.with_data(data, false, now))
    }

    /// The fields a client may set, as one JSON object (what partial updates edit).
    fn settable_doc(&self) -> Map<String, Value> {
        let mut doc = self.custom.clone();
        if self.frozen {
            doc.insert("frozen".into(), Value::Bool(true));
        }
        if self.disabled {
            doc.insert("disabled".into(), Value::Bool(true));
        }
        if self.cooldown > 0 {
            doc.insert("cooldown".into(), self.cooldown.into());
        }
        if let Some(t) = &self.team {
            doc.insert("team".into(), Value::String(t.clone()));
        }
        if self.auto_translation_enabled {
            doc.insert("auto_translation_enabled".into(), Value::Bool(true));
        }
        if let Some(l) = &self.auto_translation_language {
            doc.insert("auto_translation_language".into(), Value::String(l.clone()));
        }
        if !self.config_overrides.is_empty() {
            doc.insert(
                "config_overrides".into(),
                Value::Object(self.config_overrides.clone()),
            );
        }
        if !self.filter_tags.is_empty() {
            doc.insert("filter_tags".into(), self.filter_tags.clone().into());
        }
        doc
    }

    /// The permission actions a change from `self` to `next` needs (on the channel resource):
    /// freezing needs UpdateChannelFrozen, slow mode UpdateChannelCooldown (so a channel moderator
    /// may enable slow mode without UpdateChannel), anything else UpdateChannel.
    pub fn update_actions(&self, next: &Channel) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.frozen != next.frozen {
            out.push("UpdateChannelFrozen");
        }
        if self.cooldown != next.cooldown {
            out.push("UpdateChannelCooldown");
        }
        let mut a = self.clone();
        a.frozen = next.frozen;
        a.cooldown = next.cooldown;
        a.updated_at.clone_from(&next.updated_at);
        if a != *next {
            out.push("UpdateChannel");
        }
        out
    }

    /// The first changed field only server-side calls may change: `config_overrides` (channel
    /// level grants and settings are an admin's) and `team` (moving a channel between tenants).
    pub fn server_only_changes(&self, next: &Channel) -> Option<&'static str> {
        if self.config_overrides != next.config_overrides {
            Some("config_overrides")
        } else if self.team != next.team {
            Some("team")
        } else {
            None
        }
    }

    /// The type's grants with this channel's `config_overrides.grants` modifiers applied (errors
    /// on unknown permission ids, so call it when accepting an override too).
    pub fn effective_grants(
        &self,
        type_grants: &Grants,
        custom_permissions: &[Permission],
    ) -> Result<Grants, ApiError> {
        let Some(v) = self.config_overrides.get("grants").filter(|v| !v.is_null()) else {
            return Ok(type_grants.clone());
        };
        let modifiers: Grants = serde_json::from_value(v.clone()).map_err(|_| {
            ApiError::field(
                "config_overrides",
                "config_overrides.grants must map roles to lists of permission ids",
            )
        })?;
        permissions::with_channel_modifiers_with(type_grants, &modifiers, custom_permissions)
            .map_err(|e| {
                ApiError::field("config_overrides", format!("config_overrides.grants: {e}"))
            })
    }

    /// The channel type's configuration as it applies to this channel: overridden feature flags,
    /// limits, blocklist and commands, and the effective grants.
    pub fn effective_config(
        &self,
        base: &ChannelTypeConfig,
        custom_permissions: &[Permission],
    ) -> Result<ChannelTypeConfig, ApiError> {
        let mut c = base.clone();
        c.grants = self.effective_grants(&base.grants, custom_permissions)?;
        for (key, v) in &self.config_overrides {
            match (key.as_str(), v) {
                (_, Value::Null) => {}
                ("typing_events", Value::Bool(b)) => c.typing_events = *b,
                ("reactions", Value::Bool(b)) => c.reactions = *b,
                ("replies", Value::Bool(b)) => c.replies = *b,
                ("quotes", Value::Bool(b)) => c.quotes = *b,
                ("uploads", Value::Bool(b)) => c.uploads = *b,
                ("url_enrichment", Value::Bool(b)) => c.url_enrichment = *b,
                ("push_notifications", Value::Bool(b)) => c.push_notifications = *b,
                ("user_message_reminders", Value::Bool(b)) => c.user_message_reminders = *b,
                ("shared_locations", Value::Bool(b)) => c.shared_locations = *b,
                ("max_message_length", v) => {
                    if let Some(n) = v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                        c.max_message_length = n;
                    }
                }
                ("blocklist", Value::String(s)) => c.blocklist = Some(s.clone()),
                ("blocklist_behavior", v) => {
                    if let Ok(b) = serde_json::from_value(v.clone()) {
                        c.blocklist_behavior = Some(b);
                    }
                }
                ("commands", v) => {
                    if let Ok(list) = serde_json::from_value(v.clone()) {
                        c.commands = list;
                    }
                }
                _ => {}
            }
        }
        Ok(c)
    }

    /// The channel object of a response: the stored fields with custom data flattened, the
    /// creator (and truncating user) as user objects instead of ids, and the reader's view.
    pub fn to_wire(&self, view: &ChannelView) -> Map<String, Value> {
        let mut doc = match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        doc.remove("created_by_id");
        doc.remove("truncated_by_id");
        doc.remove("counted_messages");
        doc.remove("last_message_id");
        doc.remove("newest_message_at");
        doc.remove("activity_indexed");
        if let Some(u) = view.created_by {
            doc.insert("created_by".into(), u.clone());
        }
        if let Some(u) = view.truncated_by {
            doc.insert("truncated_by".into(), u.clone());
        }
        if let Some(c) = &view.config {
            doc.insert("config".into(), Value::Object(c.clone()));
        }
        if let Some(caps) = &view.own_capabilities {
            doc.insert("own_capabilities".into(), caps.clone().into());
        }
        if let Some(h) = view.hidden {
            doc.insert("hidden".into(), Value::Bool(h));
        }
        if let Some(m) = view.muted {
            doc.insert("muted".into(), Value::Bool(m));
        }
        if let Some(b) = view.blocked {
            doc.insert("blocked".into(), Value::Bool(b));
        }
        doc
    }
}

// ---------------------------------------------------------------------------------------------
// Members

fn default_channel_role() -> String {
    CHANNEL_MEMBER_ROLE.to_string()
}

/// A channel role: not empty, and not a user-level built-in role (permissions: built-in user
/// roles cannot be used as channel roles). Whether a custom role exists is the caller's (store).
pub fn validate_channel_role(role: &str) -> Result<(), ApiError> {
    if role.is_empty() {
        return Err(ApiError::field(
            "channel_role",
            "channel_role must not be empty",
        ));
    }
    if USER_LEVEL_ROLES.contains(&role) {
        return Err(ApiError::field(
            "channel_role",
            format!(
                "{role:?} is a user role and cannot be a channel role; use channel_member, channel_moderator or a custom role"
            ),
        ));
    }
    Ok(())
}

/// Check how many users one members call touches (add, remove, invite, moderators, roles).
pub fn check_member_batch(field: &str, n: usize) -> Result<(), ApiError> {
    if n > MAX_MEMBERS_PER_CALL {
        return Err(ApiError::field(
            field,
            format!("{field} accepts at most {MAX_MEMBERS_PER_CALL} users per call, got {n}"),
        ));
    }
    Ok(())
}

/// A list of user ids (`remove_members`, `add_moderators`, `demote_moderators`, `invites`):
/// validated, duplicates dropped (first kept), at most 100.
pub fn parse_user_ids(field: &str, v: &Value) -> Result<Vec<String>, ApiError> {
    let Value::Array(items) = v else {
        return Err(ApiError::field(
            field,
            format!("{field} must be a list of user ids"),
        ));
    };
    check_member_batch(field, items.len())?;
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let id = item
            .as_str()
            .ok_or_else(|| ApiError::field(field, format!("{field} must be a list of user ids")))?;
        validate_user_id(id).map_err(|e| ApiError::field(field, e.message))?;
        if !out.iter().any(|o| o == id) {
            out.push(id.to_string());
        }
    }
    Ok(out)
}

/// One entry of `members` / `add_members` / `assign_roles`: a user id, or an object with
/// `user_id`, an optional `channel_role` and custom member data.
#[derive(Clone, Debug, PartialEq)]
pub struct NewMember {
    pub user_id: String,
    pub channel_role: Option<String>,
    pub custom: Map<String, Value>,
}

/// Keys of a member payload object that are not custom data.
const MEMBER_PAYLOAD_KEYS: &[&str] = &["user_id", "channel_role", "user"];

impl NewMember {
    pub fn parse(field: &str, v: &Value) -> Result<NewMember, ApiError> {
        let (user_id, channel_role, custom) = match v {
            Value::String(id) => (id.clone(), None, Map::new()),
            Value::Object(o) => {
                // `user: {id}` is accepted as the SDKs' `NewMemberPayload` also allows it.
                let id = match (o.get("user_id"), o.get("user")) {
                    (Some(Value::String(id)), _) => id.clone(),
                    (_, Some(Value::Object(u))) => match u.get("id") {
                        Some(Value::String(id)) => id.clone(),
                        _ => {
                            return Err(ApiError::field(
                                field,
                                format!("{field}: user.id is required"),
                            ));
                        }
                    },
                    _ => {
                        return Err(ApiError::field(
                            field,
                            format!("{field}: user_id is required"),
                        ));
                    }
                };
                let role = match o.get("channel_role") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(r)) => {
                        validate_channel_role(r)?;
                        Some(r.clone())
                    }
                    Some(_) => {
                        return Err(ApiError::field(
                            "channel_role",
                            "channel_role must be a string",
                        ));
                    }
                };
                let mut custom = Map::new();
                for (k, val) in o {
                    if MEMBER_PAYLOAD_KEYS.contains(&k.as_str()) {
                        continue;
                    }
                    if MEMBER_RESERVED.contains(&k.as_str()) {
                        return Err(ApiError::field(
                            k.as_str(),
                            format!("{k} is managed by the server and cannot be set on a member"),
                        ));
                    }
                    custom.insert(k.clone(), val.clone());
                }
                check_custom_size("member", &custom)?;
                (id, role, custom)
            }
            _ => {
                return Err(ApiError::field(
                    field,
                    format!("{field} entries must be user ids or {{\"user_id\": ...}} objects"),
                ));
            }
        };
        validate_user_id(&user_id).map_err(|e| ApiError::field(field, e.message))?;
        Ok(NewMember {
            user_id,
            channel_role,
            custom,
        })
    }

    /// A whole list: at most 100 entries; a user named twice keeps its last entry.
    pub fn parse_list(field: &str, v: &Value) -> Result<Vec<NewMember>, ApiError> {
        let Value::Array(items) = v else {
            return Err(ApiError::field(field, format!("{field} must be a list")));
        };
        check_member_batch(field, items.len())?;
        let mut out: Vec<NewMember> = Vec::with_capacity(items.len());
        for item in items {
            let m = NewMember::parse(field, item)?;
            match out.iter_mut().find(|o| o.user_id == m.user_id) {
                Some(slot) => *slot = m,
                None => out.push(m),
            }
        }
        Ok(out)
    }
}

/// Member keys the server manages: refused in member payloads and member partial updates.
/// (`archived` / `pinned` booleans are the way to set `archived_at` / `pinned_at`.)
pub const MEMBER_RESERVED: &[&str] = &[
    "archived_at",
    "ban_expires",
    "banned",
    "created_at",
    "hide_history_before",
    "invite_accepted_at",
    "invite_rejected_at",
    "invited",
    "is_moderator",
    "notifications_muted",
    "pinned_at",
    "role",
    "shadow_banned",
    "status",
    "updated_at",
    "user",
    "user_id",
];

/// The history cutoff of members being added: `hide_history_before` (an RFC 3339 time in the
/// past) wins over `hide_history: true`, which hides everything before `now` (seed "Hide history").
pub fn hide_history_cutoff(
    hide_history: Option<bool>,
    hide_history_before: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<String>, ApiError> {
    if let Some(s) = hide_history_before.filter(|s| !s.is_empty()) {
        let t = parse_time(s).ok_or_else(|| {
            ApiError::field(
                "hide_history_before",
                format!("hide_history_before {s:?} must be an RFC 3339 timestamp"),
            )
        })?;
        if t > now {
            return Err(ApiError::field(
                "hide_history_before",
                "hide_history_before must be in the past",
            ));
        }
        return Ok(Some(format_time(t)));
    }
    Ok(hide_history.unwrap_or(false).then(|| format_time(now)))
}

/// A channel membership as stored, and (through [`Member::to_wire`]) as responses carry it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: String,
    #[serde(default = "default_channel_role")]
    pub channel_role: String,
    #[serde(default)]
    pub invited: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_accepted_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_rejected_at: Option<String>,
    #[serde(default)]
    pub banned: bool,
    #[serde(default)]
    pub shadow_banned: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ban_expires: Option<String>,
    #[serde(default)]
    pub notifications_muted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_at: Option<String>,
    /// Messages before this time are not shown to this member (stored only; not on the wire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hide_history_before: Option<String>,
    /// Hidden for this member until shown again or a new message arrives (not on the member
    /// wire; the reader's channel payload carries `hidden`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub hidden: bool,
    /// Read and delivery state (the channel state's `read` entry); not on the member wire.
    #[serde(default)]
    pub read: ReadState,
    pub created_at: String,
    pub updated_at: String,
    #[serde(flatten)]
    pub custom: Map<String, Value>,
    /// The stored item's version when read (0: not stored yet); a write of this member is
    /// conditioned on it, so no concurrent change is lost and a removed member is not recreated.
    #[serde(skip)]
    pub version: u64,
}

impl Member {
    /// A new membership at `now`; `invited` for `invites` (pending until accepted or rejected).
    pub fn new(
        new: NewMember,
        invited: bool,
        hide_history_before: Option<String>,
        now: &str,
    ) -> Member {
        Member {
            user_id: new.user_id,
            channel_role: new.channel_role.unwrap_or_else(default_channel_role),
            invited,
            invite_accepted_at: None,
            invite_rejected_at: None,
            banned: false,
            shadow_banned: false,
            ban_expires: None,
            notifications_muted: false,
            archived_at: None,
            pinned_at: None,
            hide_history_before,
            hidden: false,
            read: ReadState {
                last_read: Some(now.to_string()),
                ..ReadState::default()
            },
            created_at: now.to_string(),
            updated_at: now.to_string(),
            custom: new.custom,
            version: 0,
        }
    }

    pub fn is_moderator(&self) -> bool {
        self.channel_role == CHANNEL_MODERATOR_ROLE
    }

    /// `pending`, `accepted`, `rejected` for invites; `member` for direct members.
    pub fn invite_status(&self) -> &'static str {
        if self.invite_rejected_at.is_some() {
            "rejected"
        } else if self.invite_accepted_at.is_some() {
            "accepted"
        } else if self.invited {
            "pending"
        } else {
            "member"
        }
    }

    /// Joined directly or through an accepted invite (the `joined` filter).
    pub fn is_joined(&self) -> bool {
        matches!(self.invite_status(), "member" | "accepted")
    }

    /// Partial member update (`PATCH channels/{type}/{id}/member/{user_id}`): custom data with
    /// dotted paths, plus `archived` / `pinned` booleans that stamp or clear `archived_at` /
    /// `pinned_at`, and `channel_role` (unset: back to channel_member). Server-managed keys are
    /// refused.
    pub fn apply_partial(
        &self,
        set: &Map<String, Value>,
        unset: &[String],
        now: &str,
    ) -> Result<Member, ApiError> {
        for path in set.keys().chain(unset.iter()) {
            let field = top_field(path);
            if MEMBER_RESERVED.contains(&field) {
                return Err(ApiError::field(
                    field,
                    format!("{field} cannot be changed with a member partial update"),
                ));
            }
        }
        let mut next = self.clone();
        for (path, value) in set {
            match path.as_str() {
                "archived" | "pinned" => {
                    let on = bool_field(path, value)?;
                    let stamp = on.then(|| now.to_string());
                    if path == "archived" {
                        next.archived_at = stamp;
                    } else {
                        next.pinned_at = stamp;
                    }
                }
                "channel_role" => {
                    let role = string_field(path, value)?;
                    validate_channel_role(&role)?;
                    next.channel_role = role;
                }
                _ => set_path(&mut next.custom, path, value.clone()),
            }
        }
        for path in unset {
            match path.as_str() {
                "archived" => next.archived_at = None,
                "pinned" => next.pinned_at = None,
                "channel_role" => next.channel_role = default_channel_role(),
                _ => unset_path(&mut next.custom, path),
            }
        }
        check_custom_size("member", &next.custom)?;
        next.updated_at = now.to_string();
        Ok(next)
    }

    /// The member object of a response (`ChannelMemberResponse`): custom data flattened, the
    /// user object, `is_moderator`, and the legacy `role` (`owner` for the channel's creator,
    /// `moderator`, or `member`).
    pub fn to_wire(
        &self,
        user: Option<&Value>,
        channel_created_by: Option<&str>,
    ) -> Map<String, Value> {
        let mut doc = match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        doc.remove("hide_history_before");
        doc.remove("hidden");
        doc.remove("read");
        let role = if channel_created_by == Some(self.user_id.as_str()) {
            "owner"
        } else if self.is_moderator() {
            "moderator"
        } else {
            "member"
        };
        doc.insert("role".into(), Value::String(role.into()));
        doc.insert("is_moderator".into(), Value::Bool(self.is_moderator()));
        if let Some(u) = user {
            doc.insert("user".into(), u.clone());
        }
        doc
    }
}

/// One member's read and delivery position in a channel.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_read: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_read_message_id: Option<String>,
    /// The channel's `counted_messages` at the last read.
    #[serde(default)]
    pub read_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivered_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivered_message_id: Option<String>,
}

impl ReadState {
    /// Unread messages in a channel that has counted `counted` messages.
    pub fn unread(&self, counted: u64) -> u64 {
        counted.saturating_sub(self.read_seq)
    }

    /// The channel state's `read` entry for this member (`user` is the user object).
    pub fn to_wire(&self, user: Value, counted: u64) -> Value {
        let mut v = serde_json::json!({
            "user": user,
            "last_read": self.last_read,
            "unread_messages": self.unread(counted),
        });
        if let Some(id) = &self.last_read_message_id {
            v["last_read_message_id"] = Value::String(id.clone());
        }
        if let Some(t) = &self.last_delivered_at {
            v["last_delivered_at"] = Value::String(t.clone());
        }
        if let Some(id) = &self.last_delivered_message_id {
            v["last_delivered_message_id"] = Value::String(id.clone());
        }
        v
    }
}

/// A user's mute of a channel (`POST /moderation/mute/channel`): notifications and unread counts
/// of the channel are silenced for that user until unmuted or `expires`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelMute {
    pub user_id: String,
    pub channel_cid: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

impl ChannelMute {
    /// Still in force at `now` (an expired mute is as good as none).
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.expires
            .as_deref()
            .and_then(parse_time)
            .is_none_or(|t| t > now)
    }

    /// `ChannelMute` as responses carry it: the user and channel objects instead of ids.
    pub fn to_wire(&self, user: Value, channel: Value) -> Value {
        let mut v = serde_json::json!({
            "user": user,
            "channel": channel,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        });
        if let Some(e) = &self.expires {
            v["expires"] = Value::String(e.clone());
        }
        v
    }
}

// ---------------------------------------------------------------------------------------------
// Query filters

const TIME_OPS: &[Op] = &[Op::Eq, Op::Gt, Op::Gte, Op::Lt, Op::Lte];
const TIME_OPS_EXISTS: &[Op] = &[Op::Eq, Op::Gt, Op::Gte, Op::Lt, Op::Lte, Op::Exists];
/// Operators on custom data fields (Stream's query syntax minus text search).
const CUSTOM_OPS: &[Op] = &[
    Op::Eq,
    Op::Ne,
    Op::Gt,
    Op::Gte,
    Op::Lt,
    Op::Lte,
    Op::In,
    Op::Nin,
    Op::Exists,
    Op::Contains,
    Op::Autocomplete,
];

/// `POST channels` filter policy: the seed's "Channel Queryable Built-In Fields" table, plus
/// `archived` / `pinned` (per-member state the SDK tests filter on) and custom channel fields
/// (the seed's support example filters on `agent_id` and `status`). `team` also takes `$in` so
/// multi-tenant users can list several teams.
pub fn query_channels_rules() -> FieldRules {
    FieldRules::new()
        .typed("frozen", ValueKind::Bool, &[Op::Eq])
        .typed("type", ValueKind::String, &[Op::In, Op::Eq])
        .typed("id", ValueKind::String, &[Op::In, Op::Eq])
        .typed("cid", ValueKind::String, &[Op::In, Op::Eq])
        .typed("members", ValueKind::String, &[Op::In, Op::Eq])
        .typed("invite", ValueKind::String, &[Op::Eq])
        .typed("joined", ValueKind::Bool, &[Op::Eq])
        .typed("muted", ValueKind::Bool, &[Op::Eq])
        .typed(
            "member.user.name",
            ValueKind::String,
            &[Op::Autocomplete, Op::Eq],
        )
        .typed("created_by_id", ValueKind::String, &[Op::Eq])
        .typed("hidden", ValueKind::Bool, &[Op::Eq])
        .typed("last_message_at", ValueKind::Timestamp, TIME_OPS_EXISTS)
        .typed(
            "member_count",
            ValueKind::Number,
            &[Op::Eq, Op::Gt, Op::Gte, Op::Lt, Op::Lte],
        )
        .typed("created_at", ValueKind::Timestamp, TIME_OPS_EXISTS)
        .typed("updated_at", ValueKind::Timestamp, TIME_OPS)
        .typed("team", ValueKind::String, &[Op::Eq, Op::In])
        .typed("last_updated", ValueKind::Timestamp, TIME_OPS)
        .typed("disabled", ValueKind::Bool, &[Op::Eq])
        .typed("has_unread", ValueKind::Bool, &[Op::Eq])
        .typed("app_banned", ValueKind::String, &[Op::Eq])
        .typed("archived", ValueKind::Bool, &[Op::Eq])
        .typed("pinned", ValueKind::Bool, &[Op::Eq])
        .custom_fields(CUSTOM_OPS)
}

/// `GET members` filter policy: the seed's "Member Queryable Built-In Fields" table, plus
/// `user_id`, `is_moderator` and `notifications_muted` (the seed's examples and JS
/// `MemberFilters`) and custom member fields (seed: "you can pass any field available in the
/// custom data").
pub fn query_members_rules() -> FieldRules {
    FieldRules::new()
        .typed("id", ValueKind::String, &[Op::Eq, Op::In])
        .typed("user_id", ValueKind::String, &[Op::Eq, Op::In])
        .typed(
            "name",
            ValueKind::String,
            &[Op::Eq, Op::In, Op::Autocomplete, Op::Q],
        )
        .typed("channel_role", ValueKind::String, &[Op::Eq])
        .typed("banned", ValueKind::Bool, &[Op::Eq])
        .typed("invite", ValueKind::String, &[Op::Eq])
        .typed("joined", ValueKind::Bool, &[Op::Eq])
        .typed("is_moderator", ValueKind::Bool, &[Op::Eq])
        .typed("notifications_muted", ValueKind::Bool, &[Op::Eq])
        .typed("created_at", ValueKind::Timestamp, TIME_OPS)
        .typed("updated_at", ValueKind::Timestamp, TIME_OPS)
        .typed("last_active", ValueKind::Timestamp, TIME_OPS)
        .typed("cid", ValueKind::String, &[Op::Eq])
        .typed(
            "user.email",
            ValueKind::String,
            &[Op::Eq, Op::In, Op::Autocomplete],
        )
        .custom_fields(CUSTOM_OPS)
}

/// Value rules the field policy cannot express: `invite` is pending / accepted / rejected,
/// `app_banned` is excluded / only, `has_unread` supports only `true` (seed tables).
pub fn check_filter_values(filter: &Filter) -> Result<(), ApiError> {
    let mut err = None;
    filter.visit(&mut |field, _, value| {
        if err.is_some() {
            return;
        }
        let ok = match field {
            "invite" => value.as_str().is_some_and(|s| INVITE_STATUSES.contains(&s)),
            "app_banned" => matches!(value.as_str(), Some("excluded" | "only")),
            "has_unread" => value == &Value::Bool(true),
            _ => true,
        };
        if !ok {
            let expected = match field {
                "invite" => "one of pending, accepted, rejected",
                "app_banned" => "excluded or only",
                _ => "true (only has_unread: true is supported)",
            };
            err = Some(ApiError::field(
                field,
                format!("filter on {field} must be {expected}, got {value}"),
            ));
        }
    });
    err.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    fn channel(data: Value) -> Channel {
        let d = NewChannelData::parse(&obj(data)).unwrap();
        Channel::new(
            &Cid::new("messaging", "general").unwrap(),
            d.created_by_id,
            d.data,
            "t0",
        )
    }

    #[test]
    fn channel_ids_follow_the_sdk_charset_and_length() {
        assert!(validate_channel_id("general").is_ok());
        assert!(validate_channel_id("!members-abc_DEF-09").is_ok());
        assert!(validate_channel_id(&"a".repeat(64)).is_ok());
        let long = validate_channel_id(&"a".repeat(65)).unwrap_err();
        assert_eq!(long.fields[0].0, "id");
        for bad in ["", "a:b", "a b", "a/b", "é", "a.b", "a@b"] {
            assert!(validate_channel_id(bad).is_err(), "{bad:?}");
        }
        assert!(validate_channel_type("messaging").is_ok());
        assert!(validate_channel_type("my-type_2").is_ok());
        assert_eq!(
            validate_channel_type("a!b").unwrap_err().fields[0].0,
            "type"
        );
    }

    #[test]
    fn cids_parse_and_format() {
        let cid = Cid::parse("messaging:general").unwrap();
        assert_eq!(cid.channel_type, "messaging");
        assert_eq!(cid.id, "general");
        assert_eq!(cid.to_string(), "messaging:general");
        assert_eq!(Cid::parse("messaging:!members-x").unwrap().id, "!members-x");
        for bad in [
            "messaging",
            ":general",
            "messaging:",
            "a:b:c",
            "mess aging:x",
        ] {
            let e = Cid::parse(bad).unwrap_err();
            assert_eq!(e.fields[0].0, "cid", "{bad:?}");
        }
    }

    #[test]
    fn distinct_ids_ignore_order_and_repeats_and_are_stable() {
        let a = distinct_channel_id(&["thierry", "tommaso"]).unwrap();
        let b = distinct_channel_id(&["tommaso", "thierry", "tommaso"]).unwrap();
        assert_eq!(a, b);
        // Pinned: changing the hash would orphan every stored distinct channel.
        assert_eq!(a, "!members-9c61210c209bdfa20200778329ff560a");
        assert!(validate_channel_id(&a).is_ok());
        assert!(is_distinct_id(&a));
        assert_ne!(a, distinct_channel_id(&["thierry"]).unwrap());
        // The separator keeps ["ab", "c"] and ["a", "bc"] apart.
        assert_ne!(
            distinct_channel_id(&["ab", "c"]).unwrap(),
            distinct_channel_id(&["a", "bc"]).unwrap()
        );
        assert!(distinct_channel_id::<&str>(&[]).is_err());
        assert!(distinct_channel_id(&["bad id"]).is_err());
    }

    #[test]
    fn create_data_splits_typed_custom_members_and_creator() {
        let d = NewChannelData::parse(&obj(json!({
            "name": "Awesome", "image": "x.png", "frozen": true, "cooldown": 30,
            "team": "red", "created_by": {"id": "alice", "name": "Alice"},
            "members": ["bob", {"user_id": "carol", "channel_role": "channel_moderator", "code_name": "007"}],
            "id": "ignored", "cid": "ignored", "member_count": 9, "hidden": true
        })))
        .unwrap();
        assert_eq!(d.created_by_id.as_deref(), Some("alice"));
        assert_eq!(d.members.len(), 2);
        assert_eq!(
            d.members[1].channel_role.as_deref(),
            Some("channel_moderator")
        );
        assert_eq!(d.members[1].custom["code_name"], json!("007"));
        let c = Channel::new(
            &Cid::new("messaging", "travel").unwrap(),
            d.created_by_id,
            d.data,
            "t0",
        );
        assert!(c.frozen);
        assert_eq!(c.cooldown, 30);
        assert_eq!(c.team.as_deref(), Some("red"));
        assert_eq!(c.custom, obj(json!({"name": "Awesome", "image": "x.png"})));
        assert_eq!(c.cid, "messaging:travel");
        assert_eq!(c.member_count, 0);
        // Stored form round-trips.
        let stored = serde_json::to_value(&c).unwrap();
        assert_eq!(serde_json::from_value::<Channel>(stored).unwrap(), c);
    }

    #[test]
    fn full_update_replaces_custom_data_and_keeps_settings() {
        let c = channel(json!({"name": "a", "color": "red", "frozen": true, "team": "t"}));
        let data = ChannelData::for_update(&obj(json!({"name": "b", "motd": "hi"}))).unwrap();
        let next = c.apply_full_update(data, "t1");
        assert_eq!(next.custom, obj(json!({"name": "b", "motd": "hi"})));
        assert!(next.frozen, "typed settings are not custom data");
        assert_eq!(next.team.as_deref(), Some("t"));
        assert_eq!(next.updated_at, "t1");
        assert_eq!(next.created_at, "t0");
        // Response-only keys sent back by SDK apps are dropped, reserved keys refused.
        let data = ChannelData::for_update(&obj(
            json!({"name": "c", "hidden": false, "deleted_at": null}),
        ))
        .unwrap();
        assert_eq!(
            c.apply_full_update(data, "t2").custom,
            obj(json!({"name": "c"}))
        );
        for k in [
            "cid",
            "config",
            "members",
            "member_count",
            "own_capabilities",
            "created_by",
        ] {
            let e = ChannelData::for_update(&obj(json!({ k: 1 }))).unwrap_err();
            assert_eq!(e.fields[0].0, k);
        }
    }

    #[test]
    fn partial_update_sets_and_unsets_dotted_paths() {
        let c = channel(json!({
            "source": "user", "source_detail": {"user_id": 123},
            "channel_detail": {"topic": "Plants and Animals", "rating": "pg"},
            "frozen": true, "cooldown": 10
        }));
        let next = c
            .apply_partial(
                &obj(json!({"source": "system", "channel_detail.topic": "Nature"})),
                &[],
                "t1",
            )
            .unwrap();
        let next = next
            .apply_partial(
                &Map::new(),
                &[
                    "source_detail".into(),
                    "channel_detail.rating".into(),
                    "frozen".into(),
                ],
                "t2",
            )
            .unwrap();
        assert_eq!(
            next.custom,
            obj(json!({"source": "system", "channel_detail": {"topic": "Nature"}}))
        );
        assert!(!next.frozen);
        assert_eq!(next.cooldown, 10, "fields not named are kept");
        let next = next
            .apply_partial(
                &obj(json!({"config_overrides.grants": {"user": ["!add-links"]}})),
                &[],
                "t3",
            )
            .unwrap();
        assert_eq!(
            next.config_overrides,
            obj(json!({"grants": {"user": ["!add-links"]}}))
        );
        assert_eq!(next.update_actions(&next.clone()), Vec::<&str>::new());
        for k in [
            "id",
            "cid",
            "members",
            "created_at",
            "hidden.x",
            "member_count",
        ] {
            assert!(
                c.apply_partial(&obj(json!({ k: 1 })), &[], "t").is_err(),
                "{k}"
            );
            assert!(
                c.apply_partial(&Map::new(), &[k.to_string()], "t").is_err(),
                "{k}"
            );
        }
        assert!(c
            .apply_partial(&obj(json!({"frozen": "yes"})), &[], "t")
            .is_err());
        assert!(c
            .apply_partial(
                &obj(json!({"config_overrides": {"max_message_length": 0}})),
                &[],
                "t"
            )
            .is_err());
        assert!(c
            .apply_partial(&obj(json!({"config_overrides": {"name": "x"}})), &[], "t")
            .is_err());
    }

    #[test]
    fn custom_data_is_capped_at_5kb() {
        let ok = "x".repeat(MAX_CUSTOM_DATA_BYTES - 20);
        assert!(NewChannelData::parse(&obj(json!({ "bio": ok }))).is_ok());
        let big = "x".repeat(MAX_CUSTOM_DATA_BYTES);
        assert!(NewChannelData::parse(&obj(json!({ "bio": big.clone() }))).is_err());
        let c = channel(json!({}));
        assert!(c
            .apply_partial(&obj(json!({ "bio": big.clone() })), &[], "t")
            .is_err());
        assert!(NewMember::parse("members", &json!({"user_id": "a", "bio": big})).is_err());
    }

    #[test]
    fn cooldown_is_off_or_1_to_120_seconds() {
        assert_eq!(parse_cooldown(&json!(0)).unwrap(), 0);
        assert_eq!(parse_cooldown(&json!(1)).unwrap(), 1);
        assert_eq!(parse_cooldown(&json!(120)).unwrap(), 120);
        assert_eq!(parse_cooldown(&json!(30.0)).unwrap(), 30);
        for bad in [json!(121), json!(-1), json!(1.5), json!("30"), json!(true)] {
            assert_eq!(
                parse_cooldown(&bad).unwrap_err().fields[0].0,
                "cooldown",
                "{bad}"
            );
        }
        let c = channel(json!({"cooldown": 5}));
        let wire = c.to_wire(&ChannelView::default());
        assert_eq!(wire["cooldown"], json!(5));
        let off = c
            .apply_partial(&obj(json!({"cooldown": 0})), &[], "t")
            .unwrap();
        assert!(!off
            .to_wire(&ChannelView::default())
            .contains_key("cooldown"));
        assert_eq!(c.update_actions(&off), vec!["UpdateChannelCooldown"]);
    }

    #[test]
    fn update_actions_follow_what_changed() {
        let c = channel(json!({"name": "a"}));
        let frozen = c
            .apply_partial(&obj(json!({"frozen": true})), &[], "t")
            .unwrap();
        assert_eq!(c.update_actions(&frozen), vec!["UpdateChannelFrozen"]);
        let renamed = c
            .apply_partial(&obj(json!({"name": "b", "frozen": true})), &[], "t")
            .unwrap();
        assert_eq!(
            c.update_actions(&renamed),
            vec!["UpdateChannelFrozen", "UpdateChannel"]
        );
        let moved = c
            .apply_partial(&obj(json!({"team": "blue"})), &[], "t")
            .unwrap();
        assert_eq!(c.server_only_changes(&moved), Some("team"));
        assert_eq!(c.server_only_changes(&renamed), None);
    }

    #[test]
    fn wire_shape_renders_creator_and_view() {
        let c = channel(json!({"created_by_id": "alice", "name": "n"}));
        assert_eq!(c.created_by_id.as_deref(), Some("alice"));
        let alice = json!({"id": "alice", "name": "Alice"});
        let wire = c.to_wire(&ChannelView {
            created_by: Some(&alice),
            own_capabilities: Some(vec!["send-message".into()]),
            hidden: Some(false),
            ..Default::default()
        });
        assert_eq!(wire["created_by"], alice);
        assert!(!wire.contains_key("created_by_id"));
        for (k, v) in [
            ("type", json!("messaging")),
            ("id", json!("general")),
            ("cid", json!("messaging:general")),
            ("frozen", json!(false)),
            ("disabled", json!(false)),
            ("member_count", json!(0)),
            ("name", json!("n")),
            ("hidden", json!(false)),
            ("own_capabilities", json!(["send-message"])),
        ] {
            assert_eq!(wire[k], v, "{k}");
        }
    }

    #[test]
    fn members_parse_and_render_like_the_sdks_expect() {
        let list = NewMember::parse_list(
            "add_members",
            &json!(["a", {"user_id": "b", "channel_role": "channel_moderator"}, {"user_id": "a", "code": 1}]),
        )
        .unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].custom["code"], json!(1));
        assert!(NewMember::parse("m", &json!({"user_id": "a", "channel_role": "admin"})).is_err());
        assert!(NewMember::parse("m", &json!({"user_id": "a", "banned": true})).is_err());
        assert!(NewMember::parse("m", &json!(5)).is_err());
        let many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
        assert!(NewMember::parse_list("add_members", &json!(many)).is_err());
        assert!(parse_user_ids("remove_members", &json!(many)).is_err());
        assert_eq!(
            parse_user_ids("remove_members", &json!(many[..100]))
                .unwrap()
                .len(),
            100
        );

        let m = Member::new(list[1].clone(), false, None, "t0");
        let wire = m.to_wire(Some(&json!({"id": "b"})), Some("a"));
        assert_eq!(wire["is_moderator"], json!(true));
        assert_eq!(wire["channel_role"], json!("channel_moderator"));
        assert_eq!(wire["role"], json!("moderator"));
        assert_eq!(wire["user"]["id"], json!("b"));
        let owner = Member::new(list[0].clone(), false, Some("h".into()), "t0");
        let wire = owner.to_wire(None, Some("a"));
        assert_eq!(wire["role"], json!("owner"));
        assert_eq!(wire["is_moderator"], json!(false));
        assert_eq!(wire["code"], json!(1));
        assert!(!wire.contains_key("hide_history_before"));
    }

    #[test]
    fn member_partial_update_and_invites() {
        let m = Member::new(
            NewMember::parse("m", &json!("a")).unwrap(),
            true,
            None,
            "t0",
        );
        assert_eq!(m.invite_status(), "pending");
        assert!(!m.is_joined());
        let next = m
            .apply_partial(
                &obj(json!({"pinned": true, "archived": true, "pref.color": "red"})),
                &[],
                "t1",
            )
            .unwrap();
        assert_eq!(next.pinned_at.as_deref(), Some("t1"));
        assert_eq!(next.archived_at.as_deref(), Some("t1"));
        assert_eq!(next.custom, obj(json!({"pref": {"color": "red"}})));
        let next = next
            .apply_partial(
                &obj(json!({"pinned": false})),
                &["archived".into(), "pref".into()],
                "t2",
            )
            .unwrap();
        assert_eq!(next.pinned_at, None);
        assert_eq!(next.archived_at, None);
        assert!(next.custom.is_empty());
        assert!(m
            .apply_partial(&obj(json!({"banned": true})), &[], "t")
            .is_err());
        assert!(m
            .apply_partial(&obj(json!({"channel_role": "user"})), &[], "t")
            .is_err());
    }

    #[test]
    fn hide_history_before_wins_and_must_be_past() {
        let now = parse_time("2024-05-01T00:00:00Z").unwrap();
        assert_eq!(hide_history_cutoff(None, None, now).unwrap(), None);
        assert_eq!(
            hide_history_cutoff(Some(true), None, now).unwrap(),
            Some(format_time(now))
        );
        assert_eq!(
            hide_history_cutoff(Some(true), Some("2024-04-01T00:00:00Z"), now).unwrap(),
            Some("2024-04-01T00:00:00.000000Z".to_string())
        );
        assert!(hide_history_cutoff(None, Some("2024-06-01T00:00:00Z"), now).is_err());
        assert!(hide_history_cutoff(None, Some("yesterday"), now).is_err());
    }

    #[test]
    fn effective_config_applies_overrides() {
        let base = channel_type::builtin_channel_type("messaging").unwrap();
        let c = channel(
            json!({"config_overrides": {"reactions": false, "max_message_length": 140,
            "grants": {"channel_member": ["!create-message"]}}}),
        );
        let eff = c.effective_config(&base, &[]).unwrap();
        assert!(!eff.reactions && eff.replies);
        assert_eq!(eff.max_message_length, 140);
        assert!(!eff.grants["channel_member"].contains(&"create-message".to_string()));
        let bad = channel(json!({"config_overrides": {"grants": {"user": ["!no-such"]}}}));
        assert!(bad.effective_config(&base, &[]).is_err());
    }

    #[test]
    fn filter_rules_follow_the_seed_tables() {
        let rules = query_channels_rules();
        let parse = |v: Value| Filter::parse(&v, Some(&rules));
        assert!(parse(json!({"type": "messaging", "members": {"$in": ["thierry"]}})).is_ok());
        assert!(parse(
            json!({"members": {"$eq": ["a", "b"]}, "last_message_at": {"$exists": true}})
        )
        .is_ok());
        assert!(parse(json!({"agent_id": "x", "status": {"$in": ["open", "new"]}})).is_ok());
        assert!(parse(json!({"frozen": {"$in": [true]}})).is_err());
        assert!(parse(json!({"updated_at": {"$exists": true}})).is_err());
        assert!(parse(json!({"created_at": {"$gt": "not a time"}})).is_err());
        assert!(parse(json!({"member_count": {"$gt": "5"}})).is_err());
        let f = parse(json!({"invite": "maybe"})).unwrap();
        assert!(check_filter_values(&f).is_err());
        let f = parse(json!({"$or": [{"invite": "pending"}, {"has_unread": true}]})).unwrap();
        assert!(check_filter_values(&f).is_ok());
        assert!(check_filter_values(&parse(json!({"has_unread": false})).unwrap()).is_err());

        let rules = query_members_rules();
        let parse = |v: Value| Filter::parse(&v, Some(&rules));
        assert!(parse(json!({"name": {"$autocomplete": "tomm"}})).is_ok());
        assert!(parse(json!({"user_id": {"$in": ["a", "b"]}, "is_moderator": true})).is_ok());
        assert!(
            parse(json!({"user.email": "awesome@getstream.io", "subscription": "gold_plan"}))
                .is_ok()
        );
        assert!(parse(json!({"channel_role": {"$in": ["channel_member"]}})).is_err());
        assert!(parse(json!({"created_at": {"$exists": true}})).is_err());
    }
}
