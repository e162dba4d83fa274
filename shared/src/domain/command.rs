//! Slash commands: the built-ins (current and legacy), the sets they belong to, custom
//! commands as `POST /commands` defines them (checked here), and how a message's text names a
//! command (`/name args`).

use crate::domain::ApiError;
use serde::{Deserialize, Serialize};

/// Command set names accepted in `commands` besides command names.
pub const COMMAND_SET_ALL: &str = "all";
pub const COMMAND_SET_FUN: &str = "fun_set";
pub const COMMAND_SET_MODERATION: &str = "moderation_set";

/// Custom commands an app may define.
pub const MAX_CUSTOM_COMMANDS: usize = 50;
/// Longest command name, description and args.
pub const MAX_COMMAND_NAME: usize = 64;
pub const MAX_COMMAND_TEXT: usize = 255;

/// A slash command as channel type responses and `GET /commands` show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub args: String,
    #[serde(default)]
    pub set: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

impl Command {
    pub(crate) fn builtin(name: &str, description: &str, args: &str, set: &str) -> Self {
        Command {
            name: name.into(),
            description: description.into(),
            args: args.into(),
            set: set.into(),
            created_at: None,
            updated_at: None,
        }
    }
}

/// The built-in commands `"all"` expands to, in the order Stream lists them on a channel config
/// (name, description, args and set copied from stream-chat-js test fixtures of real responses).
pub fn builtin_commands() -> Vec<Command> {
    vec![
        Command::builtin(
            "giphy",
            "Post a random gif to the channel",
            "[text]",
            COMMAND_SET_FUN,
        ),
        Command::builtin(
            "ban",
            "Ban a user",
            "[@username] [text]",
            COMMAND_SET_MODERATION,
        ),
        Command::builtin(
            "unban",
            "Unban a user",
            "[@username]",
            COMMAND_SET_MODERATION,
        ),
        Command::builtin("mute", "Mute a user", "[@username]", COMMAND_SET_MODERATION),
        Command::builtin(
            "unmute",
            "Unmute a user",
            "[@username]",
            COMMAND_SET_MODERATION,
        ),
    ]
}

/// Older built-ins still accepted by name (the Python SDK's fixtures treat them as built-in and
/// never delete them) but not part of `"all"` on current apps. Descriptions are ours.
pub fn legacy_builtin_commands() -> Vec<Command> {
    vec![
        Command::builtin(
            "imgur",
            "Post a random image to the channel",
            "[text]",
            COMMAND_SET_FUN,
        ),
        Command::builtin("flag", "Flag a user", "[@username]", COMMAND_SET_MODERATION),
    ]
}

/// Names of every built-in command, current and legacy (these cannot be created or deleted as
/// custom commands).
pub fn is_builtin_command(name: &str) -> bool {
    builtin_commands()
        .iter()
        .chain(&legacy_builtin_commands())
        .any(|c| c.name == name)
}

/// `POST /commands` / `PUT /commands/{name}` as sent (`null` reads as absent).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct CommandRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub args: Option<String>,
    #[serde(default)]
    pub set: Option<String>,
}

fn text_field(field: &str, value: Option<String>) -> Result<String, ApiError> {
    let value = value.unwrap_or_default();
    if value.chars().count() > MAX_COMMAND_TEXT {
        return Err(ApiError::field(
            field,
            format!("{field} must be at most {MAX_COMMAND_TEXT} characters"),
        ));
    }
    Ok(value)
}

fn check_set(set: &str) -> Result<(), ApiError> {
    if set.is_empty() || set == COMMAND_SET_FUN || set == COMMAND_SET_MODERATION {
        Ok(())
    } else {
        Err(ApiError::field(
            "set",
            format!("set must be {COMMAND_SET_FUN} or {COMMAND_SET_MODERATION}, got {set:?}"),
        ))
    }
}

impl CommandRequest {
    /// A new custom command: a name of lowercase letters, digits, `_` and `-` that is not a
    /// built-in's or a set's, and a description.
    pub fn create(self, now: &str) -> Result<Command, ApiError> {
        let name = self.name.clone().unwrap_or_default();
        if name.is_empty() || name.len() > MAX_COMMAND_NAME {
            return Err(ApiError::field(
                "name",
                format!("name is required (at most {MAX_COMMAND_NAME} characters)"),
            ));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(ApiError::field(
                "name",
                "name may hold lowercase letters, digits, _ and - only",
            ));
        }
        if is_builtin_command(&name)
            || [COMMAND_SET_ALL, COMMAND_SET_FUN, COMMAND_SET_MODERATION].contains(&name.as_str())
        {
            return Err(ApiError::field(
                "name",
                format!("{name:?} is a built-in command or set"),
            ));
        }
        let description = text_field("description", self.description.clone())?;
        if description.is_empty() {
            return Err(ApiError::field("description", "description is required"));
        }
        let args = text_field("args", self.args.clone())?;
        let set = self.set.clone().unwrap_or_default();
        check_set(&set)?;
        Ok(Command {
            name,
            description,
            args,
            set,
            created_at: Some(now.to_string()),
            updated_at: Some(now.to_string()),
        })
    }

    /// `command` with the fields this update gives (the name stays).
    pub fn update(self, mut command: Command, now: &str) -> Result<Command, ApiError> {
        if let Some(d) = self.description {
            let d = text_field("description", Some(d))?;
            if d.is_empty() {
                return Err(ApiError::field(
                    "description",
                    "description cannot be empty",
                ));
            }
            command.description = d;
        }
        if let Some(a) = self.args {
            command.args = text_field("args", Some(a))?;
        }
        if let Some(set) = self.set {
            check_set(&set)?;
            command.set = set;
        }
        command.updated_at = Some(now.to_string());
        Ok(command)
    }
}

/// The command a message's text invokes, and its arguments: `/giphy funny cat` →
/// `("giphy", "funny cat")`. Text that does not start with `/` and a name invokes nothing.
pub fn invocation(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix('/')?;
    let (name, args) = match rest.find(char::is_whitespace) {
        Some(i) => (&rest[..i], rest[i..].trim()),
        None => (rest, ""),
    };
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    valid.then_some((name, args))
}

/// The user a moderation command names: its first argument, with or without `@`, and the rest
/// (a reason).
pub fn target_and_reason(args: &str) -> Option<(&str, &str)> {
    let args = args.trim();
    let (first, rest) = match args.find(char::is_whitespace) {
        Some(i) => (&args[..i], args[i..].trim()),
        None => (args, ""),
    };
    let target = first.strip_prefix('@').unwrap_or(first);
    (!target.is_empty()).then_some((target, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocations_are_a_slash_a_name_and_arguments() {
        assert_eq!(
            invocation("/giphy funny  cat"),
            Some(("giphy", "funny  cat"))
        );
        assert_eq!(invocation("/ban"), Some(("ban", "")));
        assert_eq!(invocation("/ban\t@bob spam"), Some(("ban", "@bob spam")));
        assert_eq!(invocation("hello /giphy"), None);
        assert_eq!(invocation("/"), None);
        assert_eq!(invocation("/ cat"), None);
        assert_eq!(invocation("/path/to"), None);
    }

    #[test]
    fn moderation_commands_name_a_user_then_a_reason() {
        assert_eq!(
            target_and_reason("@bob being rude"),
            Some(("bob", "being rude"))
        );
        assert_eq!(target_and_reason("bob"), Some(("bob", "")));
        assert_eq!(target_and_reason("  "), None);
        assert_eq!(target_and_reason("@"), None);
    }

    #[test]
    fn custom_commands_are_checked() {
        let req = |v: serde_json::Value| serde_json::from_value::<CommandRequest>(v).unwrap();
        let ok = req(serde_json::json!({"name": "ticket", "description": "Open a ticket", "args": "[text]", "set": "fun_set"}))
            .create("now")
            .unwrap();
        assert_eq!((ok.name.as_str(), ok.set.as_str()), ("ticket", "fun_set"));
        for bad in [
            serde_json::json!({"description": "x"}),
            serde_json::json!({"name": "giphy", "description": "x"}),
            serde_json::json!({"name": "all", "description": "x"}),
            serde_json::json!({"name": "Ticket", "description": "x"}),
            serde_json::json!({"name": "ticket"}),
            serde_json::json!({"name": "ticket", "description": "x", "set": "other"}),
            serde_json::json!({"name": "ticket", "description": "x".repeat(256)}),
        ] {
            assert!(req(bad.clone()).create("now").is_err(), "{bad}");
        }
        let updated = req(serde_json::json!({"description": "Changed"}))
            .update(ok, "later")
            .unwrap();
        assert_eq!(updated.description, "Changed");
        assert_eq!(updated.updated_at.as_deref(), Some("later"));
    }
}
