//! The product's one error value and Stream's numeric error codes: every failure a request can
//! meet becomes an `ApiError`, which the HTTP edge renders in Stream's error envelope.

use std::fmt;

/// Stream's API error codes, as the official SDKs name them (stream-chat-js `APIErrorCodes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InternalSystem,
    AccessKey,
    AuthenticationFailed,
    Input,
    DuplicateUsername,
    RateLimit,
    DoesNotExist,
    NotAllowed,
    EventNotSupported,
    ChannelFeatureNotSupported,
    MessageTooLong,
    MultipleNestingLevel,
    PayloadTooBig,
    TokenExpired,
    TokenNotValidYet,
    TokenUsedBeforeIssuedAt,
    TokenSignatureInvalid,
    /// A long-poll request names a connection that does not exist (any more).
    ConnectionIdNotFound,
    CoolDown,
    AppSuspended,
}

impl ErrorCode {
    pub fn number(self) -> i32 {
        match self {
            ErrorCode::InternalSystem => -1,
            ErrorCode::AccessKey => 2,
            ErrorCode::AuthenticationFailed => 5,
            ErrorCode::Input => 4,
            ErrorCode::DuplicateUsername => 6,
            ErrorCode::RateLimit => 9,
            ErrorCode::DoesNotExist => 16,
            ErrorCode::NotAllowed => 17,
            ErrorCode::EventNotSupported => 18,
            ErrorCode::ChannelFeatureNotSupported => 19,
            ErrorCode::MessageTooLong => 20,
            ErrorCode::MultipleNestingLevel => 21,
            ErrorCode::PayloadTooBig => 22,
            ErrorCode::TokenExpired => 40,
            ErrorCode::TokenNotValidYet => 41,
            ErrorCode::TokenUsedBeforeIssuedAt => 42,
            ErrorCode::TokenSignatureInvalid => 43,
            ErrorCode::ConnectionIdNotFound => 46,
            ErrorCode::CoolDown => 60,
            ErrorCode::AppSuspended => 99,
        }
    }

    /// The HTTP status Stream answers with for this code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InternalSystem => 500,
            ErrorCode::AccessKey
            | ErrorCode::AuthenticationFailed
            | ErrorCode::TokenExpired
            | ErrorCode::TokenNotValidYet
            | ErrorCode::TokenUsedBeforeIssuedAt
            | ErrorCode::TokenSignatureInvalid => 401,
            ErrorCode::DoesNotExist => 404,
            ErrorCode::NotAllowed | ErrorCode::AppSuspended => 403,
            ErrorCode::RateLimit | ErrorCode::CoolDown => 429,
            ErrorCode::PayloadTooBig => 413,
            _ => 400,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Which request fields were wrong, for input errors (`exception_fields`).
    pub fields: Vec<(String, String)>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            fields: Vec::new(),
        }
    }
    pub fn input(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Input, message)
    }
    /// An input error naming the offending field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let message = message.into();
        let field = field.into();
        ApiError {
            code: ErrorCode::Input,
            message: message.clone(),
            fields: vec![(field, message)],
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::DoesNotExist, message)
    }
    pub fn not_allowed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotAllowed, message)
    }
    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::AuthenticationFailed, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InternalSystem, message)
    }
    pub fn status(&self) -> u16 {
        self.code.status()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message, self.code.number())
    }
}

impl std::error::Error for ApiError {}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        // Logged where it is answered; the caller only ever sees the generic internal message.
        ApiError::internal(format!("storage failure: {e}"))
    }
}

/// What the caller is told of an internal error (the detail goes to the log, never the wire:
/// it can name store keys and types).
pub const INTERNAL_ERROR_MESSAGE: &str =
    "internal error: the request could not be completed; try again";

/// A JSON decoding error as a caller can act on it: the position of a syntax error, or what was
/// wrong with a value, without the names of the types it was read into.
pub fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            format!("not valid JSON (line {}, column {})", e.line(), e.column())
        }
        Category::Data => {
            let full = e.to_string();
            let what = full.split(" at line ").next().unwrap_or(&full);
            scrub_type_names(what)
        }
    }
}

/// serde's messages name Rust types (`expected struct SendMessage`) and enumerate variants
/// (`unknown variant `none`, expected one of ...`): keep what the caller sent, drop the rest.
fn scrub_type_names(msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix("unknown variant ") {
        let value = rest.split(", expected").next().unwrap_or(rest);
        return format!("unsupported value {value}");
    }
    if let Some((head, expected)) = msg.split_once(", expected ") {
        let expected = if expected.starts_with("struct ")
            || expected.starts_with("a map")
            || expected.starts_with("map")
        {
            "an object"
        } else if expected.starts_with("enum ") {
            "one of the supported values"
        } else if expected.starts_with("tuple struct ") || expected.starts_with("a sequence") {
            "an array"
        } else {
            expected
        };
        return format!("{head}, expected {expected}");
    }
    msg.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct SendMessage {
        message: serde_json::Value,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    enum Alg {
        HS256,
    }

    #[test]
    fn json_errors_never_name_types() {
        let null = serde_json::from_str::<SendMessage>("null").unwrap_err();
        let m = describe_json_error(&null);
        assert!(!m.contains("SendMessage") && m.contains("an object"), "{m}");
        let variant = serde_json::from_str::<Alg>("\"none\"").unwrap_err();
        let m = describe_json_error(&variant);
        assert!(!m.contains("HS256") && m.contains("none"), "{m}");
        let syntax = serde_json::from_str::<SendMessage>("{").unwrap_err();
        assert!(describe_json_error(&syntax).starts_with("not valid JSON"));
        let missing = serde_json::from_str::<SendMessage>("{}").unwrap_err();
        assert!(describe_json_error(&missing).contains("message"));
    }
}
