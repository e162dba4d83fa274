//! The event catalogue: every event type the product sends, and who hears each beyond the
//! connections of its scope: the app's hooks (webhooks, SQS, SNS) hear the types Stream's webhook
//! events list names, and only the hooks hear unread reminders. Event types a client makes up
//! (`POST /channels/{type}/{id}/event`) are custom events; they reach the hooks that ask for them
//! (`should_send_custom_events`).

/// Every built-in event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    ChannelCreated,
    ChannelUpdated,
    ChannelDeleted,
    ChannelTruncated,
    ChannelHidden,
    ChannelVisible,
    ChannelFrozen,
    ChannelUnfrozen,
    MemberAdded,
    MemberUpdated,
    MemberRemoved,
    MessageNew,
    MessageUpdated,
    MessageDeleted,
    MessageUndeleted,
    MessageRead,
    MessageDelivered,
    ReactionNew,
    ReactionUpdated,
    ReactionDeleted,
    ThreadUpdated,
    UserUpdated,
    UserDeleted,
    UserDeactivated,
    UserReactivated,
    UserPresenceChanged,
    UserWatchingStart,
    UserWatchingStop,
    UserUnreadMessageReminder,
    CampaignStarted,
    CampaignCompleted,
    TypingStart,
    TypingStop,
    HealthCheck,
    NotificationMessageNew,
    NotificationMarkRead,
    NotificationMarkUnread,
    NotificationAddedToChannel,
    NotificationRemovedFromChannel,
    NotificationInvited,
    NotificationInviteAccepted,
    NotificationInviteRejected,
    NotificationMutesUpdated,
    NotificationChannelMutesUpdated,
    MessageFlagged,
    MessageUnflagged,
    UserFlagged,
    UserUnflagged,
    /// A pending message was committed (to the `pending_message` hooks' callback).
    PendingMessageSent,
    /// A pending message was deleted, or timed out (to the `pending_message` hooks' callback).
    PendingMessageDeleted,
}

/// Where an event goes besides the connections of its scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookDelivery {
    /// To every enabled hook whose `event_types` filter lets it through.
    Hooks,
    /// A custom event: only to hooks with `should_send_custom_events`.
    CustomHooks,
    /// A pending message's fate: only to the `pending_message` hooks' callbacks.
    PendingCallbacks,
    /// Not a webhook event (real-time signals, notifications to one user's connections, and
    /// the changes Stream's webhook events list leaves out).
    Never,
}

/// Prefixes of the event types only the server makes; a client's event with another type is a
/// custom event.
const SERVER_PREFIXES: &[&str] = &[
    "message.",
    "channel.",
    "member.",
    "notification.",
    "user.",
    "reaction.",
    "health.",
    "connection.",
    "thread.",
    "poll.",
    "campaign.",
    "pending_message.",
];

impl EventKind {
    pub const ALL: [EventKind; 50] = [
        EventKind::ChannelCreated,
        EventKind::ChannelUpdated,
        EventKind::ChannelDeleted,
        EventKind::ChannelTruncated,
        EventKind::ChannelHidden,
        EventKind::ChannelVisible,
        EventKind::ChannelFrozen,
        EventKind::ChannelUnfrozen,
        EventKind::MemberAdded,
        EventKind::MemberUpdated,
        EventKind::MemberRemoved,
        EventKind::MessageNew,
        EventKind::MessageUpdated,
        EventKind::MessageDeleted,
        EventKind::MessageUndeleted,
        EventKind::MessageRead,
        EventKind::MessageDelivered,
        EventKind::ReactionNew,
        EventKind::ReactionUpdated,
        EventKind::ReactionDeleted,
        EventKind::ThreadUpdated,
        EventKind::UserUpdated,
        EventKind::UserDeleted,
        EventKind::UserDeactivated,
        EventKind::UserReactivated,
        EventKind::UserPresenceChanged,
        EventKind::UserWatchingStart,
        EventKind::UserWatchingStop,
        EventKind::UserUnreadMessageReminder,
        EventKind::CampaignStarted,
        EventKind::CampaignCompleted,
        EventKind::TypingStart,
        EventKind::TypingStop,
        EventKind::HealthCheck,
        EventKind::NotificationMessageNew,
        EventKind::NotificationMarkRead,
        EventKind::NotificationMarkUnread,
        EventKind::NotificationAddedToChannel,
        EventKind::NotificationRemovedFromChannel,
        EventKind::NotificationInvited,
        EventKind::NotificationInviteAccepted,
        EventKind::NotificationInviteRejected,
        EventKind::NotificationMutesUpdated,
        EventKind::NotificationChannelMutesUpdated,
        EventKind::MessageFlagged,
        EventKind::MessageUnflagged,
        EventKind::UserFlagged,
        EventKind::UserUnflagged,
        EventKind::PendingMessageSent,
        EventKind::PendingMessageDeleted,
    ];

    /// Stream's name of the event type.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ChannelCreated => "channel.created",
            EventKind::ChannelUpdated => "channel.updated",
            EventKind::ChannelDeleted => "channel.deleted",
            EventKind::ChannelTruncated => "channel.truncated",
            EventKind::ChannelHidden => "channel.hidden",
            EventKind::ChannelVisible => "channel.visible",
            EventKind::ChannelFrozen => "channel.frozen",
            EventKind::ChannelUnfrozen => "channel.unfrozen",
            EventKind::MemberAdded => "member.added",
            EventKind::MemberUpdated => "member.updated",
            EventKind::MemberRemoved => "member.removed",
            EventKind::MessageNew => "message.new",
            EventKind::MessageUpdated => "message.updated",
            EventKind::MessageDeleted => "message.deleted",
            EventKind::MessageUndeleted => "message.undeleted",
            EventKind::MessageRead => "message.read",
            EventKind::MessageDelivered => "message.delivered",
            EventKind::ReactionNew => "reaction.new",
            EventKind::ReactionUpdated => "reaction.updated",
            EventKind::ReactionDeleted => "reaction.deleted",
            EventKind::ThreadUpdated => "thread.updated",
            EventKind::UserUpdated => "user.updated",
            EventKind::UserDeleted => "user.deleted",
            EventKind::UserDeactivated => "user.deactivated",
            EventKind::UserReactivated => "user.reactivated",
            EventKind::UserPresenceChanged => "user.presence.changed",
            EventKind::UserWatchingStart => "user.watching.start",
            EventKind::UserWatchingStop => "user.watching.stop",
            EventKind::UserUnreadMessageReminder => "user.unread_message_reminder",
            EventKind::CampaignStarted => "campaign.started",
            EventKind::CampaignCompleted => "campaign.completed",
            EventKind::TypingStart => "typing.start",
            EventKind::TypingStop => "typing.stop",
            EventKind::HealthCheck => "health.check",
            EventKind::NotificationMessageNew => "notification.message_new",
            EventKind::NotificationMarkRead => "notification.mark_read",
            EventKind::NotificationMarkUnread => "notification.mark_unread",
            EventKind::NotificationAddedToChannel => "notification.added_to_channel",
            EventKind::NotificationRemovedFromChannel => "notification.removed_from_channel",
            EventKind::NotificationInvited => "notification.invited",
            EventKind::NotificationInviteAccepted => "notification.invite_accepted",
            EventKind::NotificationInviteRejected => "notification.invite_rejected",
            EventKind::NotificationMutesUpdated => "notification.mutes_updated",
            EventKind::NotificationChannelMutesUpdated => "notification.channel_mutes_updated",
            EventKind::MessageFlagged => "message.flagged",
            EventKind::MessageUnflagged => "message.unflagged",
            EventKind::UserFlagged => "user.flagged",
            EventKind::UserUnflagged => "user.unflagged",
            EventKind::PendingMessageSent => "pending_message.sent",
            EventKind::PendingMessageDeleted => "pending_message.deleted",
        }
    }

    /// The built-in event type named `name`, if it is one.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Events only the hooks hear (no connection is sent them).
    pub fn is_hooks_only(self) -> bool {
        matches!(
            self,
            EventKind::UserUnreadMessageReminder
                | EventKind::CampaignStarted
                | EventKind::CampaignCompleted
                | EventKind::MessageFlagged
                | EventKind::MessageUnflagged
                | EventKind::UserFlagged
                | EventKind::UserUnflagged
                | EventKind::PendingMessageSent
                | EventKind::PendingMessageDeleted
        )
    }

    /// A pending message's fate, for the `pending_message` hooks.
    pub fn is_pending_callback(self) -> bool {
        matches!(
            self,
            EventKind::PendingMessageSent | EventKind::PendingMessageDeleted
        )
    }

    /// Whether hooks hear it: the types of Stream's webhook events list.
    pub fn reaches_hooks(self) -> bool {
        matches!(
            self,
            EventKind::MessageNew
                | EventKind::MessageRead
                | EventKind::MessageUpdated
                | EventKind::MessageDeleted
                | EventKind::ReactionNew
                | EventKind::ReactionUpdated
                | EventKind::ReactionDeleted
                | EventKind::MemberAdded
                | EventKind::MemberUpdated
                | EventKind::MemberRemoved
                | EventKind::ChannelCreated
                | EventKind::ChannelUpdated
                | EventKind::ChannelTruncated
                | EventKind::ChannelDeleted
                | EventKind::ChannelHidden
                | EventKind::UserUpdated
                | EventKind::UserDeleted
                | EventKind::UserDeactivated
                | EventKind::UserReactivated
                | EventKind::UserUnreadMessageReminder
                | EventKind::CampaignStarted
                | EventKind::CampaignCompleted
                | EventKind::MessageFlagged
                | EventKind::MessageUnflagged
                | EventKind::UserFlagged
                | EventKind::UserUnflagged
        )
    }
}

/// Whether `name` is a type only the server makes (so a client may not send it).
pub fn is_server_event(name: &str) -> bool {
    SERVER_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Where an event of type `name` goes besides its scope's connections.
pub fn hook_delivery(name: &str) -> HookDelivery {
    match EventKind::parse(name) {
        Some(kind) if kind.is_pending_callback() => HookDelivery::PendingCallbacks,
        Some(kind) if kind.reaches_hooks() => HookDelivery::Hooks,
        Some(_) => HookDelivery::Never,
        None if is_server_event(name) => HookDelivery::Never,
        None => HookDelivery::CustomHooks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(EventKind::parse("message.neww"), None);
    }

    #[test]
    fn hooks_hear_the_webhook_events_list() {
        assert_eq!(hook_delivery("typing.start"), HookDelivery::Never);
        assert_eq!(hook_delivery("user.presence.changed"), HookDelivery::Never);
        assert_eq!(
            hook_delivery("notification.added_to_channel"),
            HookDelivery::Never
        );
        assert_eq!(hook_delivery("message.read"), HookDelivery::Hooks);
        assert_eq!(hook_delivery("message.new"), HookDelivery::Hooks);
        assert_eq!(
            hook_delivery("user.unread_message_reminder"),
            HookDelivery::Hooks
        );
        assert_eq!(hook_delivery("my_custom_event"), HookDelivery::CustomHooks);
    }
}
