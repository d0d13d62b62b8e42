//! Opening stores by URL, and S3 presigned URLs fetched from a real S3 server.

mod common;

use std::time::Duration;

use common::{BUCKET, png_with, s3_options, start_s3};
use techpack_blobs::{Backend, BlobError, BlobStore, BlobStoreOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

#[test]
fn unknown_schemes_are_refused_with_the_accepted_list() {
    let err =
        BlobStore::from_url("ftp://example.com/blobs", BlobStoreOptions::default()).unwrap_err();
    assert!(matches!(&err, BlobError::UnsupportedScheme { scheme } if scheme == "ftp"));
    let msg = err.to_string();
    for accepted in ["file://", "memory://", "s3://"] {
        assert!(msg.contains(accepted), "{msg}");
    }
}

#[test]
fn malformed_urls_are_refused() {
    assert!(matches!(
        BlobStore::from_url("s3:///no-bucket", BlobStoreOptions::default()),
        Err(BlobError::InvalidUrl { .. })
    ));
    assert!(matches!(
        BlobStore::from_url("file://relative/dir", BlobStoreOptions::default()),
        Err(BlobError::InvalidUrl { .. })
    ));
}

#[tokio::test]
async fn plain_paths_and_file_urls_create_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("a/b/blobs");
    let store = BlobStore::from_url(plain.to_str().unwrap(), BlobStoreOptions::default()).unwrap();
    assert!(plain.is_dir());
    assert_eq!(
        store.backend(),
        &Backend::Local {
            root: plain.clone()
        }
    );
    let stored = store
        .put_bytes(Uuid::new_v4(), png_with(b"x"))
        .await
        .unwrap();
    assert!(
        plain.join(&stored.key).is_file(),
        "blob lands under the directory at its key"
    );

    let url_dir = dir.path().join("via-url");
    BlobStore::from_url(
        &format!("file://{}", url_dir.display()),
        BlobStoreOptions::default(),
    )
    .unwrap();
    assert!(url_dir.is_dir());
}

#[tokio::test]
async fn presigning_needs_s3() {
    let store = BlobStore::from_url("memory://", BlobStoreOptions::default()).unwrap();
    let err = store
        .presigned_get_url("a/b", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        BlobError::PresignUnsupported { backend: "memory" }
    ));
}

/// A bare HTTP/1.1 GET, enough to fetch a presigned URL without an HTTP client dependency.
async fn http_get(url: &url::Url) -> (u16, Vec<u8>) {
    let addr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\n\r\n",
        url.host_str().unwrap(),
        url.port().unwrap()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await.unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response[split + 4..].to_vec();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (status, if chunked { dechunk(&body) } else { body })
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap().trim(), 16)
                .unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[line_end + 2..line_end + 2 + size]);
        body = &body[line_end + 4 + size..];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_presigned_urls_fetch_the_blob_until_they_expire() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_s3(dir.path()).await;
    let store = BlobStore::from_url(
        &format!("s3://{BUCKET}/tenant-a"),
        s3_options(&server, BlobStoreOptions::default()),
    )
    .unwrap();
    assert_eq!(
        store.backend(),
        &Backend::S3 {
            bucket: BUCKET.into(),
            prefix: "tenant-a".into()
        }
    );
    let content = png_with(b"presigned");
    let stored = store
        .put_bytes(Uuid::new_v4(), content.clone())
        .await
        .unwrap();
    assert!(
        dir.path()
            .join(BUCKET)
            .join("tenant-a")
            .join(&stored.key)
            .is_file(),
        "the prefix is applied inside the bucket"
    );

    let url = store
        .presigned_get_url(&stored.key, Duration::from_secs(300))
        .await
        .unwrap();
    assert!(url.query().unwrap().contains("X-Amz-Signature="), "{url}");
    let (status, body) = http_get(&url).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body, content);

    // Tampering with the signed path is refused by the server.
    let mut other = url.clone();
    other.set_path(&url.path().replace(&stored.sha256, &"0".repeat(64)));
    let (status, _) = http_get(&other).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn verify_blob_sees_bytes_changed_behind_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        BlobStore::from_url(dir.path().to_str().unwrap(), BlobStoreOptions::default()).unwrap();
    let stored = store
        .put_bytes(Uuid::new_v4(), png_with(b"original bytes"))
        .await
        .unwrap();
    let intact = store.verify_blob(&stored.key).await.unwrap();
    assert_eq!(
        (intact.size, intact.sha256.as_str()),
        (stored.size, stored.sha256.as_str())
    );

    // Same length, one byte flipped: only the hash can tell.
    let path = dir.path().join(&stored.key);
    let mut bytes = std::fs::read(&path).unwrap();
    *bytes.last_mut().unwrap() ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let corrupted = store.verify_blob(&stored.key).await.unwrap();
    assert_eq!(corrupted.size, stored.size);
    assert_ne!(corrupted.sha256, stored.sha256);
}
