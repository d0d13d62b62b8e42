//! Landmarks of bags, drinkware, bottles and footwear.
//!
//! - **Bag**: the body is the rows at least 70 % as full as the fullest (the handles above
//!   are thin); its four corners, and the handles' highest point.
//! - **Mug or cup**: the rim's and base's ends on the body (rows just inside the top and
//!   bottom edges, nearest the axis), and on the side that bulges, the handle's outermost
//!   point and where it leaves and rejoins the body.
//! - **Bottle**: the top, the narrowest neck row in the top 40 %, the widest body row and
//!   the base's ends.
//! - **Shoe** (side view): toe and heel ends on the ground line and the heel's lift.

use super::{ImageSide, Landmarks};
use crate::local::shape::Shape;

fn ends(shape: &Shape, y: u32, near: f64) -> Option<([f64; 2], [f64; 2])> {
    let (x0, x1) = shape.run_near(y, near)?;
    let yc = f64::from(y) + 0.5;
    Some(([f64::from(x0), yc], [f64::from(x1), yc]))
}

/// A bag's body corners and handle top.
pub(super) fn bag(shape: &Shape, out: &mut Landmarks) {
    let rows: Vec<(u32, f64)> = (shape.bbox[1]..shape.bbox[3])
        .map(|y| (y, shape.row_fill(y)))
        .collect();
    let fullest = rows.iter().map(|r| r.1).fold(0.0, f64::max);
    let body: Vec<u32> = rows
        .iter()
        .filter(|r| r.1 >= fullest * 0.7)
        .map(|r| r.0)
        .collect();
    let (Some(&top), Some(&bottom)) = (body.first(), body.last()) else {
        return;
    };
    let a = shape.axis;
    let inset = ((f64::from(bottom - top) * 0.02).round() as u32).max(1);
    if let Some((l, r)) = ends(shape, top + inset, a) {
        out.add("body_top", ImageSide::Left, l, 0.8);
        out.add("body_top", ImageSide::Right, r, 0.8);
    }
    if let Some((l, r)) = ends(shape, bottom.saturating_sub(inset), a) {
        out.add("body_bottom", ImageSide::Left, l, 0.8);
        out.add("body_bottom", ImageSide::Right, r, 0.8);
    }
    out.add(
        "body_top_centre",
        ImageSide::Centre,
        [a, f64::from(top)],
        0.8,
    );
    out.add(
        "base_centre",
        ImageSide::Centre,
        [a, f64::from(bottom + 1)],
        0.8,
    );
    // Handles rise above the body by more than a twentieth of the height.
    if top > shape.bbox[1] && (top - shape.bbox[1]) * 20 > shape.bbox[3] - shape.bbox[1] {
        let handle_x = (shape.bbox[0]..shape.bbox[2])
            .filter(|&x| shape.top(x) == Some(shape.bbox[1]))
            .min_by(|p, q| {
                (f64::from(*p) - a)
                    .abs()
                    .total_cmp(&(f64::from(*q) - a).abs())
            });
        if let Some(x) = handle_x {
            out.add(
                "handle_top",
                ImageSide::Centre,
                [f64::from(x) + 0.5, f64::from(shape.bbox[1])],
                0.8,
            );
        }
    } else {
        out.missing
            .push("no handles above the body: handle drop is not measured".into());
    }
}

/// A mug's or cup's rim, base and handle.
pub(super) fn drinkware(shape: &Shape, out: &mut Landmarks) {
    let (bw, bh) = (shape.bw(), shape.bh());
    let a = shape.axis;
    let inset = ((bh * 0.03).round() as u32).max(1);
    let rim_row = shape.bbox[1] + inset;
    let base_row = shape.bbox[3].saturating_sub(inset + 1);
    let (Some(rim), Some(base)) = (ends(shape, rim_row, a), ends(shape, base_row, a)) else {
        return;
    };
    out.add("rim", ImageSide::Left, rim.0, 0.8);
    out.add("rim", ImageSide::Right, rim.1, 0.8);
    out.add("base", ImageSide::Left, base.0, 0.8);
    out.add("base", ImageSide::Right, base.1, 0.8);
    out.add(
        "rim_centre",
        ImageSide::Centre,
        [(rim.0[0] + rim.1[0]) / 2.0, f64::from(shape.bbox[1])],
        0.8,
    );
    out.add(
        "base_centre",
        ImageSide::Centre,
        [(base.0[0] + base.1[0]) / 2.0, f64::from(shape.bbox[3])],
        0.8,
    );
    // The body's edge on each side is the line from rim to base; product beyond it is the
    // handle.
    let beyond = |y: u32, left: bool| -> f64 {
        let t = (f64::from(y) - rim.0[1]) / (base.0[1] - rim.0[1]).max(1.0);
        let runs = shape.runs(y);
        if left {
            let line = rim.0[0] + (base.0[0] - rim.0[0]) * t;
            runs.first().map_or(0.0, |r| line - f64::from(r.0))
        } else {
            let line = rim.1[0] + (base.1[0] - rim.1[0]) * t;
            runs.last().map_or(0.0, |r| f64::from(r.1) - line)
        }
    };
    let rows: Vec<u32> = (rim_row..=base_row).collect();
    let out_l: f64 = rows.iter().map(|&y| beyond(y, true)).fold(0.0, f64::max);
    let out_r: f64 = rows.iter().map(|&y| beyond(y, false)).fold(0.0, f64::max);
    let left = out_l > out_r;
    let reach = out_l.max(out_r);
    if reach < bw * 0.08 {
        out.missing
            .push("no handle: the body has no side bulge".into());
        return;
    }
    let side = if left {
        ImageSide::Left
    } else {
        ImageSide::Right
    };
    let handle_rows: Vec<u32> = rows
        .iter()
        .copied()
        .filter(|&y| beyond(y, left) > bw * 0.02)
        .collect();
    let (Some(&h0), Some(&h1)) = (handle_rows.first(), handle_rows.last()) else {
        return;
    };
    let outer_y = rows
        .iter()
        .copied()
        .max_by(|p, q| beyond(*p, left).total_cmp(&beyond(*q, left)))
        .unwrap_or(h0);
    let runs = shape.runs(outer_y);
    let outer_x = if left {
        runs.first().map(|r| f64::from(r.0))
    } else {
        runs.last().map(|r| f64::from(r.1))
    };
    if let Some(x) = outer_x {
        out.add("handle_outer", side, [x, f64::from(outer_y) + 0.5], 0.8);
    }
    let edge_at = |y: u32| -> f64 {
        let t = (f64::from(y) - rim.0[1]) / (base.0[1] - rim.0[1]).max(1.0);
        if left {
            rim.0[0] + (base.0[0] - rim.0[0]) * t
        } else {
            rim.1[0] + (base.1[0] - rim.1[0]) * t
        }
    };
    out.add("handle_top", side, [edge_at(h0), f64::from(h0)], 0.7);
    out.add(
        "handle_bottom",
        side,
        [edge_at(h1), f64::from(h1) + 1.0],
        0.7,
    );
}

/// A bottle's top, neck, body and base.
pub(super) fn bottle(shape: &Shape, out: &mut Landmarks) {
    let bh = shape.bh();
    let a = shape.axis;
    let top = shape.bbox[1];
    if let Some(t) = shape.top(a.round() as u32) {
        out.add("top", ImageSide::Centre, [a, f64::from(t)], 0.85);
    }
    let rows: Vec<(u32, u32, u32)> = (shape.bbox[1]..shape.bbox[3])
        .filter_map(|y| shape.run_near(y, a).map(|r| (y, r.0, r.1)))
        .collect();
    let widest = rows
        .iter()
        .filter(|r| f64::from(r.0 - top) > bh * 0.3)
        .max_by_key(|r| (r.2 - r.1, u32::MAX - r.0));
    if let Some(&(y, x0, x1)) = widest {
        let yc = f64::from(y) + 0.5;
        out.add("body", ImageSide::Left, [f64::from(x0), yc], 0.8);
        out.add("body", ImageSide::Right, [f64::from(x1), yc], 0.8);
    }
    let neck = rows
        .iter()
        .filter(|r| {
            let v = f64::from(r.0 - top) / bh;
            (0.03..=0.4).contains(&v)
        })
        .min_by_key(|r| (r.2 - r.1, r.0));
    if let (Some(&(y, x0, x1)), Some(&(_, bx0, bx1))) = (neck, widest)
        && f64::from(x1 - x0) < f64::from(bx1 - bx0) * 0.8
    {
        let yc = f64::from(y) + 0.5;
        out.add("neck", ImageSide::Left, [f64::from(x0), yc], 0.75);
        out.add("neck", ImageSide::Right, [f64::from(x1), yc], 0.75);
    } else {
        out.missing.push("no neck narrower than the body".into());
    }
    let inset = ((bh * 0.02).round() as u32).max(1);
    if let Some((l, r)) = ends(shape, shape.bbox[3].saturating_sub(inset + 1), a) {
        out.add("base", ImageSide::Left, l, 0.8);
        out.add("base", ImageSide::Right, r, 0.8);
    }
    out.add(
        "base_centre",
        ImageSide::Centre,
        [a, f64::from(shape.bbox[3])],
        0.8,
    );
}

/// A shoe seen from the side: both ends on the ground and the heel's lift.
pub(super) fn footwear(shape: &Shape, out: &mut Landmarks) {
    let b = shape.bbox;
    let ground = f64::from(b[3]);
    let bw = b[2] - b[0];
    let height = |range: std::ops::Range<u32>| {
        range
            .filter_map(|x| Some(shape.bottom(x)? + 1 - shape.top(x)?))
            .max()
            .unwrap_or(0)
    };
    let heel_left = height(b[0]..b[0] + bw / 5) >= height(b[2] - bw / 5..b[2]);
    let (hx, tx) = if heel_left {
        (f64::from(b[0]), f64::from(b[2]))
    } else {
        (f64::from(b[2]), f64::from(b[0]))
    };
    // One shoe seen from its side: its points are single, not a left and a right.
    out.add("heel_end", ImageSide::Centre, [hx, ground], 0.8);
    out.add("toe_end", ImageSide::Centre, [tx, ground], 0.8);
    // The heel's lift: the largest gap between the sole and the ground on the heel half.
    let half = if heel_left {
        b[0]..b[0] + bw / 2
    } else {
        b[0] + bw / 2..b[2]
    };
    let best = half
        .filter_map(|x| shape.bottom(x).map(|bo| (x, b[3] - 1 - bo)))
        .max_by_key(|&(x, lift)| (lift, u32::MAX - x));
    if let Some((x, lift)) = best {
        out.add(
            "heel_ground",
            ImageSide::Centre,
            [f64::from(x) + 0.5, ground],
            0.7,
        );
        out.add(
            "heel_seat",
            ImageSide::Centre,
            [f64::from(x) + 0.5, ground - f64::from(lift)],
            0.7,
        );
    }
}
