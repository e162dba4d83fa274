//! Signed, expiring links to stored files: `<base>/files/<path>?expires=<unix>&signature=<hex>`.
//! The signature is an HMAC of the path and the expiry under a key derived from the app's secret,
//! so a link can be made for no other file and no later time, and other query parameters (an
//! image's `w`, `h`, `resize`, `crop`, `oh`, `ow`) may be added without breaking it. The API
//! serves these links itself (chat-local, and the messages function in AWS), so uploads keep one
//! URL shape whatever store holds their bytes.

use super::FilePath;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::time::{Duration, SystemTime};

/// The route files are served under.
pub const ROUTE_PREFIX: &str = "/files/";

/// Why a link was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No such file, or a link this app did not make.
    NotFound,
    /// A link this app made, whose time is up.
    Expired,
}

#[derive(Clone)]
pub struct FileLinks {
    key: Vec<u8>,
}

impl std::fmt::Debug for FileLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileLinks")
    }
}

impl FileLinks {
    pub fn new(api_secret: &str) -> FileLinks {
        // The link key is the secret's HMAC of a fixed label: a link never shows the secret,
        // and a signature made for files is good for nothing else.
        FileLinks {
            key: mac(api_secret.as_bytes(), b"chat-local files").to_vec(),
        }
    }

    fn signature(&self, path: &str, expires: i64) -> Vec<u8> {
        mac(&self.key, format!("{path}\n{expires}").as_bytes()).to_vec()
    }

    /// The link to `path` under `base` (such as `http://127.0.0.1:8080`), valid until `expires`
    /// (unix seconds); `query` (already encoded, may be empty) goes before the signature.
    pub fn url_until(&self, base: &str, path: &FilePath, expires: i64, query: &str) -> String {
        let signature = hex::encode(self.signature(path.as_str(), expires));
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("{query}&")
        };
        format!(
            "{}{ROUTE_PREFIX}{}?{query}expires={expires}&signature={signature}",
            base.trim_end_matches('/'),
            path.as_str()
        )
    }

    /// The link to `path` under `base`, valid for `valid_for` from now.
    pub fn url(&self, base: &str, path: &FilePath, valid_for: Duration) -> String {
        self.url_until(base, path, unix(SystemTime::now() + valid_for), "")
    }

    /// The file a link names: `path` after the route prefix, its `expires` and `signature`
    /// query parameters as given.
    pub fn check(
        &self,
        path: &str,
        expires: &str,
        signature: &str,
        now: SystemTime,
    ) -> Result<FilePath, Refusal> {
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
        Ok(path)
    }

    /// `url` signed anew until `expires`, if it is a link of ours (its signature checks out,
    /// however old): everything else in it (base, path, other query parameters) kept.
    pub fn renew(&self, url: &str, expires: i64) -> Option<String> {
        let (base, rest) = url.split_once(ROUTE_PREFIX)?;
        let (path, query) = rest.split_once('?')?;
        let mut kept = Vec::new();
        let (mut old_expires, mut old_signature) = ("", "");
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("expires", v)) => old_expires = v,
                Some(("signature", v)) => old_signature = v,
                _ => kept.push(pair),
            }
        }
        let path = self
            .check(path, old_expires, old_signature, SystemTime::UNIX_EPOCH)
            .ok()?;
        Some(self.url_until(base, &path, expires, &kept.join("&")))
    }

    fn upload_signature(&self, path: &str, expires: i64, size: u64, content_type: &str) -> Vec<u8> {
        mac(
            &self.key,
            format!("upload\n{path}\n{expires}\n{size}\n{content_type}").as_bytes(),
        )
        .to_vec()
    }

    /// The link that takes one PUT of `path` (`content_type`, exactly `size` bytes) until
    /// `expires`; it is no download link, nor a download link an upload link.
    pub fn upload_url(
        &self,
        base: &str,
        path: &FilePath,
        expires: i64,
        size: u64,
        content_type: &str,
    ) -> String {
        let signature =
            hex::encode(self.upload_signature(path.as_str(), expires, size, content_type));
        format!(
            "{}{ROUTE_PREFIX}{}?upload_expires={expires}&size={size}&type={}&upload_signature={signature}",
            base.trim_end_matches('/'),
            path.as_str(),
            crate::realtime::sigv4::uri_encode(content_type),
        )
    }

    /// The file an upload link names, with the size and type it takes.
    pub fn check_upload(
        &self,
        path: &str,
        param: impl Fn(&str) -> Option<String>,
        now: SystemTime,
    ) -> Result<(FilePath, u64, String), Refusal> {
        let path = FilePath::parse(path).map_err(|_| Refusal::NotFound)?;
        let expires: i64 = param("upload_expires")
            .and_then(|v| v.parse().ok())
            .ok_or(Refusal::NotFound)?;
        let size: u64 = param("size")
            .and_then(|v| v.parse().ok())
            .ok_or(Refusal::NotFound)?;
        let content_type = param("type").ok_or(Refusal::NotFound)?;
        let given = param("upload_signature")
            .and_then(|s| hex::decode(s).ok())
            .ok_or(Refusal::NotFound)?;
        let mut check = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        check.update(
            format!(
                "upload\n{}\n{expires}\n{size}\n{content_type}",
                path.as_str()
            )
            .as_bytes(),
        );
        check.verify_slice(&given).map_err(|_| Refusal::NotFound)?;
        if unix(now) > expires {
            return Err(Refusal::Expired);
        }
        Ok((path, size, content_type))
    }

    /// The path a link of ours names, if `url` is one (any base, any query).
    pub fn path_of(url: &str) -> Option<FilePath> {
        let rest = url.split_once(ROUTE_PREFIX)?.1;
        let path = rest.split(['?', '#']).next()?;
        FilePath::parse(path).ok()
    }
}

fn mac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

pub(crate) fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
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

    #[test]
    fn links_name_one_file_until_they_expire() {
        let links = FileLinks::new("secret");
        let path = FilePath::parse("exports/users/t1/users.json").unwrap();
        let url = links.url("http://127.0.0.1:9/", &path, Duration::from_secs(60));
        assert!(url.starts_with("http://127.0.0.1:9/files/exports/users/t1/users.json?"));
        assert_eq!(FileLinks::path_of(&url), Some(path.clone()));
        let (p, e, s) = query(&url);
        let now = SystemTime::now();
        assert_eq!(links.check(&p, &e, &s, now), Ok(path));
        // Another file, another time, another signature: refused.
        let other = "exports/users/t2/users.json";
        assert_eq!(links.check(other, &e, &s, now), Err(Refusal::NotFound));
        let later = (e.parse::<i64>().unwrap() + 1).to_string();
        assert_eq!(links.check(&p, &later, &s, now), Err(Refusal::NotFound));
        assert_eq!(links.check(&p, &e, "00", now), Err(Refusal::NotFound));
        assert_eq!(
            links.check("../secret", &e, &s, now),
            Err(Refusal::NotFound)
        );
        let after = now + Duration::from_secs(120);
        assert_eq!(links.check(&p, &e, &s, after), Err(Refusal::Expired));
        // Another secret: refused.
        assert_eq!(
            FileLinks::new("other").check(&p, &e, &s, now),
            Err(Refusal::NotFound)
        );
    }

    #[test]
    fn links_of_ours_are_renewed_keeping_their_parameters() {
        let links = FileLinks::new("secret");
        let path = FilePath::parse("uploads/u1/cat.png").unwrap();
        let old = links.url_until("http://h", &path, 1_000, "oh=10&ow=20");
        let renewed = links.renew(&old, 4_000_000_000).unwrap();
        assert!(renewed.starts_with(
            "http://h/files/uploads/u1/cat.png?oh=10&ow=20&expires=4000000000&signature="
        ));
        let (p, e, s) = query(&renewed);
        assert!(links.check(&p, &e, &s, SystemTime::now()).is_ok());
        // Not ours: left alone.
        assert_eq!(FileLinks::new("other").renew(&old, 4_000_000_000), None);
        assert_eq!(
            links.renew("https://example.com/files/x.png?expires=1&signature=00", 5),
            None
        );
        assert_eq!(links.renew("https://example.com/cat.png", 5), None);
    }

    #[test]
    fn added_query_parameters_keep_the_link_valid() {
        let links = FileLinks::new("secret");
        let path = FilePath::parse("uploads/u1/cat.png").unwrap();
        let url = links.url_until("http://h", &path, 4_000_000_000, "oh=10&ow=20");
        assert!(url.contains("/files/uploads/u1/cat.png?oh=10&ow=20&expires=4000000000&signature="));
        let (p, e, s) = query(&format!("{url}&w=5&h=5"));
        assert!(links.check(&p, &e, &s, SystemTime::now()).is_ok());
    }
}
