//! A channel's `own_capabilities` for one user: the seed's capability names, derived from the same
//! permission evaluation as every request check, the channel type's features and the channel's state.

// The seed names the capabilities but not their rules; these follow the official Flutter SDK's
// notes on each (`PermissionType`: "send-message: channel is not frozen (or user has
// UseFrozenChannel permission) and user has CreateMessage permission", "send-links: send-message +
// AddLinks", "send-reply: send-message + replies enabled", "update-channel-members: channel is not
// distinct and user has UpdateChannelMembers", "upload-file: uploads enabled and UploadAttachment",
// "leave-channel: RemoveOwnChannelMembership or UpdateChannelMembers", ...). Where neither says,
// the choice is written next to the rule.

use crate::domain::channel::Channel;
use crate::domain::channel_type::ChannelTypeConfig;
use crate::domain::permissions::{allowed_actions, is_allowed_with, Permission, Resource, Subject};
use crate::domain::ApiError;
use std::collections::BTreeSet;

/// Every capability the seed's "Channel Capabilities" table names, sorted.
pub const ALL_CAPABILITIES: &[&str] = &[
    "ban-channel-members",
    "connect-events",
    "create-call",
    "delete-any-message",
    "delete-channel",
    "delete-own-message",
    "flag-message",
    "freeze-channel",
    "join-call",
    "join-channel",
    "leave-channel",
    "mute-channel",
    "pin-message",
    "quote-message",
    "read-events",
    "search-messages",
    "send-custom-events",
    "send-links",
    "send-message",
    "send-reaction",
    "send-reply",
    "send-typing-events",
    "set-channel-cooldown",
    "skip-slow-mode",
    "slow-mode",
    "typing-events",
    "update-any-message",
    "update-channel",
    "update-channel-members",
    "update-own-message",
    "upload-file",
];

/// Capabilities of features that are not built yet (calls): their rules stay below, but no
/// payload advertises them until the feature lands and leaves this list.
pub const NOT_BUILT_YET: &[&str] = &["create-call", "join-call"];

/// What a payload's `own_capabilities` shows: [`own_capabilities`] without the capabilities of
/// features not built yet.
pub fn advertised_capabilities(
    channel: &Channel,
    config: &ChannelTypeConfig,
    subject: &Subject,
    custom_permissions: &[Permission],
) -> Vec<String> {
    let mut caps = own_capabilities(channel, config, subject, custom_permissions);
    caps.retain(|c| !NOT_BUILT_YET.contains(&c.as_str()));
    caps
}

/// The capabilities of `subject` in `channel`, sorted and without duplicates.
///
/// - `config`: the channel type's configuration as it applies to this channel
///   ([`Channel::effective_config`]): feature flags after `config_overrides`, and `grants` after the
///   channel's `!permission` / `permission` modifiers.
/// - `subject`: the user, its user role, its channel role when it is a member (`None` otherwise)
///   and its teams. Whether it created the channel and shares its team come from `channel`.
///
/// A disabled channel gives nothing: every client-side read or write on it is refused (seed
/// "Disabling Channels").
pub fn own_capabilities(
    channel: &Channel,
    config: &ChannelTypeConfig,
    subject: &Subject,
    custom_permissions: &[Permission],
) -> Vec<String> {
    if channel.disabled {
        return Vec::new();
    }
    let grants = &config.grants;
    let team = channel.team.as_deref();
    // Channel actions: ownership is the channel's creator.
    let on_channel = Resource {
        owner_id: channel.created_by_id.as_deref(),
        team,
    };
    let actions = allowed_actions(grants, subject, &on_channel, custom_permissions);
    let can = |action: &str| actions.contains(action);
    // Message actions: "own" is a message the subject sent, "any" one somebody else sent.
    let on_message = |owner: Option<&str>, action: &str| {
        let resource = Resource {
            owner_id: owner,
            team,
        };
        is_allowed_with(grants, subject, action, &resource, custom_permissions)
    };
    let is_member = subject.channel_role.is_some();

    let reads = can("ReadChannel");
    let writable = !channel.frozen || can("UseFrozenChannel");
    let send_message = writable && can("CreateMessage");

    let mut out: BTreeSet<&'static str> = BTreeSet::new();
    let mut add = |cap: &'static str, when: bool| {
        if when {
            out.insert(cap);
        }
    };
    add("ban-channel-members", can("BanChannelMember"));
    // Event and search features are about receiving; they need only read access to the channel.
    add("connect-events", reads && config.connect_events);
    add("read-events", reads && config.read_events);
    add("typing-events", reads && config.typing_events);
    add("search-messages", reads && config.search);
    add("create-call", can("CreateCall"));
    add("join-call", can("JoinCall"));
    add("delete-any-message", on_message(None, "DeleteMessage"));
    add(
        "delete-own-message",
        on_message(Some(subject.user_id), "DeleteMessage"),
    );
    add("update-any-message", on_message(None, "UpdateMessage"));
    add(
        "update-own-message",
        on_message(Some(subject.user_id), "UpdateMessage"),
    );
    add("delete-channel", can("DeleteChannel"));
    add("update-channel", can("UpdateChannel"));
    add("freeze-channel", can("UpdateChannelFrozen"));
    add("set-channel-cooldown", can("UpdateChannelCooldown"));
    add(
        "update-channel-members",
        can("UpdateChannelMembers") && !channel.is_distinct(),
    );
    // Joining and leaving are about the subject's own membership, so each is offered only from
    // the side where it means something.
    add(
        "join-channel",
        !is_member && can("AddOwnChannelMembership") && !channel.is_distinct(),
    );
    add(
        "leave-channel",
        is_member && (can("RemoveOwnChannelMembership") || can("UpdateChannelMembers")),
    );
    add("flag-message", can("FlagMessage"));
    // `mutes` is the type's mute switch; a channel mute is a mute too.
    add("mute-channel", can("MuteChannel") && config.mutes);
    add("pin-message", can("PinMessage"));
    add("send-message", send_message);
    add("send-reply", send_message && config.replies);
    add("quote-message", send_message && config.quotes);
    add("send-links", send_message && can("AddLinks"));
    // Typing is a prelude to sending: whoever cannot send (anonymous, frozen) does not type.
    add("send-typing-events", send_message && config.typing_events);
    add(
        "send-reaction",
        writable && config.reactions && can("CreateReaction"),
    );
    add(
        "send-custom-events",
        config.custom_events && can("SendCustomEvent"),
    );
    add("upload-file", config.uploads && can("UploadAttachment"));
    add("slow-mode", channel.cooldown > 0);
    // Offered whether or not slow mode is on, so a client knows before it is switched on.
    add("skip-slow-mode", can("SkipChannelCooldown"));

    out.into_iter().map(str::to_string).collect()
}

/// [`own_capabilities`] from the channel type's own configuration: applies the channel's
/// `config_overrides` (features and grant modifiers) first.
pub fn own_capabilities_for_type(
    channel: &Channel,
    channel_type: &ChannelTypeConfig,
    subject: &Subject,
    custom_permissions: &[Permission],
) -> Result<Vec<String>, ApiError> {
    let config = channel.effective_config(channel_type, custom_permissions)?;
    Ok(own_capabilities(
        channel,
        &config,
        subject,
        custom_permissions,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::channel::{Cid, NewChannelData};
    use crate::domain::channel_type::builtin_channel_type;
    use serde_json::{json, Value};

    const NO_TEAMS: &[String] = &[];

    fn channel(channel_type: &str, id: &str, data: Value) -> Channel {
        let d = NewChannelData::parse(data.as_object().unwrap()).unwrap();
        Channel::new(
            &Cid::new(channel_type, id).unwrap(),
            d.created_by_id,
            d.data,
            "t0",
        )
    }

    fn caps(c: &Channel, user: &str, role: &str, channel_role: Option<&str>) -> Vec<String> {
        let t = builtin_channel_type(&c.channel_type).unwrap();
        let subject = Subject {
            user_id: user,
            role,
            channel_role,
            teams: NO_TEAMS,
        };
        own_capabilities_for_type(c, &t, &subject, &[]).unwrap()
    }

    fn has(caps: &[String], cap: &str) -> bool {
        caps.iter().any(|c| c == cap)
    }

    #[test]
    fn output_is_sorted_unique_and_uses_seed_names() {
        let c = channel(
            "messaging",
            "general",
            json!({"created_by_id": "carol", "cooldown": 5}),
        );
        for (user, role, cr) in [
            ("root", "admin", None),
            ("bob", "user", Some("channel_member")),
            ("m", "user", Some("channel_moderator")),
        ] {
            let got = caps(&c, user, role, cr);
            let mut sorted = got.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(got, sorted);
            for cap in &got {
                assert!(ALL_CAPABILITIES.contains(&cap.as_str()), "{cap}");
            }
        }
        let mut all = ALL_CAPABILITIES.to_vec();
        all.sort();
        assert_eq!(all, ALL_CAPABILITIES);
    }

    #[test]
    fn messaging_roles_differ_as_the_grant_tables_imply() {
        let c = channel("messaging", "general", json!({"created_by_id": "carol"}));
        let member = caps(&c, "bob", "user", Some("channel_member"));
        let outsider = caps(&c, "eve", "user", None);
        let moderator = caps(&c, "mod", "user", Some("channel_moderator"));
        let admin = caps(&c, "root", "admin", None);
        let owner = caps(&c, "carol", "user", Some("channel_member"));

        for cap in [
            "send-message",
            "send-reaction",
            "send-reply",
            "quote-message",
            "send-links",
            "upload-file",
            "read-events",
            "typing-events",
            "send-typing-events",
            "flag-message",
            "mute-channel",
            "pin-message",
            "leave-channel",
            "delete-own-message",
            "update-own-message",
        ] {
            assert!(has(&member, cap), "member lacks {cap}");
        }
        for cap in [
            "update-channel",
            "delete-channel",
            "delete-any-message",
            "ban-channel-members",
            "freeze-channel",
            "skip-slow-mode",
            "join-channel",
        ] {
            assert!(!has(&member, cap), "member has {cap}");
        }
        // A user who is neither member nor creator can only act on messages it would own.
        assert!(!has(&outsider, "send-message") && !has(&outsider, "read-events"));
        assert!(!has(&outsider, "leave-channel"));
        assert_eq!(outsider, vec!["delete-own-message", "update-own-message"]);
        for cap in [
            "delete-any-message",
            "update-any-message",
            "ban-channel-members",
            "freeze-channel",
            "set-channel-cooldown",
            "skip-slow-mode",
            "update-channel",
            "update-channel-members",
        ] {
            assert!(has(&moderator, cap), "moderator lacks {cap}");
        }
        assert!(!has(&moderator, "delete-channel"));
        assert!(has(&admin, "delete-channel") && has(&admin, "send-message"));
        // admin is no member: nothing to leave.
        assert!(!has(&admin, "leave-channel"));
        // The creator owns the channel: update-channel-owner / delete-channel-owner apply.
        assert!(has(&owner, "update-channel") && has(&owner, "delete-channel"));
        assert!(!has(&owner, "delete-any-message"));
    }

    #[test]
    fn distinct_channels_refuse_member_changes() {
        let c = channel(
            "messaging",
            "!members-0123",
            json!({"created_by_id": "carol"}),
        );
        assert!(!has(
            &caps(&c, "m", "user", Some("channel_moderator")),
            "update-channel-members"
        ));
        assert!(!has(
            &caps(&c, "root", "admin", None),
            "update-channel-members"
        ));
    }

    #[test]
    fn livestream_anonymous_is_read_only() {
        let c = channel(
            "livestream",
            "concert",
            json!({"created_by_id": "streamer"}),
        );
        let anon = caps(&c, "!anon", "anonymous", None);
        for cap in [
            "connect-events",
            "read-events",
            "typing-events",
            "search-messages",
        ] {
            assert!(has(&anon, cap), "anonymous lacks {cap}");
        }
        for cap in [
            "send-message",
            "send-reaction",
            "send-reply",
            "send-typing-events",
            "upload-file",
            "flag-message",
            "mute-channel",
            "delete-own-message",
            "update-own-message",
            "send-custom-events",
            "pin-message",
        ] {
            assert!(!has(&anon, cap), "anonymous has {cap}");
        }
        // A plain user writes in livestream without membership.
        let viewer = caps(&c, "viewer", "user", None);
        assert!(has(&viewer, "send-message") && has(&viewer, "send-reaction"));
        // url_enrichment is off on livestream but links are a permission, not enrichment.
        assert!(has(&viewer, "send-links"));
    }

    #[test]
    fn frozen_channels_stop_sending_unless_use_frozen_channel() {
        let c = channel(
            "messaging",
            "general",
            json!({"created_by_id": "carol", "frozen": true}),
        );
        let member = caps(&c, "bob", "user", Some("channel_member"));
        for cap in [
            "send-message",
            "send-reaction",
            "send-reply",
            "quote-message",
            "send-links",
            "send-typing-events",
        ] {
            assert!(!has(&member, cap), "frozen member has {cap}");
        }
        assert!(has(&member, "read-events") && has(&member, "delete-own-message"));

        let mut t = builtin_channel_type("messaging").unwrap();
        t.grants
            .get_mut("channel_member")
            .unwrap()
            .push("use-frozen-channel".into());
        let subject = Subject {
            user_id: "bob",
            role: "user",
            channel_role: Some("channel_member"),
            teams: NO_TEAMS,
        };
        let granted = own_capabilities_for_type(&c, &t, &subject, &[]).unwrap();
        assert!(has(&granted, "send-message") && has(&granted, "send-reaction"));
    }

    #[test]
    fn slow_mode_is_flagged_and_moderators_skip_it() {
        let c = channel(
            "messaging",
            "general",
            json!({"created_by_id": "carol", "cooldown": 30}),
        );
        let member = caps(&c, "bob", "user", Some("channel_member"));
        assert!(has(&member, "slow-mode") && !has(&member, "skip-slow-mode"));
        assert!(has(&member, "send-message"));
        let moderator = caps(&c, "m", "user", Some("channel_moderator"));
        assert!(has(&moderator, "slow-mode") && has(&moderator, "skip-slow-mode"));
        let calm = channel("messaging", "calm", json!({"created_by_id": "carol"}));
        assert!(!has(
            &caps(&calm, "bob", "user", Some("channel_member")),
            "slow-mode"
        ));
    }

    #[test]
    fn switched_off_features_remove_their_capabilities() {
        let c = channel("messaging", "general", json!({"created_by_id": "carol"}));
        let mut t = builtin_channel_type("messaging").unwrap();
        t.reactions = false;
        t.uploads = false;
        t.replies = false;
        t.search = false;
        t.typing_events = false;
        let subject = Subject {
            user_id: "bob",
            role: "user",
            channel_role: Some("channel_member"),
            teams: NO_TEAMS,
        };
        let got = own_capabilities_for_type(&c, &t, &subject, &[]).unwrap();
        for cap in [
            "send-reaction",
            "upload-file",
            "send-reply",
            "search-messages",
            "typing-events",
            "send-typing-events",
        ] {
            assert!(!has(&got, cap), "{cap}");
        }
        assert!(has(&got, "send-message") && has(&got, "quote-message"));
        // The same through a channel-level override.
        let c = channel(
            "messaging",
            "quiet",
            json!({"created_by_id": "carol", "config_overrides": {"reactions": false}}),
        );
        let got = caps(&c, "bob", "user", Some("channel_member"));
        assert!(!has(&got, "send-reaction") && has(&got, "send-message"));
    }

    #[test]
    fn a_revoke_modifier_removes_the_capability() {
        let c = channel(
            "messaging",
            "broadcast",
            json!({"created_by_id": "carol",
                   "config_overrides": {"grants": {"channel_member": ["!create-message", "!upload-attachment"]}}}),
        );
        let member = caps(&c, "bob", "user", Some("channel_member"));
        assert!(!has(&member, "send-message") && !has(&member, "upload-file"));
        assert!(has(&member, "send-reaction") && has(&member, "read-events"));
        // Other roles keep theirs.
        assert!(has(
            &caps(&c, "m", "user", Some("channel_moderator")),
            "send-message"
        ));
    }

    #[test]
    fn teams_and_disabled_channels() {
        let c = channel(
            "messaging",
            "t",
            json!({"created_by_id": "carol", "team": "blue"}),
        );
        let t = builtin_channel_type("messaging").unwrap();
        let red = vec!["red".to_string()];
        let blue = vec!["blue".to_string()];
        let admin = |teams| Subject {
            user_id: "root",
            role: "admin",
            channel_role: None,
            teams,
        };
        let other_team = own_capabilities_for_type(&c, &t, &admin(&red), &[]).unwrap();
        let same_team = own_capabilities_for_type(&c, &t, &admin(&blue), &[]).unwrap();
        assert!(!has(&other_team, "send-message") && !has(&other_team, "delete-channel"));
        assert!(has(&same_team, "send-message") && has(&same_team, "delete-channel"));

        let off = channel(
            "messaging",
            "off",
            json!({"created_by_id": "carol", "disabled": true}),
        );
        assert!(caps(&off, "root", "admin", None).is_empty());
        assert!(caps(&off, "bob", "user", Some("channel_member")).is_empty());
    }
}
