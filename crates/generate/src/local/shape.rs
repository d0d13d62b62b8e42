//! The silhouette's geometry, measured once and read by category detection, landmarks, points
//! of measure, features and the sketch: extents per row and column, the mirror axis, the
//! outer contour with its convex hull and the hull's concavities (underarms, the neck, the
//! notch between a brim and a crown).
//!
//! Everything here is in working pixels; callers scale to input pixels.

use image::{GrayImage, Luma};
use imageproc::contours::{BorderType, find_contours};
use imageproc::geometry::{contour_area, convex_hull};
use imageproc::point::Point;

/// A concavity of the outer contour: a stretch between two hull vertices that dips inside.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Defect {
    /// Contour index of the hull vertex where it starts.
    pub start: usize,
    /// Contour index of the hull vertex where it ends.
    pub end: usize,
    /// Contour index of the point deepest inside.
    pub deepest: usize,
    /// Distance of that point from the hull edge, in working pixels.
    pub depth: f64,
}

/// The silhouette's geometry.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    mask: GrayImage,
    /// Box of the product, `[x0, y0, x1, y1]`, ends exclusive.
    pub bbox: [u32; 4],
    /// Product pixels.
    pub area: usize,
    /// The vertical mirror axis that best maps the silhouette onto itself (x = axis mirrors
    /// x to 2·axis − x).
    pub axis: f64,
    /// IoU of the silhouette and its mirror image about [`Shape::axis`].
    pub symmetry: f64,
    /// The largest outer contour, in order, as pixel centres.
    pub contour: Vec<[f64; 2]>,
    /// The hull's concavities, deepest first.
    pub defects: Vec<Defect>,
    /// Background enclosed by the product (handle loops, the gap between an arm and the
    /// body), largest first.
    pub holes: Vec<Hole>,
    /// Separate product components (two shoes of a pair are two).
    pub components: usize,
    /// Area of the convex hull, in pixels.
    pub hull_area: f64,
}

/// Background enclosed by the product.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Hole {
    /// Its box, `[x0, y0, x1, y1]`, ends exclusive.
    pub bbox: [u32; 4],
    /// Its pixels.
    pub area: usize,
    /// Its centre of mass.
    pub centre: [f64; 2],
    /// Its highest point (the middle of its top row).
    pub top: [f64; 2],
    /// Its lowest point (the middle of its bottom row).
    pub bottom: [f64; 2],
}

impl Shape {
    /// Measures a mask (255 = product).
    pub(crate) fn new(mask: &GrayImage) -> Self {
        let (w, h) = mask.dimensions();
        let bbox = super::segment::mask_bbox(mask).unwrap_or([0, 0, w.max(1), h.max(1)]);
        let area = mask.pixels().filter(|p| p.0[0] > 0).count();
        let (axis, symmetry) = mirror_axis(mask, bbox);
        let contour = outer_contour(mask);
        let hull = hull_indices(&contour);
        let defects = defects(&contour, &hull);
        let hull_area = polygon_area(&hull.iter().map(|&i| contour[i]).collect::<Vec<_>>());
        let (holes, components) = holes_and_components(mask);
        Self {
            mask: mask.clone(),
            bbox,
            area,
            axis,
            symmetry,
            contour,
            defects,
            holes,
            components,
            hull_area,
        }
    }

    /// Box width.
    pub(crate) fn bw(&self) -> f64 {
        f64::from(self.bbox[2] - self.bbox[0])
    }

    /// Box height.
    pub(crate) fn bh(&self) -> f64 {
        f64::from(self.bbox[3] - self.bbox[1])
    }

    /// Whether (x, y) is product; outside the image is not.
    pub(crate) fn on(&self, x: i64, y: i64) -> bool {
        let (w, h) = self.mask.dimensions();
        x >= 0
            && y >= 0
            && x < i64::from(w)
            && y < i64::from(h)
            && self.mask.get_pixel(x as u32, y as u32).0[0] > 0
    }

    /// The product runs of row `y`, `(x0, x1)` ends exclusive, left to right.
    pub(crate) fn runs(&self, y: u32) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        if y >= self.mask.height() {
            return out;
        }
        let mut start = None;
        for x in self.bbox[0]..self.bbox[2] {
            match (self.on(i64::from(x), i64::from(y)), start) {
                (true, None) => start = Some(x),
                (false, Some(s)) => {
                    out.push((s, x));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            out.push((s, self.bbox[2]));
        }
        out
    }

    /// The run of row `y` that contains `x`, or the nearest one to it.
    pub(crate) fn run_near(&self, y: u32, x: f64) -> Option<(u32, u32)> {
        self.runs(y).into_iter().min_by(|a, b| {
            let d = |r: &(u32, u32)| {
                if x >= f64::from(r.0) && x < f64::from(r.1) {
                    0.0
                } else {
                    (f64::from(r.0) - x).abs().min((f64::from(r.1) - x).abs())
                }
            };
            d(a).total_cmp(&d(b))
        })
    }

    /// First product row of column `x`.
    pub(crate) fn top(&self, x: u32) -> Option<u32> {
        (self.bbox[1]..self.bbox[3]).find(|&y| self.on(i64::from(x), i64::from(y)))
    }

    /// Last product row of column `x` (inclusive).
    pub(crate) fn bottom(&self, x: u32) -> Option<u32> {
        (self.bbox[1]..self.bbox[3])
            .rev()
            .find(|&y| self.on(i64::from(x), i64::from(y)))
    }

    /// Share of the box's width covered by product on row `y`.
    pub(crate) fn row_fill(&self, y: u32) -> f64 {
        let covered: u32 = self.runs(y).iter().map(|r| r.1 - r.0).sum();
        f64::from(covered) / self.bw().max(1.0)
    }

    /// The row at relative height `v` (0 = top of the box, 1 = bottom).
    pub(crate) fn row_at(&self, v: f64) -> u32 {
        let y = f64::from(self.bbox[1]) + v.clamp(0.0, 1.0) * (self.bh() - 1.0).max(0.0);
        y.round() as u32
    }

    /// The column at relative width `u` (0 = left of the box, 1 = right).
    pub(crate) fn col_at(&self, u: f64) -> u32 {
        let x = f64::from(self.bbox[0]) + u.clamp(0.0, 1.0) * (self.bw() - 1.0).max(0.0);
        x.round() as u32
    }

    /// Whether an enclosed region of this box has the shape and place of the gap between an
    /// arm lying by the body and the body: at a side, taller than wide, its top in the upper
    /// four fifths.
    pub(crate) fn is_side_gap(&self, bbox: [u32; 4]) -> bool {
        let (bw, bh) = (self.bw().max(1.0), self.bh().max(1.0));
        let cx = f64::from(bbox[0] + bbox[2]) / 2.0;
        let u = (cx - self.axis) / bw;
        let v = (f64::from(bbox[1]) - f64::from(self.bbox[1])) / bh;
        let (w, h) = (f64::from(bbox[2] - bbox[0]), f64::from(bbox[3] - bbox[1]));
        (0.06..=0.48).contains(&u.abs())
            && (0.05..=0.8).contains(&v)
            && h >= w * 1.3
            && h >= bh * 0.05
    }

    /// The contour point at index `i` (wrapping).
    pub(crate) fn point(&self, i: usize) -> [f64; 2] {
        self.contour[i % self.contour.len().max(1)]
    }

    /// Contour indices from `a` to `b` going forward (wrapping), both included.
    pub(crate) fn span(&self, a: usize, b: usize) -> impl Iterator<Item = usize> + '_ {
        let n = self.contour.len().max(1);
        let len = (b + n - a) % n;
        (0..=len).map(move |k| (a + k) % n)
    }

    /// The contour index nearest to `p`.
    pub(crate) fn nearest_index(&self, p: [f64; 2]) -> usize {
        self.contour
            .iter()
            .enumerate()
            .min_by(|a, b| dist2(*a.1, p).total_cmp(&dist2(*b.1, p)))
            .map_or(0, |(i, _)| i)
    }
}

fn polygon_area(poly: &[[f64; 2]]) -> f64 {
    let n = poly.len();
    if n < 3 {
        return 0.0;
    }
    let mut a = 0.0;
    for i in 0..n {
        let (p, q) = (poly[i], poly[(i + 1) % n]);
        a += p[0] * q[1] - q[0] * p[1];
    }
    a.abs() / 2.0
}

/// Enclosed background regions of at least a few pixels, and the number of product
/// components.
fn holes_and_components(mask: &GrayImage) -> (Vec<Hole>, usize) {
    use imageproc::region_labelling::{Connectivity, connected_components};
    let (w, h) = mask.dimensions();
    let components = {
        let labels = connected_components(mask, Connectivity::Eight, Luma([0u8]));
        labels.pixels().map(|l| l.0[0]).max().unwrap_or(0) as usize
    };
    let mut inverted = mask.clone();
    inverted.pixels_mut().for_each(|p| p.0 = [255 - p.0[0]]);
    let labels = connected_components(&inverted, Connectivity::Four, Luma([0u8]));
    struct Acc {
        bbox: [u32; 4],
        area: usize,
        sum: [f64; 2],
        touches: bool,
        top_xs: (u32, u32),
        bottom_xs: (u32, u32, u32),
    }
    let mut acc: Vec<Acc> = Vec::new();
    for (x, y, l) in labels.enumerate_pixels() {
        let l = l.0[0] as usize;
        if l == 0 {
            continue;
        }
        while acc.len() < l {
            acc.push(Acc {
                bbox: [u32::MAX, u32::MAX, 0, 0],
                area: 0,
                sum: [0.0, 0.0],
                touches: false,
                top_xs: (u32::MAX, 0),
                bottom_xs: (0, u32::MAX, 0),
            });
        }
        let a = &mut acc[l - 1];
        // Pixels come row by row, so the first row seen is the top one.
        if a.area == 0 || y == a.bbox[1] {
            a.top_xs = (a.top_xs.0.min(x), a.top_xs.1.max(x));
        }
        // The last row seen is the bottom one.
        if y > a.bottom_xs.0 || a.area == 0 {
            a.bottom_xs = (y, x, x);
        } else {
            a.bottom_xs = (y, a.bottom_xs.1.min(x), a.bottom_xs.2.max(x));
        }
        a.bbox = [
            a.bbox[0].min(x),
            a.bbox[1].min(y),
            a.bbox[2].max(x + 1),
            a.bbox[3].max(y + 1),
        ];
        a.area += 1;
        a.sum[0] += f64::from(x);
        a.sum[1] += f64::from(y);
        a.touches |= x == 0 || y == 0 || x + 1 == w || y + 1 == h;
    }
    let mut holes: Vec<Hole> = acc
        .into_iter()
        .filter(|a| !a.touches && a.area >= 8)
        .map(|a| Hole {
            bbox: a.bbox,
            area: a.area,
            centre: [a.sum[0] / a.area as f64, a.sum[1] / a.area as f64],
            top: [
                f64::from(a.top_xs.0 + a.top_xs.1) / 2.0 + 0.5,
                f64::from(a.bbox[1]),
            ],
            bottom: [
                f64::from(a.bottom_xs.1 + a.bottom_xs.2) / 2.0 + 0.5,
                f64::from(a.bottom_xs.0),
            ],
        })
        .collect();
    holes.sort_by(|a, b| b.area.cmp(&a.area).then(a.bbox.cmp(&b.bbox)));
    (holes, components)
}

/// Euclidean distance.
pub(crate) fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    dist2(a, b).sqrt()
}

fn dist2(a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)
}

/// The vertical axis maximising the IoU of the silhouette with its mirror image, searched
/// within a fifth of the box's width of its centre (a mug's handle moves the box, not the
/// body's axis): coarse steps on every third row first,
/// then half-pixel steps around the best.
fn mirror_axis(mask: &GrayImage, b: [u32; 4]) -> (f64, f64) {
    let centre = f64::from(b[0] + b[2]) / 2.0;
    let bw = f64::from(b[2] - b[0]);
    if bw < 2.0 {
        return (centre, 1.0);
    }
    let iou = |axis2: i64, row_step: usize| -> f64 {
        let (mut inter, mut union) = (0u64, 0u64);
        for y in (b[1]..b[3]).step_by(row_step) {
            for x in b[0]..b[2] {
                let a = mask.get_pixel(x, y).0[0] > 0;
                let mx = axis2 - i64::from(x);
                let m = mx >= 0
                    && mx < i64::from(mask.width())
                    && mask.get_pixel(mx as u32, y).0[0] > 0;
                inter += u64::from(a && m);
                union += u64::from(a || m);
            }
        }
        if union == 0 {
            0.0
        } else {
            inter as f64 / union as f64
        }
    };
    // Work in doubled coordinates so half-pixel axes are integers.
    let c2 = (centre * 2.0).round() as i64;
    let reach = ((bw * 0.2) * 2.0).round() as i64;
    let coarse = ((bw / 100.0).round() as i64).max(1) * 2;
    let mut best = (c2, iou(c2, 3));
    let mut a = c2 - reach;
    while a <= c2 + reach {
        let v = iou(a, 3);
        if v > best.1 + 1e-12 {
            best = (a, v);
        }
        a += coarse;
    }
    let mut fine = (best.0, iou(best.0, 1));
    for a in best.0 - coarse..=best.0 + coarse {
        let v = iou(a, 1);
        if v > fine.1 + 1e-12 || (v == fine.1 && (a - c2).abs() < (fine.0 - c2).abs()) {
            fine = (a, v);
        }
    }
    (fine.0 as f64 / 2.0, fine.1)
}

/// The outer contour of the largest product component, as pixel centres in order.
fn outer_contour(mask: &GrayImage) -> Vec<[f64; 2]> {
    let (w, h) = mask.dimensions();
    // A frame of background guarantees a closed outer border even when the product touches
    // the image's edge.
    let mut framed = GrayImage::new(w + 2, h + 2);
    for (x, y, p) in mask.enumerate_pixels() {
        if p.0[0] > 0 {
            framed.put_pixel(x + 1, y + 1, Luma([255]));
        }
    }
    find_contours::<i32>(&framed)
        .into_iter()
        .filter(|c| c.border_type == BorderType::Outer && c.points.len() >= 3)
        .max_by(|a, b| {
            contour_area(&a.points)
                .abs()
                .total_cmp(&contour_area(&b.points).abs())
        })
        .map(|c| {
            c.points
                .iter()
                .map(|p| [f64::from(p.x - 1), f64::from(p.y - 1)])
                .collect()
        })
        .unwrap_or_default()
}

/// Contour indices of the convex hull's vertices, ascending.
fn hull_indices(contour: &[[f64; 2]]) -> Vec<usize> {
    if contour.len() < 3 {
        return (0..contour.len()).collect();
    }
    let points: Vec<Point<i64>> = contour
        .iter()
        .map(|p| Point::new(p[0] as i64, p[1] as i64))
        .collect();
    let hull = convex_hull(points.clone());
    let mut index = std::collections::HashMap::new();
    for (i, p) in points.iter().enumerate() {
        index.entry((p.x, p.y)).or_insert(i);
    }
    let mut out: Vec<usize> = hull
        .iter()
        .filter_map(|p| index.get(&(p.x, p.y)).copied())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// For each pair of consecutive hull vertices, the contour point deepest inside the hull.
fn defects(contour: &[[f64; 2]], hull: &[usize]) -> Vec<Defect> {
    let n = contour.len();
    if hull.len() < 3 || n < 4 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for k in 0..hull.len() {
        let (a, b) = (hull[k], hull[(k + 1) % hull.len()]);
        let (pa, pb) = (contour[a], contour[b]);
        let (dx, dy) = (pb[0] - pa[0], pb[1] - pa[1]);
        let len = dx.hypot(dy);
        if len < 1.0 {
            continue;
        }
        let steps = (b + n - a) % n;
        let mut best = (a, 0.0f64);
        for s in 1..steps {
            let i = (a + s) % n;
            let p = contour[i];
            let d = ((p[0] - pa[0]) * dy - (p[1] - pa[1]) * dx).abs() / len;
            if d > best.1 {
                best = (i, d);
            }
        }
        if best.1 > 0.0 {
            out.push(Defect {
                start: a,
                end: b,
                deepest: best.0,
                depth: best.1,
            });
        }
    }
    out.sort_by(|x, y| y.depth.total_cmp(&x.depth).then(x.deepest.cmp(&y.deepest)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paint(img: &mut GrayImage, r: [u32; 4]) {
        for y in r[1]..r[3] {
            for x in r[0]..r[2] {
                img.put_pixel(x, y, Luma([255]));
            }
        }
    }

    #[test]
    fn a_tee_shape_has_its_axis_and_two_underarm_concavities() {
        let mut m = GrayImage::new(200, 160);
        paint(&mut m, [60, 20, 140, 150]); // body
        paint(&mut m, [20, 20, 180, 60]); // sleeves
        let s = Shape::new(&m);
        assert!((s.axis - 99.5).abs() <= 0.5, "axis {}", s.axis);
        assert!(s.symmetry > 0.99);
        assert_eq!(s.bbox, [20, 20, 180, 150]);
        let deep: Vec<&Defect> = s.defects.iter().filter(|d| d.depth > 10.0).collect();
        assert_eq!(deep.len(), 2, "{:?}", s.defects);
        for d in deep {
            let p = s.point(d.deepest);
            // The deepest points are the underarm corners (60, 59) and (139, 59).
            assert!((p[1] - 59.0).abs() <= 1.0, "{p:?}");
            assert!(
                (p[0] - 60.0).abs() <= 1.0 || (p[0] - 139.0).abs() <= 1.0,
                "{p:?}"
            );
        }
        assert_eq!(s.runs(40), vec![(20, 180)]);
        assert_eq!(s.runs(100), vec![(60, 140)]);
    }

    #[test]
    fn an_off_centre_shape_finds_its_own_axis() {
        let mut m = GrayImage::new(300, 100);
        paint(&mut m, [100, 10, 200, 90]);
        paint(&mut m, [60, 40, 100, 50]); // a handle on the left only
        let s = Shape::new(&m);
        // The body's axis (149.5) wins over the box's centre (129.5) when the handle is small.
        assert!(s.symmetry < 0.99);
        assert!(s.axis > 135.0, "axis {}", s.axis);
    }
}
