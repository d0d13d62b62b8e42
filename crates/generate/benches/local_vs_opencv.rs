//! Times the local provider's analysis, close-ups and sketch on every sample photo and the same
//! steps done by OpenCV from Python (`opencv_pipeline.py` beside this file), in the same run,
//! and prints the ratio ours / OpenCV. Target: a whole view within 1.5× of OpenCV.
//!
//! Run: `cargo bench -p techpack-generate --bench local_vs_opencv`. OpenCV comes from
//! `python3` if it has `cv2`, else from a venv under the target directory that this bench
//! creates with pip (opencv-python-headless, numpy); without pip the comparison is skipped
//! with a note.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use techpack_generate::local::LocalProvider;
use techpack_generate::{Provider, ViewPhoto};
use techpack_model::ProductCategory;

const REPEAT: usize = 3;

fn median_ms<T>(mut f: impl FnMut() -> T) -> (f64, T) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..REPEAT {
        let t = Instant::now();
        last = Some(f());
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], last.expect("REPEAT > 0"))
}

fn category(stem: &str) -> ProductCategory {
    match stem.split('-').next().unwrap_or("") {
        "tote" => ProductCategory::Bags,
        "cap" => ProductCategory::Accessories,
        "mug" => ProductCategory::Home,
        _ => ProductCategory::Apparel,
    }
}

/// A Python with OpenCV: the system one if it has cv2, else a venv made with pip.
fn opencv_python() -> Result<PathBuf, String> {
    let has_cv2 = |py: &Path| {
        Command::new(py)
            .args(["-c", "import cv2, numpy"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let system = PathBuf::from("python3");
    if has_cv2(&system) {
        return Ok(system);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let venv = target.join("opencv-venv");
    let py = venv.join("bin/python");
    if has_cv2(&py) {
        return Ok(py);
    }
    eprintln!(
        "setting up OpenCV in {} (pip install opencv-python-headless numpy)…",
        venv.display()
    );
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "opencv-python-headless",
                "numpy",
            ])
            .status()
            .is_ok_and(|s| s.success());
    if ok && has_cv2(&py) {
        Ok(py)
    } else {
        Err("could not install opencv-python-headless with pip".into())
    }
}

struct Row {
    name: String,
    ours: [f64; 3],
    opencv: Option<[f64; 3]>,
}

fn main() {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/samples/products"
    ));
    if !dir.is_dir() {
        eprintln!("note: {} is missing; nothing to benchmark", dir.display());
        return;
    }
    let mut photos: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("samples folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    photos.sort();
    let provider = LocalProvider::default();
    let mut rows = Vec::new();
    for path in &photos {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_string();
        let photo = ViewPhoto {
            bytes: Arc::from(std::fs::read(path).expect("read photo")),
            view: "front".into(),
            category: category(&stem),
            reference: None,
        };
        let (analysis_ms, analysis) =
            median_ms(|| provider.analyze_sync(&photo).expect("analysis"));
        let shots = provider.plan_closeups(&analysis, 4);
        let (closeups_ms, _) = median_ms(|| {
            for shot in &shots {
                provider.closeup_sync(&photo, shot).expect("close-up");
            }
        });
        let (sketch_ms, _) = median_ms(|| provider.sketch_sync(&photo, &analysis).expect("sketch"));
        rows.push(Row {
            name: stem,
            ours: [analysis_ms, closeups_ms, sketch_ms],
            opencv: None,
        });
    }

    match opencv_python() {
        Ok(py) => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/opencv_pipeline.py");
            let out = Command::new(&py)
                .arg(&script)
                .args(&photos)
                .args(["--repeat", &REPEAT.to_string()])
                .output()
                .expect("run the OpenCV pipeline");
            if !out.status.success() {
                eprintln!(
                    "OpenCV pipeline failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            for (line, row) in String::from_utf8_lossy(&out.stdout)
                .lines()
                .zip(rows.iter_mut())
            {
                let v: serde_json::Value =
                    serde_json::from_str(line).expect("JSON from the OpenCV script");
                let ms = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
                row.opencv = Some([ms("analysis_ms"), ms("closeups_ms"), ms("sketch_ms")]);
            }
        }
        Err(why) => eprintln!("note: OpenCV comparison skipped: {why}"),
    }

    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} {:>9} | {:>6}",
        "photo (ms, median of 3)",
        "analysis",
        "closeups",
        "sketch",
        "total",
        "cv:anal",
        "cv:close",
        "cv:sketch",
        "cv:total",
        "ratio"
    );
    let (mut sum_ours, mut sum_cv) = (0.0, 0.0);
    for r in &rows {
        let total: f64 = r.ours.iter().sum();
        sum_ours += total;
        match r.opencv {
            Some(cv) => {
                let cv_total: f64 = cv.iter().sum();
                sum_cv += cv_total;
                println!(
                    "{:<28} {:>9.1} {:>9.1} {:>9.1} {:>9.1} | {:>9.1} {:>9.1} {:>9.1} {:>9.1} | {:>6.2}",
                    r.name,
                    r.ours[0],
                    r.ours[1],
                    r.ours[2],
                    total,
                    cv[0],
                    cv[1],
                    cv[2],
                    cv_total,
                    total / cv_total
                );
            }
            None => println!(
                "{:<28} {:>9.1} {:>9.1} {:>9.1} {:>9.1} |",
                r.name, r.ours[0], r.ours[1], r.ours[2], total
            ),
        }
    }
    if sum_cv > 0.0 {
        let ratio = sum_ours / sum_cv;
        println!(
            "all photos: ours {sum_ours:.0} ms, OpenCV {sum_cv:.0} ms, ratio ours/OpenCV {ratio:.2} (target ≤ 1.5: {})",
            if ratio <= 1.5 { "met" } else { "NOT met" }
        );
    }
}
