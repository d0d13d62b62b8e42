//! Landmarks of a top (tee, polo, long sleeve, sweatshirt, hoodie, jacket) laid flat or on a
//! ghost mannequin, from its silhouette:
//!
//! - **high point of the shoulder (HPS)**: the highest point of the top edge on each side of
//!   the neckline's dip; under a hood, where the hood's steep side meets the gentle slope of
//!   the shoulder;
//! - **hood top**: the highest point of the hood;
//! - **underarm**: the deepest point of the concavity between sleeve and body on each side
//!   (a short sleeve's notch, or the top of the gap between a hanging arm and the body);
//! - **shoulder point**: where the outline from the HPS turns from the shoulder line into
//!   the sleeve, the break of the best two-segment fit of that stretch of outline;
//! - **sleeve end**: the two corners of the end of the sleeve farthest from the armhole;
//! - **body sides and hem corners**: the body's side edges followed down from the
//!   underarms, not letting a hanging sleeve that touches the body pull them outwards, to
//!   just above the hem;
//! - **chest**: the body's sides 2.5 cm below the lower underarm.
//!
//! A point that cannot be found is left out, with the reason recorded; nothing is guessed
//! from proportions.

use super::{Context, ImageSide, Landmarks};
use crate::local::shape::{Shape, dist};

/// An underarm candidate: (contour index, point, confidence, the concavity's hull vertices
/// when it is one).
type Underarm = (usize, [f64; 2], f64, Option<(usize, usize)>);

/// Finds the landmarks of a top.
pub(super) fn find(shape: &Shape, ctx: &Context<'_>, out: &mut Landmarks) {
    let a = shape.axis;
    let (bw, bh) = (shape.bw(), shape.bh());
    let hood = ctx.hood > 0.5;

    let hood_top = if hood { hood_top(shape) } else { None };
    if let Some(p) = hood_top {
        out.add("hood_top", ImageSide::Centre, p, 0.8);
    }
    let mut hps = [None, None];
    for (k, side) in [ImageSide::Left, ImageSide::Right].into_iter().enumerate() {
        hps[k] = match hood_top {
            Some(top) => hood_base(shape, top, side),
            None => neck_corner(shape, side),
        };
        match hps[k] {
            Some((p, c)) => out.add("hps", side, p, c),
            None => out.missing.push(format!(
                "no high point of the shoulder on the image's {} side",
                side_word(side)
            )),
        }
    }
    if hood && let (Some(top), Some((l, _)), Some((r, _))) = (hood_top, hps[0], hps[1]) {
        // The hood's widest run between its top and the HPS line.
        let base = l[1].max(r[1]);
        let mut best: Option<(f64, u32, (u32, u32))> = None;
        let y0 = top[1].ceil() as u32;
        let y1 = base.floor() as u32;
        for y in y0..y1 {
            if let Some(run) = shape.run_near(y, a) {
                let w = f64::from(run.1 - run.0);
                if best.is_none_or(|b| w > b.0) {
                    best = Some((w, y, run));
                }
            }
        }
        if let Some((_, y, (x0, x1))) = best {
            let yc = f64::from(y) + 0.5;
            out.add("hood_side", ImageSide::Left, [f64::from(x0), yc], 0.7);
            out.add("hood_side", ImageSide::Right, [f64::from(x1), yc], 0.7);
        }
    }

    // Underarms: the deepest side concavity on each side, below the shoulders.
    let hps_y = hps
        .iter()
        .flatten()
        .map(|(p, _)| p[1])
        .fold(f64::INFINITY, f64::min);
    let top_y = if hps_y.is_finite() {
        hps_y
    } else {
        f64::from(shape.bbox[1])
    };
    // (contour index, point, confidence, the concavity's hull vertices when it is one)
    let mut underarm: [Option<Underarm>; 2] = [None, None];
    let mut side_max: [Option<f64>; 2] = [None, None];
    for d in &shape.defects {
        let p = shape.point(d.deepest);
        let u = (p[0] - a) / bw;
        let v = (p[1] - f64::from(shape.bbox[1])) / bh;
        if !(0.06..=0.48).contains(&u.abs()) || !(0.05..=0.85).contains(&v) {
            continue;
        }
        // Underarms sit an armhole's depth below the shoulders, not in the neckline.
        if p[1] <= top_y + 0.15 * bh || d.depth < 0.025 * bw {
            continue;
        }
        let k = usize::from(u > 0.0);
        // Defects come deepest first. The underarm is the highest concavity at least a third
        // as deep as the side's deepest: a fitted top's waist curves in deeper, lower down.
        let deepest = side_max[k].get_or_insert(d.depth);
        if d.depth < *deepest * 0.35 {
            continue;
        }
        if underarm[k].is_none_or(|(_, q, _, _)| p[1] < q[1]) {
            let c = (d.depth / (0.08 * bw)).clamp(0.3, 0.95);
            underarm[k] = Some((d.deepest, p, c, Some((d.start, d.end))));
        }
    }
    // An arm lying by the body with its cuff touching the hem encloses the gap between them:
    // the gap's top is then the underarm.
    // So does a gap the segmentation could not tell from a print the backdrop's colour
    // (kept as product): it counts when its shape and place are a gap's.
    let gaps = shape.holes.iter().map(|h| (h.bbox, h.top, h.bottom)).chain(
        ctx.seg
            .quality
            .backdrop_islands
            .iter()
            .map(|i| (i.bbox, i.top, i.bottom)),
    );
    for (bbox, top, bottom) in gaps {
        let hole = super::super::shape::Hole {
            bbox,
            area: 0,
            centre: [
                f64::from(bbox[0] + bbox[2]) / 2.0,
                f64::from(bbox[1] + bbox[3]) / 2.0,
            ],
            top,
            bottom,
        };
        if !shape.is_side_gap(hole.bbox) || hole.top[1] <= top_y + 0.05 * bh {
            continue;
        }
        let u = (hole.centre[0] - a) / bw;
        let k = usize::from(u > 0.0);
        if underarm[k].is_none() {
            // The hole is background inside the outline: the sleeve's stretch of outline runs
            // round the cuff to where the arm meets the body, the contour point nearest the
            // hole's bottom.
            let i = shape.nearest_index(hole.bottom);
            underarm[k] = Some((i, hole.top, 0.7, None));
        }
    }
    for (k, side) in [ImageSide::Left, ImageSide::Right].into_iter().enumerate() {
        match underarm[k] {
            Some((_, p, c, _)) => out.add("underarm", side, p, c),
            None => out.missing.push(format!(
                "no underarm on the image's {} side: the sleeve lies against the body, so the armhole cannot be seen in the outline",
                side_word(side)
            )),
        }
    }

    // Shoulder points and sleeve ends, per side, where HPS and underarm are both known.
    for (k, side) in [ImageSide::Left, ImageSide::Right].into_iter().enumerate() {
        let (Some((hp, _)), Some((ui, up, _, _))) = (hps[k], underarm[k]) else {
            continue;
        };
        let hi = shape.nearest_index(hp);
        // The stretch of outline from the HPS through the sleeve to the underarm.
        let Some(sleeve) = outline_between(shape, hi, ui, a) else {
            continue;
        };
        if let Some((sp, conf)) = shoulder_point(shape, &sleeve, hp, up, side) {
            out.add("shoulder", side, sp, conf);
            if let Some((outer, inner)) = sleeve_end(shape, &sleeve, sp, up) {
                out.add("sleeve_end_outer", side, outer, 0.75);
                out.add("sleeve_end_inner", side, inner, 0.75);
            }
        }
    }

    body_sides(
        shape,
        ctx,
        out,
        [underarm[0].map(|u| u.1), underarm[1].map(|u| u.1)],
    );
}

fn side_word(side: ImageSide) -> &'static str {
    match side {
        ImageSide::Left => "left",
        ImageSide::Right => "right",
        ImageSide::Centre => "centre",
    }
}

/// The highest point of the top edge near the axis.
fn hood_top(shape: &Shape) -> Option<[f64; 2]> {
    let a = shape.axis;
    let band = (shape.bw() * 0.15).max(2.0);
    let x0 = (a - band).max(f64::from(shape.bbox[0])) as u32;
    let x1 = ((a + band) as u32).min(shape.bbox[2] - 1);
    (x0..=x1)
        .filter_map(|x| shape.top(x).map(|t| (x, t)))
        .min_by(|p, q| {
            p.1.cmp(&q.1).then(
                (f64::from(p.0) - a)
                    .abs()
                    .total_cmp(&(f64::from(q.0) - a).abs()),
            )
        })
        .map(|(x, t)| [f64::from(x) + 0.5, f64::from(t)])
}

/// Under a hood, the HPS is where the top edge, followed outwards from the hood's top,
/// stops falling steeply (the hood's side) and continues at a shoulder's slope.
fn hood_base(shape: &Shape, top: [f64; 2], side: ImageSide) -> Option<([f64; 2], f64)> {
    let dir: i64 = if side == ImageSide::Left { -1 } else { 1 };
    let step = ((shape.bw() * 0.012).round() as i64).max(1);
    let limit = (shape.bw() * 0.45) as i64;
    let start = top[0] as i64;
    let t = |x: i64| -> Option<f64> {
        if x < i64::from(shape.bbox[0]) || x >= i64::from(shape.bbox[2]) {
            return None;
        }
        shape.top(x as u32).map(f64::from)
    };
    let mut steep_seen = false;
    let mut off = step;
    while off < limit {
        let (x, xn) = (start + dir * off, start + dir * (off + step));
        let (Some(y), Some(yn)) = (t(x), t(xn)) else {
            break;
        };
        let slope = (yn - y) / step as f64;
        if slope > 1.2 {
            steep_seen = true;
        } else if steep_seen && slope < 0.7 {
            // Confirm the gentle slope holds a little further, so a ruck in the hood's side
            // is not taken for the shoulder.
            let far = t(start + dir * (off + 4 * step)).unwrap_or(yn);
            if (far - y) / (4 * step) as f64 <= 0.9 {
                return Some(([x as f64 + 0.5, y], 0.7));
            }
        }
        off += step;
    }
    None
}

/// Without a hood, the HPS is the highest point of the top edge between the neckline's dip
/// and a third of the width out (the innermost of equal ones: the neck's corner).
fn neck_corner(shape: &Shape, side: ImageSide) -> Option<([f64; 2], f64)> {
    let a = shape.axis;
    let bw = shape.bw();
    let (lo, hi) = match side {
        ImageSide::Left => (a - bw * 0.32, a - bw * 0.02),
        _ => (a + bw * 0.02, a + bw * 0.32),
    };
    let x0 = lo.max(f64::from(shape.bbox[0])).round() as u32;
    let x1 = hi.min(f64::from(shape.bbox[2] - 1)).round() as u32;
    let best = (x0..=x1)
        .filter_map(|x| shape.top(x).map(|t| (x, t)))
        .min_by(|p, q| {
            p.1.cmp(&q.1).then(
                (f64::from(p.0) - a)
                    .abs()
                    .total_cmp(&(f64::from(q.0) - a).abs()),
            )
        })?;
    // A neckline must actually dip between the two sides: the centre lower than this point.
    let centre = shape.top(a.round() as u32)?;
    let dip = f64::from(centre) - f64::from(best.1);
    let conf = if dip > shape.bh() * 0.01 { 0.85 } else { 0.5 };
    Some(([f64::from(best.0) + 0.5, f64::from(best.1)], conf))
}

/// The contour indices from `from` to `to` along the side of the outline that does not pass
/// the top centre (the neck) — i.e. out along the shoulder, round the sleeve, back to the
/// underarm.
fn outline_between(shape: &Shape, from: usize, to: usize, axis: f64) -> Option<Vec<usize>> {
    let forward: Vec<usize> = shape.span(from, to).collect();
    let backward: Vec<usize> = {
        let mut v: Vec<usize> = shape.span(to, from).collect();
        v.reverse();
        v
    };
    // The right stretch stays on one side of the axis.
    let crosses = |path: &[usize]| {
        let s0 = shape.point(path[0])[0] - axis;
        path.iter()
            .filter(|&&i| (shape.point(i)[0] - axis) * s0 < 0.0)
            .count()
    };
    let path = if crosses(&forward) <= crosses(&backward) {
        forward
    } else {
        backward
    };
    (path.len() >= 6).then_some(path)
}

/// The shoulder point: where the outline from the HPS turns from the shoulder line into the
/// sleeve. The armhole seam runs down from it to the underarm, so it is looked for on the top
/// edge above the underarm — from a quarter of the armhole's depth inside the underarm's x to
/// a tenth outside it (a hanging arm's rounded top lies further out and is not the seam) —
/// at the sharpest turn of the outline there; where the outline does not
/// turn (a cap sleeve continues the shoulder), straight above the underarm.
fn shoulder_point(
    shape: &Shape,
    path: &[usize],
    hps: [f64; 2],
    underarm: [f64; 2],
    side: ImageSide,
) -> Option<([f64; 2], f64)> {
    let dir = if side == ImageSide::Left { -1.0 } else { 1.0 };
    let depth = (underarm[1] - hps[1]).max(1.0);
    let (lo, hi) = (
        underarm[0] - dir * depth * 0.25,
        underarm[0] + dir * depth * 0.1,
    );
    let inside = |x: f64| (x - lo) * dir >= 0.0 && (hi - x) * dir >= 0.0;
    let pts: Vec<[f64; 2]> = path.iter().map(|&i| shape.point(i)).collect();
    // The top edge only: stop where the outline turns back towards the body or drops below
    // the underarm.
    let mut stretch: Vec<usize> = Vec::new();
    for (k, p) in pts.iter().enumerate() {
        if p[1] >= underarm[1] || (p[0] - underarm[0]) * dir > depth * 0.6 {
            break;
        }
        if inside(p[0]) {
            stretch.push(k);
        } else if !stretch.is_empty() {
            break;
        }
    }
    if stretch.is_empty() {
        return None;
    }
    let step = ((shape.bw() * 0.025).round() as usize).max(3);
    let turn = |k: usize| -> f64 {
        if k < step || k + step >= pts.len() {
            return 0.0;
        }
        let (a, p, b) = (pts[k - step], pts[k], pts[k + step]);
        let v1 = [p[0] - a[0], p[1] - a[1]];
        let v2 = [b[0] - p[0], b[1] - p[1]];
        let cos =
            (v1[0] * v2[0] + v1[1] * v2[1]) / (v1[0].hypot(v1[1]) * v2[0].hypot(v2[1])).max(1e-9);
        cos.clamp(-1.0, 1.0).acos().to_degrees()
    };
    let (best, angle) = stretch
        .iter()
        .map(|&k| (k, turn(k)))
        .max_by(|p, q| p.1.total_cmp(&q.1).then(q.0.cmp(&p.0)))?;
    let (k, conf) = if angle >= 12.0 {
        (best, (angle / 30.0).clamp(0.5, 0.9))
    } else {
        let above = stretch.iter().copied().min_by(|p, q| {
            (pts[*p][0] - underarm[0])
                .abs()
                .total_cmp(&(pts[*q][0] - underarm[0]).abs())
        })?;
        (above, 0.45)
    };
    let sp = pts[k];
    if dist(sp, hps) < shape.bw() * 0.04 {
        return None;
    }
    Some((sp, conf))
}

/// The sleeve end's two corners: the two sharpest convex corners of the outline round the
/// sleeve (from the shoulder point to the underarm) that lie at least half the sleeve's reach
/// from the armhole — the corners where the end's edge meets the sleeve's top and underside.
/// The outer corner is the one met first coming from the shoulder point.
fn sleeve_end(
    shape: &Shape,
    path: &[usize],
    sp: [f64; 2],
    underarm: [f64; 2],
) -> Option<([f64; 2], [f64; 2])> {
    let (dx, dy) = (underarm[0] - sp[0], underarm[1] - sp[1]);
    let len = dx.hypot(dy);
    if len < 1.0 {
        return None;
    }
    // Distance to the armhole segment: a hanging sleeve reaches down past the underarm,
    // along the armhole's own direction.
    let from_armhole = |p: [f64; 2]| {
        let t = (((p[0] - sp[0]) * dx + (p[1] - sp[1]) * dy) / (len * len)).clamp(0.0, 1.0);
        dist(p, [sp[0] + dx * t, sp[1] + dy * t])
    };
    let start = path.iter().position(|&i| shape.point(i) == sp).unwrap_or(0);
    let pts: Vec<[f64; 2]> = path[start..].iter().map(|&i| shape.point(i)).collect();
    let reach = pts.iter().map(|p| from_armhole(*p)).fold(0.0, f64::max);
    if reach < shape.bw() * 0.03 || pts.len() < 12 {
        return None;
    }
    // The contour's orientation decides which turn is convex.
    let c = &shape.contour;
    let orientation: f64 = (0..c.len())
        .map(|i| {
            let (p, q) = (c[i], c[(i + 1) % c.len()]);
            p[0] * q[1] - q[0] * p[1]
        })
        .sum::<f64>()
        .signum();
    let step = ((shape.bw() * 0.025).round() as usize).max(3);
    let turn = |k: usize| -> f64 {
        if k < step || k + step >= pts.len() {
            return 0.0;
        }
        let (a, p, b) = (pts[k - step], pts[k], pts[k + step]);
        let v1 = [p[0] - a[0], p[1] - a[1]];
        let v2 = [b[0] - p[0], b[1] - p[1]];
        let cross = v1[0] * v2[1] - v1[1] * v2[0];
        let dot = v1[0] * v2[0] + v1[1] * v2[1];
        let angle = cross.atan2(dot).to_degrees();
        angle * orientation
    };
    let candidates: Vec<(usize, f64)> = (0..pts.len())
        .filter(|&k| from_armhole(pts[k]) >= reach * 0.5)
        .map(|k| (k, turn(k)))
        .filter(|(_, t)| *t > 20.0)
        .collect();
    let first = candidates
        .iter()
        .copied()
        .max_by(|p, q| p.1.total_cmp(&q.1).then(q.0.cmp(&p.0)))?;
    let min_gap = ((shape.bw() * 0.04) as usize).max(step);
    let second = candidates
        .iter()
        .copied()
        .filter(|(k, _)| k.abs_diff(first.0) >= min_gap)
        .max_by(|p, q| p.1.total_cmp(&q.1).then(q.0.cmp(&p.0)))?;
    let (o, i) = if first.0 < second.0 {
        (first.0, second.0)
    } else {
        (second.0, first.0)
    };
    Some((pts[o], pts[i]))
}

/// Follows the body's side edges from the underarms down to the hem, and places the chest
/// (2.5 cm below the lower underarm) and hem corners (just above the bottom edge).
fn body_sides(
    shape: &Shape,
    ctx: &Context<'_>,
    out: &mut Landmarks,
    underarm: [Option<[f64; 2]>; 2],
) {
    let a = shape.axis;
    let bw = shape.bw();
    let cx = a.round() as u32;
    let Some(hem_y) = shape.bottom(cx.min(shape.bbox[2] - 1)) else {
        return;
    };
    let known: Vec<[f64; 2]> = underarm.iter().flatten().copied().collect();
    if known.is_empty() {
        out.missing
            .push("no underarm on either side: chest and hem corners are not placed".into());
        return;
    }
    let start_y = known
        .iter()
        .map(|p| p[1])
        .fold(f64::NEG_INFINITY, f64::max)
        .ceil() as u32;
    let hem_row = hem_y.saturating_sub(((shape.bh() * 0.012).round() as u32).max(1));
    if hem_row <= start_y {
        return;
    }
    // Each side's x on every row from the underarms down, with outward jumps (a hanging
    // sleeve touching the body) replaced by the previous row's x.
    let jump = bw * 0.02;
    let mut sides: [Vec<(u32, f64)>; 2] = [Vec::new(), Vec::new()];
    for k in 0..2 {
        let mut prev: Option<f64> = underarm[k].map(|p| p[0]);
        for y in start_y..=hem_row {
            let Some((x0, x1)) = shape.run_near(y, a) else {
                continue;
            };
            let x = if k == 0 { f64::from(x0) } else { f64::from(x1) };
            let x = match prev {
                Some(p) if (k == 0 && x < p - jump) || (k == 1 && x > p + jump) => p,
                _ => x,
            };
            prev = Some(x);
            sides[k].push((y, x));
        }
    }
    let chest_y = f64::from(start_y) + 2.5 * ctx.px_per_cm;
    for (k, side) in [ImageSide::Left, ImageSide::Right].into_iter().enumerate() {
        let conf = if underarm[k].is_some() { 0.8 } else { 0.45 };
        // A side without its underarm is the other side mirrored about the axis: a top is
        // symmetric, and a sleeve lying on the body hides that side's edge.
        let mirrored = |y: f64| -> Option<f64> {
            let other = &sides[1 - k];
            other
                .iter()
                .min_by(|p, q| {
                    (f64::from(p.0) - y)
                        .abs()
                        .total_cmp(&(f64::from(q.0) - y).abs())
                })
                .map(|p| 2.0 * a - p.1)
        };
        let at = |y: f64| -> Option<f64> {
            if underarm[k].is_some() {
                sides[k]
                    .iter()
                    .min_by(|p, q| {
                        (f64::from(p.0) - y)
                            .abs()
                            .total_cmp(&(f64::from(q.0) - y).abs())
                    })
                    .map(|p| p.1)
            } else {
                mirrored(y)
            }
        };
        if let Some(x) = at(chest_y) {
            out.add("chest", side, [x, chest_y], conf);
        }
        let hy = f64::from(hem_row) + 0.5;
        if let Some(x) = at(hy) {
            out.add("hem", side, [x, hy], conf);
        }
    }
}
