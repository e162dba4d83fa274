//! Async tasks (`task_id` + `GET /tasks/{id}`): the job is stored first, then run in the
//! background or inline; unfinished jobs are indexed so a restarted process resumes them.

use super::{to_doc, Chat, TaskMode};
use crate::domain::ids::random_id;
use crate::domain::limits::TASK_RETENTION_SECS;
use crate::domain::ApiError;
use crate::store::layout::task_key;
use crate::store::{Condition, Index, Item, Query, TableName, Write};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Unfinished tasks are listed under this `gsi1` partition.
const PENDING_TASKS_PK: &str = "tasks_pending";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskJob {
    DeactivateUsers {
        user_ids: Vec<String>,
        mark_messages_deleted: bool,
        created_by_id: Option<String>,
    },
    ReactivateUsers {
        user_ids: Vec<String>,
        restore_messages: bool,
        created_by_id: Option<String>,
    },
    DeleteUsers {
        user_ids: Vec<String>,
        user: String,
        messages: Option<String>,
        conversations: Option<String>,
        new_channel_owner_id: Option<String>,
    },
    DeleteChannels {
        cids: Vec<String>,
        hard_delete: bool,
    },
    ExportChannels(crate::domain::export::ChannelsExport),
    ExportUsers {
        user_ids: Vec<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    pub job: TaskJob,
    #[serde(default)]
    pub result: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// The file the task wrote (an export), served at `result.url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl Task {
    /// `GET /tasks/{id}` body, without the download URL of a file ([`Chat::task_status`]).
    fn to_json(&self) -> Value {
        let mut v = json!({
            "task_id": self.id,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "result": self.result,
        });
        if let Some(e) = &self.error {
            v["error"] = e.clone();
        }
        v
    }
}

fn task_item(task: &Task, version: u64) -> Result<Item, ApiError> {
    let (pk, sk) = task_key(&task.id);
    let mut item = Item::new(pk, sk, to_doc(task)?);
    item.version = version;
    if matches!(task.status.as_str(), "waiting" | "pending" | "running") {
        item = item.with_gsi1(PENDING_TASKS_PK, task.created_at.clone());
    } else {
        item.ttl = Some(chrono::Utc::now().timestamp() + TASK_RETENTION_SECS);
    }
    Ok(item)
}

impl Chat {
    /// Store a job as a pending task and start it; returns the task id.
    pub async fn start_task(&self, job: TaskJob) -> Result<String, ApiError> {
        let now = self.now_str();
        let task = Task {
            id: random_id(),
            status: "pending".into(),
            created_at: now.clone(),
            updated_at: now,
            job,
            result: json!({}),
            error: None,
            file: None,
        };
        let item = task_item(&task, 1)?;
        self.store
            .write(Write::Put {
                table: TableName::App,
                item,
                condition: Condition::NotExists,
            })
            .await?;
        let id = task.id.clone();
        match self.task_mode {
            TaskMode::Inline => self.run_task(task).await,
            TaskMode::Background => {
                let chat = self.clone();
                tokio::spawn(async move { chat.run_task(task).await });
            }
        }
        Ok(id)
    }

    pub async fn get_task(&self, id: &str) -> Result<Task, ApiError> {
        self.load::<Task>(TableName::App, task_key(id))
            .await?
            .map(|(t, _)| t)
            .ok_or_else(|| ApiError::not_found(format!("Can't find task with id {id}")))
    }

    /// `GET /tasks/{id}` (and `GET /export_channels/{id}`): the task's status, with a download
    /// URL made now for the file it wrote.
    pub async fn task_status(&self, id: &str) -> Result<Value, ApiError> {
        let task = self.get_task(id).await?;
        let body = task.to_json();
        match task.file.as_deref() {
            Some(file) => {
                let path = crate::files::FilePath::parse(file)
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                Ok(super::exports::with_url(
                    body,
                    self.export_url(&path).await?,
                ))
            }
            None => Ok(body),
        }
    }

    /// Run every task a previous process left unfinished.
    pub async fn resume_pending_tasks(&self) -> Result<usize, ApiError> {
        let page = self
            .store
            .query(
                Query::new(TableName::App, PENDING_TASKS_PK)
                    .index(Index::Gsi1)
                    .limit(1000),
            )
            .await?;
        let mut n = 0;
        for item in page.items {
            if let Ok(task) = serde_json::from_value::<Task>(item.data) {
                n += 1;
                self.run_task(task).await;
            }
        }
        Ok(n)
    }

    async fn run_task(&self, mut task: Task) {
        let outcome = self.execute_job(&task.id, &task.job).await;
        task.updated_at = self.now_str();
        match outcome {
            Ok((result, file)) => {
                task.status = "completed".into();
                task.result = result;
                task.file = file.map(|f| f.as_str().to_string());
            }
            Err(e) => {
                task.status = "failed".into();
                task.error = Some(json!({"type": "task_error", "description": e.message}));
            }
        }
        let stored = self
            .store
            .get(TableName::App, &task_key(&task.id).0, "task")
            .await;
        let version = stored.ok().flatten().map(|i| i.version).unwrap_or(1);
        match task_item(&task, version + 1) {
            Ok(item) => {
                if let Err(e) = self
                    .store
                    .write(Write::Put {
                        table: TableName::App,
                        item,
                        condition: Condition::None,
                    })
                    .await
                {
                    tracing::error!(task = %task.id, error = %e, "task result could not be stored");
                }
            }
            Err(e) => {
                tracing::error!(task = %task.id, error = %e, "task result could not be encoded")
            }
        }
    }

    /// Runs a job: its result, and the file it wrote if any.
    async fn execute_job(
        &self,
        task_id: &str,
        job: &TaskJob,
    ) -> Result<(Value, Option<crate::files::FilePath>), ApiError> {
        match job {
            TaskJob::ExportChannels(export) => {
                let file = self.write_channels_export(task_id, export).await?;
                Ok((json!({}), Some(file)))
            }
            TaskJob::ExportUsers { user_ids } => {
                let file = self.write_users_export(task_id, user_ids).await?;
                Ok((json!({}), Some(file)))
            }
            other => Ok((self.execute_change(other).await?, None)),
        }
    }

    /// Runs a job that changes data (deactivations, deletions): its result.
    async fn execute_change(&self, job: &TaskJob) -> Result<Value, ApiError> {
        let settings = self.app_settings().await?;
        match job {
            TaskJob::DeactivateUsers {
                user_ids,
                mark_messages_deleted,
                created_by_id,
            } => {
                let mut users = Vec::new();
                for id in user_ids {
                    let user = self
                        .set_deactivated(
                            &settings,
                            id,
                            true,
                            *mark_messages_deleted,
                            created_by_id.as_deref(),
                        )
                        .await?;
                    users.push(json!({"id": user.id, "deactivated_at": user.deactivated_at}));
                }
                Ok(json!({"users": users}))
            }
            TaskJob::ReactivateUsers {
                user_ids,
                restore_messages,
                created_by_id,
            } => {
                let mut users = Vec::new();
                for id in user_ids {
                    let user = self
                        .set_deactivated(
                            &settings,
                            id,
                            false,
                            *restore_messages,
                            created_by_id.as_deref(),
                        )
                        .await?;
                    users.push(json!({"id": user.id}));
                }
                Ok(json!({"users": users}))
            }
            TaskJob::DeleteUsers {
                user_ids,
                user,
                messages,
                conversations,
                new_channel_owner_id,
            } => {
                let mut result = serde_json::Map::new();
                for id in user_ids {
                    let status = match self
                        .finish_user_deletion(
                            &settings,
                            id,
                            user,
                            messages.as_deref(),
                            conversations.as_deref(),
                            new_channel_owner_id.as_deref(),
                        )
                        .await
                    {
                        Ok(()) => json!({"status": "ok"}),
                        Err(e) => json!({"status": "error", "error": e.message}),
                    };
                    result.insert(id.clone(), status);
                }
                Ok(Value::Object(result))
            }
            TaskJob::DeleteChannels { cids, hard_delete } => {
                let mut result = serde_json::Map::new();
                for cid in cids {
                    let status = match self.finish_channel_deletion(cid, *hard_delete).await {
                        Ok(()) => json!({"status": "ok"}),
                        Err(e) => json!({"status": "error", "error": e.message}),
                    };
                    result.insert(cid.clone(), status);
                }
                Ok(Value::Object(result))
            }
            TaskJob::ExportChannels(_) | TaskJob::ExportUsers { .. } => {
                Err(ApiError::internal("an export is not a change"))
            }
        }
    }
}
