//! The technical sketch: a flat drawn from the photo as vector line art, annotated from the
//! analysis.
//!
//! - `tracing.rs`: the outline (the silhouette, mirrored into symmetry for symmetric
//!   products), interior lines (print outlines, colour-block seams, long straight seams —
//!   never the photo's wrinkles) and construction lines (armholes, band seams, a zip);
//! - `paths.rs`: smooth Bézier paths through them;
//! - `dimensions.rs`: a dimension line per point of measure;
//! - `callouts.rs`: a numbered callout per feature, with why it was placed;
//! - `title_block.rs`: category, view, scale and basis, and the generator.
//!
//! No photo pixel reaches the output: the SVG holds only paths, lines and text. Coordinates are
//! the input image's pixels mapped onto a fixed landscape page, and every number is printed with
//! fixed precision, so the same photo and analysis always give byte-identical files.

mod callouts;
mod dimensions;
mod paths;
mod title_block;
mod tracing;

use serde_json::json;

use super::prepared::Prepared;
use super::svg::{PathData, SvgWriter};
use super::timing::Timer;
use crate::{Analysis, GenerateError, RenderOptions, Sketch, render_svg_png};
use callouts::draw_callouts;
use dimensions::{draw_measurements, drawing_box, plan_dimensions};
use paths::smooth_path;
use title_block::draw_title_block;
use tracing::{LineArt, trace_line_art};

/// How the flat is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SketchOptions {
    /// Mirror the outline of symmetric products (tops, bottoms, bags, bottles, caps seen
    /// from the front) into exact symmetry; prints, pockets and other one-sided features
    /// stay where they are.
    pub symmetric: bool,
}

/// The generator's name and drawing-style version, printed in the title block.
pub(crate) const SKETCH_GENERATOR: &str = "techpack-local/2.0";

/// Page size in SVG user units; the PNG is rendered at one pixel per unit.
pub(crate) const PAGE_WIDTH: f64 = 1600.0;
/// Page height, see [`PAGE_WIDTH`].
pub(crate) const PAGE_HEIGHT: f64 = 1200.0;

/// The box the product is fitted into when no dimension line sits outside it: the margins
/// hold dimension lines (top, bottom, left), callout labels (left and right) and the title
/// block (bottom). Each outside dimension line takes its room from this box.
pub(super) const DRAW_X0: f64 = 400.0;
pub(super) const DRAW_X1: f64 = 1190.0;
pub(super) const DRAW_Y0: f64 = 80.0;
pub(super) const DRAW_Y1: f64 = 1010.0;

/// Callout columns: bubble centres and where label text starts/ends.
pub(super) const BUBBLE_LEFT_X: f64 = 300.0;
pub(super) const BUBBLE_RIGHT_X: f64 = 1300.0;
pub(super) const BUBBLE_R: f64 = 15.0;
pub(super) const LABEL_GAP: f64 = 12.0;
/// Callout labels stay between these heights (clear of the title block).
pub(super) const LABEL_Y0: f64 = 90.0;
pub(super) const LABEL_Y1: f64 = 1000.0;
pub(super) const LABEL_SPACING: f64 = 46.0;
pub(super) const LABEL_MAX_CHARS: usize = 22;

/// Title block.
pub(super) const TITLE_Y0: f64 = 1040.0;
pub(super) const TITLE_Y1: f64 = PAGE_HEIGHT - 20.0;

/// Distance from the product to the first outside dimension line, and between stacked ones.
pub(super) const DIM_OFFSET: f64 = 48.0;
pub(super) const DIM_STACK: f64 = 44.0;

pub(super) const INK: &str = "#111111";
pub(super) const INTERIOR_INK: &str = "#3a3a3a";
pub(super) const DIM_INK: &str = "#1f4e9c";
pub(super) const CALLOUT_INK: &str = "#b3261e";

/// Maps input pixels onto the page.
#[derive(Debug, Clone, Copy)]
pub(super) struct PageTransform {
    /// Page units per input pixel.
    pub(super) scale: f64,
    /// Page position of input pixel (0, 0).
    pub(super) offset: [f64; 2],
}

impl PageTransform {
    /// Fits `bbox` (input px, `[x0, y0, x1, y1]`) centred into `frame` (page units).
    pub(super) fn fit(bbox: [f64; 4], frame: [f64; 4]) -> Self {
        let bw = (bbox[2] - bbox[0]).max(1.0);
        let bh = (bbox[3] - bbox[1]).max(1.0);
        let scale = ((frame[2] - frame[0]) / bw).min((frame[3] - frame[1]) / bh);
        let cx = (frame[0] + frame[2]) / 2.0;
        let cy = (frame[1] + frame[3]) / 2.0;
        let offset = [
            cx - (bbox[0] + bbox[2]) / 2.0 * scale,
            cy - (bbox[1] + bbox[3]) / 2.0 * scale,
        ];
        Self { scale, offset }
    }

    pub(super) fn apply(&self, p: [f64; 2]) -> [f64; 2] {
        [
            self.offset[0] + p[0] * self.scale,
            self.offset[1] + p[1] * self.scale,
        ]
    }
}

/// Draws the technical sketch of a prepared photo, annotated from its analysis.
///
/// Fails with [`GenerateError::BadInput`] when the silhouette is empty (there is nothing to
/// draw), and with [`GenerateError::InvalidAnswer`] if the segmentation is inconsistent or the
/// produced SVG does not parse.
pub(crate) fn draw_sketch(
    prep: &Prepared,
    analysis: &Analysis,
    options: &SketchOptions,
    timer: &mut Timer,
) -> Result<Sketch, GenerateError> {
    let seg = &prep.seg;
    if seg.mask.dimensions() != seg.working.dimensions() {
        return Err(GenerateError::InvalidAnswer(format!(
            "segmentation mask is {:?} but the working image is {:?}",
            seg.mask.dimensions(),
            seg.working.dimensions()
        )));
    }
    if !(seg.scale.is_finite() && seg.scale > 0.0) {
        return Err(GenerateError::InvalidAnswer(format!(
            "segmentation scale {} is not a positive number",
            seg.scale
        )));
    }
    let art = timer.time("sketch_trace", || trace_line_art(prep, analysis, options));
    if art.outlines.is_empty() {
        return Err(GenerateError::BadInput(
            "no product silhouette was found in the photo, so there is nothing to sketch".into(),
        ));
    }

    let svg_and_data = timer.time("sketch_draw", || {
        let bbox = drawing_bbox(&art, analysis);
        let plan = plan_dimensions(analysis, bbox);
        let tf = PageTransform::fit(bbox, drawing_box(&plan));
        let a = tf.apply([bbox[0], bbox[1]]);
        let b = tf.apply([bbox[2], bbox[3]]);
        let product_page = [a[0], a[1], b[0], b[1]];

        let mut w = SvgWriter::new(PAGE_WIDTH, PAGE_HEIGHT);
        w.comment(&format!(
            "technical flat by {SKETCH_GENERATOR}: {} {} view",
            analysis.category, analysis.view
        ));
        w.rect(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT, "fill=\"#ffffff\"");
        w.rect(
            20.0,
            20.0,
            PAGE_WIDTH - 40.0,
            PAGE_HEIGHT - 40.0,
            &format!("fill=\"none\" stroke=\"{INK}\" stroke-width=\"1.5\""),
        );
        draw_line_art(&mut w, &art, &tf);
        let measurements = draw_measurements(&mut w, seg, &plan, &tf, product_page);
        let callouts = draw_callouts(&mut w, seg, analysis, &tf, product_page);
        draw_title_block(&mut w, analysis, &tf);
        (w.finish(), tf, measurements, callouts)
    });
    let (svg, tf, measurements, callouts) = svg_and_data;
    let rendered = timer.time("sketch_render", || {
        render_svg_png(&svg, &RenderOptions::default())
    })?;
    let data = json!({
        "generator": SKETCH_GENERATOR,
        "page": { "width": PAGE_WIDTH, "height": PAGE_HEIGHT, "png_size": rendered.size },
        // Callout and dimension positions are page units; `from`/`to`/`target_input` are input
        // pixels, as in the analysis. page = offset + input * scale.
        "transform": { "scale": round3(tf.scale), "offset": [round3(tf.offset[0]), round3(tf.offset[1])] },
        "callouts": callouts,
        "measurements": measurements,
        "outline_points": art.outlines.iter().map(Vec::len).sum::<usize>(),
        "outline_paths": art.outlines.len(),
        "interior_paths": art.interior.len(),
        "construction_paths": art.construction.len(),
        "symmetric": art.symmetric,
    });
    Ok(Sketch {
        svg,
        png: rendered.png,
        data,
    })
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn round1(v: f64) -> f64 {
    let r = (v * 10.0).round() / 10.0;
    if r == 0.0 { 0.0 } else { r }
}

fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// The region to fit on the page: everything drawn (outline) and everything annotated
/// (product box, measurement ends), so no dimension line leaves the drawing box.
fn drawing_bbox(art: &LineArt, analysis: &Analysis) -> [f64; 4] {
    let mut b = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    let mut add = |p: [f64; 2]| {
        b[0] = b[0].min(p[0]);
        b[1] = b[1].min(p[1]);
        b[2] = b[2].max(p[0]);
        b[3] = b[3].max(p[1]);
    };
    for p in art.outlines.iter().flatten() {
        add(*p);
    }
    let pb = analysis.product.bbox;
    if pb[2] > pb[0] && pb[3] > pb[1] {
        add([f64::from(pb[0]), f64::from(pb[1])]);
        add([f64::from(pb[2]), f64::from(pb[3])]);
    }
    let (iw, ih) = (
        f64::from(analysis.image.width),
        f64::from(analysis.image.height),
    );
    for m in dimensions::drawn(analysis) {
        for p in [m.from, m.to] {
            // A point far outside the image is a bad analysis, not a reason to shrink the flat.
            if p[0].is_finite()
                && p[1].is_finite()
                && p[0] >= -1.0
                && p[1] >= -1.0
                && p[0] <= iw + 1.0
                && p[1] <= ih + 1.0
            {
                add(p);
            }
        }
    }
    b
}

/// Outline heavy, interior and construction lines lighter, in that order.
fn draw_line_art(w: &mut SvgWriter, art: &LineArt, tf: &PageTransform) {
    let path_of = |polys: &[Vec<[f64; 2]>], closed: bool| {
        let mut d = PathData::new();
        for poly in polys {
            let page: Vec<[f64; 2]> = poly.iter().map(|p| tf.apply(*p)).collect();
            smooth_path(&mut d, &page, closed);
        }
        d
    };
    let mut prints = PathData::new();
    for poly in &art.prints {
        let page: Vec<[f64; 2]> = poly.iter().map(|p| tf.apply(*p)).collect();
        smooth_path(&mut prints, &page, true);
    }
    // Interior first, so the outline's heavier stroke sits on top where they meet.
    w.open_group("id=\"interior\"");
    w.path(
        &path_of(&art.interior, false),
        &format!("fill=\"none\" stroke=\"{INTERIOR_INK}\" stroke-width=\"1.4\" stroke-linecap=\"round\" stroke-linejoin=\"round\""),
    );
    w.path(
        &prints,
        &format!(
            "fill=\"none\" stroke=\"{INTERIOR_INK}\" stroke-width=\"1.2\" stroke-linejoin=\"round\""
        ),
    );
    w.close_group();
    w.open_group("id=\"construction\"");
    w.path(
        &path_of(&art.construction, false),
        &format!("fill=\"none\" stroke=\"{INK}\" stroke-width=\"1.6\" stroke-linecap=\"round\" stroke-linejoin=\"round\""),
    );
    w.path(
        &path_of(&art.topstitch, false),
        &format!("fill=\"none\" stroke=\"{INTERIOR_INK}\" stroke-width=\"1.1\" stroke-dasharray=\"5 4\" stroke-linecap=\"round\""),
    );
    w.close_group();
    w.open_group("id=\"outline\"");
    w.path(
        &path_of(&art.outlines, true),
        &format!("fill=\"none\" fill-rule=\"evenodd\" stroke=\"{INK}\" stroke-width=\"3.2\" stroke-linecap=\"round\" stroke-linejoin=\"round\""),
    );
    w.close_group();
}
