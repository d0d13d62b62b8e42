//! Tracing the flat's lines from the photo's segmentation and the analysis:
//!
//! - the **outline** is the silhouette's contour (border following on a lightly smoothed
//!   mask — mirrored about the product's axis and averaged with itself for symmetric
//!   products), simplified with Ramer–Douglas–Peucker; holes big enough to matter (a handle's
//!   loop) are drawn too;
//! - **prints** are drawn as the outlines of the contrast regions the analysis called out;
//! - **interior** lines are seams the photo shows: boundaries between fabric colours (colour
//!   blocking) and long, straight Canny edges. Wrinkles are neither straight nor colour
//!   changes, so they are not drawn;
//! - **construction** lines come from the analysis: armholes between shoulder point and
//!   underarm, band seams at cuffs and hems, a zip, a placket, a pocket's opening.

use image::{GrayImage, Luma};
use imageproc::contours::{BorderType, find_contours};
use imageproc::distance_transform::Norm;
use imageproc::edges::canny;
use imageproc::filter::gaussian_blur_f32;
use imageproc::geometry::{approximate_polygon_dp, contour_area};
use imageproc::gradients::sobel_gradients;
use imageproc::morphology::erode;
use imageproc::point::Point;
use techpack_model::ProductCategory;

use super::super::analyze;
use super::super::prepared::Prepared;
use super::super::segment::Segmentation;
use super::SketchOptions;
use crate::Analysis;

/// Canny's high threshold: this percentile of the gradient inside the product.
const HIGH_PERCENTILE: f64 = 0.93;
/// Canny's low threshold as a share of the high one.
const LOW_RATIO: f32 = 0.5;
/// A seam is at least this share of the working image's long side.
const MIN_SEAM_SHARE: f64 = 0.1;
/// A seam's chord is at least this share of its length (a wrinkle meanders).
const MIN_STRAIGHTNESS: f64 = 0.95;
/// A seam's direction changes by at most this much at one vertex (degrees).
const MAX_SEAM_TURN_DEG: f64 = 50.0;
/// Most straight seams drawn.
const MAX_SEAMS: usize = 16;
/// Two fabric colours this far apart (ΔE) meet at a seam worth drawing.
const BLOCK_DELTA_E: f32 = 25.0;

/// Polylines in working or input pixels.
type Polylines = Vec<Vec<[f64; 2]>>;

/// The flat's lines, in input pixels.
#[derive(Debug, Clone, Default)]
pub(super) struct LineArt {
    /// Closed outlines: the silhouette's outer borders, then its large holes.
    pub(super) outlines: Vec<Vec<[f64; 2]>>,
    /// Closed outlines of prints.
    pub(super) prints: Vec<Vec<[f64; 2]>>,
    /// Open interior polylines: colour-block seams, straight seams.
    pub(super) interior: Vec<Vec<[f64; 2]>>,
    /// Open construction polylines from the analysis.
    pub(super) construction: Vec<Vec<[f64; 2]>>,
    /// Open topstitching polylines (drawn dashed).
    pub(super) topstitch: Vec<Vec<[f64; 2]>>,
    /// Whether the outline was mirrored into symmetry.
    pub(super) symmetric: bool,
}

/// Categories whose flats are drawn symmetric when the photo nearly is.
fn symmetric_kind(category: ProductCategory) -> bool {
    matches!(
        category,
        ProductCategory::Tops
            | ProductCategory::Outerwear
            | ProductCategory::Apparel
            | ProductCategory::Bottoms
            | ProductCategory::Bags
            | ProductCategory::Bottles
            | ProductCategory::Headwear
    )
}

/// Traces every line of the flat, in input pixels.
pub(super) fn trace_line_art(
    prep: &Prepared,
    analysis: &Analysis,
    options: &SketchOptions,
) -> LineArt {
    let seg = &prep.seg;
    let (w, h) = seg.mask.dimensions();
    if w < 3 || h < 3 {
        return LineArt::default();
    }
    let long = f64::from(w.max(h));
    let s = seg.scale;
    let to_input = |p: [f64; 2]| [(p[0] + 0.5) * s, (p[1] + 0.5) * s];
    let convert = |polys: Vec<Vec<[f64; 2]>>| -> Vec<Vec<[f64; 2]>> {
        polys
            .into_iter()
            .map(|poly| poly.into_iter().map(to_input).collect())
            .collect()
    };
    // A side view of a cap (its brim to one side) is not symmetric whatever its IoU says.
    let side_view = analysis.landmark("brim_tip").is_some();
    // Bags are symmetric only when very nearly so: their handles often lie crossed.
    let needed = if analysis.category == ProductCategory::Bags {
        0.92
    } else {
        0.8
    };
    let symmetric = options.symmetric
        && symmetric_kind(analysis.category)
        && !side_view
        && prep.shape.symmetry >= needed;
    let axis = symmetric.then_some(prep.shape.axis);
    let outlines = convert(trace_outlines(&seg.mask, long, axis));
    let prints = convert(print_outlines(prep, analysis));
    let mut interior = convert(colour_block_seams(prep, long));
    interior.extend(convert(straight_seams(seg, long, prep, analysis)));
    let (construction, topstitch) = construction_lines(prep, analysis);
    LineArt {
        outlines,
        prints,
        interior,
        construction: convert(construction),
        topstitch: convert(topstitch),
        symmetric,
    }
}

/// The silhouette's borders in working pixels, simplified, largest first.
fn trace_outlines(mask: &GrayImage, long: f64, axis: Option<f64>) -> Vec<Vec<[f64; 2]>> {
    // Blurring then re-thresholding rounds off the pixel staircase and single-pixel spurs, so
    // the simplified outline follows the garment rather than the mask's aliasing.
    let sigma = (long / 300.0).clamp(1.0, 4.0) as f32;
    let mut soft = gaussian_blur_f32(mask, sigma);
    let (w, h) = soft.dimensions();
    if let Some(a) = axis {
        // The mean of the silhouette and its mirror image: both sleeves become the average
        // sleeve, one raised arm or a fold on one side is evened out.
        let original = soft.clone();
        for (x, y, p) in soft.enumerate_pixels_mut() {
            let mx = (2.0 * a - f64::from(x)).round();
            let m = if mx >= 0.0 && mx < f64::from(w) {
                original.get_pixel(mx as u32, y).0[0]
            } else {
                0
            };
            p.0 = [((u16::from(p.0[0]) + u16::from(m)) / 2) as u8];
        }
    }
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
    let epsilon = (long * 0.0025).max(0.8);
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

/// Long straight edges inside the product (seams, a placket's edge, a pocket's opening), in
/// working pixels, strongest first; edges inside prints are the print's, not seams.
fn straight_seams(
    seg: &Segmentation,
    long: f64,
    prep: &Prepared,
    analysis: &Analysis,
) -> Vec<Vec<[f64; 2]>> {
    let gray = image::imageops::grayscale(&seg.working);
    // Keep away from the silhouette's border: the outline already draws it.
    let inset = (long / 100.0).round().clamp(2.0, 12.0) as u8;
    let inside = erode(&seg.mask, Norm::LInf, inset);
    if inside.pixels().filter(|p| p[0] > 0).count() < 64 {
        return Vec::new();
    }
    let (w, h) = gray.dimensions();
    // Only the prints the analysis calls out are kept clear of seams (their own outlines are
    // drawn): a thin contrasting line that is no print — a placket, a seam's topstitching — is
    // exactly what this looks for.
    let print_boxes = print_feature_boxes(analysis, seg.scale);
    let mut in_print = vec![false; (w * h) as usize];
    for r in prep
        .contrast()
        .regions
        .iter()
        .filter(|r| in_any_box(r.centre, &print_boxes))
    {
        let pad = 4;
        for y in r.bbox[1].saturating_sub(pad)..(r.bbox[3] + pad).min(h) {
            for x in r.bbox[0].saturating_sub(pad)..(r.bbox[2] + pad).min(w) {
                in_print[(y * w + x) as usize] = true;
            }
        }
    }
    // Thresholds follow the product's own contrast: a black tee's seams are faint, a printed
    // tote's are strong.
    let smooth = gaussian_blur_f32(&gray, 1.4);
    let grad = sobel_gradients(&smooth);
    let mut mags: Vec<u16> = grad
        .pixels()
        .zip(inside.pixels())
        .filter(|(_, m)| m[0] > 0)
        .map(|(g, _)| g[0])
        .collect();
    mags.sort_unstable();
    let pct = |q: f64| f32::from(mags[((mags.len() - 1) as f64 * q) as usize]);
    let high = pct(HIGH_PERCENTILE).clamp(40.0, 600.0);
    let low = (high * LOW_RATIO).max(20.0);
    let edges = canny(&gray, low, high);
    let mut on = vec![false; (w * h) as usize];
    for (x, y, p) in edges.enumerate_pixels() {
        let i = (y * w + x) as usize;
        if p[0] > 0 && inside.get_pixel(x, y)[0] > 0 && !in_print[i] {
            on[i] = true;
        }
    }
    let min_len = (long * MIN_SEAM_SHARE).max(10.0);
    let epsilon = (long * 0.002).max(0.8);
    let mut seams: Vec<(f64, Vec<[f64; 2]>)> = trace_chains(&on, w, h)
        .into_iter()
        .filter(|c| c.len() as f64 >= min_len)
        .flat_map(|c| {
            let strength = c
                .iter()
                .map(|&(x, y)| f64::from(grad.get_pixel(x, y)[0]))
                .sum::<f64>()
                / c.len() as f64
                / f64::from(high);
            let pts: Vec<Point<i32>> = c
                .iter()
                .map(|&(x, y)| Point::new(x as i32, y as i32))
                .collect();
            let simple: Vec<[f64; 2]> = approximate_polygon_dp(&pts, epsilon, false)
                .into_iter()
                .map(|p| [f64::from(p.x), f64::from(p.y)])
                .collect();
            // A chain may run down one side of a narrow line and back up the other, or turn
            // a corner: each straight run is judged on its own.
            split_at_turns(simple)
                .into_iter()
                .filter_map(|run| {
                    let len = polyline_length(&run);
                    let chord = dist(run[0], run[run.len() - 1]);
                    (run.len() >= 2
                        && len >= min_len
                        && chord >= len * MIN_STRAIGHTNESS
                        && strength >= 1.3)
                        .then_some((len * strength.min(3.0), run))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    seams.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| first_point_order(&a.1, &b.1))
    });
    seams.truncate(MAX_SEAMS);
    seams.into_iter().map(|(_, p)| p).collect()
}

/// Splits a simplified polyline where it turns by more than [`MAX_SEAM_TURN_DEG`]: a seam
/// bends gently, a chain doubling back or turning a corner is two lines.
fn split_at_turns(poly: Vec<[f64; 2]>) -> Vec<Vec<[f64; 2]>> {
    let max_turn = MAX_SEAM_TURN_DEG.to_radians();
    let mut runs = Vec::new();
    let mut run = vec![poly[0]];
    for i in 1..poly.len() {
        run.push(poly[i]);
        if i + 1 < poly.len() {
            let (a, b, c) = (poly[i - 1], poly[i], poly[i + 1]);
            let d1 = (b[1] - a[1]).atan2(b[0] - a[0]);
            let d2 = (c[1] - b[1]).atan2(c[0] - b[0]);
            let mut turn = (d2 - d1).abs();
            if turn > std::f64::consts::PI {
                turn = 2.0 * std::f64::consts::PI - turn;
            }
            if turn > max_turn {
                runs.push(std::mem::replace(&mut run, vec![poly[i]]));
            }
        }
    }
    runs.push(run);
    runs
}

/// The boxes of the analysis' print features, in working pixels (`scale` input px per working
/// px).
fn print_feature_boxes(analysis: &Analysis, scale: f64) -> Vec<[f64; 4]> {
    analysis
        .features
        .iter()
        .filter(|f| f.kind == "print")
        .map(|f| f.bbox.map(|v| f64::from(v) / scale))
        .collect()
}

/// Whether `p` lies in one of `boxes`.
fn in_any_box(p: [f64; 2], boxes: &[[f64; 4]]) -> bool {
    boxes
        .iter()
        .any(|b| p[0] >= b[0] && p[0] <= b[2] && p[1] >= b[1] && p[1] <= b[3])
}

/// The outlines of the prints the analysis calls out: each contrast region whose centre lies
/// in a print feature's box, its outer border and its larger inner borders, in working pixels.
fn print_outlines(prep: &Prepared, analysis: &Analysis) -> Vec<Vec<[f64; 2]>> {
    let seg = &prep.seg;
    let (w, _) = seg.mask.dimensions();
    let s = seg.scale;
    let boxes = print_feature_boxes(analysis, s);
    let mut out = Vec::new();
    for r in &prep.contrast().regions {
        if !in_any_box(r.centre, &boxes) {
            continue;
        }
        let (rw, rh) = (r.bbox[2] - r.bbox[0], r.bbox[3] - r.bbox[1]);
        let mut local = GrayImage::new(rw + 2, rh + 2);
        // The print's own shapes (its letters, its emblem), not the region they were
        // grouped into.
        let raw = &prep.contrast().raw;
        for &i in r.pixels.iter().filter(|&&i| raw[i]) {
            let (x, y) = ((i as u32) % w, (i as u32) / w);
            local.put_pixel(x - r.bbox[0] + 1, y - r.bbox[1] + 1, Luma([255]));
        }
        let soft = gaussian_blur_f32(&local, 0.8);
        let mut bin = GrayImage::new(rw + 2, rh + 2);
        for (x, y, p) in soft.enumerate_pixels() {
            if p[0] >= 128 {
                bin.put_pixel(x, y, Luma([255]));
            }
        }
        let min_hole = f64::from(rw * rh) * 0.01;
        let min_outer = f64::from(rw * rh) * 0.004;
        for c in find_contours::<i32>(&bin) {
            let area = contour_area(&c.points).abs();
            if c.points.len() < 4
                || (c.border_type == BorderType::Hole && area < min_hole)
                || (c.border_type == BorderType::Outer && area < min_outer)
            {
                continue;
            }
            let poly: Vec<[f64; 2]> = approximate_polygon_dp(&c.points, 1.0, true)
                .into_iter()
                .map(|p| {
                    [
                        f64::from(p.x) - 1.0 + f64::from(r.bbox[0]),
                        f64::from(p.y) - 1.0 + f64::from(r.bbox[1]),
                    ]
                })
                .collect();
            if poly.len() >= 3 {
                out.push(poly);
            }
        }
    }
    out
}

/// Seams between blocks of different fabric colour (a contrast sleeve, a yoke), in working
/// pixels: where neighbouring pixels belong to fabric colours at least [`BLOCK_DELTA_E`]
/// apart, traced into chains and kept when long.
fn colour_block_seams(prep: &Prepared, long: f64) -> Vec<Vec<[f64; 2]>> {
    let c = prep.contrast();
    if c.fabric.len() < 2 {
        return Vec::new();
    }
    let seg = &prep.seg;
    let (w, h) = seg.mask.dimensions();
    let inside = erode(&seg.mask, Norm::LInf, 3);
    let far = |a: u8, b: u8| -> bool {
        a != u8::MAX
            && b != u8::MAX
            && a != b
            && super::super::color::delta_e(&c.fabric[a as usize].0, &c.fabric[b as usize].0)
                >= BLOCK_DELTA_E
    };
    let mut on = vec![false; (w * h) as usize];
    for y in 0..h.saturating_sub(1) {
        for x in 0..w.saturating_sub(1) {
            let i = (y * w + x) as usize;
            if inside.as_raw()[i] == 0 {
                continue;
            }
            let f = c.fabric_of[i];
            if far(f, c.fabric_of[i + 1]) || far(f, c.fabric_of[i + w as usize]) {
                on[i] = true;
            }
        }
    }
    let min_len = (long * 0.05).max(10.0);
    trace_chains(&on, w, h)
        .into_iter()
        .filter(|ch| ch.len() as f64 >= min_len)
        .map(|ch| {
            let pts: Vec<Point<i32>> = ch
                .iter()
                .map(|&(x, y)| Point::new(x as i32, y as i32))
                .collect();
            approximate_polygon_dp(&pts, (long * 0.003).max(1.0), false)
                .into_iter()
                .map(|p| [f64::from(p.x), f64::from(p.y)])
                .collect::<Vec<_>>()
        })
        .filter(|p| p.len() >= 2 && polyline_length(p) >= min_len)
        .take(12)
        .collect()
}

/// Construction lines, in working pixels: armholes from the analysis' landmarks, and the
/// lines of the features it calls out (band seams, a zip, a pocket's opening, a placket's
/// topstitching), recomputed from the photo and matched to the analysis' features by name.
fn construction_lines(prep: &Prepared, analysis: &Analysis) -> (Polylines, Polylines) {
    let s = prep.seg.scale;
    let mut lines = Vec::new();
    let mut topstitch = Vec::new();
    for side in ["left", "right"] {
        let (Some(sp), Some(ua)) = (
            analysis.landmark(&format!("shoulder_{side}")),
            analysis.landmark(&format!("underarm_{side}")),
        ) else {
            continue;
        };
        let (a, b) = (sp.point.map(|v| v / s), ua.point.map(|v| v / s));
        // The armhole bows towards the body's centre.
        let axis = prep.shape.axis;
        let mid = [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0];
        let len = dist(a, b);
        let toward = if mid[0] < axis { 1.0 } else { -1.0 };
        let ctrl = [mid[0] + toward * len * 0.12, mid[1]];
        let curve: Vec<[f64; 2]> = (0..=10)
            .map(|k| {
                let t = f64::from(k) / 10.0;
                let u = 1.0 - t;
                [
                    u * u * a[0] + 2.0 * u * t * ctrl[0] + t * t * b[0],
                    u * u * a[1] + 2.0 * u * t * ctrl[1] + t * t * b[1],
                ]
            })
            .collect();
        lines.push(curve);
    }
    // A cap's brim is sewn to the crown's base: from the side, between the brim's base and
    // the crown's back; from the front, across between the brim's ends.
    for (from, to) in [
        ("brim_base", "crown_back"),
        ("brim_end_left", "brim_end_right"),
    ] {
        if let (Some(a), Some(b)) = (analysis.landmark(from), analysis.landmark(to)) {
            lines.push(vec![a.point.map(|v| v / s), b.point.map(|v| v / s)]);
        }
    }
    if analysis.features.is_empty() {
        return (lines, topstitch);
    }
    let derived = analyze::derive_features(
        prep,
        analysis.category,
        &analysis.view,
        analysis.measurements.scale.cm_per_px,
    );
    for f in derived {
        if analysis.feature(&f.name).is_none() {
            continue;
        }
        match f.kind {
            "placket" => {
                for line in &f.lines {
                    let half = prep.shape.bw() * 0.022;
                    let (top, bottom) = (line[0], line[line.len() - 1]);
                    topstitch.push(vec![
                        [top[0] - half, top[1]],
                        [bottom[0] - half, bottom[1]],
                        [bottom[0] + half, bottom[1]],
                        [top[0] + half, top[1]],
                    ]);
                }
            }
            "zip" => {
                for line in &f.lines {
                    let (top, bottom) = (line[0], line[line.len() - 1]);
                    let tape = prep.shape.bw() * 0.006;
                    lines.push(vec![[top[0] - tape, top[1]], [bottom[0] - tape, bottom[1]]]);
                    lines.push(vec![[top[0] + tape, top[1]], [bottom[0] + tape, bottom[1]]]);
                    // The pull, hanging from the top stop.
                    let pw = prep.shape.bw() * 0.012;
                    let ph = prep.shape.bh() * 0.035;
                    lines.push(vec![
                        [top[0] - pw, top[1]],
                        [top[0] - pw, top[1] + ph],
                        [top[0] + pw, top[1] + ph],
                        [top[0] + pw, top[1]],
                        [top[0] - pw, top[1]],
                    ]);
                }
            }
            _ => lines.extend(f.lines.iter().cloned()),
        }
    }
    (lines, topstitch)
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
