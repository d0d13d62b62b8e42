//! Features of the product — what a technician calls out on a flat — each found from
//! something measured in the photo and named from its category's vocabulary:
//!
//! | category | vocabulary |
//! |---|---|
//! | tops, outerwear | neckline, collar, hood, drawcords, placket, centre front zip, kangaroo pocket, left/right cuff, left/right sleeve hem, left/right sleeve band, left/right contrast sleeve, hem, hem rib, prints and logos by placement (centre front print, left chest logo, back neck print, left sleeve print …) |
//! | bottoms | waistband, fly, left/right leg hem, prints and logos |
//! | headwear | crown, brim, front logo |
//! | bags | handles, handle attachment, top hem, front print / logo |
//! | drinkware | rim, handle, base, print / logo |
//! | bottles | closure, neck, label, base |
//! | footwear | toe, heel, sole, logo |
//! | other | prints and logos only |
//!
//! Left and right are the wearer's for worn products (on a front view the wearer's left is
//! the image's right). A feature is only placed where its evidence was measured: no cuff on
//! a sleeve without a band, no pocket on a back view, no callout on a plain region. Names are
//! unique; two prints that would share a name are one feature.

use techpack_model::ProductCategory;

use super::contrast::{ContrastMap, Region};
use super::landmarks::{ImageSide, Landmarks, is_back_view};
use super::segment::Segmentation;
use super::shape::{Shape, dist};
use crate::Feature;

/// A feature in working pixels, before it is scaled and named for storage.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Found {
    /// Name from the vocabulary (unique).
    pub name: String,
    /// Kind, snake_case.
    pub kind: &'static str,
    /// Box in working pixels.
    pub bbox: [f64; 4],
    /// Callout target in working pixels.
    pub anchor: [f64; 2],
    /// Wearer's side, `centre` or empty.
    pub side: &'static str,
    /// 0..=1.
    pub confidence: f64,
    /// Why.
    pub evidence: String,
    /// How much a close-up of it shows (ranks close-ups).
    pub interest: f64,
    /// Construction lines the flat draws for it (seams, band lines, a zip), working pixels.
    pub lines: Vec<Vec<[f64; 2]>>,
}

/// What feature detection reads.
pub(crate) struct Inputs<'a> {
    pub category: ProductCategory,
    pub view: &'a str,
    pub seg: &'a Segmentation,
    pub shape: &'a Shape,
    pub landmarks: &'a Landmarks,
    pub contrast: &'a ContrastMap,
    /// A straight line down the centre front (zip or placket), if one was found.
    pub front_line: Option<super::category::FrontLine>,
    /// Working pixels per centimetre.
    pub px_per_cm: f64,
}

/// Gradients of the lightly smoothed grey image, for seam and band lines.
struct Gradients {
    w: u32,
    gx: Vec<f32>,
    gy: Vec<f32>,
}

impl Gradients {
    fn new(seg: &Segmentation) -> Self {
        let gray = image::imageops::grayscale(&seg.working);
        let smooth = imageproc::filter::gaussian_blur_f32(&gray, 1.0);
        let (w, h) = smooth.dimensions();
        let at = |x: u32, y: u32| f32::from(smooth.get_pixel(x.min(w - 1), y.min(h - 1)).0[0]);
        let mut gx = vec![0f32; (w * h) as usize];
        let mut gy = vec![0f32; (w * h) as usize];
        for y in 0..h {
            for x in 0..w {
                let i = (y * w + x) as usize;
                gx[i] = (at(x + 1, y) - at(x.saturating_sub(1), y)) * 0.5;
                gy[i] = (at(x, y + 1) - at(x, y.saturating_sub(1))) * 0.5;
            }
        }
        Self { w, gx, gy }
    }

    /// Gradient along unit direction `d` at a point (nearest pixel), absolute.
    fn along(&self, p: [f64; 2], d: [f64; 2]) -> f64 {
        let h = (self.gx.len() as u32) / self.w;
        if p[0] < 0.0 || p[1] < 0.0 {
            return 0.0;
        }
        let (x, y) = (p[0] as u32, p[1] as u32);
        if x >= self.w || y >= h {
            return 0.0;
        }
        let i = (y * self.w + x) as usize;
        (f64::from(self.gx[i]) * d[0] + f64::from(self.gy[i]) * d[1]).abs()
    }
}

/// Scans lines parallel to `a → b`, shifted by `offsets` along `normal`, and returns the
/// offset whose line is a seam or band edge: the 60th percentile of the gradient across the
/// line (so the line must run most of the way, not cross one wrinkle) at least 2.2× the
/// median over all offsets and at least 4 grey levels per pixel.
fn band_line(
    g: &Gradients,
    shape: &Shape,
    a: [f64; 2],
    b: [f64; 2],
    normal: [f64; 2],
    offsets: &[f64],
    skip: &dyn Fn([f64; 2]) -> bool,
) -> Option<(f64, f64)> {
    let len = dist(a, b);
    if len < 6.0 || offsets.len() < 4 {
        return None;
    }
    let samples = (len / 2.0).round().clamp(6.0, 200.0) as usize;
    let strength: Vec<(f64, f64)> = offsets
        .iter()
        .map(|&d| {
            let mut v: Vec<f64> = (0..samples)
                .filter_map(|k| {
                    // The central 80 % of the line: its ends sit on the outline.
                    let t = 0.1 + 0.8 * k as f64 / (samples - 1) as f64;
                    let p = [
                        a[0] + (b[0] - a[0]) * t + normal[0] * d,
                        a[1] + (b[1] - a[1]) * t + normal[1] * d,
                    ];
                    (shape.on(p[0] as i64, p[1] as i64) && !skip(p)).then(|| g.along(p, normal))
                })
                .collect();
            if v.len() < samples / 2 {
                return (d, 0.0);
            }
            v.sort_by(f64::total_cmp);
            (d, v[v.len() * 6 / 10])
        })
        .collect();
    let mut all: Vec<f64> = strength.iter().map(|s| s.1).collect();
    all.sort_by(f64::total_cmp);
    let median = all[all.len() / 2].max(0.5);
    strength
        .into_iter()
        .filter(|s| s.1 >= 2.2 * median && s.1 >= 4.0)
        .max_by(|p, q| p.1.total_cmp(&q.1))
        .map(|(d, s)| (d, s / median))
}

fn range(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| lo + (hi - lo) * i as f64 / (n - 1).max(1) as f64)
        .collect()
}

fn boxed(points: &[[f64; 2]], pad: f64) -> [f64; 4] {
    let mut b = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    for p in points {
        b[0] = b[0].min(p[0]);
        b[1] = b[1].min(p[1]);
        b[2] = b[2].max(p[0]);
        b[3] = b[3].max(p[1]);
    }
    [b[0] - pad, b[1] - pad, b[2] + pad, b[3] + pad]
}

/// A region's point nearest its centre (the centre of a ring is not on the ring).
fn anchor_of(r: &Region, w: u32) -> [f64; 2] {
    r.pixels
        .iter()
        .map(|&i| {
            [
                f64::from((i as u32) % w) + 0.5,
                f64::from((i as u32) / w) + 0.5,
            ]
        })
        .min_by(|p, q| dist(*p, r.centre).total_cmp(&dist(*q, r.centre)))
        .unwrap_or(r.centre)
}

/// Detects the features of a product (see the module docs).
pub(crate) fn detect(inp: &Inputs<'_>) -> Vec<Found> {
    let mut out: Vec<Found> = Vec::new();
    let g = Gradients::new(inp.seg);
    let back = is_back_view(inp.view);
    match inp.category {
        ProductCategory::Tops | ProductCategory::Outerwear | ProductCategory::Apparel => {
            if inp.landmarks.get("crotch", ImageSide::Centre).is_some() {
                bottoms(inp, &g, back, &mut out);
            } else {
                tops(inp, &g, back, &mut out);
            }
        }
        ProductCategory::Bottoms => bottoms(inp, &g, back, &mut out),
        ProductCategory::Headwear | ProductCategory::Accessories => headwear(inp, &mut out),
        ProductCategory::Bags => bag(inp, &mut out),
        ProductCategory::Drinkware | ProductCategory::Home => drinkware(inp, &mut out),
        ProductCategory::Bottles => bottle(inp, &mut out),
        ProductCategory::Footwear => footwear(inp, &mut out),
        ProductCategory::Other | ProductCategory::Auto => {}
    }
    prints(inp, back, &mut out);
    dedupe(&mut out);
    out
}

/// Keeps names unique: a second feature of the same name is merged into the first (their
/// boxes joined) rather than numbered.
fn dedupe(out: &mut Vec<Found>) {
    let mut kept: Vec<Found> = Vec::new();
    for f in out.drain(..) {
        match kept.iter_mut().find(|k| k.name == f.name) {
            Some(k) => {
                k.bbox = [
                    k.bbox[0].min(f.bbox[0]),
                    k.bbox[1].min(f.bbox[1]),
                    k.bbox[2].max(f.bbox[2]),
                    k.bbox[3].max(f.bbox[3]),
                ];
                k.confidence = k.confidence.max(f.confidence);
            }
            None => kept.push(f),
        }
    }
    *out = kept;
}

fn wearer(lm: &Landmarks, side: ImageSide) -> &'static str {
    lm.wearer_side(side).unwrap_or("centre")
}

fn tops(inp: &Inputs<'_>, g: &Gradients, back: bool, out: &mut Vec<Found>) {
    let lm = inp.landmarks;
    let shape = inp.shape;
    let (bw, bh) = (shape.bw(), shape.bh());
    let a = shape.axis;
    let hps_l = lm.get("hps", ImageSide::Left).map(|p| p.p);
    let hps_r = lm.get("hps", ImageSide::Right).map(|p| p.p);
    let hood_top = lm.get("hood_top", ImageSide::Centre).map(|p| p.p);
    let body_top = hps_l.zip(hps_r).map(|(l, r)| l[1].min(r[1]));
    let hem_y = lm
        .get("hem", ImageSide::Left)
        .or(lm.get("hem", ImageSide::Right))
        .map(|p| p.p[1]);
    let body_len = match (body_top, hem_y) {
        (Some(t), Some(hm)) if hm > t => hm - t,
        _ => bh,
    };

    // The centre-front line: a zip down the whole front, or a placket from the neck.
    let mut placket = false;
    if !back && let Some(line) = inp.front_line {
        let start_v = body_top.map_or(0.0, |t| (f64::from(line.rows.0) - t) / body_len);
        let cover = f64::from(line.rows.1 - line.rows.0) / body_len;
        if line.coverage >= 0.6 {
            let x = (line.x_top + line.x_bottom) / 2.0;
            let top = [line.x_top, f64::from(line.rows.0)];
            let pad = bw * 0.05;
            out.push(Found {
                name: "centre front zip".into(),
                kind: "zip",
                // The zip's head (its pull) is at the top: frame the top third.
                bbox: [
                    x - pad,
                    top[1] - pad,
                    x + pad,
                    top[1] + cover * body_len / 3.0,
                ],
                anchor: [
                    line.x_top + (line.x_bottom - line.x_top) * 0.25,
                    top[1] + cover * body_len * 0.25,
                ],
                side: "centre",
                confidence: line.coverage.min(0.95),
                evidence: format!(
                    "a straight line runs down the centre front over {:.0} % of the body's length",
                    line.coverage * 100.0
                ),
                interest: 0.8,
                lines: vec![vec![top, [line.x_bottom, f64::from(line.rows.1)]]],
            });
        } else if start_v < 0.12
            && (0.08..0.45).contains(&cover)
            && hood_top.is_none()
            && buttons_on(inp, line) > 0
        {
            placket = true;
            let pad = bw * 0.06;
            out.push(Found {
                name: "placket".into(),
                kind: "placket",
                bbox: [
                    line.x_top - pad,
                    f64::from(line.rows.0) - pad,
                    line.x_bottom + pad,
                    f64::from(line.rows.1) + pad,
                ],
                anchor: [(line.x_top + line.x_bottom) / 2.0, f64::from(line.rows.0 + line.rows.1) / 2.0],
                side: "centre",
                confidence: 0.7,
                evidence: format!(
                    "a straight line runs down the centre front from the neckline over {:.0} % of the body's length, with {} button(s) on it",
                    cover * 100.0,
                    buttons_on(inp, line)
                ),
                interest: 0.75,
                lines: vec![vec![
                    [line.x_top, f64::from(line.rows.0)],
                    [line.x_bottom, f64::from(line.rows.1)],
                ]],
            });
        }
    }

    // Neckline, collar or hood.
    if let Some(top) = hood_top {
        let base = body_top.unwrap_or(top[1] + bh * 0.2);
        let (xl, xr) = match (
            lm.get("hood_side", ImageSide::Left),
            lm.get("hood_side", ImageSide::Right),
        ) {
            (Some(l), Some(r)) => (l.p[0], r.p[0]),
            _ => (a - bw * 0.2, a + bw * 0.2),
        };
        out.push(Found {
            name: "hood".into(),
            kind: "hood",
            bbox: [xl, top[1], xr, base + bh * 0.04],
            anchor: [a, top[1] + (base - top[1]) * 0.3],
            side: "centre",
            confidence: 0.85,
            evidence: format!(
                "the silhouette rises {:.0} % of its height above the shoulders into a hood",
                (base - top[1]) / bh * 100.0
            ),
            interest: 0.7,
            lines: Vec::new(),
        });
    } else if let (Some(l), Some(r)) = (hps_l, hps_r) {
        let neck_y = shape.top(a.round() as u32).map_or(l[1], f64::from);
        let depth = (neck_y - l[1].min(r[1])).max(bh * 0.03);
        let (name, kind, why) = if placket {
            (
                "collar",
                "collar",
                "a placket opens below it, as on a polo or shirt",
            )
        } else {
            (
                "neckline",
                "neckline",
                "the top edge dips between the high points of the shoulder",
            )
        };
        out.push(Found {
            name: name.into(),
            kind,
            bbox: [
                l[0] - bw * 0.04,
                l[1].min(r[1]) - bh * 0.02,
                r[0] + bw * 0.04,
                neck_y + depth * 1.2,
            ],
            anchor: [a, neck_y],
            side: "centre",
            confidence: 0.85,
            evidence: format!("{why} ({:.1} cm wide)", (r[0] - l[0]) / inp.px_per_cm),
            interest: 0.65,
            lines: Vec::new(),
        });
    }

    // Sleeve ends: a band line parallel to the opening makes a cuff (long sleeve) or band.
    let body_for_sleeve = body_len.max(1.0);
    for side in [ImageSide::Left, ImageSide::Right] {
        let (Some(o), Some(i), Some(sp), Some(ua)) = (
            lm.get("sleeve_end_outer", side),
            lm.get("sleeve_end_inner", side),
            lm.get("shoulder", side),
            lm.get("underarm", side),
        ) else {
            continue;
        };
        let (o, i) = (o.p, i.p);
        let end_mid = [(o[0] + i[0]) / 2.0, (o[1] + i[1]) / 2.0];
        let arm_mid = [(sp.p[0] + ua.p[0]) / 2.0, (sp.p[1] + ua.p[1]) / 2.0];
        let length = dist(end_mid, arm_mid);
        if length < 4.0 {
            continue;
        }
        // Inward along the sleeve, from the opening towards the armhole.
        let inward = [
            (arm_mid[0] - end_mid[0]) / length,
            (arm_mid[1] - end_mid[1]) / length,
        ];
        let long_sleeve = length / body_for_sleeve > 0.45;
        let offsets = range(
            length * 0.03,
            length * if long_sleeve { 0.22 } else { 0.3 },
            16,
        );
        let band = band_line(g, shape, o, i, inward, &offsets, &|_| false);
        let s = wearer(lm, side);
        let opening = dist(o, i);
        let (name, kind, evidence, conf) = match band {
            Some((d, ratio)) if long_sleeve => (
                format!("{s} cuff"),
                "cuff",
                format!(
                    "a seam crosses the sleeve {:.1} cm from its end (edge {:.1}× the fabric's texture): a cuff",
                    d / inp.px_per_cm,
                    ratio
                ),
                (0.5 + ratio / 10.0).min(0.9),
            ),
            Some((d, ratio)) => (
                format!("{s} sleeve band"),
                "sleeve_band",
                format!(
                    "a seam crosses the sleeve {:.1} cm from its end (edge {:.1}× the fabric's texture)",
                    d / inp.px_per_cm,
                    ratio
                ),
                (0.5 + ratio / 10.0).min(0.9),
            ),
            None => (
                format!("{s} sleeve hem"),
                "sleeve_hem",
                format!(
                    "the sleeve ends in a finished edge {:.1} cm across, with no band seam",
                    opening / inp.px_per_cm
                ),
                0.6,
            ),
        };
        let depth = band.map_or(length * 0.12, |b| b.0 * 1.3).max(length * 0.08);
        let pts = [
            o,
            i,
            [o[0] + inward[0] * depth, o[1] + inward[1] * depth],
            [i[0] + inward[0] * depth, i[1] + inward[1] * depth],
        ];
        out.push(Found {
            name,
            kind,
            bbox: boxed(&pts, bw * 0.02),
            anchor: [
                end_mid[0] + inward[0] * depth * 0.4,
                end_mid[1] + inward[1] * depth * 0.4,
            ],
            side: s,
            confidence: conf,
            evidence,
            interest: if kind == "sleeve_hem" { 0.35 } else { 0.55 },
            lines: band
                .map(|(d, _)| {
                    vec![vec![
                        [o[0] + inward[0] * d, o[1] + inward[1] * d],
                        [i[0] + inward[0] * d, i[1] + inward[1] * d],
                    ]]
                })
                .unwrap_or_default(),
        });
        // A sleeve of another fabric colour than the body.
        if let Some(block) = contrast_sleeve(inp, side, sp.p, ua.p, o, i) {
            out.push(block);
        }
    }

    // Hem: a band seam above the bottom edge makes it a rib (or waistband).
    if let (Some(l), Some(r)) = (
        lm.get("hem", ImageSide::Left),
        lm.get("hem", ImageSide::Right),
    ) {
        let (l, r) = (l.p, r.p);
        let offsets = range(body_len * 0.015, body_len * 0.14, 18);
        let band = band_line(g, shape, l, r, [0.0, -1.0], &offsets, &|p| {
            in_region(inp, p)
        });
        let height = band.map_or(body_len * 0.06, |b| b.0);
        let is_rib = band.is_some_and(|b| b.0 / body_len >= 0.04);
        let (name, kind, evidence) = if is_rib {
            let b = band.unwrap_or_default();
            (
                "hem rib",
                "rib",
                format!(
                    "a seam runs along the hem {:.1} cm above the bottom edge (edge {:.1}× the fabric's texture): a rib band",
                    b.0 / inp.px_per_cm,
                    b.1
                ),
            )
        } else {
            (
                "hem",
                "hem",
                format!(
                    "the body ends in a bottom edge {:.1} cm across",
                    (r[0] - l[0]) / inp.px_per_cm
                ),
            )
        };
        let w = r[0] - l[0];
        // Framed on one corner and part of the edge: a whole hem is too wide for a close-up.
        let corner = if lm.wearer_left_is_image_left { l } else { r };
        let sx = if corner[0] < a { 1.0 } else { -1.0 };
        let x_end = corner[0] + sx * w * 0.35;
        out.push(Found {
            name: name.into(),
            kind,
            bbox: [
                corner[0].min(x_end),
                corner[1] - height * 1.6,
                corner[0].max(x_end),
                corner[1] + bh * 0.015,
            ],
            anchor: [a + sx * w * 0.12, corner[1] - height * 0.4],
            side: "",
            confidence: if is_rib { 0.75 } else { 0.6 },
            evidence,
            interest: if is_rib { 0.45 } else { 0.3 },
            lines: band
                .map(|(d, _)| vec![vec![[l[0], l[1] - d], [r[0], r[1] - d]]])
                .unwrap_or_default(),
        });
    }

    // Kangaroo pocket: a horizontal seam across the middle of the lower front — of a
    // sweatshirt or hoodie (long sleeves or a hood), never a tee's.
    let long_sleeved = [ImageSide::Left, ImageSide::Right].into_iter().any(|side| {
        match (lm.get("shoulder", side), lm.get("sleeve_end_outer", side)) {
            (Some(sp), Some(end)) => dist(sp.p, end.p) / body_len > 0.45,
            _ => false,
        }
    });
    if !back
        && (hood_top.is_some() || long_sleeved)
        && let (Some(top), Some(hy)) = (body_top, hem_y)
    {
        let cl = lm.get("chest", ImageSide::Left).map(|p| p.p[0]);
        let cr = lm.get("chest", ImageSide::Right).map(|p| p.p[0]);
        if let (Some(cl), Some(cr)) = (cl, cr) {
            let half = (cr - cl) * 0.22;
            let y_lo = top + body_len * 0.45;
            let offsets = range(0.0, body_len * 0.38, 24);
            let found = band_line(
                g,
                shape,
                [a - half, y_lo],
                [a + half, y_lo],
                [0.0, 1.0],
                &offsets,
                &|p| in_region(inp, p),
            );
            if let Some((d, ratio)) = found {
                let y = y_lo + d;
                if y < hy - body_len * 0.1 && ratio >= 3.0 {
                    let pw = (cr - cl) * 0.3;
                    out.push(Found {
                        name: "kangaroo pocket".into(),
                        kind: "pocket",
                        bbox: [a - pw, y - body_len * 0.03, a + pw, (hy - body_len * 0.03).max(y + 4.0)],
                        anchor: [a, y + (hy - y) * 0.3],
                        side: "centre",
                        confidence: (0.45 + ratio / 12.0).min(0.85),
                        evidence: format!(
                            "a horizontal seam crosses the lower front at {:.0} % of the body's length (edge {:.1}× the fabric's texture)",
                            (y - top) / body_len * 100.0,
                            ratio
                        ),
                        interest: 0.6,
                        lines: vec![vec![
                            [a - pw * 1.25, hy - body_len * 0.03],
                            [a - pw, y],
                            [a + pw, y],
                            [a + pw * 1.25, hy - body_len * 0.03],
                        ]],
                    });
                }
            }
        }
    }

    drawcords(inp, hood_top.is_some(), out);
}

/// Small contrasting dots on a centre-front line: buttons.
fn buttons_on(inp: &Inputs<'_>, line: super::category::FrontLine) -> usize {
    let bw = inp.shape.bw();
    let area = inp.shape.area.max(1) as f64;
    inp.contrast
        .regions
        .iter()
        .filter(|r| {
            let t = (r.centre[1] - f64::from(line.rows.0))
                / f64::from((line.rows.1 - line.rows.0).max(1));
            let x = line.x_top + (line.x_bottom - line.x_top) * t.clamp(0.0, 1.0);
            let (rw, rh) = (
                f64::from(r.bbox[2] - r.bbox[0]),
                f64::from(r.bbox[3] - r.bbox[1]),
            );
            (-0.05..=1.05).contains(&t)
                && (r.centre[0] - x).abs() < bw * 0.03
                && (r.area as f64) < area * 0.004
                && rw < rh * 2.0
                && rh < rw * 2.0
        })
        .count()
}

/// Whether a point lies in a contrast region (a print's own edges are not seams).
fn in_region(inp: &Inputs<'_>, p: [f64; 2]) -> bool {
    let (w, _) = inp.seg.mask.dimensions();
    inp.contrast.regions.iter().any(|r| {
        let b = r.bbox.map(f64::from);
        p[0] >= b[0] - 3.0 && p[0] <= b[2] + 3.0 && p[1] >= b[1] - 3.0 && p[1] <= b[3] + 3.0
    }) && w > 0
}

/// A sleeve mostly of a fabric colour other than the body's.
fn contrast_sleeve(
    inp: &Inputs<'_>,
    side: ImageSide,
    sp: [f64; 2],
    ua: [f64; 2],
    o: [f64; 2],
    i: [f64; 2],
) -> Option<Found> {
    let c = inp.contrast;
    if c.fabric.len() < 2 {
        return None;
    }
    let (w, h) = inp.seg.mask.dimensions();
    // The body's fabric: the colour at the chest's centre line.
    let chest_y = inp
        .landmarks
        .get("chest", side)
        .map_or((sp[1] + ua[1]) / 2.0 + 10.0, |p| p.p[1]);
    let body_idx =
        (chest_y.round() as u32).min(h - 1) * w + (inp.shape.axis.round() as u32).min(w - 1);
    let body = c
        .fabric_of
        .get(body_idx as usize)
        .copied()
        .filter(|f| *f != u8::MAX)?;
    // Pixels beyond the armhole line (shoulder point to underarm), on the sleeve's side.
    let (dx, dy) = (ua[0] - sp[0], ua[1] - sp[1]);
    let outward = (o[0] - sp[0]) * dy - (o[1] - sp[1]) * dx;
    let bb = boxed(&[sp, ua, o, i], 0.0);
    let mut counts = vec![0usize; c.fabric.len()];
    let mut total = 0usize;
    for y in (bb[1].max(0.0) as u32)..(bb[3].min(f64::from(h)) as u32) {
        for x in (bb[0].max(0.0) as u32)..(bb[2].min(f64::from(w)) as u32) {
            let cross = (f64::from(x) - sp[0]) * dy - (f64::from(y) - sp[1]) * dx;
            if cross * outward <= 0.0 {
                continue;
            }
            let f = c.fabric_of[(y * w + x) as usize];
            if f != u8::MAX {
                counts[f as usize] += 1;
                total += 1;
            }
        }
    }
    let (best, n) = counts.iter().enumerate().max_by_key(|(_, n)| **n)?;
    if total < 50 || best == body as usize || (*n as f64) < total as f64 * 0.6 {
        return None;
    }
    let same = super::color::delta_e(&c.fabric[best].0, &c.fabric[body as usize].0);
    if same < 20.0 {
        return None;
    }
    let s = wearer(inp.landmarks, side);
    let mid = [
        (sp[0] + ua[0] + o[0] + i[0]) / 4.0,
        (sp[1] + ua[1] + o[1] + i[1]) / 4.0,
    ];
    Some(Found {
        name: format!("{s} contrast sleeve"),
        kind: "colour_block",
        bbox: bb,
        anchor: mid,
        side: s,
        confidence: 0.8,
        evidence: format!(
            "{:.0} % of the sleeve is a fabric colour ΔE {same:.0} from the body's",
            *n as f64 / total as f64 * 100.0
        ),
        interest: 0.4,
        lines: Vec::new(),
    })
}

/// Two thin contrasting cords hanging down either side of the centre below the neck.
fn drawcords(inp: &Inputs<'_>, hooded: bool, out: &mut Vec<Found>) {
    let shape = inp.shape;
    let (bw, bh) = (shape.bw(), shape.bh());
    let a = shape.axis;
    let cords: Vec<&Region> = inp
        .contrast
        .regions
        .iter()
        .filter(|r| {
            let (w, h) = (
                f64::from(r.bbox[2] - r.bbox[0]),
                f64::from(r.bbox[3] - r.bbox[1]),
            );
            let v = (r.centre[1] - f64::from(shape.bbox[1])) / bh;
            h >= w * 3.0
                && h >= bh * 0.06
                && (r.centre[0] - a).abs() < bw * 0.16
                && (0.1..0.6).contains(&v)
        })
        .collect();
    let left = cords.iter().any(|r| r.centre[0] < a);
    let right = cords.iter().any(|r| r.centre[0] > a);
    if cords.is_empty() || !(hooded || (left && right)) {
        return;
    }
    let mut b = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    for r in &cords {
        b = [
            b[0].min(f64::from(r.bbox[0])),
            b[1].min(f64::from(r.bbox[1])),
            b[2].max(f64::from(r.bbox[2])),
            b[3].max(f64::from(r.bbox[3])),
        ];
    }
    let w = inp.seg.mask.width();
    out.push(Found {
        name: "drawcords".into(),
        kind: "drawcord",
        bbox: [
            b[0] - bw * 0.03,
            b[1] - bh * 0.02,
            b[2] + bw * 0.03,
            b[1] + (b[3] - b[1]) * 0.6,
        ],
        anchor: anchor_of(cords[0], w),
        side: "centre",
        confidence: if left && right { 0.8 } else { 0.6 },
        evidence: format!(
            "{} thin contrasting cord(s) hang down beside the centre line below the neck",
            cords.len()
        ),
        interest: 0.5,
        lines: Vec::new(),
    });
}

fn bottoms(inp: &Inputs<'_>, g: &Gradients, back: bool, out: &mut Vec<Found>) {
    let lm = inp.landmarks;
    let shape = inp.shape;
    let (bw, bh) = (shape.bw(), shape.bh());
    if let (Some(l), Some(r)) = (
        lm.get("waist", ImageSide::Left),
        lm.get("waist", ImageSide::Right),
    ) {
        let (l, r) = (l.p, r.p);
        let offsets = range(bh * 0.015, bh * 0.12, 14);
        let band = band_line(g, shape, l, r, [0.0, 1.0], &offsets, &|p| in_region(inp, p));
        let depth = band.map_or(bh * 0.06, |b| b.0);
        out.push(Found {
            name: "waistband".into(),
            kind: "waistband",
            bbox: [l[0], l[1] - bh * 0.02, l[0] + (r[0] - l[0]) * 0.5, l[1] + depth * 1.5],
            anchor: [shape.axis - bw * 0.15, l[1] + depth * 0.5],
            side: "",
            confidence: if band.is_some() { 0.8 } else { 0.6 },
            evidence: match band {
                Some((d, ratio)) => format!(
                    "a seam runs {:.1} cm below the top edge (edge {ratio:.1}× the fabric's texture)",
                    d / inp.px_per_cm
                ),
                None => "the garment's straight top edge".into(),
            },
            interest: 0.5,
            lines: band
                .map(|(d, _)| vec![vec![[l[0], l[1] + d], [r[0], r[1] + d]]])
                .unwrap_or_default(),
        });
    }
    if !back && let Some(line) = inp.front_line {
        let top = lm
            .get("waist_centre", ImageSide::Centre)
            .map_or(f64::from(shape.bbox[1]), |p| p.p[1]);
        let crotch = lm
            .get("crotch", ImageSide::Centre)
            .map_or(top + bh * 0.3, |p| p.p[1]);
        if f64::from(line.rows.0) < top + bh * 0.12
            && f64::from(line.rows.1) < crotch + bh * 0.05
            && line.rows.1 > line.rows.0 + 8
        {
            out.push(Found {
                name: "fly".into(),
                kind: "fly",
                bbox: [
                    line.x_top - bw * 0.06,
                    f64::from(line.rows.0),
                    line.x_bottom + bw * 0.06,
                    f64::from(line.rows.1),
                ],
                anchor: [
                    (line.x_top + line.x_bottom) / 2.0,
                    f64::from(line.rows.0 + line.rows.1) / 2.0,
                ],
                side: "centre",
                confidence: 0.65,
                evidence: "a straight line runs down the centre front from the waistband".into(),
                interest: 0.6,
                lines: Vec::new(),
            });
        }
    }
    for side in [ImageSide::Left, ImageSide::Right] {
        if let (Some(o), Some(i)) = (lm.get("leg_outer", side), lm.get("leg_inner", side)) {
            let s = wearer(lm, side);
            out.push(Found {
                name: format!("{s} leg hem"),
                kind: "hem",
                bbox: boxed(&[o.p, i.p], bw * 0.04),
                anchor: [(o.p[0] + i.p[0]) / 2.0, o.p[1] - bh * 0.01],
                side: s,
                confidence: 0.6,
                evidence: format!(
                    "the leg ends in a finished edge {:.1} cm across",
                    dist(o.p, i.p) / inp.px_per_cm
                ),
                interest: 0.3,
                lines: Vec::new(),
            });
        }
    }
}

fn headwear(inp: &Inputs<'_>, out: &mut Vec<Found>) {
    let lm = inp.landmarks;
    let shape = inp.shape;
    let (bw, bh) = (shape.bw(), shape.bh());
    let Some(top) = lm.get("crown_top", ImageSide::Centre).map(|p| p.p) else {
        return;
    };
    let base_y = lm
        .get("crown_base", ImageSide::Centre)
        .map_or(top[1] + bh * 0.6, |p| p.p[1]);
    let (cx0, cx1) = match (
        lm.get("crown_back", ImageSide::Centre),
        lm.get("brim_base", ImageSide::Centre),
    ) {
        (Some(b), Some(f)) => (b.p[0].min(f.p[0]), b.p[0].max(f.p[0])),
        _ => match (
            lm.get("crown_side", ImageSide::Left),
            lm.get("crown_side", ImageSide::Right),
        ) {
            (Some(l), Some(r)) => (l.p[0], r.p[0]),
            _ => (f64::from(shape.bbox[0]), f64::from(shape.bbox[2])),
        },
    };
    out.push(Found {
        name: "crown".into(),
        kind: "crown",
        bbox: [cx0, top[1], cx1, top[1] + (base_y - top[1]) * 0.5],
        anchor: [top[0], top[1] + (base_y - top[1]) * 0.2],
        side: "",
        confidence: 0.8,
        evidence: format!(
            "the top rises in a dome {:.1} cm above its base",
            (base_y - top[1]) / inp.px_per_cm
        ),
        interest: 0.45,
        lines: Vec::new(),
    });
    let brim = match (
        lm.get("brim_base", ImageSide::Centre),
        lm.get("brim_tip", ImageSide::Centre),
    ) {
        (Some(b), Some(t)) => Some((
            boxed(&[b.p, t.p], bw * 0.04),
            [(b.p[0] + t.p[0]) / 2.0, (b.p[1] + t.p[1]) / 2.0],
            "the brim reaches out beyond the crown's front",
        )),
        _ => match (
            lm.get("brim_end", ImageSide::Left),
            lm.get("brim_end", ImageSide::Right),
        ) {
            (Some(l), Some(r)) => Some((
                [l.p[0], base_y, r.p[0], f64::from(shape.bbox[3])],
                [shape.axis, (base_y + f64::from(shape.bbox[3])) / 2.0],
                "the silhouette widens again below the crown into a brim",
            )),
            _ => None,
        },
    };
    if let Some((bbox, anchor, why)) = brim {
        out.push(Found {
            name: "brim".into(),
            kind: "brim",
            bbox,
            anchor: nearest_on(shape, anchor),
            side: "",
            confidence: 0.75,
            evidence: why.into(),
            interest: 0.45,
            lines: Vec::new(),
        });
    }
}

/// `p` if it is on the product, else the nearest contour point.
fn nearest_on(shape: &Shape, p: [f64; 2]) -> [f64; 2] {
    if shape.on(p[0] as i64, p[1] as i64) {
        p
    } else {
        shape.point(shape.nearest_index(p))
    }
}

fn bag(inp: &Inputs<'_>, out: &mut Vec<Found>) {
    let lm = inp.landmarks;
    let shape = inp.shape;
    let (bw, bh) = (shape.bw(), shape.bh());
    let body_top = lm.get("body_top_centre", ImageSide::Centre).map(|p| p.p[1]);
    if let (Some(h), Some(t)) = (lm.get("handle_top", ImageSide::Centre), body_top) {
        // The handles are the product above the body's top edge.
        let mut xs = (f64::INFINITY, f64::NEG_INFINITY);
        for y in (h.p[1] as u32)..(t as u32) {
            for r in shape.runs(y) {
                xs = (xs.0.min(f64::from(r.0)), xs.1.max(f64::from(r.1)));
            }
        }
        if xs.0.is_finite() {
            let anchor_y = (h.p[1] + t) / 2.0;
            let anchor = shape
                .runs(anchor_y as u32)
                .first()
                .map_or(h.p, |r| [f64::from(r.0 + r.1) / 2.0, anchor_y]);
            out.push(Found {
                name: "handles".into(),
                kind: "handle",
                bbox: [xs.0, h.p[1], xs.1, t],
                anchor,
                side: "",
                confidence: 0.85,
                evidence: format!(
                    "straps rise {:.1} cm above the body",
                    (t - h.p[1]) / inp.px_per_cm
                ),
                interest: 0.5,
                lines: Vec::new(),
            });
            // Where a handle meets the body: the run just above the body nearest the left.
            if let Some(run) = shape.runs((t - 2.0).max(0.0) as u32).first() {
                let x = f64::from(run.0 + run.1) / 2.0;
                out.push(Found {
                    name: "handle attachment".into(),
                    kind: "handle_attachment",
                    bbox: [x - bw * 0.08, t - bh * 0.07, x + bw * 0.08, t + bh * 0.07],
                    anchor: [x, t + 2.0],
                    side: "",
                    confidence: 0.7,
                    evidence: "a strap joins the body's top edge here".into(),
                    interest: 0.55,
                    lines: Vec::new(),
                });
            }
        }
    }
    if let (Some(l), Some(r)) = (
        lm.get("body_top", ImageSide::Left),
        lm.get("body_top", ImageSide::Right),
    ) {
        out.push(Found {
            name: "top hem".into(),
            kind: "hem",
            bbox: [
                r.p[0] - (r.p[0] - l.p[0]) * 0.35,
                r.p[1] - bh * 0.04,
                r.p[0] + bw * 0.02,
                r.p[1] + bh * 0.06,
            ],
            anchor: [l.p[0] + (r.p[0] - l.p[0]) * 0.75, r.p[1] + 2.0],
            side: "",
            confidence: 0.6,
            evidence: "the body's opening: its straight top edge".into(),
            interest: 0.3,
            // A bag's opening is finished with a turned hem; the flat shows its stitch line
            // just below the edge, where a technician expects it.
            lines: vec![vec![
                [l.p[0], l.p[1] + bh * 0.04],
                [r.p[0], r.p[1] + bh * 0.04],
            ]],
        });
    }
}

fn drinkware(inp: &Inputs<'_>, out: &mut Vec<Found>) {
    let lm = inp.landmarks;
    let shape = inp.shape;
    let bh = shape.bh();
    if let (Some(l), Some(r)) = (
        lm.get("rim", ImageSide::Left),
        lm.get("rim", ImageSide::Right),
    ) {
        out.push(Found {
            name: "rim".into(),
            kind: "rim",
            bbox: [
                l.p[0],
                f64::from(shape.bbox[1]) - 2.0,
                r.p[0],
                l.p[1] + bh * 0.1,
            ],
            anchor: [(l.p[0] + r.p[0]) / 2.0, l.p[1]],
            side: "",
            confidence: 0.8,
            evidence: format!(
                "the level top edge, {:.1} cm across",
                (r.p[0] - l.p[0]) / inp.px_per_cm
            ),
            interest: 0.35,
            lines: Vec::new(),
        });
    }
    for side in [ImageSide::Left, ImageSide::Right] {
        let (Some(o), Some(t), Some(b)) = (
            lm.get("handle_outer", side),
            lm.get("handle_top", side),
            lm.get("handle_bottom", side),
        ) else {
            continue;
        };
        let bbox = boxed(&[o.p, t.p, b.p], shape.bw() * 0.03);
        out.push(Found {
            name: "handle".into(),
            kind: "handle",
            bbox,
            anchor: nearest_on(shape, [(o.p[0] + t.p[0]) / 2.0, o.p[1]]),
            side: "",
            confidence: 0.85,
            evidence: format!(
                "a loop stands {:.1} cm out from the body's side",
                (o.p[0] - t.p[0]).abs() / inp.px_per_cm
            ),
            interest: 0.55,
            lines: Vec::new(),
        });
    }
    if let (Some(l), Some(r)) = (
        lm.get("base", ImageSide::Left),
        lm.get("base", ImageSide::Right),
    ) {
        out.push(Found {
            name: "base".into(),
            kind: "base",
            bbox: [
                l.p[0],
                l.p[1] - bh * 0.1,
                r.p[0],
                f64::from(shape.bbox[3]) + 2.0,
            ],
            anchor: [(l.p[0] + r.p[0]) / 2.0, l.p[1] - 2.0],
            side: "",
            confidence: 0.6,
            evidence: format!(
                "the foot the product stands on, {:.1} cm across",
                (r.p[0] - l.p[0]) / inp.px_per_cm
            ),
            interest: 0.25,
            lines: Vec::new(),
        });
    }
}

fn bottle(inp: &Inputs<'_>, out: &mut Vec<Found>) {
    let lm = inp.landmarks;
    let shape = inp.shape;
    let (bw, bh) = (shape.bw(), shape.bh());
    if let (Some(top), Some(l), Some(r)) = (
        lm.get("top", ImageSide::Centre),
        lm.get("neck", ImageSide::Left),
        lm.get("neck", ImageSide::Right),
    ) {
        out.push(Found {
            name: "closure".into(),
            kind: "cap",
            bbox: [
                l.p[0] - bw * 0.08,
                top.p[1] - 2.0,
                r.p[0] + bw * 0.08,
                l.p[1],
            ],
            anchor: [shape.axis, (top.p[1] + l.p[1]) / 2.0],
            side: "",
            confidence: 0.7,
            evidence: "the part above the neck's narrowest point".into(),
            interest: 0.5,
            lines: Vec::new(),
        });
        out.push(Found {
            name: "neck".into(),
            kind: "neck",
            bbox: [
                l.p[0] - bw * 0.1,
                l.p[1] - bh * 0.06,
                r.p[0] + bw * 0.1,
                l.p[1] + bh * 0.08,
            ],
            anchor: [shape.axis, l.p[1]],
            side: "",
            confidence: 0.7,
            evidence: format!(
                "the body narrows to {:.1} cm",
                (r.p[0] - l.p[0]) / inp.px_per_cm
            ),
            interest: 0.35,
            lines: Vec::new(),
        });
    }
    if let (Some(l), Some(r)) = (
        lm.get("base", ImageSide::Left),
        lm.get("base", ImageSide::Right),
    ) {
        out.push(Found {
            name: "base".into(),
            kind: "base",
            bbox: [
                l.p[0],
                l.p[1] - bh * 0.06,
                r.p[0],
                f64::from(shape.bbox[3]) + 2.0,
            ],
            anchor: [shape.axis, l.p[1] - 2.0],
            side: "",
            confidence: 0.6,
            evidence: "the foot the bottle stands on".into(),
            interest: 0.25,
            lines: Vec::new(),
        });
    }
}

fn footwear(inp: &Inputs<'_>, out: &mut Vec<Found>) {
    let lm = inp.landmarks;
    let shape = inp.shape;
    let (bw, bh) = (shape.bw(), shape.bh());
    let (Some(heel), Some(toe)) = (
        lm.get("heel_end", ImageSide::Centre),
        lm.get("toe_end", ImageSide::Centre),
    ) else {
        return;
    };
    let ground = heel.p[1];
    let dir = if toe.p[0] > heel.p[0] { 1.0 } else { -1.0 };
    out.push(Found {
        name: "toe".into(),
        kind: "toe",
        bbox: [
            toe.p[0] - dir * bw * 0.25,
            ground - bh * 0.6,
            toe.p[0],
            ground,
        ],
        anchor: nearest_on(shape, [toe.p[0] - dir * bw * 0.08, ground - bh * 0.25]),
        side: "",
        confidence: 0.7,
        evidence: "the lower, tapering end of the shoe".into(),
        interest: 0.45,
        lines: Vec::new(),
    });
    out.push(Found {
        name: "heel".into(),
        kind: "heel",
        bbox: [heel.p[0], ground - bh, heel.p[0] + dir * bw * 0.25, ground],
        anchor: nearest_on(shape, [heel.p[0] + dir * bw * 0.06, ground - bh * 0.4]),
        side: "",
        confidence: 0.7,
        evidence: "the taller end of the shoe".into(),
        interest: 0.45,
        lines: Vec::new(),
    });
    out.push(Found {
        name: "sole".into(),
        kind: "sole",
        bbox: [
            heel.p[0].min(toe.p[0]) + bw * 0.3,
            ground - bh * 0.15,
            heel.p[0].max(toe.p[0]) - bw * 0.3,
            ground + 2.0,
        ],
        anchor: [(heel.p[0] + toe.p[0]) / 2.0, ground - bh * 0.05],
        side: "",
        confidence: 0.6,
        evidence: "the level bottom edge the shoe stands on".into(),
        interest: 0.35,
        lines: Vec::new(),
    });
}

/// Prints and logos: contrast regions that are not trims, cords or colour blocks, grouped
/// (a badge's ring, its emblem and its lettering are one print) and named by placement. A
/// contrasting band round a top's neckline makes the neckline a collar instead.
fn prints(inp: &Inputs<'_>, back: bool, out: &mut Vec<Found>) {
    let shape = inp.shape;
    let (w, _) = inp.seg.mask.dimensions();
    let lm = inp.landmarks;
    let (bw, bh) = (shape.bw(), shape.bh());
    let a = shape.axis;
    let long = bw.max(bh);
    let product_area = shape.area.max(1) as f64;
    let garment = matches!(
        inp.category,
        ProductCategory::Tops
            | ProductCategory::Outerwear
            | ProductCategory::Apparel
            | ProductCategory::Bottoms
    );
    let neck = match (
        lm.get("hps", ImageSide::Left),
        lm.get("hps", ImageSide::Right),
    ) {
        (Some(l), Some(r)) => Some([
            l.p[0] - bw * 0.03,
            l.p[1].min(r.p[1]) - bh * 0.02,
            r.p[0] + bw * 0.03,
            l.p[1].max(r.p[1]) + bh * 0.09,
        ]),
        _ => None,
    };
    // Candidate regions: not strands along the outline, not cords, not blocks of fabric.
    let candidates: Vec<&Region> = inp
        .contrast
        .regions
        .iter()
        .filter(|r| {
            let (rw, rh) = (
                f64::from(r.bbox[2] - r.bbox[0]),
                f64::from(r.bbox[3] - r.bbox[1]),
            );
            let cord = rh >= rw * 3.0 && (r.centre[0] - a).abs() < bw * 0.16;
            // A block of another fabric reaches the outline along much of its size.
            let block = r.outline_share * (r.area as f64).sqrt()
                >= 0.3 * f64::from(inp.contrast.band)
                && r.area as f64 > product_area * 0.02;
            // Backdrop seen through a gap by an arm is not a print either.
            let gap = inp.seg.quality.backdrop_islands.iter().any(|i| {
                shape.is_side_gap(i.bbox)
                    && i.bbox[0] < r.bbox[2]
                    && r.bbox[0] < i.bbox[2]
                    && i.bbox[1] < r.bbox[3]
                    && r.bbox[1] < i.bbox[3]
            });
            r.outline_share <= 0.45
                && !cord
                && !block
                && !gap
                && r.area as f64 >= product_area * 0.0008
        })
        .collect();
    // Group regions whose boxes come within 2.5 % of the product's size of each other.
    let gap = long * 0.025;
    let near = |p: &[u32; 4], q: &[u32; 4]| {
        let (p, q) = (p.map(f64::from), q.map(f64::from));
        p[0] - gap <= q[2] && q[0] - gap <= p[2] && p[1] - gap <= q[3] && q[1] - gap <= p[3]
    };
    let mut group_of: Vec<usize> = (0..candidates.len()).collect();
    for i in 0..candidates.len() {
        for j in 0..i {
            if near(&candidates[i].bbox, &candidates[j].bbox) {
                let (gi, gj) = (group_of[i], group_of[j]);
                for g in group_of.iter_mut() {
                    if *g == gi {
                        *g = gj;
                    }
                }
            }
        }
    }
    let mut groups: Vec<Vec<&Region>> = Vec::new();
    let mut ids: Vec<usize> = group_of.clone();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        groups.push(
            candidates
                .iter()
                .zip(&group_of)
                .filter(|(_, g)| **g == id)
                .map(|(r, _)| *r)
                .collect(),
        );
    }
    for group in groups {
        let mut bb = [u32::MAX, u32::MAX, 0, 0];
        let (mut area, mut sx, mut sy) = (0usize, 0.0, 0.0);
        for r in &group {
            bb = [
                bb[0].min(r.bbox[0]),
                bb[1].min(r.bbox[1]),
                bb[2].max(r.bbox[2]),
                bb[3].max(r.bbox[3]),
            ];
            area += r.area;
            sx += r.centre[0] * r.area as f64;
            sy += r.centre[1] * r.area as f64;
        }
        let centre = [sx / area as f64, sy / area as f64];
        let (rw, rh) = (f64::from(bb[2] - bb[0]), f64::from(bb[3] - bb[1]));
        let box_share = rw * rh / product_area;
        if box_share < 0.0025 {
            continue;
        }
        let contrast = group.iter().map(|r| r.contrast).fold(0.0, f64::max);
        let in_neck = neck.is_some_and(|nb| {
            centre[0] >= nb[0] && centre[0] <= nb[2] && centre[1] >= nb[1] && centre[1] <= nb[3]
        });
        // The inside of a neckline in shadow is darker fabric, not a band of its own.
        let shadow = inp.contrast.fabric.first().is_some_and(|f| {
            let c = group[0].colour;
            c.l < f.0.l && ((c.a - f.0.a).powi(2) + (c.b - f.0.b).powi(2)).sqrt() < 8.0
        });
        if in_neck && shadow {
            continue;
        }
        // A contrasting strip down the centre front from the neck is a placket.
        if garment
            && !back
            && neck.is_some_and(|nb| f64::from(bb[1]) <= nb[3])
            && (centre[0] - a).abs() < bw * 0.05
            && rh >= rw * 1.8
            && !out.iter().any(|f| f.kind == "placket" || f.kind == "zip")
        {
            out.push(Found {
                name: "placket".into(),
                kind: "placket",
                bbox: [f64::from(bb[0]) - bw * 0.03, f64::from(bb[1]), f64::from(bb[2]) + bw * 0.03, f64::from(bb[3]) + bh * 0.01],
                anchor: [centre[0], centre[1]],
                side: "centre",
                confidence: 0.75,
                evidence: format!(
                    "a strip of contrasting colour (ΔE {contrast:.0}) runs down the centre front from the neckline"
                ),
                interest: 0.75,
                lines: Vec::new(),
            });
            if let Some(n) = out.iter_mut().find(|f| f.kind == "neckline") {
                n.name = "collar".into();
                n.kind = "collar";
                n.evidence = "a placket opens below it, as on a polo or shirt".into();
            }
            continue;
        }
        // A contrasting band round a top's neckline is its collar, not a print on it.
        if !matches!(inp.category, ProductCategory::Bottoms) && in_neck && rw >= rh * 1.5 {
            if let Some(n) = out.iter_mut().find(|f| f.kind == "neckline") {
                n.name = "collar".into();
                n.kind = "collar";
                n.evidence = format!(
                    "a band of contrasting colour (ΔE {contrast:.0}) runs round the neckline"
                );
                n.interest = 0.7;
            }
            continue;
        }
        let noun = if box_share < 0.025 { "logo" } else { "print" };
        let u = (centre[0] - a) / bw;
        let v = (centre[1] - f64::from(shape.bbox[1])) / bh;
        let image_side = if u < 0.0 {
            ImageSide::Left
        } else {
            ImageSide::Right
        };
        let s = lm.wearer_side(image_side).unwrap_or("centre");
        let name = if garment {
            let on_sleeve = lm.get("underarm", image_side).is_some_and(|ua| {
                if image_side == ImageSide::Left {
                    centre[0] < ua.p[0]
                } else {
                    centre[0] > ua.p[0]
                }
            }) && lm
                .get("underarm", image_side)
                .is_some_and(|ua| centre[1] < ua.p[1] + bh * 0.4);
            if on_sleeve {
                format!("{s} sleeve {noun}")
            } else if back {
                if v < 0.25 {
                    format!("back neck {noun}")
                } else {
                    format!("back {noun}")
                }
            } else if u.abs() < 0.1 {
                format!("centre front {noun}")
            } else if v < 0.5 {
                format!("{s} chest {noun}")
            } else {
                format!("{s} front {noun}")
            }
        } else {
            match inp.category {
                ProductCategory::Headwear | ProductCategory::Accessories => format!("front {noun}"),
                ProductCategory::Bottles => "label".to_string(),
                ProductCategory::Bags => format!("{} {noun}", if back { "back" } else { "front" }),
                _ => noun.to_string(),
            }
        };
        let pad = (rw.max(rh) * 0.1).max(3.0);
        let main = group
            .iter()
            .max_by_key(|r| r.area)
            .copied()
            .unwrap_or(group[0]);
        out.push(Found {
            name,
            kind: "print",
            bbox: [f64::from(bb[0]) - pad, f64::from(bb[1]) - pad, f64::from(bb[2]) + pad, f64::from(bb[3]) + pad],
            anchor: anchor_of(main, w),
            side: if garment { s } else { "" },
            confidence: (contrast / 40.0).clamp(0.5, 0.95),
            evidence: format!(
                "{} region(s) of another colour, ΔE {contrast:.0} from the fabric, over {:.1} % of the product",
                group.len(),
                box_share * 100.0
            ),
            interest: 0.9 + (box_share * 2.0).min(0.1),
            lines: Vec::new(),
        });
    }
}

/// The features as stored in the analysis, in input pixels.
pub(crate) fn to_analysis(found: &[Found], seg: &Segmentation) -> Vec<Feature> {
    let (iw, ih) = seg.input_size;
    let s = seg.scale;
    let r2 = |v: f64| (v * 100.0).round() / 100.0;
    found
        .iter()
        .map(|f| {
            let x0 = (f.bbox[0] * s).floor().clamp(0.0, f64::from(iw - 1)) as u32;
            let y0 = (f.bbox[1] * s).floor().clamp(0.0, f64::from(ih - 1)) as u32;
            let x1 = ((f.bbox[2] * s).ceil().clamp(0.0, f64::from(iw)) as u32).max(x0 + 1);
            let y1 = ((f.bbox[3] * s).ceil().clamp(0.0, f64::from(ih)) as u32).max(y0 + 1);
            Feature {
                name: f.name.clone(),
                kind: f.kind.to_string(),
                bbox: [x0, y0, x1, y1],
                anchor: [r2(f.anchor[0] * s), r2(f.anchor[1] * s)],
                side: f.side.to_string(),
                confidence: r2(f.confidence),
                evidence: f.evidence.clone(),
            }
        })
        .collect()
}
