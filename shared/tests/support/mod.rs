//! Helpers shared by the integration tests of the `shared` crate.
#![allow(dead_code)]

pub mod chat;
pub mod moto;
pub mod s3;

/// A small deterministic generator (no seed files, same history every run).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}
