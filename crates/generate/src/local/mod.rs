//! The `local` provider: offline, deterministic image processing. (Being built.)

// The provider that calls these lands in the next commit; the segmentation contract is
// committed first because the sketch code builds on it.
#[allow(dead_code)]
mod color;
#[allow(dead_code)]
pub(crate) mod segment;
