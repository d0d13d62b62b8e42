//! The local provider's technical sketch, through the public API: sample photos and synthetic
//! images, checked for what the sketch promises (valid SVG, a PNG of the page size, one numbered
//! callout per detected feature, a dimension line per point of measure, no photo pixels,
//! byte-identical output for the same input).
//!
//! `TECHPACK_SKETCH_OUT=dir cargo test -p techpack-generate --test local_sketch` also writes
//! each sample's SVG, PNG and data JSON to `dir` (that is how docs/examples/sketches was made).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::{Rgb, RgbImage};
use techpack_generate::local::LocalProvider;
use techpack_generate::{Analysis, GenerateError, Provider, Sketch, ViewPhoto};
use techpack_model::ProductCategory;

const PAGE: (u32, u32) = (1600, 1200);

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

fn photo(bytes: Vec<u8>, category: ProductCategory) -> ViewPhoto {
    ViewPhoto {
        bytes: Arc::from(bytes),
        view: "front".into(),
        category,
        reference: None,
    }
}

fn encode_png(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn analyse_and_sketch(photo: &ViewPhoto) -> (Analysis, Sketch) {
    let provider = LocalProvider::default();
    let analysis = provider.analyze_sync(photo).expect("analysis");
    let sketch = provider.sketch_sync(photo, &analysis).expect("sketch");
    (analysis, sketch)
}

/// Everything a sketch promises, checked against the analysis it annotates.
fn check_sketch(name: &str, analysis: &Analysis, sketch: &Sketch) {
    let tree = usvg::Tree::from_str(&sketch.svg, &usvg::Options::default())
        .unwrap_or_else(|e| panic!("{name}: SVG does not parse: {e}"));
    assert_eq!(
        (tree.size().width() as u32, tree.size().height() as u32),
        PAGE
    );
    assert!(
        !sketch.svg.contains("<image"),
        "{name}: photo pixels in the sketch"
    );
    assert!(
        !sketch.svg.contains("data:"),
        "{name}: embedded data in the sketch"
    );

    let png = image::load_from_memory(&sketch.png).expect("PNG decodes");
    assert_eq!((png.width(), png.height()), PAGE, "{name}: PNG size");
    // The PNG is a drawing on white, not blank: some pixels are ink.
    let rgb = png.to_rgb8();
    let ink = rgb
        .pixels()
        .filter(|p| p.0.iter().all(|c| *c < 128))
        .count();
    assert!(ink > 2_000, "{name}: PNG has only {ink} dark pixels");

    // One numbered callout per detected feature (per detail region for an analysis without
    // features), numbered 1..n in reading order, each labelled once: no numbered duplicates.
    let callouts = sketch.data["callouts"].as_array().expect("callouts");
    let mut wanted: Vec<&str> = if analysis.features.is_empty() {
        analysis
            .detail_regions
            .iter()
            .map(|r| r.name.as_str())
            .collect()
    } else {
        analysis.features.iter().map(|f| f.name.as_str()).collect()
    };
    wanted.sort_unstable();
    let mut labels: Vec<&str> = callouts
        .iter()
        .map(|c| c["label"].as_str().expect("label"))
        .collect();
    labels.sort_unstable();
    assert_eq!(labels, wanted, "{name}: one callout per feature");
    labels.dedup();
    assert_eq!(labels.len(), callouts.len(), "{name}: duplicate callouts");
    for region in &analysis.detail_regions {
        assert!(
            labels.contains(&region.name.as_str()),
            "{name}: close-up region {:?} has no callout",
            region.name
        );
    }
    for (i, callout) in callouts.iter().enumerate() {
        assert_eq!(callout["number"], i + 1);
        let label = callout["label"].as_str().unwrap();
        assert!(
            !label
                .rsplit(' ')
                .next()
                .is_some_and(|w| w.chars().all(|c| c.is_ascii_digit())),
            "{name}: numbered label {label:?}"
        );
        for key in ["target", "anchor"] {
            let p = callout[key].as_array().expect("point");
            assert_eq!(p.len(), 2);
            let (x, y) = (p[0].as_f64().unwrap(), p[1].as_f64().unwrap());
            assert!(
                (0.0..=PAGE.0 as f64).contains(&x) && (0.0..=PAGE.1 as f64).contains(&y),
                "{name}: callout {key} {x},{y} off the page"
            );
        }
        assert!(
            sketch.svg.contains(&format!(">{}</text>", i + 1)),
            "{name}: bubble {}",
            i + 1
        );
        assert!(
            sketch.svg.contains(&format!(">{}</text>", escape(label))),
            "{name}: label {label:?}"
        );
    }

    // A dimension line per standard point of measure; the overall box is drawn only when
    // there is no standard one (it says little next to real points of measure).
    let standard: Vec<_> = analysis
        .measurements
        .points
        .iter()
        .filter(|m| !m.name.starts_with("overall_"))
        .collect();
    let drawn: Vec<_> = if standard.is_empty() {
        analysis.measurements.points.iter().collect()
    } else {
        standard
    };
    let measurements = sketch.data["measurements"]
        .as_array()
        .expect("measurements");
    assert_eq!(
        measurements.len(),
        drawn.len(),
        "{name}: a dimension per POM"
    );
    for (record, m) in measurements.iter().zip(&drawn) {
        assert_eq!(record["name"], m.name.as_str());
        assert!((record["cm"].as_f64().unwrap() - m.cm).abs() < 0.051);
        // A short line has room for its code and value only.
        let text = format!("{} {:.1} cm", m.name.replace('_', " "), m.cm);
        let short = format!("{} {:.1} cm", m.code, m.cm);
        assert!(
            sketch.svg.contains(&text) || (!m.code.is_empty() && sketch.svg.contains(&short)),
            "{name}: dimension text {text:?} missing"
        );
    }
    let dims = sketch
        .svg
        .split("id=\"dimensions\"")
        .nth(1)
        .expect("dimension group");
    let dims = &dims[..dims.find("</g>").unwrap()];
    assert!(
        dims.matches("<line").count() >= measurements.len(),
        "{name}: a line per dimension"
    );

    assert!(
        sketch.data["outline_points"].as_u64().unwrap() >= 4,
        "{name}: outline"
    );
    assert!(sketch.svg.contains("id=\"outline\""));
    assert!(sketch.svg.contains("techpack-local/2.0"));
    assert!(
        sketch
            .svg
            .contains(&format!(">{}</text>", analysis.category))
    );
}

#[test]
fn sample_photos_give_annotated_flats() {
    let Some(dir) = samples() else { return };
    let out = std::env::var_os("TECHPACK_SKETCH_OUT").map(PathBuf::from);
    let cases = [
        ("tshirt-black-front.jpg", ProductCategory::Apparel),
        ("hoodie-zip-grey-front.jpg", ProductCategory::Apparel),
        ("polo-red-front.jpg", ProductCategory::Apparel),
        ("cap-red-side-grey.jpg", ProductCategory::Accessories),
        ("tote-canvas-ruby.jpg", ProductCategory::Bags),
        ("tote-red-busy-background.jpg", ProductCategory::Bags),
    ];
    for (name, category) in cases {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let (analysis, sketch) = analyse_and_sketch(&photo(bytes, category));
        check_sketch(name, &analysis, &sketch);
        // Lines inside the outline: seams the photo shows, or construction lines (armholes,
        // band seams) from the landmarks. A plain tee may show no straight seam at all, and
        // its wrinkles must not be drawn, so either kind counts.
        let inner = sketch.data["interior_paths"].as_u64().unwrap()
            + sketch.data["construction_paths"].as_u64().unwrap();
        assert!(inner > 0, "{name}: no interior lines");
        if let Some(out) = &out {
            std::fs::create_dir_all(out).unwrap();
            let stem = name.trim_end_matches(".jpg");
            std::fs::write(out.join(format!("{stem}.svg")), &sketch.svg).unwrap();
            std::fs::write(out.join(format!("{stem}.png")), &sketch.png).unwrap();
            let data = serde_json::to_string_pretty(&sketch.data).unwrap();
            std::fs::write(out.join(format!("{stem}.json")), data + "\n").unwrap();
        }
    }
}

#[test]
fn the_same_photo_gives_byte_identical_sketches() {
    let Some(dir) = samples() else { return };
    let bytes = std::fs::read(dir.join("hoodie-black-front.jpg")).unwrap();
    let photo = photo(bytes, ProductCategory::Apparel);
    let (_, a) = analyse_and_sketch(&photo);
    let (_, b) = analyse_and_sketch(&photo);
    assert_eq!(a.svg, b.svg);
    assert_eq!(a.png, b.png);
    assert_eq!(a.data, b.data);
}

/// A garment-like shape with a seam, drawn on white.
fn synthetic_top() -> RgbImage {
    let mut img = RgbImage::from_pixel(640, 560, Rgb([250, 250, 250]));
    for (x, y, p) in img.enumerate_pixels_mut() {
        let body = (200..440).contains(&x) && (90..500).contains(&y);
        let sleeves = (90..550).contains(&x) && (90..220).contains(&y);
        if body || sleeves {
            *p = Rgb([30, 90, 40]);
        }
        let placket = x == 320 && (110..300).contains(&y);
        if placket {
            *p = Rgb([220, 230, 220]);
        }
    }
    img
}

#[tokio::test]
async fn the_provider_trait_returns_the_sketch_with_its_cost() {
    let provider = LocalProvider::default();
    let photo = photo(encode_png(&synthetic_top()), ProductCategory::Apparel);
    let analysis = provider.analyze(&photo).await.unwrap().output;
    let generated = provider.sketch(&photo, &analysis).await.unwrap();
    assert_eq!(generated.credits, 1);
    assert_eq!(generated.model, "techpack-local/2.0");
    check_sketch("synthetic top", &analysis, &generated.output);
    // The light placket line inside the body is drawn as an interior line.
    assert!(generated.output.data["interior_paths"].as_u64().unwrap() >= 1);
}

#[test]
fn a_uniform_photo_gives_a_valid_sketch_or_a_clear_error() {
    let photo = photo(
        encode_png(&RgbImage::from_pixel(300, 200, Rgb([128, 128, 128]))),
        ProductCategory::Other,
    );
    let provider = LocalProvider::default();
    let analysis = provider.analyze_sync(&photo).unwrap();
    match provider.sketch_sync(&photo, &analysis) {
        Ok(sketch) => check_sketch("uniform", &analysis, &sketch),
        Err(e) => assert!(matches!(e, GenerateError::BadInput(_)), "{e}"),
    }
}

#[test]
fn a_sketch_for_another_photos_analysis_is_refused() {
    let provider = LocalProvider::default();
    let big = photo(encode_png(&synthetic_top()), ProductCategory::Apparel);
    let analysis = provider.analyze_sync(&big).unwrap();
    let small = photo(
        encode_png(&RgbImage::from_pixel(100, 80, Rgb([255, 255, 255]))),
        ProductCategory::Apparel,
    );
    assert!(matches!(
        provider.sketch_sync(&small, &analysis),
        Err(GenerateError::BadInput(_))
    ));
}
