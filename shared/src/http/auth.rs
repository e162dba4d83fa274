//! Authentication at the edge: the `api_key` parameter, `stream-auth-type`, and the JWT in
//! `Authorization` (HS256 only), resolved into a `Caller`. Shared by REST and WebSocket connect.

use super::rate_limit::{RequestOrigin, Requester, LIMITER};
use super::reply::{parse_query, ErrorReply};
use crate::domain::app_settings::AppSettings;
use crate::domain::caller::{Caller, Session};
use crate::domain::clock::parse_time;
use crate::domain::user::validate_user_id;
use crate::domain::{ApiError, ErrorCode};
use crate::service::Chat;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// Seconds of clock skew tolerated on `exp` and `iat`.
const LEEWAY_SECS: u64 = 5;

impl FromRequestParts<Chat> for Session {
    type Rejection = ErrorReply;

    async fn from_request_parts(parts: &mut Parts, chat: &Chat) -> Result<Self, Self::Rejection> {
        let query = parse_query(parts.uri.query());
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let creds = Credentials {
            api_key: query.get("api_key").cloned(),
            auth_type: header("stream-auth-type"),
            token: header("authorization"),
        };
        let origin = parts.extensions.get::<RequestOrigin>().cloned();
        let authenticated = authenticate(chat, creds).await;
        if let Some(origin) = &origin {
            charge(origin, &authenticated)?;
        }
        let mut session = authenticated?;
        session.connection_id = query
            .get("connection_id")
            .filter(|c| !c.is_empty())
            .cloned();
        if let Some(id) = &session.connection_id {
            check_connection_owner(chat, &session.caller, id).await?;
        }
        Ok(session)
    }
}

/// A client's `connection_id` (what watching and presence subscribe) must be its own: a user's
/// connection, or for an anonymous caller an anonymous one. A closed or unknown connection is
/// left to the use case (nothing is subscribed).
async fn check_connection_owner(chat: &Chat, caller: &Caller, id: &str) -> Result<(), ApiError> {
    let owner_ok = |owner: &str| match caller {
        Caller::Server => true,
        Caller::User { id, .. } => owner == id,
        Caller::Anonymous => owner.starts_with(crate::domain::user::ANONYMOUS_USER_ID),
    };
    match chat.connection(id).await? {
        Some(conn) if !owner_ok(&conn.user_id) => Err(ApiError::not_allowed(
            "connection_id names a connection of another user",
        )),
        _ => Ok(()),
    }
}

/// Charge a request to its rate-limit budgets once its caller is known: the caller's budgets
/// when authenticated, its source address's budget of failures when not (so failed attempts
/// never spend anyone else's budget). Over a budget the request is refused with 429.
fn charge(
    origin: &RequestOrigin,
    authenticated: &Result<Session, ApiError>,
) -> Result<(), ApiError> {
    let budget = match authenticated {
        Ok(session) => LIMITER.charge(
            origin,
            match &session.caller {
                Caller::Server => Requester::Server,
                Caller::User { id, .. } => Requester::User(id),
                Caller::Anonymous => Requester::Anonymous,
            },
        ),
        Err(_) => LIMITER.charge_failure(origin),
    };
    if budget.exceeded {
        return Err(ApiError::new(
            ErrorCode::RateLimit,
            format!(
                "Too many requests, check response headers for more information: the {} budget is used up until the window resets",
                origin.endpoint.name
            ),
        ));
    }
    Ok(())
}

/// What a request presents: from headers and query on REST, from the query on WebSocket connect.
pub struct Credentials {
    pub api_key: Option<String>,
    pub auth_type: Option<String>,
    pub token: Option<String>,
}

pub async fn authenticate(chat: &Chat, creds: Credentials) -> Result<Session, ApiError> {
    match creds.api_key.as_deref() {
        None | Some("") => {
            return Err(ApiError::new(
                ErrorCode::AccessKey,
                "api_key is required: pass it as the api_key query parameter",
            ))
        }
        Some(k) if k != chat.keys.api_key => {
            return Err(ApiError::new(
                ErrorCode::AccessKey,
                format!("api_key {k:?} is not valid for this app"),
            ))
        }
        Some(_) => {}
    }
    let settings = chat.app_settings().await?;
    let anonymous = creds
        .auth_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("anonymous"));
    if anonymous {
        return Ok(Session {
            caller: Caller::Anonymous,
            settings,
            connection_id: None,
        });
    }
    if let Some(t) = creds.auth_type.as_deref() {
        if !t.eq_ignore_ascii_case("jwt") {
            return Err(ApiError::auth(format!(
                "stream-auth-type must be jwt or anonymous, not {t:?}"
            )));
        }
    }
    let token = match creds.token.as_deref().map(str::trim) {
        None | Some("") => {
            return Err(ApiError::auth(
                "Authorization header is missing: send a JWT, or stream-auth-type: anonymous",
            ))
        }
        Some(t) => t
            .strip_prefix("Bearer ")
            .or_else(|| t.strip_prefix("bearer "))
            .unwrap_or(t)
            .trim(),
    };
    let claims = decode_token(token, &chat.keys.api_secret, settings.disable_auth_checks)?;
    let caller = caller_from_claims(chat, &settings, &claims).await?;
    Ok(Session {
        caller,
        settings,
        connection_id: None,
    })
}

/// Verify an HS256 token signed with the app secret (any other algorithm, `none` included, is
/// refused). With `disable_auth_checks` a bad signature is tolerated, so developer tokens pass.
pub fn decode_token(
    token: &str,
    secret: &str,
    dev_tokens: bool,
) -> Result<Map<String, Value>, ApiError> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| token_error(e.kind()))?;
    if header.alg != Algorithm::HS256 {
        return Err(ApiError::new(
            ErrorCode::TokenSignatureInvalid,
            "JWTAuth error: token algorithm is not accepted: use HS256",
        ));
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.leeway = LEEWAY_SECS;
    validation.validate_aud = false;
    match jsonwebtoken::decode::<Map<String, Value>>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    ) {
        Ok(data) => Ok(data.claims),
        Err(e)
            if dev_tokens
                && matches!(
                    e.kind(),
                    ErrorKind::InvalidSignature
                        | ErrorKind::Base64(_)
                        | ErrorKind::Json(_)
                        | ErrorKind::Utf8(_)
                ) =>
        {
            let claims = unverified_claims(token)?;
            let now = jsonwebtoken::get_current_timestamp() as i64;
            let leeway = LEEWAY_SECS as i64;
            if number_claim(&claims, "exp").is_some_and(|exp| exp + leeway < now) {
                return Err(token_error(&ErrorKind::ExpiredSignature));
            }
            if number_claim(&claims, "nbf").is_some_and(|nbf| nbf > now + leeway) {
                return Err(token_error(&ErrorKind::ImmatureSignature));
            }
            Ok(claims)
        }
        Err(e) => Err(token_error(e.kind())),
    }
}

/// The claims of a token whose signature is not checked (developer tokens). The npm client's
/// `devToken()` encodes its payload as padded standard base64, so both base64 alphabets are
/// read, padded or not.
fn unverified_claims(token: &str) -> Result<Map<String, Value>, ApiError> {
    use base64::Engine;
    let malformed = || token_error(&ErrorKind::InvalidToken);
    let payload = token.split('.').nth(1).ok_or_else(malformed)?;
    let url_safe: String = payload
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(url_safe)
        .map_err(|_| malformed())?;
    serde_json::from_slice(&bytes).map_err(|_| malformed())
}

fn token_error(kind: &ErrorKind) -> ApiError {
    match kind {
        ErrorKind::ExpiredSignature => ApiError::new(ErrorCode::TokenExpired, "JWTAuth error: token has expired"),
        ErrorKind::ImmatureSignature => ApiError::new(ErrorCode::TokenNotValidYet, "JWTAuth error: token is not valid yet"),
        ErrorKind::InvalidSignature => ApiError::new(ErrorCode::TokenSignatureInvalid, "JWTAuth error: signature is not valid. Make sure the token is created using the secret of this app"),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            ApiError::new(ErrorCode::TokenSignatureInvalid, "JWTAuth error: token algorithm is not accepted: use HS256")
        }
        ErrorKind::Base64(_) | ErrorKind::Utf8(_) | ErrorKind::Json(_) | ErrorKind::InvalidToken => {
            ApiError::auth("JWTAuth error: the token is malformed: it must be a JWT (three base64url segments) signed with HS256")
        }
        _ => ApiError::auth("JWTAuth error: the token is not valid"),
    }
}

fn number_claim(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    claims
        .get(name)
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
}

pub(crate) async fn caller_from_claims(
    chat: &Chat,
    settings: &AppSettings,
    claims: &Map<String, Value>,
) -> Result<Caller, ApiError> {
    let iat = number_claim(claims, "iat");
    let now = chat.now().timestamp();
    if iat.is_some_and(|iat| iat > now + LEEWAY_SECS as i64) {
        return Err(ApiError::new(
            ErrorCode::TokenNotValidYet,
            "JWTAuth error: token used before issued at (iat)",
        ));
    }
    let user_id = match claims.get("user_id") {
        None | Some(Value::Null) => return Ok(Caller::Server),
        Some(Value::String(id)) => id.clone(),
        Some(_) => {
            return Err(ApiError::auth(
                "JWTAuth error: user_id claim must be a string",
            ))
        }
    };
    validate_user_id(&user_id)
        .map_err(|e| ApiError::auth(format!("JWTAuth error: {}", e.message)))?;
    let user = chat.get_user(&user_id).await?.map(|(u, _)| u);
    if let Some(u) = &user {
        if u.is_deleted() {
            return Err(ApiError::auth(format!("user {user_id:?} was deleted")));
        }
        if u.is_deactivated() {
            return Err(ApiError::auth(format!("user {user_id:?} is deactivated")));
        }
    }
    let user_revoked = user
        .as_ref()
        .and_then(|u| u.revoke_tokens_issued_before.as_deref())
        .and_then(parse_time);
    let revoked_before = [settings.tokens_revoked_before(), user_revoked]
        .into_iter()
        .flatten()
        .max();
    if let Some(before) = revoked_before {
        match iat {
            None => {
                return Err(ApiError::new(ErrorCode::TokenUsedBeforeIssuedAt, "JWTAuth error: token has no iat claim and tokens issued before a revocation date are refused"))
            }
            Some(iat) if iat < before.timestamp() => {
                return Err(ApiError::new(ErrorCode::TokenUsedBeforeIssuedAt, "JWTAuth error: token was revoked (issued before the revocation date)"))
            }
            Some(_) => {}
        }
    }
    Ok(Caller::User {
        id: user_id,
        user: user.map(Box::new),
    })
}

/// Sign a user token (for guests and tests): HS256 with the app secret.
pub fn sign_user_token(secret: &str, user_id: &str, iat: Option<i64>) -> Result<String, ApiError> {
    let mut claims = Map::new();
    claims.insert("user_id".into(), Value::String(user_id.into()));
    if let Some(iat) = iat {
        claims.insert("iat".into(), Value::from(iat));
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| ApiError::internal(format!("token could not be signed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(claims: Value, secret: &str, alg: Algorithm) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(alg),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn only_hs256_with_the_app_secret_passes() {
        let ok = sign(
            serde_json::json!({"server": true}),
            "s3cret",
            Algorithm::HS256,
        );
        assert!(decode_token(&ok, "s3cret", false).is_ok());
        let wrong = sign(
            serde_json::json!({"server": true}),
            "other",
            Algorithm::HS256,
        );
        assert_eq!(
            decode_token(&wrong, "s3cret", false).unwrap_err().code,
            ErrorCode::TokenSignatureInvalid
        );
        let hs512 = sign(
            serde_json::json!({"server": true}),
            "s3cret",
            Algorithm::HS512,
        );
        assert_eq!(
            decode_token(&hs512, "s3cret", false).unwrap_err().code,
            ErrorCode::TokenSignatureInvalid
        );
        // alg: none with an empty signature
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzZXJ2ZXIiOnRydWV9.";
        assert!(decode_token(none, "s3cret", false).is_err());
        assert!(decode_token(none, "s3cret", true).is_err());
    }

    #[test]
    fn expiry_is_enforced_and_dev_tokens_need_the_setting() {
        let expired = sign(
            serde_json::json!({"user_id": "u", "exp": 1_000_000}),
            "s",
            Algorithm::HS256,
        );
        assert_eq!(
            decode_token(&expired, "s", false).unwrap_err().code,
            ErrorCode::TokenExpired
        );
        let dev = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyX2lkIjoiam9obiJ9.devtoken";
        assert!(decode_token(dev, "s", false).is_err());
        assert_eq!(decode_token(dev, "s", true).unwrap()["user_id"], "john");
        // stream-chat-js devToken("ab"): padded standard base64 payload.
        let padded = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyX2lkIjoiYWIifQ==.devtoken";
        assert_eq!(decode_token(padded, "s", true).unwrap()["user_id"], "ab");
    }

    #[test]
    fn tokens_not_valid_yet_are_refused() {
        let later = jsonwebtoken::get_current_timestamp() + 3600;
        let nbf = sign(
            serde_json::json!({"user_id": "u", "nbf": later}),
            "s",
            Algorithm::HS256,
        );
        assert_eq!(
            decode_token(&nbf, "s", false).unwrap_err().code,
            ErrorCode::TokenNotValidYet
        );
        let past = sign(
            serde_json::json!({"user_id": "u", "nbf": later - 7200}),
            "s",
            Algorithm::HS256,
        );
        assert!(decode_token(&past, "s", false).is_ok());
    }
}
