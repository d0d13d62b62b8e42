//! The key layout of stored blobs.
//!
//! Content lives at `{owner}/{sha256[0..2]}/{sha256}`: the owner prefix keeps users' blobs apart
//! (and lets one list or delete a user's blobs by prefix), the two-character fan-out keeps
//! directories small on `file://`. In-flight uploads live at `{owner}/tmp/{uuid}` until they are
//! hashed and moved; a temp key older than any upload could take is debris from a crash.

use uuid::Uuid;

/// The folder, under an owner, that holds in-flight uploads.
pub const TEMP_DIR: &str = "tmp";

/// The key content with this SHA-256 gets under `owner`; `None` unless `sha256_hex` is 64
/// lower-case hex digits (the form `tech_files.content_sha256` records).
pub fn content_key(owner: Uuid, sha256_hex: &str) -> Option<String> {
    is_sha256_hex(sha256_hex).then(|| digest_key(owner, sha256_hex))
}

/// [`content_key`] for a digest this crate just computed.
pub(crate) fn digest_key(owner: Uuid, sha256_hex: &str) -> String {
    format!("{owner}/{}/{sha256_hex}", &sha256_hex[..2])
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The key prefix of all of an owner's blobs (content and temporary), with a trailing `/`.
pub fn owner_prefix(owner: Uuid) -> String {
    format!("{owner}/")
}

/// A fresh temporary key for an upload by `owner`.
pub(crate) fn temp_key(owner: Uuid) -> String {
    format!("{owner}/{TEMP_DIR}/{}", Uuid::new_v4())
}

/// What a stored key is, as far as the layout tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    /// A content-addressed blob.
    Content {
        /// Whose blob it is.
        owner: Uuid,
        /// Its SHA-256, lower-case hex (what [`crate::BlobStore::verify_blob`] must find).
        sha256: String,
    },
    /// An in-flight or abandoned upload.
    Temp {
        /// Who was uploading.
        owner: Uuid,
    },
}

/// Classifies a key; `None` for keys that do not follow the layout (never written by this
/// crate, so cleanup should leave them alone and fsck may report them).
pub fn parse_key(key: &str) -> Option<KeyKind> {
    let mut parts = key.split('/');
    let owner = Uuid::parse_str(parts.next()?).ok()?;
    let second = parts.next()?;
    let third = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    if second == TEMP_DIR {
        Uuid::parse_str(third).ok()?;
        return Some(KeyKind::Temp { owner });
    }
    if is_sha256_hex(third) && third.starts_with(second) && second.len() == 2 {
        Some(KeyKind::Content {
            owner,
            sha256: third.to_owned(),
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_and_temp_keys_parse_back() {
        let owner = Uuid::new_v4();
        let sha = "ab".repeat(32);
        let key = content_key(owner, &sha).unwrap();
        assert_eq!(key, format!("{owner}/ab/{sha}"));
        assert_eq!(content_key(owner, "abc"), None);
        assert_eq!(content_key(owner, &"AB".repeat(32)), None);
        assert_eq!(
            parse_key(&key),
            Some(KeyKind::Content {
                owner,
                sha256: sha.clone()
            })
        );
        assert_eq!(parse_key(&temp_key(owner)), Some(KeyKind::Temp { owner }));
        assert_eq!(parse_key(&format!("{owner}/cd/{sha}")), None);
        assert_eq!(parse_key("not-a-uuid/ab/x"), None);
        assert_eq!(parse_key(&format!("{owner}/ab/{sha}/extra")), None);
    }
}
