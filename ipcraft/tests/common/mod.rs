//! The workspace's test helpers.
#![allow(unused_imports)]

pub use ipcraft_testkit::*;

#[cfg(not(loom))]
pub mod ends;
