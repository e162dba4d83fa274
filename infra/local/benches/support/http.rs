//! What the HTTP benchmarks share: a `chat-local` child process, a keep-alive client, a
//! server-side request, and a phase of concurrent requests with its rate and percentiles.

#![allow(dead_code)]

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use serde_json::json;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const KEY: &str = "load-key";
pub const SECRET: &str = "load-secret";

pub type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Server {
    /// The benchmarked release `chat-local` on `dir`'s on-disk store, answering `/health`, and
    /// a keep-alive client to it. Rate limits are off: a benchmark sends far over one user's
    /// budget, and measures the request path, not the limiter.
    pub async fn start(dir: &std::path::Path) -> (Server, Http) {
        let port = free_port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_chat-local"))
            .args(["--port", &port.to_string(), "--data-dir"])
            .arg(dir)
            .env("CHAT_API_KEY", KEY)
            .env("CHAT_API_SECRET", SECRET)
            .env("CHAT_RATE_LIMITS", "off")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start chat-local");
        let server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http: Http = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        let deadline = Instant::now() + Duration::from_secs(30);
        while call(&http, &server.url, "GET", "/health", None).await != 200 {
            assert!(Instant::now() < deadline, "chat-local did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (server, http)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn server_token() -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"server": true}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token")
}

pub async fn call(
    http: &Http,
    url: &str,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> u16 {
    match http.request(request(url, method, path, body)).await {
        Ok(res) => {
            let status = res.status().as_u16();
            let _ = res.into_body().collect().await;
            status
        }
        Err(_) => 0,
    }
}

/// A server-side request.
fn request(
    url: &str,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> axum::http::Request<Full<Bytes>> {
    let sep = if path.contains('?') { '&' } else { '?' };
    axum::http::Request::builder()
        .method(method)
        .uri(format!("{url}{path}{sep}api_key={KEY}"))
        .header("authorization", server_token())
        .header("stream-auth-type", "jwt")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .expect("request")
}

/// A server-side request's status and JSON answer.
pub async fn call_json(
    http: &Http,
    url: &str,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    match http.request(request(url, method, path, body)).await {
        Ok(res) => {
            let status = res.status().as_u16();
            let bytes = res
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            (status, serde_json::from_slice(&bytes).unwrap_or_default())
        }
        Err(_) => (0, serde_json::Value::Null),
    }
}

/// `clients` tasks share `requests` requests; `make(i)` gives request i. Returns requests/s,
/// p50, p99 and how many did not answer 200.
pub async fn phase_of<F>(
    http: &Http,
    url: &str,
    clients: usize,
    requests: usize,
    make: F,
) -> (f64, Duration, Duration, usize)
where
    F: Fn(usize) -> (&'static str, String, Option<serde_json::Value>) + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, url, make) = (http.clone(), url.to_string(), make.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut i = c;
            while i < requests {
                let (method, path, body) = make(i);
                let t = Instant::now();
                let status = call(&http, &url, method, &path, body.as_ref()).await;
                out.push((t.elapsed(), status));
                i += clients;
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    let elapsed = started.elapsed();
    let refused = all.iter().filter(|(_, s)| *s != 200 && *s != 201).count();
    let mut times: Vec<Duration> = all.into_iter().map(|(d, _)| d).collect();
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    (
        requests as f64 / elapsed.as_secs_f64(),
        at(0.5),
        at(0.99),
        refused,
    )
}

pub fn ms(d: Duration) -> String {
    format!("{:.2}ms", d.as_secs_f64() * 1000.0)
}

/// Sends `n` messages from `clients` clients over `channels` channels `<prefix>-NN` (each sent
/// by its user of the same name), refusing none: (sends/s, p50, p99).
pub async fn message_phase(
    http: &Http,
    url: &str,
    prefix: &'static str,
    channels: usize,
    clients: usize,
    round: usize,
    n: usize,
) -> (f64, Duration, Duration) {
    let (rate, p50, p99, refused) = phase_of(http, url, clients, n, move |i| {
        let c = i % channels;
        let body = json!({"message": {"text": format!("round {round} #{i}"), "user_id": format!("{prefix}-{c:02}")}});
        (
            "POST",
            format!("/channels/messaging/{prefix}-{c:02}/message"),
            Some(body),
        )
    })
    .await;
    assert_eq!(refused, 0, "sends were refused");
    (rate, p50, p99)
}
