//! The HTTP edge: one axum router per route family (each Lambda function serves one, chat-local
//! merges them), request authentication, Stream's envelope with `duration`, rate-limit headers
//! and one log line per request.

pub mod app;
pub mod auth;
pub mod channels;
pub mod messages;
pub mod rate_limit;
pub mod reply;
pub mod users;

use crate::service::Chat;
use axum::body::Body as AxumBody;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use reply::{ErrorReply, PendingBody};
use std::time::Instant;

pub use reply::{Body, HttpResult, Params, Reply};

/// Wrap a route family with the edge every function shares: the envelope, rate limits, logs,
/// `GET /health`, and Stream's error for unknown routes.
pub fn with_edge(routes: Router<Chat>, chat: Chat) -> Router {
    routes
        .route("/health", get(health))
        .fallback(unknown_route)
        .method_not_allowed_fallback(unknown_route)
        .layer(middleware::from_fn_with_state(chat.clone(), edge))
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::domain::limits::MAX_REQUEST_BODY_BYTES,
        ))
        .with_state(chat)
}

async fn health() -> Reply {
    Reply::json(serde_json::json!({"status": "ok"}))
}

async fn unknown_route(req: Request) -> ErrorReply {
    ErrorReply(crate::domain::ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    )))
}

async fn edge(State(chat): State<Chat>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let limit = rate_limit::LIMITER.hit(&route, &chat.keys.api_key);
    let mut res = if limit.exceeded {
        ErrorReply(crate::domain::ApiError::new(
            crate::domain::ErrorCode::RateLimit,
            format!("too many requests to {route}: try again after the reset time"),
        ))
        .into_response()
    } else {
        // A panic in a use case answers 500 in the envelope instead of dropping the connection.
        use futures::FutureExt;
        match std::panic::AssertUnwindSafe(next.run(req))
            .catch_unwind()
            .await
        {
            Ok(res) => res,
            Err(_) => ErrorReply(crate::domain::ApiError::internal(format!(
                "the request to {route} failed unexpectedly"
            )))
            .into_response(),
        }
    };
    let status = res.status();
    let elapsed = started.elapsed();
    if let Some(PendingBody(mut body)) = res.extensions_mut().remove::<PendingBody>() {
        body.insert(
            "duration".into(),
            serde_json::Value::String(format!("{:.2}ms", elapsed.as_secs_f64() * 1000.0)),
        );
        let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        *res.body_mut() = AxumBody::from(bytes);
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    limit.write_headers(res.headers_mut());
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
