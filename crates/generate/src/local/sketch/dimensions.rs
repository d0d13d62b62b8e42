//! Dimension lines: one per point of measure, with arrowheads and its code, name and value;
//! lines that span the product or run along its edge are moved outside it, with extension
//! lines from the silhouette.

use serde_json::json;

use super::super::segment::Segmentation;
use super::super::svg::{Anchor, PathData, SvgWriter};
use super::{
    DIM_INK, DIM_OFFSET, DIM_STACK, DRAW_X0, DRAW_X1, DRAW_Y0, DRAW_Y1, PageTransform, dist, round1,
};
use crate::{Analysis, Measurement};

/// The points of measure drawn: the standard ones when the analysis has any, else the
/// overall width and height (a box says little once real points of measure exist).
pub(super) fn drawn(analysis: &Analysis) -> Vec<&Measurement> {
    let standard: Vec<&Measurement> = analysis
        .measurements
        .points
        .iter()
        .filter(|m| !m.name.starts_with("overall_"))
        .collect();
    if standard.is_empty() {
        analysis.measurements.points.iter().collect()
    } else {
        standard
    }
}

/// A dimension line's text: its code (when it has one), its name and its value.
pub(super) fn dimension_text(m: &Measurement) -> String {
    let name = m.name.replace('_', " ");
    if m.code.is_empty() {
        format!("{name} {} cm", format_cm(m.cm))
    } else {
        format!("{} {name} {} cm", m.code, format_cm(m.cm))
    }
}

/// Where a point of measure is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DimPlacement {
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
pub(super) struct DimensionPlan<'a> {
    lines: Vec<(&'a Measurement, DimPlacement)>,
    above: usize,
    below: usize,
    left: usize,
}

/// Decides, in input pixels, which points of measure are drawn outside the product: lines
/// spanning it, or lying along its edge, would hide in the outline if drawn where measured.
pub(super) fn plan_dimensions(analysis: &Analysis, bbox: [f64; 4]) -> DimensionPlan<'_> {
    let (pw, ph) = ((bbox[2] - bbox[0]).max(1.0), (bbox[3] - bbox[1]).max(1.0));
    let mut plan = DimensionPlan {
        lines: Vec::new(),
        above: 0,
        below: 0,
        left: 0,
    };
    for m in drawn(analysis) {
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
pub(super) fn drawing_box(plan: &DimensionPlan<'_>) -> [f64; 4] {
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
pub(super) fn draw_measurements(
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
        // A short line has room for its code and value only.
        let text = if dist(la, lb) < 220.0 && !m.code.is_empty() {
            format!("{} {} cm", m.code, format_cm(m.cm))
        } else {
            dimension_text(m)
        };
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
        "code": m.code,
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
