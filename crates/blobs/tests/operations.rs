//! Every blob operation, with the same code, on file://, memory:// and a real S3 server.

mod common;

use bytes::Bytes;
use common::{Kind, noise, open, png_with};
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use techpack_blobs::{BlobError, BlobStore, BlobStoreOptions, KeyKind, mime, parse_key};
use uuid::Uuid;

/// Keys that are not content-addressed blobs: in-flight uploads left behind.
async fn temp_keys(store: &BlobStore, owner: Uuid) -> Vec<String> {
    store
        .list_all(&owner.to_string())
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .filter(|k| !matches!(parse_key(k), Some(KeyKind::Content { .. })))
        .collect()
}

fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn round_trip(kind: Kind) {
    let fx = open(kind, BlobStoreOptions::default()).await;
    let store = &fx.store;
    let owner = Uuid::new_v4();
    let content = png_with(b"round trip");

    let stored = store.put_bytes(owner, content.clone()).await.unwrap();
    let sha = sha_hex(&content);
    assert_eq!(stored.sha256, sha);
    assert_eq!(stored.key, format!("{owner}/{}/{sha}", &sha[..2]));
    assert_eq!(stored.size, content.len() as u64);
    assert_eq!(stored.mime, mime::PNG);
    assert!(!stored.deduplicated);

    assert_eq!(
        store.get_bytes(&stored.key).await.unwrap(),
        Bytes::from(content.clone())
    );
    let download = store.get_stream(&stored.key).await.unwrap();
    assert_eq!(download.meta.size, content.len() as u64);
    let streamed: Vec<Bytes> = download.stream.try_collect().await.unwrap();
    assert_eq!(streamed.concat(), content);

    let head = store.head(&stored.key).await.unwrap();
    assert_eq!(head.size, content.len() as u64);
    let age = chrono::Utc::now() - head.last_modified;
    assert!(
        age.num_seconds().abs() < 60,
        "last_modified is now-ish: {age}"
    );
    assert!(store.exists(&stored.key).await.unwrap());

    let digest = store.verify_blob(&stored.key).await.unwrap();
    assert_eq!(
        (digest.size, digest.sha256.as_str()),
        (stored.size, sha.as_str())
    );

    let listed = store.list_all(&format!("{owner}/")).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, stored.key);
    assert_eq!(listed[0].size, stored.size);
    let other_owner = store.list_all(&Uuid::new_v4().to_string()).await.unwrap();
    assert!(other_owner.is_empty(), "owners are scoped apart");

    store.delete(&stored.key).await.unwrap();
    assert!(!store.exists(&stored.key).await.unwrap());
    assert!(matches!(
        store.get_bytes(&stored.key).await,
        Err(BlobError::NotFound { .. })
    ));
    assert!(matches!(
        store.head(&stored.key).await,
        Err(BlobError::NotFound { .. })
    ));
    assert!(matches!(
        store.verify_blob(&stored.key).await,
        Err(BlobError::NotFound { .. })
    ));
    store
        .delete(&stored.key)
        .await
        .expect("deleting twice is fine");
    assert!(store.list_all(&owner.to_string()).await.unwrap().is_empty());
}

async fn every_accepted_type(kind: Kind) {
    let fx = open(kind, BlobStoreOptions::default()).await;
    let owner = Uuid::new_v4();
    let samples: [(&[u8], &str); 7] = [
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", mime::PNG),
        (b"\xff\xd8\xff\xe0\0\x10JFIF\0", mime::JPEG),
        (b"RIFF\x24\0\0\0WEBPVP8 ", mime::WEBP),
        (b"GIF89a\x01\0\x01\0\0\0\0", mime::GIF),
        (b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>", mime::SVG),
        (b"{\"colours\": [\"navy\"]}", mime::JSON),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", mime::PDF),
    ];
    for (bytes, expected) in samples {
        let stored = fx.store.put_bytes(owner, bytes.to_vec()).await.unwrap();
        assert_eq!(stored.mime, expected);
    }
    // A real product photo from the specification's shared samples beside the checkout.
    let photos =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/samples/products");
    let mut jpegs: Vec<_> = std::fs::read_dir(&photos)
        .unwrap_or_else(|error| {
            panic!(
                "the sample photos are missing at {} ({error}): check out the project beside its `shared` folder",
                photos.display()
            )
        })
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    jpegs.sort();
    assert!(!jpegs.is_empty(), "no JPEG sample in {}", photos.display());
    if let Some(photo) = jpegs.first() {
        let file = tokio::fs::File::open(photo).await.unwrap();
        let stored = fx.store.put_reader(owner, file).await.unwrap();
        assert_eq!(stored.mime, mime::JPEG, "{}", photo.display());
        assert_eq!(
            fx.store.get_bytes(&stored.key).await.unwrap(),
            std::fs::read(photo).unwrap()
        );
    }
}

async fn dedup(kind: Kind) {
    let fx = open(kind, BlobStoreOptions::default()).await;
    let owner = Uuid::new_v4();
    let content = png_with(&noise(1, 10_000));
    let first = fx.store.put_bytes(owner, content.clone()).await.unwrap();
    let second = fx.store.put_bytes(owner, content.clone()).await.unwrap();
    assert_eq!(first.key, second.key);
    assert!(!first.deduplicated);
    assert!(second.deduplicated);
    assert_eq!(
        fx.store.list_all(&owner.to_string()).await.unwrap().len(),
        1
    );

    // Another owner's identical content is kept apart.
    let other = Uuid::new_v4();
    let theirs = fx.store.put_bytes(other, content).await.unwrap();
    assert_ne!(theirs.key, first.key);
    assert!(!theirs.deduplicated);
}

fn small_parts() -> BlobStoreOptions {
    // S3's minimum part size, so a few MiB exercise the multipart path.
    BlobStoreOptions {
        part_size: 5 * 1024 * 1024,
        upload_concurrency: 2,
        ..BlobStoreOptions::default()
    }
}

fn chunked(
    content: Vec<u8>,
    chunk: usize,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let content = Bytes::from(content);
    let n = content.len().div_ceil(chunk);
    futures::stream::iter(
        (0..n).map(move |i| Ok(content.slice(i * chunk..((i + 1) * chunk).min(content.len())))),
    )
}

async fn multipart_stream_and_dedup(kind: Kind) {
    let fx = open(kind, small_parts()).await;
    let owner = Uuid::new_v4();
    let content = png_with(&noise(2, 13 * 1024 * 1024));
    let first = fx
        .store
        .put_stream(owner, chunked(content.clone(), 64 * 1024))
        .await
        .unwrap();
    assert_eq!(first.sha256, sha_hex(&content));
    assert_eq!(first.size, content.len() as u64);
    let digest = fx.store.verify_blob(&first.key).await.unwrap();
    assert_eq!(digest.sha256, first.sha256);

    let again = fx
        .store
        .put_stream(owner, chunked(content.clone(), 1 << 20))
        .await
        .unwrap();
    assert_eq!(again.key, first.key);
    assert!(again.deduplicated);
    let keys: Vec<String> = fx
        .store
        .list_all(&owner.to_string())
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(keys, vec![first.key.clone()], "one object, no temp left");
}

async fn rejects_text_and_leaves_nothing(kind: Kind) {
    let fx = open(kind, small_parts()).await;
    let owner = Uuid::new_v4();
    let err = fx
        .store
        .put_bytes(owner, "just some notes\n".repeat(100))
        .await
        .unwrap_err();
    match &err {
        BlobError::UnsupportedType { detected, allowed } => {
            assert_eq!(detected, "text/plain");
            assert!(allowed.iter().any(|a| a == mime::PNG));
        }
        other => panic!("expected UnsupportedType, got {other:?}"),
    }
    assert!(err.is_caller_error());
    assert!(
        err.to_string().contains("image/png"),
        "message lists accepted types: {err}"
    );

    // Large text streamed in small chunks: refused from its first bytes.
    let text = "lorem ipsum dolor sit amet ".repeat(400_000).into_bytes();
    let err = fx
        .store
        .put_stream(owner, chunked(text, 4096))
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::UnsupportedType { .. }), "{err:?}");
    assert!(matches!(
        fx.store.put_bytes(owner, Vec::new()).await,
        Err(BlobError::UnsupportedType { .. })
    ));
    assert!(
        fx.store
            .list_all(&owner.to_string())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn rejects_oversize_and_leaves_nothing(kind: Kind) {
    let limit = 6 * 1024 * 1024;
    let fx = open(kind, small_parts().with_max_blob_size(limit)).await;
    let owner = Uuid::new_v4();

    let header = png_with(&[]).len();
    // Exactly the limit is fine…
    let at_limit = png_with(&noise(3, limit as usize - header));
    assert_eq!(at_limit.len() as u64, limit);
    let ok = fx
        .store
        .put_stream(owner, chunked(at_limit, 100_000))
        .await
        .unwrap();
    assert_eq!(ok.size, limit);

    // …one byte more is refused mid-stream, after a multipart upload has begun.
    let over = png_with(&noise(4, limit as usize - header + 1));
    assert_eq!(over.len() as u64, limit + 1);
    let err = fx
        .store
        .put_stream(owner, chunked(over.clone(), 100_000))
        .await
        .unwrap_err();
    match &err {
        BlobError::TooLarge { limit: l } => assert_eq!(*l, limit),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&limit.to_string()) && msg.contains("max_blob_size"),
        "says the limit and how to raise it: {msg}"
    );
    let err = fx.store.put_bytes(owner, over).await.unwrap_err();
    assert!(matches!(err, BlobError::TooLarge { .. }));

    let keys: Vec<String> = fx
        .store
        .list_all(&owner.to_string())
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(keys, vec![ok.key], "nothing but the accepted blob");
    assert!(temp_keys(&fx.store, owner).await.is_empty());
}

async fn failing_input_leaves_nothing(kind: Kind) {
    let fx = open(kind, small_parts()).await;
    let owner = Uuid::new_v4();
    let good = Bytes::from(png_with(&noise(5, 6 * 1024 * 1024)));
    let stream = futures::stream::iter([
        Ok(good),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ]);
    let err = fx.store.put_stream(owner, stream).await.unwrap_err();
    assert!(matches!(err, BlobError::Source(_)), "{err:?}");
    assert!(
        fx.store
            .list_all(&owner.to_string())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn concurrent_same_content(kind: Kind) {
    let fx = open(kind, small_parts()).await;
    let owner = Uuid::new_v4();
    for content in [
        png_with(&noise(6, 2000)),
        png_with(&noise(7, 6 * 1024 * 1024)),
    ] {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = fx.store.clone();
                let content = content.clone();
                tokio::spawn(
                    async move { store.put_stream(owner, chunked(content, 256 * 1024)).await },
                )
            })
            .collect();
        let results: Vec<_> = futures::future::join_all(tasks)
            .await
            .into_iter()
            .map(|r| r.unwrap().unwrap())
            .collect();
        let key = &results[0].key;
        assert!(results.iter().all(|r| &r.key == key));
        assert!(
            results.iter().filter(|r| !r.deduplicated).count() <= 1
                || kind_lacks_conditional_copy(kind)
        );
        assert_eq!(
            fx.store.verify_blob(key).await.unwrap().sha256,
            sha_hex(&content)
        );
    }
    let listed = fx.store.list_all(&owner.to_string()).await.unwrap();
    assert_eq!(
        listed.len(),
        2,
        "one object per content, no temp left: {listed:?}"
    );
}

/// Whether racing writers can both be told "new": S3 without `aws_copy_if_not_exists` falls
/// back to head-then-copy, and s3s-fs checks `If-None-Match` before writing rather than
/// atomically. One object results either way; only the `deduplicated` flag is approximate.
fn kind_lacks_conditional_copy(kind: Kind) -> bool {
    matches!(kind, Kind::S3 | Kind::S3Atomic)
}

async fn list_and_keys(kind: Kind) {
    let fx = open(kind, BlobStoreOptions::default()).await;
    let owner = Uuid::new_v4();
    let mut keys = Vec::new();
    for i in 0..5u8 {
        keys.push(
            fx.store
                .put_bytes(owner, png_with(&[i; 10]))
                .await
                .unwrap()
                .key,
        );
    }
    keys.sort();
    let listed: Vec<String> = fx
        .store
        .list(&format!("{owner}/"))
        .unwrap()
        .map(|m| m.unwrap().key)
        .collect::<Vec<_>>()
        .await;
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    assert_eq!(listed_sorted, keys);
    let everything = fx.store.list_all("").await.unwrap();
    assert!(everything.len() >= 5);
    for bad in ["", "/x", "a//b", "a/../b", "a/b/"] {
        assert!(
            matches!(fx.store.head(bad).await, Err(BlobError::InvalidKey { .. })),
            "{bad:?}"
        );
    }
}

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        on_every_backend!(@mod file File $($name),*);
        on_every_backend!(@mod memory Memory $($name),*);
        on_every_backend!(@mod s3 S3 $($name),*);
        on_every_backend!(@mod s3_atomic S3Atomic $($name),*);
    };
    (@mod $module:ident $kind:ident $($name:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Kind::$kind).await
                }
            )*
        }
    };
}

on_every_backend!(
    round_trip,
    every_accepted_type,
    dedup,
    multipart_stream_and_dedup,
    rejects_text_and_leaves_nothing,
    rejects_oversize_and_leaves_nothing,
    failing_input_leaves_nothing,
    concurrent_same_content,
    list_and_keys,
);
