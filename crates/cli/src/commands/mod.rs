//! One module per command group.

pub mod cleanup;
pub mod collections;
pub mod files;
pub mod fsck;
pub mod generate;
pub mod jobs;
pub mod legacy;
pub mod migrate;
pub mod pack;
pub mod photo;
pub mod stats;
pub mod worker;
