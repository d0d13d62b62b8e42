//! The `[s3]` settings alone (no `AWS_*` environment) reach S3: a blob store opened from them
//! stores and reads back through a real S3 server, and `s3.max_retries` bounds how often one
//! failing request is tried.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use techpack_app::{Overrides, Settings, open_blob_store};
use techpack_blobs::test_support::{ACCESS_KEY, BUCKET, S3Server, SECRET_KEY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use uuid::Uuid;

fn settings(toml: &str) -> Settings {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("techpack.toml");
    std::fs::write(&file, toml).unwrap();
    Settings::load(Some(&file), &Overrides::default()).unwrap()
}

fn s3_section(endpoint: &str, max_retries: usize) -> String {
    format!(
        "storage_url = \"s3://{BUCKET}/prefix\"\n[s3]\nendpoint = \"{endpoint}\"\nregion = \"eu-west-1\"\n\
         access_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\"\n\
         virtual_hosted_style = false\nallow_http = true\nmax_retries = {max_retries}\nretry_timeout_secs = 30\n"
    )
}

#[tokio::test]
async fn a_blob_store_from_the_s3_settings_alone_stores_and_reads_back() {
    let root = tempfile::tempdir().unwrap();
    let server = S3Server::start(root.path()).await;
    let settings = settings(&s3_section(&format!("http://{}", server.addr), 3));
    assert!(!format!("{settings:?}").contains(SECRET_KEY));
    let blobs = open_blob_store(&settings).unwrap();
    assert!(!format!("{:?}", blobs.options()).contains(SECRET_KEY));
    let owner = Uuid::new_v4();
    let stored = blobs.put_bytes(owner, &b"{\"a\": 1}"[..]).await.unwrap();
    let read = blobs.get_bytes(&stored.key).await.unwrap();
    assert_eq!(&read[..], b"{\"a\": 1}");
    // The object is in the bucket, under the prefix.
    let on_disk = root.path().join(BUCKET).join("prefix").join(&stored.key);
    assert!(on_disk.is_file(), "{} is missing", on_disk.display());
}

#[tokio::test]
async fn one_failing_request_is_tried_max_retries_plus_one_times() {
    // An endpoint that answers every request with 503, counting them.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0; 64 * 1024];
                let mut seen = Vec::new();
                while let Ok(n) = socket.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    seen.extend_from_slice(&buffer[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        counted.fetch_add(1, Ordering::SeqCst);
                        let answer =
                            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";
                        if socket.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    let settings = settings(&s3_section(&format!("http://{addr}"), 2));
    let blobs = open_blob_store(&settings).unwrap();
    let error = blobs
        .get_bytes("00000000-0000-4000-8000-000000000001/ab/missing")
        .await
        .unwrap_err();
    assert_eq!(requests.load(Ordering::SeqCst), 3, "{error}");
}
