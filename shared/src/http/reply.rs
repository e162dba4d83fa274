//! The wire envelope: successful replies and Stream's error body, both completed with
//! `duration` by the edge middleware, plus the request-body and query extractors that turn bad
//! input into Stream's input error.

use crate::domain::error::{describe_json_error, INTERNAL_ERROR_MESSAGE};
use crate::domain::{ApiError, ErrorCode};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// A JSON body waiting for its `duration`; the edge middleware serialises it.
#[derive(Clone, Debug)]
pub(crate) struct PendingBody(pub Map<String, Value>);

/// A successful JSON reply.
pub struct Reply(pub Map<String, Value>);

impl Reply {
    pub fn empty() -> Self {
        Reply(Map::new())
    }
    /// A reply from a JSON object (anything else becomes an empty reply).
    pub fn json(v: Value) -> Self {
        match v {
            Value::Object(m) => Reply(m),
            _ => Reply(Map::new()),
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut res = StatusCode::OK.into_response();
        res.extensions_mut().insert(PendingBody(self.0));
        res
    }
}

pub const MORE_INFO_URL: &str = "https://getstream.io/chat/docs/api_errors_response";

/// Stream's error envelope (without `duration`, which the middleware adds).
pub fn error_body(e: &ApiError) -> Map<String, Value> {
    error_envelope(e, e.status())
}

/// Stream's error envelope answered with `status` (the edge's own refusals, such as 414 and 431,
/// keep their HTTP status). Internal errors never show their detail.
pub fn error_envelope(e: &ApiError, status: u16) -> Map<String, Value> {
    let message = match e.code {
        ErrorCode::InternalSystem => INTERNAL_ERROR_MESSAGE.to_string(),
        _ => e.message.clone(),
    };
    let mut m = Map::new();
    m.insert("code".into(), Value::from(e.code.number()));
    m.insert("message".into(), Value::String(message));
    m.insert("StatusCode".into(), Value::from(status));
    m.insert("more_info".into(), Value::String(MORE_INFO_URL.into()));
    m.insert("details".into(), Value::Array(Vec::new()));
    if !e.fields.is_empty() {
        let fields: Map<String, Value> = e
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        m.insert("exception_fields".into(), Value::Object(fields));
    }
    m
}

/// An error at the edge, carrying Stream's envelope.
pub struct ErrorReply(pub ApiError);

impl From<ApiError> for ErrorReply {
    fn from(e: ApiError) -> Self {
        ErrorReply(e)
    }
}

impl IntoResponse for ErrorReply {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if self.0.code == ErrorCode::InternalSystem {
            tracing::error!(error = %self.0.message, "internal error");
        }
        let mut res = status.into_response();
        res.extensions_mut()
            .insert(PendingBody(error_body(&self.0)));
        res
    }
}

pub type HttpResult = Result<Reply, ErrorReply>;

/// A JSON request body. An empty body reads as `{}`; `null` fields read as absent where the
/// target type makes them optional.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ErrorReply;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError::new(
                ErrorCode::PayloadTooBig,
                format!("request body could not be read: {e}"),
            )
        })?;
        let bytes: &[u8] = match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            None => b"{}",
            Some(b'{') => &bytes,
            Some(_) => {
                return Err(ErrorReply(ApiError::input(
                    "invalid request body: it must be a JSON object",
                )))
            }
        };
        serde_json::from_slice(bytes).map(Body).map_err(|e| {
            ErrorReply(ApiError::input(format!(
                "invalid request body: {}",
                describe_json_error(&e)
            )))
        })
    }
}

/// The query string, form-decoded (`+` is a space), without `api_key`.
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ErrorReply;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Params(parse_query(parts.uri.query())))
    }
}

impl Params {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A whole-number parameter.
    pub fn number(&self, key: &str) -> Result<Option<usize>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::field(key, format!("{key} must be a number")))
            })
            .transpose()
    }

    /// A boolean parameter (`true` / `false` in any case, as Python sends `True`; also `1` / `0`).
    pub fn flag(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key).map(str::to_ascii_lowercase).as_deref() {
            None | Some("") => Ok(None),
            Some("true") | Some("1") => Ok(Some(true)),
            Some("false") | Some("0") => Ok(Some(false)),
            Some(v) => Err(ApiError::field(
                key,
                format!("{key} must be true or false, not {v:?}"),
            )),
        }
    }

    /// The JSON `payload` parameter of GET query endpoints.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let raw = self.get("payload").unwrap_or("{}");
        serde_json::from_str(raw).map_err(|e| {
            ApiError::field(
                "payload",
                format!(
                    "payload is not valid for this query: {}",
                    describe_json_error(&e)
                ),
            )
        })
    }
}

pub(crate) fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    query
        .map(|q| serde_urlencoded_pairs(q).into_iter().collect())
        .unwrap_or_default()
}

/// Form decoding: `+` is a space, then percent-decoding.
fn serde_urlencoded_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_as_forms() {
        let q = parse_query(Some("api_key=k&payload=%7B%22a%22%3A+1%7D&x=a+b%2Bc&flag"));
        assert_eq!(q["payload"], "{\"a\": 1}");
        assert_eq!(q["x"], "a b+c");
        assert_eq!(q["flag"], "");
        assert_eq!(form_decode("100%"), "100%");
        assert_eq!(form_decode("%4"), "%4");
    }
}
