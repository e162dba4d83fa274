//! Every numeric limit of the API, defined once (sizes, batch sizes, paging bounds).

/// Custom data on users, channels and messages (bytes of JSON).
pub const MAX_CUSTOM_DATA_BYTES: usize = 5 * 1024;
/// Users per upsert / partial update / batch call.
pub const MAX_USERS_PER_BATCH: usize = 100;
/// Longest user id.
pub const MAX_USER_ID_LEN: usize = 255;
/// Offset bound of query endpoints.
pub const MAX_QUERY_OFFSET: usize = 1000;
/// Query users: default and largest page.
pub const DEFAULT_QUERY_USERS_LIMIT: usize = 30;
pub const MAX_QUERY_USERS_LIMIT: usize = 100;
/// Custom roles an app may define.
pub const MAX_CUSTOM_ROLES: usize = 25;
/// App setting `reminders_interval` bounds, in seconds.
pub const REMINDERS_INTERVAL_RANGE: std::ops::RangeInclusive<i64> = 60..=86400;
/// Async tasks are kept this long after they finish.
pub const TASK_RETENTION_SECS: i64 = 7 * 24 * 3600;
/// Requests larger than this are refused before parsing.
pub const MAX_REQUEST_BODY_BYTES: usize = 10 * 1024 * 1024;
