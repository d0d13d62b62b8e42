//! The [`Analysis`] document as a strict JSON Schema for structured outputs, and the checks a
//! model's answer must pass beyond the schema (coordinates inside the image, consistent units).
//!
//! The schema is written by hand because OpenAI's strict mode accepts only a subset of JSON
//! Schema (every property required, `additionalProperties: false`, nullable as a type union);
//! a unit test keeps it in step with the serde layout of [`Analysis`].

use serde_json::{Value, json};

use techpack_model::ProductCategory;

use crate::{ANALYSIS_SCHEMA_VERSION, Analysis, ImageInfo, ViewPhoto};

/// The `json_schema.name` sent with the request.
pub(crate) const SCHEMA_NAME: &str = "techpack_analysis";

/// The schema of the answer for one photo: the fields we already know (schema version, image
/// size, view, category) are pinned with single-value enums so the model cannot get them wrong.
pub(crate) fn analysis_schema(photo: &ViewPhoto, image: ImageInfo) -> Value {
    let bbox = |what: &str| {
        json!({
            "type": "array",
            "description": format!("{what} as [x0, y0, x1, y1] in input-image pixels, ends exclusive"),
            "items": { "type": "integer", "minimum": 0 },
            "minItems": 4,
            "maxItems": 4
        })
    };
    let point = json!({
        "type": "array",
        "items": { "type": "number" },
        "minItems": 2,
        "maxItems": 2
    });
    let unit = |description: &str| json!({ "type": "number", "minimum": 0, "maximum": 1, "description": description });
    object(json!({
        "schema_version": { "type": "integer", "enum": [ANALYSIS_SCHEMA_VERSION] },
        "image": object(json!({
            "width": { "type": "integer", "enum": [image.width] },
            "height": { "type": "integer", "enum": [image.height] }
        })),
        "view": { "type": "string", "enum": [photo.view] },
        "category": { "type": "string", "enum": requested_categories(photo.category) },
        "product": object(json!({
            "bbox": bbox("the product's bounding box"),
            "area_share": unit("share of the image's pixels covered by the product"),
            "aspect_ratio": { "type": "number", "minimum": 0, "description": "bbox width / height" },
            "symmetry": unit("left-right symmetry of the silhouette, 1 = mirror image")
        })),
        "colors": {
            "type": "array",
            "description": "dominant colours of the product alone, largest share first",
            "items": object(json!({
                "hex": { "type": "string", "pattern": "^#[0-9a-f]{6}$" },
                "share": unit("share of the product's pixels"),
                "name": { "type": "string" }
            }))
        },
        "materials": { "type": "array", "items": { "type": "string" } },
        "measurements": object(json!({
            "scale": object(json!({
                "cm_per_px": { "type": "number", "minimum": 0 },
                "source": { "type": "string", "enum": ["reference", "category_default", "estimated"] },
                "basis": { "type": "string" }
            })),
            "points": {
                "type": "array",
                "items": object(json!({
                    "name": { "type": "string", "description": "snake_case point of measure" },
                    "px": { "type": "number", "minimum": 0 },
                    "cm": { "type": "number", "minimum": 0 },
                    "from": point.clone(),
                    "to": point
                }))
            }
        })),
        "detail_regions": {
            "type": "array",
            "description": "regions worth a close-up, most to see first",
            "items": object(json!({
                "name": { "type": "string" },
                "bbox": bbox("the region"),
                "score": unit("how much there is to see")
            }))
        },
        "description": { "type": ["string", "null"] },
        "confidence": object(json!({
            "score": unit("how sure the analysis is"),
            "reasons": { "type": "array", "items": { "type": "string" } }
        }))
    }))
}

/// A strict-mode object: every property required, nothing else allowed.
/// The categories the answer may name: the requested one, or any detectable one for `auto`.
fn requested_categories(category: ProductCategory) -> Vec<&'static str> {
    if category.is_auto() {
        ProductCategory::DETECTABLE
            .iter()
            .map(|c| c.as_str())
            .collect()
    } else {
        vec![category.as_str()]
    }
}

fn object(properties: Value) -> Value {
    let required: Vec<Value> = properties
        .as_object()
        .map(|map| map.keys().cloned().map(Value::String).collect())
        .unwrap_or_default();
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false
    })
}

/// Checks a parsed answer against what the photo allows and puts its lists in rank order.
/// Returns every problem found, so one error message explains the whole answer.
pub(crate) fn validate(
    mut analysis: Analysis,
    photo: &ViewPhoto,
    image: ImageInfo,
) -> Result<Analysis, Vec<String>> {
    let mut problems = Vec::new();
    if analysis.schema_version != ANALYSIS_SCHEMA_VERSION {
        problems.push(format!(
            "schema_version is {}, expected {ANALYSIS_SCHEMA_VERSION}",
            analysis.schema_version
        ));
    }
    if analysis.image != image {
        problems.push(format!(
            "image is {}x{}, the photo is {}x{}",
            analysis.image.width, analysis.image.height, image.width, image.height
        ));
    }
    if analysis.view != photo.view {
        problems.push(format!(
            "view is {:?}, expected {:?}",
            analysis.view, photo.view
        ));
    }
    if analysis.category.is_auto() || !photo.category.includes(analysis.category) {
        problems.push(format!(
            "category is {}, expected {}",
            analysis.category, photo.category
        ));
    }
    check_bbox(&mut problems, "product.bbox", analysis.product.bbox, image);
    check_unit(
        &mut problems,
        "product.area_share",
        analysis.product.area_share,
    );
    check_unit(&mut problems, "product.symmetry", analysis.product.symmetry);
    if !(analysis.product.aspect_ratio.is_finite() && analysis.product.aspect_ratio > 0.0) {
        problems.push(format!(
            "product.aspect_ratio {} is not positive",
            analysis.product.aspect_ratio
        ));
    }
    let mut share_sum = 0.0;
    for (i, color) in analysis.colors.iter().enumerate() {
        let hex = color.hex.strip_prefix('#').unwrap_or("");
        if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            problems.push(format!("colors[{i}].hex {:?} is not #rrggbb", color.hex));
        }
        check_unit(&mut problems, &format!("colors[{i}].share"), color.share);
        share_sum += color.share;
    }
    // Shares are of the product's pixels; a little rounding slack is fine.
    if share_sum > 1.05 {
        problems.push(format!(
            "colour shares add up to {share_sum:.2}, more than 1"
        ));
    }
    let scale = &analysis.measurements.scale;
    if !(scale.cm_per_px.is_finite() && scale.cm_per_px > 0.0) {
        problems.push(format!(
            "measurements.scale.cm_per_px {} is not positive",
            scale.cm_per_px
        ));
    }
    for (i, point) in analysis.measurements.points.iter().enumerate() {
        let at = format!("measurements.points[{i}] ({})", point.name);
        if !(point.px.is_finite() && point.px >= 0.0 && point.cm.is_finite() && point.cm >= 0.0) {
            problems.push(format!("{at}: px and cm must be non-negative numbers"));
            continue;
        }
        for end in [point.from, point.to] {
            // One pixel of slack: ends exclusive means a point may sit on the far edge.
            let inside = end.iter().all(|v| v.is_finite())
                && (-1.0..=f64::from(image.width) + 1.0).contains(&end[0])
                && (-1.0..=f64::from(image.height) + 1.0).contains(&end[1]);
            if !inside {
                problems.push(format!("{at}: point {end:?} is outside the image"));
            }
        }
        // The model must not contradict itself: centimetres follow from pixels and the scale.
        let expected = point.px * scale.cm_per_px;
        if scale.cm_per_px > 0.0 && (point.cm - expected).abs() > 0.1 * expected.max(1.0) {
            problems.push(format!(
                "{at}: {} cm does not match {} px at {} cm/px",
                point.cm, point.px, scale.cm_per_px
            ));
        }
    }
    for (i, region) in analysis.detail_regions.iter().enumerate() {
        if region.name.trim().is_empty() {
            problems.push(format!("detail_regions[{i}] has no name"));
        }
        check_bbox(
            &mut problems,
            &format!("detail_regions[{i}].bbox"),
            region.bbox,
            image,
        );
        check_unit(
            &mut problems,
            &format!("detail_regions[{i}].score"),
            region.score,
        );
    }
    check_unit(&mut problems, "confidence.score", analysis.confidence.score);
    if !problems.is_empty() {
        return Err(problems);
    }
    for color in &mut analysis.colors {
        color.hex.make_ascii_lowercase();
    }
    // The document promises rank order; models do not always keep it.
    analysis.colors.sort_by(|a, b| b.share.total_cmp(&a.share));
    analysis
        .detail_regions
        .sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(analysis)
}

fn check_bbox(
    problems: &mut Vec<String>,
    what: &str,
    [x0, y0, x1, y1]: [u32; 4],
    image: ImageInfo,
) {
    if !(x0 < x1 && y0 < y1 && x1 <= image.width && y1 <= image.height) {
        problems.push(format!(
            "{what} [{x0}, {y0}, {x1}, {y1}] is empty or outside the {}x{} image",
            image.width, image.height
        ));
    }
}

fn check_unit(problems: &mut Vec<String>, what: &str, value: f64) {
    if !(0.0..=1.0).contains(&value) {
        problems.push(format!("{what} {value} is not in 0..=1"));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use techpack_model::ProductCategory;

    use super::*;
    use crate::{
        ColorShare, Confidence, DetailRegion, Measurement, MeasurementScale, Measurements,
        ProductRegion, ScaleSource,
    };

    fn photo() -> ViewPhoto {
        ViewPhoto {
            bytes: Arc::from(Vec::new()),
            view: "front".into(),
            category: ProductCategory::Apparel,
            reference: None,
        }
    }

    const IMAGE: ImageInfo = ImageInfo {
        width: 400,
        height: 300,
    };

    fn sample() -> Analysis {
        Analysis {
            schema_version: ANALYSIS_SCHEMA_VERSION,
            image: IMAGE,
            view: "front".into(),
            category: ProductCategory::Apparel,
            product: ProductRegion {
                bbox: [50, 20, 350, 290],
                area_share: 0.5,
                aspect_ratio: 1.1,
                symmetry: 0.9,
            },
            colors: vec![
                ColorShare {
                    hex: "#112233".into(),
                    share: 0.2,
                    name: "navy".into(),
                },
                ColorShare {
                    hex: "#ffffff".into(),
                    share: 0.7,
                    name: "white".into(),
                },
            ],
            materials: vec!["cotton jersey".into()],
            measurements: Measurements {
                scale: MeasurementScale {
                    cm_per_px: 0.2,
                    source: ScaleSource::Estimated,
                    basis: "typical tee".into(),
                },
                points: vec![Measurement {
                    name: "chest_width".into(),
                    px: 200.0,
                    cm: 40.0,
                    from: [100.0, 100.0],
                    to: [300.0, 100.0],
                    ..Measurement::default()
                }],
            },
            detail_regions: vec![
                DetailRegion {
                    name: "hem".into(),
                    bbox: [60, 250, 340, 290],
                    score: 0.4,
                },
                DetailRegion {
                    name: "collar".into(),
                    bbox: [150, 20, 250, 60],
                    score: 0.8,
                },
            ],
            description: None,
            confidence: Confidence {
                score: 0.7,
                reasons: vec!["plain background".into()],
            },
            source: None,
            category_detection: None,
            landmarks: Vec::new(),
            features: Vec::new(),
        }
    }

    /// Walks the schema and a serialized document side by side: every object in the schema
    /// must follow strict mode's rules and name exactly the keys serde writes.
    fn assert_matches(schema: &Value, value: &Value, at: &str) {
        match schema["type"].as_str() {
            Some("object") => {
                let props = schema["properties"].as_object().expect("properties");
                let required: Vec<&str> = schema["required"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                let mut keys: Vec<&str> = props.keys().map(String::as_str).collect();
                keys.sort_unstable();
                let mut required_sorted = required.clone();
                required_sorted.sort_unstable();
                assert_eq!(
                    keys, required_sorted,
                    "{at}: strict mode needs every property required"
                );
                assert_eq!(schema["additionalProperties"], false, "{at}");
                let object = value
                    .as_object()
                    .unwrap_or_else(|| panic!("{at}: expected an object"));
                let mut written: Vec<&str> = object.keys().map(String::as_str).collect();
                written.sort_unstable();
                assert_eq!(written, keys, "{at}: schema and serde layout differ");
                for (key, sub) in props {
                    assert_matches(sub, &object[key], &format!("{at}.{key}"));
                }
            }
            Some("array") => {
                for (i, item) in value.as_array().unwrap().iter().enumerate() {
                    assert_matches(&schema["items"], item, &format!("{at}[{i}]"));
                }
            }
            _ => {}
        }
    }

    #[test]
    fn schema_is_strict_and_matches_the_serde_layout() {
        let schema = analysis_schema(&photo(), IMAGE);
        assert_matches(&schema, &serde_json::to_value(sample()).unwrap(), "$");
        assert_eq!(schema["properties"]["category"]["enum"], json!(["apparel"]));
        assert_eq!(
            schema["properties"]["image"]["properties"]["width"]["enum"],
            json!([400])
        );
    }

    #[test]
    fn valid_answers_come_back_in_rank_order() {
        let analysis = validate(sample(), &photo(), IMAGE).unwrap();
        assert_eq!(analysis.colors[0].name, "white");
        assert_eq!(analysis.detail_regions[0].name, "collar");
    }

    #[test]
    fn every_problem_is_reported() {
        let mut bad = sample();
        bad.schema_version = 9;
        bad.product.bbox = [10, 10, 500, 200];
        bad.colors[0].share = 1.4;
        bad.colors[1].hex = "white".into();
        bad.confidence.score = -0.1;
        bad.detail_regions[0].bbox = [30, 30, 30, 40];
        bad.measurements.points[0].cm = 90.0;
        let problems = validate(bad, &photo(), IMAGE).unwrap_err();
        for needle in [
            "schema_version",
            "product.bbox",
            "colors[0].share",
            "colors[1].hex",
            "confidence.score",
            "detail_regions[0].bbox",
            "does not match",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle} missing from {problems:?}"
            );
        }
    }
}
