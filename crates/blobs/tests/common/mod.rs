//! Backends for the blob tests: a temp directory, memory, and a real S3 server (s3s-fs) bound
//! to 127.0.0.1:0 inside the test's own runtime.

#![allow(dead_code)]

use std::net::SocketAddr;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use techpack_blobs::{BlobStore, BlobStoreOptions};
use tokio::net::TcpListener;

pub const ACCESS_KEY: &str = "techpack-test-access";
pub const SECRET_KEY: &str = "techpack-test-secret-key";
pub const BUCKET: &str = "techpack-blobs";

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

/// An in-process S3 server; it lives as long as the test's runtime.
pub struct S3Server {
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start_s3(root: &std::path::Path) -> S3Server {
    std::fs::create_dir_all(root.join(BUCKET)).unwrap();
    let fs = s3s_fs::FileSystem::new(root).unwrap();
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let http = ConnBuilder::new(TokioExecutor::new());
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let conn = http
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    S3Server { addr, task }
}

/// Options pointing `s3://` at a local server.
pub fn s3_options(addr: SocketAddr, options: BlobStoreOptions) -> BlobStoreOptions {
    options
        .with_s3_config("aws_endpoint", format!("http://{addr}"))
        .with_s3_config("aws_allow_http", "true")
        .with_s3_config("aws_access_key_id", ACCESS_KEY)
        .with_s3_config("aws_secret_access_key", SECRET_KEY)
        .with_s3_config("aws_region", "us-east-1")
        .with_s3_config("aws_virtual_hosted_style_request", "false")
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
            let mut options = s3_options(server.addr, options);
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
