//! Stable ids for names people type: a product called "winter-parka" is the same product id
//! every time for the same user, and a different one for another user.

use uuid::Uuid;

/// The user a local, account-less installation acts as.
pub const LOCAL_USER_ID: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0001);

const PRODUCT_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c2a44_9d3b_4e5a_8c71_2b0d6e9f4a10);
const REVISION_NAMESPACE: Uuid = Uuid::from_u128(0x0b7e5d12_3c4f_4a8b_9e60_7d1f2c3b4a55);

/// Maps a product reference to its id: a UUID is taken as is, any other text becomes a
/// name-based (v5) id scoped to the user.
pub fn product_id_from_name(user_id: Uuid, reference: &str) -> Uuid {
    scoped_id(PRODUCT_NAMESPACE, user_id, reference)
}

/// Maps a revision reference to its id, scoped to the user and product the same way.
pub fn revision_id_from_name(user_id: Uuid, product_id: Uuid, reference: &str) -> Uuid {
    let scope = Uuid::new_v5(&user_id, product_id.as_bytes());
    scoped_id(REVISION_NAMESPACE, scope, reference)
}

fn scoped_id(namespace: Uuid, scope: Uuid, reference: &str) -> Uuid {
    if let Ok(id) = Uuid::parse_str(reference.trim()) {
        return id;
    }
    let mut name = scope.as_bytes().to_vec();
    name.extend_from_slice(reference.trim().as_bytes());
    Uuid::new_v5(&namespace, &name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_stable_ids_per_user() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        assert_eq!(
            product_id_from_name(a, "parka"),
            product_id_from_name(a, "parka")
        );
        assert_ne!(
            product_id_from_name(a, "parka"),
            product_id_from_name(b, "parka")
        );
        let explicit = Uuid::new_v4();
        assert_eq!(product_id_from_name(a, &explicit.to_string()), explicit);
    }
}
