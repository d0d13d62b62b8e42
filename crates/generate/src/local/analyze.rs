//! The analysis document of one photo, assembled from the shared preparation (decoded photo,
//! segmentation, silhouette geometry): box, colours, category (asked for or detected),
//! landmarks, points of measure, features and the close-up regions framed on them, and a
//! confidence with its reasons. The schema is documented in `crates/generate/ANALYSIS_SCHEMA.md`.

use imageproc::distance_transform::Norm;
use techpack_model::ProductCategory;

use super::category;
use super::color::{LabF, hex, lab_to_rgb, plain_name, rgb_to_lab};
use super::features::{self, Found};
use super::landmarks;
use super::measure;
use super::prepared::Prepared;
use super::segment::{Segmentation, subsample};
use super::shape::Shape;
use super::timing::Timer;
use crate::{
    ANALYSIS_SCHEMA_VERSION, Analysis, CategorySource, ColorShare, Confidence, DetailRegion,
    GenerateError, ImageInfo, Measurement, MeasurementScale, Measurements, ProductRegion,
    ScaleSource,
};

/// What the analysis needs besides the pixels.
#[derive(Debug, Clone)]
pub(crate) struct AnalyzeInput<'a> {
    /// The view (front, back …).
    pub view: &'a str,
    /// The product category asked for (`auto` to detect).
    pub category: ProductCategory,
    /// A known real size, e.g. `height=70cm`.
    pub reference: Option<&'a str>,
}

/// Colours closer than this (ΔE76) are one colour to a buyer: k-means splits a single dyed
/// fabric into shading bands otherwise.
const MERGE_DELTA_E: f32 = 12.0;
/// Colours under this share of the product are anti-aliasing and shadows, not colours.
const MIN_COLOR_SHARE: f64 = 0.02;
/// Most detail regions (close-up candidates) one analysis lists.
const MAX_DETAIL_REGIONS: usize = 12;

/// Builds the analysis of one prepared photo.
pub(crate) fn analyze(
    prep: &Prepared,
    input: &AnalyzeInput<'_>,
    timer: &mut Timer,
) -> Result<Analysis, GenerateError> {
    let seg = &prep.seg;
    let shape = &prep.shape;
    let (iw, ih) = seg.input_size;
    let (ww, wh) = seg.mask.dimensions();
    let bbox = to_input_box(shape.bbox, seg);
    let area_share = shape.area as f64 / f64::from(ww * wh);
    let (bw, bh) = (f64::from(bbox[2] - bbox[0]), f64::from(bbox[3] - bbox[1]));
    let product = ProductRegion {
        bbox,
        area_share: round4(area_share),
        aspect_ratio: round4(bw / bh.max(1.0)),
        symmetry: round4(shape.symmetry),
    };
    let colors = timer.time("colours", || dominant_colors(seg));

    let detection = timer.time("category", || {
        let features =
            category::shape_features(shape, &seg.quality.backdrop_islands, prep.front_line());
        (category::detect(input.category, &features), features)
    });
    let (detection, shape_features) = detection;
    let chosen = category::chosen(&detection);

    // Landmarks need centimetres only for the chest's 2.5 cm below the underarm; a default
    // scale that rests on a landmark (body length from the HPS) is taken from a first pass.
    let (scale, lm) = timer.time("landmarks", || {
        let ctx = |px_per_cm: f64| landmarks::Context {
            seg,
            view: input.view,
            px_per_cm,
            hood: shape_features.hood,
        };
        let provisional = scale_for(chosen, input.reference, bw, bh, None)?;
        let first = landmarks::find(chosen, shape, &ctx(px_per_cm(&provisional, seg)));
        let scale = scale_for(chosen, input.reference, bw, bh, Some((&first, shape, seg)))?;
        let lm = if (scale.cm_per_px - provisional.cm_per_px).abs() > 1e-12 {
            landmarks::find(chosen, shape, &ctx(px_per_cm(&scale, seg)))
        } else {
            first
        };
        Ok::<_, GenerateError>((scale, lm))
    })?;
    let points = timer.time("measure", || {
        measure::points_of_measure(chosen, shape, &lm, seg.scale, &scale)
    });
    let found = timer.time("features", || {
        features::detect(&features::Inputs {
            category: chosen,
            view: input.view,
            seg,
            shape,
            landmarks: &lm,
            contrast: prep.contrast(),
            front_line: prep.front_line(),
            px_per_cm: px_per_cm(&scale, seg),
        })
    });
    let detail_regions = frame_regions(&found, shape, seg);
    let confidence = confidence(seg, area_share, &scale, &colors, &detection, &lm);
    let description = Some(describe(chosen, input.view, &colors, &points, &scale));
    Ok(Analysis {
        schema_version: ANALYSIS_SCHEMA_VERSION,
        image: ImageInfo {
            width: iw,
            height: ih,
        },
        view: input.view.to_string(),
        category: chosen,
        product,
        colors,
        materials: Vec::new(),
        measurements: Measurements { scale, points },
        detail_regions,
        description,
        confidence,
        source: Some(prep.photo.source),
        category_detection: Some(detection),
        landmarks: lm.named(seg.scale),
        features: features::to_analysis(&found, seg),
    })
}

/// The features of a prepared photo as the analysis finds them, for a given category, view
/// and scale: the sketch recomputes them to draw their construction lines (an analysis
/// stores where a feature is, not every line of it).
pub(crate) fn derive_features(
    prep: &Prepared,
    category: ProductCategory,
    view: &str,
    cm_per_px: f64,
) -> Vec<Found> {
    let seg = &prep.seg;
    let shape_features = category::shape_features(
        &prep.shape,
        &seg.quality.backdrop_islands,
        prep.front_line(),
    );
    let px_per_cm = 1.0 / (cm_per_px * seg.scale).max(1e-9);
    let lm = landmarks::find(
        category,
        &prep.shape,
        &landmarks::Context {
            seg,
            view,
            px_per_cm,
            hood: shape_features.hood,
        },
    );
    features::detect(&features::Inputs {
        category,
        view,
        seg,
        shape: &prep.shape,
        landmarks: &lm,
        contrast: prep.contrast(),
        front_line: prep.front_line(),
        px_per_cm,
    })
}

/// Working pixels per centimetre under a scale.
fn px_per_cm(scale: &MeasurementScale, seg: &Segmentation) -> f64 {
    1.0 / (scale.cm_per_px * seg.scale).max(1e-9)
}

fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

/// A working-pixel box to input pixels, rounded outwards and clamped to the image.
pub(crate) fn to_input_box(b: [u32; 4], seg: &Segmentation) -> [u32; 4] {
    let (iw, ih) = seg.input_size;
    let s = seg.scale;
    let x0 = ((f64::from(b[0]) * s).floor() as u32).min(iw.saturating_sub(1));
    let y0 = ((f64::from(b[1]) * s).floor() as u32).min(ih.saturating_sub(1));
    let x1 = ((f64::from(b[2]) * s).ceil() as u32).clamp(x0 + 1, iw);
    let y1 = ((f64::from(b[3]) * s).ceil() as u32).clamp(y0 + 1, ih);
    [x0, y0, x1, y1]
}

/// Close-up regions framed on the features: the feature's box with a margin, widened to at
/// least an eighth of the product's long side (a detail needs its surroundings to be read)
/// and to no more than 2:1, ranked by how much each shows and how sure it is.
fn frame_regions(found: &[Found], shape: &Shape, seg: &Segmentation) -> Vec<DetailRegion> {
    let (w, h) = seg.mask.dimensions();
    let long = shape.bw().max(shape.bh());
    let mut ranked: Vec<(&Found, f64)> = found
        .iter()
        .map(|f| (f, f.interest * f.confidence))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.name.cmp(&b.0.name)));
    ranked
        .into_iter()
        .take(MAX_DETAIL_REGIONS)
        .map(|(f, score)| {
            let [x0, y0, x1, y1] = f.bbox;
            let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
            let mut fw = (x1 - x0).max(1.0) * 1.1;
            let mut fh = (y1 - y0).max(1.0) * 1.1;
            let min = long * 0.125;
            fw = fw.max(min).max(fh / 2.0);
            fh = fh.max(min).max(fw / 2.0);
            let b = [
                (cx - fw / 2.0).max(0.0),
                (cy - fh / 2.0).max(0.0),
                (cx + fw / 2.0).min(f64::from(w)),
                (cy + fh / 2.0).min(f64::from(h)),
            ];
            let wb = [
                b[0].floor() as u32,
                b[1].floor() as u32,
                (b[2].ceil() as u32).max(b[0].floor() as u32 + 1),
                (b[3].ceil() as u32).max(b[1].floor() as u32 + 1),
            ];
            DetailRegion {
                name: f.name.clone(),
                bbox: to_input_box(wb, seg),
                score: round4(score.clamp(0.0, 1.0)),
            }
        })
        .collect()
}

/// Dominant colours of the product's pixels (k-means in CIELAB), similar ones merged.
fn dominant_colors(seg: &Segmentation) -> Vec<ColorShare> {
    // Eroded, so the anti-aliased rim (half product, half backdrop) does not add a false colour.
    let inner = imageproc::morphology::erode(&seg.mask, Norm::LInf, 2);
    let use_mask = if inner.pixels().any(|p| p.0[0] > 0) {
        &inner
    } else {
        &seg.mask
    };
    let px: Vec<LabF> = seg
        .working
        .pixels()
        .zip(use_mask.pixels())
        .filter(|(_, m)| m.0[0] > 0)
        .map(|(p, _)| rgb_to_lab(p.0))
        .collect();
    if px.is_empty() {
        return Vec::new();
    }
    let sample = subsample(&px, 20_000);
    let result = kmeans_colors::get_kmeans(6, 30, 0.5, false, &sample, 0x5eed_c010);
    let mut clusters: Vec<(LabF, f64)> = result
        .centroids
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let count = result.indices.iter().filter(|&&j| j as usize == i).count();
            (*c, count as f64 / sample.len() as f64)
        })
        .filter(|(_, share)| *share > 0.0)
        .collect();
    clusters.sort_by(|a, b| b.1.total_cmp(&a.1));
    // Greedy merge into the larger cluster, weighted by share.
    let mut merged: Vec<(LabF, f64)> = Vec::new();
    for (c, share) in clusters {
        if let Some(m) = merged
            .iter_mut()
            .find(|(mc, _)| super::color::delta_e(mc, &c) < MERGE_DELTA_E)
        {
            let total = m.1 + share;
            let (wa, wb) = ((m.1 / total) as f32, (share / total) as f32);
            m.0 = LabF::new(
                m.0.l * wa + c.l * wb,
                m.0.a * wa + c.a * wb,
                m.0.b * wa + c.b * wb,
            );
            m.1 = total;
        } else {
            merged.push((c, share));
        }
    }
    merged.sort_by(|a, b| b.1.total_cmp(&a.1));
    // Two shades with the same plain name (a black fabric's lit and shaded folds) are one
    // colour in a tech pack: fold the smaller into the larger, keeping the larger's hex.
    let mut named: Vec<(LabF, f64, String)> = Vec::new();
    for (c, share) in merged {
        let name = plain_name(c);
        match named.iter_mut().find(|(_, _, n)| *n == name) {
            Some(entry) => entry.1 += share,
            None => named.push((c, share, name)),
        }
    }
    named
        .into_iter()
        .filter(|(_, share, _)| *share >= MIN_COLOR_SHARE)
        .map(|(c, share, name)| ColorShare {
            hex: hex(lab_to_rgb(c)),
            share: round4(share),
            name,
        })
        .collect()
}

/// What a default or reference size refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The box's width.
    Width,
    /// The box's height.
    Height,
    /// A point of measure, e.g. `body_length` (falls back to the box's height, or width for
    /// widths, when it could not be measured).
    Pom(&'static str),
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Width => "width",
            Side::Height => "height",
            Side::Pom(name) => name,
        }
    }
}

/// The documented default real size per category, used when no reference is given.
pub(crate) fn category_default(category: ProductCategory) -> (Side, f64) {
    match category {
        // A flat-laid adult top from shoulder to hem (the box, for the broad name).
        ProductCategory::Apparel => (Side::Height, 70.0),
        // An adult top (men's M): the body from the high point of the shoulder to the hem,
        // so a hood above it does not shrink the garment.
        ProductCategory::Tops | ProductCategory::Outerwear => (Side::Pom("body_length"), 70.0),
        // Half the waist of an adult M laid flat.
        ProductCategory::Bottoms => (Side::Pom("waist_width"), 40.0),
        // A cap's crown from front to back (or side to side) at its base.
        ProductCategory::Headwear => (Side::Pom("crown_width"), 20.0),
        // An adult shoe (EU 42) seen from the side.
        ProductCategory::Footwear => (Side::Width, 28.0),
        // A tote or shoulder bag's body width.
        ProductCategory::Bags => (Side::Width, 40.0),
        // A cap or a small good.
        ProductCategory::Accessories => (Side::Width, 25.0),
        // A standard 11 oz mug.
        ProductCategory::Drinkware => (Side::Height, 10.0),
        // A mug or a cushion.
        ProductCategory::Home => (Side::Height, 12.0),
        // A 750 ml water bottle.
        ProductCategory::Bottles => (Side::Height, 25.0),
        ProductCategory::Other | ProductCategory::Auto => (Side::Height, 30.0),
    }
}

/// Parses a reference such as `height=70cm`, `width = 50 cm`, `w=500mm`, `height=27.5in`,
/// or a point of measure by name: `body_length=72cm`, `chest_width=52cm`.
pub(crate) fn parse_reference(text: &str) -> Result<(Side, f64), GenerateError> {
    let bad = || {
        GenerateError::BadInput(format!(
            "reference {text:?} not understood: expected e.g. \"height=70cm\", \"width=50cm\" or \"body_length=72cm\" (units cm, mm, m or in)"
        ))
    };
    let (key, value) = text.split_once('=').ok_or_else(bad)?;
    let side = match key.trim().to_ascii_lowercase().as_str() {
        "height" | "h" | "length" => Side::Height,
        "width" | "w" => Side::Width,
        "body_length" => Side::Pom("body_length"),
        "chest_width" | "chest" => Side::Pom("chest_width"),
        "waist_width" | "waist" => Side::Pom("waist_width"),
        "crown_width" => Side::Pom("crown_width"),
        _ => return Err(bad()),
    };
    let value = value.trim().to_ascii_lowercase();
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let factor = match unit.trim() {
        "cm" | "" => 1.0,
        "mm" => 0.1,
        "m" => 100.0,
        "in" | "\"" | "inch" | "inches" => 2.54,
        _ => return Err(bad()),
    };
    let cm = number * factor;
    if !(cm.is_finite() && cm > 0.0 && cm < 10_000.0) {
        return Err(bad());
    }
    Ok((side, cm))
}

/// The scale from the reference, else the category's default. A size given for a point of
/// measure needs the landmarks (`measured`); without them, or when that point cannot be
/// measured, the box's height stands in (its width for widths) and the basis says so.
fn scale_for(
    category: ProductCategory,
    reference: Option<&str>,
    bw: f64,
    bh: f64,
    measured: Option<(&landmarks::Landmarks, &Shape, &Segmentation)>,
) -> Result<MeasurementScale, GenerateError> {
    let (side, cm, source, mut basis) = match reference.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => {
            let (side, cm) = parse_reference(r)?;
            (side, cm, ScaleSource::Reference, r.to_string())
        }
        None => {
            let (side, cm) = category_default(category);
            let basis = format!("{}={}cm (default for {category})", side.name(), cm);
            (side, cm, ScaleSource::CategoryDefault, basis)
        }
    };
    let px = match side {
        Side::Width => bw,
        Side::Height => bh,
        Side::Pom(name) => {
            let found = measured.and_then(|(lm, shape, seg)| {
                let probe = MeasurementScale {
                    cm_per_px: 1.0,
                    source,
                    basis: String::new(),
                };
                measure::points_of_measure(category, shape, lm, seg.scale, &probe)
                    .into_iter()
                    .find(|m| m.name == name)
                    .map(|m| m.px)
            });
            match found {
                Some(px) => px,
                None => {
                    let widthwise = name.contains("width");
                    if measured.is_some() {
                        basis = format!(
                            "{basis}; {name} could not be measured, so the box's {} stands in",
                            if widthwise { "width" } else { "height" }
                        );
                    }
                    if widthwise { bw } else { bh }
                }
            }
        }
    };
    Ok(MeasurementScale {
        cm_per_px: cm / px.max(1.0),
        source,
        basis,
    })
}

fn confidence(
    seg: &Segmentation,
    area_share: f64,
    scale: &MeasurementScale,
    colors: &[ColorShare],
    detection: &crate::CategoryDetection,
    lm: &landmarks::Landmarks,
) -> Confidence {
    let q = &seg.quality;
    let mut reasons = Vec::new();
    if q.nothing_found {
        reasons.push(
            "Nothing in the image stands out from its background: it looks like a uniform colour \
             with no product in it. The whole frame was used, so the box, colours and \
             measurements describe the image, not a product."
                .to_string(),
        );
        return Confidence {
            score: 0.05,
            reasons,
        };
    }
    let mut score: f64 = 0.9;
    if q.from_alpha {
        score = 0.95;
        reasons.push("The image's transparency gives the exact silhouette.".into());
    } else if q.busy_background {
        score -= 0.25;
        reasons.push(format!(
            "Busy background (colour spread ΔE {:.0}): the product was separated by colour models, so its edges may be off.",
            q.background_spread
        ));
    } else {
        reasons.push(format!(
            "Plain background (colour spread ΔE {:.1}): the product separates cleanly.",
            q.background_spread
        ));
    }
    if !q.from_alpha && q.contrast < 15.0 {
        score -= 0.2;
        reasons.push(format!(
            "Low contrast with the background (median ΔE {:.0}): parts of the product may be missed.",
            q.contrast
        ));
    }
    if q.touching_sides > 0 {
        score -= 0.1 * f64::from(q.touching_sides);
        reasons.push(format!(
            "The product touches {} edge(s) of the frame and may be cut off: measurements may be short.",
            q.touching_sides
        ));
    }
    if area_share < 0.02 {
        score -= 0.2;
        reasons.push(format!(
            "The product covers only {:.1} % of the image: details are small.",
            area_share * 100.0
        ));
    }
    if area_share > 0.9 {
        score -= 0.2;
        reasons.push(
            "The product fills nearly the whole frame: its outline may not be its own.".into(),
        );
    }
    match scale.source {
        ScaleSource::Reference => {
            reasons.push(format!(
                "Centimetres are scaled from the given reference ({}).",
                scale.basis
            ));
        }
        _ => {
            score -= 0.1;
            reasons.push(format!(
                "No reference size was given: centimetres assume {}, so treat them as estimates.",
                scale.basis
            ));
        }
    }
    if colors.is_empty() {
        score -= 0.1;
        reasons.push("No dominant colour could be measured.".into());
    }
    match detection.source {
        CategorySource::Detected | CategorySource::Refined => {
            let lead = detection
                .features
                .first()
                .map(|f| format!(": {}", f.note))
                .unwrap_or_default();
            reasons.push(format!(
                "The category {} was detected from the silhouette's shape (confidence {:.2}){lead}.",
                detection.detected, detection.confidence
            ));
            if detection.confidence < 0.5 {
                score -= 0.15;
                reasons.push(
                    "The category is uncertain: give it with the photo if it is wrong.".into(),
                );
            }
        }
        CategorySource::Request => {
            if !detection.requested.includes(detection.detected)
                && detection.detected != ProductCategory::Other
                && detection.confidence >= 0.6
            {
                reasons.push(format!(
                    "The photo was analysed as {} as asked, though its shape looks like {} (confidence {:.2}).",
                    detection.requested, detection.detected, detection.confidence
                ));
            }
        }
    }
    if !q.from_alpha && q.edge_held_share > 0.5 {
        reasons.push(format!(
            "The product is close in colour to its background ({:.0} % of it held by its outline's edge alone).",
            q.edge_held_share * 100.0
        ));
    }
    for missing in &lm.missing {
        reasons.push(format!("Not measured: {missing}."));
    }
    if !lm.missing.is_empty() {
        score -= 0.05;
    }
    Confidence {
        score: round4(score.clamp(0.05, 1.0)),
        reasons,
    }
}

fn describe(
    category: ProductCategory,
    view: &str,
    colors: &[ColorShare],
    points: &[Measurement],
    scale: &MeasurementScale,
) -> String {
    let colour = colors.first().map_or("unknown colour", |c| c.name.as_str());
    let dim = |name: &str| points.iter().find(|p| p.name == name).map(|p| p.cm);
    let size = match (dim("overall_width"), dim("overall_height")) {
        (Some(w), Some(h)) => format!(", about {w:.0} × {h:.0} cm"),
        _ => String::new(),
    };
    let how = match scale.source {
        ScaleSource::Reference => "from the reference",
        _ => "at the category's default scale",
    };
    format!("{colour} {category} product, {view} view{size} ({how})")
}

/// Marks the working-pixel box `r` on a mask-sized image (used by tests).
#[cfg(test)]
pub(crate) fn paint_box(img: &mut image::GrayImage, r: [u32; 4]) {
    use image::Luma;
    for y in r[1]..r[3] {
        for x in r[0]..r[2] {
            img.put_pixel(x, y, Luma([255]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        assert_eq!(
            parse_reference("height=70cm").unwrap(),
            (Side::Height, 70.0)
        );
        assert_eq!(
            parse_reference("width = 50 cm").unwrap(),
            (Side::Width, 50.0)
        );
        assert_eq!(parse_reference("w=500mm").unwrap(), (Side::Width, 50.0));
        let (side, cm) = parse_reference("height=10in").unwrap();
        assert_eq!(side, Side::Height);
        assert!((cm - 25.4).abs() < 1e-9);
        assert_eq!(
            parse_reference("body_length=72cm").unwrap(),
            (Side::Pom("body_length"), 72.0)
        );
        for bad in [
            "70cm",
            "depth=3cm",
            "height=abc",
            "height=-3cm",
            "height=5 parsecs",
        ] {
            assert!(
                matches!(parse_reference(bad), Err(GenerateError::BadInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn symmetry_of_a_centred_rectangle_is_one() {
        let mut m = image::GrayImage::new(50, 40);
        paint_box(&mut m, [10, 5, 40, 35]);
        assert!((Shape::new(&m).symmetry - 1.0).abs() < 1e-9);
        let mut l = image::GrayImage::new(50, 40);
        paint_box(&mut l, [10, 5, 40, 35]);
        paint_box(&mut l, [0, 5, 10, 10]);
        assert!(Shape::new(&l).symmetry < 0.95);
    }
}
