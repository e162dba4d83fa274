//! The chat product as a library: domain rules, storage, use cases and the HTTP edge that every
//! Lambda function and the local runtime share.

pub mod domain;
pub mod environment;
pub mod files;
pub mod gifs;
pub mod hooks;
pub mod http;
pub mod images;
pub mod previews;
pub mod push;
pub mod realtime;
pub mod service;
pub mod store;
pub mod translate;
