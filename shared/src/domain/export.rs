//! Export requests and their files' shapes: `POST /export_channels` (which channels, which
//! messages, which format) checked into an [`ChannelsExport`] job, the CSV columns a messages
//! export may have, and the bounds of every export.

use crate::domain::channel::Cid;
use crate::domain::clock::{format_time, parse_time};
use crate::domain::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Channels one export request may name (Stream documents 25).
pub const MAX_EXPORT_CHANNELS: usize = 25;
/// Users one `POST /export/users` may name.
pub const MAX_EXPORT_USERS: usize = 25;
/// A user export is refused for a user with more messages, or more reactions, than this.
pub const MAX_USER_EXPORT_ITEMS: usize = 10_000;
/// A channels export stops with an error past this many messages: narrow the time range or
/// export fewer channels at a time.
pub const MAX_EXPORT_MESSAGES: usize = 100_000;
/// How long a download URL of an export file works; a new one is made at each status request.
pub const EXPORT_URL_VALIDITY_SECS: u64 = 24 * 3600;
/// How long export files are kept.
pub const EXPORT_RETENTION_DAYS: u64 = 60;

/// `POST /export_channels` as sent (`null` reads as absent).
#[derive(Debug, Default, Deserialize)]
pub struct ExportChannelsRequest {
    #[serde(default)]
    pub channels: Option<Vec<ChannelExportRequest>>,
    #[serde(default)]
    pub include_truncated_messages: Option<bool>,
    #[serde(default)]
    pub include_soft_deleted_channels: Option<bool>,
    #[serde(default)]
    pub clear_deleted_message_text: Option<bool>,
    #[serde(default)]
    pub export_users: Option<bool>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub include_fields: Option<Vec<String>>,
}

/// One channel of an export request: `type` and `id`, or `cid`.
#[derive(Debug, Default, Deserialize)]
pub struct ChannelExportRequest {
    #[serde(default, rename = "type")]
    pub channel_type: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub cid: Option<String>,
    #[serde(default)]
    pub messages_since: Option<String>,
    #[serde(default)]
    pub messages_until: Option<String>,
}

/// Line-separated entities (`v2`) or one JSON document (`v1`, the default).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportVersion {
    V1,
    V2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Json,
    Csv,
}

/// One channel to export and the time range of its messages (creation time, both ends
/// included).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelToExport {
    pub cid: String,
    #[serde(default)]
    pub messages_since: Option<String>,
    #[serde(default)]
    pub messages_until: Option<String>,
}

impl ChannelToExport {
    /// Whether a message created at `created_at` is in this export's range.
    pub fn in_range(&self, created_at: &str) -> bool {
        let Some(at) = parse_time(created_at) else {
            return false;
        };
        let after_since = self
            .messages_since
            .as_deref()
            .and_then(parse_time)
            .is_none_or(|since| at >= since);
        let before_until = self
            .messages_until
            .as_deref()
            .and_then(parse_time)
            .is_none_or(|until| at <= until);
        after_since && before_until
    }
}

/// A checked channels export: the job an export task runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelsExport {
    pub channels: Vec<ChannelToExport>,
    pub include_truncated_messages: bool,
    pub include_soft_deleted_channels: bool,
    pub clear_deleted_message_text: bool,
    pub export_users: bool,
    pub version: ExportVersion,
    pub format: ExportFormat,
    /// CSV columns, in order.
    #[serde(default)]
    pub columns: Vec<String>,
}

/// Columns a CSV messages export may have; the first ten are the default set.
pub const CSV_COLUMNS: &[&str] = &[
    "cid",
    "id",
    "type",
    "user_id",
    "text",
    "parent_id",
    "created_at",
    "updated_at",
    "deleted_at",
    "reply_count",
    "show_in_channel",
    "quoted_message_id",
    "pinned",
    "pinned_at",
    "silent",
    "shadowed",
    "attachments",
    "mentioned_users",
    "reaction_counts",
];
const DEFAULT_CSV_COLUMNS: usize = 10;

fn time_field(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => parse_time(&v).map(|t| Some(format_time(t))).ok_or_else(|| {
            ApiError::field(
                field,
                format!("{field} must be an RFC 3339 date-time, got {v:?}"),
            )
        }),
    }
}

impl ExportChannelsRequest {
    /// The export job this request asks for, or why it cannot be one. Whether the channels
    /// exist is the caller's to check.
    pub fn check(self) -> Result<ChannelsExport, ApiError> {
        let given = self.channels.unwrap_or_default();
        if given.is_empty() {
            return Err(ApiError::field(
                "channels",
                "channels must name at least one channel",
            ));
        }
        if given.len() > MAX_EXPORT_CHANNELS {
            return Err(ApiError::field(
                "channels",
                format!("at most {MAX_EXPORT_CHANNELS} channels can be exported at a time"),
            ));
        }
        let mut channels: Vec<ChannelToExport> = Vec::with_capacity(given.len());
        for c in given {
            let cid = match (c.channel_type, c.id, c.cid) {
                (Some(t), Some(id), _) if !t.is_empty() && !id.is_empty() => format!("{t}:{id}"),
                (_, _, Some(cid)) if !cid.is_empty() => cid,
                _ => {
                    return Err(ApiError::field(
                        "channels",
                        "each channel needs its type and id (or its cid)",
                    ))
                }
            };
            Cid::parse(&cid)?;
            let since = time_field("messages_since", c.messages_since)?;
            let until = time_field("messages_until", c.messages_until)?;
            if channels.iter().any(|seen| seen.cid == cid) {
                return Err(ApiError::field(
                    "channels",
                    format!("channel {cid} is named twice"),
                ));
            }
            channels.push(ChannelToExport {
                cid,
                messages_since: since,
                messages_until: until,
            });
        }
        let version = match self.version.as_deref().filter(|v| !v.is_empty()) {
            None | Some("v1") => ExportVersion::V1,
            Some("v2") => ExportVersion::V2,
            Some(other) => {
                return Err(ApiError::field(
                    "version",
                    format!("version must be v1 or v2, got {other:?}"),
                ))
            }
        };
        let format = match self.format.as_deref().filter(|v| !v.is_empty()) {
            None | Some("json") => ExportFormat::Json,
            Some("csv") => ExportFormat::Csv,
            Some(other) => {
                return Err(ApiError::field(
                    "format",
                    format!("format must be json or csv, got {other:?}"),
                ))
            }
        };
        let export_users = self.export_users.unwrap_or(false);
        let mut columns = Vec::new();
        if format == ExportFormat::Csv {
            if version != ExportVersion::V2 {
                return Err(ApiError::field("format", "csv exports need version v2"));
            }
            if export_users {
                return Err(ApiError::field(
                    "format",
                    "csv exports cannot include users (export_users)",
                ));
            }
            columns = match self.include_fields.filter(|f| !f.is_empty()) {
                None => CSV_COLUMNS[..DEFAULT_CSV_COLUMNS]
                    .iter()
                    .map(|c| c.to_string())
                    .collect(),
                Some(fields) => {
                    if fields.len() > CSV_COLUMNS.len() {
                        return Err(ApiError::field(
                            "include_fields",
                            format!("include_fields names at most {} columns", CSV_COLUMNS.len()),
                        ));
                    }
                    if let Some(bad) = fields.iter().find(|f| !CSV_COLUMNS.contains(&f.as_str())) {
                        return Err(ApiError::field(
                            "include_fields",
                            format!(
                                "include_fields: unknown column {bad:?}; the columns are {}",
                                CSV_COLUMNS.join(", ")
                            ),
                        ));
                    }
                    fields
                }
            };
        } else if self.include_fields.is_some_and(|f| !f.is_empty()) {
            return Err(ApiError::field(
                "include_fields",
                "include_fields applies to csv exports only",
            ));
        }
        Ok(ChannelsExport {
            channels,
            include_truncated_messages: self.include_truncated_messages.unwrap_or(false),
            include_soft_deleted_channels: self.include_soft_deleted_channels.unwrap_or(false),
            clear_deleted_message_text: self.clear_deleted_message_text.unwrap_or(false),
            export_users,
            version,
            format,
            columns,
        })
    }
}

/// One CSV line (with its line break) of `cells`: quoted where a cell holds a comma, a quote or
/// a line break (RFC 4180).
pub fn csv_line(cells: &[String]) -> String {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        if cell.contains([',', '"', '\n', '\r']) {
            line.push('"');
            line.push_str(&cell.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(cell);
        }
    }
    line.push_str("\r\n");
    line
}

/// The cell of `column` for a message in its response shape.
pub fn csv_cell(message: &Value, column: &str) -> String {
    let value = match column {
        "user_id" => message.get("user").and_then(|u| u.get("id")),
        "mentioned_users" => {
            let ids: Vec<&str> = message
                .get("mentioned_users")
                .and_then(Value::as_array)
                .map(|users| {
                    users
                        .iter()
                        .filter_map(|u| u.get("id").and_then(Value::as_str))
                        .collect()
                })
                .unwrap_or_default();
            return ids.join(" ");
        }
        other => message.get(other),
    };
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(v: Value) -> Result<ChannelsExport, ApiError> {
        serde_json::from_value::<ExportChannelsRequest>(v)
            .expect("shape")
            .check()
    }

    #[test]
    fn a_python_sdk_request_reads_with_nulls_as_absent() {
        let job = request(json!({
            "channels": [{"type": "messaging", "id": "a", "messages_since": null, "messages_until": null}],
            "include_truncated_messages": false
        }))
        .unwrap();
        assert_eq!(job.channels[0].cid, "messaging:a");
        assert_eq!(job.channels[0].messages_since, None);
        assert_eq!(job.version, ExportVersion::V1);
        assert_eq!(job.format, ExportFormat::Json);
        assert!(job.columns.is_empty());
    }

    #[test]
    fn bounds_and_shapes_are_checked() {
        assert!(request(json!({})).is_err());
        assert!(request(json!({"channels": []})).is_err());
        let many: Vec<Value> = (0..26)
            .map(|i| json!({"type": "messaging", "id": format!("c{i}")}))
            .collect();
        assert!(request(json!({ "channels": many })).is_err());
        assert!(request(json!({"channels": [{"type": "messaging"}]})).is_err());
        assert!(request(json!({"channels": [{"cid": "nocolon"}]})).is_err());
        assert!(request(
            json!({"channels": [{"cid": "messaging:a"}, {"type": "messaging", "id": "a"}]})
        )
        .is_err());
        assert!(request(
            json!({"channels": [{"cid": "messaging:a", "messages_since": "yesterday"}]})
        )
        .is_err());
        assert!(request(json!({"channels": [{"cid": "messaging:a"}], "version": "v3"})).is_err());
        assert!(request(json!({"channels": [{"cid": "messaging:a"}], "format": "xml"})).is_err());
        assert!(request(json!({"channels": [{"cid": "messaging:a"}], "format": "csv"})).is_err());
        assert!(request(json!({"channels": [{"cid": "messaging:a"}], "format": "csv", "version": "v2", "export_users": true})).is_err());
        assert!(
            request(json!({"channels": [{"cid": "messaging:a"}], "include_fields": ["id"]}))
                .is_err()
        );
        assert!(request(json!({"channels": [{"cid": "messaging:a"}], "format": "csv", "version": "v2", "include_fields": ["id", "password"]})).is_err());
    }

    #[test]
    fn csv_exports_have_the_default_or_the_chosen_columns() {
        let job = request(
            json!({"channels": [{"cid": "messaging:a"}], "format": "csv", "version": "v2"}),
        )
        .unwrap();
        assert_eq!(job.columns.len(), DEFAULT_CSV_COLUMNS);
        let job = request(json!({"channels": [{"cid": "messaging:a"}], "format": "csv", "version": "v2", "include_fields": ["text", "id"]})).unwrap();
        assert_eq!(job.columns, vec!["text", "id"]);
    }

    #[test]
    fn ranges_include_both_ends() {
        let c = ChannelToExport {
            cid: "messaging:a".into(),
            messages_since: Some("2024-01-01T00:00:00Z".into()),
            messages_until: Some("2024-01-02T00:00:00Z".into()),
        };
        assert!(c.in_range("2024-01-01T00:00:00Z"));
        assert!(c.in_range("2024-01-02T00:00:00Z"));
        assert!(!c.in_range("2023-12-31T23:59:59Z"));
        assert!(!c.in_range("2024-01-02T00:00:01Z"));
    }

    #[test]
    fn csv_cells_are_quoted_when_they_must_be() {
        let m = json!({"id": "m1", "text": "a, \"b\"\nc", "user": {"id": "u"}, "reply_count": 2,
            "mentioned_users": [{"id": "x"}, {"id": "y"}], "parent_id": null});
        let cells: Vec<String> = [
            "id",
            "text",
            "user_id",
            "reply_count",
            "mentioned_users",
            "parent_id",
        ]
        .iter()
        .map(|c| csv_cell(&m, c))
        .collect();
        assert_eq!(csv_line(&cells), "m1,\"a, \"\"b\"\"\nc\",u,2,x y,\r\n");
    }
}
