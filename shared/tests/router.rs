//! The routers in process (`tower::ServiceExt::oneshot`, no server): the edge's CORS, envelope
//! and rate-limit headers, and a use case reached through its route, as a client sends it.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use support::chat::{token, TestChat, API_KEY};
use tower::ServiceExt;

async fn send(t: &TestChat, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let res = t.router().oneshot(req).await.expect("response");
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

fn call(method: &str, path: &str, user: Option<&str>, body: Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(format!("{path}?api_key={API_KEY}"))
        .header("authorization", token(user))
        .header("stream-auth-type", "jwt")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

#[tokio::test]
async fn preflights_are_answered_for_the_clients_headers() {
    let t = TestChat::embedded().await;
    let preflight = Request::builder()
        .method("OPTIONS")
        .uri("/channels")
        .header("origin", "http://app.test")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,stream-auth-type,x-stream-client,content-type",
        )
        .body(Body::empty())
        .expect("request");
    let (status, headers, _) = send(&t, preflight).await;
    assert!(status.is_success(), "{status}");
    assert_eq!(headers["access-control-allow-origin"], "*");
    let allowed = headers["access-control-allow-headers"]
        .to_str()
        .unwrap_or_default();
    assert!(allowed.contains("stream-auth-type") && allowed.contains("x-stream-client"));
}

#[tokio::test]
async fn a_member_sends_through_the_route_and_errors_keep_the_envelope() {
    let t = TestChat::embedded().await;
    t.users(&["ann", "bob"]).await;
    t.channel("talk", &["ann", "bob"]).await;
    let (status, headers, body) = send(
        &t,
        call(
            "POST",
            "/channels/messaging/talk/message",
            Some("ann"),
            json!({"message": {"text": "hello"}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"]["text"], "hello");
    assert!(headers.contains_key("x-ratelimit-remaining"));

    // A user outside the channel is refused in Stream's envelope.
    t.users(&["eve"]).await;
    let (status, _, body) = send(
        &t,
        call(
            "POST",
            "/channels/messaging/talk/message",
            Some("eve"),
            json!({"message": {"text": "let me in"}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    for field in [
        "code",
        "message",
        "StatusCode",
        "duration",
        "more_info",
        "details",
    ] {
        assert!(body.get(field).is_some(), "{field} missing from {body}");
    }
}
