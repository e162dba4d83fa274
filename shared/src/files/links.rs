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
    fn added_query_parameters_keep_the_link_valid() {
        let links = FileLinks::new("secret");
        let path = FilePath::parse("uploads/u1/cat.png").unwrap();
        let url = links.url_until("http://h", &path, 4_000_000_000, "oh=10&ow=20");
        assert!(url.contains("/files/uploads/u1/cat.png?oh=10&ow=20&expires=4000000000&signature="));
        let (p, e, s) = query(&format!("{url}&w=5&h=5"));
        assert!(links.check(&p, &e, &s, SystemTime::now()).is_ok());
    }
}
