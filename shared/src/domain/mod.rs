//! Types and rules of the product, free of I/O: permissions, filters, channel types, users,
//! app settings, validation limits.

pub mod app_settings;
pub mod aws_names;
pub mod ban;
pub mod blocklist;
pub mod caller;
pub mod campaign;
pub mod capabilities;
pub mod channel;
pub mod channel_type;
pub mod clock;
pub mod command;
pub mod device;
pub mod error;
pub mod event;
pub mod event_kind;
pub mod export;
pub mod filter;
pub mod flag;
pub mod ids;
pub mod limits;
pub mod markup;
pub mod message;
pub mod patch;
pub mod permissions;
pub mod push_preference;
pub mod push_provider;
pub mod reaction;
pub mod thread;
pub mod upload;
pub mod user;
pub mod user_index;

pub use error::{ApiError, ApiResult, ErrorCode};
