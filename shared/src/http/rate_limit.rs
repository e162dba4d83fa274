//! Request budgets the way Stream counts them, in fixed one-minute windows: per app and endpoint
//! for server-side calls, per app, platform and endpoint plus per user and endpoint for
//! client-side calls, and per source address for anonymous calls and failed authentication, so
//! no caller spends anyone else's budget. Reported in the `x-ratelimit-*` headers and by
//! `GET /rate_limits`. Counts live in the process (one Lambda instance, or chat-local).

use axum::http::{HeaderMap, HeaderValue, Method};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// The app's budget per minute and platform of an endpoint without its own (Stream's default).
pub const APP_REQUESTS_PER_MINUTE: u64 = 1_000;
/// Requests per endpoint per minute for one user (client side; servers are not subject to it).
pub const USER_REQUESTS_PER_MINUTE: u64 = 60;
/// Anonymous requests per endpoint per minute from one source address.
pub const ANONYMOUS_REQUESTS_PER_MINUTE: u64 = 600;
/// Failed authentications per minute from one source address, over all endpoints; past it the
/// source gets 429 instead of 401 until the window ends.
pub const FAILED_AUTH_PER_MINUTE: u64 = 1_000;
const WINDOW_SECS: u64 = 60;
/// Budgets tracked at once; past it, new callers share one overflow budget per endpoint, so
/// memory stays bounded whatever callers and paths are thrown at the process.
const MAX_TRACKED: usize = 100_000;

/// The process's limiter (`CHAT_RATE_LIMITS=off` turns it off, e.g. for benchmarks).
pub static LIMITER: LazyLock<RateLimiter> = LazyLock::new(|| RateLimiter {
    enabled: std::env::var("CHAT_RATE_LIMITS").map_or(true, |v| v != "off"),
    windows: Mutex::default(),
});

/// Where a client-side call comes from, as the `X-Stream-Client` header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Platform {
    ServerSide,
    Web,
    Android,
    Ios,
    Unity,
}

impl Platform {
    pub const ALL: [Platform; 5] = [
        Platform::ServerSide,
        Platform::Android,
        Platform::Ios,
        Platform::Web,
        Platform::Unity,
    ];

    /// The client platform named by `X-Stream-Client` (anything else counts as web).
    pub fn of_client(header: Option<&str>) -> Platform {
        let h = header.unwrap_or_default().to_ascii_lowercase();
        if h.contains("android") {
            Platform::Android
        } else if h.contains("ios") || h.contains("swift") {
            Platform::Ios
        } else if h.contains("unity") {
            Platform::Unity
        } else {
            Platform::Web
        }
    }

    /// The name `GET /rate_limits` uses.
    pub fn name(self) -> &'static str {
        match self {
            Platform::ServerSide => "server_side",
            Platform::Web => "web",
            Platform::Android => "android",
            Platform::Ios => "ios",
            Platform::Unity => "unity",
        }
    }
}

/// Who a budget belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Scope {
    App(Platform),
    User(String),
    Anonymous(IpAddr),
    FailedAuth(IpAddr),
    /// Callers beyond `MAX_TRACKED` in one window.
    Overflow,
}

/// Stream's name for each endpoint (the OpenAPI operation), by method and route, with the app's
/// budget for it per minute and platform (Stream's default table: 10,000 for connecting and
/// reading channels, 1,000 for messages and most calls, 300 for member, mute and user updates,
/// 60 for administration).
const ENDPOINTS: &[(&str, &str, &str, u64)] = &[
    ("GET", "/app", "GetApp", 10_000),
    ("PATCH", "/app", "UpdateApp", 60),
    ("GET", "/rate_limits", "GetRateLimits", 1_000),
    ("GET", "/channeltypes", "ListChannelTypes", 60),
    ("POST", "/channeltypes", "CreateChannelType", 60),
    ("GET", "/channeltypes/{name}", "GetChannelType", 60),
    ("PUT", "/channeltypes/{name}", "UpdateChannelType", 60),
    ("DELETE", "/channeltypes/{name}", "DeleteChannelType", 60),
    ("GET", "/roles", "ListRoles", 1_000),
    ("POST", "/roles", "CreateRole", 1_000),
    ("DELETE", "/roles/{name}", "DeleteRole", 1_000),
    ("GET", "/permissions", "ListPermissions", 1_000),
    ("GET", "/permissions/{id}", "GetPermission", 1_000),
    ("GET", "/tasks/{id}", "GetTask", 1_000),
    ("POST", "/export_channels", "ExportChannels", 60),
    ("GET", "/commands", "ListCommands", 60),
    ("POST", "/commands", "CreateCommand", 60),
    ("GET", "/commands/{name}", "GetCommand", 60),
    ("PUT", "/commands/{name}", "UpdateCommand", 60),
    ("DELETE", "/commands/{name}", "DeleteCommand", 60),
    (
        "GET",
        "/export_channels/{id}",
        "GetExportChannelsStatus",
        1_000,
    ),
    ("POST", "/export/users", "ExportUsers", 60),
    ("GET", "/users/{id}/export", "ExportUser", 60),
    ("GET", "/users", "QueryUsers", 1_000),
    ("POST", "/users", "UpdateUsers", 300),
    ("PATCH", "/users", "UpdateUsersPartial", 300),
    ("DELETE", "/users/{id}", "DeleteUser", 60),
    ("POST", "/users/{id}/deactivate", "DeactivateUser", 60),
    ("POST", "/users/{id}/reactivate", "ReactivateUser", 60),
    ("POST", "/users/deactivate", "DeactivateUsers", 60),
    ("POST", "/users/reactivate", "ReactivateUsers", 60),
    ("POST", "/users/delete", "DeleteUsers", 60),
    ("POST", "/users/restore", "RestoreUsers", 60),
    ("POST", "/guest", "CreateGuest", 1_000),
    ("POST", "/moderation/mute", "MuteUser", 300),
    ("POST", "/moderation/ban", "BanUser", 300),
    ("DELETE", "/moderation/ban", "UnbanUser", 300),
    ("GET", "/query_banned_users", "QueryBannedUsers", 300),
    (
        "GET",
        "/query_future_channel_bans",
        "QueryFutureChannelBans",
        300,
    ),
    ("POST", "/moderation/flag", "Flag", 300),
    ("GET", "/blocklists", "ListBlockLists", 300),
    ("POST", "/blocklists", "CreateBlockList", 300),
    ("GET", "/blocklists/{name}", "GetBlockList", 300),
    ("PUT", "/blocklists/{name}", "UpdateBlockList", 300),
    ("DELETE", "/blocklists/{name}", "DeleteBlockList", 300),
    ("POST", "/moderation/unflag", "Unflag", 300),
    ("POST", "/moderation/reports", "QueryFlagReports", 300),
    ("PATCH", "/moderation/reports/{id}", "ReviewFlagReport", 300),
    ("GET", "/moderation/flags/message", "QueryMessageFlags", 300),
    ("POST", "/moderation/unmute", "UnmuteUser", 300),
    ("GET", "/users/block", "GetBlockedUsers", 1_000),
    ("POST", "/users/block", "BlockUsers", 1_000),
    ("POST", "/users/unblock", "UnblockUsers", 1_000),
    ("POST", "/channels", "QueryChannels", 10_000),
    ("POST", "/channels/delete", "DeleteChannels", 60),
    (
        "POST",
        "/channels/{type}/query",
        "GetOrCreateDistinctChannel",
        10_000,
    ),
    (
        "POST",
        "/channels/{type}/{id}/query",
        "GetOrCreateChannel",
        10_000,
    ),
    ("POST", "/channels/{type}/{id}", "UpdateChannel", 300),
    (
        "PATCH",
        "/channels/{type}/{id}",
        "UpdateChannelPartial",
        300,
    ),
    ("DELETE", "/channels/{type}/{id}", "DeleteChannel", 60),
    (
        "POST",
        "/channels/{type}/{id}/truncate",
        "TruncateChannel",
        60,
    ),
    ("POST", "/channels/{type}/{id}/hide", "HideChannel", 300),
    ("POST", "/channels/{type}/{id}/show", "ShowChannel", 300),
    (
        "POST",
        "/channels/{type}/{id}/stop-watching",
        "StopWatchingChannel",
        1_000,
    ),
    ("POST", "/channels/{type}/{id}/event", "SendEvent", 10_000),
    (
        "PATCH",
        "/channels/{type}/{id}/member/{user_id}",
        "UpdateMemberPartial",
        1_000,
    ),
    ("GET", "/members", "QueryMembers", 300),
    ("POST", "/moderation/mute/channel", "MuteChannel", 300),
    ("POST", "/moderation/unmute/channel", "UnmuteChannel", 300),
    (
        "POST",
        "/channels/{type}/{id}/message",
        "SendMessage",
        1_000,
    ),
    (
        "GET",
        "/channels/{type}/{id}/messages",
        "GetManyMessages",
        1_000,
    ),
    (
        "GET",
        "/channels/{type}/{id}/pinned_messages",
        "GetPinnedMessages",
        1_000,
    ),
    ("GET", "/messages/{id}", "GetMessage", 1_000),
    ("POST", "/messages/{id}", "UpdateMessage", 1_000),
    ("PUT", "/messages/{id}", "UpdateMessagePartial", 1_000),
    ("DELETE", "/messages/{id}", "DeleteMessage", 1_000),
    ("GET", "/messages/{id}/replies", "GetReplies", 1_000),
    ("POST", "/messages/{id}/undelete", "UndeleteMessage", 1_000),
    ("POST", "/messages/{id}/commit", "CommitMessage", 1_000),
    ("POST", "/messages/{id}/action", "RunMessageAction", 1_000),
    (
        "POST",
        "/channels/{type}/{id}/file",
        "UploadChannelFile",
        1_000,
    ),
    (
        "DELETE",
        "/channels/{type}/{id}/file",
        "DeleteChannelFile",
        1_000,
    ),
    (
        "POST",
        "/channels/{type}/{id}/image",
        "UploadChannelImage",
        1_000,
    ),
    (
        "DELETE",
        "/channels/{type}/{id}/image",
        "DeleteChannelImage",
        1_000,
    ),
    ("GET", "/og", "GetOG", 1_000),
    ("POST", "/devices", "CreateDevice", 300),
    ("POST", "/check_push", "CheckPush", 60),
    ("POST", "/segments", "CreateSegment", 60),
    ("POST", "/segments/query", "QuerySegments", 1_000),
    ("GET", "/segments/{id}", "GetSegment", 1_000),
    ("PUT", "/segments/{id}", "UpdateSegment", 60),
    ("DELETE", "/segments/{id}", "DeleteSegment", 60),
    ("POST", "/segments/{id}/addtargets", "AddSegmentTargets", 60),
    (
        "POST",
        "/segments/{id}/deletetargets",
        "DeleteSegmentTargets",
        60,
    ),
    (
        "POST",
        "/segments/{id}/targets/query",
        "QuerySegmentTargets",
        1_000,
    ),
    (
        "GET",
        "/segments/{id}/target/{target_id}",
        "SegmentTargetExists",
        10_000,
    ),
    ("POST", "/campaigns", "CreateCampaign", 60),
    ("POST", "/campaigns/query", "QueryCampaigns", 1_000),
    ("GET", "/campaigns/{id}", "GetCampaign", 1_000),
    ("PUT", "/campaigns/{id}", "UpdateCampaign", 60),
    ("DELETE", "/campaigns/{id}", "DeleteCampaign", 60),
    ("POST", "/campaigns/{id}/start", "StartCampaign", 60),
    ("POST", "/campaigns/{id}/stop", "StopCampaign", 60),
    ("GET", "/push_providers", "ListPushProviders", 1_000),
    ("POST", "/push_providers", "UpsertPushProvider", 1_000),
    (
        "DELETE",
        "/push_providers/{type}/{name}",
        "DeletePushProvider",
        1_000,
    ),
    ("GET", "/devices", "ListDevices", 60),
    ("DELETE", "/devices", "DeleteDevice", 60),
    (
        "POST",
        "/push_preferences",
        "UpdatePushNotificationPreferences",
        1_000,
    ),
    ("POST", "/uploads/presign", "PresignUpload", 1_000),
    ("POST", "/uploads/file", "UploadFile", 1_000),
    ("DELETE", "/uploads/file", "DeleteFile", 1_000),
    ("POST", "/uploads/image", "UploadImage", 1_000),
    ("DELETE", "/uploads/image", "DeleteImage", 1_000),
    (
        "POST",
        "/messages/{id}/translate",
        "TranslateMessage",
        1_000,
    ),
    ("POST", "/messages/{id}/reaction", "SendReaction", 1_000),
    (
        "DELETE",
        "/messages/{id}/reaction/{type}",
        "DeleteReaction",
        1_000,
    ),
    ("GET", "/messages/{id}/reactions", "GetReactions", 1_000),
    ("POST", "/messages/{id}/reactions", "QueryReactions", 1_000),
    ("GET", "/search", "Search", 300),
    ("POST", "/threads", "QueryThreads", 1_000),
    ("GET", "/threads/{id}", "GetThread", 1_000),
    ("PATCH", "/threads/{id}", "UpdateThreadPartial", 1_000),
    ("POST", "/channels/{type}/{id}/read", "MarkRead", 10_000),
    ("POST", "/channels/{type}/{id}/unread", "MarkUnread", 1_000),
    ("POST", "/channels/read", "MarkChannelsRead", 10_000),
    ("POST", "/channels/delivered", "MarkDelivered", 1_000),
    ("GET", "/unread", "UnreadCounts", 1_000),
    ("POST", "/unread_batch", "UnreadCountsBatch", 1_000),
    ("GET", "/connect/endpoint", "GetSessionEndpoint", 1_000),
];

/// An endpoint as the limiter counts it: Stream's name and the app's budget per minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub name: &'static str,
    pub app_limit: u64,
}

/// The endpoint a request matched (`Other` for routes without a name of their own).
pub fn endpoint_of(method: &Method, route: Option<&str>) -> Endpoint {
    route
        .and_then(|route| {
            ENDPOINTS
                .iter()
                .find(|(m, r, _, _)| *r == route && *m == method.as_str())
        })
        .map(|(_, _, name, limit)| Endpoint {
            name,
            app_limit: *limit,
        })
        .unwrap_or(Endpoint {
            name: "Other",
            app_limit: APP_REQUESTS_PER_MINUTE,
        })
}

/// The budget a request was counted against, for its response headers.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub limit: u64,
    pub remaining: u64,
    /// Unix second the window ends.
    pub reset: u64,
    pub exceeded: bool,
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
        if self.exceeded {
            let wait = self.reset.saturating_sub(now_secs()).max(1);
            headers.insert("retry-after", HeaderValue::from(wait));
        }
    }
}

/// What the edge knows of a request before authentication, handed to the authenticator in the
/// request's extensions; the authenticator leaves the budget it charged for the edge's headers.
#[derive(Clone, Debug)]
pub struct RequestOrigin {
    pub endpoint: Endpoint,
    pub source: Option<IpAddr>,
    pub platform: Platform,
    pub charged: Arc<Mutex<Option<Budget>>>,
}

impl RequestOrigin {
    pub fn record(&self, budget: Budget) {
        if let Ok(mut slot) = self.charged.lock() {
            *slot = Some(budget);
        }
    }

    pub fn charged(&self) -> Option<Budget> {
        self.charged.lock().ok().and_then(|s| *s)
    }
}

/// Who is asking, once authenticated.
pub enum Requester<'a> {
    Server,
    User(&'a str),
    Anonymous,
}

#[derive(Default)]
struct Windows {
    start: u64,
    used: HashMap<(Scope, &'static str), u64>,
}

pub struct RateLimiter {
    enabled: bool,
    windows: Mutex<Windows>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl RateLimiter {
    /// A limiter independent of the process's (tests).
    pub fn new(enabled: bool) -> Self {
        RateLimiter {
            enabled,
            windows: Mutex::default(),
        }
    }

    fn count(&self, charges: &[(Scope, &'static str, u64)]) -> Budget {
        let now = now_secs();
        let start = now - now % WINDOW_SECS;
        let mut w = match self.windows.lock() {
            Ok(w) => w,
            Err(e) => e.into_inner(),
        };
        if w.start != start {
            // A new window: every budget starts over, and the old keys go (memory stays bounded).
            w.used.clear();
            w.start = start;
        }
        let mut reported: Option<Budget> = None;
        for (scope, endpoint, limit) in charges {
            let mut key = (scope.clone(), *endpoint);
            if !w.used.contains_key(&key) && w.used.len() >= MAX_TRACKED {
                key = (Scope::Overflow, *endpoint);
            }
            let used = w.used.entry(key).or_insert(0);
            *used += 1;
            let budget = Budget {
                limit: *limit,
                remaining: limit.saturating_sub(*used),
                reset: start + WINDOW_SECS,
                exceeded: self.enabled && *used > *limit,
            };
            // The headers report the first budget, unless another one is exhausted.
            if reported.is_none() || (budget.exceeded && !reported.is_some_and(|r| r.exceeded)) {
                reported = Some(budget);
            }
        }
        reported.unwrap_or(Budget {
            limit: 0,
            remaining: 0,
            reset: start + WINDOW_SECS,
            exceeded: false,
        })
    }

    /// Charge an authenticated request to its budgets.
    pub fn charge(&self, origin: &RequestOrigin, who: Requester<'_>) -> Budget {
        let Endpoint { name, app_limit } = origin.endpoint;
        let platform = match who {
            Requester::Server => Platform::ServerSide,
            _ => origin.platform,
        };
        let mut charges = vec![(Scope::App(platform), name, app_limit)];
        match (who, origin.source) {
            (Requester::Server, _) | (Requester::Anonymous, None) => {}
            (Requester::User(id), _) => {
                charges.push((Scope::User(id.to_string()), name, USER_REQUESTS_PER_MINUTE))
            }
            (Requester::Anonymous, Some(ip)) => {
                charges.push((Scope::Anonymous(ip), name, ANONYMOUS_REQUESTS_PER_MINUTE))
            }
        }
        let budget = self.count(&charges);
        origin.record(budget);
        budget
    }

    /// Count a failed authentication against its source (all endpoints together).
    pub fn charge_failure(&self, origin: &RequestOrigin) -> Budget {
        let budget = match origin.source {
            Some(ip) => self.count(&[(
                Scope::FailedAuth(ip),
                "Authentication",
                FAILED_AUTH_PER_MINUTE,
            )]),
            None => self.count(&[]),
        };
        origin.record(budget);
        budget
    }

    /// The app's budgets on one platform, for `GET /rate_limits` (`endpoints` empty: all).
    pub fn app_budgets(
        &self,
        platform: Platform,
        endpoints: &[&str],
    ) -> Vec<(&'static str, Budget)> {
        let now = now_secs();
        let start = now - now % WINDOW_SECS;
        let w = match self.windows.lock() {
            Ok(w) => w,
            Err(e) => e.into_inner(),
        };
        let mut named: Vec<(&'static str, u64)> =
            ENDPOINTS.iter().map(|(_, _, n, l)| (*n, *l)).collect();
        named.sort_unstable();
        named.dedup();
        named
            .into_iter()
            .filter(|(n, _)| endpoints.is_empty() || endpoints.contains(n))
            .map(|(name, limit)| {
                let used = match w.start == start {
                    true => w.used.get(&(Scope::App(platform), name)).copied(),
                    false => None,
                };
                let budget = Budget {
                    limit,
                    remaining: limit.saturating_sub(used.unwrap_or(0)),
                    reset: start + WINDOW_SECS,
                    exceeded: false,
                };
                (name, budget)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(endpoint: &'static str, source: [u8; 4]) -> RequestOrigin {
        RequestOrigin {
            endpoint: Endpoint {
                name: endpoint,
                app_limit: 10_000,
            },
            source: Some(IpAddr::from(source)),
            platform: Platform::Web,
            charged: Arc::default(),
        }
    }

    #[test]
    fn one_user_exhausts_only_their_own_budget() {
        let limiter = RateLimiter::new(true);
        let o = origin("SendMessage", [10, 0, 0, 1]);
        for _ in 0..USER_REQUESTS_PER_MINUTE {
            assert!(!limiter.charge(&o, Requester::User("alice")).exceeded);
        }
        let over = limiter.charge(&o, Requester::User("alice"));
        assert!(over.exceeded);
        let mut headers = HeaderMap::new();
        over.write_headers(&mut headers);
        assert!(headers.contains_key("retry-after"));
        assert!(!limiter.charge(&o, Requester::User("bob")).exceeded);
        assert!(!limiter.charge(&o, Requester::Server).exceeded);
        let other = origin("QueryChannels", [10, 0, 0, 1]);
        assert!(!limiter.charge(&other, Requester::User("alice")).exceeded);
    }

    #[test]
    fn failed_authentication_is_limited_per_source() {
        let limiter = RateLimiter::new(true);
        let attacker = origin("GetApp", [10, 0, 0, 9]);
        for _ in 0..FAILED_AUTH_PER_MINUTE {
            assert!(!limiter.charge_failure(&attacker).exceeded);
        }
        assert!(limiter.charge_failure(&attacker).exceeded);
        assert!(
            !limiter
                .charge_failure(&origin("GetApp", [10, 0, 0, 8]))
                .exceeded
        );
        assert!(!limiter.charge(&attacker, Requester::Server).exceeded);
    }

    #[test]
    fn a_disabled_limiter_counts_but_never_refuses() {
        let limiter = RateLimiter::new(false);
        let o = origin("SendMessage", [10, 0, 0, 1]);
        for _ in 0..=USER_REQUESTS_PER_MINUTE {
            assert!(!limiter.charge(&o, Requester::User("alice")).exceeded);
        }
    }

    #[test]
    fn endpoints_have_stream_names() {
        let send = endpoint_of(&Method::POST, Some("/channels/{type}/{id}/message"));
        assert_eq!((send.name, send.app_limit), ("SendMessage", 1_000));
        assert_eq!(endpoint_of(&Method::GET, None).name, "Other");
    }
}
