//! The local provider on the real sample photos in `shared/samples/products`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use techpack_generate::local::LocalProvider;
use techpack_generate::{Provider, ViewPhoto};
use techpack_model::ProductCategory;

fn samples() -> Option<PathBuf> {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/samples/products"
    ));
    if dir.is_dir() {
        Some(dir.to_path_buf())
    } else {
        eprintln!(
            "note: {} is missing; sample-photo tests skipped",
            dir.display()
        );
        None
    }
}

/// The category a sample's file name implies.
fn category(name: &str) -> ProductCategory {
    match name.split('-').next().unwrap_or("") {
        "tote" => ProductCategory::Bags,
        "cap" => ProductCategory::Accessories,
        "mug" => ProductCategory::Home,
        _ => ProductCategory::Apparel,
    }
}

fn photos(dir: &Path) -> Vec<(String, ViewPhoto)> {
    let mut out: Vec<(String, ViewPhoto)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name()?.to_str()?.to_string();
            let stem = name.strip_suffix(".jpg")?.to_string();
            let view = if stem.contains("back") {
                "back"
            } else if stem.contains("side") {
                "side"
            } else {
                "front"
            };
            Some((
                stem.clone(),
                ViewPhoto {
                    bytes: Arc::from(std::fs::read(&path).unwrap()),
                    view: view.into(),
                    category: category(&stem),
                    reference: None,
                },
            ))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn segmentation_matches_the_exact_masks() {
    let Some(dir) = samples() else { return };
    let provider = LocalProvider::default();
    for name in [
        "cap-red-side-grey",
        "hoodie-black-front",
        "tote-red-busy-background",
    ] {
        let bytes = std::fs::read(dir.join(format!("{name}.jpg"))).unwrap();
        let truth = image::open(dir.join(format!("{name}.mask.png")))
            .unwrap()
            .to_luma8();
        let sil = provider.silhouette(&bytes).unwrap();
        assert_eq!(sil.mask.dimensions(), truth.dimensions());
        let (mut inter, mut union) = (0u64, 0u64);
        let (mut tx0, mut ty0, mut tx1, mut ty1) = (u32::MAX, u32::MAX, 0, 0);
        for ((x, y, a), b) in sil.mask.enumerate_pixels().zip(truth.pixels()) {
            let (a, b) = (a.0[0] >= 128, b.0[0] >= 128);
            inter += u64::from(a && b);
            union += u64::from(a || b);
            if b {
                tx0 = tx0.min(x);
                ty0 = ty0.min(y);
                tx1 = tx1.max(x + 1);
                ty1 = ty1.max(y + 1);
            }
        }
        let iou = inter as f64 / union as f64;
        eprintln!(
            "{name}: IoU {iou:.4}, box {:?} vs mask box {:?}",
            sil.bbox,
            [tx0, ty0, tx1, ty1]
        );
        assert!(iou >= 0.90, "{name}: IoU {iou:.4} < 0.90");
        let (w, h) = truth.dimensions();
        for (i, (got, want)) in sil.bbox.iter().zip([tx0, ty0, tx1, ty1]).enumerate() {
            let size = if i % 2 == 0 { w } else { h };
            let d = (f64::from(*got) - f64::from(want)).abs();
            assert!(
                d <= f64::from(size) * 0.02,
                "{name}: box {:?} not within 2 % of {:?}",
                sil.bbox,
                [tx0, ty0, tx1, ty1]
            );
        }
    }
}

#[tokio::test]
async fn every_sample_analyses_closes_up_and_sketches() {
    let Some(dir) = samples() else { return };
    let provider = LocalProvider::default();
    for (name, photo) in photos(&dir) {
        let a = provider
            .analyze(&photo)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let analysis = &a.output;
        let [x0, y0, x1, y1] = analysis.product.bbox;
        let (w, h) = (analysis.image.width, analysis.image.height);
        assert!(
            x0 < x1 && y0 < y1 && x1 <= w && y1 <= h,
            "{name}: box {:?} outside {w}×{h}",
            analysis.product.bbox
        );
        assert!(
            (x1 - x0) < w * 98 / 100 || (y1 - y0) < h * 98 / 100,
            "{name}: the box {:?} is the whole frame",
            analysis.product.bbox
        );
        assert!(!analysis.colors.is_empty(), "{name}: no colours");
        assert!(
            analysis.confidence.score > 0.3,
            "{name}: {:?}",
            analysis.confidence
        );
        let json = serde_json::to_value(analysis).unwrap();
        assert_eq!(json["schema_version"], 2);
        let shots = provider.plan_closeups(analysis, 4);
        assert!(!shots.is_empty(), "{name}: no close-ups planned");
        for shot in &shots {
            let c = provider
                .closeup(&photo, analysis, shot)
                .await
                .unwrap_or_else(|e| panic!("{name}/{}: {e}", shot.name));
            let img = image::load_from_memory(&c.output.png).unwrap();
            // 1024 px on the long side, unless that would enlarge the photo more than 2×.
            let [x0, y0, x1, y1] = shot.bbox;
            let region_long = (x1 - x0).max(y1 - y0);
            assert!(
                img.width().max(img.height()) + 1 >= (2 * region_long).min(1024),
                "{name}/{}: close-up {}×{} of a {region_long} px region",
                shot.name,
                img.width(),
                img.height()
            );
        }
        let s = provider
            .sketch(&photo, analysis)
            .await
            .unwrap_or_else(|e| panic!("{name} sketch: {e}"));
        usvg::Tree::from_str(&s.output.svg, &usvg::Options::default())
            .unwrap_or_else(|e| panic!("{name}: SVG does not parse: {e}"));
        image::load_from_memory_with_format(&s.output.png, image::ImageFormat::Png).unwrap();
        eprintln!(
            "{name}: box {:?}, colours {:?}, confidence {}",
            analysis.product.bbox,
            analysis.colors.iter().map(|c| &c.name).collect::<Vec<_>>(),
            analysis.confidence.score
        );
    }
}

#[tokio::test]
async fn outputs_are_byte_identical_across_runs() {
    let Some(dir) = samples() else { return };
    let provider = LocalProvider::default();
    let all = photos(&dir);
    for (name, photo) in all.iter().filter(|(n, _)| {
        [
            "polo-red-front",
            "tote-red-busy-background",
            "cap-snapback-black",
        ]
        .contains(&n.as_str())
    }) {
        let a1 = provider.analyze(photo).await.unwrap().output;
        let a2 = LocalProvider::default()
            .analyze(photo)
            .await
            .unwrap()
            .output;
        assert_eq!(
            serde_json::to_string(&a1).unwrap(),
            serde_json::to_string(&a2).unwrap(),
            "{name}: analysis differs"
        );
        for shot in provider.plan_closeups(&a1, 2) {
            let c1 = provider.closeup(photo, &a1, &shot).await.unwrap().output;
            let c2 = provider.closeup(photo, &a2, &shot).await.unwrap().output;
            assert!(c1.png == c2.png, "{name}/{}: close-up differs", shot.name);
        }
        let s1 = provider.sketch(photo, &a1).await.unwrap().output;
        let s2 = provider.sketch(photo, &a2).await.unwrap().output;
        assert!(
            s1.svg == s2.svg && s1.png == s2.png,
            "{name}: sketch differs"
        );
    }
}
