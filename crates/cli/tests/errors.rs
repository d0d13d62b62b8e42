//! Every command with bad input, through the real binary: each error has a stable code and the
//! exit status of its kind (2 for what the caller can fix, 1 for the rest), is printed as JSON
//! under `--json`, and changes nothing that was stored. A write past the disk's (here: the
//! process's file-size) limit says what is full.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use uuid::Uuid;

fn techpack(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_techpack"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("TECHPACK_STORAGE_URL")
        .env_remove("TECHPACK_USER")
        .output()
        .expect("run techpack")
}

fn ok_json(data: &Path, args: &[&str]) -> Value {
    let mut with_json = vec!["--json"];
    with_json.extend_from_slice(args);
    let output = techpack(data, &with_json);
    assert!(
        output.status.success(),
        "techpack {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

/// Everything a user can read back: files with their versions, collections, jobs.
fn snapshot(data: &Path) -> Value {
    let files = ok_json(data, &["files", "list", "--limit", "500"]);
    let mut versions = Vec::new();
    for file in files["files"].as_array().unwrap() {
        versions.push(ok_json(
            data,
            &["files", "versions", file["id"].as_str().unwrap()],
        ));
    }
    serde_json::json!({
        "files": files,
        "versions": versions,
        "collections": ok_json(data, &["collections", "list"]),
        "jobs": ok_json(data, &["jobs", "list"]),
    })
}

#[test]
fn bad_input_gets_a_stable_code_and_exit_status_and_changes_nothing() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let photo =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/photos/polo-red-front.jpg");
    let photo = photo.to_str().unwrap();
    let view = format!("front={photo}");
    let text = d.join("notes.txt");
    std::fs::write(&text, "not a photo at all").unwrap();
    let text_view = format!("front={}", text.display());
    let pack = ok_json(
        d,
        &[
            "generate",
            "--product",
            "polo",
            "--view",
            &view,
            "--closeups",
            "1",
        ],
    );
    let file = pack["base_views"][0]["file"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let finished_job = pack["job_id"].as_str().unwrap().to_owned();
    let taken = d.join("taken.jpg");
    std::fs::write(&taken, b"already here").unwrap();
    let missing = Uuid::new_v4().to_string();
    let before = snapshot(d);

    let cases: Vec<(Vec<String>, &str, i32)> = vec![
        (
            vec![
                "generate",
                "--product",
                "p",
                "--view",
                "front=/no/such/photo.jpg",
            ],
            "not_found",
            2,
        ),
        (
            vec!["generate", "--product", "p", "--view", &text_view],
            "invalid_input",
            2,
        ),
        (
            vec!["generate", "--product", "p", "--view", "front.jpg"],
            "invalid_input",
            2,
        ),
        (
            vec![
                "generate",
                "--product",
                "p",
                "--view",
                &view,
                "--closeups",
                "99",
            ],
            "invalid_input",
            2,
        ),
        (
            vec![
                "generate",
                "--product",
                "p",
                "--view",
                &view,
                "--concurrency",
                "0",
            ],
            "invalid_input",
            2,
        ),
        (
            vec![
                "generate",
                "--product",
                "p",
                "--view",
                &view,
                "--lease-secs",
                "0",
            ],
            "invalid_input",
            2,
        ),
        (
            vec![
                "generate",
                "--product",
                "p",
                "--view",
                &view,
                "--view",
                &view,
            ],
            "invalid_input",
            2,
        ),
        (
            vec![
                "generate",
                "--product",
                "p",
                "--view",
                &view,
                "--category",
                "spaceships",
            ],
            "invalid_input",
            2,
        ),
        (
            vec![
                "generate",
                "--product",
                "p",
                "--view",
                &view,
                "--provider",
                "nosuch",
            ],
            "invalid_input",
            2,
        ),
        (
            vec![
                "generate",
                "--product",
                "p",
                "--view",
                &view,
                "--max-attempts",
                "0",
            ],
            "invalid_input",
            2,
        ),
        (
            vec![
                "generate",
                "--product",
                "p",
                "--view",
                &view,
                "--reference",
                "back=height=70cm",
            ],
            "invalid_input",
            2,
        ),
        (vec!["generate", "--retry-failed", &missing], "not_found", 2),
        (vec!["pack", "show", "nosuchproduct"], "not_found", 2),
        (
            vec!["pack", "export", &missing, "-o", "/tmp/never"],
            "not_found",
            2,
        ),
        (
            vec!["files", "list", "--after", "garbage"],
            "invalid_input",
            2,
        ),
        (vec!["files", "list", "--limit", "0"], "invalid_input", 2),
        (vec!["files", "show", &missing], "not_found", 2),
        (vec!["files", "show", "not-a-uuid"], "invalid_input", 2),
        (
            vec!["files", "restore", &file, "--version", "1"],
            "invalid_input",
            2,
        ),
        (
            vec!["files", "restore", &file, "--version", "99"],
            "not_found",
            2,
        ),
        (
            vec!["files", "get", &file, "-o", taken.to_str().unwrap()],
            "invalid_input",
            2,
        ),
        (
            vec![
                "files",
                "put",
                "/no/such/file.png",
                "--product",
                "p",
                "--type",
                "base_view",
            ],
            "not_found",
            2,
        ),
        (vec!["jobs", "cancel", &finished_job], "conflict", 2),
        (vec!["jobs", "show", &missing], "not_found", 2),
        (
            vec!["cleanup", "--archived-older-than", "99999999999d"],
            "invalid_input",
            2,
        ),
        (
            vec!["cleanup", "--orphan-grace", "soon"],
            "invalid_input",
            2,
        ),
        (
            vec!["worker", "--concurrency", "0", "--exit-when-idle"],
            "invalid_input",
            2,
        ),
        (vec!["analyze", "/no/such/photo.jpg"], "not_found", 2),
        (vec!["analyze", text.to_str().unwrap()], "invalid_input", 2),
        (vec!["nosuchcommand"], "invalid_input", 2),
        (
            vec!["--database-url", "ftp://example.com/db", "files", "list"],
            "config_error",
            2,
        ),
        (
            vec!["--storage-url", "ftp://example.com/blobs", "files", "list"],
            "config_error",
            2,
        ),
    ]
    .into_iter()
    .map(|(args, code, status)| (args.into_iter().map(str::to_owned).collect(), code, status))
    .collect();

    for (args, code, status) in &cases {
        let mut with_json = vec!["--json".to_owned()];
        with_json.extend(args.iter().cloned());
        let refs: Vec<&str> = with_json.iter().map(String::as_str).collect();
        let output = techpack(d, &refs);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(*status), "{args:?}: {stderr}");
        let error: Value = serde_json::from_str(stderr.lines().last().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stderr}"));
        assert_eq!(error["error"]["code"], *code, "{args:?}: {stderr}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(!message.is_empty(), "{args:?}");
        assert!(!message.contains("panicked"), "{args:?}: {message}");

        // Without --json the same error is one plain line.
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let plain = techpack(d, &refs);
        assert_eq!(plain.status.code(), Some(*status), "{args:?}");
        let stderr = String::from_utf8_lossy(&plain.stderr);
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
    }

    // A product name the user typed is named back, not the id it maps to.
    let unknown = techpack(d, &["pack", "show", "nosuchproduct"]);
    let said = String::from_utf8_lossy(&unknown.stderr);
    assert!(said.contains("`nosuchproduct`"), "{said}");
    let derived =
        techpack_model::product_id_from_name(techpack_model::LOCAL_USER_ID, "nosuchproduct");
    assert!(!said.contains(&derived.to_string()), "{said}");

    assert_eq!(snapshot(d), before, "bad input changed nothing");
    assert_eq!(std::fs::read(&taken).unwrap(), b"already here");
}

#[test]
fn a_write_past_the_size_limit_says_what_is_full_and_a_later_run_finishes() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let photo =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/photos/polo-red-front.jpg");
    let view = format!("front={}", photo.display());
    assert!(techpack(d, &["migrate"]).status.success());
    let wal = std::fs::metadata(d.join("techpack.db-wal"))
        .map(|meta| meta.len())
        .unwrap_or(0);
    // Room for the photo and a little of the run, not for all of it.
    let limit = (wal + 150_000).to_string();
    let generate = [
        "--json",
        "generate",
        "--product",
        "polo",
        "--view",
        &view,
        "--closeups",
        "1",
        "--lease-secs",
        "0.5",
    ];
    let full = Command::new("prlimit")
        .arg(format!("--fsize={limit}"))
        .arg(env!("CARGO_BIN_EXE_techpack"))
        .arg("--data-dir")
        .arg(d)
        .args(generate)
        .env_remove("DATABASE_URL")
        .env_remove("TECHPACK_STORAGE_URL")
        .output()
        .expect("prlimit (util-linux) runs techpack under a file-size limit");
    let stderr = String::from_utf8_lossy(&full.stderr);
    assert_eq!(full.status.code(), Some(1), "{stderr}");
    let error: Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(error["error"]["code"], "storage_full", "{stderr}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("is full"), "{message}");
    assert!(
        !message.contains("transaction depth"),
        "the connection stays usable: {message}"
    );

    // With room again, the same command finishes the pack.
    let again = techpack(d, &generate);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let pack: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(pack["status"], "completed");
    let files = ok_json(d, &["files", "list", "--status", "processing"]);
    assert_eq!(
        files["files"].as_array().unwrap().len(),
        0,
        "nothing left processing"
    );
}

/// A PostgreSQL that cannot be used is reported at once (not after the pool's 30 s acquire
/// timeout), in words that name the address and what to check, with the code of its kind and
/// no internal line numbers.
#[test]
fn an_unusable_postgres_is_reported_at_once_with_its_cause() {
    let data = tempfile::tempdir().unwrap();
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let error_of = |url: &str| {
        let started = std::time::Instant::now();
        let output = techpack(
            data.path(),
            &["--json", "--database-url", url, "files", "list"],
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(25),
            "answered before the pool's acquire timeout"
        );
        assert!(!output.status.success());
        let body: Value = serde_json::from_slice(&output.stdout)
            .or_else(|_| serde_json::from_slice(&output.stderr))
            .expect("a JSON error");
        let error = body["error"].clone();
        let message = error["message"].as_str().unwrap().to_owned();
        assert!(!message.contains("at line"), "{message}");
        (
            error["code"].as_str().unwrap().to_owned(),
            message,
            output.status.code(),
        )
    };

    let (code, message, status) = error_of(&format!(
        "postgres://postgres@127.0.0.1:{closed_port}/techpack"
    ));
    assert_eq!(code, "database_unavailable");
    assert_eq!(status, Some(1));
    assert!(
        message.contains(&format!("127.0.0.1:{closed_port} refused the connection")),
        "{message}"
    );
    assert!(message.contains("is it running"), "{message}");

    let Ok(server) = std::env::var("TECHPACK_TEST_DATABASE_URL") else {
        panic!("TECHPACK_TEST_DATABASE_URL names no PostgreSQL: run the tests with scripts/test");
    };
    let base = server.rsplit_once('/').unwrap().0;
    let missing = format!("techpack_missing_{}", Uuid::new_v4().simple());
    let (code, message, status) = error_of(&format!("{base}/{missing}"));
    assert_eq!(code, "config_error");
    // The caller's to fix.
    assert_eq!(status, Some(2));
    assert!(
        message.contains(&format!("the database \"{missing}\" does not exist")),
        "{message}"
    );
    assert!(
        message.contains(&format!("createdb {missing}")),
        "{message}"
    );

    let stranger = base.replacen("postgres://postgres@", "postgres://techpack_nobody@", 1);
    if stranger != base {
        let (code, message, _) = error_of(&format!("{stranger}/postgres"));
        assert_eq!(code, "config_error");
        assert!(
            message.contains("refused the login \"techpack_nobody\""),
            "{message}"
        );
    }
}
