//! `techpack analyze`, `closeups` and `sketch` on an example photo through the real binary.

use std::process::{Command, Stdio};

/// The example photo every test here runs on.
const EXAMPLE_PHOTO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/photos/polo-red-front.jpg"
);

#[test]
fn analyze_closeups_and_sketch_work_on_an_example_photo() {
    let photo = EXAMPLE_PHOTO;
    let out = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_techpack"))
            .arg("--data-dir")
            .arg(out.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    };
    let analysis: serde_json::Value =
        serde_json::from_slice(&run(&["--json", "analyze", photo, "--category", "apparel"]).stdout)
            .unwrap();
    assert_eq!(analysis["view"], "front");
    assert!(!analysis["colors"].as_array().unwrap().is_empty());
    let closeups = out.path().join("closeups");
    let listed: serde_json::Value = serde_json::from_slice(
        &run(&[
            "--json",
            "closeups",
            photo,
            "-o",
            closeups.to_str().unwrap(),
            "--count",
            "2",
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(std::fs::read_dir(&closeups).unwrap().count(), 2);
    let svg = out.path().join("sketch.svg");
    let png = out.path().join("sketch.png");
    run(&[
        "sketch",
        photo,
        "-o",
        svg.to_str().unwrap(),
        "--png",
        png.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read_to_string(&svg).unwrap().starts_with("<svg")
            || std::fs::read_to_string(&svg).unwrap().contains("<svg")
    );
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    let bad = Command::new(env!("CARGO_BIN_EXE_techpack"))
        .args(["analyze", "Cargo.toml"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bad input"));
}

#[test]
fn photo_commands_make_their_provider_from_the_settings() {
    let photo = EXAMPLE_PHOTO;
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("techpack.toml");
    let analyze = |config_text: &str, extra: &[&str]| {
        std::fs::write(&config, config_text).unwrap();
        Command::new(env!("CARGO_BIN_EXE_techpack"))
            .arg("--data-dir")
            .arg(data.path())
            .arg("--config")
            .arg(&config)
            .args(["--json", "analyze", photo])
            .args(extra)
            .env_remove("OPENAI_API_KEY")
            .env_remove("TECHPACK_OPENAI_API_KEY")
            .env_remove("TECHPACK_PROVIDER")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // The settings file names the provider; without a key it says which one to set.
    let no_key = analyze("provider = \"openai\"\n", &[]);
    assert_eq!(no_key.status.code(), Some(2));
    let said = String::from_utf8_lossy(&no_key.stderr);
    assert!(said.contains("OPENAI_API_KEY"), "{said}");
    // The key and endpoint come from the file too: the call is made (and fails to connect).
    let keyed = analyze(
        "provider = \"openai\"\n[openai]\napi_key = \"sk-test\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmax_retries = 0\ntimeout_secs = 5\n",
        &[],
    );
    assert!(!keyed.status.success());
    let said = String::from_utf8_lossy(&keyed.stderr);
    assert!(!said.contains("OPENAI_API_KEY"), "{said}");
    // A flag wins over the setting.
    let local = analyze("provider = \"openai\"\n", &["--provider", "local"]);
    assert!(
        local.status.success(),
        "{}",
        String::from_utf8_lossy(&local.stderr)
    );
}

#[test]
fn without_a_category_the_photo_decides_it() {
    let photo = EXAMPLE_PHOTO;
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_techpack"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["--json", "analyze", photo])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let analysis: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_ne!(analysis["category"], "auto", "{analysis}");
    assert!(
        analysis["category_detection"].is_object(),
        "the analysis says how the category was found: {analysis}"
    );
}
