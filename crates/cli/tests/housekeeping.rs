//! `techpack files put/get`, `techpack cleanup` and `techpack fsck` through the binary, on the
//! embedded defaults (SQLite and file:// blobs in a temporary data folder).

use std::path::Path;
use std::process::{Command, Output};

fn techpack(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_techpack"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("TECHPACK_STORAGE_URL")
        .env_remove("TECHPACK_USER")
        .output()
        .unwrap()
}

fn ok_json(output: Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The first sample product photo from the specification's shared samples beside the
/// checkout (`../shared/samples/products`), copied into `dir`; a missing folder fails the test
/// rather than letting it pass on a stand-in.
fn sample(dir: &Path) -> std::path::PathBuf {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/samples/products");
    let photo = std::fs::read_dir(&samples)
        .unwrap_or_else(|error| {
            panic!(
                "the sample photos are missing at {} ({error}): check out the project beside its `shared` folder",
                samples.display()
            )
        })
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("png"))
        })
        .min()
        .unwrap_or_else(|| panic!("no JPEG or PNG sample in {}", samples.display()));
    let path = dir.join("input");
    std::fs::copy(photo, &path).unwrap();
    path
}

#[test]
fn put_get_round_trip_and_fsck() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let input = sample(work.path());
    let original = std::fs::read(&input).unwrap();

    let stored = ok_json(techpack(
        data.path(),
        &[
            "--json",
            "files",
            "put",
            input.to_str().unwrap(),
            "--product",
            "Denim jacket",
            "--type",
            "base_view",
            "--view",
            "front",
        ],
    ));
    let id = stored["id"].as_str().unwrap().to_owned();
    assert_eq!(stored["status"], "completed");
    assert_eq!(stored["content_size"].as_u64(), Some(original.len() as u64));
    assert_eq!(stored["content_sha256"].as_str().unwrap().len(), 64);
    assert!(
        stored["file_url"]
            .as_str()
            .unwrap()
            .ends_with(stored["content_sha256"].as_str().unwrap())
    );

    let output = work.path().join("out.bin");
    ok_json(techpack(
        data.path(),
        &[
            "--json",
            "files",
            "get",
            &id,
            "-o",
            output.to_str().unwrap(),
        ],
    ));
    assert_eq!(std::fs::read(&output).unwrap(), original);
    // No overwrite without --force.
    std::fs::write(&output, b"mine").unwrap();
    let refused = techpack(
        data.path(),
        &["files", "get", &id, "-o", output.to_str().unwrap()],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    assert_eq!(std::fs::read(&output).unwrap(), b"mine");
    ok_json(techpack(
        data.path(),
        &[
            "--json",
            "files",
            "get",
            &id,
            "-o",
            output.to_str().unwrap(),
            "--force",
        ],
    ));
    assert_eq!(std::fs::read(&output).unwrap(), original);

    let report = ok_json(techpack(data.path(), &["--json", "fsck"]));
    assert_eq!(report["rows_checked"], 1);
    assert_eq!(report["findings"].as_array().unwrap().len(), 0);

    // A blob deleted behind the store's back: fsck reports it and fails.
    let blob = data
        .path()
        .join("blobs")
        .join(stored["file_url"].as_str().unwrap());
    std::fs::remove_file(&blob).unwrap();
    let broken = techpack(data.path(), &["--json", "fsck"]);
    assert!(!broken.status.success());
    let report: serde_json::Value = serde_json::from_slice(&broken.stdout).unwrap();
    assert_eq!(report["findings"][0]["file_id"].as_str(), Some(id.as_str()));
    assert_eq!(report["findings"][0]["problem"]["kind"], "missing");
}

#[test]
fn cleanup_dry_run_then_delete() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let input = sample(work.path());
    let size = std::fs::metadata(&input).unwrap().len();
    let stored = ok_json(techpack(
        data.path(),
        &[
            "--json",
            "files",
            "put",
            input.to_str().unwrap(),
            "--product",
            "Tote",
            "--type",
            "base_view",
        ],
    ));
    let id = stored["id"].as_str().unwrap();
    let blob = data
        .path()
        .join("blobs")
        .join(stored["file_url"].as_str().unwrap());

    // Live: kept even with no grace and no archive threshold.
    let report = ok_json(techpack(
        data.path(),
        &[
            "--json",
            "cleanup",
            "--archived-older-than",
            "0",
            "--orphan-grace",
            "0",
        ],
    ));
    assert_eq!(report["deleted"].as_array().unwrap().len(), 0);
    assert_eq!(report["kept_referenced"], 1);

    ok_json(techpack(data.path(), &["--json", "files", "archive", id]));
    let text = techpack(
        data.path(),
        &[
            "cleanup",
            "--dry-run",
            "--archived-older-than",
            "0",
            "--orphan-grace",
            "0",
        ],
    );
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("would delete 1 blob(s)"), "{text}");
    assert!(blob.exists(), "a dry run deleted the blob");
    let dry = ok_json(techpack(
        data.path(),
        &[
            "--json",
            "cleanup",
            "--dry-run",
            "--archived-older-than",
            "0",
            "--orphan-grace",
            "0",
        ],
    ));
    assert_eq!(dry["bytes_freed"].as_u64(), Some(size));
    assert!(blob.exists());

    // The default 30-day threshold keeps a file archived just now.
    let kept = ok_json(techpack(
        data.path(),
        &["--json", "cleanup", "--orphan-grace", "0"],
    ));
    assert_eq!(kept["deleted"].as_array().unwrap().len(), 0);
    assert!(blob.exists());

    let done = ok_json(techpack(
        data.path(),
        &[
            "--json",
            "cleanup",
            "--archived-older-than",
            "0",
            "--orphan-grace",
            "0",
        ],
    ));
    assert_eq!(done["deleted"][0]["reason"], "archived_file");
    assert_eq!(done["bytes_freed"].as_u64(), Some(size));
    assert!(!blob.exists());
    // Archived rows are not fsck's business: clean.
    ok_json(techpack(data.path(), &["--json", "fsck"]));
}
