//! Files on this machine, for chat-local: kept in a directory (or in memory with
//! `--in-memory`), served by chat-local at `/files/<path>` to whoever holds a URL this store
//! made: the URL carries its expiry and an HMAC of path and expiry under a key derived from the
//! app's secret, so it cannot be made for another file or a later time.

use super::{FileError, FilePath, FileStore};
use async_trait::async_trait;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The route chat-local serves files under.
pub const ROUTE_PREFIX: &str = "/files/";

enum Backing {
    Directory(PathBuf),
    Memory(Mutex<HashMap<String, (Vec<u8>, SystemTime)>>),
}

pub struct LocalFiles {
    backing: Backing,
    base_url: String,
    key: Vec<u8>,
}

/// Why a download was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No such file, or a URL this store did not make.
    NotFound,
    /// A URL this store made, whose time is up.
    Expired,
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
        // The URL key is the secret's HMAC of a fixed label: a URL never shows the secret,
        // and a signature made for files is good for nothing else.
        let key = mac(api_secret.as_bytes(), b"chat-local files").to_vec();
        LocalFiles {
            backing,
            base_url: base_url.trim_end_matches('/').to_string(),
            key,
        }
    }

    fn signature(&self, path: &str, expires: i64) -> Vec<u8> {
        mac(&self.key, format!("{path}\n{expires}").as_bytes()).to_vec()
    }

    /// The file a URL asks for: `path` after the route prefix, the `expires` and `signature`
    /// query parameters as given.
    pub async fn open(
        &self,
        path: &str,
        expires: &str,
        signature: &str,
        now: SystemTime,
    ) -> Result<(Vec<u8>, &'static str), Refusal> {
        let path = FilePath::parse(path).map_err(|_| Refusal::NotFound)?;
        let expires_at: i64 = expires.parse().map_err(|_| Refusal::NotFound)?;
        let given = hex::decode(signature).map_err(|_| Refusal::NotFound)?;
        let mut check = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        check.update(format!("{}\n{expires_at}", path.as_str()).as_bytes());
        check.verify_slice(&given).map_err(|_| Refusal::NotFound)?;
        if unix(now) > expires_at {
            return Err(Refusal::Expired);
        }
        let body = match &self.backing {
            Backing::Directory(root) => tokio::fs::read(root.join(path.as_str()))
                .await
                .map_err(|_| Refusal::NotFound)?,
            Backing::Memory(files) => files
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(path.as_str())
                .map(|(body, _)| body.clone())
                .ok_or(Refusal::NotFound)?,
        };
        Ok((body, path.content_type()))
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

fn mac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
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
        let expires = unix(SystemTime::now() + valid_for);
        let signature = hex::encode(self.signature(path.as_str(), expires));
        Ok(format!(
            "{}{ROUTE_PREFIX}{}?expires={expires}&signature={signature}",
            self.base_url,
            path.as_str()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(url: &str) -> (String, String, String) {
        let rest = url.split_once(ROUTE_PREFIX).map(|(_, r)| r).unwrap_or("");
        let (path, q) = rest.split_once('?').unwrap_or((rest, ""));
        let param = |name: &str| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .unwrap_or("")
                .to_string()
        };
        (path.to_string(), param("expires"), param("signature"))
    }

    async fn round_trip(files: LocalFiles) {
        let path = FilePath::parse("exports/users/t1/users.json").unwrap();
        files.put(&path, b"{\"a\":1}".to_vec()).await.unwrap();
        let url = files.url(&path, Duration::from_secs(60)).await.unwrap();
        assert!(url.starts_with("http://127.0.0.1:9/files/exports/users/t1/users.json?"));
        let (p, e, s) = query(&url);
        let now = SystemTime::now();
        let (body, kind) = files.open(&p, &e, &s, now).await.unwrap();
        assert_eq!(body, b"{\"a\":1}");
        assert_eq!(kind, "application/json");
        // Another file, another time, another signature: refused.
        let other = "exports/users/t2/users.json";
        assert_eq!(files.open(other, &e, &s, now).await, Err(Refusal::NotFound));
        let later = (e.parse::<i64>().unwrap() + 1).to_string();
        assert_eq!(
            files.open(&p, &later, &s, now).await,
            Err(Refusal::NotFound)
        );
        assert_eq!(files.open(&p, &e, "00", now).await, Err(Refusal::NotFound));
        assert_eq!(
            files.open("../secret", &e, &s, now).await,
            Err(Refusal::NotFound)
        );
        let after = now + Duration::from_secs(120);
        assert_eq!(files.open(&p, &e, &s, after).await, Err(Refusal::Expired));
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
        assert_eq!(files.open(&p, &e, &s, now).await, Err(Refusal::NotFound));
    }

    #[tokio::test]
    async fn urls_serve_their_file_until_they_expire_in_memory() {
        round_trip(LocalFiles::in_memory("http://127.0.0.1:9/", "secret")).await;
    }

    #[tokio::test]
    async fn urls_serve_their_file_until_they_expire_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        round_trip(LocalFiles::in_directory(
            dir.path().to_path_buf(),
            "http://127.0.0.1:9",
            "secret",
        ))
        .await;
    }

    #[tokio::test]
    async fn another_secret_makes_other_urls() {
        let a = LocalFiles::in_memory("http://127.0.0.1:9", "one");
        let b = LocalFiles::in_memory("http://127.0.0.1:9", "two");
        let path = FilePath::parse("f.json").unwrap();
        a.put(&path, b"x".to_vec()).await.unwrap();
        b.put(&path, b"x".to_vec()).await.unwrap();
        let (p, e, s) = query(&a.url(&path, Duration::from_secs(60)).await.unwrap());
        assert!(a.open(&p, &e, &s, SystemTime::now()).await.is_ok());
        assert_eq!(
            b.open(&p, &e, &s, SystemTime::now()).await,
            Err(Refusal::NotFound)
        );
    }
}
