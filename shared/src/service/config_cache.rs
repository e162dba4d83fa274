//! The app settings, channel types and custom commands as the request path reads them: every request reads the
//! settings and most read a channel type, and both change rarely, so they are kept decoded for a
//! moment. A change made through this process clears the cache at once; another process (another
//! Lambda instance) sees it within [`FRESH_FOR`]. Read-modify-writes of either read the stored
//! item, never the cache.

use crate::domain::app_settings::AppSettings;
use crate::domain::channel_type::ChannelTypeConfig;
use crate::domain::command::Command;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A channel type with its item version, or none when it does not exist.
type StoredType = Option<(ChannelTypeConfig, u64)>;

/// How long a decoded setting is used before it is read again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct ConfigCache {
    settings: Mutex<Option<(Instant, Arc<AppSettings>)>>,
    /// Channel type name → the type (none: it does not exist) and its item version.
    channel_types: Mutex<HashMap<String, (Instant, StoredType)>>,
    /// The app's custom commands.
    commands: Mutex<Option<(Instant, Arc<Vec<Command>>)>>,
}

impl ConfigCache {
    pub fn settings(&self) -> Option<Arc<AppSettings>> {
        let cached = self.settings.lock().ok()?;
        cached
            .as_ref()
            .filter(|(at, _)| at.elapsed() < FRESH_FOR)
            .map(|(_, s)| s.clone())
    }

    pub fn keep_settings(&self, settings: &Arc<AppSettings>) {
        if let Ok(mut cached) = self.settings.lock() {
            *cached = Some((Instant::now(), settings.clone()));
        }
    }

    /// The cached type: `None` when not cached (or stale), `Some(None)` when cached as absent.
    #[allow(clippy::option_option)]
    pub fn channel_type(&self, name: &str) -> Option<StoredType> {
        let cached = self.channel_types.lock().ok()?;
        cached
            .get(name)
            .filter(|(at, _)| at.elapsed() < FRESH_FOR)
            .map(|(_, t)| t.clone())
    }

    pub fn keep_channel_type(&self, name: &str, found: &StoredType) {
        if let Ok(mut cached) = self.channel_types.lock() {
            // Names come from requests: an app has at most 50 types, so anything past that is
            // someone asking for names that do not exist.
            if cached.len() >= 64 {
                cached.retain(|_, (at, _)| at.elapsed() < FRESH_FOR);
            }
            if cached.len() < 64 {
                cached.insert(name.to_string(), (Instant::now(), found.clone()));
            }
        }
    }

    pub fn commands(&self) -> Option<Arc<Vec<Command>>> {
        let cached = self.commands.lock().ok()?;
        cached
            .as_ref()
            .filter(|(at, _)| at.elapsed() < FRESH_FOR)
            .map(|(_, c)| c.clone())
    }

    pub fn keep_commands(&self, commands: &Arc<Vec<Command>>) {
        if let Ok(mut cached) = self.commands.lock() {
            *cached = Some((Instant::now(), commands.clone()));
        }
    }

    /// Forgets everything: this process changed a setting, a channel type or a command.
    pub fn clear(&self) {
        if let Ok(mut c) = self.commands.lock() {
            *c = None;
        }
        if let Ok(mut s) = self.settings.lock() {
            *s = None;
        }
        if let Ok(mut t) = self.channel_types.lock() {
            t.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_through_this_process_clears_what_was_kept() {
        let cache = ConfigCache::default();
        assert!(cache.settings().is_none());
        cache.keep_settings(&Arc::default());
        assert!(cache.settings().is_some());
        cache.keep_channel_type("nope", &None);
        assert_eq!(
            cache.channel_type("nope"),
            Some(None),
            "absence is kept too"
        );
        cache.clear();
        assert!(cache.settings().is_none());
        assert_eq!(cache.channel_type("nope"), None);
    }

    #[test]
    fn names_nobody_created_cannot_grow_it() {
        let cache = ConfigCache::default();
        for i in 0..1000 {
            cache.keep_channel_type(&format!("made-up-{i}"), &None);
        }
        assert!(cache.channel_types.lock().expect("cache").len() <= 64);
    }
}
