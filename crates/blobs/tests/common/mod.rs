//! Backends for the blob tests: a temp directory, memory, and a real S3 server (s3s-fs) bound
//! to 127.0.0.1:0 inside the test's own runtime.

#![allow(dead_code)]

use techpack_blobs::{BlobStore, BlobStoreOptions};

pub use techpack_blobs::test_support::{BUCKET, S3Server};

/// The three backends every operation is tested on.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    File,
    Memory,
    S3,
    /// S3 with `aws_copy_if_not_exists=multipart`, the atomic "move if absent" AWS supports.
    S3Atomic,
}

/// A store plus whatever keeps its backend alive.
pub struct Fixture {
    pub store: BlobStore,
    pub dir: tempfile::TempDir,
    pub s3: Option<S3Server>,
}

/// An in-process S3 server keeping its objects under `root`.
pub async fn start_s3(root: &std::path::Path) -> S3Server {
    S3Server::start(root).await
}

/// Options pointing `s3://` at `server`.
pub fn s3_options(server: &S3Server, options: BlobStoreOptions) -> BlobStoreOptions {
    server.options(options)
}

pub async fn open(kind: Kind, options: BlobStoreOptions) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    match kind {
        Kind::File => {
            let url = format!("file://{}", dir.path().join("blobs").display());
            let store = BlobStore::from_url(&url, options).unwrap();
            Fixture {
                store,
                dir,
                s3: None,
            }
        }
        Kind::Memory => {
            let store = BlobStore::from_url("memory://", options).unwrap();
            Fixture {
                store,
                dir,
                s3: None,
            }
        }
        Kind::S3 | Kind::S3Atomic => {
            let server = start_s3(&dir.path().join("s3")).await;
            let url = format!("s3://{BUCKET}/some/prefix");
            let mut options = s3_options(&server, options);
            if matches!(kind, Kind::S3Atomic) {
                options = options.with_s3_config("aws_copy_if_not_exists", "multipart");
            }
            let store = BlobStore::from_url(&url, options).unwrap();
            Fixture {
                store,
                dir,
                s3: Some(server),
            }
        }
    }
}

/// A minimal valid PNG header followed by `body`: sniffs as image/png.
pub fn png_with(body: &[u8]) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0".to_vec();
    v.extend_from_slice(body);
    v
}

/// Deterministic pseudo-random bytes (xorshift), so large tests need no stored fixtures.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
