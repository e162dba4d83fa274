//! Per-route request budgets in fixed one-minute windows, reported in the `x-ratelimit-*`
//! headers the SDKs read. The budget is per process (one Lambda instance, or chat-local).

use axum::http::{HeaderMap, HeaderValue};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Requests per route per minute.
pub const REQUESTS_PER_MINUTE: u64 = 10_000;
const WINDOW_SECS: u64 = 60;

pub static LIMITER: LazyLock<RateLimiter> = LazyLock::new(RateLimiter::default);

#[derive(Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<(String, String), (u64, u64)>>,
}

pub struct Budget {
    pub limit: u64,
    pub remaining: u64,
    pub reset: u64,
    pub exceeded: bool,
}

impl RateLimiter {
    pub fn hit(&self, route: &str, app: &str) -> Budget {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let window = now - now % WINDOW_SECS;
        let mut map = match self.windows.lock() {
            Ok(m) => m,
            Err(e) => e.into_inner(),
        };
        let entry = map
            .entry((route.to_string(), app.to_string()))
            .or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        entry.1 += 1;
        let used = entry.1;
        Budget {
            limit: REQUESTS_PER_MINUTE,
            remaining: REQUESTS_PER_MINUTE.saturating_sub(used),
            reset: window + WINDOW_SECS,
            exceeded: used > REQUESTS_PER_MINUTE,
        }
    }
}

impl Budget {
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        for (name, value) in [
            ("x-ratelimit-limit", self.limit),
            ("x-ratelimit-remaining", self.remaining),
            ("x-ratelimit-reset", self.reset),
        ] {
            headers.insert(name, HeaderValue::from(value));
        }
    }
}
