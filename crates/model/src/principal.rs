//! Who is acting. Every store call takes one, so isolation never depends on a caller
//! remembering a WHERE clause.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The actor of a store call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum Principal {
    /// An end user (the Supabase JWT `sub`): sees and changes only their own rows.
    User(Uuid),
    /// The service role (workers, administration): bypasses row level security.
    Service,
}

impl Principal {
    /// The user id, when the principal is a user.
    pub fn user_id(self) -> Option<Uuid> {
        match self {
            Principal::User(id) => Some(id),
            Principal::Service => None,
        }
    }

    /// Whether this principal may act on a row owned by `owner`.
    pub fn may_access(self, owner: Uuid) -> bool {
        match self {
            Principal::User(id) => id == owner,
            Principal::Service => true,
        }
    }
}
