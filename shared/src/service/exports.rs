//! Exports, all server-side: `POST /export_channels` and `POST /export/users` start tasks that
//! write an export file to the file store (S3 in AWS, the data directory locally); the task's
//! status (`GET /export_channels/{id}`, `GET /tasks/{id}`) carries a download URL made anew at
//! each request. `GET /users/{id}/export` answers a user's data directly (GDPR requests).
//!
//! A channels export holds, per channel, the channel, its members, its messages (thread replies,
//! deleted and shadowed messages included; messages before a truncation only when asked) and
//! their reactions, in the API's response shapes; with `export_users`, the users they name.
//! `v1` is one JSON document, `v2` one entity per line, `csv` (v2 only) one message per row.

use super::tasks::TaskJob;
use super::Chat;
use crate::domain::caller::Session;
use crate::domain::channel::{Channel, ChannelView};
use crate::domain::export::{
    csv_cell, csv_line, ChannelToExport, ChannelsExport, ExportChannelsRequest, ExportFormat,
    ExportVersion, EXPORT_URL_VALIDITY_SECS, MAX_EXPORT_MESSAGES, MAX_EXPORT_USERS,
    MAX_USER_EXPORT_ITEMS,
};
use crate::domain::message::Message;
use crate::domain::reaction::Reaction;
use crate::domain::ApiError;
use crate::files::{FilePath, FileStore};
use crate::store::layout::{channel_messages_pk, reactions_pk};
use crate::store::{query_all, Query, TableName};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// How many messages are put in their response shape at a time.
const WIRE_BATCH: usize = 100;

/// One channel's part of an export, in response shapes.
struct ChannelPart {
    channel: Value,
    members: Vec<Value>,
    messages: Vec<Value>,
    reactions: Vec<Value>,
}

fn channel_not_found(cid: &str) -> ApiError {
    ApiError::not_found(format!("Can't find channel with cid {cid}"))
}

impl Chat {
    fn export_files(&self) -> Result<&Arc<dyn FileStore>, ApiError> {
        self.files.as_ref().ok_or_else(|| {
            ApiError::input(
                "exports are not available: no file store is configured (FILES_BUCKET in AWS)",
            )
        })
    }

    /// A download URL for an export file, valid for a day.
    pub(crate) async fn export_url(&self, path: &FilePath) -> Result<String, ApiError> {
        self.export_files()?
            .url(path, Duration::from_secs(EXPORT_URL_VALIDITY_SECS))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    /// `POST /export_channels`: checks the request and that every channel exists, then starts
    /// the export task; returns its id.
    pub async fn export_channels(
        &self,
        session: &Session,
        req: ExportChannelsRequest,
    ) -> Result<String, ApiError> {
        session.caller.require_server("exporting channels")?;
        self.export_files()?;
        let job = req.check()?;
        for c in &job.channels {
            let (pk, sk) = super::channel_record::key(&c.cid);
            let channel = match self.store.get(TableName::Channels, &pk, &sk).await? {
                Some(item) => super::channel_record::decode(item)?.0,
                None => return Err(channel_not_found(&c.cid)),
            };
            if channel.deleted_at.is_some() && !job.include_soft_deleted_channels {
                return Err(channel_not_found(&c.cid));
            }
        }
        self.start_task(TaskJob::ExportChannels(job)).await
    }

    /// `POST /export/users`: starts a task writing the data of up to 25 users to one file.
    pub async fn export_users(
        &self,
        session: &Session,
        user_ids: Vec<String>,
    ) -> Result<String, ApiError> {
        session.caller.require_server("exporting users")?;
        self.export_files()?;
        if user_ids.is_empty() || user_ids.len() > MAX_EXPORT_USERS {
            return Err(ApiError::field(
                "user_ids",
                format!("user_ids must name between 1 and {MAX_EXPORT_USERS} users"),
            ));
        }
        let ids: Vec<&str> = user_ids.iter().map(String::as_str).collect();
        let found = self.users_by_id(&ids).await?;
        if let Some(missing) = ids.iter().find(|id| !found.contains_key(**id)) {
            return Err(ApiError::not_found(format!(
                "user {missing:?} does not exist"
            )));
        }
        self.start_task(TaskJob::ExportUsers { user_ids }).await
    }

    /// `GET /users/{id}/export`: the user, their messages and their reactions.
    pub async fn export_user(&self, session: &Session, user_id: &str) -> Result<Value, ApiError> {
        session.caller.require_server("exporting users")?;
        self.user_export(user_id).await
    }

    async fn user_export(&self, user_id: &str) -> Result<Value, ApiError> {
        let Some((user, _)) = self.get_user(user_id).await? else {
            return Err(ApiError::not_found(format!(
                "user {user_id:?} does not exist"
            )));
        };
        let (messages, reactions) = self.content_of(user_id, true).await?;
        for (what, n) in [("messages", messages.len()), ("reactions", reactions.len())] {
            if n > MAX_USER_EXPORT_ITEMS {
                return Err(ApiError::input(format!(
                    "user {user_id:?} has more than {MAX_USER_EXPORT_ITEMS} {what}: too many to export"
                )));
            }
        }
        let mut wires = Vec::with_capacity(messages.len());
        for batch in messages.chunks(WIRE_BATCH) {
            wires.extend(self.export_wires(batch, false).await?);
        }
        let reactions: Vec<Value> = reactions.iter().map(|r| r.to_wire(None)).collect();
        Ok(json!({"user": user.to_json(), "messages": wires, "reactions": reactions}))
    }

    /// Messages in their response shapes, as the server sees them: a deleted message keeps its
    /// text unless `clear_deleted_text`.
    async fn export_wires(
        &self,
        messages: &[Message],
        clear_deleted_text: bool,
    ) -> Result<Vec<Value>, ApiError> {
        let mut wires = self.messages_wire(messages, None).await?;
        for (wire, m) in wires.iter_mut().zip(messages) {
            if m.kind == "deleted" && !clear_deleted_text {
                wire["text"] = Value::String(m.text.clone());
            }
        }
        Ok(wires)
    }

    /// The export task of `POST /export/users`: the users' data in one JSON file.
    pub(crate) async fn write_users_export(
        &self,
        task_id: &str,
        user_ids: &[String],
    ) -> Result<FilePath, ApiError> {
        let mut users = Vec::with_capacity(user_ids.len());
        for id in user_ids {
            users.push(self.user_export(id).await?);
        }
        let body = serde_json::to_vec(&json!({ "users": users }))
            .map_err(|e| ApiError::internal(e.to_string()))?;
        self.put_export(&format!("exports/users/{task_id}/users.json"), body)
            .await
    }

    async fn put_export(&self, path: &str, body: Vec<u8>) -> Result<FilePath, ApiError> {
        let path = FilePath::parse(path).map_err(|e| ApiError::internal(e.to_string()))?;
        self.export_files()?
            .put(&path, body)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(path)
    }

    /// The export task of `POST /export_channels`.
    pub(crate) async fn write_channels_export(
        &self,
        task_id: &str,
        job: &ChannelsExport,
    ) -> Result<FilePath, ApiError> {
        let mut parts = Vec::with_capacity(job.channels.len());
        let mut exported = 0;
        for c in &job.channels {
            parts.push(self.channel_part(c, job, &mut exported).await?);
        }
        let users = if job.export_users {
            self.users_named(&parts).await?
        } else {
            Vec::new()
        };
        let (name, body) = match (job.version, job.format) {
            (_, ExportFormat::Csv) => {
                let mut out = csv_line(&job.columns);
                for part in &parts {
                    for m in &part.messages {
                        let cells: Vec<String> =
                            job.columns.iter().map(|c| csv_cell(m, c)).collect();
                        out.push_str(&csv_line(&cells));
                    }
                }
                ("messages.csv", out.into_bytes())
            }
            (ExportVersion::V1, ExportFormat::Json) => {
                let channels: Vec<Value> = parts
                    .into_iter()
                    .map(|p| {
                        json!({"channel": p.channel, "members": p.members,
                            "messages": p.messages, "reactions": p.reactions})
                    })
                    .collect();
                let mut doc = json!({ "channels": channels });
                if job.export_users {
                    doc["users"] = Value::Array(users);
                }
                let body =
                    serde_json::to_vec(&doc).map_err(|e| ApiError::internal(e.to_string()))?;
                ("channels.json", body)
            }
            (ExportVersion::V2, ExportFormat::Json) => {
                let mut out = Vec::new();
                let mut line = |entity: Value| {
                    if let Ok(bytes) = serde_json::to_vec(&entity) {
                        out.extend(bytes);
                        out.push(b'\n');
                    }
                };
                for p in parts {
                    let cid = p.channel.get("cid").cloned().unwrap_or(Value::Null);
                    line(json!({"type": "channel", "channel": p.channel}));
                    for m in p.members {
                        line(json!({"type": "member", "cid": cid, "member": m}));
                    }
                    for m in p.messages {
                        line(json!({"type": "message", "cid": cid, "message": m}));
                    }
                    for r in p.reactions {
                        line(json!({"type": "reaction", "cid": cid, "reaction": r}));
                    }
                }
                for u in users {
                    line(json!({"type": "user", "user": u}));
                }
                ("channels.jsonl", out)
            }
        };
        self.put_export(&format!("exports/channels/{task_id}/{name}"), body)
            .await
    }

    /// One channel's part: refused if the channel went (or was soft-deleted and those are not
    /// asked for) since the request, or if the export passes its message bound.
    async fn channel_part(
        &self,
        c: &ChannelToExport,
        job: &ChannelsExport,
        exported: &mut usize,
    ) -> Result<ChannelPart, ApiError> {
        let loaded = self
            .load_channel_even_deleted(&c.cid)
            .await?
            .filter(|l| job.include_soft_deleted_channels || l.channel.deleted_at.is_none())
            .ok_or_else(|| channel_not_found(&c.cid))?;
        let channel = &loaded.channel;
        let messages = self.messages_to_export(channel, c, job, exported).await?;
        let mut named: Vec<&str> = loaded.members.iter().map(|m| m.user_id.as_str()).collect();
        named.extend(channel.created_by_id.as_deref());
        named.extend(channel.truncated_by_id.as_deref());
        let users = self.users_by_id(&named).await?;
        let user = |id: &str| super::users::shown(&users, id);
        let created_by = channel.created_by_id.as_deref().map(user);
        let truncated_by = channel.truncated_by_id.as_deref().map(user);
        let view = ChannelView {
            created_by: created_by.as_ref(),
            truncated_by: truncated_by.as_ref(),
            ..ChannelView::default()
        };
        let members = loaded
            .members
            .iter()
            .map(|m| {
                Value::Object(m.to_wire(Some(&user(&m.user_id)), channel.created_by_id.as_deref()))
            })
            .collect();
        let mut wires = Vec::with_capacity(messages.len());
        let mut reactions = Vec::new();
        for batch in messages.chunks(WIRE_BATCH) {
            wires.extend(
                self.export_wires(batch, job.clear_deleted_message_text)
                    .await?,
            );
            for m in batch {
                reactions.extend(self.all_reactions(m).await?.iter().map(|r| r.to_wire(None)));
            }
        }
        Ok(ChannelPart {
            channel: Value::Object(channel.to_wire(&view)),
            members,
            messages: wires,
            reactions,
        })
    }

    /// The channel's messages of its current life in the asked range, oldest first.
    async fn messages_to_export(
        &self,
        channel: &Channel,
        c: &ChannelToExport,
        job: &ChannelsExport,
        exported: &mut usize,
    ) -> Result<Vec<Message>, ApiError> {
        let floor = if job.include_truncated_messages {
            crate::domain::clock::parse_time(&channel.created_at)
        } else {
            channel.messages_floor(None)
        };
        let items = query_all(
            self.store.as_ref(),
            Query::new(TableName::Messages, channel_messages_pk(&channel.cid)),
        )
        .await?;
        let mut out = Vec::new();
        for item in items {
            let Ok(m) = serde_json::from_value::<Message>(item.data) else {
                continue;
            };
            let after_floor = match (floor, crate::domain::clock::parse_time(&m.created_at)) {
                (Some(floor), Some(at)) => at >= floor,
                _ => true,
            };
            if !after_floor || !c.in_range(&m.created_at) {
                continue;
            }
            *exported += 1;
            if *exported > MAX_EXPORT_MESSAGES {
                return Err(ApiError::input(format!(
                    "the export has more than {MAX_EXPORT_MESSAGES} messages: export fewer \
                     channels at a time, or narrow messages_since / messages_until"
                )));
            }
            out.push(m);
        }
        Ok(out)
    }

    /// Every reaction of a message: those kept with it when they are all of them, else its
    /// reactions' partition.
    async fn all_reactions(&self, m: &Message) -> Result<Vec<Reaction>, ApiError> {
        let total = m.reactions.total();
        if total == 0 {
            return Ok(Vec::new());
        }
        if total <= m.reactions.latest.len() {
            return Ok(m.reactions.latest.clone());
        }
        query_all(
            self.store.as_ref(),
            Query::new(TableName::Messages, reactions_pk(&m.id)),
        )
        .await?
        .into_iter()
        .map(|i| super::decode(i.data, "reaction"))
        .collect()
    }

    /// The users an export names: members, creators, authors, mentioned and reacting users.
    async fn users_named(&self, parts: &[ChannelPart]) -> Result<Vec<Value>, ApiError> {
        let mut ids: BTreeSet<&str> = BTreeSet::new();
        let id_of = |v: &Value, key: &str| -> Option<String> {
            v.get(key)
                .and_then(|u| u.get("id"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let mut owned: Vec<String> = Vec::new();
        for p in parts {
            owned.extend(id_of(&p.channel, "created_by"));
            owned.extend(p.members.iter().filter_map(|m| id_of(m, "user")));
            for m in &p.messages {
                owned.extend(id_of(m, "user"));
                if let Some(list) = m.get("mentioned_users").and_then(Value::as_array) {
                    owned.extend(
                        list.iter()
                            .filter_map(|u| u.get("id").and_then(Value::as_str))
                            .map(str::to_string),
                    );
                }
            }
            owned.extend(
                p.reactions
                    .iter()
                    .filter_map(|r| r.get("user_id").and_then(Value::as_str))
                    .map(str::to_string),
            );
        }
        ids.extend(owned.iter().map(String::as_str));
        let ids: Vec<&str> = ids.into_iter().collect();
        let users = self.users_by_id(&ids).await?;
        Ok(ids
            .iter()
            .filter_map(|id| users.get(*id).map(|(u, _)| u.to_json()))
            .collect())
    }
}

/// A task's status body with its export file's download URL in `result.url`.
pub(crate) fn with_url(mut body: Value, url: String) -> Value {
    if !body["result"].is_object() {
        body["result"] = Value::Object(Map::new());
    }
    body["result"]["url"] = Value::String(url);
    body
}
