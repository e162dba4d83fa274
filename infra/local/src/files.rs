//! chat-local's file downloads: `GET /files/<path>?expires=…&signature=…`, the URLs its file
//! store makes for export files (outside the API's auth: the URL is the credential), and the
//! hourly removal of export files past their retention.

use axum::extract::{Path, Query};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use shared::domain::export::EXPORT_RETENTION_DAYS;
use shared::files::local::{LocalFiles, Refusal};
use shared::files::FilePath;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

pub fn routes<S: Clone + Send + Sync + 'static>(files: Arc<LocalFiles>) -> Router<S> {
    Router::new().route(
        "/files/{*path}",
        get(
            move |Path(path): Path<String>, Query(q): Query<HashMap<String, String>>| {
                download(files.clone(), path, q)
            },
        ),
    )
}

async fn download(files: Arc<LocalFiles>, path: String, q: HashMap<String, String>) -> Response {
    let param = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    match files
        .open(
            &path,
            param("expires"),
            param("signature"),
            SystemTime::now(),
        )
        .await
    {
        Ok((body, content_type)) => {
            let name = path.rsplit('/').next().unwrap_or("export");
            (
                [
                    (header::CONTENT_TYPE, content_type.to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}\""),
                    ),
                ],
                body,
            )
                .into_response()
        }
        Err(Refusal::Expired) => (StatusCode::FORBIDDEN, "this link has expired\n").into_response(),
        Err(Refusal::NotFound) => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    }
}

/// Removes export files older than their retention, now and every hour.
pub async fn expire_exports(files: Arc<LocalFiles>, mut stopping: watch::Receiver<bool>) {
    let exports = FilePath::parse("exports").expect("a valid path");
    let retention = Duration::from_secs(EXPORT_RETENTION_DAYS * 24 * 3600);
    loop {
        let removed = files.remove_older_than(&exports, retention).await;
        if removed > 0 {
            tracing::info!(removed, "removed export files past their retention");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stopping.changed() => return,
        }
    }
}
