//! Landmarks of bottoms (trousers, shorts, skirts) laid flat: the waistband's corners at the
//! top edge, the crotch (the top of the split between the legs), each leg opening's outer and
//! inner corner just above the bottom edge; for a skirt, the hem corners instead.

use super::{Context, ImageSide, Landmarks};
use crate::local::shape::Shape;

/// Finds the landmarks of bottoms.
pub(super) fn find(shape: &Shape, _ctx: &Context<'_>, out: &mut Landmarks) {
    let (bw, bh) = (shape.bw(), shape.bh());
    let a = shape.axis;
    let top = shape.bbox[1];
    // The waistband: the outermost product on a row just below the top edge.
    let waist_row = top + ((bh * 0.015).round() as u32).max(1);
    let runs = shape.runs(waist_row);
    if let (Some(first), Some(last)) = (runs.first(), runs.last()) {
        let y = f64::from(waist_row) + 0.5;
        out.add("waist", ImageSide::Left, [f64::from(first.0), y], 0.85);
        out.add("waist", ImageSide::Right, [f64::from(last.1), y], 0.85);
    }
    if let Some(t) = shape.top(a.round() as u32) {
        out.add("waist_centre", ImageSide::Centre, [a, f64::from(t)], 0.85);
    }
    // The crotch: the deepest concavity rising from the bottom near the axis.
    let crotch = shape.defects.iter().find_map(|d| {
        let p = shape.point(d.deepest);
        let low = |q: [f64; 2]| (q[1] - f64::from(top)) / bh > 0.85;
        let (ps, pe) = (shape.point(d.start), shape.point(d.end));
        ((p[0] - a).abs() < bw * 0.1
            && low(ps)
            && low(pe)
            && (ps[0] - a) * (pe[0] - a) < 0.0
            && (f64::from(shape.bbox[3]) - p[1]) > bh * 0.1)
            .then_some(p)
    });
    let bottom_row = shape.bbox[3].saturating_sub(((bh * 0.015).round() as u32).max(1) + 1);
    let runs = shape.runs(bottom_row);
    let y = f64::from(bottom_row) + 0.5;
    match crotch {
        Some(c) => {
            out.add("crotch", ImageSide::Centre, c, 0.8);
            // Each leg is the run on its side of the axis.
            let left = runs.iter().rfind(|r| f64::from(r.1) <= a + 1.0);
            let right = runs.iter().find(|r| f64::from(r.0) >= a - 1.0);
            if let Some(l) = left {
                out.add("leg_outer", ImageSide::Left, [f64::from(l.0), y], 0.8);
                out.add("leg_inner", ImageSide::Left, [f64::from(l.1), y], 0.8);
            }
            if let Some(r) = right {
                out.add("leg_inner", ImageSide::Right, [f64::from(r.0), y], 0.8);
                out.add("leg_outer", ImageSide::Right, [f64::from(r.1), y], 0.8);
            }
        }
        None => {
            if let (Some(first), Some(last)) = (runs.first(), runs.last()) {
                out.add("hem", ImageSide::Left, [f64::from(first.0), y], 0.8);
                out.add("hem", ImageSide::Right, [f64::from(last.1), y], 0.8);
            }
            out.missing
                .push("no split between legs: measured as a skirt".into());
        }
    }
}
