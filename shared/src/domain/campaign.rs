//! Campaigns and segments (seed "Campaign API"): the records, the rules on their fields, their
//! wire form, and the `{{ … }}` rendering of a campaign's message and channel templates.

use crate::domain::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// At most this many segments per campaign, user ids per campaign, targets per add call and
/// per delete call (Stream's limits).
pub const MAX_SEGMENT_IDS: usize = 25;
pub const MAX_USER_IDS: usize = 10_000;
pub const MAX_ADD_TARGETS: usize = 10_000;
pub const MAX_DELETE_TARGETS: usize = 100;
/// Page sizes: segment targets, segments and campaigns, a campaign's users.
pub const MAX_TARGETS_PAGE: usize = 10_000;
pub const MAX_QUERY_PAGE: usize = 100;
pub const MAX_USERS_PAGE: usize = 1_000;
const MAX_ID_LEN: usize = 255;
const MAX_NAME_LEN: usize = 128;
const MAX_DESCRIPTION_LEN: usize = 256;
const MAX_TEMPLATE_BYTES: usize = 20_000;
const MAX_TEMPLATE_MEMBERS: usize = 1_000;
const MAX_CHANNEL_TEMPLATE_BYTES: usize = 64 * 1024;
/// A campaign is one stored record (400 KB at most in DynamoDB, with room for its stats).
const MAX_RECORD_BYTES: usize = 300 * 1024;
const MAX_TEMPLATE_ATTACHMENTS: usize = 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentType {
    User,
    Channel,
}

/// A segment: who a campaign reaches. User segments hold user ids, channel segments cids;
/// either by a filter (query users / query channels), everyone (`all_users`), the sender's
/// channels (`all_sender_channels`) or targets added one by one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: SegmentType,
    pub name: String,
    pub description: String,
    pub filter: Option<Value>,
    pub all_users: bool,
    pub all_sender_channels: bool,
    /// Targets added one by one (a filter's or everyone's size is worked out when asked).
    pub size: u64,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
}

/// The fields a segment is created or updated with.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct SegmentFields {
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<SegmentType>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub filter: Option<Value>,
    pub all_users: Option<bool>,
    pub all_sender_channels: Option<bool>,
}

impl Segment {
    /// A new segment from its create request, checked.
    pub fn create(fields: SegmentFields, id: String, now: &str) -> Result<Segment, ApiError> {
        let kind = fields
            .kind
            .ok_or_else(|| ApiError::field("type", "type is required: \"user\" or \"channel\""))?;
        check_len("id", &id, MAX_ID_LEN)?;
        let mut segment = Segment {
            id,
            kind,
            name: String::new(),
            description: String::new(),
            filter: None,
            all_users: false,
            all_sender_channels: false,
            size: 0,
            created_at: now.to_string(),
            updated_at: now.to_string(),
            deleted_at: None,
        };
        segment.apply(fields, now)?;
        Ok(segment)
    }

    /// Applies an update (the fields given), checked.
    pub fn apply(&mut self, fields: SegmentFields, now: &str) -> Result<(), ApiError> {
        if let Some(kind) = fields.kind {
            if kind != self.kind {
                return Err(ApiError::field("type", "a segment's type cannot change"));
            }
        }
        if let Some(name) = fields.name {
            check_len("name", &name, MAX_NAME_LEN)?;
            self.name = name;
        }
        if let Some(d) = fields.description {
            check_len("description", &d, MAX_DESCRIPTION_LEN)?;
            self.description = d;
        }
        if let Some(f) = fields.filter {
            self.filter = match f {
                Value::Null => None,
                Value::Object(m) if m.is_empty() => None,
                Value::Object(m) => Some(Value::Object(m)),
                _ => return Err(ApiError::field("filter", "filter must be an object")),
            };
        }
        if let Some(a) = fields.all_users {
            self.all_users = a;
        }
        if let Some(a) = fields.all_sender_channels {
            self.all_sender_channels = a;
        }
        let ways = usize::from(self.filter.is_some())
            + usize::from(self.all_users)
            + usize::from(self.all_sender_channels);
        if ways > 1 {
            return Err(ApiError::input(
                "filter, all_users and all_sender_channels cannot be used together",
            ));
        }
        if self.all_users && self.kind != SegmentType::User {
            return Err(ApiError::field(
                "all_users",
                "all_users is for user segments",
            ));
        }
        if self.all_sender_channels && self.kind != SegmentType::Channel {
            return Err(ApiError::field(
                "all_sender_channels",
                "all_sender_channels is for channel segments",
            ));
        }
        self.updated_at = now.to_string();
        Ok(())
    }

    /// Whether its targets are the ones added one by one.
    pub fn by_targets(&self) -> bool {
        self.filter.is_none() && !self.all_users && !self.all_sender_channels
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    Draft,
    Scheduled,
    InProgress,
    Completed,
    Stopped,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "draft",
            CampaignStatus::Scheduled => "scheduled",
            CampaignStatus::InProgress => "in_progress",
            CampaignStatus::Completed => "completed",
            CampaignStatus::Stopped => "stopped",
        }
    }
}

/// What a campaign did (Stream's `CampaignStatsResponse`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CampaignStats {
    pub stats_started_at: Option<String>,
    pub stats_completed_at: Option<String>,
    pub stats_messages_sent: u64,
    pub stats_channels_created: u64,
    pub progress: f64,
    pub stats_users_sent: u64,
    /// Receivers who read the campaign's message: not tracked, always 0.
    pub stats_users_read: u64,
    /// Users the campaign reaches (listed so far until the whole audience is; 0 for channel
    /// segments).
    pub stats_users_targeted: u64,
    /// Messages sent into channels that existed already.
    pub stats_channels_existing: u64,
    /// Receivers not sent to because the send was refused (a frozen channel, a banned sender);
    /// receivers without a channel (and `create_channels` off) or gone are not errors.
    pub stats_errors: u64,
}

/// Where a running campaign's delivery stands (stored, never on the wire).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CampaignRun {
    /// The first expansion step ran (a start that crashed before queueing it is kicked again).
    pub expanding: bool,
    /// Receivers listed so far; final once `expanded`.
    pub receivers: u64,
    /// The audience's size when the campaign started (its segments' sizes, its user ids), for
    /// progress until every receiver is listed.
    pub estimate: u64,
    pub expanded: bool,
    /// Receivers whose batch has been delivered and counted.
    pub processed: u64,
    /// Receivers that could not be sent to (no channel and `create_channels` off, an error).
    pub skipped: u64,
    /// Its receivers are users (not channels of channel segments).
    pub to_users: bool,
}

/// A campaign as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    pub id: String,
    pub name: String,
    pub description: String,
    pub sender_id: String,
    pub sender_mode: Option<String>,
    pub sender_visibility: Option<String>,
    pub message_template: Value,
    pub segment_ids: Vec<String>,
    pub user_ids: Vec<String>,
    pub create_channels: bool,
    pub show_channels: bool,
    pub channel_template: Option<Value>,
    pub skip_push: bool,
    pub skip_webhook: bool,
    pub status: CampaignStatus,
    pub scheduled_for: Option<String>,
    pub stop_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub stats: CampaignStats,
    #[serde(default)]
    pub run: CampaignRun,
}

/// The fields a campaign is created or updated with.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct CampaignFields {
    pub id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub sender_id: Option<String>,
    pub sender_mode: Option<Value>,
    pub sender_visibility: Option<Value>,
    pub message_template: Option<Value>,
    pub segment_ids: Option<Vec<String>>,
    pub user_ids: Option<Vec<String>>,
    pub create_channels: Option<bool>,
    pub show_channels: Option<bool>,
    pub channel_template: Option<Value>,
    pub skip_push: Option<bool>,
    pub skip_webhook: Option<bool>,
}

impl Campaign {
    pub fn create(fields: CampaignFields, id: String, now: &str) -> Result<Campaign, ApiError> {
        check_len("id", &id, MAX_ID_LEN)?;
        let mut c = Campaign {
            id,
            name: String::new(),
            description: String::new(),
            sender_id: String::new(),
            sender_mode: None,
            sender_visibility: None,
            message_template: Value::Null,
            segment_ids: Vec::new(),
            user_ids: Vec::new(),
            create_channels: false,
            show_channels: false,
            channel_template: None,
            skip_push: false,
            skip_webhook: false,
            status: CampaignStatus::Draft,
            scheduled_for: None,
            stop_at: None,
            created_at: now.to_string(),
            updated_at: now.to_string(),
            stats: CampaignStats::default(),
            run: CampaignRun::default(),
        };
        c.apply(fields, now)?;
        Ok(c)
    }

    /// Applies the fields given (an update replaces only those), checked as a whole.
    pub fn apply(&mut self, f: CampaignFields, now: &str) -> Result<(), ApiError> {
        if let Some(n) = f.name {
            check_len("name", &n, MAX_NAME_LEN)?;
            self.name = n;
        }
        if let Some(d) = f.description {
            check_len("description", &d, MAX_DESCRIPTION_LEN)?;
            self.description = d;
        }
        if let Some(s) = f.sender_id {
            self.sender_id = s;
        }
        if let Some(mode) = f.sender_mode {
            self.sender_mode = one_of(
                "sender_mode",
                mode,
                &["include", "exclude"],
                "null, \"include\" (the sender joins existing channels too) or \"exclude\" (the sender joins none)",
            )?;
        }
        if let Some(v) = f.sender_visibility {
            self.sender_visibility = one_of(
                "sender_visibility",
                v,
                &["hidden", "archived"],
                "null, \"hidden\" or \"archived\" (new channels, for the sender)",
            )?;
        }
        if let Some(t) = f.message_template {
            self.message_template = t;
        }
        if let Some(ids) = f.segment_ids {
            self.segment_ids = ids;
        }
        if let Some(ids) = f.user_ids {
            self.user_ids = ids;
        }
        if let Some(b) = f.create_channels {
            self.create_channels = b;
        }
        if let Some(b) = f.show_channels {
            self.show_channels = b;
        }
        if let Some(t) = f.channel_template {
            self.channel_template = (!t.is_null()).then_some(t);
        }
        if let Some(b) = f.skip_push {
            self.skip_push = b;
        }
        if let Some(b) = f.skip_webhook {
            self.skip_webhook = b;
        }
        self.updated_at = now.to_string();
        self.check()
    }

    fn check(&self) -> Result<(), ApiError> {
        if self.sender_id.is_empty() {
            return Err(ApiError::field("sender_id", "sender_id is required"));
        }
        let template = self.message_template.as_object().ok_or_else(|| {
            ApiError::field(
                "message_template",
                "message_template is required: {\"text\": ...}",
            )
        })?;
        let text = template
            .get("text")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ApiError::field("message_template.text", "message_template.text is required")
            })?;
        let attachments = template
            .get("attachments")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if text.trim().is_empty() && !attachments {
            return Err(ApiError::field(
                "message_template.text",
                "message_template needs a text (or attachments)",
            ));
        }
        if self.message_template.to_string().len() > MAX_TEMPLATE_BYTES {
            return Err(ApiError::field(
                "message_template",
                format!("message_template must be at most {MAX_TEMPLATE_BYTES} bytes"),
            ));
        }
        if let Some(a) = template.get("attachments") {
            if a.as_array()
                .is_none_or(|a| a.len() > MAX_TEMPLATE_ATTACHMENTS)
            {
                return Err(ApiError::field(
                    "message_template.attachments",
                    format!("attachments must be a list of at most {MAX_TEMPLATE_ATTACHMENTS}"),
                ));
            }
        }
        if template.get("searchable") == Some(&Value::Bool(false)) {
            return Err(ApiError::field(
                "message_template.searchable",
                "unsearchable campaign messages are not supported yet: campaign messages are searchable",
            ));
        }
        if t_len(&self.channel_template) > MAX_CHANNEL_TEMPLATE_BYTES {
            return Err(ApiError::field(
                "channel_template",
                format!("channel_template must be at most {MAX_CHANNEL_TEMPLATE_BYTES} bytes"),
            ));
        }
        let record = serde_json::to_string(self).map_or(0, |r| r.len());
        if record > MAX_RECORD_BYTES {
            return Err(ApiError::input(format!(
                "the campaign is {record} bytes, over the {MAX_RECORD_BYTES} a campaign may take: put its user_ids in a segment"
            )));
        }
        if template.get("poll_id").is_some_and(|p| !p.is_null()) {
            return Err(ApiError::field(
                "message_template.poll_id",
                "polls in campaign messages are not supported yet",
            ));
        }
        if let Some(c) = template.get("custom") {
            if !c.is_object() && !c.is_null() {
                return Err(ApiError::field(
                    "message_template.custom",
                    "custom must be an object",
                ));
            }
        }
        if !self.segment_ids.is_empty() && !self.user_ids.is_empty() {
            return Err(ApiError::input(
                "a campaign targets segment_ids or user_ids, not both",
            ));
        }
        if self.segment_ids.len() > MAX_SEGMENT_IDS {
            return Err(ApiError::field(
                "segment_ids",
                format!("at most {MAX_SEGMENT_IDS} segments"),
            ));
        }
        if self.user_ids.len() > MAX_USER_IDS {
            return Err(ApiError::field(
                "user_ids",
                format!("at most {MAX_USER_IDS} user ids"),
            ));
        }
        for id in self.user_ids.iter().chain(&self.segment_ids) {
            check_len("user_ids", id, MAX_ID_LEN)?;
        }
        if let Some(t) = &self.channel_template {
            let t = ChannelTemplate::parse(t)?;
            if self.sender_mode.as_deref() == Some("exclude")
                && t.id.is_none()
                && t.members.is_empty()
            {
                return Err(ApiError::field(
                    "channel_template.id",
                    "with sender_mode \"exclude\" the channel template needs an id (or members): a receiver alone has no distinct channel",
                ));
            }
        } else if self.sender_mode.as_deref() == Some("exclude") {
            return Err(ApiError::field(
                "channel_template",
                "sender_mode \"exclude\" needs a channel_template with an id",
            ));
        } else if self.create_channels {
            return Err(ApiError::field(
                "channel_template",
                "create_channels needs a channel_template with its type",
            ));
        }
        Ok(())
    }

    /// The channel template, when the campaign has one (checked when stored).
    pub fn channel_template(&self) -> Option<ChannelTemplate> {
        self.channel_template
            .as_ref()
            .and_then(|t| ChannelTemplate::parse(t).ok())
    }

    /// Whether the campaign may still be changed (update, start).
    pub fn is_draft(&self) -> bool {
        self.status == CampaignStatus::Draft
    }

    /// The wire form (Stream's `CampaignResponse`) without the parts read from elsewhere
    /// (`segments`, `users`, `sender`).
    pub fn to_wire(&self) -> Value {
        let mut doc = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(m) = doc.as_object_mut() {
            m.remove("run");
            m.insert("stats".into(), self.stats_wire());
        }
        doc
    }

    fn stats_wire(&self) -> Value {
        let mut stats = self.stats.clone();
        if self.run.to_users {
            stats.stats_users_targeted = match self.run.expanded {
                true => self.run.receivers,
                false => self.run.receivers.max(self.run.estimate),
            };
        }
        stats.progress = match self.status {
            CampaignStatus::Completed => 1.0,
            _ => {
                let total = match self.run.expanded {
                    true => self.run.receivers,
                    false => self.run.receivers.max(self.run.estimate),
                };
                match total {
                    0 => 0.0,
                    n => (self.run.processed as f64 / n as f64).min(1.0),
                }
            }
        };
        serde_json::to_value(stats).unwrap_or(Value::Null)
    }
}

/// A campaign's channel template: the channel each user receiver gets the message in.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelTemplate {
    pub kind: String,
    /// Rendered per receiver; none: the distinct channel of the sender and receiver (and the
    /// template's members).
    pub id: Option<String>,
    pub custom: Map<String, Value>,
    pub team: Option<String>,
    /// Members besides the sender and the receiver, as channel creation takes them
    /// (`{user_id, channel_role, ...custom}`): `members` (ids) or `members_template`.
    pub members: Vec<Value>,
}

impl ChannelTemplate {
    pub fn parse(t: &Value) -> Result<ChannelTemplate, ApiError> {
        let m = t.as_object().ok_or_else(|| {
            ApiError::field("channel_template", "channel_template must be an object")
        })?;
        let kind = m
            .get("type")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::field("channel_template.type", "channel_template.type is required")
            })?;
        check_len("channel_template.type", kind, 64)?;
        let listed = |key: &str| match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) if items.len() <= MAX_TEMPLATE_MEMBERS => Ok(Some(items)),
            Some(_) => Err(ApiError::field(
                format!("channel_template.{key}"),
                format!("{key} must be a list of at most {MAX_TEMPLATE_MEMBERS}"),
            )),
        };
        let members: Vec<Value> = match (listed("members")?, listed("members_template")?) {
            (Some(_), Some(_)) => {
                return Err(ApiError::input(
                    "channel_template takes members or members_template, not both",
                ))
            }
            (Some(ids), None) => ids
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(|id| serde_json::json!({ "user_id": id }))
                        .ok_or_else(|| {
                            ApiError::field("channel_template.members", "members are user ids")
                        })
                })
                .collect::<Result<_, _>>()?,
            (None, Some(templates)) => templates
                .iter()
                .map(member_of_template)
                .collect::<Result<_, _>>()?,
            (None, None) => Vec::new(),
        };
        let custom = match m.get("custom") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(c)) => c.clone(),
            Some(_) => {
                return Err(ApiError::field(
                    "channel_template.custom",
                    "custom must be an object",
                ))
            }
        };
        Ok(ChannelTemplate {
            kind: kind.to_string(),
            id: m
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            custom,
            team: m.get("team").and_then(Value::as_str).map(str::to_string),
            members,
        })
    }
}

/// A `members_template` entry (`{user_id, channel_role, custom}`) as channel creation takes a
/// member.
fn member_of_template(t: &Value) -> Result<Value, ApiError> {
    let field = "channel_template.members_template";
    let user_id = t
        .get("user_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::field(field, "each member needs a user_id"))?;
    let mut member = Map::new();
    if let Some(custom) = t.get("custom") {
        match custom {
            Value::Object(c) => member.extend(c.clone()),
            Value::Null => {}
            _ => {
                return Err(ApiError::field(
                    field,
                    "a member's custom must be an object",
                ))
            }
        }
    }
    member.insert("user_id".into(), user_id.into());
    match t.get("channel_role") {
        None | Some(Value::Null) => {}
        Some(Value::String(r)) => {
            member.insert("channel_role".into(), r.clone().into());
        }
        Some(_) => return Err(ApiError::field(field, "channel_role must be a string")),
    }
    Ok(Value::Object(member))
}

/// The size of an optional JSON value, as sent.
fn t_len(v: &Option<Value>) -> usize {
    v.as_ref().map_or(0, |v| v.to_string().len())
}

/// A string option: null or empty for none, else one of `allowed`.
fn one_of(
    field: &str,
    v: Value,
    allowed: &[&str],
    expected: &str,
) -> Result<Option<String>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) if allowed.contains(&s.as_str()) => Ok(Some(s)),
        _ => Err(ApiError::field(
            field,
            format!("{field} must be {expected}"),
        )),
    }
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.len() > max {
        return Err(ApiError::field(
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    Ok(())
}

/// Renders `{{ path }}` placeholders (Django / Jinja style: `{{ receiver.name }}`,
/// `{{sender.id}}`, `{{ channel.custom_field }}`) from `context`; a path that names nothing
/// renders empty, as in Jinja. Strings render as they are, other values as JSON.
pub fn render(template: &str, context: &Value) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        let path = rest[start + 2..start + 2 + len].trim();
        let mut at = Some(context);
        for part in path.split('.') {
            at = at.and_then(|v| v.get(part));
        }
        match at {
            Some(Value::String(s)) => out.push_str(s),
            Some(Value::Null) | None => {}
            Some(v) => out.push_str(&v.to_string()),
        }
        rest = &rest[start + 2 + len + 2..];
    }
    out.push_str(rest);
    out
}

/// Renders every string inside a JSON value (a template's attachments and custom fields).
pub fn render_value(value: &Value, context: &Value) -> Value {
    match value {
        Value::String(s) if s.contains("{{") => Value::String(render(s, context)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| render_value(v, context)).collect())
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), render_value(v, context)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_paths_and_leaves_the_rest() {
        let ctx = json!({"receiver": {"name": "Ann", "age": 3}, "sender": {"id": "s"}});
        assert_eq!(
            render(
                "Hi {{ receiver.name }} from {{sender.id}}, {{ receiver.age }}{{ nope.x }}!",
                &ctx
            ),
            "Hi Ann from s, 3!"
        );
        assert_eq!(render("{Hello} {{ unclosed", &ctx), "{Hello} {{ unclosed");
        assert_eq!(
            render_value(&json!({"a": ["{{receiver.name}}", 1]}), &ctx),
            json!({"a": ["Ann", 1]})
        );
    }

    #[test]
    fn campaign_rules() {
        let now = "2026-01-01T00:00:00Z";
        let base = || CampaignFields {
            sender_id: Some("s".into()),
            message_template: Some(json!({"text": "hi"})),
            ..Default::default()
        };
        assert!(Campaign::create(base(), "c".into(), now).is_ok());
        let no_sender = CampaignFields {
            sender_id: None,
            ..base()
        };
        assert!(Campaign::create(no_sender, "c".into(), now).is_err());
        let both = CampaignFields {
            segment_ids: Some(vec!["a".into()]),
            user_ids: Some(vec!["b".into()]),
            ..base()
        };
        assert!(Campaign::create(both, "c".into(), now).is_err());
        let channels = CampaignFields {
            create_channels: Some(true),
            ..base()
        };
        assert!(Campaign::create(channels, "c".into(), now).is_err());
        let mut c = Campaign::create(base(), "c".into(), now).unwrap();
        c.run.receivers = 4;
        c.run.processed = 1;
        c.run.estimate = 10;
        assert_eq!(c.to_wire()["stats"]["progress"], json!(0.1));
        c.run.expanded = true;
        assert_eq!(c.to_wire()["stats"]["progress"], json!(0.25));
        assert!(c.to_wire().get("run").is_none());
    }

    #[test]
    fn segment_rules() {
        let now = "2026-01-01T00:00:00Z";
        let f = |v: Value| serde_json::from_value::<SegmentFields>(v).unwrap();
        assert!(Segment::create(f(json!({})), "s".into(), now).is_err());
        let s = Segment::create(f(json!({"type": "user"})), "s".into(), now).unwrap();
        assert!(s.by_targets() && s.name.is_empty());
        assert!(Segment::create(
            f(json!({"type": "user", "all_users": true, "filter": {"a": 1}})),
            "s".into(),
            now
        )
        .is_err());
        assert!(Segment::create(
            f(json!({"type": "user", "all_sender_channels": true})),
            "s".into(),
            now
        )
        .is_err());
    }
}
