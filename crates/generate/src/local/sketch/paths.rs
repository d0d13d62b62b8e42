//! Smooth drawing of traced polylines: cubic Béziers through the points that keep sharp
//! corners sharp.

use super::super::svg::PathData;
use super::dist;

/// Smooth path through `pts`: cubic Bézier segments whose tangents follow the neighbouring
/// points (a Catmull–Rom spline with tangent lengths capped by each segment, which never
/// overshoots), except at sharp turns, which stay corners.
pub(super) fn smooth_path(d: &mut PathData, pts: &[[f64; 2]], closed: bool) {
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
