//! Helpers shared by the integration tests of the `shared` crate.
#![allow(dead_code)]

pub mod chat;
pub mod moto;
pub mod s3;
