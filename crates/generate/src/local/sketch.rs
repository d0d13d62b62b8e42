//! The technical sketch: a flat drawn from the photo as vector line art.
//!
//! What is drawn, and from what:
//! - the **outline** is the silhouette's contour (imageproc's border following on a lightly
//!   smoothed mask), simplified with Ramer–Douglas–Peucker and redrawn as cubic Béziers that keep
//!   sharp corners sharp; holes big enough to matter (the loop of a bag handle) are drawn too;
//! - **interior lines** (seams, plackets, pockets, prints) are Canny edges of the working image
//!   inside the slightly eroded silhouette, traced into chains, short fragments dropped, the rest
//!   simplified the same way;
//! - **callouts**: one numbered bubble per detail region, labels stacked in the left and right
//!   margins in the order of their targets so leader lines do not cross;
//! - **dimension lines** with arrowheads and centimetre text for every point of measure; the
//!   ones that span the whole product are drawn outside it with extension lines;
//! - a **title block**: category, view, scale bar, scale basis and the generator's name.
//!
//! No photo pixel reaches the output: the SVG holds only paths, lines and text. Coordinates are
//! the input image's pixels mapped onto a fixed landscape page, and every number is printed with
//! fixed precision, so the same segmentation and analysis always give byte-identical files.

use image::{GrayImage, Luma};
use imageproc::contours::{BorderType, find_contours};
use imageproc::distance_transform::Norm;
use imageproc::edges::canny;
use imageproc::filter::gaussian_blur_f32;
use imageproc::geometry::{approximate_polygon_dp, contour_area};
use imageproc::gradients::sobel_gradients;
use imageproc::morphology::erode;
use imageproc::point::Point;
use serde_json::json;

use super::segment::Segmentation;
use super::svg::{Anchor, PathData, SvgWriter, num, render_png};
use crate::{Analysis, GenerateError, Measurement, Sketch};

/// The generator's name and drawing-style version, printed in the title block.
pub(crate) const SKETCH_GENERATOR: &str = "techpack-local/1.0";

/// Page size in SVG user units; the PNG is rendered at one pixel per unit.
pub(crate) const PAGE_WIDTH: f64 = 1600.0;
/// Page height, see [`PAGE_WIDTH`].
pub(crate) const PAGE_HEIGHT: f64 = 1200.0;

/// The box the product is fitted into when no dimension line sits outside it: the margins
/// hold dimension lines (top, bottom, left), callout labels (left and right) and the title
/// block (bottom). Each outside dimension line takes its room from this box.
const DRAW_X0: f64 = 400.0;
const DRAW_X1: f64 = 1190.0;
const DRAW_Y0: f64 = 80.0;
const DRAW_Y1: f64 = 1010.0;

/// Callout columns: bubble centres and where label text starts/ends.
const BUBBLE_LEFT_X: f64 = 300.0;
const BUBBLE_RIGHT_X: f64 = 1300.0;
const BUBBLE_R: f64 = 15.0;
const LABEL_GAP: f64 = 12.0;
/// Callout labels stay between these heights (clear of the title block).
const LABEL_Y0: f64 = 90.0;
const LABEL_Y1: f64 = 1000.0;
const LABEL_SPACING: f64 = 46.0;
const LABEL_MAX_CHARS: usize = 20;

/// Title block.
const TITLE_Y0: f64 = 1040.0;
const TITLE_Y1: f64 = PAGE_HEIGHT - 20.0;

/// Distance from the product to the first outside dimension line, and between stacked ones.
const DIM_OFFSET: f64 = 48.0;
const DIM_STACK: f64 = 44.0;

/// Canny's high threshold: this percentile of the gradient inside the product.
const HIGH_PERCENTILE: f64 = 0.93;
/// Canny's low threshold as a share of the high one.
const LOW_RATIO: f32 = 0.5;
/// Interior chains shorter than the working image's long side over this are dropped.
const MIN_LEN_DIV: f64 = 20.0;
/// Most interior ink, in multiples of the working image's long side.
const INK_BUDGET: f64 = 5.0;

const INK: &str = "#111111";
const INTERIOR_INK: &str = "#3a3a3a";
const DIM_INK: &str = "#1f4e9c";
const CALLOUT_INK: &str = "#b3261e";

/// Outlines and interior lines traced from a segmentation, in input pixels.
#[derive(Debug, Clone, Default)]
struct LineArt {
    /// Closed outlines: the silhouette's outer borders, then its large holes.
    outlines: Vec<Vec<[f64; 2]>>,
    /// Open interior polylines, longest first.
    interior: Vec<Vec<[f64; 2]>>,
}

/// Maps input pixels onto the page.
#[derive(Debug, Clone, Copy)]
struct PageTransform {
    /// Page units per input pixel.
    scale: f64,
    /// Page position of input pixel (0, 0).
    offset: [f64; 2],
}

impl PageTransform {
    /// Fits `bbox` (input px, `[x0, y0, x1, y1]`) centred into `frame` (page units).
    fn fit(bbox: [f64; 4], frame: [f64; 4]) -> Self {
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

    fn apply(&self, p: [f64; 2]) -> [f64; 2] {
        [
            self.offset[0] + p[0] * self.scale,
            self.offset[1] + p[1] * self.scale,
        ]
    }
}

/// Draws the technical sketch of a segmented photo, annotated from its analysis.
///
/// Fails with [`GenerateError::BadInput`] when the silhouette is empty (there is nothing to
/// draw), and with [`GenerateError::InvalidAnswer`] if the segmentation is inconsistent or the
/// produced SVG does not parse.
pub(crate) fn draw_sketch(
    seg: &Segmentation,
    analysis: &Analysis,
) -> Result<Sketch, GenerateError> {
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
    let art = trace_line_art(seg);
    if art.outlines.is_empty() {
        return Err(GenerateError::BadInput(
            "no product silhouette was found in the photo, so there is nothing to sketch".into(),
        ));
    }

    let bbox = drawing_bbox(&art, analysis);
    let plan = plan_dimensions(analysis, bbox);
    let tf = PageTransform::fit(bbox, drawing_box(&plan));
    let product_page = [tf.apply([bbox[0], bbox[1]]), tf.apply([bbox[2], bbox[3]])];
    let product_page = [
        product_page[0][0],
        product_page[0][1],
        product_page[1][0],
        product_page[1][1],
    ];

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

    let svg = w.finish();
    let (png, size) = render_png(&svg)?;
    let data = json!({
        "generator": SKETCH_GENERATOR,
        "page": { "width": PAGE_WIDTH, "height": PAGE_HEIGHT, "png_size": size },
        // Callout and dimension positions are page units; `from`/`to`/`target_input` are input
        // pixels, as in the analysis. page = offset + input * scale.
        "transform": { "scale": round3(tf.scale), "offset": [round3(tf.offset[0]), round3(tf.offset[1])] },
        "callouts": callouts,
        "measurements": measurements,
        "outline_points": art.outlines.iter().map(Vec::len).sum::<usize>(),
        "outline_paths": art.outlines.len(),
        "interior_paths": art.interior.len(),
    });
    Ok(Sketch { svg, png, data })
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn round1(v: f64) -> f64 {
    let r = (v * 10.0).round() / 10.0;
    if r == 0.0 { 0.0 } else { r }
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
        add([pb[0] as f64, pb[1] as f64]);
        add([pb[2] as f64, pb[3] as f64]);
    }
    let (iw, ih) = (analysis.image.width as f64, analysis.image.height as f64);
    for m in &analysis.measurements.points {
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

// ---------------------------------------------------------------------------------------------
// Tracing

/// Traces the outline and interior lines of a segmentation, in input pixels.
fn trace_line_art(seg: &Segmentation) -> LineArt {
    let (w, h) = seg.mask.dimensions();
    if w < 3 || h < 3 {
        return LineArt::default();
    }
    let long = w.max(h) as f64;
    let to_input = |p: [f64; 2]| [(p[0] + 0.5) * seg.scale, (p[1] + 0.5) * seg.scale];

    let outlines = trace_outlines(&seg.mask, long)
        .into_iter()
        .map(|poly| poly.into_iter().map(to_input).collect())
        .collect();
    let interior = trace_interior(seg, long)
        .into_iter()
        .map(|poly| poly.into_iter().map(to_input).collect())
        .collect();
    LineArt { outlines, interior }
}

/// The silhouette's borders in working pixels, simplified, largest first.
fn trace_outlines(mask: &GrayImage, long: f64) -> Vec<Vec<[f64; 2]>> {
    // Blurring then re-thresholding rounds off the pixel staircase and single-pixel spurs, so
    // the simplified outline follows the garment rather than the mask's aliasing.
    let sigma = (long / 500.0).clamp(0.8, 3.0) as f32;
    let soft = gaussian_blur_f32(mask, sigma);
    let (w, h) = soft.dimensions();
    // A frame of background guarantees closed outer borders even when the product touches the
    // image edge (or the mask is the whole frame).
    let mut framed = GrayImage::new(w + 2, h + 2);
    for (x, y, p) in soft.enumerate_pixels() {
        if p[0] >= 128 {
            framed.put_pixel(x + 1, y + 1, Luma([255]));
        }
    }
    let contours = find_contours::<i32>(&framed);
    let mut shapes: Vec<(f64, BorderType, Vec<Point<i32>>)> = contours
        .into_iter()
        .filter(|c| c.points.len() >= 3)
        .map(|c| (contour_area(&c.points).abs(), c.border_type, c.points))
        .collect();
    let largest = shapes
        .iter()
        .filter(|s| s.1 == BorderType::Outer)
        .map(|s| s.0)
        .fold(0.0, f64::max);
    if largest <= 0.0 {
        return Vec::new();
    }
    shapes.retain(|(area, kind, _)| match kind {
        BorderType::Outer => *area >= largest * 0.01,
        BorderType::Hole => *area >= largest * 0.015,
    });
    // Outer borders before holes, then by size: stable and meaningful ordering.
    shapes.sort_by(|a, b| {
        (a.1 == BorderType::Hole)
            .cmp(&(b.1 == BorderType::Hole))
            .then(b.0.total_cmp(&a.0))
            .then_with(|| (a.2[0].y, a.2[0].x).cmp(&(b.2[0].y, b.2[0].x)))
    });
    shapes.truncate(12);
    let epsilon = (long * 0.0022).max(0.8);
    shapes
        .into_iter()
        .map(|(_, _, points)| {
            approximate_polygon_dp(&points, epsilon, true)
                .into_iter()
                .map(|p| [p.x as f64 - 1.0, p.y as f64 - 1.0])
                .collect::<Vec<_>>()
        })
        .filter(|poly: &Vec<[f64; 2]>| poly.len() >= 3)
        .collect()
}

/// Interior edges (seams, pockets, prints) in working pixels, longest first.
fn trace_interior(seg: &Segmentation, long: f64) -> Vec<Vec<[f64; 2]>> {
    let gray = image::imageops::grayscale(&seg.working);
    // Keep away from the silhouette's border: the outline already draws it.
    let inset = (long / 120.0).round().clamp(2.0, 12.0) as u8;
    let inside = erode(&seg.mask, Norm::LInf, inset);
    let inside_count = inside.pixels().filter(|p| p[0] > 0).count();
    if inside_count < 64 {
        return Vec::new();
    }

    // Thresholds follow the product's own contrast: a black tee's seams are faint, a printed
    // tote's are strong. The high threshold sits at an upper percentile of the gradient inside
    // the product, so only its strongest structure starts an edge.
    let smooth = gaussian_blur_f32(&gray, 1.4);
    let grad = sobel_gradients(&smooth);
    let mut mags: Vec<u16> = grad
        .pixels()
        .zip(inside.pixels())
        .filter(|(_, m)| m[0] > 0)
        .map(|(g, _)| g[0])
        .collect();
    mags.sort_unstable();
    let pct = |q: f64| mags[((mags.len() - 1) as f64 * q) as usize] as f32;
    let high = pct(HIGH_PERCENTILE).clamp(40.0, 600.0);
    let low = (high * LOW_RATIO).max(20.0);
    let edges = canny(&gray, low, high);

    let (w, h) = edges.dimensions();
    let mut on = vec![false; (w * h) as usize];
    for (x, y, p) in edges.enumerate_pixels() {
        if p[0] > 0 && inside.get_pixel(x, y)[0] > 0 {
            on[(y * w + x) as usize] = true;
        }
    }
    let chains = trace_chains(&on, w, h);
    let min_len = (long / MIN_LEN_DIV).max(8.0) as usize;
    let epsilon = (long * 0.0018).max(0.8);
    // Each chain is ranked by its length times how strong its edge is: seams, hems and print
    // borders are long and crisp, wrinkles are short or soft.
    let mut polys: Vec<(f64, f64, Vec<[f64; 2]>)> = chains
        .into_iter()
        .filter(|c| c.len() >= min_len)
        .map(|c| {
            let strength = c
                .iter()
                .map(|&(x, y)| grad.get_pixel(x, y)[0] as f64)
                .sum::<f64>()
                / c.len() as f64
                / high as f64;
            let pts: Vec<Point<i32>> = c
                .into_iter()
                .map(|(x, y)| Point::new(x as i32, y as i32))
                .collect();
            let simple: Vec<[f64; 2]> = approximate_polygon_dp(&pts, epsilon, false)
                .into_iter()
                .map(|p| [p.x as f64, p.y as f64])
                .collect();
            let len = polyline_length(&simple);
            (len * strength.min(3.0), len, simple)
        })
        .filter(|(_, len, poly)| poly.len() >= 2 && *len >= min_len as f64 * 0.8)
        .collect();
    polys.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| first_point_order(&a.2, &b.2))
    });
    // A flat shows construction, not every wrinkle: cap the count and the total ink, which
    // keeps busy prints and fabric texture from filling the drawing.
    let budget = long * INK_BUDGET;
    let mut used = 0.0;
    let mut kept = Vec::new();
    for (_, len, poly) in polys {
        if kept.len() >= 120 || used + len > budget {
            break;
        }
        used += len;
        kept.push(poly);
    }
    kept
}

fn first_point_order(a: &[[f64; 2]], b: &[[f64; 2]]) -> std::cmp::Ordering {
    let ka = a.first().map(|p| (p[1], p[0])).unwrap_or_default();
    let kb = b.first().map(|p| (p[1], p[0])).unwrap_or_default();
    ka.0.total_cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
}

fn polyline_length(poly: &[[f64; 2]]) -> f64 {
    poly.windows(2).map(|s| dist(s[0], s[1])).sum()
}

fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// Splits a one-pixel-wide edge map into chains of 8-connected pixels. Chains start at
/// endpoints first, so an open seam becomes one chain rather than two halves; what is left
/// (closed loops) is walked from its first pixel in raster order.
fn trace_chains(on: &[bool], w: u32, h: u32) -> Vec<Vec<(u32, u32)>> {
    // Straight neighbours first, so a walk follows the line instead of cutting its corners.
    const STEPS: [(i32, i32); 8] = [
        (1, 0),
        (0, 1),
        (-1, 0),
        (0, -1),
        (1, 1),
        (-1, 1),
        (-1, -1),
        (1, -1),
    ];
    let idx = |x: u32, y: u32| (y * w + x) as usize;
    let neighbours = |x: u32, y: u32| {
        STEPS.iter().filter_map(move |(dx, dy)| {
            let nx = x as i64 + *dx as i64;
            let ny = y as i64 + *dy as i64;
            (nx >= 0 && ny >= 0 && nx < w as i64 && ny < h as i64).then_some((nx as u32, ny as u32))
        })
    };
    let mut visited = vec![false; on.len()];
    let walk = |start: (u32, u32), visited: &mut Vec<bool>| {
        let mut chain = Vec::new();
        let mut cur = start;
        loop {
            let next =
                neighbours(cur.0, cur.1).find(|&(nx, ny)| on[idx(nx, ny)] && !visited[idx(nx, ny)]);
            match next {
                Some(n) => {
                    visited[idx(n.0, n.1)] = true;
                    chain.push(n);
                    cur = n;
                }
                None => break,
            }
        }
        chain
    };
    let mut chains = Vec::new();
    for pass in 0..2 {
        for y in 0..h {
            for x in 0..w {
                let i = idx(x, y);
                if !on[i] || visited[i] {
                    continue;
                }
                let degree = neighbours(x, y).filter(|&(nx, ny)| on[idx(nx, ny)]).count();
                if pass == 0 && degree != 1 {
                    continue;
                }
                visited[i] = true;
                let forward = walk((x, y), &mut visited);
                // From a middle pixel the line also runs the other way: walk it and join.
                let mut backward = walk((x, y), &mut visited);
                backward.reverse();
                backward.push((x, y));
                backward.extend(forward);
                chains.push(backward);
            }
        }
    }
    chains
}

// ---------------------------------------------------------------------------------------------
// Drawing

/// Smooth path through `pts`: cubic Bézier segments whose tangents follow the neighbouring
/// points (a Catmull–Rom spline with tangent lengths capped by each segment, which never
/// overshoots), except at sharp turns, which stay corners.
fn smooth_path(d: &mut PathData, pts: &[[f64; 2]], closed: bool) {
    let n = pts.len();
    if n < 2 {
        return;
    }
    let get = |i: isize| -> [f64; 2] {
        if closed {
            pts[i.rem_euclid(n as isize) as usize]
        } else {
            pts[i.clamp(0, n as isize - 1) as usize]
        }
    };
    // Unit tangent at each point; zero at corners and at open ends.
    let tangent = |i: usize| -> [f64; 2] {
        if !closed && (i == 0 || i == n - 1) {
            return [0.0, 0.0];
        }
        let prev = get(i as isize - 1);
        let cur = get(i as isize);
        let next = get(i as isize + 1);
        let a = [cur[0] - prev[0], cur[1] - prev[1]];
        let b = [next[0] - cur[0], next[1] - cur[1]];
        let (la, lb) = (a[0].hypot(a[1]), b[0].hypot(b[1]));
        if la == 0.0 || lb == 0.0 {
            return [0.0, 0.0];
        }
        let cos = (a[0] * b[0] + a[1] * b[1]) / (la * lb);
        // Turning more than ~55° is a corner: a shoulder point, a cuff, a strap end.
        if cos < 0.57 {
            return [0.0, 0.0];
        }
        let t = [next[0] - prev[0], next[1] - prev[1]];
        let lt = t[0].hypot(t[1]);
        if lt == 0.0 {
            [0.0, 0.0]
        } else {
            [t[0] / lt, t[1] / lt]
        }
    };
    let tangents: Vec<[f64; 2]> = (0..n).map(tangent).collect();
    d.move_to(pts[0]);
    let segments = if closed { n } else { n - 1 };
    for i in 0..segments {
        let a = pts[i];
        let b = pts[(i + 1) % n];
        let len = dist(a, b) / 3.0;
        let ta = tangents[i];
        let tb = tangents[(i + 1) % n];
        if ta == [0.0, 0.0] && tb == [0.0, 0.0] {
            d.line_to(b);
        } else {
            d.cubic_to(
                [a[0] + ta[0] * len, a[1] + ta[1] * len],
                [b[0] - tb[0] * len, b[1] - tb[1] * len],
                b,
            );
        }
    }
    if closed {
        d.close();
    }
}

fn draw_line_art(w: &mut SvgWriter, art: &LineArt, tf: &PageTransform) {
    let mut outline = PathData::new();
    for poly in &art.outlines {
        let page: Vec<[f64; 2]> = poly.iter().map(|p| tf.apply(*p)).collect();
        smooth_path(&mut outline, &page, true);
    }
    let mut interior = PathData::new();
    for poly in &art.interior {
        let page: Vec<[f64; 2]> = poly.iter().map(|p| tf.apply(*p)).collect();
        smooth_path(&mut interior, &page, false);
    }
    // Interior first, so the outline's heavier stroke sits on top where they meet.
    w.open_group("id=\"interior\"");
    w.path(
        &interior,
        &format!("fill=\"none\" stroke=\"{INTERIOR_INK}\" stroke-width=\"1.4\" stroke-linecap=\"round\" stroke-linejoin=\"round\""),
    );
    w.close_group();
    w.open_group("id=\"outline\"");
    w.path(
        &outline,
        &format!("fill=\"none\" fill-rule=\"evenodd\" stroke=\"{INK}\" stroke-width=\"3.2\" stroke-linecap=\"round\" stroke-linejoin=\"round\""),
    );
    w.close_group();
}

/// Where a point of measure is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DimPlacement {
    /// Where it was measured.
    InPlace,
    /// Horizontal, moved above the product, `n`-th line out.
    Above(usize),
    /// Horizontal, moved below the product.
    Below(usize),
    /// Vertical, moved left of the product.
    Left(usize),
}

/// The points of measure and where each is drawn.
struct DimensionPlan<'a> {
    lines: Vec<(&'a Measurement, DimPlacement)>,
    above: usize,
    below: usize,
    left: usize,
}

/// Decides, in input pixels, which points of measure are drawn outside the product: lines
/// spanning it, or lying along its edge, would hide in the outline if drawn where measured.
fn plan_dimensions(analysis: &Analysis, bbox: [f64; 4]) -> DimensionPlan<'_> {
    let (pw, ph) = ((bbox[2] - bbox[0]).max(1.0), (bbox[3] - bbox[1]).max(1.0));
    let mut plan = DimensionPlan {
        lines: Vec::new(),
        above: 0,
        below: 0,
        left: 0,
    };
    for m in &analysis.measurements.points {
        if ![m.from[0], m.from[1], m.to[0], m.to[1]]
            .iter()
            .all(|v| v.is_finite())
        {
            continue;
        }
        let (a, b) = (m.from, m.to);
        let (dx, dy) = ((b[0] - a[0]).abs(), (b[1] - a[1]).abs());
        let horizontal = dy <= dx * 0.05;
        let vertical = dx <= dy * 0.05;
        let edge = 0.04;
        let (my, mx) = ((a[1] + b[1]) / 2.0, (a[0] + b[0]) / 2.0);
        let overall = m.name.starts_with("overall");
        let placement = if horizontal && my >= bbox[3] - ph * edge && !overall {
            plan.below += 1;
            DimPlacement::Below(plan.below - 1)
        } else if horizontal && (overall || dx >= pw * 0.97 || my <= bbox[1] + ph * edge) {
            plan.above += 1;
            DimPlacement::Above(plan.above - 1)
        } else if vertical && (overall || dy >= ph * 0.97 || mx <= bbox[0] + pw * edge) {
            plan.left += 1;
            DimPlacement::Left(plan.left - 1)
        } else {
            DimPlacement::InPlace
        };
        plan.lines.push((m, placement));
    }
    plan
}

/// The drawing box left once the outside dimension lines have their room.
fn drawing_box(plan: &DimensionPlan<'_>) -> [f64; 4] {
    let room = |n: usize| {
        if n == 0 {
            0.0
        } else {
            DIM_OFFSET + DIM_STACK * (n - 1) as f64
        }
    };
    [
        DRAW_X0 + room(plan.left),
        DRAW_Y0 + room(plan.above) + if plan.above > 0 { 14.0 } else { 0.0 },
        DRAW_X1,
        DRAW_Y1 - room(plan.below) - if plan.below > 0 { 14.0 } else { 0.0 },
    ]
}

/// Draws every planned point of measure as a dimension line; returns their data records.
fn draw_measurements(
    w: &mut SvgWriter,
    seg: &Segmentation,
    plan: &DimensionPlan<'_>,
    tf: &PageTransform,
    product: [f64; 4],
) -> Vec<serde_json::Value> {
    let mut records = Vec::new();
    w.open_group(&format!(
        "id=\"dimensions\" fill=\"{DIM_INK}\" stroke=\"{DIM_INK}\""
    ));
    for &(m, placement) in &plan.lines {
        let a = tf.apply(m.from);
        let b = tf.apply(m.to);
        let (la, lb) = match placement {
            DimPlacement::Above(n) => {
                let y = product[1] - DIM_OFFSET - DIM_STACK * n as f64;
                ([a[0], y], [b[0], y])
            }
            DimPlacement::Below(n) => {
                let y = product[3] + DIM_OFFSET + DIM_STACK * n as f64;
                ([a[0], y], [b[0], y])
            }
            DimPlacement::Left(n) => {
                let x = product[0] - DIM_OFFSET - DIM_STACK * n as f64;
                ([x, a[1]], [x, b[1]])
            }
            DimPlacement::InPlace => (a, b),
        };
        if placement != DimPlacement::InPlace {
            // Extension lines start at the silhouette nearest the dimension line (a drafting
            // rule: they leave the part's edge), not at the measured point, which may lie
            // deep inside the drawing.
            for (input, p, q) in [(m.from, a, la), (m.to, b, lb)] {
                let start = silhouette_edge(seg, input, placement)
                    .map(|e| tf.apply(e))
                    .unwrap_or(p);
                let (ex, ey) = (q[0] - start[0], q[1] - start[1]);
                let len = ex.hypot(ey);
                if len > 8.0 {
                    let (ux, uy) = (ex / len, ey / len);
                    w.line(
                        [start[0] + ux * 6.0, start[1] + uy * 6.0],
                        [q[0] + ux * 8.0, q[1] + uy * 8.0],
                        "stroke-width=\"0.9\"",
                    );
                }
            }
        }
        let text = format!("{} {} cm", m.name.replace('_', " "), format_cm(m.cm));
        draw_dimension(w, la, lb, &text, placement == DimPlacement::InPlace);
        records.push(measurement_record(m, la, lb));
    }
    w.close_group();
    records
}

/// The silhouette's outermost point towards an outside dimension line, on the column (or row)
/// of `p` (input pixels); `None` when that column has no product.
fn silhouette_edge(seg: &Segmentation, p: [f64; 2], placement: DimPlacement) -> Option<[f64; 2]> {
    let (w, h) = seg.mask.dimensions();
    if w == 0 || h == 0 {
        return None;
    }
    let cell = |v: f64, max: u32| ((v / seg.scale).floor().max(0.0) as u32).min(max - 1);
    let on = |x: u32, y: u32| seg.mask.get_pixel(x, y)[0] > 0;
    // A few pixels of slack: a measured end sits on the border, which rounding can miss.
    let band = |c: u32, max: u32| c.saturating_sub(2)..=(c + 2).min(max - 1);
    let to_input = |v: u32| (v as f64 + 0.5) * seg.scale;
    match placement {
        DimPlacement::Above(_) | DimPlacement::Below(_) => {
            let cols = band(cell(p[0], w), w);
            let mut rows = (0..h).filter(|&y| cols.clone().any(|x| on(x, y)));
            let y = if matches!(placement, DimPlacement::Above(_)) {
                rows.next()
            } else {
                rows.next_back()
            }?;
            Some([p[0], to_input(y)])
        }
        DimPlacement::Left(_) => {
            let rows = band(cell(p[1], h), h);
            let x = (0..w).find(|&x| rows.clone().any(|y| on(x, y)))?;
            Some([to_input(x), p[1]])
        }
        DimPlacement::InPlace => None,
    }
}

fn format_cm(cm: f64) -> String {
    if cm.is_finite() {
        format!("{cm:.1}")
    } else {
        "?".into()
    }
}

fn measurement_record(m: &Measurement, a: [f64; 2], b: [f64; 2]) -> serde_json::Value {
    json!({
        "name": m.name,
        "cm": round1(m.cm),
        "px": round1(m.px),
        "from": [round1(m.from[0]), round1(m.from[1])],
        "to": [round1(m.to[0]), round1(m.to[1])],
        "line": [[round1(a[0]), round1(a[1])], [round1(b[0]), round1(b[1])]],
    })
}

/// A dimension line from `a` to `b` with arrowheads at both ends and its text alongside.
fn draw_dimension(w: &mut SvgWriter, a: [f64; 2], b: [f64; 2], text: &str, in_place: bool) {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len = dx.hypot(dy);
    if len < 1.0 {
        return;
    }
    let (ux, uy) = (dx / len, dy / len);
    w.line(
        a,
        b,
        &format!("stroke-width=\"{}\"", if in_place { "1.6" } else { "1.3" }),
    );
    let head = 14.0_f64.min(len / 3.0);
    let half = head * 0.32;
    let mut arrows = PathData::new();
    for (tip, dir) in [(a, [-ux, -uy]), (b, [ux, uy])] {
        // The arrow points outward along the line, its tip on the end point.
        let base = [tip[0] - dir[0] * head, tip[1] - dir[1] * head];
        arrows.move_to(tip);
        arrows.line_to([base[0] - dir[1] * half, base[1] + dir[0] * half]);
        arrows.line_to([base[0] + dir[1] * half, base[1] - dir[0] * half]);
        arrows.close();
    }
    w.path(&arrows, "stroke=\"none\"");
    // Text reads left to right or bottom to top, set just off the line's middle.
    let mut angle = uy.atan2(ux).to_degrees();
    if angle > 90.0 {
        angle -= 180.0;
    } else if angle <= -90.0 {
        angle += 180.0;
    }
    let rad = angle.to_radians();
    let normal = [rad.sin(), -rad.cos()];
    let mid = [
        (a[0] + b[0]) / 2.0 + normal[0] * 9.0,
        (a[1] + b[1]) / 2.0 + normal[1] * 9.0,
    ];
    w.text(
        mid,
        17.0,
        Anchor::Middle,
        angle,
        "stroke=\"#ffffff\" stroke-width=\"5\" stroke-linejoin=\"round\" paint-order=\"stroke\"",
        text,
    );
}

/// One callout before layout.
struct CalloutPlan {
    number: usize,
    label: String,
    target_input: [f64; 2],
    target: [f64; 2],
    region: [u32; 4],
    left: bool,
}

/// Draws a numbered callout per detail region; returns their data records.
fn draw_callouts(
    w: &mut SvgWriter,
    seg: &Segmentation,
    analysis: &Analysis,
    tf: &PageTransform,
    product: [f64; 4],
) -> Vec<serde_json::Value> {
    let centre_x = (product[0] + product[2]) / 2.0;
    let mut plans: Vec<CalloutPlan> = Vec::new();
    let (mut n_left, mut n_right) = (0usize, 0usize);
    for (i, region) in analysis.detail_regions.iter().enumerate() {
        let target_input = callout_target(seg, region.bbox);
        let target = tf.apply(target_input);
        let off_centre = (target[0] - centre_x).abs() > (product[2] - product[0]) * 0.06;
        // A target near the middle (collar, logo) goes to whichever side has fewer labels.
        let left = if off_centre {
            target[0] < centre_x
        } else {
            n_left <= n_right
        };
        if left {
            n_left += 1;
        } else {
            n_right += 1;
        }
        plans.push(CalloutPlan {
            number: i + 1,
            label: region.name.clone(),
            target_input,
            target,
            region: region.bbox,
            left,
        });
    }

    let mut anchors = vec![[0.0, 0.0]; plans.len()];
    for side_left in [true, false] {
        let mut side: Vec<usize> = (0..plans.len())
            .filter(|&i| plans[i].left == side_left)
            .collect();
        side.sort_by(|&a, &b| {
            plans[a].target[1]
                .total_cmp(&plans[b].target[1])
                .then(a.cmp(&b))
        });
        let wanted: Vec<f64> = side.iter().map(|&i| plans[i].target[1]).collect();
        let ys = spread(&wanted, LABEL_SPACING, LABEL_Y0, LABEL_Y1);
        for (&i, y) in side.iter().zip(ys) {
            anchors[i] = [
                if side_left {
                    BUBBLE_LEFT_X
                } else {
                    BUBBLE_RIGHT_X
                },
                y,
            ];
        }
    }

    // Sorting by target height leaves crossings where targets share a height at different
    // depths: swapping the two labels removes that crossing. Bounded, in case swaps cycle.
    for _ in 0..plans.len() * plans.len() {
        let mut swapped = false;
        for i in 0..plans.len() {
            for j in i + 1..plans.len() {
                if plans[i].left == plans[j].left
                    && (segments_cross(anchors[i], plans[i].target, anchors[j], plans[j].target)
                        || grazes(anchors[i], plans[i].target, plans[j].target)
                        || grazes(anchors[j], plans[j].target, plans[i].target))
                {
                    let y = anchors[i][1];
                    anchors[i][1] = anchors[j][1];
                    anchors[j][1] = y;
                    swapped = true;
                }
            }
        }
        if !swapped {
            break;
        }
    }

    let mut records = Vec::new();
    w.open_group(&format!(
        "id=\"callouts\" stroke=\"{CALLOUT_INK}\" fill=\"{CALLOUT_INK}\""
    ));
    for (plan, anchor) in plans.iter().zip(&anchors) {
        let (dx, dy) = (plan.target[0] - anchor[0], plan.target[1] - anchor[1]);
        let len = dx.hypot(dy);
        if len > BUBBLE_R {
            let start = [
                anchor[0] + dx / len * BUBBLE_R,
                anchor[1] + dy / len * BUBBLE_R,
            ];
            w.line(start, plan.target, "stroke-width=\"1.3\"");
        }
        w.circle(plan.target, 4.0, "stroke=\"#ffffff\" stroke-width=\"1.5\"");
        w.circle(*anchor, BUBBLE_R, "fill=\"#ffffff\" stroke-width=\"2\"");
        w.text(
            [anchor[0], anchor[1] + 6.0],
            17.0,
            Anchor::Middle,
            0.0,
            "stroke=\"none\" font-weight=\"bold\"",
            &plan.number.to_string(),
        );
        let label = shorten(&plan.label, LABEL_MAX_CHARS);
        let (tx, anchor_kind) = if plan.left {
            (anchor[0] - BUBBLE_R - LABEL_GAP, Anchor::End)
        } else {
            (anchor[0] + BUBBLE_R + LABEL_GAP, Anchor::Start)
        };
        w.text(
            [tx, anchor[1] + 7.0],
            20.0,
            anchor_kind,
            0.0,
            &format!("stroke=\"none\" fill=\"{INK}\""),
            &label,
        );
        records.push(json!({
            "number": plan.number,
            "label": plan.label,
            "target": [round1(plan.target[0]), round1(plan.target[1])],
            "anchor": [round1(anchor[0]), round1(anchor[1])],
            "target_input": [round1(plan.target_input[0]), round1(plan.target_input[1])],
            "region": plan.region,
            "side": if plan.left { "left" } else { "right" },
        }));
    }
    w.close_group();
    records
}

/// Whether the leader `from–to` passes within a few units of another callout's target dot,
/// which would read as pointing there; only when the dot lies between the leader's ends.
fn grazes(from: [f64; 2], to: [f64; 2], dot: [f64; 2]) -> bool {
    let (dx, dy) = (to[0] - from[0], to[1] - from[1]);
    let len2 = dx * dx + dy * dy;
    if len2 == 0.0 {
        return false;
    }
    let t = ((dot[0] - from[0]) * dx + (dot[1] - from[1]) * dy) / len2;
    if !(0.02..0.98).contains(&t) {
        return false;
    }
    let closest = [from[0] + dx * t, from[1] + dy * t];
    dist(closest, dot) < 7.0
}

/// Whether segments `a1–a2` and `b1–b2` cross at a point inside both.
fn segments_cross(a1: [f64; 2], a2: [f64; 2], b1: [f64; 2], b2: [f64; 2]) -> bool {
    let orient = |p: [f64; 2], q: [f64; 2], r: [f64; 2]| {
        (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])
    };
    let (d1, d2) = (orient(b1, b2, a1), orient(b1, b2, a2));
    let (d3, d4) = (orient(a1, a2, b1), orient(a1, a2, b2));
    d1 * d2 < 0.0 && d3 * d4 < 0.0
}

/// Where a leader line points: the region's centre if it is on the product, else the product
/// pixel inside the region nearest that centre (a cap's brim region is mostly background).
fn callout_target(seg: &Segmentation, bbox: [u32; 4]) -> [f64; 2] {
    let centre = [
        (bbox[0] as f64 + bbox[2] as f64) / 2.0,
        (bbox[1] as f64 + bbox[3] as f64) / 2.0,
    ];
    let (mw, mh) = seg.mask.dimensions();
    if mw == 0 || mh == 0 {
        return centre;
    }
    let to_work = |v: f64, max: u32| ((v / seg.scale).floor().max(0.0) as u32).min(max - 1);
    let (cx, cy) = (to_work(centre[0], mw), to_work(centre[1], mh));
    if seg.mask.get_pixel(cx, cy)[0] > 0 {
        return centre;
    }
    let (x0, y0) = (to_work(bbox[0] as f64, mw), to_work(bbox[1] as f64, mh));
    let (x1, y1) = (to_work(bbox[2] as f64, mw), to_work(bbox[3] as f64, mh));
    let mut best: Option<(u64, u32, u32)> = None;
    for y in y0..=y1 {
        for x in x0..=x1 {
            if seg.mask.get_pixel(x, y)[0] == 0 {
                continue;
            }
            let d = (x as i64 - cx as i64).pow(2) as u64 + (y as i64 - cy as i64).pow(2) as u64;
            if best.is_none_or(|b| d < b.0) {
                best = Some((d, x, y));
            }
        }
    }
    match best {
        Some((_, x, y)) => [(x as f64 + 0.5) * seg.scale, (y as f64 + 0.5) * seg.scale],
        None => centre,
    }
}

/// Places labels as close to their wanted heights as possible, at least `gap` apart and
/// inside `[lo, hi]`; `wanted` is sorted ascending and the order is kept.
fn spread(wanted: &[f64], gap: f64, lo: f64, hi: f64) -> Vec<f64> {
    let n = wanted.len();
    if n == 0 {
        return Vec::new();
    }
    if (n - 1) as f64 * gap > hi - lo {
        // More labels than fit at full spacing: share the column evenly.
        let step = (hi - lo) / (n.max(2) - 1) as f64;
        return (0..n).map(|i| lo + step * i as f64).collect();
    }
    let mut ys: Vec<f64> = wanted.iter().map(|y| y.clamp(lo, hi)).collect();
    for i in 1..n {
        ys[i] = ys[i].max(ys[i - 1] + gap);
    }
    if ys[n - 1] > hi {
        ys[n - 1] = hi;
        for i in (0..n - 1).rev() {
            ys[i] = ys[i].min(ys[i + 1] - gap);
        }
    }
    ys
}

fn shorten(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_owned()
    } else {
        let mut s: String = label.chars().take(max - 1).collect();
        s.push('…');
        s
    }
}

/// The title block: what, which view, at what scale, by what.
fn draw_title_block(w: &mut SvgWriter, analysis: &Analysis, tf: &PageTransform) {
    let (x0, x1) = (20.0, PAGE_WIDTH - 20.0);
    let (y0, y1) = (TITLE_Y0, TITLE_Y1);
    w.open_group(&format!("id=\"title-block\" fill=\"{INK}\""));
    w.rect(
        x0,
        y0,
        x1 - x0,
        y1 - y0,
        &format!("fill=\"none\" stroke=\"{INK}\" stroke-width=\"1.5\""),
    );
    // Column edges: title | category | view | scale | basis | generator.
    let cols = [x0, 400.0, 600.0, 770.0, 1020.0, 1310.0, x1];
    for x in &cols[1..cols.len() - 1] {
        w.line(
            [*x, y0],
            [*x, y1],
            &format!("stroke=\"{INK}\" stroke-width=\"1\""),
        );
    }
    let caption = |w: &mut SvgWriter, col: usize, text: &str| {
        w.text(
            [cols[col] + 14.0, y0 + 30.0],
            14.0,
            Anchor::Start,
            0.0,
            "fill=\"#666666\"",
            text,
        );
    };
    let value = |w: &mut SvgWriter, col: usize, text: &str| {
        w.text(
            [cols[col] + 14.0, y0 + 74.0],
            22.0,
            Anchor::Start,
            0.0,
            "",
            text,
        );
    };
    w.text(
        [x0 + 20.0, y0 + 58.0],
        30.0,
        Anchor::Start,
        0.0,
        "font-weight=\"bold\"",
        "TECHNICAL FLAT",
    );
    w.text(
        [x0 + 20.0, y0 + 96.0],
        16.0,
        Anchor::Start,
        0.0,
        "fill=\"#666666\"",
        &format!(
            "{} callouts · {} points of measure",
            analysis.detail_regions.len(),
            analysis.measurements.points.len()
        ),
    );
    caption(w, 1, "CATEGORY");
    value(w, 1, &analysis.category.to_string());
    caption(w, 2, "VIEW");
    value(w, 2, &shorten(&analysis.view, 14));
    caption(w, 3, "SCALE");
    let cm_per_px = analysis.measurements.scale.cm_per_px;
    let units_per_cm = if cm_per_px.is_finite() && cm_per_px > 0.0 {
        tf.scale / cm_per_px
    } else {
        0.0
    };
    if units_per_cm > 0.0 {
        // A scale bar of a round length between ~60 and ~220 page units.
        let step = [1.0, 2.0, 5.0, 10.0, 20.0, 25.0, 50.0, 100.0, 200.0, 500.0]
            .into_iter()
            .find(|cm| cm * units_per_cm >= 60.0)
            .unwrap_or(500.0);
        let bar = (step * units_per_cm).min(240.0);
        let (bx, by) = (cols[3] + 14.0, y0 + 70.0);
        w.rect(bx, by, bar / 2.0, 10.0, &format!("fill=\"{INK}\""));
        w.rect(
            bx + bar / 2.0,
            by,
            bar / 2.0,
            10.0,
            &format!("fill=\"#ffffff\" stroke=\"{INK}\" stroke-width=\"1.2\""),
        );
        w.text([bx, by + 34.0], 15.0, Anchor::Start, 0.0, "", "0");
        w.text(
            [bx + bar, by + 34.0],
            15.0,
            Anchor::Middle,
            0.0,
            "",
            &format!("{} cm", num(step)),
        );
    } else {
        value(w, 3, "not to scale");
    }
    caption(w, 4, "MEASUREMENT BASIS");
    // "height=70cm (default for apparel)": the rule on the value line, its origin below.
    let basis = analysis.measurements.scale.basis.as_str();
    let (rule, origin) = match basis.split_once(" (") {
        Some((rule, rest)) => (rule, rest.trim_end_matches(')').to_owned()),
        None => (
            basis,
            serde_json::to_value(analysis.measurements.scale.source)
                .ok()
                .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
                .unwrap_or_default(),
        ),
    };
    value(w, 4, &shorten(rule, 20));
    w.text(
        [cols[4] + 14.0, y0 + 104.0],
        14.0,
        Anchor::Start,
        0.0,
        "fill=\"#666666\"",
        &shorten(&origin, 34),
    );
    caption(w, 5, "DRAWN BY");
    value(w, 5, SKETCH_GENERATOR);
    w.close_group();
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use image::{Rgb, RgbImage};
    use techpack_model::ProductCategory;

    use super::*;
    use crate::local::segment::{decode_and_segment, mask_bbox};
    use crate::{
        ANALYSIS_SCHEMA_VERSION, Confidence, DetailRegion, ImageInfo, MeasurementScale,
        Measurements, ProductRegion, ScaleSource,
    };

    fn encode_png(img: &RgbImage) -> Vec<u8> {
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    /// A t-shirt-like shape (body plus sleeves) in navy on white, 600 × 500.
    fn synthetic_tee() -> RgbImage {
        let mut img = RgbImage::from_pixel(600, 500, Rgb([255, 255, 255]));
        for (x, y, p) in img.enumerate_pixels_mut() {
            let body = (180..420).contains(&x) && (80..460).contains(&y);
            let sleeves = (90..510).contains(&x) && (80..200).contains(&y);
            if body || sleeves {
                *p = Rgb([20, 30, 80]);
            }
            // A pocket seam: a lighter line.
            if (240..300).contains(&x) && y == 240 || (240..300).contains(&y) && x == 240 {
                *p = Rgb([200, 200, 220]);
            }
        }
        img
    }

    /// Row extent of the mask's run through `cx` at row `y` (working px).
    fn run_at(mask: &GrayImage, cx: u32, y: u32) -> (u32, u32) {
        let (w, _) = mask.dimensions();
        let on = |x: u32| mask.get_pixel(x, y)[0] > 0;
        let (mut a, mut b) = (cx, cx);
        while a > 0 && on(a - 1) {
            a -= 1;
        }
        while b + 1 < w && on(b + 1) {
            b += 1;
        }
        (a, b + 1)
    }

    /// An analysis like the local analyser's, derived from the mask alone: overall size,
    /// chest, body length and hem, and five detail regions.
    fn fixture_analysis(seg: &Segmentation, category: ProductCategory) -> Analysis {
        let s = seg.scale;
        let [x0, y0, x1, y1] = mask_bbox(&seg.mask).unwrap_or([0, 0, 1, 1]);
        let to_in = |v: u32| v as f64 * s;
        let cx = (x0 + x1) / 2;
        let cm_per_px = 70.0 / to_in(y1 - y0);
        let m = |name: &str, from: [f64; 2], to: [f64; 2]| {
            let px = ((to[0] - from[0]).powi(2) + (to[1] - from[1]).powi(2)).sqrt();
            Measurement {
                name: name.into(),
                px,
                cm: px * cm_per_px,
                from,
                to,
            }
        };
        let ymid = to_in(y0 + (y1 - y0) / 2);
        let chest_y = y0 + (y1 - y0) * 2 / 5;
        let (ca, cb) = run_at(&seg.mask, cx, chest_y);
        let hem_y = y1 - 1 - (y1 - y0) / 40;
        let (ha, hb) = run_at(&seg.mask, cx, hem_y);
        let points = vec![
            m("overall_width", [to_in(x0), ymid], [to_in(x1), ymid]),
            m(
                "overall_height",
                [to_in(cx), to_in(y0)],
                [to_in(cx), to_in(y1)],
            ),
            m(
                "chest_width",
                [to_in(ca), to_in(chest_y)],
                [to_in(cb), to_in(chest_y)],
            ),
            m(
                "hem_width",
                [to_in(ha), to_in(hem_y)],
                [to_in(hb), to_in(hem_y)],
            ),
        ];
        let bw = (x1 - x0) / 6;
        let bh = (y1 - y0) / 6;
        let region = |name: &str, x: u32, y: u32, score: f64| DetailRegion {
            name: name.into(),
            bbox: [
                (to_in(x.saturating_sub(bw / 2))) as u32,
                (to_in(y.saturating_sub(bh / 2))) as u32,
                (to_in(x + bw / 2)) as u32,
                (to_in(y + bh / 2)) as u32,
            ],
            score,
        };
        let detail_regions = vec![
            region("collar", cx, y0 + bh / 2, 0.9),
            region("logo/print", cx, y0 + (y1 - y0) * 2 / 5, 0.8),
            region("left cuff", x0 + bw / 2, y0 + bh, 0.7),
            region("right cuff", x1 - bw / 2, y0 + bh, 0.6),
            region("hem", cx, y1 - bh / 2, 0.5),
        ];
        let (iw, ih) = seg.input_size;
        Analysis {
            schema_version: ANALYSIS_SCHEMA_VERSION,
            image: ImageInfo {
                width: iw,
                height: ih,
            },
            view: "front".into(),
            category,
            product: ProductRegion {
                bbox: [
                    to_in(x0) as u32,
                    to_in(y0) as u32,
                    to_in(x1) as u32,
                    to_in(y1) as u32,
                ],
                area_share: 0.3,
                aspect_ratio: (x1 - x0) as f64 / (y1 - y0).max(1) as f64,
                symmetry: 0.9,
            },
            colors: Vec::new(),
            materials: Vec::new(),
            measurements: Measurements {
                scale: MeasurementScale {
                    cm_per_px,
                    source: ScaleSource::CategoryDefault,
                    basis: "height=70cm".into(),
                },
                points,
            },
            detail_regions,
            description: None,
            confidence: Confidence {
                score: 0.8,
                reasons: Vec::new(),
            },
        }
    }

    fn sketch_of(bytes: &[u8], category: ProductCategory) -> (Segmentation, Analysis, Sketch) {
        let seg = decode_and_segment(bytes).unwrap();
        let analysis = fixture_analysis(&seg, category);
        let sketch = draw_sketch(&seg, &analysis).unwrap();
        (seg, analysis, sketch)
    }

    #[test]
    fn synthetic_tee_gives_a_valid_annotated_flat() {
        let (_, analysis, sketch) =
            sketch_of(&encode_png(&synthetic_tee()), ProductCategory::Apparel);
        usvg::Tree::from_str(&sketch.svg, &usvg::Options::default()).expect("valid SVG");
        assert!(
            !sketch.svg.contains("<image"),
            "no photo pixels in the sketch"
        );
        let png = image::load_from_memory(&sketch.png).unwrap();
        assert_eq!(
            (png.width(), png.height()),
            (PAGE_WIDTH as u32, PAGE_HEIGHT as u32)
        );

        let callouts = sketch.data["callouts"].as_array().unwrap();
        assert_eq!(callouts.len(), analysis.detail_regions.len());
        for (i, (c, region)) in callouts.iter().zip(&analysis.detail_regions).enumerate() {
            assert_eq!(c["number"], i + 1);
            assert_eq!(c["label"], region.name.as_str());
            assert!(sketch.svg.contains(&format!(">{}</text>", i + 1)));
            assert!(
                sketch
                    .svg
                    .contains(&format!(">{}</text>", escape_text(&region.name)))
            );
        }
        let measurements = sketch.data["measurements"].as_array().unwrap();
        assert_eq!(measurements.len(), analysis.measurements.points.len());
        for m in &analysis.measurements.points {
            let text = format!("{} {:.1} cm", m.name.replace('_', " "), m.cm);
            assert!(
                sketch.svg.contains(&text),
                "dimension text {text:?} missing"
            );
        }
        assert!(sketch.data["outline_points"].as_u64().unwrap() >= 8);
        // The seam lines inside the body are traced.
        assert!(sketch.data["interior_paths"].as_u64().unwrap() >= 1);
        assert!(sketch.svg.contains("techpack-local/1.0"));
    }

    fn escape_text(s: &str) -> String {
        super::super::svg::escape(s)
    }

    #[test]
    fn same_input_gives_identical_bytes() {
        let bytes = encode_png(&synthetic_tee());
        let (_, _, a) = sketch_of(&bytes, ProductCategory::Apparel);
        let (_, _, b) = sketch_of(&bytes, ProductCategory::Apparel);
        assert_eq!(a.svg, b.svg);
        assert_eq!(a.png, b.png);
        assert_eq!(a.data, b.data);
    }

    #[test]
    fn an_empty_mask_is_a_clear_error_and_a_full_mask_a_valid_sketch() {
        let mut seg = decode_and_segment(&encode_png(&synthetic_tee())).unwrap();
        let analysis = fixture_analysis(&seg, ProductCategory::Apparel);
        let (w, h) = seg.mask.dimensions();

        seg.mask = GrayImage::new(w, h);
        let err = draw_sketch(&seg, &analysis).unwrap_err();
        assert!(
            matches!(err, GenerateError::BadInput(ref m) if m.contains("nothing to sketch")),
            "{err}"
        );

        seg.mask = GrayImage::from_pixel(w, h, Luma([255]));
        let sketch = draw_sketch(&seg, &analysis).unwrap();
        usvg::Tree::from_str(&sketch.svg, &usvg::Options::default()).unwrap();
        assert_eq!(sketch.data["outline_paths"], 1);

        seg.mask = GrayImage::new(w + 1, h);
        assert!(matches!(
            draw_sketch(&seg, &analysis),
            Err(GenerateError::InvalidAnswer(_))
        ));
    }

    #[test]
    fn labels_are_spread_apart_in_order_and_inside_the_column() {
        let ys = spread(&[100.0, 101.0, 102.0, 990.0, 995.0], 46.0, 90.0, 1000.0);
        assert!(ys.windows(2).all(|p| p[1] - p[0] >= 46.0 - 1e-9));
        assert!(ys.iter().all(|y| (90.0..=1000.0).contains(y)));
        let crowded = spread(&[500.0; 40], 46.0, 90.0, 1000.0);
        assert_eq!(crowded.len(), 40);
        assert!(crowded.windows(2).all(|p| p[1] > p[0]));
    }

    #[test]
    fn crossing_and_grazing_leaders_are_detected() {
        assert!(segments_cross(
            [0.0, 0.0],
            [10.0, 10.0],
            [0.0, 10.0],
            [10.0, 0.0]
        ));
        assert!(!segments_cross(
            [0.0, 0.0],
            [10.0, 0.0],
            [0.0, 5.0],
            [10.0, 5.0]
        ));
        // A leader running straight through another callout's dot, and one passing clear.
        assert!(grazes([100.0, 50.0], [0.0, 50.0], [40.0, 52.0]));
        assert!(!grazes([100.0, 50.0], [0.0, 50.0], [40.0, 70.0]));
        assert!(!grazes([100.0, 50.0], [0.0, 50.0], [-20.0, 50.0]));
    }

    #[test]
    fn chains_follow_lines_end_to_end() {
        // An L-shaped line of 20 + 10 pixels and a separate dot.
        let (w, h) = (30u32, 30u32);
        let mut on = vec![false; (w * h) as usize];
        for x in 5..25 {
            on[(10 * w + x) as usize] = true;
        }
        for y in 11..21 {
            on[(y * w + 24) as usize] = true;
        }
        on[(25 * w + 2) as usize] = true;
        let chains = trace_chains(&on, w, h);
        assert_eq!(chains.len(), 2);
        assert_eq!(chains[0].len(), 30);
        assert_eq!(chains[1].len(), 1);
    }
}
