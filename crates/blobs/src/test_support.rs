//! An in-process S3 server for tests (feature `test-support`): s3s-fs serving a folder on
//! 127.0.0.1, so blob code is tested against the S3 protocol without a network or an account.

use std::net::SocketAddr;
use std::path::Path;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

use crate::BlobStoreOptions;

/// The access key the server accepts.
pub const ACCESS_KEY: &str = "techpack-test-access";
/// The secret key the server accepts.
pub const SECRET_KEY: &str = "techpack-test-secret-key";
/// The bucket the server has.
pub const BUCKET: &str = "techpack-blobs";

/// An in-process S3 server; it serves until dropped (or its runtime ends).
#[derive(Debug)]
pub struct S3Server {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl S3Server {
    /// Starts a server keeping its objects under `root`, with [`BUCKET`] created.
    pub async fn start(root: &Path) -> Self {
        std::fs::create_dir_all(root.join(BUCKET)).expect("the bucket's folder");
        let fs = s3s_fs::FileSystem::new(root).expect("an s3s-fs file system");
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port on 127.0.0.1");
        let addr = listener.local_addr().expect("the port");
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
        Self { addr, task }
    }

    /// Blob store options pointing `s3://` at this server.
    pub fn options(&self, options: BlobStoreOptions) -> BlobStoreOptions {
        options
            .with_s3_config("aws_endpoint", format!("http://{}", self.addr))
            .with_s3_config("aws_allow_http", "true")
            .with_s3_config("aws_access_key_id", ACCESS_KEY)
            .with_s3_config("aws_secret_access_key", SECRET_KEY)
            .with_s3_config("aws_region", "us-east-1")
            .with_s3_config("aws_virtual_hosted_style_request", "false")
    }

    /// The `AWS_*` environment a `techpack` process needs to use this server.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", format!("http://{}", self.addr)),
            ("AWS_ENDPOINT_URL", format!("http://{}", self.addr)),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false".into()),
        ]
    }
}
