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
/// Longest channel id (seed "Creating Channels": max length 64 characters).
pub const MAX_CHANNEL_ID_LEN: usize = 64;
/// Members added, removed, invited or promoted/demoted per channel update call (seed: "You can
/// only add/remove up to 100 members at once"; the same for moderators).
pub const MAX_MEMBERS_PER_CALL: usize = 100;
/// Slow mode cooldown bounds in seconds (seed: "between 1 and 120 seconds"); 0 switches it off.
pub const CHANNEL_COOLDOWN_RANGE: std::ops::RangeInclusive<u32> = 1..=120;
/// Query channels: default and largest page (seed "Query Options").
pub const DEFAULT_QUERY_CHANNELS_LIMIT: usize = 10;
pub const MAX_QUERY_CHANNELS_LIMIT: usize = 30;
/// Messages per channel in query channels (default), and the largest page anywhere.
pub const DEFAULT_CHANNEL_MESSAGE_LIMIT: usize = 25;
/// Messages of a single channel query when the request names no limit.
pub const CHANNEL_QUERY_MESSAGE_LIMIT: usize = 100;
pub const MAX_CHANNEL_MESSAGE_LIMIT: usize = 300;
/// Members (and watchers) per page of a channel query, default and largest.
pub const DEFAULT_CHANNEL_MEMBER_LIMIT: usize = 100;
pub const MAX_CHANNEL_MEMBER_LIMIT: usize = 300;
/// Largest member / watcher offset of a channel query (seed "Channel Pagination").
pub const MAX_CHANNEL_MEMBER_OFFSET: usize = 10_000;
/// Largest `member_limit` of query channels.
pub const MAX_QUERY_CHANNELS_MEMBER_LIMIT: usize = 100;
/// Largest number of cids one batch delete takes.
pub const MAX_DELETE_CHANNELS: usize = 100;
/// Query members: default and largest page.
pub const DEFAULT_QUERY_MEMBERS_LIMIT: usize = 100;
pub const MAX_QUERY_MEMBERS_LIMIT: usize = 100;
/// Longest message id (seed "Message Format").
pub const MAX_MESSAGE_ID_LEN: usize = 255;
/// Attachments per message and mentioned users per message (seed "Message Format").
pub const MAX_ATTACHMENTS: usize = 30;
pub const MAX_MENTIONED_USERS: usize = 25;
/// Longest request URI (path and query) and largest block of request headers; above them the
/// request is refused with 414 / 431 before routing.
pub const MAX_REQUEST_URI_BYTES: usize = 8 * 1024;
pub const MAX_REQUEST_HEADER_BYTES: usize = 32 * 1024;
/// How long one request may run before it is answered with an error (above the long-poll's
/// 20 s hold), so no request keeps a shutdown waiting.
pub const REQUEST_DEADLINE_SECS: u64 = 30;
/// Filters (query channels, users, members, messages): values in one `$in` / `$nin` / array
/// condition, nesting of `$and` / `$or` / `$nor`, and field conditions in all. Above them the
/// query is refused (400) before it is evaluated.
pub const MAX_FILTER_VALUES: usize = 1000;
pub const MAX_FILTER_DEPTH: usize = 8;
pub const MAX_FILTER_CONDITIONS: usize = 100;
/// Users muted or unmuted, and channels muted or unmuted, per call.
pub const MAX_MUTE_TARGETS: usize = 100;

/// Event hooks an app may configure, and event types one hook may list.
pub const MAX_EVENT_HOOKS: usize = 20;
pub const MAX_HOOK_EVENT_TYPES: usize = 100;

/// Moderation queries (banned users, message flags): largest page and offset, and the page
/// when none is asked for.
pub const MAX_MODERATION_PAGE: usize = 300;
pub const MAX_MODERATION_OFFSET: usize = 10_000;
pub const DEFAULT_MODERATION_PAGE: usize = 25;

/// A moderation query's `limit` and `offset`, checked against their bounds.
pub fn moderation_page(
    limit: Option<usize>,
    offset: Option<usize>,
) -> Result<(usize, usize), crate::domain::ApiError> {
    use crate::domain::ApiError;
    let limit = limit.unwrap_or(DEFAULT_MODERATION_PAGE);
    if limit > MAX_MODERATION_PAGE {
        return Err(ApiError::field(
            "limit",
            format!("limit must be at most {MAX_MODERATION_PAGE}"),
        ));
    }
    let offset = offset.unwrap_or(0);
    if offset > MAX_MODERATION_OFFSET {
        return Err(ApiError::field(
            "offset",
            format!("offset must be at most {MAX_MODERATION_OFFSET}"),
        ));
    }
    Ok((limit, offset))
}
