//! `techpack generate` end to end on the embedded defaults with the local provider: a pack
//! from an example photo, a free rerun, `pack show`, `pack export` and `legacy import`.

use std::path::Path;
use std::process::{Command, Output};

fn techpack(data: &Path, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_techpack"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("TECHPACK_STORAGE_URL")
        .env_remove("TECHPACK_USER")
        .output()
        .expect("run techpack");
    assert!(
        output.status.success(),
        "techpack {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

#[test]
fn generate_makes_a_pack_a_rerun_is_free_and_it_can_be_read_back() {
    let data = tempfile::tempdir().unwrap();
    let photo = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/photos/polo-red-front.jpg"
    );
    let view = format!("front={photo}");
    let args = [
        "generate",
        "--product",
        "red-polo",
        "--category",
        "apparel",
        "--view",
        &view,
        "--closeups",
        "2",
    ];

    // Not a terminal: plain progress lines, then where to look.
    let first = techpack(data.path(), &args);
    let stdout = String::from_utf8_lossy(&first.stdout);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stdout.contains("completed"), "{stdout}");
    assert!(stdout.contains("techpack pack show "), "{stdout}");
    assert!(stdout.contains("techpack pack export "), "{stdout}");
    assert!(stderr.contains("front analysis: done"), "{stderr}");
    assert!(stderr.contains("finished: completed"), "{stderr}");

    let mut json_args = vec!["--json"];
    json_args.extend_from_slice(&args);
    let again = json(&techpack(data.path(), &json_args));
    assert_eq!(again["credits_used"], 0);
    assert_eq!(again["status"], "completed");
    assert_eq!(again["resumed_collection"], true);
    let collection = again["collection_id"].as_str().unwrap().to_owned();

    let shown = json(&techpack(
        data.path(),
        &["--json", "pack", "show", "red-polo"],
    ));
    assert_eq!(shown["collection"]["id"], collection.as_str());
    assert_eq!(shown["collection"]["total_credits"], 4);
    assert_eq!(
        shown["items"].as_array().unwrap().len(),
        5,
        "analysis, 2 close-ups, sketch, manifest"
    );

    let out = data.path().join("export");
    techpack(
        data.path(),
        &["pack", "export", &collection, "-o", out.to_str().unwrap()],
    );
    for file in [
        "base_views/front.jpg",
        "sketches/front.svg",
        "sketches/front.png",
        "manifest.json",
    ] {
        assert!(out.join(file).is_file(), "{file} exported");
    }

    let stats = json(&techpack(data.path(), &["--json", "stats", "red-polo"]));
    assert_eq!(stats["total_credits_used"], 4);

    // Our own dual-written analysis is not imported back.
    let import = json(&techpack(data.path(), &["--json", "legacy", "import"]));
    assert_eq!(
        (
            import["imported"].as_u64(),
            import["mirrors_skipped"].as_u64()
        ),
        (Some(0), Some(1))
    );
}

#[test]
fn pack_and_worker_defaults_come_from_the_settings_and_flags_win() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("techpack.toml");
    std::fs::write(
        &config,
        "[packs]\ncloseups_per_view = 1\n\n[jobs]\nworker_concurrency = 3\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let photo = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/photos/polo-red-front.jpg"
    );
    let view = format!("front={photo}");

    // No --closeups: the settings file's one close-up per view.
    let pack = json(&techpack(
        data.path(),
        &[
            "--config",
            config,
            "--json",
            "generate",
            "--product",
            "polo",
            "--view",
            &view,
        ],
    ));
    assert_eq!(pack["status"], "completed", "{pack}");
    assert_eq!(pack["closeups"].as_array().unwrap().len(), 1, "{pack}");

    // The worker: the file, then the environment over it, then the flag over both.
    let idle = ["--config", config, "worker", "--exit-when-idle"];
    let from_file = techpack(data.path(), &idle);
    let said = String::from_utf8_lossy(&from_file.stderr);
    assert!(said.contains("up to 3 job(s), 2 per user"), "{said}");
    let from_env = Command::new(env!("CARGO_BIN_EXE_techpack"))
        .arg("--data-dir")
        .arg(data.path())
        .args(idle)
        .env_remove("DATABASE_URL")
        .env("TECHPACK_JOBS_PER_USER_CAP", "1")
        .output()
        .unwrap();
    assert!(from_env.status.success());
    let said = String::from_utf8_lossy(&from_env.stderr);
    assert!(said.contains("up to 3 job(s), 1 per user"), "{said}");
    let mut flagged = idle.to_vec();
    flagged.extend(["--concurrency", "5"]);
    let from_flag = techpack(data.path(), &flagged);
    let said = String::from_utf8_lossy(&from_flag.stderr);
    assert!(said.contains("up to 5 job(s), 2 per user"), "{said}");
}
