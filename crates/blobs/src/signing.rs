//! Signed blob URLs: time-limited, owner-bound tokens minted and checked by the server.
//!
//! Modelled on Supabase Storage, which signs `{url, exp}` with a URL-signing key: a token is
//! `base64url(payload) "." base64url(HMAC-SHA256(secret, base64url(payload)))`, the payload a
//! small JSON object `{k: key, o: owner, exp: unix seconds, kid: key id}`. The key id names the
//! secret that signed it, so a token from another deployment is told apart from a forged one,
//! and secrets can be rotated by keeping the old one for verification.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use crate::error::SignatureError;
use crate::key::owner_prefix;

type HmacSha256 = Hmac<Sha256>;

/// Shortest secret accepted: HMAC-SHA256 keys shorter than its 32-byte output weaken it.
pub const MIN_SECRET_LEN: usize = 32;

/// A server secret for URL signing; `Debug` never shows it.
#[derive(Clone)]
pub struct SigningSecret(Vec<u8>);

impl SigningSecret {
    /// Wraps secret bytes, refusing ones shorter than [`MIN_SECRET_LEN`].
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, SignatureError> {
        let bytes = bytes.into();
        if bytes.len() < MIN_SECRET_LEN {
            return Err(SignatureError::WeakSecret {
                min: MIN_SECRET_LEN,
                got: bytes.len(),
            });
        }
        Ok(Self(bytes))
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length")
    }

    /// A public, stable id of this secret: a MAC of a fixed label, so it reveals nothing
    /// usable about the secret.
    fn key_id(&self) -> String {
        let mut mac = self.mac();
        mac.update(b"techpack-blobs url signing key id");
        B64.encode(&mac.finalize().into_bytes()[..9])
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret([REDACTED])")
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    k: String,
    o: Uuid,
    exp: i64,
    kid: String,
    /// The MIME type to serve the blob as (blobs do not record theirs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    m: Option<String>,
}

/// What a valid token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The blob key it grants access to.
    pub key: String,
    /// The owner it was minted for.
    pub owner: Uuid,
    /// When it stops being valid.
    pub expires_at: DateTime<Utc>,
    /// The MIME type the blob is served as, when the token names one.
    pub mime: Option<String>,
}

/// Mints and verifies signed blob tokens.
#[derive(Debug, Clone)]
pub struct UrlSigner {
    current: (SigningSecret, String),
    previous: Vec<(SigningSecret, String)>,
}

impl UrlSigner {
    /// A signer that signs and verifies with `secret`.
    pub fn new(secret: SigningSecret) -> Self {
        let kid = secret.key_id();
        Self {
            current: (secret, kid),
            previous: Vec::new(),
        }
    }

    /// Also accepts tokens signed with an older secret, so rotating the secret does not break
    /// links already handed out (new tokens use the current one).
    pub fn with_previous_secret(mut self, secret: SigningSecret) -> Self {
        let kid = secret.key_id();
        self.previous.push((secret, kid));
        self
    }

    /// A URL-safe token granting `owner` access to `key` until `expires_at`. Refuses keys
    /// outside the owner's prefix so a token can never reach another user's blob.
    pub fn sign(
        &self,
        key: &str,
        owner: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<String, SignatureError> {
        self.sign_with_type(key, owner, None, expires_at)
    }

    /// [`UrlSigner::sign`] with the MIME type the download is served as, signed with the rest
    /// so a link cannot be changed to serve a blob as another type (say, HTML).
    pub fn sign_with_type(
        &self,
        key: &str,
        owner: Uuid,
        mime: Option<&str>,
        expires_at: DateTime<Utc>,
    ) -> Result<String, SignatureError> {
        if !key.starts_with(&owner_prefix(owner)) {
            return Err(SignatureError::KeyNotOwned {
                key: key.to_owned(),
                owner,
            });
        }
        let (secret, kid) = &self.current;
        let claims = Claims {
            k: key.to_owned(),
            o: owner,
            exp: expires_at.timestamp(),
            kid: kid.clone(),
            m: mime.map(str::to_owned),
        };
        let payload = B64.encode(serde_json::to_vec(&claims).expect("claims serialize"));
        let mut mac = secret.mac();
        mac.update(payload.as_bytes());
        let signature = B64.encode(mac.finalize().into_bytes());
        Ok(format!("{payload}.{signature}"))
    }

    /// The path a server serves signed downloads under, for a token: `{base}/{token}`.
    pub fn signed_path(base: &str, token: &str) -> String {
        format!("{}/{token}", base.trim_end_matches('/'))
    }

    /// Checks a token at time `now` and returns what it grants. The signature is checked
    /// before the expiry, so nothing in an unauthenticated payload is trusted.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<VerifiedToken, SignatureError> {
        let (payload, signature) = token.split_once('.').ok_or(SignatureError::Malformed)?;
        let signature = B64
            .decode(signature)
            .map_err(|_| SignatureError::Malformed)?;
        let claims: Claims = B64
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(SignatureError::Malformed)?;
        let secret = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|(_, kid)| *kid == claims.kid)
            .map(|(secret, _)| secret)
            .ok_or(SignatureError::ForeignSecret)?;
        let mut mac = secret.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| SignatureError::Tampered)?;
        let expires_at = Utc
            .timestamp_opt(claims.exp, 0)
            .single()
            .ok_or(SignatureError::Malformed)?;
        if now >= expires_at {
            return Err(SignatureError::Expired {
                expired_at: expires_at,
            });
        }
        Ok(VerifiedToken {
            key: claims.k,
            owner: claims.o,
            expires_at,
            mime: claims.m,
        })
    }
}
