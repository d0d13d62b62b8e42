//! The `local` provider: offline, deterministic image processing. (Being built.)
