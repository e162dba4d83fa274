//! Item layouts: where each kind of record lives (table, partition key, sort key, index keys),
//! so every reader and writer of a record agrees on one place.

use crate::domain::clock::format_time;
use crate::domain::event::Event;
use crate::domain::ids::time_ordered_id;
use crate::store::{Condition, Item, Query, TableName, Write};

/// How long outbox events are kept: as long as a change feed can still name them (DynamoDB
/// Streams and the embedded change log both keep 24 hours); an older event is unreachable.
pub const EVENT_RETENTION_SECS: i64 = 24 * 3600;

pub fn app_settings_key() -> (String, String) {
    ("app".into(), "settings".into())
}

pub fn channel_type_key(name: &str) -> (String, String) {
    ("channeltype".into(), name.into())
}

pub fn channel_types_query() -> Query {
    Query::new(TableName::App, "channeltype")
}

pub fn role_key(name: &str) -> (String, String) {
    ("role".into(), name.into())
}

pub fn roles_query() -> Query {
    Query::new(TableName::App, "role")
}

pub fn user_key(id: &str) -> (String, String) {
    (format!("user#{id}"), "user".into())
}

/// Users listed in id order on `gsi1` (query users walks this index, never the table).
pub const USERS_INDEX_PK: &str = "users";

/// Users by role on `gsi2` (is a role still in use?).
pub fn users_with_role_pk(role: &str) -> String {
    format!("role#{role}")
}

pub fn user_item(id: &str, role: &str, data: serde_json::Value, version: u64) -> Item {
    let (pk, sk) = user_key(id);
    let mut item = Item::new(pk, sk, data)
        .with_gsi1(USERS_INDEX_PK, id)
        .with_gsi2(users_with_role_pk(role), id);
    item.version = version;
    item
}

/// One custom field's entries in the custom-field index of query users (app table; sort key:
/// the value's order key, then the user id: `domain::user_index`).
pub fn user_field_pk(field: &str) -> String {
    format!("uindex#{field}")
}

/// Users whose custom data is too large to list whole (read by every custom-field query).
pub const UNINDEXED_USERS_PK: &str = "uindex#~unindexed";

/// Present once every user is listed in the custom-field index (queries use it from then on).
pub fn user_field_index_ready_key() -> (String, String) {
    ("uindex#~ready".into(), "ready".into())
}

/// A segment (app table), listed on `gsi1` under [`SEGMENTS_PK`] by creation time.
pub fn segment_key(id: &str) -> (String, String) {
    (format!("segment#{id}"), "segment".into())
}

pub const SEGMENTS_PK: &str = "segments";

/// A segment's targets added one by one (app table; sort key: the target id).
pub fn segment_targets_pk(segment_id: &str) -> String {
    format!("segtargets#{segment_id}")
}

/// A campaign (app table), listed on `gsi1` under [`CAMPAIGNS_PK`] by creation time; its
/// delivered batches' receipts share its partition (`campaign_batch_sk`).
pub fn campaign_key(id: &str) -> (String, String) {
    (format!("campaign#{id}"), "campaign".into())
}

pub const CAMPAIGNS_PK: &str = "campaigns";

/// The receipt of a campaign's delivered batch: present once the batch is counted.
pub fn campaign_batch_sk(batch: u64) -> String {
    format!("batch#{batch:010}")
}

/// Jobs of chat-local's campaign queue, waiting or running (app table; sort key: when queued).
pub const CAMPAIGN_QUEUE_PK: &str = "campaign_queue";

/// A claimed username (normalised) within a uniqueness scope (`app` or `team:<team>`).
pub fn username_key(scope: &str, normalized: &str) -> (String, String) {
    (format!("username#{scope}#{normalized}"), "username".into())
}

pub fn task_key(id: &str) -> (String, String) {
    (format!("task#{id}"), "task".into())
}

/// The outbox write for an event, to go in the same transaction as the change it describes.
pub fn outbox_write(event: &Event) -> Write {
    let mut item = Item::new(
        event.scope.clone(),
        time_ordered_id(event.created_at),
        event.to_json(),
    );
    item.ttl = Some(event.created_at.timestamp() + EVENT_RETENTION_SECS);
    if let Some(obj) = item.data.as_object_mut() {
        obj.insert(
            "created_at".into(),
            serde_json::Value::String(format_time(event.created_at)),
        );
    }
    Write::Put {
        table: TableName::Events,
        item,
        condition: Condition::NotExists,
    }
}

/// A user's push devices (app table; sort key: the device token).
pub fn devices_pk(user_id: &str) -> String {
    format!("devices#{user_id}")
}

/// An uploaded file's record (messages table): who uploaded it, to which channel.
pub fn upload_key(id: &str) -> (String, String) {
    (format!("upload#{id}"), "upload".into())
}

/// A channel's uploads, listed on `gsi1` of the messages table (removed with the channel).
pub fn channel_uploads_pk(cid: &str) -> String {
    format!("uploads#{cid}")
}

pub fn upload_item(record: &crate::domain::upload::UploadRecord) -> Item {
    let (pk, sk) = upload_key(&record.id);
    let item = Item::new(
        pk,
        sk,
        serde_json::to_value(record).unwrap_or(serde_json::Value::Null),
    );
    match &record.cid {
        Some(cid) => item.with_gsi1(channel_uploads_pk(cid), record.id.clone()),
        None => item,
    }
}

/// A channel's partition holds the channel item and its members, so one query reads its state.
pub fn channel_pk(cid: &str) -> String {
    format!("channel#{cid}")
}

pub const CHANNEL_SK: &str = "channel";
pub const MEMBER_SK_PREFIX: &str = "member#";

/// Channels listed by type on `gsi2` (query channels by type; is a type still in use?).
pub fn channels_of_type_pk(channel_type: &str) -> String {
    format!("channels#{channel_type}")
}

/// The channels a user wrote in or belonged to without being a member now (app table; sort key:
/// the cid): those they left or were removed from, soft-deleted ones, and channels they wrote in
/// as a non-member. With their memberships, where a user's messages are (user deletion, exports).
pub fn past_channels_pk(user_id: &str) -> String {
    format!("past_channels#{user_id}")
}

/// The write that lists `cid` among `user_id`'s past channels.
pub fn past_channel_write(user_id: &str, cid: &str) -> Write {
    Write::Put {
        table: TableName::App,
        item: Item::new(
            past_channels_pk(user_id),
            cid,
            serde_json::json!({ "cid": cid }),
        ),
        condition: Condition::None,
    }
}

/// A user's channels by activity (channels table; sort key: the cid), listed on `gsi1` under
/// the same partition name by `<activity>#<cid>`: query channels' default order, read newest
/// first. `activity` is a `format_time` string (or [`ACTIVITY_ALWAYS`]).
pub fn activity_pk(user_id: &str) -> String {
    format!("activity#{user_id}")
}

/// The activity of a channel too large to keep its members' entries current: always read.
pub const ACTIVITY_ALWAYS: &str = "9999-12-31T23:59:59.999999Z";

/// Sort key of the marker that says a user's activity entries are complete: after every
/// activity on the index, so a newest-first read meets it first.
pub const ACTIVITY_READY_SK: &str = "~ready";

pub fn activity_item(user_id: &str, cid: &str, activity: &str) -> Item {
    let pk = activity_pk(user_id);
    Item::new(
        pk.clone(),
        cid,
        serde_json::json!({ "cid": cid, "activity": activity }),
    )
    .with_gsi1(pk, format!("{activity}#{cid}"))
}

pub fn activity_ready_item(user_id: &str) -> Item {
    let pk = activity_pk(user_id);
    Item::new(pk.clone(), ACTIVITY_READY_SK, serde_json::json!({})).with_gsi1(pk, ACTIVITY_READY_SK)
}

/// A user's unread flags: one per channel that may hold messages they have not read (sort key:
/// the cid), and the [`UNREAD_FLAGS_READY_SK`] marker once every membership has one.
pub fn unread_flags_pk(user_id: &str) -> String {
    format!("unread#{user_id}")
}

/// Sort key of the marker that says a user's unread flags are complete (after every cid).
pub const UNREAD_FLAGS_READY_SK: &str = "~ready";

/// A user's unread flag for `cid`. Each put carries a fresh version, so removing a flag on the
/// version read never removes one put again since.
pub fn unread_flag_item(user_id: &str, cid: &str) -> Item {
    let mut item = Item::new(unread_flags_pk(user_id), cid, serde_json::json!({}));
    item.version = (rand::random::<u64>() >> 1) | 1;
    item
}

pub fn unread_flags_ready_item(user_id: &str) -> Item {
    Item::new(
        unread_flags_pk(user_id),
        UNREAD_FLAGS_READY_SK,
        serde_json::json!({}),
    )
}

/// A user's memberships listed on `gsi1` ("my channels"), sorted by cid.
pub fn memberships_pk(user_id: &str) -> String {
    format!("member#{user_id}")
}

pub fn channel_item(cid: &str, channel_type: &str, data: serde_json::Value, version: u64) -> Item {
    let mut item = Item::new(channel_pk(cid), CHANNEL_SK, data)
        .with_gsi2(channels_of_type_pk(channel_type), cid);
    item.version = version;
    item
}

pub fn member_sk(user_id: &str) -> String {
    format!("{MEMBER_SK_PREFIX}{user_id}")
}

/// A member's item: listed under the user's memberships on `gsi1`, and while the member hid the
/// channel, under the channel's hidden members on `gsi2` (a send finds whom it brings the channel
/// back to without reading every member).
pub fn member_item(cid: &str, user_id: &str, hidden: bool, data: serde_json::Value) -> Item {
    let item = Item::new(channel_pk(cid), member_sk(user_id), data)
        .with_gsi1(memberships_pk(user_id), cid);
    if hidden {
        item.with_gsi2(hidden_members_pk(cid), user_id)
    } else {
        item
    }
}

/// The members who hid a channel, on `gsi2` (sort key: the user).
pub fn hidden_members_pk(cid: &str) -> String {
    format!("hidden#{cid}")
}

/// The read state of a user who is not a member (server-side mark read / unread of, say, a
/// channel's creator): a member-shaped record in the channel's partition, in no user's list of
/// memberships.
pub const READER_SK_PREFIX: &str = "reader#";

pub fn reader_item(cid: &str, user_id: &str, data: serde_json::Value) -> Item {
    Item::new(
        channel_pk(cid),
        format!("{READER_SK_PREFIX}{user_id}"),
        data,
    )
}

/// A user's mutes of other users (app table; sort key: the muted user), also listed under the
/// muted user on `gsi1` (`muted_by_pk`), so delivery finds who muted a sender with one query.
pub fn user_mutes_pk(user_id: &str) -> String {
    format!("user_mutes#{user_id}")
}

pub fn muted_by_pk(user_id: &str) -> String {
    format!("muted_by#{user_id}")
}

/// The users a user blocked (app table; sort key: the blocked user), also listed under the
/// blocked user on `gsi1` (`blocked_by_pk`).
pub fn user_blocks_pk(user_id: &str) -> String {
    format!("user_blocks#{user_id}")
}

pub fn blocked_by_pk(user_id: &str) -> String {
    format!("blocked_by#{user_id}")
}

/// A user's channel mutes live in one partition (sort key: the cid), read whole for
/// `me.channel_mutes` and the `muted` filter of query channels.
pub fn channel_mutes_pk(user_id: &str) -> String {
    format!("channel_mutes#{user_id}")
}

/// A channel's messages, in time order (Messages table).
pub fn channel_messages_pk(cid: &str) -> String {
    format!("messages#{cid}")
}

/// Sort key of a message: its creation time in microseconds, then its id, so that a channel's
/// messages sort by time and two messages in the same microsecond stay distinct.
pub fn message_sk(created_at: chrono::DateTime<chrono::Utc>, id: &str) -> String {
    format!("{:016}#{id}", created_at.timestamp_micros().max(0))
}

/// The per-id record of a message (Messages table): claims the id (a second send with the same
/// id is refused) and points at the message's channel and sort key.
pub fn message_id_key(id: &str) -> (String, String) {
    (format!("message#{id}"), "id".to_string())
}

/// A thread's replies listed on `gsi1` of the messages table (sort key: the reply's sort key).
pub fn replies_pk(parent_id: &str) -> String {
    format!("replies#{parent_id}")
}

/// Slow-mode records of a channel (messages table; sort key: the user id).
pub fn cooldown_pk(cid: &str) -> String {
    format!("cooldown#{cid}")
}

/// A message's reactions (messages table), one item per user and type (sort key
/// `<user>#<type>`), also listed newest first on `gsi1` under the same partition name.
pub fn reactions_pk(message_id: &str) -> String {
    format!("reactions#{message_id}")
}

pub fn reaction_sk(user_id: &str, kind: &str) -> String {
    format!("{user_id}#{kind}")
}

/// The messages one user deleted for themselves in a channel (messages table; sort key: the
/// message id).
pub fn deleted_for_me_pk(cid: &str, user_id: &str) -> String {
    format!("deleted_for_me#{cid}#{user_id}")
}

/// The users who deleted a message for themselves, on `gsi1` of the messages table (sort key:
/// the user), for delivery to leave them out.
pub fn deleted_for_pk(message_id: &str) -> String {
    format!("deleted_for#{message_id}")
}

/// A channel's pinned messages on `gsi2` of the messages table, by pin time.
pub fn pinned_pk(cid: &str) -> String {
    format!("pinned#{cid}")
}

/// Index sort key of a pinned message: pin time in µs, then id.
pub fn pinned_sk(pinned_at: chrono::DateTime<chrono::Utc>, id: &str) -> String {
    format!("{:016}#{id}", pinned_at.timestamp_micros().max(0))
}

/// One sender's pending messages in a channel (messages table), kept apart from the channel's
/// messages until committed.
pub fn pending_pk(cid: &str, user_id: &str) -> String {
    format!("pending#{cid}#{user_id}")
}

/// A thread's partition (messages table): the thread item and one item per participant.
pub fn thread_pk(parent_id: &str) -> String {
    format!("thread#{parent_id}")
}

pub const THREAD_SK: &str = "thread";

pub fn thread_participant_sk(user_id: &str) -> String {
    format!("participant#{user_id}")
}

/// A user's threads on `gsi1` (sort key: the parent message id).
pub fn threads_of_pk(user_id: &str) -> String {
    format!("threads_of#{user_id}")
}

/// A WebSocket connection's record (connections table), listed per user on `gsi1`.
pub fn connection_key(connection_id: &str) -> (String, String) {
    (format!("conn#{connection_id}"), "conn".to_string())
}

pub fn user_connections_pk(user_id: &str) -> String {
    format!("user_conns#{user_id}")
}

/// How many connections a user opened and has not closed (connections table), written in the
/// same transaction as each connection record, so delivery learns which of a channel's members
/// may be connected with one batch read. A connection that expired without closing leaves it
/// high: a member is then looked up for nothing, never missed.
pub fn online_key(user_id: &str) -> (String, String) {
    (format!("online#{user_id}"), "online".to_string())
}

/// A connection watching a channel (connections table): listed per channel for fan-out, and
/// under the connection on `gsi1` so a disconnect removes all its watches.
pub fn watch_key(cid: &str, connection_id: &str) -> (String, String) {
    (format!("watch#{cid}"), connection_id.to_string())
}

pub fn watches_of_pk(connection_id: &str) -> String {
    format!("watches_of#{connection_id}")
}

/// The connections one host holds (a chat-local process), on `gsi2`: what a restart closes.
pub fn host_connections_pk(host: &str) -> String {
    format!("host_conns#{host}")
}

/// A connection subscribed to a user's presence (`presence: true`), listed per user for
/// delivery and under the connection on `gsi1` for cleanup.
pub fn presence_sub_key(user_id: &str, connection_id: &str) -> (String, String) {
    (format!("presence#{user_id}"), connection_id.to_string())
}

pub fn presence_subs_of_pk(connection_id: &str) -> String {
    format!("presence_subs_of#{connection_id}")
}
