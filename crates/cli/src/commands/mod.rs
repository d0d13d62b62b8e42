//! One module per command group.

pub mod collections;
pub mod files;
pub mod generate;
pub mod legacy;
pub mod migrate;
pub mod pack;
pub mod stats;
