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
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| k != "X-Amz-Signature")
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    pairs.sort();
    let canonical_query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let mut k = hmac(format!("AWS4{secret}").as_bytes(), date);
    for part in [*region, *service, "aws4_request"] {
        k = hmac(&k, part);
    }
    let given = get("X-Amz-Signature").unwrap_or_default();
    // Signers hash the (empty) payload of a GET, or use S3's UNSIGNED-PAYLOAD: either is accepted.
    let empty_payload = hex::encode(Sha256::digest(b""));
    let same = [empty_payload.as_str(), "UNSIGNED-PAYLOAD"]
        .into_iter()
        .any(|payload| {
            let canonical =
                format!("GET\n{path}\n{canonical_query}\nhost:{host}\n\nhost\n{payload}");
            let to_sign = format!(
                "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
                hex::encode(Sha256::digest(canonical.as_bytes()))
            );
            let expected = hex::encode(hmac(&k, &to_sign));
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
