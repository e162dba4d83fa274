//! Connecting with a Signature Version 4 pre-signed URL (seed 001's model): `X-Amz-Algorithm`,
//! `X-Amz-Credential` (`<api_key>/<date>/<region>/<service>/aws4_request`), `X-Amz-Date`,
//! `X-Amz-Expires`, `X-Amz-SignedHeaders` (`host`) and `X-Amz-Signature`, signed with the app
//! secret as the secret key. The expiry is enforced.

use crate::domain::ApiError;
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Longest validity a pre-signed connect URL may claim.
pub const MAX_EXPIRES_SECS: i64 = 900;

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// SigV4's URI encoding: unreserved characters kept, everything else `%XX`.
pub fn uri_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Is this connect request pre-signed?
pub fn is_presigned(query: &[(String, String)]) -> bool {
    query.iter().any(|(k, _)| k == "X-Amz-Signature")
}

/// Verifies a pre-signed `GET {path}` on `host`; returns the access key it was signed with.
pub fn verify(
    path: &str,
    host: &str,
    query: &[(String, String)],
    access_key: &str,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
    let bad = |why: &str| ApiError::auth(format!("the pre-signed URL is not valid: {why}"));
    if get("X-Amz-Algorithm") != Some("AWS4-HMAC-SHA256") {
        return Err(bad("X-Amz-Algorithm must be AWS4-HMAC-SHA256"));
    }
    let credential = get("X-Amz-Credential").ok_or_else(|| bad("X-Amz-Credential is missing"))?;
    let parts: Vec<&str> = credential.split('/').collect();
    let [key, date, region, service, "aws4_request"] = parts.as_slice() else {
        return Err(bad("X-Amz-Credential is malformed"));
    };
    if *key != access_key {
        return Err(bad("it is not signed with this app's key"));
    }
    let amz_date = get("X-Amz-Date").ok_or_else(|| bad("X-Amz-Date is missing"))?;
    let signed_at = NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| bad("X-Amz-Date must be yyyyMMddTHHmmssZ"))?
        .and_utc();
    if !amz_date.starts_with(date) {
        return Err(bad("the credential date and X-Amz-Date differ"));
    }
    let expires: i64 = get("X-Amz-Expires")
        .and_then(|e| e.parse().ok())
        .ok_or_else(|| bad("X-Amz-Expires is missing"))?;
    if !(1..=MAX_EXPIRES_SECS).contains(&expires) {
        return Err(bad("X-Amz-Expires must be between 1 and 900 seconds"));
    }
    if now > signed_at + chrono::Duration::seconds(expires) {
        return Err(ApiError::new(
            crate::domain::ErrorCode::TokenExpired,
            "the pre-signed URL has expired",
        ));
    }
    if signed_at > now + chrono::Duration::seconds(300) {
        return Err(bad("X-Amz-Date is in the future"));
    }
    let signed_headers = get("X-Amz-SignedHeaders").unwrap_or("host");
    if signed_headers != "host" {
        return Err(bad("only the host header may be signed"));
    }
    let unsigned: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| k != "X-Amz-Signature")
        .cloned()
        .collect();
    let given = get("X-Amz-Signature").unwrap_or_default();
    let credential = Credential {
        date,
        region,
        service,
    };
    // Signers hash the (empty) payload of a GET, or use S3's UNSIGNED-PAYLOAD: either is accepted.
    let empty_payload = hex::encode(Sha256::digest(b""));
    let same = [empty_payload.as_str(), "UNSIGNED-PAYLOAD"]
        .into_iter()
        .any(|payload| {
            let expected = signature(
                path,
                host,
                &unsigned,
                secret,
                amz_date,
                &credential,
                payload,
            );
            // Compared without early exit.
            expected.len() == given.len()
                && expected
                    .bytes()
                    .zip(given.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        });
    if same {
        Ok(())
    } else {
        Err(ApiError::auth(
            "the pre-signed URL's signature does not match",
        ))
    }
}

/// The scope a URL is signed for.
struct Credential<'a> {
    date: &'a str,
    region: &'a str,
    service: &'a str,
}

/// SigV4 of `GET {path}` on `host` with `query` (everything but the signature).
fn signature(
    path: &str,
    host: &str,
    query: &[(String, String)],
    secret: &str,
    amz_date: &str,
    credential: &Credential,
    payload: &str,
) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    pairs.sort();
    let canonical_query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let Credential {
        date,
        region,
        service,
    } = credential;
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let mut k = hmac(format!("AWS4{secret}").as_bytes(), date);
    for part in [*region, *service, "aws4_request"] {
        k = hmac(&k, part);
    }
    let canonical = format!("GET\n{path}\n{canonical_query}\nhost:{host}\n\nhost\n{payload}");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    hex::encode(hmac(&k, &to_sign))
}

/// Pre-signs `GET {path}` on `host` for `expires_secs` with the app's key and secret: `query`
/// plus the `X-Amz-*` parameters, as a server hands a client its connect URL.
pub fn presign(
    path: &str,
    host: &str,
    query: &[(String, String)],
    access_key: &str,
    secret: &str,
    now: DateTime<Utc>,
    expires_secs: i64,
) -> Vec<(String, String)> {
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let date = now.format("%Y%m%d").to_string();
    let (region, service) = ("us-east-1", "execute-api");
    let mut out = query.to_vec();
    out.extend([
        (
            "X-Amz-Algorithm".to_string(),
            "AWS4-HMAC-SHA256".to_string(),
        ),
        (
            "X-Amz-Credential".to_string(),
            format!("{access_key}/{date}/{region}/{service}/aws4_request"),
        ),
        ("X-Amz-Date".to_string(), amz_date.clone()),
        ("X-Amz-Expires".to_string(), expires_secs.to_string()),
        ("X-Amz-SignedHeaders".to_string(), "host".to_string()),
    ]);
    let credential = Credential {
        date: &date,
        region,
        service,
    };
    let empty_payload = hex::encode(Sha256::digest(b""));
    let sig = signature(
        path,
        host,
        &out,
        secret,
        &amz_date,
        &credential,
        &empty_payload,
    );
    out.push(("X-Amz-Signature".to_string(), sig));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_presigned_url_verifies_on_its_path_and_host_only() {
        let now = Utc::now();
        let query = presign(
            "/v1",
            "h.example",
            &[("user_id".into(), "ann".into())],
            "key",
            "secret",
            now,
            60,
        );
        assert!(verify("/v1", "h.example", &query, "key", "secret", now).is_ok());
        assert!(verify("/connect", "h.example", &query, "key", "secret", now).is_err());
        assert!(verify("/v1", "other.example", &query, "key", "secret", now).is_err());
        assert!(verify("/v1", "h.example", &query, "key", "other", now).is_err());
        let late = now + chrono::Duration::seconds(61);
        assert_eq!(
            verify("/v1", "h.example", &query, "key", "secret", late)
                .expect_err("expired")
                .code,
            crate::domain::ErrorCode::TokenExpired
        );
    }
}
