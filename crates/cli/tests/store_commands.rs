//! The store commands through the real `techpack` binary, on the embedded SQLite default and
//! on PostgreSQL.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use techpack_model::{FileChanges, FileStatus, FileType, LOCAL_USER_ID, NewTechFile, Principal};
use techpack_store::test_support::TestDatabase;
use techpack_store::{SqliteStore, TechFileStore};
use uuid::Uuid;

fn techpack(data_dir: &Path, database_url: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_techpack"));
    command
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdin(Stdio::null())
        .env_remove("DATABASE_URL");
    command
        .env_remove("TECHPACK_USER")
        .env_remove("TECHPACK_STORAGE_URL");
    if let Some(url) = database_url {
        command.arg("--database-url").arg(url);
    }
    command.output().expect("run techpack")
}

fn ok_json(output: Output) -> Value {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

#[tokio::test]
async fn files_commands_on_the_embedded_database() {
    let dir = tempfile::tempdir().unwrap();
    let applied = ok_json(techpack(dir.path(), None, &["--json", "migrate"]));
    assert_eq!(
        applied["applied"],
        serde_json::json!([
            20261125000001i64,
            20261125000002i64,
            20261125000003i64,
            20261125000004i64,
            20261201000005i64,
            20261201000020i64
        ]),
        "tech files, generation jobs, processing versions without outputs, statement recounts, trust, job events"
    );
    let again = ok_json(techpack(dir.path(), None, &["--json", "migrate", "up"]));
    assert!(
        again["applied"].as_array().unwrap().is_empty(),
        "applying twice is a no-op"
    );
    let verified = ok_json(techpack(dir.path(), None, &["--json", "migrate", "verify"]));
    assert_eq!(verified["missing"], serde_json::json!([]));

    // Files are made by generation and upload; here through the store, on the same database.
    let store = SqliteStore::open(&dir.path().join("techpack.db"))
        .await
        .unwrap();
    let me = Principal::User(LOCAL_USER_ID);
    let product = techpack_model::product_id_from_name(LOCAL_USER_ID, "parka");
    let mut file = NewTechFile::new(LOCAL_USER_ID, product, FileType::Sketch);
    file.view_type = Some("front".into());
    file.credits_used = 1;
    file.status = FileStatus::Completed;
    let v1 = store.create_tech_file(me, file).await.unwrap();
    store
        .create_tech_file_version(
            me,
            v1.id,
            FileChanges {
                change_description: Some("redraw".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let listed = ok_json(techpack(
        dir.path(),
        None,
        &[
            "--json",
            "files",
            "list",
            "--product",
            "parka",
            "--type",
            "sketch",
        ],
    ));
    assert_eq!(listed["files"].as_array().unwrap().len(), 1);
    assert_eq!(listed["files"][0]["version"], 2);
    let text = techpack(dir.path(), None, &["files", "list"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("sketch"));

    let versions = ok_json(techpack(
        dir.path(),
        None,
        &["--json", "files", "versions", &v1.id.to_string()],
    ));
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);
    assert_eq!(versions["archived"][0]["change_description"], "redraw");

    let restored = ok_json(techpack(
        dir.path(),
        None,
        &[
            "--json",
            "files",
            "restore",
            &v1.id.to_string(),
            "--version",
            "1",
        ],
    ));
    assert_eq!(restored["version"], 3);
    let id = restored["id"].as_str().unwrap().to_owned();
    let failed = ok_json(techpack(
        dir.path(),
        None,
        &[
            "--json", "files", "status", &id, "failed", "--error", "bad crop",
        ],
    ));
    assert_eq!(failed["error_message"], "bad crop");
    let archived = ok_json(techpack(
        dir.path(),
        None,
        &["--json", "files", "archive", &id],
    ));
    assert_eq!(archived["status"], "archived");
    let shown = ok_json(techpack(
        dir.path(),
        None,
        &["--json", "files", "show", &id],
    ));
    assert_eq!(shown["status"], "archived");

    let stats = ok_json(techpack(dir.path(), None, &["--json", "stats", "parka"]));
    assert_eq!(stats["total_files"], 3);
    assert_eq!(stats["total_credits_used"], 1);
    let report = ok_json(techpack(dir.path(), None, &["--json", "report"]));
    assert_eq!(report["credits_by_product"][0]["total_credits"], 1);
    assert!(
        ok_json(techpack(
            dir.path(),
            None,
            &["--json", "collections", "list"]
        ))
        .as_array()
        .unwrap()
        .is_empty()
    );

    // Another user sees nothing, and a missing id is a clear, typed error with exit status 2.
    let other = Uuid::new_v4().to_string();
    let theirs = ok_json(techpack(
        dir.path(),
        None,
        &["--json", "--user", &other, "files", "list"],
    ));
    assert!(theirs["files"].as_array().unwrap().is_empty());
    let missing = techpack(
        dir.path(),
        None,
        &["--json", "--user", &other, "files", "show", &id],
    );
    assert_eq!(missing.status.code(), Some(2));
    let error: Value = serde_json::from_slice(&missing.stderr).unwrap();
    assert_eq!(error["error"]["code"], "not_found");
    let bad_status = techpack(dir.path(), None, &["files", "status", &id, "exploded"]);
    assert!(!bad_status.status.success());
    assert!(String::from_utf8_lossy(&bad_status.stderr).contains("expected one of processing"));

    // Rollback asks first; without a terminal it needs --yes, and nothing is dropped.
    let refused = techpack(dir.path(), None, &["migrate", "down"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    assert_eq!(
        ok_json(techpack(dir.path(), None, &["--json", "stats", "parka"]))["total_files"],
        3
    );
    ok_json(techpack(
        dir.path(),
        None,
        &["--json", "migrate", "down", "--yes"],
    ));
    let incomplete = techpack(dir.path(), None, &["migrate", "verify"]);
    assert!(!incomplete.status.success());
    assert!(String::from_utf8_lossy(&incomplete.stdout).contains("missing table tech_files"));
}

#[test]
fn unknown_database_schemes_are_refused_before_touching_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let output = techpack(dir.path(), Some("mysql://localhost/x"), &["files", "list"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("unsupported database URL scheme 'mysql'")
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "no file was created"
    );
}

#[tokio::test]
async fn migrate_and_verify_on_postgres() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let url = db.url.as_str();
    let status = ok_json(techpack(
        dir.path(),
        Some(url),
        &["--json", "migrate", "status"],
    ));
    assert!(
        status
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["applied"] == true)
    );
    let verified = ok_json(techpack(
        dir.path(),
        Some(url),
        &["--json", "migrate", "verify"],
    ));
    assert_eq!(verified["missing"], serde_json::json!([]));
    ok_json(techpack(
        dir.path(),
        Some(url),
        &["--json", "migrate", "down", "--yes"],
    ));
    let pending = techpack(dir.path(), Some(url), &["files", "list"]);
    assert!(String::from_utf8_lossy(&pending.stderr).contains("run `techpack migrate` first"));
    ok_json(techpack(dir.path(), Some(url), &["--json", "migrate"]));
    let listed = ok_json(techpack(
        dir.path(),
        Some(url),
        &["--json", "files", "list"],
    ));
    assert!(listed["files"].as_array().unwrap().is_empty());
}
