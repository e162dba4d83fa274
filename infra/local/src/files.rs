//! chat-local's file housekeeping: the hourly removal of export files past their retention.
//! (Files are served by the API's own link route, `GET /files/<path>`.)

use shared::domain::export::EXPORT_RETENTION_DAYS;
use shared::files::local::LocalFiles;
use shared::files::FilePath;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

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
