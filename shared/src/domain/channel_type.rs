//! Channel types: the per-type configuration behind `/channeltypes`, the five built-in types and
//! their defaults, the built-in slash commands, and the rules for creating and updating a type.

// Wire names follow stream-chat-js (`CreateChannelOptions`, `UpdateChannelTypeRequest`,
// `GetChannelTypeResponse`, `ChannelConfigWithInfo`). Defaults follow the seed's "Channel Types
// Fields" table; its only per-type difference is `url_enrichment`, off for `livestream`.

use crate::domain::clock::{format_time, parse_time};
use crate::domain::permissions::{
    self, Grants, Permission, PermissionError, DEFAULT_CHANNEL_SCOPE,
};
use crate::domain::{ApiError, ErrorCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Hard limit of channel types per app (seed: "applications have a hard limit of 50 channel types").
pub const MAX_CHANNEL_TYPES: usize = 50;
/// Upper bound of `max_message_length` (REST spec: `<=20000`).
pub const MAX_MESSAGE_LENGTH_LIMIT: i64 = 20_000;
/// Default `max_message_length` (seed table: 5,000).
pub const DEFAULT_MAX_MESSAGE_LENGTH: u32 = 5_000;
/// Smallest `partition_size` (seed: "The minimum partition size is 10").
pub const MIN_PARTITION_SIZE: i64 = 10;
/// Smallest `partition_ttl` (seed: "The minimum value is 1 minute").
pub const MIN_PARTITION_TTL_SECS: f64 = 60.0;
/// Longest channel type name. Stream does not document one; 64 matches the channel id limit.
pub const MAX_NAME_LEN: usize = 64;
/// `message_retention` value that keeps messages forever (the default).
pub const RETENTION_INFINITE: &str = "infinite";
/// The built-in channel types, in the order the seed lists them.
pub const BUILTIN_CHANNEL_TYPES: &[&str] =
    &["livestream", "messaging", "team", "gaming", "commerce"];
pub use super::command::{
    builtin_commands, is_builtin_command, legacy_builtin_commands, Command, COMMAND_SET_ALL,
    COMMAND_SET_FUN, COMMAND_SET_MODERATION,
};
/// `push_level` values (stream-chat-js `push_level`; `""` means unset).
pub const PUSH_LEVELS: &[&str] = &[
    "all",
    "all_mentions",
    "direct_mentions",
    "mentions",
    "none",
    "",
];

/// `automod`: "Disabled, simple or AI are valid options" (seed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Automod {
    #[serde(rename = "disabled")]
    Disabled,
    #[serde(rename = "simple")]
    Simple,
    #[serde(rename = "AI")]
    Ai,
}

/// The seed's table gives `simple` as the default (stream-chat-go and SDK fixtures show
/// `disabled` on real apps; flip here if black-box tests disagree).
pub const DEFAULT_AUTOMOD: Automod = Automod::Simple;

/// `automod_behavior`, `blocklist_behavior` and `blocklists[].behavior` (REST spec: flag, block;
/// stream-chat-js `AutomodBehavior` adds shadow_block).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModerationBehavior {
    Flag,
    Block,
    ShadowBlock,
}

/// One entry of `blocklists` (stream-chat-js `BlockListOptions`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlocklistOption {
    pub blocklist: String,
    pub behavior: ModerationBehavior,
}

/// `flag` / `block` score thresholds of one AI moderation label, each in 0..=1.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelThresholds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<f64>,
}

/// `automod_thresholds` (stream-chat-js `Thresholds`: explicit / spam / toxic).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explicit: Option<LabelThresholds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spam: Option<LabelThresholds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toxic: Option<LabelThresholds>,
}

/// What an app has defined beyond the built-ins, needed to validate `commands` and `grants`.
#[derive(Clone, Copy, Debug, Default)]
pub struct AppDefinitions<'a> {
    /// Custom commands (`POST /commands`).
    pub commands: &'a [Command],
    /// Custom permissions (`POST /permissions`).
    pub permissions: &'a [Permission],
}

/// A channel type and its configuration, serialized as stored and as `POST /channeltypes` and
/// `PUT /channeltypes/{name}` answer: `commands` as names (the Python SDK test expects
/// `commands == ["ban", "unban"]` back). `GET` / list responses and a channel's `config` carry
/// command objects instead: [`ChannelTypeConfig::to_response`], [`ChannelTypeConfig::to_channel_config`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelTypeConfig {
    #[serde(with = "wire_time")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "wire_time")]
    pub updated_at: DateTime<Utc>,
    pub name: String,
    pub typing_events: bool,
    pub read_events: bool,
    pub connect_events: bool,
    /// `message.delivered` tracking (seed: delivery status is off by default).
    pub delivery_events: bool,
    pub search: bool,
    pub reactions: bool,
    pub replies: bool,
    pub quotes: bool,
    pub mutes: bool,
    pub uploads: bool,
    pub url_enrichment: bool,
    pub custom_events: bool,
    pub push_notifications: bool,
    /// Unread reminders (also needs the app's `reminders_interval`).
    pub reminders: bool,
    pub mark_messages_pending: bool,
    pub polls: bool,
    pub shared_locations: bool,
    pub user_message_reminders: bool,
    pub count_messages: bool,
    pub skip_last_msg_update_for_system_msgs: bool,
    /// `"infinite"` or a whole number of days, as a string.
    pub message_retention: String,
    pub max_message_length: u32,
    pub automod: Automod,
    pub automod_behavior: ModerationBehavior,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automod_thresholds: Option<Thresholds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocklist: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocklist_behavior: Option<ModerationBehavior>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocklists: Vec<BlocklistOption>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_flag_reasons: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_level: Option<String>,
    /// Dynamic partitioning: users per partition; `None` disables it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_size: Option<u32>,
    /// Go-style duration (`24h`, `2h30m`) after which partitions are reshuffled; `None` disables it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_ttl: Option<String>,
    /// Enabled command names and set names (`all`, `fun_set`, `moderation_set`), as given.
    pub commands: Vec<String>,
    /// Legacy (permissions v1) policies, kept as given. Always present on the wire: the Python SDK
    /// test asserts `"permissions" in get_channel_type("team")`.
    pub permissions: Vec<Value>,
    /// Role -> permission ids of this type's scope (permissions v2).
    pub grants: Grants,
}

impl Default for ChannelTypeConfig {
    fn default() -> Self {
        ChannelTypeConfig::with_defaults("")
    }
}

impl ChannelTypeConfig {
    /// A type named `name` with the seed table's defaults, no commands and no grants.
    pub fn with_defaults(name: &str) -> Self {
        ChannelTypeConfig {
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
            name: name.to_string(),
            typing_events: true,
            read_events: true,
            connect_events: true,
            delivery_events: false,
            search: true,
            reactions: true,
            replies: true,
            quotes: true,
            mutes: true,
            uploads: true,
            url_enrichment: true,
            custom_events: true,
            push_notifications: true,
            reminders: false,
            mark_messages_pending: false,
            polls: false,
            shared_locations: false,
            user_message_reminders: false,
            count_messages: false,
            skip_last_msg_update_for_system_msgs: false,
            message_retention: RETENTION_INFINITE.to_string(),
            max_message_length: DEFAULT_MAX_MESSAGE_LENGTH,
            automod: DEFAULT_AUTOMOD,
            automod_behavior: ModerationBehavior::Flag,
            automod_thresholds: None,
            blocklist: None,
            blocklist_behavior: None,
            blocklists: Vec::new(),
            allowed_flag_reasons: None,
            push_level: None,
            partition_size: None,
            partition_ttl: None,
            commands: Vec::new(),
            permissions: Vec::new(),
            grants: Grants::new(),
        }
    }

    /// Stamp a change made at `now`.
    pub fn touch(&mut self, now: DateTime<Utc>) {
        self.updated_at = now;
    }

    /// Whether this is one of the five built-in types.
    pub fn is_builtin(&self) -> bool {
        is_builtin(&self.name)
    }

    /// Partition TTL in seconds, when partitioning by time is on.
    pub fn partition_ttl_secs(&self) -> Option<f64> {
        self.partition_ttl.as_deref().and_then(parse_duration_secs)
    }

    /// Message retention in days; `None` for `infinite`.
    pub fn retention_days(&self) -> Option<u32> {
        self.message_retention.parse().ok()
    }

    /// The enabled commands as objects: set names expanded (`all` = every current built-in,
    /// `fun_set` / `moderation_set` = the built-ins and custom commands of that set), custom
    /// commands looked up by name, duplicates dropped, order kept. Names that no longer exist
    /// (a deleted custom command) are skipped.
    pub fn command_objects(&self, custom: &[Command]) -> Vec<Command> {
        let builtins = builtin_commands();
        let legacy = legacy_builtin_commands();
        let mut out: Vec<Command> = Vec::new();
        let push = |c: &Command, out: &mut Vec<Command>| {
            if !out.iter().any(|o| o.name == c.name) {
                out.push(c.clone());
            }
        };
        for name in &self.commands {
            match name.as_str() {
                COMMAND_SET_ALL => builtins.iter().for_each(|c| push(c, &mut out)),
                COMMAND_SET_FUN | COMMAND_SET_MODERATION => builtins
                    .iter()
                    .chain(custom)
                    .filter(|c| &c.set == name)
                    .for_each(|c| push(c, &mut out)),
                other => {
                    if let Some(c) = custom
                        .iter()
                        .chain(&builtins)
                        .chain(&legacy)
                        .find(|c| c.name == other)
                    {
                        push(c, &mut out)
                    }
                }
            }
        }
        out
    }

    /// Whether slash command `name` is enabled on this type.
    pub fn has_command(&self, name: &str, custom: &[Command]) -> bool {
        self.command_objects(custom).iter().any(|c| c.name == name)
    }

    /// The `GET /channeltypes/{name}` / list-entry shape: every field, `commands` as objects.
    pub fn to_response(&self, custom: &[Command]) -> Map<String, Value> {
        let mut doc = match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        doc.insert(
            "commands".into(),
            serde_json::to_value(self.command_objects(custom)).unwrap_or(Value::Array(vec![])),
        );
        doc
    }

    /// The `config` object inside a channel response (stream-chat-js `ChannelConfigWithInfo`):
    /// like [`Self::to_response`] without `grants` and `permissions`.
    pub fn to_channel_config(&self, custom: &[Command]) -> Map<String, Value> {
        let mut doc = self.to_response(custom);
        doc.shift_remove("grants");
        doc.shift_remove("permissions");
        doc
    }

    /// Check every rule on a whole configuration (also used after create and update).
    pub fn validate(&self, defs: &AppDefinitions) -> Result<(), ChannelTypeError> {
        validate_name(&self.name)?;
        if self.max_message_length < 1
            || i64::from(self.max_message_length) > MAX_MESSAGE_LENGTH_LIMIT
        {
            return Err(ChannelTypeError::MaxMessageLength(i64::from(
                self.max_message_length,
            )));
        }
        if let Some(size) = self.partition_size {
            if i64::from(size) < MIN_PARTITION_SIZE {
                return Err(ChannelTypeError::PartitionSize(i64::from(size)));
            }
            return Err(ChannelTypeError::PartitioningUnsupported("partition_size"));
        }
        if let Some(ttl) = &self.partition_ttl {
            match parse_duration_secs(ttl) {
                Some(secs) if secs >= MIN_PARTITION_TTL_SECS => {}
                _ => return Err(ChannelTypeError::PartitionTtl(ttl.clone())),
            }
            return Err(ChannelTypeError::PartitioningUnsupported("partition_ttl"));
        }
        validate_retention(&self.message_retention)?;
        if let Some(level) = &self.push_level {
            if !PUSH_LEVELS.contains(&level.as_str()) {
                return Err(ChannelTypeError::PushLevel(level.clone()));
            }
        }
        if let Some(t) = &self.automod_thresholds {
            for (label, lt) in [
                ("explicit", &t.explicit),
                ("spam", &t.spam),
                ("toxic", &t.toxic),
            ] {
                let Some(lt) = lt else { continue };
                for (kind, v) in [("flag", lt.flag), ("block", lt.block)] {
                    if let Some(v) = v {
                        if !(0.0..=1.0).contains(&v) {
                            return Err(ChannelTypeError::Thresholds(format!(
                                "{label}.{kind} must be between 0 and 1, got {v}"
                            )));
                        }
                    }
                }
            }
        }
        if self.blocklists.iter().any(|b| b.blocklist.is_empty())
            || self.blocklist.as_deref() == Some("")
        {
            return Err(ChannelTypeError::Blocklists(
                "blocklist names must not be empty".into(),
            ));
        }
        for name in &self.commands {
            if !command_exists(name, defs.commands) {
                return Err(ChannelTypeError::UnknownCommand(name.clone()));
            }
        }
        Ok(())
    }
}

/// Whether `name` is one of the five built-in types.
pub fn is_builtin(name: &str) -> bool {
    BUILTIN_CHANNEL_TYPES.contains(&name)
}

/// The five built-in channel types with their default settings: the seed table's defaults,
/// `url_enrichment` off for `livestream`, every current built-in command (`"all"`), and the
/// default grant table of their scope. Timestamps are the Unix epoch: stamp them when seeding.
pub fn builtin_channel_types() -> Vec<ChannelTypeConfig> {
    BUILTIN_CHANNEL_TYPES
        .iter()
        .map(|&name| {
            let mut t = ChannelTypeConfig::with_defaults(name);
            t.commands = vec![COMMAND_SET_ALL.to_string()];
            t.grants = permissions::default_grants(name);
            if name == "livestream" {
                // Seed: "disabled by default for the livestream channel type".
                t.url_enrichment = false;
            }
            t
        })
        .collect()
}

/// A built-in type's default configuration by name.
pub fn builtin_channel_type(name: &str) -> Option<ChannelTypeConfig> {
    builtin_channel_types().into_iter().find(|t| t.name == name)
}

/// Refuse a new type when the app already has [`MAX_CHANNEL_TYPES`].
pub fn check_capacity(existing: usize) -> Result<(), ChannelTypeError> {
    if existing >= MAX_CHANNEL_TYPES {
        Err(ChannelTypeError::TooMany)
    } else {
        Ok(())
    }
}

/// Build a new type from a `POST /channeltypes` body at `now`, with built-in commands and
/// permissions only. See [`create_with`].
pub fn create(
    body: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<ChannelTypeConfig, ChannelTypeError> {
    create_with(body, now, &AppDefinitions::default())
}

/// Build a new type from a `POST /channeltypes` body: `name` is required; every field not given
/// (or given as `null`) takes the seed table's default; grants start from the `messaging` scope
/// (seed: "If not provided, the permission settings will default to the ones from the built-in
/// messaging type") and given `grants` replace those roles. Whether the name is already taken and
/// [`check_capacity`] are the caller's (they need the store).
pub fn create_with(
    body: &Map<String, Value>,
    now: DateTime<Utc>,
    defs: &AppDefinitions,
) -> Result<ChannelTypeConfig, ChannelTypeError> {
    let name = match body.get("name") {
        None | Some(Value::Null) => return Err(ChannelTypeError::MissingName),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(ChannelTypeError::WrongType {
                field: "name".into(),
                expected: "a string",
            })
        }
    };
    validate_name(&name)?;
    let mut config = ChannelTypeConfig::with_defaults(&name);
    config.grants = permissions::default_grants(DEFAULT_CHANNEL_SCOPE);
    config.created_at = now;
    config.updated_at = now;
    for (key, value) in body {
        if key == "name" || value.is_null() {
            continue;
        }
        apply_field(&mut config, key, value, defs)?;
    }
    config.validate(defs)?;
    Ok(config)
}

/// Apply a `PUT /channeltypes/{name}` body with built-in commands and permissions only. See
/// [`apply_update_with`].
pub fn apply_update(
    config: &mut ChannelTypeConfig,
    body: &Map<String, Value>,
) -> Result<(), ChannelTypeError> {
    apply_update_with(config, body, &AppDefinitions::default())
}

/// Apply a `PUT /channeltypes/{name}` body. Only the fields given change (seed: "fields that are
/// not provided to this API will remain unchanged"); the update is all or nothing.
/// - `null` disables `partition_size`, `partition_ttl`, `blocklist`, `blocklist_behavior`,
///   `automod_thresholds`, `allowed_flag_reasons`, `push_level`, and empties `blocklists`;
///   `grants: null` resets the grants to the type's default table; on any other field `null` is
///   ignored (the SDKs send `null` for "not given").
/// - `grants` replaces the lists of the roles it names and keeps the other roles.
/// - `commands` replaces the whole list.
/// - `name` (the path decides it) and unknown keys are ignored.
///
/// The caller stamps `updated_at` ([`ChannelTypeConfig::touch`]).
pub fn apply_update_with(
    config: &mut ChannelTypeConfig,
    body: &Map<String, Value>,
    defs: &AppDefinitions,
) -> Result<(), ChannelTypeError> {
    let mut next = config.clone();
    for (key, value) in body {
        if key == "name" {
            continue;
        }
        if value.is_null() {
            clear_field(&mut next, key);
            continue;
        }
        apply_field(&mut next, key, value, defs)?;
    }
    next.validate(defs)?;
    *config = next;
    Ok(())
}

fn bool_field<'a>(c: &'a mut ChannelTypeConfig, key: &str) -> Option<&'a mut bool> {
    Some(match key {
        "typing_events" => &mut c.typing_events,
        "read_events" => &mut c.read_events,
        "connect_events" => &mut c.connect_events,
        "delivery_events" => &mut c.delivery_events,
        "search" => &mut c.search,
        "reactions" => &mut c.reactions,
        "replies" => &mut c.replies,
        "quotes" => &mut c.quotes,
        "mutes" => &mut c.mutes,
        "uploads" => &mut c.uploads,
        "url_enrichment" => &mut c.url_enrichment,
        "custom_events" => &mut c.custom_events,
        "push_notifications" => &mut c.push_notifications,
        "reminders" => &mut c.reminders,
        "mark_messages_pending" => &mut c.mark_messages_pending,
        "polls" => &mut c.polls,
        "shared_locations" => &mut c.shared_locations,
        "user_message_reminders" => &mut c.user_message_reminders,
        "count_messages" => &mut c.count_messages,
        "skip_last_msg_update_for_system_msgs" => &mut c.skip_last_msg_update_for_system_msgs,
        _ => return None,
    })
}

/// What `null` means for `key` in an update.
fn clear_field(c: &mut ChannelTypeConfig, key: &str) {
    match key {
        "partition_size" => c.partition_size = None,
        "partition_ttl" => c.partition_ttl = None,
        "blocklist" => c.blocklist = None,
        "blocklist_behavior" => c.blocklist_behavior = None,
        "blocklists" => c.blocklists.clear(),
        "automod_thresholds" => c.automod_thresholds = None,
        "allowed_flag_reasons" => c.allowed_flag_reasons = None,
        "push_level" => c.push_level = None,
        "grants" => c.grants = permissions::default_grants(&c.name),
        _ => {}
    }
}

fn wrong(field: &str, expected: &'static str) -> ChannelTypeError {
    ChannelTypeError::WrongType {
        field: field.to_string(),
        expected,
    }
}

/// An integer, also from a float with no fraction (`140.0`).
fn as_int(field: &str, v: &Value) -> Result<i64, ChannelTypeError> {
    v.as_i64()
        .or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                .map(|f| f as i64)
        })
        .ok_or_else(|| wrong(field, "an integer"))
}

fn as_string(field: &str, v: &Value) -> Result<String, ChannelTypeError> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| wrong(field, "a string"))
}

fn as_behavior(field: &str, v: &Value) -> Result<ModerationBehavior, ChannelTypeError> {
    serde_json::from_value(v.clone()).map_err(|_| ChannelTypeError::Behavior {
        field: field.to_string(),
        value: display_value(v),
    })
}

fn display_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parse one non-null body field into `c` (types and allowed values; ranges are in `validate`).
fn apply_field(
    c: &mut ChannelTypeConfig,
    key: &str,
    v: &Value,
    defs: &AppDefinitions,
) -> Result<(), ChannelTypeError> {
    if let Some(slot) = bool_field(c, key) {
        *slot = v.as_bool().ok_or_else(|| wrong(key, "a boolean"))?;
        return Ok(());
    }
    match key {
        "max_message_length" => {
            let n = as_int(key, v)?;
            c.max_message_length = u32::try_from(n)
                .ok()
                .filter(|n| *n >= 1)
                .ok_or(ChannelTypeError::MaxMessageLength(n))?;
        }
        "message_retention" => {
            c.message_retention = match v {
                Value::String(s) => s.clone(),
                // Lenient: a bare number of days.
                Value::Number(_) => as_int(key, v)?.to_string(),
                _ => return Err(wrong(key, "\"infinite\" or a number of days as a string")),
            };
        }
        "automod" => {
            c.automod = serde_json::from_value(v.clone())
                .map_err(|_| ChannelTypeError::Automod(display_value(v)))?;
        }
        "automod_behavior" => c.automod_behavior = as_behavior(key, v)?,
        "blocklist_behavior" => c.blocklist_behavior = Some(as_behavior(key, v)?),
        "blocklist" => c.blocklist = Some(as_string(key, v)?),
        "blocklists" => {
            c.blocklists = serde_json::from_value(v.clone()).map_err(|_| {
                ChannelTypeError::Blocklists(
                    "blocklists must be a list of {\"blocklist\": name, \"behavior\": flag|block|shadow_block}".into(),
                )
            })?;
        }
        "automod_thresholds" => {
            let t: Thresholds = serde_json::from_value(v.clone()).map_err(|_| {
                ChannelTypeError::Thresholds(
                    "expected {explicit|spam|toxic: {flag: number, block: number}}".into(),
                )
            })?;
            c.automod_thresholds = Some(t);
        }
        "allowed_flag_reasons" => {
            let reasons: Vec<String> =
                serde_json::from_value(v.clone()).map_err(|_| wrong(key, "a list of strings"))?;
            c.allowed_flag_reasons = Some(reasons);
        }
        "push_level" => c.push_level = Some(as_string(key, v)?),
        "partition_size" => {
            let n = as_int(key, v)?;
            c.partition_size = Some(
                u32::try_from(n)
                    .ok()
                    .filter(|n| i64::from(*n) >= MIN_PARTITION_SIZE)
                    .ok_or(ChannelTypeError::PartitionSize(n))?,
            );
        }
        "partition_ttl" => {
            let s = as_string(key, v)?;
            // An empty string switches it off like null.
            c.partition_ttl = if s.is_empty() { None } else { Some(s) };
        }
        "commands" => {
            let names: Vec<String> = serde_json::from_value(v.clone())
                .map_err(|_| wrong(key, "a list of command names"))?;
            let mut list: Vec<String> = Vec::with_capacity(names.len());
            for name in names {
                if !command_exists(&name, defs.commands) {
                    return Err(ChannelTypeError::UnknownCommand(name));
                }
                if !list.contains(&name) {
                    list.push(name);
                }
            }
            c.commands = list;
        }
        "grants" => {
            let update: Grants = serde_json::from_value(v.clone()).map_err(|_| {
                wrong(
                    key,
                    "an object mapping role names to lists of permission ids",
                )
            })?;
            c.grants = permissions::apply_grants_update_with(&c.grants, &update, defs.permissions)?;
        }
        "permissions" => c.permissions = parse_policies(v)?,
        // Unknown keys (e.g. `NameFromPath` of the REST spec, `client_id`) are ignored like
        // Stream's JSON decoding does.
        _ => {}
    }
    Ok(())
}

/// Legacy permission policies (stream-chat-js `PolicyRequest`): objects with `name`, `action`
/// (`Allow` / `Deny`), `resources`, `roles`, `owner`, `priority`. Stored as given.
fn parse_policies(v: &Value) -> Result<Vec<Value>, ChannelTypeError> {
    let Value::Array(items) = v else {
        return Err(ChannelTypeError::Permissions(
            "permissions must be a list of policies".into(),
        ));
    };
    for (i, p) in items.iter().enumerate() {
        let Value::Object(p) = p else {
            return Err(ChannelTypeError::Permissions(format!(
                "permissions[{i}] must be an object"
            )));
        };
        if !matches!(p.get("name"), Some(Value::String(s)) if !s.is_empty()) {
            return Err(ChannelTypeError::Permissions(format!(
                "permissions[{i}].name is required"
            )));
        }
        match p.get("action") {
            Some(Value::String(a)) if a == "Allow" || a == "Deny" => {}
            _ => {
                return Err(ChannelTypeError::Permissions(format!(
                    "permissions[{i}].action must be Allow or Deny"
                )))
            }
        }
        for list in ["resources", "roles"] {
            match p.get(list) {
                None | Some(Value::Null) => {}
                Some(Value::Array(xs)) if xs.iter().all(Value::is_string) => {}
                _ => {
                    return Err(ChannelTypeError::Permissions(format!(
                        "permissions[{i}].{list} must be a list of strings"
                    )))
                }
            }
        }
        if !matches!(
            p.get("priority"),
            None | Some(Value::Null) | Some(Value::Number(_))
        ) {
            return Err(ChannelTypeError::Permissions(format!(
                "permissions[{i}].priority must be a number"
            )));
        }
        if !matches!(
            p.get("owner"),
            None | Some(Value::Null) | Some(Value::Bool(_))
        ) {
            return Err(ChannelTypeError::Permissions(format!(
                "permissions[{i}].owner must be a boolean"
            )));
        }
    }
    Ok(items.clone())
}

/// A name usable in `commands`: a set name, a built-in (current or legacy) or a custom command.
fn command_exists(name: &str, custom: &[Command]) -> bool {
    matches!(
        name,
        COMMAND_SET_ALL | COMMAND_SET_FUN | COMMAND_SET_MODERATION
    ) || is_builtin_command(name)
        || custom.iter().any(|c| c.name == name)
}

/// Channel type names: 1 to [`MAX_NAME_LEN`] ASCII letters, digits, `_` or `-` (a type is the part
/// of a cid before `:`, so it can hold neither `:` nor anything a path segment would mangle).
pub fn validate_name(name: &str) -> Result<(), ChannelTypeError> {
    if name.is_empty() {
        return Err(ChannelTypeError::MissingName);
    }
    if name.len() > MAX_NAME_LEN
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ChannelTypeError::InvalidName(name.to_string()));
    }
    Ok(())
}

fn validate_retention(value: &str) -> Result<(), ChannelTypeError> {
    if value == RETENTION_INFINITE {
        return Ok(());
    }
    match value.parse::<u32>() {
        Ok(days) if days >= 1 && value.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(ChannelTypeError::MessageRetention(value.to_string())),
    }
}

/// Seconds in a Go-style duration made of `<number><unit>` parts with units `h`, `m`, `s`
/// (`24h`, `2h30m`, `1.5h`, `90s`). `None` when malformed.
pub fn parse_duration_secs(s: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit = match rest.bytes().next()? {
            b'h' => 3600.0,
            b'm' => 60.0,
            b's' => 1.0,
            _ => return None,
        };
        rest = &rest[1..];
        total += n * unit;
    }
    Some(total)
}

/// Everything that can be wrong with a channel type request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChannelTypeError {
    #[error("channel type name is required")]
    MissingName,
    #[error("channel type name {0:?} is invalid: use 1 to 64 letters, digits, '_' or '-'")]
    InvalidName(String),
    #[error("{field} must be {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
    #[error("max_message_length must be between 1 and 20000, got {0}")]
    MaxMessageLength(i64),
    #[error(
        "partition_size must be at least 10, or null to disable dynamic partitioning; got {0}"
    )]
    PartitionSize(i64),
    #[error("partition_ttl {0:?} must be a duration of at least 1m made of h, m and s parts (e.g. 24h, 2h30m), or null")]
    PartitionTtl(String),
    /// Dynamic partitioning is not offered: every watcher receives every message.
    #[error("{0}: dynamic partitioning is not supported (every watcher of a channel receives every message); leave it unset or null")]
    PartitioningUnsupported(&'static str),
    #[error("automod must be one of disabled, simple, AI; got {0:?}")]
    Automod(String),
    #[error("{field} must be one of flag, block, shadow_block; got {value:?}")]
    Behavior { field: String, value: String },
    #[error(
        "message_retention must be \"infinite\" or a whole number of days (e.g. \"30\"); got {0:?}"
    )]
    MessageRetention(String),
    #[error(
        "push_level must be one of all, all_mentions, direct_mentions, mentions, none; got {0:?}"
    )]
    PushLevel(String),
    #[error("automod_thresholds: {0}")]
    Thresholds(String),
    #[error("{0}")]
    Blocklists(String),
    #[error("command {0:?} does not exist (use all, fun_set, moderation_set, a built-in or a custom command name)")]
    UnknownCommand(String),
    #[error("{0}")]
    Permissions(String),
    #[error("grants: {0}")]
    Grants(#[from] PermissionError),
    #[error("channel type {0:?} does not exist")]
    NotFound(String),
    #[error("channel type {0:?} already exists")]
    AlreadyExists(String),
    #[error("an app can have at most 50 channel types")]
    TooMany,
    #[error("channel type {0:?} cannot be deleted while channels of this type exist")]
    InUse(String),
}

impl ChannelTypeError {
    /// The request field at fault, for `exception_fields`.
    pub fn field(&self) -> Option<&str> {
        Some(match self {
            ChannelTypeError::MissingName | ChannelTypeError::InvalidName(_) => "name",
            ChannelTypeError::WrongType { field, .. }
            | ChannelTypeError::Behavior { field, .. } => field,
            ChannelTypeError::MaxMessageLength(_) => "max_message_length",
            ChannelTypeError::PartitionSize(_) => "partition_size",
            ChannelTypeError::PartitionTtl(_) => "partition_ttl",
            ChannelTypeError::PartitioningUnsupported(field) => field,
            ChannelTypeError::Automod(_) => "automod",
            ChannelTypeError::MessageRetention(_) => "message_retention",
            ChannelTypeError::PushLevel(_) => "push_level",
            ChannelTypeError::Thresholds(_) => "automod_thresholds",
            ChannelTypeError::Blocklists(_) => "blocklists",
            ChannelTypeError::UnknownCommand(_) => "commands",
            ChannelTypeError::Permissions(_) => "permissions",
            ChannelTypeError::Grants(_) => "grants",
            _ => return None,
        })
    }
}

impl From<ChannelTypeError> for ApiError {
    fn from(e: ChannelTypeError) -> Self {
        let code = match e {
            ChannelTypeError::NotFound(_) => ErrorCode::DoesNotExist,
            _ => ErrorCode::Input,
        };
        let message = e.to_string();
        let fields = e
            .field()
            .map(|f| vec![(f.to_string(), message.clone())])
            .unwrap_or_default();
        ApiError {
            code,
            message,
            fields,
        }
    }
}

/// `created_at` / `updated_at` in Stream's timestamp format.
mod wire_time {
    use super::{format_time, parse_time};
    use chrono::{DateTime, Utc};
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_time(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        parse_time(&s).ok_or_else(|| D::Error::custom(format!("invalid timestamp {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    fn now() -> DateTime<Utc> {
        parse_time("2024-05-06T07:08:09Z").unwrap()
    }

    fn messaging() -> ChannelTypeConfig {
        builtin_channel_type("messaging").unwrap()
    }

    #[test]
    fn builtins_have_the_seed_defaults() {
        let types = builtin_channel_types();
        let names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["livestream", "messaging", "team", "gaming", "commerce"]
        );
        for t in &types {
            assert!(
                t.typing_events && t.read_events && t.connect_events && t.search && t.reactions
            );
            assert!(
                t.replies
                    && t.quotes
                    && t.mutes
                    && t.uploads
                    && t.push_notifications
                    && t.custom_events
            );
            assert!(
                !t.reminders
                    && !t.count_messages
                    && !t.user_message_reminders
                    && !t.skip_last_msg_update_for_system_msgs
            );
            assert_eq!(
                (t.max_message_length, t.message_retention.as_str()),
                (5000, "infinite")
            );
            assert_eq!(
                (t.automod, t.automod_behavior),
                (Automod::Simple, ModerationBehavior::Flag)
            );
            assert_eq!(t.partition_size, None);
            assert_eq!(t.commands, ["all"]);
            assert!(!t.grants.is_empty(), "{} has its default grants", t.name);
            assert_eq!(t.url_enrichment, t.name != "livestream");
            t.validate(&AppDefinitions::default()).unwrap();
        }
        assert!(is_builtin("gaming") && !is_builtin("public"));
    }

    #[test]
    fn all_expands_to_the_builtin_command_objects() {
        let cmds = messaging().command_objects(&[]);
        let names: Vec<&str> = cmds.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["giphy", "ban", "unban", "mute", "unmute"]);
        assert_eq!(
            serde_json::to_value(&cmds[0]).unwrap(),
            json!({"name": "giphy", "description": "Post a random gif to the channel", "args": "[text]", "set": "fun_set"})
        );
        let mut t = messaging();
        t.commands = vec!["moderation_set".into(), "ticket".into(), "ban".into()];
        let custom = [Command::builtin("ticket", "Open a ticket", "[text]", "")];
        let names: Vec<String> = t
            .command_objects(&custom)
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["ban", "unban", "mute", "unmute", "ticket"]);
        assert!(t.has_command("ticket", &custom) && !t.has_command("giphy", &custom));
    }

    #[test]
    fn wire_shapes_name_every_field() {
        let t = messaging();
        let stored = serde_json::to_value(&t).unwrap();
        assert_eq!(
            stored["commands"],
            json!(["all"]),
            "create/update responses carry names"
        );
        assert_eq!(stored["created_at"], json!("1970-01-01T00:00:00.000000Z"));
        assert_eq!(
            stored["permissions"],
            json!([]),
            "the Python SDK test needs the key"
        );
        assert!(stored.get("partition_size").is_none() && stored.get("blocklist").is_none());
        let back: ChannelTypeConfig = serde_json::from_value(stored).unwrap();
        assert_eq!(back, t, "round-trips through storage");

        let get = t.to_response(&[]);
        assert_eq!(
            get["commands"][1]["name"],
            json!("ban"),
            "GET carries command objects"
        );
        assert!(get.contains_key("grants") && get.contains_key("permissions"));
        let cfg = t.to_channel_config(&[]);
        assert!(!cfg.contains_key("grants") && !cfg.contains_key("permissions"));
        assert_eq!(cfg["max_message_length"], json!(5000));
    }

    #[test]
    fn create_starts_from_defaults_and_messaging_grants() {
        let t = create(
            &body(
                json!({"name": "public", "mutes": false, "reactions": false, "commands": ["all"]}),
            ),
            now(),
        )
        .unwrap();
        assert_eq!(t.name, "public");
        assert!(!t.mutes && !t.reactions && t.replies && t.url_enrichment);
        assert_eq!(t.grants, permissions::default_grants("messaging"));
        assert_eq!((t.created_at, t.updated_at), (now(), now()));
        let bare = create(
            &body(json!({"name": "bare", "partition_size": null})),
            now(),
        )
        .unwrap();
        assert!(
            bare.commands.is_empty(),
            "seed table: commands default to []"
        );
        assert_eq!(bare.partition_size, None);

        let with_grants = create(
            &body(json!({"name": "g", "grants": {"user": ["read-channel"]}})),
            now(),
        )
        .unwrap();
        assert_eq!(with_grants.grants["user"], ["read-channel"]);
        assert_eq!(
            with_grants.grants["admin"],
            permissions::default_grants("messaging")["admin"],
            "other roles keep defaults"
        );
    }

    #[test]
    fn create_rejects_bad_names() {
        let err = |v: Value| create(&body(v), now()).unwrap_err();
        assert_eq!(err(json!({"mutes": true})), ChannelTypeError::MissingName);
        assert_eq!(err(json!({"name": ""})), ChannelTypeError::MissingName);
        assert_eq!(err(json!({"name": 5})).field(), Some("name"));
        assert!(matches!(
            err(json!({"name": "a:b"})),
            ChannelTypeError::InvalidName(_)
        ));
        assert!(matches!(
            err(json!({"name": "has space"})),
            ChannelTypeError::InvalidName(_)
        ));
        assert!(matches!(
            err(json!({"name": "x".repeat(65)})),
            ChannelTypeError::InvalidName(_)
        ));
        assert!(create(&body(json!({"name": "Live_Events-2"})), now()).is_ok());
    }

    #[test]
    fn validation_failures_name_the_field() {
        let cases = [
            (json!({"max_message_length": 20001}), "max_message_length"),
            (json!({"max_message_length": 0}), "max_message_length"),
            (json!({"max_message_length": "140"}), "max_message_length"),
            (json!({"partition_size": 9}), "partition_size"),
            (json!({"partition_size": -1}), "partition_size"),
            (json!({"partition_ttl": "30s"}), "partition_ttl"),
            (json!({"partition_ttl": "1d"}), "partition_ttl"),
            (json!({"partition_ttl": "h"}), "partition_ttl"),
            (json!({"automod": "strict"}), "automod"),
            (json!({"automod": "ai"}), "automod"),
            (json!({"automod_behavior": "ban"}), "automod_behavior"),
            (json!({"blocklist_behavior": "warn"}), "blocklist_behavior"),
            (
                json!({"blocklists": [{"blocklist": "x", "behavior": "nope"}]}),
                "blocklists",
            ),
            (json!({"message_retention": "forever"}), "message_retention"),
            (json!({"message_retention": "0"}), "message_retention"),
            (json!({"message_retention": "+5"}), "message_retention"),
            (json!({"commands": ["giphy", "teleport"]}), "commands"),
            (json!({"commands": "giphy"}), "commands"),
            (json!({"typing_events": "yes"}), "typing_events"),
            (json!({"push_level": "loud"}), "push_level"),
            (
                json!({"automod_thresholds": {"toxic": {"flag": 2}}}),
                "automod_thresholds",
            ),
            (
                json!({"automod_thresholds": {"rude": {"flag": 0.5}}}),
                "automod_thresholds",
            ),
            (
                json!({"grants": {"user": ["no-such-permission"]}}),
                "grants",
            ),
            (
                json!({"permissions": [{"name": "p", "action": "Maybe"}]}),
                "permissions",
            ),
        ];
        for (update, field) in cases {
            let mut t = messaging();
            let err = apply_update(&mut t, &body(update.clone())).unwrap_err();
            assert_eq!(err.field(), Some(field), "{update} -> {err}");
            assert_eq!(t, messaging(), "a failed update changes nothing: {update}");
            let api: ApiError = err.into();
            assert_eq!((api.code, api.fields.len()), (ErrorCode::Input, 1));
        }
        let mut t = messaging();
        let err = apply_update(
            &mut t,
            &body(json!({"reactions": false, "max_message_length": 99999})),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "max_message_length must be between 1 and 20000, got 99999"
        );
        assert!(t.reactions, "nothing applied when one field fails");
    }

    #[test]
    fn update_changes_only_given_fields() {
        let mut t = messaging();
        apply_update(&mut t, &body(json!({"replies": false, "commands": ["ban", "unban"], "automod": "disabled", "max_message_length": 140}))).unwrap();
        let mut expected = messaging();
        expected.replies = false;
        expected.commands = vec!["ban".into(), "unban".into()];
        expected.automod = Automod::Disabled;
        expected.max_message_length = 140;
        assert_eq!(t, expected);
        assert_eq!(
            serde_json::to_value(&t).unwrap()["commands"],
            json!(["ban", "unban"])
        );

        apply_update(&mut t, &body(json!({"typing_events": null, "name": "renamed", "NameFromPath": "x", "blocklist": "profanity_en_2020_v1"}))).unwrap();
        assert!(t.typing_events, "null leaves plain fields alone");
        assert_eq!(t.name, "messaging", "the path names the type");
        assert_eq!(t.blocklist.as_deref(), Some("profanity_en_2020_v1"));
        apply_update(&mut t, &body(json!({"blocklist": null}))).unwrap();
        assert_eq!(t.blocklist, None);
    }

    #[test]
    fn partitioning_is_refused_and_null_accepted() {
        let mut t = ChannelTypeConfig::with_defaults("example");
        let refused = apply_update(&mut t, &body(json!({"partition_size": 100})));
        assert_eq!(
            refused.map_err(|e| e.field().map(str::to_string)),
            Err(Some("partition_size".to_string()))
        );
        let refused = apply_update(&mut t, &body(json!({"partition_ttl": "2h30m"})));
        assert_eq!(
            refused.map_err(|e| e.field().map(str::to_string)),
            Err(Some("partition_ttl".to_string()))
        );
        apply_update(
            &mut t,
            &body(json!({"partition_size": null, "partition_ttl": null})),
        )
        .unwrap();
        assert_eq!((t.partition_size, t.partition_ttl.as_deref()), (None, None));
        assert!(serde_json::to_value(&t)
            .unwrap()
            .get("partition_size")
            .is_none());
    }

    #[test]
    fn grants_update_replaces_named_roles_and_null_resets() {
        let mut t = messaging();
        apply_update(
            &mut t,
            &body(json!({"grants": {"user": ["read-channel"], "guest": []}})),
        )
        .unwrap();
        assert_eq!(t.grants["user"], ["read-channel"]);
        assert!(t.grants["guest"].is_empty());
        assert_eq!(t.grants["admin"], messaging().grants["admin"]);
        apply_update(&mut t, &body(json!({"grants": null}))).unwrap();
        assert_eq!(t.grants, messaging().grants);
    }

    #[test]
    fn custom_commands_and_legacy_names_are_accepted() {
        let custom = [Command::builtin("ticket", "Open a ticket", "[text]", "")];
        let defs = AppDefinitions {
            commands: &custom,
            permissions: &[],
        };
        let mut t = messaging();
        apply_update_with(
            &mut t,
            &body(json!({"commands": ["all", "ticket", "flag", "ticket"]})),
            &defs,
        )
        .unwrap();
        assert_eq!(
            t.commands,
            ["all", "ticket", "flag"],
            "duplicates dropped, order kept"
        );
        assert!(
            apply_update(&mut t, &body(json!({"commands": ["ticket"]}))).is_err(),
            "unknown without the app's commands"
        );
    }

    #[test]
    fn retention_thresholds_and_policies_round_trip() {
        let mut t = messaging();
        apply_update(
            &mut t,
            &body(json!({
                "message_retention": "30",
                "automod_thresholds": {"toxic": {"flag": 0.5, "block": 0.9}},
                "blocklists": [{"blocklist": "profanity_en_2020_v1", "behavior": "block"}],
                "permissions": [{"name": "Allow all", "action": "Allow", "resources": ["*"], "roles": ["*"], "owner": false, "priority": 100}],
                "push_level": "mentions",
                "allowed_flag_reasons": ["spam"]
            })),
        )
        .unwrap();
        assert_eq!(t.retention_days(), Some(30));
        let wire = serde_json::to_value(&t).unwrap();
        assert_eq!(
            wire["automod_thresholds"],
            json!({"toxic": {"flag": 0.5, "block": 0.9}})
        );
        assert_eq!(
            wire["blocklists"],
            json!([{"blocklist": "profanity_en_2020_v1", "behavior": "block"}])
        );
        assert_eq!(wire["permissions"][0]["priority"], json!(100));
        assert_eq!(
            serde_json::from_value::<ChannelTypeConfig>(wire).unwrap(),
            t
        );
        apply_update(&mut t, &body(json!({"message_retention": 7}))).unwrap();
        assert_eq!(t.message_retention, "7");
    }

    #[test]
    fn capacity_and_lookup_errors_map_to_stream_codes() {
        assert!(check_capacity(MAX_CHANNEL_TYPES - 1).is_ok());
        assert_eq!(
            check_capacity(MAX_CHANNEL_TYPES),
            Err(ChannelTypeError::TooMany)
        );
        let api: ApiError = ChannelTypeError::NotFound("nope".into()).into();
        assert_eq!((api.code, api.status()), (ErrorCode::DoesNotExist, 404));
        let api: ApiError = ChannelTypeError::TooMany.into();
        assert_eq!(
            (api.code, api.status(), api.fields.len()),
            (ErrorCode::Input, 400, 0)
        );
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration_secs("24h"), Some(86400.0));
        assert_eq!(parse_duration_secs("1h0m30s"), Some(3630.0));
        assert_eq!(parse_duration_secs("1.5h"), Some(5400.0));
        for bad in ["", "10", "5x", "h1", "1h-"] {
            assert_eq!(parse_duration_secs(bad), None, "{bad}");
        }
    }
}
