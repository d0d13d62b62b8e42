//! A 200 MB upload streams through with bounded memory. Alone in its own test binary so the
//! process's peak RSS reflects only this upload.

mod common;

use bytes::Bytes;
use common::{noise, png_with};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use techpack_blobs::{BlobStore, BlobStoreOptions};
use uuid::Uuid;

const TOTAL: usize = 200 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// Peak resident set size of this process so far, in bytes (Linux `VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mb_stream_is_stored_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let options = BlobStoreOptions::default().with_max_blob_size(TOTAL as u64);
    let store = BlobStore::from_url(dir.path().to_str().unwrap(), options).unwrap();

    // Every chunk is a fresh allocation, as from a socket or a file, so anything that kept
    // chunks alive would show in the peak; the templates themselves are under 1 MB.
    let first = png_with(&noise(1, CHUNK - png_with(&[]).len()));
    let bodies: Vec<Vec<u8>> = (2..6).map(|s| noise(s, CHUNK)).collect();
    let chunks = TOTAL / CHUNK;
    let mut expected = Sha256::new();
    for i in 0..chunks {
        expected.update(if i == 0 {
            &first
        } else {
            &bodies[i % bodies.len()]
        });
    }
    let expected = hex::encode(expected.finalize());
    let stream = futures::stream::iter(0..chunks).map(move |i| {
        let template = if i == 0 {
            &first
        } else {
            &bodies[i % bodies.len()]
        };
        Ok::<_, std::io::Error>(Bytes::copy_from_slice(template))
    });

    let before = peak_rss();
    let stored = store.put_stream(Uuid::new_v4(), stream).await.unwrap();
    let delta = peak_rss().saturating_sub(before);

    assert_eq!(stored.size, TOTAL as u64);
    assert_eq!(stored.sha256, expected);
    assert_eq!(
        store.verify_blob(&stored.key).await.unwrap().sha256,
        stored.sha256
    );
    eprintln!(
        "peak RSS grew by {} MiB while storing 200 MiB",
        delta / (1024 * 1024)
    );
    assert!(delta < 64 * 1024 * 1024, "peak RSS grew by {delta} bytes");
}
