//! Signed blob URLs: minted, verified, and refused when tampered, expired or foreign.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{Duration, Utc};
use techpack_blobs::{SignatureError, SigningSecret, UrlSigner, content_key};
use uuid::Uuid;

fn secret(fill: u8) -> SigningSecret {
    SigningSecret::new(vec![fill; 32]).unwrap()
}

fn key_for(owner: Uuid) -> String {
    content_key(owner, &"7f".repeat(32)).unwrap()
}

#[test]
fn a_signed_token_verifies_until_it_expires() {
    let signer = UrlSigner::new(secret(1));
    let owner = Uuid::new_v4();
    let key = key_for(owner);
    let now = Utc::now();
    let exp = now + Duration::minutes(10);
    let token = signer.sign(&key, owner, exp).unwrap();
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
        "URL-safe: {token}"
    );

    let granted = signer.verify(&token, now).unwrap();
    assert_eq!(granted.key, key);
    assert_eq!(granted.owner, owner);
    assert_eq!(granted.expires_at.timestamp(), exp.timestamp());

    let later = exp + Duration::seconds(1);
    assert!(matches!(
        signer.verify(&token, later),
        Err(SignatureError::Expired { .. })
    ));
    assert!(matches!(
        signer.verify(&token, exp),
        Err(SignatureError::Expired { .. })
    ));
    assert_eq!(
        UrlSigner::signed_path("/blobs/signed/", &token),
        format!("/blobs/signed/{token}")
    );
}

#[test]
fn tampering_is_detected() {
    let signer = UrlSigner::new(secret(2));
    let owner = Uuid::new_v4();
    let now = Utc::now();
    let token = signer
        .sign(&key_for(owner), owner, now + Duration::minutes(5))
        .unwrap();
    let (payload, signature) = token.split_once('.').unwrap();

    // A payload rewritten to another key, a later expiry and the victim's owner, re-encoded.
    let mut claims: serde_json::Value =
        serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
    let victim = Uuid::new_v4();
    claims["k"] = key_for(victim).into();
    claims["o"] = victim.to_string().into();
    claims["exp"] = (now + Duration::days(365)).timestamp().into();
    let forged = format!(
        "{}.{signature}",
        B64.encode(serde_json::to_vec(&claims).unwrap())
    );
    assert_eq!(signer.verify(&forged, now), Err(SignatureError::Tampered));

    // A flipped signature character.
    let mut sig = signature.to_owned().into_bytes();
    sig[3] = if sig[3] == b'A' { b'B' } else { b'A' };
    let flipped = format!("{payload}.{}", String::from_utf8(sig).unwrap());
    assert_eq!(signer.verify(&flipped, now), Err(SignatureError::Tampered));

    // Tampering that also breaks expiry is still reported as tampering: the signature is
    // checked before anything in the payload is believed.
    claims["exp"] = (now - Duration::days(1)).timestamp().into();
    let stale_forgery = format!(
        "{}.{signature}",
        B64.encode(serde_json::to_vec(&claims).unwrap())
    );
    assert_eq!(
        signer.verify(&stale_forgery, now),
        Err(SignatureError::Tampered)
    );

    for garbage in ["", "abc", "a.b.c", "!!!.???", &format!("{payload}.")] {
        let err = signer.verify(garbage, now).unwrap_err();
        assert!(
            matches!(err, SignatureError::Malformed | SignatureError::Tampered),
            "{garbage:?} → {err:?}"
        );
    }
}

#[test]
fn a_foreign_secret_is_rejected_and_rotation_keeps_old_links() {
    let owner = Uuid::new_v4();
    let now = Utc::now();
    let old = UrlSigner::new(secret(3));
    let token = old
        .sign(&key_for(owner), owner, now + Duration::hours(1))
        .unwrap();

    let other_deployment = UrlSigner::new(secret(4));
    assert_eq!(
        other_deployment.verify(&token, now),
        Err(SignatureError::ForeignSecret)
    );

    let rotated = UrlSigner::new(secret(4)).with_previous_secret(secret(3));
    assert_eq!(rotated.verify(&token, now).unwrap().owner, owner);
    let fresh = rotated
        .sign(&key_for(owner), owner, now + Duration::hours(1))
        .unwrap();
    assert_eq!(old.verify(&fresh, now), Err(SignatureError::ForeignSecret));
}

#[test]
fn signing_refuses_other_owners_keys_and_weak_secrets() {
    let signer = UrlSigner::new(secret(5));
    let owner = Uuid::new_v4();
    let someone_else = Uuid::new_v4();
    assert!(matches!(
        signer.sign(
            &key_for(someone_else),
            owner,
            Utc::now() + Duration::minutes(1)
        ),
        Err(SignatureError::KeyNotOwned { .. })
    ));
    assert_eq!(
        SigningSecret::new(b"short".to_vec()).unwrap_err(),
        SignatureError::WeakSecret { min: 32, got: 5 }
    );
}

#[test]
fn debug_output_never_shows_the_secret() {
    let signer = UrlSigner::new(
        SigningSecret::new(b"super-secret-value-that-is-long-enough".to_vec()).unwrap(),
    );
    let shown = format!("{signer:?}");
    assert!(!shown.contains("super-secret"), "{shown}");
    assert!(shown.contains("REDACTED"));
}
