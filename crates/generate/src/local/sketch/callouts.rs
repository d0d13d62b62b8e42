//! Callouts: one numbered bubble per feature, with its label in the left or right margin,
//! stacked in the order of their targets so leader lines do not cross.

use serde_json::json;

use super::super::segment::Segmentation;
use super::super::svg::{Anchor, SvgWriter};
use super::{
    BUBBLE_LEFT_X, BUBBLE_R, BUBBLE_RIGHT_X, CALLOUT_INK, INK, LABEL_GAP, LABEL_MAX_CHARS,
    LABEL_SPACING, LABEL_Y0, LABEL_Y1, PageTransform, dist, round1,
};
use crate::Analysis;

/// One callout before layout.
struct CalloutPlan {
    number: usize,
    label: String,
    target_input: [f64; 2],
    target: [f64; 2],
    region: [u32; 4],
    left: bool,
    kind: String,
    confidence: f64,
    reason: String,
}

/// What one callout points at, before it is placed.
struct Target {
    label: String,
    kind: String,
    target_input: [f64; 2],
    region: [u32; 4],
    confidence: f64,
    reason: String,
}

/// The callouts of an analysis: its features, or — for an analysis made before features were
/// recorded — its detail regions. Numbered top to bottom, then left to right, as a reader
/// scans the flat.
fn targets(seg: &Segmentation, analysis: &Analysis) -> Vec<Target> {
    let mut out: Vec<Target> = if analysis.features.is_empty() {
        analysis
            .detail_regions
            .iter()
            .map(|r| Target {
                label: r.name.clone(),
                kind: String::new(),
                target_input: callout_target(seg, r.bbox),
                region: r.bbox,
                confidence: r.score,
                reason: "a detail region of the analysis".into(),
            })
            .collect()
    } else {
        analysis
            .features
            .iter()
            .map(|f| Target {
                label: f.name.clone(),
                kind: f.kind.clone(),
                target_input: f.anchor,
                region: f.bbox,
                confidence: f.confidence,
                reason: f.evidence.clone(),
            })
            .collect()
    };
    out.sort_by(|a, b| {
        let key = |t: &Target| ((t.target_input[1] / 8.0).round(), t.target_input[0]);
        let (ka, kb) = (key(a), key(b));
        ka.0.total_cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
    });
    out
}

/// Draws a numbered callout per feature; returns their data records.
pub(super) fn draw_callouts(
    w: &mut SvgWriter,
    seg: &Segmentation,
    analysis: &Analysis,
    tf: &PageTransform,
    product: [f64; 4],
) -> Vec<serde_json::Value> {
    let centre_x = (product[0] + product[2]) / 2.0;
    let mut plans: Vec<CalloutPlan> = Vec::new();
    let (mut n_left, mut n_right) = (0usize, 0usize);
    for (i, t) in targets(seg, analysis).into_iter().enumerate() {
        let target_input = t.target_input;
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
            label: t.label,
            target_input,
            target,
            region: t.region,
            left,
            kind: t.kind,
            confidence: t.confidence,
            reason: t.reason,
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
            18.0,
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
            "feature": plan.kind,
            "confidence": plan.confidence,
            "reason": plan.reason,
        }));
    }
    w.close_group();
    records
}

/// Whether the leader `from–to` passes within a few units of another callout's target dot,
/// which would read as pointing there; only when the dot lies between the leader's ends.
pub(super) fn grazes(from: [f64; 2], to: [f64; 2], dot: [f64; 2]) -> bool {
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
pub(super) fn segments_cross(a1: [f64; 2], a2: [f64; 2], b1: [f64; 2], b2: [f64; 2]) -> bool {
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
pub(super) fn spread(wanted: &[f64], gap: f64, lo: f64, hi: f64) -> Vec<f64> {
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

pub(super) fn shorten(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_owned()
    } else {
        let mut s: String = label.chars().take(max - 1).collect();
        s.push('…');
        s
    }
}
