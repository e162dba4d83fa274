//! Permissions v2: the built-in permission catalogue, the default grant tables of every scope,
//! grant updates and channel-level grant modifiers, and the one "may subject do action on resource" check.
//!
//! Data: `shared/data/permissions.json` (what `GET /permissions` lists) and
//! `shared/data/grants.json` (scope -> role -> permission ids), transcribed from the seed's
//! "Permissions Reference" default grant tables (the multi-tenant tables for `global_moderator` /
//! `global_admin` merged into the same scopes). Both are parsed once.
//!
//! Evaluation follows the seed: the subject's roles are its user role plus, when it is a member of
//! the channel, its channel role; a permission granted to any of them whose `action` matches allows
//! the action, provided its `owner` / `same_team` conditions hold for the resource. Server-side calls
//! skip all of this (the caller decides that, not this module).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::LazyLock;

/// Every built-in role: the user-level ones, then the channel-level ones, then the multi-tenant
/// global ones. Built-in roles cannot be created or deleted.
pub const BUILTIN_ROLES: &[&str] = &[
    "user",
    "guest",
    "anonymous",
    "admin",
    "moderator",
    "channel_member",
    "channel_moderator",
    "global_moderator",
    "global_admin",
];

/// Built-in roles that are assigned to users (`User.role`).
pub const USER_LEVEL_ROLES: &[&str] = &[
    "user",
    "guest",
    "anonymous",
    "admin",
    "moderator",
    "global_moderator",
    "global_admin",
];

/// Built-in roles that are assigned to channel memberships (`ChannelMember.channel_role`). The seed:
/// built-in user-level roles cannot be used as channel roles and vice versa.
pub const CHANNEL_LEVEL_ROLES: &[&str] = &["channel_member", "channel_moderator"];

/// The application scope (`PATCH /app` `grants`).
pub const APP_SCOPE: &str = ".app";

/// The scope whose defaults a custom channel type starts from.
pub const DEFAULT_CHANNEL_SCOPE: &str = "messaging";

/// Role -> granted permission ids (the `grants` object of an app, a channel type or a channel).
pub type Grants = BTreeMap<String, Vec<String>>;

/// One permission, serialized exactly as `GET /permissions` / `GET /permissions/{id}` return it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Permission {
    /// Unique permission id, e.g. `create-message-owner`.
    pub id: String,
    /// Human-readable name, e.g. `Create Message in Owned Channel`.
    pub name: String,
    /// Human-readable description.
    #[serde(default)]
    pub description: String,
    /// The action this permission grants, e.g. `CreateMessage`.
    pub action: String,
    /// If true, the subject must own the resource.
    #[serde(default)]
    pub owner: bool,
    /// If true, the subject must be in the resource's team (multi-tenant apps only).
    #[serde(default)]
    pub same_team: bool,
    /// `app` (granted in the `.app` scope) or `channel` (channel type / channel scopes).
    #[serde(default = "default_level")]
    pub level: String,
    /// False for the built-in catalogue, true for permissions created through the API.
    #[serde(default)]
    pub custom: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    /// MongoDB-style condition of a custom permission. Not evaluated here: a permission that has
    /// one never allows anything (fail closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<serde_json::Value>,
}

fn default_level() -> String {
    "channel".to_string()
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PermissionError {
    #[error("permission {id:?} granted to role {role:?} does not exist")]
    UnknownPermission { role: String, id: String },
    #[error("role {role:?}: {id:?} is a revoke modifier, allowed only in channel-level grants (config_overrides.grants)")]
    RevokeNotAllowed { role: String, id: String },
    #[error("grants must not contain an empty role name")]
    EmptyRole,
}

static PERMISSIONS: LazyLock<Vec<Permission>> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../../data/permissions.json"))
        .expect("shared/data/permissions.json is valid")
});

static PERMISSIONS_BY_ID: LazyLock<HashMap<&'static str, &'static Permission>> =
    LazyLock::new(|| PERMISSIONS.iter().map(|p| (p.id.as_str(), p)).collect());

static DEFAULT_GRANTS: LazyLock<BTreeMap<String, Grants>> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../../data/grants.json"))
        .expect("shared/data/grants.json is valid")
});

/// The built-in permission catalogue, sorted by id.
pub fn all_permissions() -> &'static [Permission] {
    PERMISSIONS.as_slice()
}

/// A built-in permission by id.
pub fn permission(id: &str) -> Option<&'static Permission> {
    PERMISSIONS_BY_ID.get(id).copied()
}

/// A permission by id, looking at the app's custom permissions first, then the built-ins.
pub fn lookup<'a>(id: &str, custom: &'a [Permission]) -> Option<&'a Permission> {
    custom
        .iter()
        .find(|p| p.id == id)
        .or_else(|| permission(id))
}

/// The scopes that have their own default grant table: `.app`, the five built-in channel types
/// and the video call types of the seed.
pub fn default_scopes() -> Vec<&'static str> {
    DEFAULT_GRANTS.keys().map(String::as_str).collect()
}

/// Default grants for a scope (".app", "messaging", "livestream", "team", "commerce", "gaming");
/// any other channel type gets messaging's.
pub fn default_grants(scope: &str) -> Grants {
    DEFAULT_GRANTS
        .get(scope)
        .or_else(|| DEFAULT_GRANTS.get(DEFAULT_CHANNEL_SCOPE))
        .cloned()
        .unwrap_or_default()
}

fn checked_id<'a>(
    role: &str,
    id: &'a str,
    custom: &[Permission],
) -> Result<&'a str, PermissionError> {
    if lookup(id, custom).is_none() {
        return Err(PermissionError::UnknownPermission {
            role: role.to_string(),
            id: id.to_string(),
        });
    }
    Ok(id)
}

/// Apply a grants update the way Stream does on PATCH app / update channel type: each role in
/// `update` replaces that role's list; an empty list clears the role (it stays, with `[]`); roles
/// not mentioned keep their grants. Duplicate ids are dropped. Returns an error for unknown
/// permission ids (and for `!id` revoke modifiers, which only channel-level grants accept).
/// (A `null` grants value, which resets the scope, is the caller's: use [`default_grants`].)
pub fn apply_grants_update(current: &Grants, update: &Grants) -> Result<Grants, PermissionError> {
    apply_grants_update_with(current, update, &[])
}

/// [`apply_grants_update`], also accepting the app's custom permissions.
pub fn apply_grants_update_with(
    current: &Grants,
    update: &Grants,
    custom: &[Permission],
) -> Result<Grants, PermissionError> {
    let mut next = current.clone();
    for (role, ids) in update {
        if role.is_empty() {
            return Err(PermissionError::EmptyRole);
        }
        let mut list: Vec<String> = Vec::with_capacity(ids.len());
        for id in ids {
            if id.starts_with('!') {
                return Err(PermissionError::RevokeNotAllowed {
                    role: role.clone(),
                    id: id.clone(),
                });
            }
            checked_id(role, id, custom)?;
            if !list.contains(id) {
                list.push(id.clone());
            }
        }
        next.insert(role.clone(), list);
    }
    Ok(next)
}

/// Channel-level grant modifiers (channel `config_overrides.grants`): role -> list of permission ids,
/// where "!id" revokes and "id" adds, applied in order on top of the channel type's grants.
/// Roles without modifiers keep the channel type's grants. Errors on unknown permission ids.
pub fn with_channel_modifiers(
    base: &Grants,
    modifiers: &Grants,
) -> Result<Grants, PermissionError> {
    with_channel_modifiers_with(base, modifiers, &[])
}

/// [`with_channel_modifiers`], also accepting the app's custom permissions.
pub fn with_channel_modifiers_with(
    base: &Grants,
    modifiers: &Grants,
    custom: &[Permission],
) -> Result<Grants, PermissionError> {
    let mut effective = base.clone();
    for (role, mods) in modifiers {
        if role.is_empty() {
            return Err(PermissionError::EmptyRole);
        }
        let mut list = effective.get(role).cloned().unwrap_or_default();
        for m in mods {
            match m.strip_prefix('!') {
                Some(id) => {
                    checked_id(role, id, custom)?;
                    list.retain(|g| g != id);
                }
                None => {
                    checked_id(role, m, custom)?;
                    if !list.contains(m) {
                        list.push(m.clone());
                    }
                }
            }
        }
        effective.insert(role.clone(), list);
    }
    Ok(effective)
}

/// Who is asking: a user with its user-level role, its channel role when it is a member of the
/// channel in question (`None` otherwise, and for app-level checks), and its teams.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    pub user_id: &'a str,
    pub role: &'a str,
    pub channel_role: Option<&'a str>,
    pub teams: &'a [String],
}

/// What is acted on. `owner_id` is the resource's owner as the seed defines ownership: a channel's
/// creator (channel actions such as CreateMessage, ReadChannel, UpdateChannel), a message's sender
/// (UpdateMessage, DeleteMessage, RunMessageAction), an attachment's uploader (DeleteAttachment), a
/// reaction's author (DeleteReaction), the target user itself (UpdateUser), a call's creator. `team`
/// is the resource's team; pass `None` when the app is not multi-tenant.
#[derive(Clone, Copy, Debug, Default)]
pub struct Resource<'a> {
    pub owner_id: Option<&'a str>,
    pub team: Option<&'a str>,
}

impl<'a> Subject<'a> {
    /// The roles whose grants apply: the user role, then the channel role when there is one.
    pub fn roles(&self) -> impl Iterator<Item = &'a str> {
        let channel = self
            .channel_role
            .filter(|c| !c.is_empty() && *c != self.role);
        std::iter::once(self.role).chain(channel)
    }
}

/// Whether a permission's `owner` / `same_team` / `condition` constraints hold.
pub fn permission_applies(p: &Permission, subject: &Subject, resource: &Resource) -> bool {
    if p.condition.is_some() {
        return false;
    }
    if p.owner && (subject.user_id.is_empty() || resource.owner_id != Some(subject.user_id)) {
        return false;
    }
    if p.same_team {
        if let Some(team) = resource.team.filter(|t| !t.is_empty()) {
            if !subject.teams.iter().any(|t| t == team) {
                return false;
            }
        }
    }
    true
}

/// The one evaluation: may `subject` perform `action` (a permission action such as "ReadChannel",
/// "CreateMessage", "UpdateUser", ...) on `resource`, given the effective grants of the scope
/// (channel type grants after channel modifiers for channel resources, the .app grants for
/// app-level resources)?
pub fn is_allowed(grants: &Grants, subject: &Subject, action: &str, resource: &Resource) -> bool {
    is_allowed_with(grants, subject, action, resource, &[])
}

/// [`is_allowed`], also knowing the app's custom permissions.
pub fn is_allowed_with(
    grants: &Grants,
    subject: &Subject,
    action: &str,
    resource: &Resource,
    custom: &[Permission],
) -> bool {
    subject.roles().any(|role| {
        grants.get(role).is_some_and(|ids| {
            ids.iter()
                .filter_map(|id| lookup(id, custom))
                .any(|p| p.action == action && permission_applies(p, subject, resource))
        })
    })
}

/// Every action `subject` may perform on `resource` under `grants` (a basis for `own_capabilities`).
pub fn allowed_actions(
    grants: &Grants,
    subject: &Subject,
    resource: &Resource,
    custom: &[Permission],
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for role in subject.roles() {
        for id in grants.get(role).into_iter().flatten() {
            if let Some(p) = lookup(id, custom) {
                if permission_applies(p, subject, resource) {
                    out.insert(p.action.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_TEAMS: &[String] = &[];

    fn subject<'a>(user_id: &'a str, role: &'a str, channel_role: Option<&'a str>) -> Subject<'a> {
        Subject {
            user_id,
            role,
            channel_role,
            teams: NO_TEAMS,
        }
    }

    fn owned_by(owner: &str) -> Resource<'_> {
        Resource {
            owner_id: Some(owner),
            team: None,
        }
    }

    fn grants(pairs: &[(&str, &[&str])]) -> Grants {
        pairs
            .iter()
            .map(|(r, ids)| (r.to_string(), ids.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    fn has(scope: &str, role: &str, id: &str) -> bool {
        default_grants(scope)
            .get(role)
            .is_some_and(|ids| ids.iter().any(|g| g == id))
    }

    #[test]
    fn catalogue_loads_and_ids_are_unique() {
        let all = all_permissions();
        assert_eq!(all.len(), 163);
        let ids: BTreeSet<&str> = all.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids.len(), all.len());
        let p = permission("create-message-owner").unwrap();
        assert_eq!(p.name, "Create Message in Owned Channel");
        assert_eq!(p.action, "CreateMessage");
        assert!(p.owner && p.same_team && !p.custom);
        assert_eq!(p.description, "Grants action CreateMessage which allows to send a new message, user should own a channel");
        assert!(permission("no-such-permission").is_none());
    }

    #[test]
    fn id_suffixes_match_owner_and_same_team_flags() {
        for p in all_permissions() {
            assert_eq!(p.owner, p.id.contains("-owner"), "{}", p.id);
            assert_eq!(p.same_team, !p.id.ends_with("-any-team"), "{}", p.id);
            assert!(
                !p.name.is_empty() && p.description.starts_with("Grants action "),
                "{}",
                p.id
            );
            assert!(p.level == "app" || p.level == "channel", "{}", p.id);
        }
        let p = permission("delete-channel-owner-any-team").unwrap();
        assert!(p.owner && !p.same_team);
        assert_eq!(p.action, "DeleteChannel");
        assert_eq!(permission("update-user-owner").unwrap().level, "app");
        assert_eq!(permission("read-channel").unwrap().level, "channel");
    }

    #[test]
    fn permission_serializes_like_stream() {
        let v = serde_json::to_value(permission("add-links").unwrap()).unwrap();
        let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let expected: BTreeSet<&str> = [
            "id",
            "name",
            "description",
            "action",
            "owner",
            "same_team",
            "level",
            "custom",
            "tags",
        ]
        .into_iter()
        .collect();
        assert_eq!(keys, expected);
        assert_eq!(v["action"], "AddLinks");
        assert_eq!(v["same_team"], true);
        assert_eq!(v["custom"], false);
        // A custom permission as the API receives it round-trips, condition included.
        let custom: Permission = serde_json::from_value(serde_json::json!({
            "id": "my-custom-permission", "name": "My Custom Permission", "action": "DeleteChannel",
            "owner": false, "same_team": true, "custom": true,
            "condition": {"$subject.magic_custom_field": "magic_custom_value"}
        }))
        .unwrap();
        assert_eq!(custom.level, "channel");
        assert_eq!(
            serde_json::to_value(&custom).unwrap()["condition"]["$subject.magic_custom_field"],
            "magic_custom_value"
        );
    }

    #[test]
    fn every_default_grant_references_a_known_permission() {
        let scopes = default_scopes();
        for scope in [
            "messaging",
            "livestream",
            "team",
            "commerce",
            "gaming",
            ".app",
        ] {
            assert!(scopes.contains(&scope), "{scope}");
        }
        for scope in scopes {
            for (role, ids) in default_grants(scope) {
                assert!(BUILTIN_ROLES.contains(&role.as_str()), "{scope}/{role}");
                for id in ids {
                    assert!(permission(&id).is_some(), "{scope}/{role}: {id}");
                }
            }
        }
    }

    #[test]
    fn grant_tables_are_transcribed_completely() {
        let count = |scope: &str, role: &str| default_grants(scope).get(role).map_or(0, Vec::len);
        // messaging: 58 rows over admin, moderator, user, channel_member, channel_moderator (+ 38 multi-tenant rows).
        assert_eq!(count("messaging", "admin"), 35);
        assert_eq!(count("messaging", "moderator"), 35);
        assert_eq!(count("messaging", "user"), 24);
        assert_eq!(count("messaging", "channel_member"), 16);
        assert_eq!(count("messaging", "channel_moderator"), 30);
        assert_eq!(count("messaging", "global_moderator"), 35);
        assert_eq!(count("messaging", "global_admin"), 35);
        assert_eq!(count("livestream", "user"), 19);
        assert_eq!(count("livestream", "guest"), 5);
        assert_eq!(count("livestream", "anonymous"), 3);
        assert_eq!(count("livestream", "channel_member"), 0);
        assert_eq!(count("commerce", "guest"), 13);
        assert_eq!(count("gaming", "user"), 17);
        assert_eq!(count(".app", "user"), 4);
        assert_eq!(count(".app", "anonymous"), 0);
        assert_eq!(default_grants("team"), default_grants("messaging"));
        // Individual cells.
        assert!(has("gaming", "admin", "create-channel"));
        assert!(
            !has("gaming", "moderator", "create-channel")
                && !has("gaming", "user", "create-channel")
        );
        assert!(has("livestream", "admin", "remove-own-channel-membership"));
        assert!(!has(
            "livestream",
            "moderator",
            "remove-own-channel-membership"
        ));
        assert!(
            has("commerce", "guest", "create-channel")
                && !has("commerce", "user", "create-channel")
        );
        assert!(
            has("messaging", "moderator", "delete-channel-owner")
                && !has("messaging", "moderator", "delete-channel")
        );
        assert!(has(
            "messaging",
            "global_moderator",
            "delete-channel-owner-any-team"
        ));
        assert!(!has(
            "messaging",
            "global_admin",
            "delete-channel-owner-any-team"
        ));
        assert!(!has(
            "livestream",
            "global_moderator",
            "remove-own-channel-membership-any-team"
        ));
        assert!(has(".app", "global_admin", "update-user-owner"));
        assert!(!has(".app", "admin", "update-user"));
        // Order follows the seed's rows.
        assert_eq!(
            default_grants(".app")["user"],
            ["flag-user", "mute-user", "search-user", "update-user-owner"]
        );
    }

    #[test]
    fn custom_channel_types_get_messaging_defaults() {
        assert_eq!(
            default_grants("my-custom-type"),
            default_grants("messaging")
        );
        assert_ne!(default_grants("livestream"), default_grants("messaging"));
        assert_ne!(default_grants(".app"), default_grants("messaging"));
    }

    #[test]
    fn messaging_members_create_messages_non_members_only_in_own_channels() {
        let g = default_grants("messaging");
        let channel = owned_by("carol");
        assert!(is_allowed(
            &g,
            &subject("bob", "user", Some("channel_member")),
            "CreateMessage",
            &channel
        ));
        assert!(!is_allowed(
            &g,
            &subject("bob", "user", None),
            "CreateMessage",
            &channel
        ));
        assert!(!is_allowed(
            &g,
            &subject("bob", "user", None),
            "ReadChannel",
            &channel
        ));
        // create-message-owner / read-channel-owner: the channel's creator may, member or not.
        assert!(is_allowed(
            &g,
            &subject("carol", "user", None),
            "CreateMessage",
            &channel
        ));
        assert!(is_allowed(
            &g,
            &subject("carol", "user", None),
            "ReadChannel",
            &channel
        ));
        // Admin applies everywhere, without membership.
        assert!(is_allowed(
            &g,
            &subject("root", "admin", None),
            "CreateMessage",
            &channel
        ));
        // Guests and anonymous have no messaging grants.
        assert!(!is_allowed(
            &g,
            &subject("visitor", "guest", None),
            "ReadChannel",
            &channel
        ));
        assert!(!is_allowed(
            &g,
            &subject("!anon", "anonymous", None),
            "ReadChannel",
            &channel
        ));
        // Anyone with the user role may create channels; channel_member alone grants nothing there.
        assert!(is_allowed(
            &g,
            &subject("bob", "user", None),
            "CreateChannel",
            &Resource::default()
        ));
        assert!(!is_allowed(
            &g,
            &subject("bob", "custom_role", Some("channel_member")),
            "CreateChannel",
            &Resource::default()
        ));
    }

    #[test]
    fn users_update_and_delete_only_their_own_messages() {
        let g = default_grants("messaging");
        let bob = subject("bob", "user", Some("channel_member"));
        assert!(is_allowed(&g, &bob, "UpdateMessage", &owned_by("bob")));
        assert!(!is_allowed(&g, &bob, "UpdateMessage", &owned_by("alice")));
        assert!(is_allowed(&g, &bob, "DeleteMessage", &owned_by("bob")));
        assert!(!is_allowed(&g, &bob, "DeleteMessage", &owned_by("alice")));
        assert!(!is_allowed(&g, &bob, "UpdateMessage", &Resource::default()));
        let moderator = subject("mod", "user", Some("channel_moderator"));
        assert!(is_allowed(
            &g,
            &moderator,
            "DeleteMessage",
            &owned_by("alice")
        ));
        assert!(is_allowed(
            &g,
            &moderator,
            "UpdateMessage",
            &owned_by("alice")
        ));
        assert!(is_allowed(
            &g,
            &moderator,
            "UpdateChannelFrozen",
            &owned_by("alice")
        ));
        assert!(!is_allowed(
            &g,
            &moderator,
            "DeleteChannel",
            &owned_by("alice")
        ));
        assert!(!is_allowed(
            &g,
            &bob,
            "UpdateChannelFrozen",
            &owned_by("alice")
        ));
        // Nobody holds UseFrozenChannel by default.
        assert!(!is_allowed(
            &g,
            &subject("root", "admin", None),
            "UseFrozenChannel",
            &owned_by("root")
        ));
    }

    #[test]
    fn an_empty_user_id_never_owns() {
        let g = default_grants("messaging");
        assert!(!is_allowed(
            &g,
            &subject("", "user", None),
            "CreateMessage",
            &owned_by("")
        ));
        assert!(!is_allowed(
            &g,
            &subject("bob", "user", None),
            "CreateMessage",
            &Resource::default()
        ));
    }

    #[test]
    fn livestream_anonymous_and_guest_rows() {
        let g = default_grants("livestream");
        let channel = owned_by("streamer");
        let anon = subject("!anon", "anonymous", None);
        assert!(is_allowed(&g, &anon, "ReadChannel", &channel));
        assert!(is_allowed(&g, &anon, "ReadChannelMembers", &channel));
        for action in [
            "CreateMessage",
            "CreateReaction",
            "FlagMessage",
            "MuteChannel",
            "UploadAttachment",
        ] {
            assert!(!is_allowed(&g, &anon, action, &channel), "{action}");
        }
        let guest = subject("visitor", "guest", None);
        assert!(is_allowed(&g, &guest, "ReadChannel", &channel));
        assert!(is_allowed(&g, &guest, "FlagMessage", &channel));
        assert!(is_allowed(&g, &guest, "MuteChannel", &channel));
        assert!(!is_allowed(&g, &guest, "CreateMessage", &channel));
        // A plain user writes in livestream without membership.
        assert!(is_allowed(
            &g,
            &subject("viewer", "user", None),
            "CreateMessage",
            &channel
        ));
        assert!(!is_allowed(
            &g,
            &subject("viewer", "user", None),
            "DeleteMessage",
            &owned_by("someone")
        ));
        assert!(is_allowed(
            &g,
            &subject("viewer", "user", None),
            "DeleteMessage",
            &owned_by("viewer")
        ));
    }

    #[test]
    fn commerce_guest_rows() {
        let g = default_grants("commerce");
        let guest = subject("visitor", "guest", None);
        assert!(is_allowed(
            &g,
            &guest,
            "CreateChannel",
            &Resource::default()
        ));
        assert!(is_allowed(
            &g,
            &guest,
            "UploadAttachment",
            &owned_by("seller")
        ));
        assert!(is_allowed(&g, &guest, "ReadChannel", &owned_by("visitor")));
        assert!(!is_allowed(&g, &guest, "ReadChannel", &owned_by("seller")));
        assert!(!is_allowed(
            &g,
            &guest,
            "CreateMessage",
            &owned_by("visitor")
        ));
    }

    #[test]
    fn app_scope_users_update_only_themselves() {
        let g = default_grants(".app");
        let bob = subject("bob", "user", None);
        assert!(is_allowed(&g, &bob, "UpdateUser", &owned_by("bob")));
        assert!(!is_allowed(&g, &bob, "UpdateUser", &owned_by("alice")));
        // The seed's table grants admin only update-user-owner too.
        assert!(!is_allowed(
            &g,
            &subject("root", "admin", None),
            "UpdateUser",
            &owned_by("alice")
        ));
        assert!(is_allowed(&g, &bob, "SearchUser", &Resource::default()));
        assert!(is_allowed(
            &g,
            &subject("visitor", "guest", None),
            "SearchUser",
            &Resource::default()
        ));
        assert!(!is_allowed(
            &g,
            &subject("!anon", "anonymous", None),
            "SearchUser",
            &Resource::default()
        ));
        assert!(!is_allowed(
            &g,
            &bob,
            "ReadFlagReports",
            &Resource::default()
        ));
        assert!(is_allowed(
            &g,
            &subject("m", "moderator", None),
            "ReadFlagReports",
            &Resource::default()
        ));
        // A grant for another action does not leak.
        assert!(!is_allowed(&g, &bob, "UpdateUserRole", &owned_by("bob")));
    }

    #[test]
    fn same_team_permissions_need_a_shared_team() {
        let g = default_grants("messaging");
        let red = vec!["red".to_string()];
        let resource = Resource {
            owner_id: Some("carol"),
            team: Some("blue"),
        };
        let admin = Subject {
            user_id: "root",
            role: "admin",
            channel_role: None,
            teams: &red,
        };
        assert!(!is_allowed(&g, &admin, "ReadChannel", &resource));
        assert!(is_allowed(
            &g,
            &admin,
            "ReadChannel",
            &Resource {
                owner_id: Some("carol"),
                team: Some("red")
            }
        ));
        assert!(is_allowed(
            &g,
            &admin,
            "ReadChannel",
            &Resource {
                owner_id: Some("carol"),
                team: None
            }
        ));
        let global = Subject {
            user_id: "g",
            role: "global_admin",
            channel_role: None,
            teams: &red,
        };
        assert!(is_allowed(&g, &global, "ReadChannel", &resource));
        assert!(is_allowed(&g, &global, "DeleteChannel", &resource));
        let global_mod = Subject {
            user_id: "gm",
            role: "global_moderator",
            channel_role: None,
            teams: NO_TEAMS,
        };
        assert!(!is_allowed(&g, &global_mod, "DeleteChannel", &resource));
        assert!(is_allowed(
            &g,
            &global_mod,
            "DeleteChannel",
            &Resource {
                owner_id: Some("gm"),
                team: Some("blue")
            }
        ));
    }

    #[test]
    fn grants_update_replaces_mentioned_roles_only() {
        let current = default_grants("messaging");
        let update = grants(&[
            (
                "channel_member",
                &["read-channel", "create-message", "create-message"],
            ),
            ("channel_moderator", &[]),
            ("special_agent", &["read-channel"]),
        ]);
        let next = apply_grants_update(&current, &update).unwrap();
        assert_eq!(next["channel_member"], ["read-channel", "create-message"]);
        assert_eq!(next["channel_moderator"], Vec::<String>::new());
        assert_eq!(next["special_agent"], ["read-channel"]);
        assert_eq!(next["user"], current["user"]);
        assert_eq!(next["admin"], current["admin"]);
        let moderator = subject("mod", "user", Some("channel_moderator"));
        assert!(is_allowed(
            &current,
            &moderator,
            "DeleteMessage",
            &owned_by("alice")
        ));
        assert!(!is_allowed(
            &next,
            &moderator,
            "DeleteMessage",
            &owned_by("alice")
        ));
        assert!(!is_allowed(
            &next,
            &subject("bob", "user", Some("channel_member")),
            "CreateReaction",
            &owned_by("x")
        ));

        let err = apply_grants_update(
            &current,
            &grants(&[("user", &["read-channel", "fly-to-the-moon"])]),
        )
        .unwrap_err();
        assert_eq!(
            err,
            PermissionError::UnknownPermission {
                role: "user".into(),
                id: "fly-to-the-moon".into()
            }
        );
        assert!(matches!(
            apply_grants_update(&current, &grants(&[("user", &["!read-channel"])])),
            Err(PermissionError::RevokeNotAllowed { .. })
        ));
        assert_eq!(
            apply_grants_update(&current, &grants(&[("", &[])])),
            Err(PermissionError::EmptyRole)
        );
    }

    #[test]
    fn grants_update_accepts_custom_permissions() {
        let custom = vec![Permission {
            id: "my-delete".into(),
            name: "My Delete".into(),
            description: String::new(),
            action: "DeleteChannel".into(),
            owner: false,
            same_team: true,
            level: "channel".into(),
            custom: true,
            tags: vec![],
            condition: None,
        }];
        let update = grants(&[("special_agent", &["my-delete"])]);
        assert!(apply_grants_update(&Grants::new(), &update).is_err());
        let g = apply_grants_update_with(&Grants::new(), &update, &custom).unwrap();
        let agent = subject("james_bond", "special_agent", None);
        assert!(is_allowed_with(
            &g,
            &agent,
            "DeleteChannel",
            &owned_by("x"),
            &custom
        ));
        assert!(!is_allowed(&g, &agent, "DeleteChannel", &owned_by("x")));
        let mut conditioned = custom.clone();
        conditioned[0].condition = Some(serde_json::json!({"$subject.magic": "x"}));
        assert!(!is_allowed_with(
            &g,
            &agent,
            "DeleteChannel",
            &owned_by("x"),
            &conditioned
        ));
    }

    #[test]
    fn channel_modifiers_revoke_and_add() {
        let base = default_grants("livestream");
        let modifiers = grants(&[("user", &["!add-links", "!create-message", "pin-message"])]);
        let effective = with_channel_modifiers(&base, &modifiers).unwrap();
        let viewer = subject("viewer", "user", None);
        let channel = owned_by("streamer");
        assert!(is_allowed(&base, &viewer, "CreateMessage", &channel));
        assert!(!is_allowed(&effective, &viewer, "CreateMessage", &channel));
        assert!(!is_allowed(&effective, &viewer, "AddLinks", &channel));
        assert!(is_allowed(&effective, &viewer, "PinMessage", &channel));
        assert!(is_allowed(&effective, &viewer, "ReadChannel", &channel));
        assert_eq!(effective["admin"], base["admin"]);

        // Messaging broadcast channel: members may only read.
        let base = default_grants("messaging");
        let effective =
            with_channel_modifiers(&base, &grants(&[("channel_member", &["!create-message"])]))
                .unwrap();
        let member = subject("bob", "user", Some("channel_member"));
        assert!(!is_allowed(
            &effective,
            &member,
            "CreateMessage",
            &owned_by("carol")
        ));
        assert!(is_allowed(
            &effective,
            &member,
            "ReadChannel",
            &owned_by("carol")
        ));
        // Adding to a role the channel type does not mention.
        let effective =
            with_channel_modifiers(&base, &grants(&[("guest", &["read-channel"])])).unwrap();
        assert!(is_allowed(
            &effective,
            &subject("v", "guest", None),
            "ReadChannel",
            &owned_by("carol")
        ));

        assert_eq!(
            with_channel_modifiers(&base, &grants(&[("user", &["!nope"])])),
            Err(PermissionError::UnknownPermission {
                role: "user".into(),
                id: "nope".into()
            })
        );
        assert!(with_channel_modifiers(&base, &grants(&[("user", &["nope"])])).is_err());
    }

    #[test]
    fn roles_combine_user_and_channel_role() {
        let s = subject("bob", "admin", Some("channel_member"));
        assert_eq!(s.roles().collect::<Vec<_>>(), ["admin", "channel_member"]);
        assert_eq!(
            subject("bob", "user", Some("user"))
                .roles()
                .collect::<Vec<_>>(),
            ["user"]
        );
        assert_eq!(
            subject("bob", "user", None).roles().collect::<Vec<_>>(),
            ["user"]
        );
    }

    #[test]
    fn allowed_actions_lists_what_the_tables_grant() {
        let g = default_grants("messaging");
        let member = subject("bob", "user", Some("channel_member"));
        let actions = allowed_actions(&g, &member, &owned_by("carol"), &[]);
        assert!(
            actions.contains("CreateMessage")
                && actions.contains("ReadChannel")
                && actions.contains("PinMessage")
        );
        assert!(
            !actions.contains("UpdateChannel")
                && !actions.contains("DeleteChannel")
                && !actions.contains("BanChannelMember")
        );
        let owner_actions =
            allowed_actions(&g, &subject("carol", "user", None), &owned_by("carol"), &[]);
        assert!(owner_actions.contains("UpdateChannel") && owner_actions.contains("DeleteChannel"));
    }

    #[test]
    fn builtin_role_sets_are_consistent() {
        for r in USER_LEVEL_ROLES.iter().chain(CHANNEL_LEVEL_ROLES) {
            assert!(BUILTIN_ROLES.contains(r), "{r}");
        }
        assert_eq!(
            USER_LEVEL_ROLES.len() + CHANNEL_LEVEL_ROLES.len(),
            BUILTIN_ROLES.len()
        );
    }
}
