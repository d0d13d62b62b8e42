//! Landmarks of a cap or hat: the crown's top; seen from the side, the notch where the brim
//! leaves the crown (the brim's base), the brim's tip and the back of the crown; seen from
//! the front, the crown's base line where the brim below widens the silhouette again, and the
//! brim's two ends.

use super::{ImageSide, Landmarks};
use crate::local::shape::Shape;

/// Finds the landmarks of headwear.
pub(super) fn find(shape: &Shape, out: &mut Landmarks) {
    let (bw, bh) = (shape.bw(), shape.bh());
    let top = f64::from(shape.bbox[1]);
    // The crown's top: the highest point, nearest the middle of the highest stretch.
    let xs: Vec<u32> = (shape.bbox[0]..shape.bbox[2])
        .filter(|&x| shape.top(x) == Some(shape.bbox[1]))
        .collect();
    let Some(&mid) = xs.get(xs.len() / 2) else {
        return;
    };
    let crown = [f64::from(mid) + 0.5, top];
    out.add("crown_top", ImageSide::Centre, crown, 0.85);
    // Side view: a concavity in the lower part of one side, between the crown's front and
    // the top of the brim, with the brim reaching out beyond it.
    let notch = shape.defects.iter().find(|d| {
        let p = shape.point(d.deepest);
        let v = (p[1] - top) / bh;
        (0.35..=0.97).contains(&v) && d.depth > bw * 0.02 && (p[0] - crown[0]).abs() > bw * 0.15
    });
    if let Some(d) = notch {
        let base = shape.point(d.deepest);
        let brim_left = base[0] < crown[0];
        // The brim's tip: the farthest point on the brim's side below the notch's top.
        let tip = shape
            .contour
            .iter()
            .copied()
            .filter(|p| p[1] >= base[1] - bh * 0.15)
            .max_by(|p, q| {
                let (dp, dq) = if brim_left {
                    (-p[0], -q[0])
                } else {
                    (p[0], q[0])
                };
                dp.total_cmp(&dq)
            });
        // Only a brim that reaches well past the crown's front is a side view's brim.
        if let Some(tip) = tip
            && (tip[0] - base[0]).abs() > bw * 0.12
        {
            // Seen from the side there is one brim and one back: single points.
            out.add("brim_base", ImageSide::Centre, base, 0.75);
            out.add("brim_tip", ImageSide::Centre, tip, 0.8);
            // The back of the crown at the brim base's height.
            if let Some(run) = shape.run_near(base[1].round() as u32, crown[0]) {
                let back = if brim_left {
                    f64::from(run.1)
                } else {
                    f64::from(run.0)
                };
                out.add("crown_back", ImageSide::Centre, [back, base[1]], 0.7);
            }
            let bottom = shape
                .bottom(mid)
                .map_or(f64::from(shape.bbox[3]), f64::from);
            out.add(
                "crown_base",
                ImageSide::Centre,
                [crown[0], bottom + 1.0],
                0.75,
            );
            return;
        }
    }
    // Front view: going down, the span grows over the crown, may stop, and grows again where
    // the brim starts; the crown's base is that second growth.
    let spans: Vec<(u32, u32, u32)> = (shape.bbox[1]..shape.bbox[3])
        .filter_map(|y| {
            let runs = shape.runs(y);
            Some((y, runs.first()?.0, runs.last()?.1))
        })
        .collect();
    let widest_upper = spans
        .iter()
        .take(spans.len() * 6 / 10)
        .map(|s| s.2 - s.1)
        .max()
        .unwrap_or(0);
    let brim_start = spans
        .iter()
        .skip(spans.len() / 2)
        .find(|s| f64::from(s.2 - s.1) > f64::from(widest_upper) * 1.06);
    if let Some(&(y, x0, x1)) = spans
        .iter()
        .take(spans.len() * 6 / 10)
        .max_by_key(|s| (s.2 - s.1, u32::MAX - s.0))
    {
        let yc = f64::from(y) + 0.5;
        out.add("crown_side", ImageSide::Left, [f64::from(x0), yc], 0.6);
        out.add("crown_side", ImageSide::Right, [f64::from(x1), yc], 0.6);
    }
    match brim_start {
        Some(&(y, _, _)) => {
            out.add(
                "crown_base",
                ImageSide::Centre,
                [crown[0], f64::from(y)],
                0.6,
            );
            if let Some(&(by, x0, x1)) = spans.iter().max_by_key(|s| (s.2 - s.1, s.0)) {
                let yc = f64::from(by) + 0.5;
                out.add("brim_end", ImageSide::Left, [f64::from(x0), yc], 0.6);
                out.add("brim_end", ImageSide::Right, [f64::from(x1), yc], 0.6);
            }
        }
        None => {
            let bottom = shape
                .bottom(mid)
                .map_or(f64::from(shape.bbox[3]), f64::from);
            out.add(
                "crown_base",
                ImageSide::Centre,
                [crown[0], bottom + 1.0],
                0.6,
            );
            out.missing
                .push("no brim seen from the side: brim length is not measured".into());
        }
    }
}
