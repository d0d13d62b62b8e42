//! `techpack serve` as a process, on blobs in S3: content links are S3 presigned URLs that
//! serve the bytes (and refuse a tampered signature), and SIGTERM stops it cleanly.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use techpack_blobs::test_support::{BUCKET, S3Server};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts `techpack serve` on a free port and returns it with its base URL, once it serves.
async fn serve(data: &Path, s3: &S3Server) -> (Child, String, tokio::task::JoinHandle<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_techpack"))
        .arg("--data-dir")
        .arg(data)
        .arg("--storage-url")
        .arg(format!("s3://{BUCKET}/served"))
        .envs(s3.environment())
        .env_remove("DATABASE_URL")
        .env_remove("TECHPACK_USER")
        .env_remove("TECHPACK_STORAGE_URL")
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("techpack serve starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("serving ") {
                return rest.split(':').take(3).collect::<Vec<_>>().join(":");
            }
        }
        panic!("techpack serve ended before serving");
    })
    .await
    .expect("techpack serve says where it serves");
    // The rest of its output, for the end of the test.
    let rest = tokio::spawn(async move {
        let mut rest = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push_str(&line);
            rest.push('\n');
        }
        rest
    });
    (child, base, rest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_content_links_are_presigned_urls_and_sigterm_stops_the_server() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let bucket_root = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(bucket_root.path()).await;
    let data = tempfile::tempdir().unwrap();
    let (mut child, base, rest) = serve(data.path(), &s3).await;
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let photo = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/photos/polo-red-front.jpg"),
    )
    .unwrap();
    let uploaded = client
        .post(format!(
            "{base}/api/v1/files/upload?product=tee&file_type=base_view&view_type=front"
        ))
        .header("content-type", "image/jpeg")
        .body(photo.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), StatusCode::CREATED);
    let file: Value = uploaded.json().await.unwrap();
    let id = file["id"].as_str().unwrap();

    // The content redirects to the bucket itself, signed by S3's rules.
    let content = client
        .get(format!("{base}/api/v1/files/{id}/content"))
        .send()
        .await
        .unwrap();
    assert_eq!(content.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = content.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("http://{}/{BUCKET}/served/", s3.addr)),
        "{location}"
    );
    assert!(location.contains("X-Amz-Signature="), "{location}");
    let served = client.get(&location).send().await.unwrap();
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(served.bytes().await.unwrap().as_ref(), photo.as_slice());
    // A signature changed by one character is refused by S3.
    let tampered = {
        let mut url = location.clone();
        let at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
        let first = &url[at..at + 1];
        let replacement = if first == "0" { "1" } else { "0" };
        url.replace_range(at..at + 1, replacement);
        url
    };
    let refused = client.get(&tampered).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // The JSON form names the same kind of link and when it expires.
    let link: Value = client
        .get(format!("{base}/api/v1/files/{id}/content-url"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        link["url"].as_str().unwrap().contains("X-Amz-Signature="),
        "{link}"
    );
    assert!(link["expires_at"].is_string(), "{link}");

    // SIGTERM: the server says it stops and exits cleanly.
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the server stops after SIGTERM")
        .unwrap();
    let rest = rest.await.unwrap();
    assert!(status.success(), "{status:?}\n{rest}");
    assert!(rest.contains("stopped"), "{rest}");
}
