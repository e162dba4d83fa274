//! The HTTP edge: one axum router per route family (each Lambda function serves one, chat-local
//! merges them), request authentication, Stream's envelope with `duration`, rate-limit headers
//! and one log line per request.

pub mod app;
pub mod auth;
pub mod campaigns;
pub mod channels;
pub mod commands;
pub mod exports;
pub mod messages;
pub mod rate_limit;
pub mod reply;
pub mod uploads;
pub mod users;

use crate::domain::limits::{
    MAX_REQUEST_BODY_BYTES, MAX_REQUEST_HEADER_BYTES, MAX_REQUEST_URI_BYTES, REQUEST_DEADLINE_SECS,
};
use crate::domain::{ApiError, ErrorCode};
use crate::service::Chat;
use axum::body::Body as AxumBody;
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rate_limit::{Platform, RequestOrigin};
use reply::{error_envelope, ErrorReply, PendingBody};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use reply::{Body, HttpResult, Params, Reply};

/// Which browser origins may call the API (`Access-Control-Allow-Origin`).
#[derive(Clone, Debug, PartialEq)]
pub enum CorsOrigins {
    Any,
    List(Vec<HeaderValue>),
}

impl CorsOrigins {
    /// `*` (or nothing) for any origin, else a comma-separated list of origins.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let spec = spec.trim();
        if spec.is_empty() || spec == "*" {
            return Ok(CorsOrigins::Any);
        }
        spec.split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|o| {
                HeaderValue::from_str(o.trim_end_matches('/'))
                    .map_err(|_| format!("{o:?} is not a valid origin"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(CorsOrigins::List)
    }

    /// `CHAT_CORS_ORIGINS` (any origin when unset or invalid).
    pub fn from_env() -> Self {
        std::env::var("CHAT_CORS_ORIGINS")
            .ok()
            .and_then(|v| Self::parse(&v).ok())
            .unwrap_or(CorsOrigins::Any)
    }

    fn layer(&self) -> CorsLayer {
        let allow = match self {
            CorsOrigins::Any => AllowOrigin::any(),
            CorsOrigins::List(list) => AllowOrigin::list(list.clone()),
        };
        // The headers Stream's clients send, and the rate-limit headers they may read.
        let request_headers = [
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("stream-auth-type"),
            HeaderName::from_static("x-stream-client"),
            HeaderName::from_static("x-client-request-id"),
        ];
        let exposed = [
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderName::from_static("x-ratelimit-reset"),
            header::RETRY_AFTER,
        ];
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers(request_headers)
            .expose_headers(exposed)
            .max_age(Duration::from_secs(86400))
    }
}

/// Wrap a route family with the edge every function shares: CORS, the envelope, rate limits,
/// the request deadline, logs, `GET /health`, and Stream's error for unknown routes. Allowed
/// origins come from `CHAT_CORS_ORIGINS`.
pub fn with_edge(routes: Router<Chat>, chat: Chat) -> Router {
    with_edge_for(routes, chat, &CorsOrigins::from_env())
}

/// [`with_edge`] with the allowed origins given.
pub fn with_edge_for(routes: Router<Chat>, chat: Chat, cors: &CorsOrigins) -> Router {
    routes
        .route("/health", get(health))
        .fallback(unknown_route)
        .method_not_allowed_fallback(unknown_route)
        .layer(middleware::from_fn(edge))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BODY_BYTES))
        .layer(cors.layer())
        .with_state(chat)
}

async fn health() -> Reply {
    Reply::json(serde_json::json!({"status": "ok"}))
}

async fn unknown_route(req: Request) -> ErrorReply {
    ErrorReply(ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    )))
}

/// Write calls an anonymous caller may make (everything else but reads is refused at the edge):
/// reading channels and threads through their POST queries, leaving a watch, becoming a guest.
const ANONYMOUS_CALLS: &[&str] = &[
    "/channels",
    "/channels/{type}/{id}/query",
    "/channels/{type}/{id}/stop-watching",
    "/threads",
    "/guest",
];

/// The address a request came from: the socket's peer on chat-local, the last hop API Gateway
/// appended to `X-Forwarded-For` behind it (earlier entries are the client's to forge).
fn source_address(req: &Request) -> Option<IpAddr> {
    if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        return Some(addr.ip());
    }
    req.headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|ip| ip.trim().parse().ok())
}

fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("multipart/"))
}

fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum()
}

/// An error answered by the edge itself, with its own HTTP status.
fn refuse(status: StatusCode, e: ApiError) -> Response {
    let mut res = status.into_response();
    res.extensions_mut()
        .insert(PendingBody(error_envelope(&e, status.as_u16())));
    res
}

/// What the edge answers instead of a response that is not in Stream's envelope (axum's own
/// rejections: a path that is not UTF-8, a body over the size limit, ...).
fn enveloped(status: StatusCode) -> Response {
    let (code, message) = match status {
        StatusCode::NOT_FOUND => (ErrorCode::DoesNotExist, "the resource does not exist"),
        StatusCode::PAYLOAD_TOO_LARGE => (
            ErrorCode::PayloadTooBig,
            "the request body is larger than the API accepts",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            ErrorCode::Input,
            "the request body must be JSON (Content-Type: application/json)",
        ),
        s if s.is_server_error() => (ErrorCode::InternalSystem, ""),
        _ => (
            ErrorCode::Input,
            "the request is malformed: check its path, query and body",
        ),
    };
    refuse(status, ApiError::new(code, message))
}

async fn edge(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let origin = RequestOrigin {
        endpoint: rate_limit::endpoint_of(&method, route.as_deref()),
        source: source_address(&req),
        platform: Platform::of_client(
            req.headers()
                .get("x-stream-client")
                .and_then(|v| v.to_str().ok()),
        ),
        charged: Default::default(),
    };
    let anonymous = req
        .headers()
        .get("stream-auth-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.eq_ignore_ascii_case("anonymous"));
    let route_name = route.clone().unwrap_or_else(|| path.clone());
    let mut res = if req.uri().to_string().len() > MAX_REQUEST_URI_BYTES {
        refuse(
            StatusCode::URI_TOO_LONG,
            ApiError::input(format!(
                "the request URI is longer than {MAX_REQUEST_URI_BYTES} bytes"
            )),
        )
    } else if header_bytes(req.headers()) > MAX_REQUEST_HEADER_BYTES {
        refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::input(format!(
                "the request headers are larger than {MAX_REQUEST_HEADER_BYTES} bytes"
            )),
        )
    } else if anonymous
        && method != Method::GET
        && !route
            .as_deref()
            .is_some_and(|r| ANONYMOUS_CALLS.contains(&r))
        && route.is_some()
    {
        ErrorReply(ApiError::not_allowed(
            "anonymous users may only read: connect as a user (or a guest) to make this call",
        ))
        .into_response()
    } else {
        req.extensions_mut().insert(origin.clone());
        // The body is read before the route runs, whether or not the route uses it (the SDKs
        // send `{}` with DELETE and some POSTs): answering before a body has arrived made the
        // server drop the keep-alive connection under the client's next request. Uploads
        // (multipart) stream to their route.
        if !is_multipart(req.headers()) {
            let (parts, body) = req.into_parts();
            match axum::body::to_bytes(body, MAX_REQUEST_BODY_BYTES).await {
                Ok(bytes) => req = Request::from_parts(parts, axum::body::Body::from(bytes)),
                Err(_) => {
                    return enveloped(StatusCode::PAYLOAD_TOO_LARGE);
                }
            }
        }
        // A panic in a use case answers 500 in the envelope instead of dropping the connection;
        // a request past its deadline is answered, so no request holds up a shutdown.
        use futures::FutureExt;
        let run = std::panic::AssertUnwindSafe(next.run(req)).catch_unwind();
        match tokio::time::timeout(Duration::from_secs(REQUEST_DEADLINE_SECS), run).await {
            Ok(Ok(res)) => res,
            Ok(Err(_)) => ErrorReply(ApiError::internal(format!(
                "the request to {route_name} panicked"
            )))
            .into_response(),
            Err(_) => {
                tracing::warn!(path = %path, "request passed its deadline");
                refuse(
                    StatusCode::GATEWAY_TIMEOUT,
                    ApiError::internal("the request passed its deadline"),
                )
            }
        }
    };
    let status = res.status();
    if (status.is_client_error() || status.is_server_error())
        && res.extensions().get::<PendingBody>().is_none()
    {
        let headers = std::mem::take(res.headers_mut());
        res = enveloped(status);
        for (name, value) in headers.iter() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                res.headers_mut().insert(name.clone(), value.clone());
            }
        }
    }
    let elapsed = started.elapsed();
    if let Some(PendingBody(mut body)) = res.extensions_mut().remove::<PendingBody>() {
        body.insert(
            "duration".into(),
            serde_json::Value::String(format!("{:.2}ms", elapsed.as_secs_f64() * 1000.0)),
        );
        let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        res.headers_mut().remove(header::CONTENT_LENGTH);
        *res.body_mut() = AxumBody::from(bytes);
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if let Some(budget) = origin.charged() {
        budget.write_headers(res.headers_mut());
    }
    tracing::info!(
        method = %method,
        path = %path,
        status = status.as_u16(),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::warn!(path = %path, "request failed with an internal error");
    }
    res
}
