//! Which kind of product a photo shows, from the silhouette's shape and layout alone.
//!
//! A handful of measurements that any photo of the product gives, whatever its colour or
//! size — how wide the top is against the bottom, whether the silhouette has a neckline dip
//! or a hood, concavities under sleeves, legs split from below, loops above a body, a handle
//! on one side, a neck above a body, a dome over a brim, a flat sole — each scored on a soft
//! ramp and combined per category into a score in 0..1. The best score wins; the confidence
//! says how far ahead of the runner-up it is. Every measurement that counted is recorded with
//! a sentence, so a wrong call can be understood.
//!
//! Front-opening tops (a zip or buttons down the whole centre front) are outerwear; the line
//! is looked for in the photo along the mirror axis.

use techpack_model::ProductCategory;

use super::segment::Segmentation;
use super::shape::Shape;
use crate::{CategoryDetection, CategoryFeature, CategoryScore, CategorySource};

/// The measurements categories are told apart by (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ShapeFeatures {
    /// Box width / height.
    pub aspect: f64,
    /// Mirror IoU about the best axis.
    pub symmetry: f64,
    /// Product share of the box.
    pub fill: f64,
    /// Product share of the convex hull.
    pub solidity: f64,
    /// Widest span in the top 45 % over the median span of the bottom 30 %.
    pub shoulder_ratio: f64,
    /// Depth of the centre's dip below the shoulders, share of the box height.
    pub neck_dip: f64,
    /// 0..1: a narrow bump over much wider shoulders at the top centre.
    pub hood: f64,
    /// Depth of concavities under sleeves on both sides, share of the box width (the
    /// shallower of the two sides).
    pub underarms: f64,
    /// Height of a split rising from the bottom at the centre, share of the box height.
    pub leg_split: f64,
    /// Share of the box width where the top edge is within 4 % of the box's top.
    pub top_flat: f64,
    /// Share of the box width where the bottom edge is within 4 % of the box's bottom.
    pub bottom_flat: f64,
    /// Narrowest span in the top 35 % over the widest span.
    pub neck_ratio: f64,
    /// Share of the box that enclosed loops in the top half cover.
    pub top_loops: f64,
    /// Mean row fill of the top quarter over that of the lower half (thin straps over a
    /// body are low).
    pub top_thinness: f64,
    /// Outward bulge of one side beyond the line through its top and bottom corners, share
    /// of the box width, when the other side has none.
    pub one_sided_bulge: f64,
    /// Whether a side holds an enclosed loop (a mug's handle).
    pub side_loop: bool,
    /// 0..1: the top edge is a dome (falls away on both sides of the axis like an arc).
    pub dome: f64,
    /// Height of the taller end over the shorter end (a shoe's heel over its toe).
    pub end_ratio: f64,
    /// Separate components of similar size.
    pub components: usize,
    /// Share of the neckline-to-hem length a straight line along the axis covers (a zip).
    pub front_line: f64,
}

/// Soft ramp: 0 at `a`, 1 at `b` (either order).
pub(crate) fn ramp(x: f64, a: f64, b: f64) -> f64 {
    if (b - a).abs() < f64::EPSILON {
        return f64::from(u8::from(x >= b));
    }
    ((x - a) / (b - a)).clamp(0.0, 1.0)
}

/// 1 inside `[lo, hi]`, falling to 0 over `soft` outside.
fn bell(x: f64, lo: f64, hi: f64, soft: f64) -> f64 {
    ramp(x, lo - soft, lo) * ramp(x, hi + soft, hi)
}

/// Measures [`ShapeFeatures`] of a silhouette.
pub(crate) fn shape_features(
    shape: &Shape,
    islands: &[super::segment::Island],
    front: Option<FrontLine>,
) -> ShapeFeatures {
    let (bw, bh) = (shape.bw().max(1.0), shape.bh().max(1.0));
    let a = shape.axis;
    let span = |v: f64| -> f64 {
        let runs = shape.runs(shape.row_at(v));
        match (runs.first(), runs.last()) {
            (Some(f), Some(l)) => f64::from(l.1 - f.0) / bw,
            _ => 0.0,
        }
    };
    let samples = |lo: f64, hi: f64| -> Vec<f64> {
        (0..=20)
            .map(|i| lo + (hi - lo) * f64::from(i) / 20.0)
            .collect()
    };
    let upper = samples(0.05, 0.45)
        .into_iter()
        .map(span)
        .fold(0.0, f64::max);
    let mut lower: Vec<f64> = samples(0.7, 0.97).into_iter().map(span).collect();
    lower.sort_by(f64::total_cmp);
    let lower_median = lower[lower.len() / 2].max(1e-6);

    // Top profile around the axis.
    let top_at = |u_off: f64| -> Option<f64> {
        let x = (a + u_off * bw).round();
        if x < f64::from(shape.bbox[0]) || x >= f64::from(shape.bbox[2]) {
            return None;
        }
        shape.top(x as u32).map(f64::from)
    };
    let band = |lo: f64, hi: f64| -> Vec<f64> {
        let mut v = Vec::new();
        let steps = 24;
        for i in 0..=steps {
            let off = lo + (hi - lo) * f64::from(i) / f64::from(steps);
            for sign in [-1.0, 1.0] {
                if let Some(t) = top_at(sign * off) {
                    v.push(t);
                }
            }
        }
        v
    };
    let centre = band(0.0, 0.07);
    let shoulders = band(0.12, 0.25);
    let (c_min, c_max) = minmax(&centre);
    let (s_min, _) = minmax(&shoulders);
    let neck_dip = if centre.is_empty() || shoulders.is_empty() {
        0.0
    } else {
        (c_max - s_min) / bh
    };
    // A hood: a narrow bump centred on the axis over much wider shoulders — from the top,
    // the silhouette stays under half the box's width for a good part of its height, then
    // widens.
    let hood = {
        let mut y = shape.bbox[1];
        let mut centred = true;
        let (mut filled, mut spanned) = (0u32, 0u32);
        while y < shape.bbox[3] {
            let runs = shape.runs(y);
            let (Some(f), Some(l)) = (runs.first(), runs.last()) else {
                break;
            };
            if f64::from(l.1 - f.0) > 0.5 * bw {
                break;
            }
            centred &= ((f64::from(f.0 + l.1) / 2.0) - a).abs() < 0.12 * bw;
            filled += runs.iter().map(|r| r.1 - r.0).sum::<u32>();
            spanned += l.1 - f.0;
            y += 1;
        }
        let narrow = f64::from(y - shape.bbox[1]) / bh;
        // A hood is solid; a bag's handles over its body are two thin straps.
        let solid = f64::from(filled) / f64::from(spanned.max(1)) >= 0.7;
        // And shoulders spread out right below it.
        let below = (f64::from(y) + 0.1 * bh).min(f64::from(shape.bbox[3] - 1)) as u32;
        let runs = shape.runs(below);
        let shoulders = match (runs.first(), runs.last()) {
            (Some(f), Some(l)) => f64::from(l.1 - f.0) >= 0.75 * bw,
            _ => false,
        };
        if centred && solid && shoulders && c_min < s_min {
            ramp(narrow, 0.07, 0.13)
        } else {
            0.0
        }
    };

    // Concavities: under the sleeves (at the sides, upper three quarters) and between legs.
    let mut side_depth = [0.0f64; 2];
    let mut leg_split: f64 = 0.0;
    for d in &shape.defects {
        let p = shape.point(d.deepest);
        let u = (p[0] - a) / bw;
        let v = (p[1] - f64::from(shape.bbox[1])) / bh;
        if u.abs() >= 0.08 && u.abs() <= 0.48 && (0.08..=0.65).contains(&v) {
            let side = usize::from(u > 0.0);
            side_depth[side] = side_depth[side].max(d.depth / bw);
        }
        // A split from below at the centre: both hull vertices low, the deepest point near
        // the axis, well above the bottom.
        let (ps, pe) = (shape.point(d.start), shape.point(d.end));
        let low = |q: [f64; 2]| (q[1] - f64::from(shape.bbox[1])) / bh > 0.85;
        if u.abs() < 0.1 && low(ps) && low(pe) && (ps[0] - a) * (pe[0] - a) < 0.0 {
            leg_split = leg_split.max((f64::from(shape.bbox[3]) - p[1]) / bh);
        }
    }
    // An arm lying by the body with its cuff on the hem encloses the gap under it (an
    // opening, or a backdrop-coloured island the segmentation kept).
    let gaps = shape
        .holes
        .iter()
        .map(|h| h.bbox)
        .chain(islands.iter().map(|i| i.bbox));
    let mut gap_depth = [0.0f64; 2];
    for bbox in gaps {
        if shape.is_side_gap(bbox) {
            let u = (f64::from(bbox[0] + bbox[2]) / 2.0 - a) / bw;
            let side = usize::from(u > 0.0);
            gap_depth[side] = gap_depth[side].max(f64::from(bbox[3] - bbox[1]) / bw);
        }
    }
    // Both sides, or — when a sleeve lies on the body on one side and hides it — one side
    // at a discount.
    let both = [
        side_depth[0].max(gap_depth[0]),
        side_depth[1].max(gap_depth[1]),
    ];
    let underarms = both[0]
        .min(both[1])
        .max(0.7 * gap_depth[0].max(gap_depth[1]));

    let flat = |edge: &dyn Fn(u32) -> Option<u32>, at: f64| -> f64 {
        let tol = 0.04 * bh;
        let n = (shape.bbox[0]..shape.bbox[2])
            .filter(|&x| edge(x).is_some_and(|t| (f64::from(t) - at).abs() <= tol))
            .count();
        n as f64 / bw
    };
    let top_flat = flat(&|x| shape.top(x), f64::from(shape.bbox[1]));
    let bottom_flat = flat(&|x| shape.bottom(x), f64::from(shape.bbox[3] - 1));

    let spans: Vec<(f64, f64)> = samples(0.0, 1.0)
        .into_iter()
        .map(|v| (v, span(v)))
        .collect();
    let widest = spans.iter().map(|s| s.1).fold(0.0, f64::max).max(1e-6);
    let widest_v = spans
        .iter()
        .find(|s| s.1 >= widest * 0.98)
        .map_or(0.5, |s| s.0);
    let top_narrowest = spans
        .iter()
        .filter(|s| s.0 <= 0.35 && s.0 >= 0.02)
        .map(|s| s.1)
        .fold(f64::INFINITY, f64::min);
    let neck_ratio = if widest_v > 0.35 && top_narrowest.is_finite() {
        top_narrowest / widest
    } else {
        1.0
    };

    let box_area = bw * bh;
    let top_loops = shape
        .holes
        .iter()
        .filter(|hole| (hole.centre[1] - f64::from(shape.bbox[1])) / bh < 0.5)
        .map(|hole| hole.area as f64)
        .sum::<f64>()
        / box_area;
    let fill_over = |lo: f64, hi: f64| -> f64 {
        let v = samples(lo, hi);
        v.iter()
            .map(|&v| shape.row_fill(shape.row_at(v)))
            .sum::<f64>()
            / v.len() as f64
    };
    let top_thinness = fill_over(0.02, 0.25) / fill_over(0.5, 0.95).max(1e-6);

    // One-sided bulge: each side's outline against the straight line between its extents at
    // 8 % and 92 % of the height.
    let side_x = |v: f64, left: bool| -> Option<f64> {
        let runs = shape.runs(shape.row_at(v));
        if left {
            runs.first().map(|r| f64::from(r.0))
        } else {
            runs.last().map(|r| f64::from(r.1))
        }
    };
    let bulge = |left: bool| -> f64 {
        let (Some(x_top), Some(x_bot)) = (side_x(0.08, left), side_x(0.92, left)) else {
            return 0.0;
        };
        samples(0.1, 0.9)
            .into_iter()
            .filter_map(|v| {
                let line = x_top + (x_bot - x_top) * (v - 0.08) / 0.84;
                side_x(v, left).map(|x| if left { line - x } else { x - line })
            })
            .fold(0.0, f64::max)
            / bw
    };
    let (bl, br) = (bulge(true), bulge(false));
    let one_sided_bulge = if bl.min(br) < 0.05 { bl.max(br) } else { 0.0 };
    let bulge_left = bl > br;
    let side_loop = shape.holes.iter().any(|hole| {
        let u = (hole.centre[0] - f64::from(shape.bbox[0])) / bw;
        let v = (hole.centre[1] - f64::from(shape.bbox[1])) / bh;
        (0.15..=0.9).contains(&v)
            && if bulge_left { u < 0.35 } else { u > 0.65 }
            && hole.area as f64 > box_area * 0.002
    });

    // Dome: the top falls away from the highest point on both sides, steadily, and the top
    // edge is not flat.
    let dome = {
        let highest = (shape.bbox[0]..shape.bbox[2])
            .filter_map(|x| shape.top(x).map(|t| (x, t)))
            .min_by_key(|&(x, t)| (t, (f64::from(x) - a).abs() as u32));
        match highest {
            Some((hx, ht)) => {
                let drop_at = |u_off: f64| -> Option<f64> {
                    let x = f64::from(hx) + u_off * bw;
                    if x < f64::from(shape.bbox[0]) || x >= f64::from(shape.bbox[2]) {
                        return None;
                    }
                    shape
                        .top(x as u32)
                        .map(|t| (f64::from(t) - f64::from(ht)) / bh)
                };
                let l = drop_at(-0.3).unwrap_or(0.0);
                let r = drop_at(0.3).unwrap_or(0.0);
                ramp(l.min(r), 0.04, 0.12) * ramp(top_flat, 0.5, 0.2)
            }
            None => 0.0,
        }
    };

    let end_height = |lo: f64, hi: f64| -> f64 {
        (0..=10)
            .filter_map(|i| {
                let x = shape.col_at(lo + (hi - lo) * f64::from(i) / 10.0);
                let (t, b) = (shape.top(x)?, shape.bottom(x)?);
                Some(f64::from(b - t + 1))
            })
            .fold(0.0, f64::max)
    };
    let (el, er) = (end_height(0.0, 0.15), end_height(0.85, 1.0));
    let end_ratio = el.max(er) / el.min(er).max(1.0);

    ShapeFeatures {
        aspect: bw / bh,
        symmetry: shape.symmetry,
        fill: shape.area as f64 / box_area,
        solidity: shape.area as f64 / shape.hull_area.max(1.0),
        shoulder_ratio: upper / lower_median,
        neck_dip,
        hood,
        underarms,
        leg_split,
        top_flat,
        bottom_flat,
        neck_ratio,
        top_loops,
        top_thinness,
        one_sided_bulge,
        side_loop,
        dome,
        end_ratio,
        components: shape.components,
        front_line: front.map_or(0.0, |l| l.coverage),
    }
}

fn minmax(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// A straight vertical line near the axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FrontLine {
    /// Share of the neckline-to-hem rows it covers.
    pub coverage: f64,
    /// Its x at the top row and at the bottom row (working px).
    pub x_top: f64,
    /// Its x at the bottom row.
    pub x_bottom: f64,
    /// First and last rows it covers (working px).
    pub rows: (u32, u32),
}

/// How much of the way from the neckline to the hem a straight, crisp vertical line runs
/// near the mirror axis (a zip or a button stand): the rows in which the strongest
/// horizontal-gradient peak of a narrow band around the axis sits on one straight line and
/// stands well above the fabric's own texture in that row.
pub(crate) fn front_line(
    shape: &Shape,
    seg: &Segmentation,
    contrast: &super::contrast::ContrastMap,
) -> Option<FrontLine> {
    let gray = image::imageops::grayscale(&seg.working);
    let smooth = imageproc::filter::gaussian_blur_f32(&gray, 1.0);
    let (w, _) = smooth.dimensions();
    let a = shape.axis;
    let bw = shape.bw();
    let half = (bw * 0.06).max(3.0);
    let x_lo = (a - half).floor().max(1.0) as u32;
    let x_hi = ((a + half).ceil() as u32).min(w.saturating_sub(2));
    let cx = a.round() as u32;
    let y_top = shape.top(cx.min(w - 1))?;
    let y_bot = shape.bottom(cx.min(w - 1))?;
    if y_bot <= y_top + 10 {
        return None;
    }
    let margin = ((y_bot - y_top) / 30).max(2);
    let (y0, y1) = (y_top + margin, y_bot - margin);
    let gx = |x: u32, y: u32| -> f64 {
        (f64::from(smooth.get_pixel(x + 1, y).0[0]) - f64::from(smooth.get_pixel(x - 1, y).0[0]))
            .abs()
    };
    // Per row: the strongest peak in the band, if it stands out from the row's texture.
    let mut peaks: Vec<(u32, f64)> = Vec::new();
    for y in y0..y1 {
        let Some((r0, r1)) = shape.run_near(y, a) else {
            continue;
        };
        let (mut best_x, mut best) = (x_lo, 0.0);
        for x in x_lo..=x_hi {
            // A print's own edges are not a zip.
            if !shape.on(i64::from(x), i64::from(y))
                || contrast.regions.iter().any(|r| {
                    x + 3 >= r.bbox[0]
                        && x < r.bbox[2] + 3
                        && y + 3 >= r.bbox[1]
                        && y < r.bbox[3] + 3
                })
            {
                continue;
            }
            let g = gx(x, y);
            if g > best {
                best = g;
                best_x = x;
            }
        }
        let mut texture: Vec<f64> = (r0.max(1) + 2..r1.min(w - 1).saturating_sub(2))
            .step_by(2)
            .filter(|x| *x < x_lo || *x > x_hi)
            .map(|x| gx(x, y))
            .collect();
        if texture.len() < 8 {
            continue;
        }
        texture.sort_by(f64::total_cmp);
        let typical = texture[texture.len() * 3 / 4].max(1.0);
        if best >= 3.0 * typical && best >= 6.0 {
            peaks.push((y, f64::from(best_x)));
        }
    }
    if std::env::var_os("TECHPACK_DEBUG_FRONT").is_some() {
        eprintln!(
            "front_line: {} peaks of {} rows: {:?}",
            peaks.len(),
            y1 - y0,
            &peaks[..peaks.len().min(40)]
        );
    }
    if peaks.len() < 10 {
        return None;
    }
    // The straight line through the most peaks: candidate lines through pairs of peaks half
    // the list apart, each counted for the peaks within 3 px of it (a zip's two tape edges
    // take turns at being the strongest).
    let half_n = peaks.len() / 2;
    let step = (half_n / 60).max(1);
    let mut best_line: Option<(usize, f64, f64)> = None;
    for i in (0..half_n).step_by(step) {
        let (p, q) = (peaks[i], peaks[i + half_n]);
        let dy = f64::from(q.0) - f64::from(p.0);
        if dy < 5.0 {
            continue;
        }
        let slope = (q.1 - p.1) / dy;
        if slope.abs() > 0.15 {
            continue;
        }
        let offset = p.1 - slope * f64::from(p.0);
        let support = peaks
            .iter()
            .filter(|(y, x)| (x - (offset + slope * f64::from(*y))).abs() <= 3.0)
            .count();
        if best_line.is_none_or(|b| support > b.0) {
            best_line = Some((support, slope, offset));
        }
    }
    let (support, slope, offset) = best_line?;
    if std::env::var_os("TECHPACK_DEBUG_FRONT").is_some() {
        eprintln!("front_line: best support {support} slope {slope:.3} offset {offset:.1}");
    }
    let on_line: Vec<u32> = peaks
        .iter()
        .filter(|(y, x)| (x - (offset + slope * f64::from(*y))).abs() <= 3.0)
        .map(|(y, _)| *y)
        .collect();
    if on_line.is_empty() {
        return None;
    }
    // Coverage by tenths of the length: a tenth counts when at least 10 % of its rows put
    // their peak on the line (a zip is hidden in places by cords, folds and a pocket), and
    // the line runs over the longest stretch of counted tenths, two missing tenths allowed.
    // A line that runs on to the hem is measured from where it starts (a hood above the
    // neckline has no zip), so a zip scores its share of the neckline-to-hem length.
    let span = f64::from(y1 - y0);
    let mut counted = [false; 10];
    for (d, slot) in counted.iter_mut().enumerate() {
        let lo = y0 + (span * d as f64 / 10.0) as u32;
        let hi = y0 + (span * (d + 1) as f64 / 10.0) as u32;
        let n = on_line.iter().filter(|y| **y >= lo && **y < hi).count();
        *slot = n as f64 >= f64::from(hi - lo) * 0.1;
    }
    let mut best = (0usize, 0usize);
    for start in 0..10 {
        if !counted[start] {
            continue;
        }
        let (mut end, mut misses) = (start + 1, 0);
        for (d, &c) in counted.iter().enumerate().skip(start + 1) {
            if c {
                end = d + 1;
            } else {
                misses += 1;
                if misses > 2 {
                    break;
                }
            }
        }
        if end - start > best.1 - best.0 {
            best = (start, end);
        }
    }
    if best.1 == best.0 {
        return None;
    }
    let run = counted[best.0..best.1].iter().filter(|c| **c).count() as f64;
    // A line that stops short of the hem is not an opening down the front.
    let coverage = if best.1 >= 9 && best.0 <= 5 {
        run / (10 - best.0) as f64
    } else {
        run / 10.0 * 0.8
    };
    let rows = (
        y0 + (span * best.0 as f64 / 10.0) as u32,
        y0 + (span * best.1 as f64 / 10.0) as u32,
    );
    if std::env::var_os("TECHPACK_DEBUG_FRONT").is_some() {
        let per: Vec<usize> = (0..10)
            .map(|d| {
                let lo = y0 + (span * d as f64 / 10.0) as u32;
                let hi = y0 + (span * (d + 1) as f64 / 10.0) as u32;
                on_line.iter().filter(|y| **y >= lo && **y < hi).count()
            })
            .collect();
        eprintln!(
            "front_line: y0 {y0} y1 {y1} per tenth {per:?} tenths {counted:?} coverage {coverage:.2} rows {rows:?}"
        );
    }
    let best = rows;
    Some(FrontLine {
        coverage,
        x_top: offset + slope * f64::from(best.0),
        x_bottom: offset + slope * f64::from(best.1),
        rows: best,
    })
}

/// Every candidate's score from the features (see the module docs), best first.
pub(crate) fn score(f: &ShapeFeatures) -> Vec<(ProductCategory, f64, Vec<CategoryFeature>)> {
    let feat = |name: &str, value: f64, note: String| CategoryFeature {
        name: name.to_string(),
        value: (value * 1000.0).round() / 1000.0,
        note,
    };
    let sleeves = ramp(f.shoulder_ratio, 1.15, 1.45).max(ramp(f.underarms, 0.04, 0.09));
    // A hood is only a hood over shoulders with sleeves (a cap's dome or a bottle's neck is
    // narrow at the top too).
    let hooded = f.hood * sleeves;
    let top_edge = ramp(f.neck_dip, 0.008, 0.03).max(hooded);
    let no_legs = 1.0 - ramp(f.leg_split, 0.1, 0.2);
    let garment_shape = bell(f.aspect, 0.65, 1.6, 0.25) * ramp(f.symmetry, 0.55, 0.75);
    let tops_base = garment_shape
        * no_legs
        * (1.0 - ramp(f.top_loops, 0.01, 0.04))
        * (0.5 * sleeves + 0.35 * top_edge + 0.15 * ramp(f.bottom_flat, 0.15, 0.35));
    let opening = ramp(f.front_line, 0.55, 0.75);
    let tops = tops_base * (1.0 - 0.5 * opening);
    let outerwear = tops_base * opening;

    let waist = ramp(f.top_flat, 0.35, 0.65) * ramp(f.shoulder_ratio, 1.25, 1.05);
    let skirt = ramp(f.top_flat, 0.35, 0.65)
        * ramp(f.bottom_flat, 0.3, 0.6)
        * (1.0 - sleeves)
        * (1.0 - top_edge)
        * bell(f.aspect, 0.5, 1.3, 0.2);
    let bottoms = bell(f.aspect, 0.25, 1.5, 0.2)
        * ramp(f.symmetry, 0.55, 0.75)
        * (waist * ramp(f.leg_split, 0.12, 0.25)).max(0.75 * skirt);

    let no_loops = 1.0
        - ramp(
            f.top_loops + if f.side_loop { 0.05 } else { 0.0 },
            0.005,
            0.02,
        );
    let headwear = bell(f.aspect, 1.05, 2.3, 0.3)
        * no_loops
        * (1.0 - ramp(f.neck_dip, 0.01, 0.03))
        * (1.0 - hooded)
        * (0.55 * f.dome + 0.25 * ramp(f.bottom_flat, 0.2, 0.5) + 0.2 * ramp(f.fill, 0.5, 0.7))
        * (1.0 - ramp(f.underarms, 0.05, 0.1));

    let handles = ramp(f.top_loops, 0.01, 0.04).max(ramp(f.top_thinness, 0.3, 0.15));
    let body = ramp(f.bottom_flat, 0.3, 0.6);
    let bags = bell(f.aspect, 0.45, 1.6, 0.3)
        * (1.0 - ramp(f.one_sided_bulge, 0.1, 0.2) * f64::from(u8::from(f.side_loop)))
        * (0.6 * handles + 0.25 * body + 0.15 * ramp(f.symmetry, 0.6, 0.85))
        * (1.0 - 0.8 * sleeves * (1.0 - ramp(f.top_loops, 0.01, 0.04)))
        * (1.0 - hooded)
        * (1.0 - ramp(f.neck_dip, 0.015, 0.04));

    let handle = ramp(f.one_sided_bulge, 0.1, 0.2) * if f.side_loop { 1.0 } else { 0.6 };
    let rim = ramp(f.top_flat, 0.3, 0.5);
    let drinkware = bell(f.aspect, 0.55, 1.6, 0.25)
        * (1.0 - handles * (1.0 - handle))
        * (0.5 * handle + 0.3 * rim + 0.2 * ramp(f.bottom_flat, 0.3, 0.5))
        * (1.0 - ramp(f.neck_dip, 0.015, 0.04))
        * (1.0 - sleeves * (1.0 - handle));

    let bottles = bell(f.aspect, 0.12, 0.55, 0.15)
        * (0.5 * ramp(f.neck_ratio, 0.75, 0.5)
            + 0.25 * ramp(f.symmetry, 0.75, 0.9)
            + 0.25 * ramp(f.bottom_flat, 0.3, 0.6))
        * (1.0 - sleeves);

    let footwear = bell(f.aspect, 1.4, 3.5, 0.4)
        * no_loops
        * (0.35 * ramp(f.bottom_flat, 0.4, 0.7)
            + 0.35 * ramp(f.end_ratio, 1.3, 2.0)
            + 0.3 * ramp(f.symmetry, 0.8, 0.6))
        * (1.0 - f.dome * 0.6)
            .max(if f.components == 2 { 0.55 } else { 0.0 } * bell(f.aspect, 1.2, 4.0, 0.4));

    let mut out = vec![
        (
            ProductCategory::Tops,
            tops,
            vec![
                feat(
                    "sleeves",
                    sleeves,
                    format!(
                        "the top is {:.2}× as wide as the bottom and the concavities under the sleeves are {:.0} % of the width deep",
                        f.shoulder_ratio,
                        f.underarms * 100.0
                    ),
                ),
                feat(
                    "neckline_or_hood",
                    top_edge,
                    format!(
                        "the top edge dips {:.1} % at the centre (a neckline){}",
                        f.neck_dip * 100.0,
                        if f.hood > 0.5 {
                            " and rises into a hood"
                        } else {
                            ""
                        }
                    ),
                ),
                feat(
                    "symmetry",
                    f.symmetry,
                    format!(
                        "the silhouette mirrors onto itself at IoU {:.2}",
                        f.symmetry
                    ),
                ),
                feat(
                    "front_line",
                    f.front_line,
                    format!(
                        "no line down the whole centre front ({:.0} % of the length)",
                        f.front_line * 100.0
                    ),
                ),
            ],
        ),
        (
            ProductCategory::Outerwear,
            outerwear,
            vec![
                feat(
                    "front_opening",
                    f.front_line,
                    format!(
                        "a straight line runs down {:.0} % of the centre front (a zip or button stand)",
                        f.front_line * 100.0
                    ),
                ),
                feat(
                    "sleeves",
                    sleeves,
                    format!(
                        "the top is {:.2}× as wide as the bottom; concavities under the sleeves {:.0} % of the width",
                        f.shoulder_ratio,
                        f.underarms * 100.0
                    ),
                ),
                feat(
                    "neckline_or_hood",
                    top_edge,
                    format!(
                        "the top edge dips {:.1} % at the centre{}",
                        f.neck_dip * 100.0,
                        if f.hood > 0.5 {
                            " and rises into a hood"
                        } else {
                            ""
                        }
                    ),
                ),
            ],
        ),
        (
            ProductCategory::Bottoms,
            bottoms,
            vec![
                feat(
                    "waistband",
                    f.top_flat,
                    format!(
                        "the top edge is straight across {:.0} % of the width",
                        f.top_flat * 100.0
                    ),
                ),
                feat(
                    "leg_split",
                    f.leg_split,
                    format!(
                        "a split rises {:.0} % of the height from the bottom centre",
                        f.leg_split * 100.0
                    ),
                ),
            ],
        ),
        (
            ProductCategory::Headwear,
            headwear,
            vec![
                feat(
                    "dome",
                    f.dome,
                    "the top edge falls away on both sides like a crown".to_string(),
                ),
                feat(
                    "aspect",
                    f.aspect,
                    format!("{:.2}× as wide as high", f.aspect),
                ),
                feat(
                    "flat_base",
                    f.bottom_flat,
                    format!(
                        "the bottom edge is level across {:.0} % of the width",
                        f.bottom_flat * 100.0
                    ),
                ),
            ],
        ),
        (
            ProductCategory::Bags,
            bags,
            vec![
                feat(
                    "handle_loops",
                    f.top_loops,
                    format!(
                        "loops above the body cover {:.1} % of the box; the top quarter is {:.0} % as full as the body",
                        f.top_loops * 100.0,
                        f.top_thinness * 100.0
                    ),
                ),
                feat(
                    "flat_base",
                    f.bottom_flat,
                    format!(
                        "the bottom edge is level across {:.0} % of the width",
                        f.bottom_flat * 100.0
                    ),
                ),
            ],
        ),
        (
            ProductCategory::Drinkware,
            drinkware,
            vec![
                feat(
                    "side_handle",
                    f.one_sided_bulge,
                    format!(
                        "one side bulges {:.0} % of the width beyond the body{}",
                        f.one_sided_bulge * 100.0,
                        if f.side_loop {
                            " around an enclosed loop"
                        } else {
                            ""
                        }
                    ),
                ),
                feat(
                    "rim",
                    f.top_flat,
                    format!(
                        "the top edge is level across {:.0} % of the width",
                        f.top_flat * 100.0
                    ),
                ),
            ],
        ),
        (
            ProductCategory::Bottles,
            bottles,
            vec![
                feat(
                    "tall",
                    f.aspect,
                    format!("{:.2}× as wide as high", f.aspect),
                ),
                feat(
                    "neck",
                    f.neck_ratio,
                    format!(
                        "the top narrows to {:.0} % of the widest",
                        f.neck_ratio * 100.0
                    ),
                ),
            ],
        ),
        (
            ProductCategory::Footwear,
            footwear,
            vec![
                feat(
                    "long_low",
                    f.aspect,
                    format!("{:.2}× as long as high", f.aspect),
                ),
                feat(
                    "sole",
                    f.bottom_flat,
                    format!(
                        "the bottom edge is level across {:.0} % of the length",
                        f.bottom_flat * 100.0
                    ),
                ),
                feat(
                    "heel_end",
                    f.end_ratio,
                    format!("one end is {:.2}× as tall as the other", f.end_ratio),
                ),
            ],
        ),
    ];
    for entry in &mut out {
        entry.1 = (entry.1 * 1000.0).round() / 1000.0;
    }
    // Stable order: score, then the declaration order above.
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// Below this best score nothing is recognised: the product is `other`.
const MIN_SCORE: f64 = 0.3;

/// Detects the category and decides which one the analysis uses: the detected one for
/// `auto`, the best of the family for a broad request (`apparel` → `tops` …) when one fits,
/// else the requested one; the detection is recorded either way.
pub(crate) fn detect(requested: ProductCategory, f: &ShapeFeatures) -> CategoryDetection {
    let scored = score(f);
    let confidence_of = |cat: ProductCategory, s: f64| -> f64 {
        let other = scored
            .iter()
            .filter(|(c, _, _)| *c != cat)
            .map(|(_, s, _)| *s)
            .fold(0.0, f64::max);
        (s * (1.0 - 0.6 * other / s.max(1e-6))).clamp(0.05, 1.0)
    };
    let best_any = &scored[0];
    let (mut detected, mut confidence, mut features) = if best_any.1 >= MIN_SCORE {
        (
            best_any.0,
            confidence_of(best_any.0, best_any.1),
            best_any.2.clone(),
        )
    } else {
        (
            ProductCategory::Other,
            (1.0 - best_any.1 / MIN_SCORE).clamp(0.2, 0.6),
            vec![CategoryFeature {
                name: "no_match".into(),
                value: best_any.1,
                note: format!(
                    "no category's shape fits (the closest, {}, scores {:.2})",
                    best_any.0, best_any.1
                ),
            }],
        )
    };
    let broad = matches!(
        requested,
        ProductCategory::Apparel | ProductCategory::Accessories | ProductCategory::Home
    );
    let source = if requested.is_auto() {
        CategorySource::Detected
    } else if broad {
        match scored
            .iter()
            .find(|(c, s, _)| requested.includes(*c) && *s >= MIN_SCORE)
        {
            Some((c, s, fs)) => {
                detected = *c;
                confidence = confidence_of(*c, *s);
                features = fs.clone();
                CategorySource::Refined
            }
            None => CategorySource::Request,
        }
    } else {
        CategorySource::Request
    };
    CategoryDetection {
        requested,
        detected,
        confidence: (confidence * 1000.0).round() / 1000.0,
        source,
        features,
        scores: scored
            .iter()
            .map(|(c, s, _)| CategoryScore {
                category: *c,
                score: *s,
            })
            .collect(),
    }
}

/// The category the analysis is made for, from its detection.
pub(crate) fn chosen(detection: &CategoryDetection) -> ProductCategory {
    match detection.source {
        CategorySource::Request => detection.requested,
        CategorySource::Refined | CategorySource::Detected => detection.detected,
    }
}
