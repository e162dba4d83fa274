//! Files the product keeps for callers to download (export files, uploads): one port,
//! [`FileStore`], with two adapters: Amazon S3 ([`s3::S3Files`]) in AWS, and a directory (or
//! memory) on chat-local ([`local::LocalFiles`]). A file is named by a [`FilePath`]; the URL that
//! serves it is made anew each time it is asked for, valid for the time the caller gives
//! (exports), or is one of the app's signed links ([`links`], uploads).

pub mod links;
pub mod local;
pub mod s3;

use async_trait::async_trait;
use std::time::Duration;

/// Where a file is kept: slash-separated segments of ASCII letters, digits, `.`, `_` and `-`,
/// none of them empty, `.` or `..`; so a path names a place under the store's root and nothing
/// else.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FilePath(String);

impl FilePath {
    pub fn parse(path: &str) -> Result<FilePath, FileError> {
        let ok = !path.is_empty()
            && path.len() <= 512
            && path.split('/').all(|segment| {
                !segment.is_empty()
                    && segment != "."
                    && segment != ".."
                    && segment
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            });
        if ok {
            Ok(FilePath(path.to_string()))
        } else {
            Err(FileError::BadPath)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The media type a file of this name is served with (by its extension).
    pub fn content_type(&self) -> String {
        match self
            .0
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
        {
            Some(ext) if ext == "jsonl" => "application/jsonl".into(),
            Some(ext) if ext == "csv" => "text/csv; charset=utf-8".into(),
            Some(ext) => mime_guess::from_ext(&ext)
                .first_raw()
                .unwrap_or("application/octet-stream")
                .into(),
            None => "application/octet-stream".into(),
        }
    }

    /// The last segment: the file's name.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl std::fmt::Display for FilePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("not a valid file path")]
    BadPath,
    #[error("file store unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait FileStore: Send + Sync {
    /// Keeps `body` at `path`, replacing what was there.
    async fn put(&self, path: &FilePath, body: Vec<u8>) -> Result<(), FileError>;

    /// A URL that serves the file at `path` for `valid_for` from now.
    async fn url(&self, path: &FilePath, valid_for: Duration) -> Result<String, FileError>;

    /// The file at `path`, or `None` when there is none.
    async fn get(&self, path: &FilePath) -> Result<Option<Vec<u8>>, FileError>;

    /// Removes the file at `path` (no error when there is none).
    async fn delete(&self, path: &FilePath) -> Result<(), FileError>;

    /// A URL where a client may PUT the file at `path` itself (`content_type`, exactly `size`
    /// bytes) for `valid_for` from now: S3's presigned PUT, so large uploads never pass through
    /// the functions; `None` when the store takes files only through the API.
    async fn upload_url(
        &self,
        _path: &FilePath,
        _content_type: &str,
        _size: u64,
        _valid_for: Duration,
    ) -> Result<Option<String>, FileError> {
        Ok(None)
    }

    /// Whether [`FileStore::url`] serves files itself (S3's presigned URLs), so the API's link
    /// route may redirect there instead of passing the bytes through.
    fn serves_its_urls(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_places_under_the_root_only() {
        assert!(FilePath::parse("exports/channels/abc-1/channels.json").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "a//b",
            "a/../b",
            "..",
            "a/./b",
            "a b",
            "a\\b",
            "exports/ü",
            "a/",
        ] {
            assert!(FilePath::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(FilePath::parse(&"a".repeat(513)).is_err());
    }

    #[test]
    fn content_types_follow_the_extension() {
        let t = |p: &str| FilePath::parse(p).map(|p| p.content_type()).unwrap();
        assert_eq!(t("x/a.json"), "application/json");
        assert_eq!(t("x/a.jsonl"), "application/jsonl");
        assert_eq!(t("x/a.csv"), "text/csv; charset=utf-8");
        assert_eq!(t("x/a.PNG"), "image/png");
        assert_eq!(t("x/a.jpg"), "image/jpeg");
        assert_eq!(t("x/a.pdf"), "application/pdf");
        assert_eq!(t("x/a.bin"), "application/octet-stream");
        assert_eq!(t("x/noext"), "application/octet-stream");
    }
}
