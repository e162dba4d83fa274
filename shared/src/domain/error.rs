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

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::internal(format!("storage failure: {e}"))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
