//! What a misconfigured or unreachable S3 says: the cause (a missing bucket, a plain-HTTP
//! endpoint that is not allowed, a refused connection) in words with what to do, once.

mod common;

use common::start_s3;
use techpack_blobs::test_support::{ACCESS_KEY, SECRET_KEY};
use techpack_blobs::{BlobError, BlobStore, BlobStoreOptions};
use uuid::Uuid;

fn options(endpoint: &str, allow_http: bool) -> BlobStoreOptions {
    let options = BlobStoreOptions::default()
        .with_s3_config("aws_endpoint", endpoint)
        .with_s3_config("aws_access_key_id", ACCESS_KEY)
        .with_s3_config("aws_secret_access_key", SECRET_KEY)
        .with_s3_config("aws_region", "us-east-1")
        .with_s3_config("aws_virtual_hosted_style_request", "false");
    if allow_http {
        options.with_s3_config("aws_allow_http", "true")
    } else {
        options
    }
}

async fn put_error(url: &str, options: BlobStoreOptions) -> BlobError {
    let store = BlobStore::from_url(url, options).unwrap();
    store
        .put_bytes(Uuid::nil(), common::png_with(b"content"))
        .await
        .expect_err("the put fails")
}

#[tokio::test]
async fn s3_failures_name_their_cause_and_what_to_do() {
    let root = tempfile::tempdir().unwrap();
    let s3 = start_s3(root.path()).await;
    let endpoint = format!("http://{}", s3.addr);

    let store = BlobStore::from_url("s3://no-such-bucket/p", options(&endpoint, true)).unwrap();
    let missing = store.list_all("").await.expect_err("no bucket");
    let text = missing.to_string();
    assert!(
        text.contains("the bucket does not exist: create it"),
        "{text}"
    );
    assert_eq!(missing.code(), "config_error");

    let plain = put_error("s3://techpack-blobs/p", options(&endpoint, false)).await;
    let text = plain.to_string();
    assert!(
        text.contains("URL scheme is not allowed"),
        "the root cause: {text}"
    );
    assert!(text.contains("set AWS_ALLOW_HTTP=true"), "{text}");
    assert_eq!(plain.code(), "config_error");

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let refused = put_error(
        "s3://techpack-blobs/p",
        options(&format!("http://{closed}"), true),
    )
    .await;
    let text = refused.to_string();
    assert!(text.contains(&closed.to_string()), "the endpoint: {text}");
    assert!(text.contains("refused the connection"), "{text}");
    assert_eq!(refused.code(), "blob_storage_unavailable");
    for error in [&missing, &plain, &refused] {
        let text = error.to_string();
        assert_eq!(
            text.matches("blob storage backend error").count(),
            1,
            "said once: {text}"
        );
    }
}
