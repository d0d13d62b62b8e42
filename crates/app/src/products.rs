//! Products as people name them: a UUID is taken as is, any other text is a name that maps to
//! a stable id per user (so `--product polo` is the same product on every run).

use uuid::Uuid;

/// The product id a reference (a UUID or a name) stands for, for `user_id`.
pub fn product_id(user_id: Uuid, reference: &str) -> Uuid {
    techpack_model::product_id_from_name(user_id, reference)
}

/// Whether a reference is an id rather than a name.
pub fn is_id(reference: &str) -> bool {
    Uuid::parse_str(reference.trim()).is_ok()
}
