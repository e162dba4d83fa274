//! Files on this machine, for chat-local: kept in a directory (or in memory with
//! `--in-memory`), served by chat-local at `/files/<path>` to whoever holds a link the app made
//! ([`super::links`]).

use super::links::FileLinks;
use super::{FileError, FilePath, FileStore};
use async_trait::async_trait;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

enum Backing {
    Directory(PathBuf),
    Memory(Mutex<HashMap<String, (Vec<u8>, SystemTime)>>),
}

pub struct LocalFiles {
    backing: Backing,
    base_url: String,
    links: FileLinks,
}

impl LocalFiles {
    /// Files under `root`, served at `base_url` (such as `http://127.0.0.1:8080`).
    pub fn in_directory(root: PathBuf, base_url: &str, api_secret: &str) -> LocalFiles {
        LocalFiles::new(Backing::Directory(root), base_url, api_secret)
    }

    /// Files kept in memory, gone with the process.
    pub fn in_memory(base_url: &str, api_secret: &str) -> LocalFiles {
        LocalFiles::new(Backing::Memory(Mutex::default()), base_url, api_secret)
    }

    fn new(backing: Backing, base_url: &str, api_secret: &str) -> LocalFiles {
        LocalFiles {
            backing,
            base_url: base_url.trim_end_matches('/').to_string(),
            links: FileLinks::new(api_secret),
        }
    }

    /// Removes the files under `prefix` written more than `age` ago; returns how many.
    pub async fn remove_older_than(&self, prefix: &FilePath, age: Duration) -> usize {
        let cutoff = SystemTime::now() - age;
        match &self.backing {
            Backing::Memory(files) => {
                let mut files = files.lock().unwrap_or_else(|p| p.into_inner());
                let before = files.len();
                files.retain(|path, (_, written)| {
                    !(path.starts_with(prefix.as_str()) && *written < cutoff)
                });
                before - files.len()
            }
            Backing::Directory(root) => {
                let start = root.join(prefix.as_str());
                tokio::task::spawn_blocking(move || remove_files_before(&start, cutoff))
                    .await
                    .unwrap_or(0)
            }
        }
    }
}

/// Removes the files under `dir` modified before `cutoff`, and the directories left empty.
fn remove_files_before(dir: &std::path::Path, cutoff: SystemTime) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            removed += remove_files_before(&path, cutoff);
            let _ = std::fs::remove_dir(&path);
        } else if meta.modified().is_ok_and(|m| m < cutoff) && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[async_trait]
impl FileStore for LocalFiles {
    async fn put(&self, path: &FilePath, body: Vec<u8>) -> Result<(), FileError> {
        match &self.backing {
            Backing::Memory(files) => {
                files
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(path.as_str().to_string(), (body, SystemTime::now()));
                Ok(())
            }
            Backing::Directory(root) => {
                let target = root.join(path.as_str());
                let unavailable = |e: std::io::Error| FileError::Unavailable(e.to_string());
                if let Some(parent) = target.parent() {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .map_err(unavailable)?;
                }
                // Written aside and renamed: a download never sees half a file.
                let partial = target.with_extension("partial");
                tokio::fs::write(&partial, body)
                    .await
                    .map_err(unavailable)?;
                tokio::fs::rename(&partial, &target)
                    .await
                    .map_err(unavailable)
            }
        }
    }

    async fn url(&self, path: &FilePath, valid_for: Duration) -> Result<String, FileError> {
        Ok(self.links.url(&self.base_url, path, valid_for))
    }

    async fn get(&self, path: &FilePath) -> Result<Option<Vec<u8>>, FileError> {
        match &self.backing {
            Backing::Memory(files) => Ok(files
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(path.as_str())
                .map(|(body, _)| body.clone())),
            Backing::Directory(root) => match tokio::fs::read(root.join(path.as_str())).await {
                Ok(body) => Ok(Some(body)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(FileError::Unavailable(e.to_string())),
            },
        }
    }

    async fn delete(&self, path: &FilePath) -> Result<(), FileError> {
        match &self.backing {
            Backing::Memory(files) => {
                files
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(path.as_str());
                Ok(())
            }
            Backing::Directory(root) => {
                let target = root.join(path.as_str());
                match tokio::fs::remove_file(&target).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(FileError::Unavailable(e.to_string())),
                }
                // The directories the file leaves empty go too (never the root).
                let mut dir = target.parent().map(|p| p.to_path_buf());
                while let Some(d) = dir {
                    if d == *root || tokio::fs::remove_dir(&d).await.is_err() {
                        break;
                    }
                    dir = d.parent().map(|p| p.to_path_buf());
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn round_trip(files: LocalFiles) {
        let path = FilePath::parse("exports/users/t1/users.json").unwrap();
        files.put(&path, b"{\"a\":1}".to_vec()).await.unwrap();
        let url = files.url(&path, Duration::from_secs(60)).await.unwrap();
        assert!(url.starts_with("http://127.0.0.1:9/files/exports/users/t1/users.json?"));
        assert_eq!(files.get(&path).await.unwrap().unwrap(), b"{\"a\":1}");
        let missing = FilePath::parse("exports/users/t2/users.json").unwrap();
        assert_eq!(files.get(&missing).await.unwrap(), None);
        // Retention: nothing is old yet; everything is older than zero seconds.
        let exports = FilePath::parse("exports").unwrap();
        assert_eq!(
            files
                .remove_older_than(&exports, Duration::from_secs(60))
                .await,
            0
        );
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(files.remove_older_than(&exports, Duration::ZERO).await, 1);
        assert_eq!(files.get(&path).await.unwrap(), None);
        // Delete: gone, and deleting again is no error.
        let upload = FilePath::parse("uploads/abc/cat.png").unwrap();
        files.put(&upload, b"png".to_vec()).await.unwrap();
        files.delete(&upload).await.unwrap();
        assert_eq!(files.get(&upload).await.unwrap(), None);
        files.delete(&upload).await.unwrap();
    }

    #[tokio::test]
    async fn files_round_trip_in_memory() {
        round_trip(LocalFiles::in_memory("http://127.0.0.1:9/", "secret")).await;
    }

    #[tokio::test]
    async fn files_round_trip_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        round_trip(LocalFiles::in_directory(
            dir.path().to_path_buf(),
            "http://127.0.0.1:9",
            "secret",
        ))
        .await;
        // Emptied directories are removed, the root stays.
        assert!(dir.path().exists());
        assert!(!dir.path().join("uploads/abc").exists());
    }
}
