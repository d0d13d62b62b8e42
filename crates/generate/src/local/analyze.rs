//! The analysis document from a segmentation: box, colours, measurements, detail regions and
//! confidence. The schema is documented in `crates/generate/ANALYSIS_SCHEMA.md`.

use image::GrayImage;
use imageproc::distance_transform::Norm;
use techpack_model::ProductCategory;

use super::color::{LabF, hex, lab_to_rgb, plain_name, rgb_to_lab};
use super::segment::{Segmentation, mask_bbox, subsample};
use crate::{
    ANALYSIS_SCHEMA_VERSION, Analysis, ColorShare, Confidence, DetailRegion, GenerateError,
    ImageInfo, Measurement, MeasurementScale, Measurements, ProductRegion, ScaleSource,
};

/// What the analysis needs besides the pixels.
#[derive(Debug, Clone)]
pub(crate) struct AnalyzeInput<'a> {
    /// The view (front, back …).
    pub view: &'a str,
    /// The product category.
    pub category: ProductCategory,
    /// A known real size, e.g. `height=70cm`.
    pub reference: Option<&'a str>,
}

/// Colours closer than this (ΔE76) are one colour to a buyer: k-means splits a single dyed
/// fabric into shading bands otherwise.
const MERGE_DELTA_E: f32 = 12.0;
/// Colours under this share of the product are anti-aliasing and shadows, not colours.
const MIN_COLOR_SHARE: f64 = 0.02;
/// Detail windows must be at least this much product, or they show mostly backdrop.
const MIN_WINDOW_COVERAGE: f64 = 0.35;

/// Builds the analysis of one segmented photo.
pub(crate) fn analyze(
    seg: &Segmentation,
    input: &AnalyzeInput<'_>,
) -> Result<Analysis, GenerateError> {
    let (iw, ih) = seg.input_size;
    let mask = &seg.mask;
    let (ww, wh) = mask.dimensions();
    let wbox = mask_bbox(mask).unwrap_or([0, 0, ww, wh]);
    let bbox = to_input_box(wbox, seg);
    let area = mask.pixels().filter(|p| p.0[0] > 0).count() as f64;
    let area_share = area / f64::from(ww * wh);
    let (bw, bh) = (f64::from(bbox[2] - bbox[0]), f64::from(bbox[3] - bbox[1]));
    let product = ProductRegion {
        bbox,
        area_share: round4(area_share),
        aspect_ratio: round4(bw / bh.max(1.0)),
        symmetry: round4(symmetry(mask, wbox)),
    };

    let colors = dominant_colors(seg);
    let scale = scale_for(input.category, input.reference, bw, bh)?;
    let geometry = Geometry::new(mask, wbox, seg.scale);
    let points = points_of_measure(&geometry, input.category, &scale);
    let detail_regions = detail_regions(seg, wbox, input.category);
    let confidence = confidence(seg, area_share, &scale, &colors);

    let description = Some(describe(input, &colors, &points, &scale));
    Ok(Analysis {
        schema_version: ANALYSIS_SCHEMA_VERSION,
        image: ImageInfo {
            width: iw,
            height: ih,
        },
        view: input.view.to_string(),
        category: input.category,
        product,
        colors,
        materials: Vec::new(),
        measurements: Measurements { scale, points },
        detail_regions,
        description,
        confidence,
    })
}

fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// A working-pixel box to input pixels, rounded outwards and clamped to the image.
pub(crate) fn to_input_box(b: [u32; 4], seg: &Segmentation) -> [u32; 4] {
    let (iw, ih) = seg.input_size;
    let s = seg.scale;
    let x0 = ((f64::from(b[0]) * s).floor() as u32).min(iw.saturating_sub(1));
    let y0 = ((f64::from(b[1]) * s).floor() as u32).min(ih.saturating_sub(1));
    let x1 = ((f64::from(b[2]) * s).ceil() as u32).clamp(x0 + 1, iw);
    let y1 = ((f64::from(b[3]) * s).ceil() as u32).clamp(y0 + 1, ih);
    [x0, y0, x1, y1]
}

/// A working-pixel box to input pixels, each edge rounded to the nearest pixel: boxes that
/// only touch in working pixels still only touch after scaling (outward rounding would make
/// neighbouring detail regions overlap by a pixel).
fn to_input_box_nearest(b: [u32; 4], seg: &Segmentation) -> [u32; 4] {
    let (iw, ih) = seg.input_size;
    let s = seg.scale;
    let r = |v: u32, max: u32| ((f64::from(v) * s).round() as u32).min(max);
    let x0 = r(b[0], iw.saturating_sub(1));
    let y0 = r(b[1], ih.saturating_sub(1));
    [x0, y0, r(b[2], iw).max(x0 + 1), r(b[3], ih).max(y0 + 1)]
}

/// IoU of the silhouette and its mirror image about the box's vertical centre line.
fn symmetry(mask: &GrayImage, b: [u32; 4]) -> f64 {
    let (mut inter, mut union) = (0u64, 0u64);
    for y in b[1]..b[3] {
        for x in b[0]..b[2] {
            let mx = b[0] + b[2] - 1 - x;
            let a = mask.get_pixel(x, y).0[0] > 0;
            let m = mask.get_pixel(mx, y).0[0] > 0;
            inter += u64::from(a && m);
            union += u64::from(a || m);
        }
    }
    if union == 0 {
        0.0
    } else {
        inter as f64 / union as f64
    }
}

/// Dominant colours of the product's pixels (k-means in CIELAB), similar ones merged.
fn dominant_colors(seg: &Segmentation) -> Vec<ColorShare> {
    // Eroded, so the anti-aliased rim (half product, half backdrop) does not add a false colour.
    let inner = imageproc::morphology::erode(&seg.mask, Norm::LInf, 2);
    let use_mask = if inner.pixels().any(|p| p.0[0] > 0) {
        &inner
    } else {
        &seg.mask
    };
    let px: Vec<LabF> = seg
        .working
        .pixels()
        .zip(use_mask.pixels())
        .filter(|(_, m)| m.0[0] > 0)
        .map(|(p, _)| rgb_to_lab(p.0))
        .collect();
    if px.is_empty() {
        return Vec::new();
    }
    let sample = subsample(&px, 20_000);
    let result = kmeans_colors::get_kmeans(6, 30, 0.5, false, &sample, 0x5eed_c010);
    let mut clusters: Vec<(LabF, f64)> = result
        .centroids
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let count = result.indices.iter().filter(|&&j| j as usize == i).count();
            (*c, count as f64 / sample.len() as f64)
        })
        .filter(|(_, share)| *share > 0.0)
        .collect();
    clusters.sort_by(|a, b| b.1.total_cmp(&a.1));
    // Greedy merge into the larger cluster, weighted by share.
    let mut merged: Vec<(LabF, f64)> = Vec::new();
    for (c, share) in clusters {
        if let Some(m) = merged
            .iter_mut()
            .find(|(mc, _)| super::color::delta_e(mc, &c) < MERGE_DELTA_E)
        {
            let total = m.1 + share;
            let (wa, wb) = ((m.1 / total) as f32, (share / total) as f32);
            m.0 = LabF::new(
                m.0.l * wa + c.l * wb,
                m.0.a * wa + c.a * wb,
                m.0.b * wa + c.b * wb,
            );
            m.1 = total;
        } else {
            merged.push((c, share));
        }
    }
    merged.sort_by(|a, b| b.1.total_cmp(&a.1));
    // Two shades with the same plain name (a black fabric's lit and shaded folds) are one
    // colour in a tech pack: fold the smaller into the larger, keeping the larger's hex.
    let mut named: Vec<(LabF, f64, String)> = Vec::new();
    for (c, share) in merged {
        let name = plain_name(c);
        match named.iter_mut().find(|(_, _, n)| *n == name) {
            Some(entry) => entry.1 += share,
            None => named.push((c, share, name)),
        }
    }
    named
        .into_iter()
        .filter(|(_, share, _)| *share >= MIN_COLOR_SHARE)
        .map(|(c, share, name)| ColorShare {
            hex: hex(lab_to_rgb(c)),
            share: round4(share),
            name,
        })
        .collect()
}

/// The documented default real size per category, used when no reference is given:
/// (which box side, centimetres).
pub(crate) fn category_default(category: ProductCategory) -> (Side, f64) {
    match category {
        // A flat-laid adult top from shoulder to hem.
        ProductCategory::Apparel => (Side::Height, 70.0),
        // An adult shoe (EU 42) seen from the side.
        ProductCategory::Footwear => (Side::Width, 28.0),
        // A tote or shoulder bag's body width.
        ProductCategory::Bags => (Side::Width, 40.0),
        // A cap or a small good.
        ProductCategory::Accessories => (Side::Width, 25.0),
        // A mug or a cushion.
        ProductCategory::Home => (Side::Height, 12.0),
        ProductCategory::Other => (Side::Height, 30.0),
    }
}

/// Which side of the product's box a size refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The box's width.
    Width,
    /// The box's height.
    Height,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Width => "width",
            Side::Height => "height",
        }
    }
}

/// Parses a reference such as `height=70cm`, `width = 50 cm`, `w=500mm`, `height=27.5in`.
pub(crate) fn parse_reference(text: &str) -> Result<(Side, f64), GenerateError> {
    let bad = || {
        GenerateError::BadInput(format!(
            "reference {text:?} not understood: expected e.g. \"height=70cm\" or \"width=50cm\" (units cm, mm, m or in)"
        ))
    };
    let (key, value) = text.split_once('=').ok_or_else(bad)?;
    let side = match key.trim().to_ascii_lowercase().as_str() {
        "height" | "h" | "length" | "body_length" => Side::Height,
        "width" | "w" => Side::Width,
        _ => return Err(bad()),
    };
    let value = value.trim().to_ascii_lowercase();
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let factor = match unit.trim() {
        "cm" | "" => 1.0,
        "mm" => 0.1,
        "m" => 100.0,
        "in" | "\"" | "inch" | "inches" => 2.54,
        _ => return Err(bad()),
    };
    let cm = number * factor;
    if !(cm.is_finite() && cm > 0.0 && cm < 10_000.0) {
        return Err(bad());
    }
    Ok((side, cm))
}

fn scale_for(
    category: ProductCategory,
    reference: Option<&str>,
    bw: f64,
    bh: f64,
) -> Result<MeasurementScale, GenerateError> {
    let (side, cm, source, basis) = match reference.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => {
            let (side, cm) = parse_reference(r)?;
            (side, cm, ScaleSource::Reference, r.to_string())
        }
        None => {
            let (side, cm) = category_default(category);
            let basis = format!("{}={}cm (default for {category})", side.name(), cm);
            (side, cm, ScaleSource::CategoryDefault, basis)
        }
    };
    let px = match side {
        Side::Width => bw,
        Side::Height => bh,
    };
    Ok(MeasurementScale {
        cm_per_px: cm / px.max(1.0),
        source,
        basis,
    })
}

/// Row and column runs of the silhouette, in working pixels, with the factor to input pixels.
struct Geometry<'a> {
    mask: &'a GrayImage,
    b: [u32; 4],
    s: f64,
}

impl<'a> Geometry<'a> {
    fn new(mask: &'a GrayImage, b: [u32; 4], s: f64) -> Self {
        Self { mask, b, s }
    }

    fn on(&self, x: u32, y: u32) -> bool {
        self.mask.get_pixel(x, y).0[0] > 0
    }

    /// The horizontal run of product through `x` on row `y`, ends exclusive.
    fn run_through(&self, y: u32, x: u32) -> Option<(u32, u32)> {
        if !self.on(x, y) {
            // The centre line may cross an opening (a bag's handle loop): use the run nearest
            // to it instead.
            let left = (self.b[0]..x).rev().find(|&xx| self.on(xx, y));
            let right = (x..self.b[2]).find(|&xx| self.on(xx, y));
            let nearest = match (left, right) {
                (Some(l), Some(r)) => Some(if x - l <= r - x { l } else { r }),
                (l, r) => l.or(r),
            }?;
            return self.run_through(y, nearest);
        }
        let mut x0 = x;
        while x0 > self.b[0] && self.on(x0 - 1, y) {
            x0 -= 1;
        }
        let mut x1 = x + 1;
        while x1 < self.b[2] && self.on(x1, y) {
            x1 += 1;
        }
        Some((x0, x1))
    }

    /// First and last product rows in column `x`.
    fn column_extent(&self, x: u32) -> Option<(u32, u32)> {
        let top = (self.b[1]..self.b[3]).find(|&y| self.on(x, y))?;
        let bottom = (self.b[1]..self.b[3]).rev().find(|&y| self.on(x, y))?;
        Some((top, bottom + 1))
    }

    fn cx(&self) -> u32 {
        (self.b[0] + self.b[2]) / 2
    }

    fn pt(&self, x: f64, y: f64) -> [f64; 2] {
        [round2(x * self.s), round2(y * self.s)]
    }

    fn measurement(
        &self,
        name: &str,
        from: [f64; 2],
        to: [f64; 2],
        scale: &MeasurementScale,
    ) -> Measurement {
        let from = self.pt(from[0], from[1]);
        let to = self.pt(to[0], to[1]);
        let px = ((to[0] - from[0]).powi(2) + (to[1] - from[1]).powi(2)).sqrt();
        Measurement {
            name: name.to_string(),
            px: round2(px),
            cm: round2(px * scale.cm_per_px),
            from,
            to,
        }
    }

    /// A horizontal measurement of the run through the centre line on row `y`.
    fn width_at(&self, name: &str, y: u32, scale: &MeasurementScale) -> Option<Measurement> {
        let (x0, x1) = self.run_through(y, self.cx())?;
        let yc = f64::from(y) + 0.5;
        Some(self.measurement(name, [f64::from(x0), yc], [f64::from(x1), yc], scale))
    }
}

fn points_of_measure(
    g: &Geometry<'_>,
    category: ProductCategory,
    scale: &MeasurementScale,
) -> Vec<Measurement> {
    let b = g.b;
    let (x0, y0, x1, y1) = (
        f64::from(b[0]),
        f64::from(b[1]),
        f64::from(b[2]),
        f64::from(b[3]),
    );
    let mut out = vec![
        g.measurement("overall_width", [x0, y1], [x1, y1], scale),
        g.measurement("overall_height", [x1, y0], [x1, y1], scale),
    ];
    match category {
        ProductCategory::Apparel => out.extend(apparel_points(g, scale)),
        ProductCategory::Footwear => out.extend(footwear_points(g, scale)),
        ProductCategory::Bags => out.extend(bag_points(g, scale)),
        _ => {}
    }
    out
}

/// Body length at the centre line, the chest width just below the armholes (where sleeves
/// make the silhouette widen), and the hem width. Sleeve length needs the shoulder seam,
/// which a silhouette does not show: it is not measured.
fn apparel_points(g: &Geometry<'_>, scale: &MeasurementScale) -> Vec<Measurement> {
    let mut out = Vec::new();
    let b = g.b;
    let bw = b[2] - b[0];
    // The neckline dips at the centre; body length runs from the highest point near it (the
    // high point of the shoulder) down to the hem.
    let band = (bw * 15 / 100).max(1);
    let cx = g.cx();
    let (mut top, mut bottom) = (u32::MAX, 0u32);
    for x in cx.saturating_sub(band)..(cx + band).min(b[2]) {
        if let Some((t, bo)) = g.column_extent(x) {
            top = top.min(t);
            bottom = bottom.max(bo);
        }
    }
    if top >= bottom {
        return out;
    }
    let length = bottom - top;
    out.push(g.measurement(
        "body_length",
        [f64::from(cx) + 0.5, f64::from(top)],
        [f64::from(cx) + 0.5, f64::from(bottom)],
        scale,
    ));

    // Run width per row; the body below the armholes is the steady width of the lower half.
    let widths: Vec<(u32, u32)> = (top..bottom)
        .map(|y| (y, g.run_through(y, cx).map_or(0, |(a, z)| z - a)))
        .collect();
    let mut lower: Vec<u32> = widths[widths.len() / 2..].iter().map(|w| w.1).collect();
    lower.sort_unstable();
    let body_width = lower[lower.len() / 2];
    // The armhole is the lowest row in the upper 60 % where the run is clearly wider than the
    // body: sleeves join there.
    let armhole = widths[..widths.len() * 6 / 10]
        .iter()
        .rev()
        .find(|(_, w)| f64::from(*w) > f64::from(body_width) * 1.2)
        .map(|(y, _)| *y);
    // Without a widening (sleeves hanging alongside the body, a sleeveless top) the body's
    // side cannot be told from an arm: chest and sleeve are left out rather than guessed.
    let chest_y = armhole.map(|y| (y + length / 30).min(bottom - 1));
    if let Some(cy) = chest_y {
        out.extend(g.width_at("chest_width", cy, scale));
    }
    let hem_y = bottom.saturating_sub((length / 30).max(1)).max(top);
    out.extend(g.width_at("hem_width", hem_y, scale));

    out
}

/// Length along the ground and the heel height: the largest lift of the sole above the
/// ground line between the ends (near zero for a flat shoe).
fn footwear_points(g: &Geometry<'_>, scale: &MeasurementScale) -> Vec<Measurement> {
    let b = g.b;
    let ground = b[3];
    let mut out = Vec::new();
    let bw = b[2] - b[0];
    out.push(g.measurement(
        "length",
        [f64::from(b[0]), f64::from(ground)],
        [f64::from(b[2]), f64::from(ground)],
        scale,
    ));
    // The heel is the taller end of a side view.
    let end_height = |range: std::ops::Range<u32>| {
        range
            .filter_map(|x| g.column_extent(x).map(|(t, bo)| bo - t))
            .max()
            .unwrap_or(0)
    };
    let left = end_height(b[0]..b[0] + bw / 5);
    let right = end_height(b[2] - bw / 5..b[2]);
    let heel_side = if left >= right {
        b[0]..b[0] + bw / 2
    } else {
        b[0] + bw / 2..b[2]
    };
    let mut best: Option<(u32, u32)> = None;
    for x in heel_side {
        if let Some((_, bo)) = g.column_extent(x) {
            let lift = ground - bo;
            if best.is_none_or(|(_, l)| lift > l) {
                best = Some((x, lift));
            }
        }
    }
    let (hx, lift) = best.unwrap_or((b[0], 0));
    out.push(g.measurement(
        "heel_height",
        [f64::from(hx) + 0.5, f64::from(ground)],
        [f64::from(hx) + 0.5, f64::from(ground - lift)],
        scale,
    ));
    out
}

/// The bag's body (rows at least 70 % as wide as the widest), its width and height, and the
/// handle drop above it. Depth needs a second view: not measured from one photo.
fn bag_points(g: &Geometry<'_>, scale: &MeasurementScale) -> Vec<Measurement> {
    let b = g.b;
    let mut out = Vec::new();
    let rows: Vec<(u32, u32)> = (b[1]..b[3])
        .map(|y| {
            let width = (b[0]..b[2]).filter(|&x| g.on(x, y)).count() as u32;
            (y, width)
        })
        .collect();
    let widest = rows.iter().map(|r| r.1).max().unwrap_or(0);
    let body: Vec<u32> = rows
        .iter()
        .filter(|r| f64::from(r.1) >= f64::from(widest) * 0.7)
        .map(|r| r.0)
        .collect();
    let (Some(&top), Some(&bottom)) = (body.first(), body.last()) else {
        return out;
    };
    let mid = (top + bottom) / 2;
    out.extend(g.width_at("width", mid, scale));
    let cx = f64::from(g.cx()) + 0.5;
    out.push(g.measurement(
        "height",
        [cx, f64::from(top)],
        [cx, f64::from(bottom + 1)],
        scale,
    ));
    if top > b[1] && (top - b[1]) * 20 > b[3] - b[1] {
        out.push(g.measurement(
            "handle_drop",
            [cx, f64::from(b[1])],
            [cx, f64::from(top)],
            scale,
        ));
    }
    out
}

/// Detail regions: square windows over the product scored by edge density inside the
/// silhouette (its outline excluded, which is everywhere and says nothing), named by place.
pub(crate) fn detail_regions(
    seg: &Segmentation,
    wbox: [u32; 4],
    category: ProductCategory,
) -> Vec<DetailRegion> {
    let mask = &seg.mask;
    let (w, h) = mask.dimensions();
    let gray = image::imageops::grayscale(&seg.working);
    let grad = imageproc::gradients::sobel_gradients(&gray);
    // Inside the silhouette, away from its edge by a few pixels.
    let inner = imageproc::morphology::erode(mask, Norm::LInf, 3);
    // Integral images of edge strength and of product coverage make every window O(1).
    let edge = |x: u32, y: u32| -> f64 {
        if inner.get_pixel(x, y).0[0] > 0 {
            f64::from(grad.get_pixel(x, y).0[0]).min(1020.0)
        } else {
            0.0
        }
    };
    let iedge = Integral::new(w, h, edge);
    let icover = Integral::new(w, h, |x, y| {
        f64::from(u8::from(mask.get_pixel(x, y).0[0] > 0))
    });
    let iinner = Integral::new(w, h, |x, y| {
        f64::from(u8::from(inner.get_pixel(x, y).0[0] > 0))
    });

    let (bx0, by0, bx1, by1) = (wbox[0], wbox[1], wbox[2], wbox[3]);
    let (bw, bh) = (bx1 - bx0, by1 - by0);
    let side = ((bw.max(bh) as f64 * 0.26).round() as u32).clamp(8, w.min(h));
    let stride = (side / 4).max(1);
    let mut windows: Vec<([u32; 4], f64)> = Vec::new();
    let mut y = by0.min(h - side);
    while y + side <= by1.max(y + side).min(h) {
        let mut x = bx0.min(w - side);
        while x + side <= bx1.max(x + side).min(w) {
            let r = [x, y, x + side, y + side];
            let area = f64::from(side * side);
            let cover = icover.sum(r) / area;
            let inner_px = iinner.sum(r);
            if cover >= MIN_WINDOW_COVERAGE && inner_px > 0.0 {
                // Mean edge strength over the product inside the window; Sobel magnitudes run
                // to ~1000 on a hard black/white edge.
                let density = iedge.sum(r) / inner_px / 1020.0;
                windows.push((r, density));
            }
            if x + side >= bx1 {
                break;
            }
            x += stride;
        }
        if y + side >= by1 {
            break;
        }
        y += stride;
    }
    // Best first; ties broken by position so the order never depends on float noise alone.
    windows.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut chosen: Vec<([u32; 4], f64)> = Vec::new();
    for (r, s) in windows {
        if chosen.iter().all(|(c, _)| !intersects(*c, r)) {
            chosen.push((r, s));
        }
        if chosen.len() >= 12 {
            break;
        }
    }
    // "Busy" is relative to this product: a print stands out against its own fabric.
    let mut densities: Vec<f64> = chosen.iter().map(|c| c.1).collect();
    densities.sort_by(f64::total_cmp);
    let median = densities.get(densities.len() / 2).copied().unwrap_or(0.0);
    let mut used: Vec<String> = Vec::new();
    chosen
        .into_iter()
        .map(|(r, density)| {
            let u = (f64::from(r[0] + r[2]) / 2.0 - f64::from(bx0)) / f64::from(bw.max(1));
            let v = (f64::from(r[1] + r[3]) / 2.0 - f64::from(by0)) / f64::from(bh.max(1));
            let busy = (density >= median * 1.5 && density > 0.01) || density > 0.05;
            let base = place_name(category, u, v, busy, seg, wbox);
            let mut name = base.to_string();
            let mut n = 2;
            while used.contains(&name) {
                name = format!("{base} {n}");
                n += 1;
            }
            used.push(name.clone());
            // Edge density of a printed logo is ~0.1–0.2; map it onto 0..1 smoothly.
            let score = round4(1.0 - (-density * 12.0).exp());
            DetailRegion {
                name,
                bbox: to_input_box_nearest(r, seg),
                score,
            }
        })
        .collect()
}

fn intersects(a: [u32; 4], b: [u32; 4]) -> bool {
    a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]
}

/// A name by place on the product (u, v in 0..1 of the box) and category.
fn place_name(
    category: ProductCategory,
    u: f64,
    v: f64,
    busy: bool,
    seg: &Segmentation,
    wbox: [u32; 4],
) -> &'static str {
    let central = (0.3..=0.7).contains(&u);
    let left = u < 0.5;
    match category {
        ProductCategory::Apparel => match (v, central) {
            (v, true) if v < 0.22 => "collar",
            (v, false) if v < 0.3 => {
                if left {
                    "left shoulder"
                } else {
                    "right shoulder"
                }
            }
            (v, _) if v > 0.8 && central => "hem",
            (_, false) if !(0.2..=0.8).contains(&u) && v > 0.6 => {
                if left {
                    "left cuff"
                } else {
                    "right cuff"
                }
            }
            (_, false) if !(0.2..=0.8).contains(&u) => {
                if left {
                    "left sleeve"
                } else {
                    "right sleeve"
                }
            }
            (v, _) if busy && v < 0.6 => "logo/print",
            (v, _) if v >= 0.6 => "pocket",
            _ => "chest",
        },
        ProductCategory::Footwear => {
            let heel_left = heel_on_left(seg, wbox);
            if v > 0.75 {
                "sole"
            } else if u < 0.25 {
                if heel_left { "heel" } else { "toe" }
            } else if u > 0.75 {
                if heel_left { "toe" } else { "heel" }
            } else if v < 0.45 {
                "lacing"
            } else if busy {
                "logo"
            } else {
                "side panel"
            }
        }
        ProductCategory::Bags => {
            if v < 0.25 {
                "handle"
            } else if busy {
                "logo/print"
            } else if v < 0.4 {
                "opening"
            } else if v > 0.85 {
                "base"
            } else if !central {
                if left {
                    "left side seam"
                } else {
                    "right side seam"
                }
            } else {
                "front panel"
            }
        }
        ProductCategory::Accessories => {
            if v < 0.3 && central {
                "crown"
            } else if v > 0.65 {
                "brim"
            } else if busy {
                "logo/embroidery"
            } else if left {
                "left panel"
            } else {
                "right panel"
            }
        }
        ProductCategory::Home => {
            if v < 0.2 {
                "rim"
            } else if v > 0.85 {
                "base"
            } else if !(0.15..=0.85).contains(&u) {
                "handle"
            } else if busy {
                "print"
            } else {
                "body"
            }
        }
        ProductCategory::Other => {
            if busy && central {
                "detail"
            } else if v < 0.33 {
                "top"
            } else if v > 0.67 {
                "bottom"
            } else if left {
                "left side"
            } else {
                "right side"
            }
        }
    }
}

/// Whether the taller end of a side view (the heel) is on the left.
fn heel_on_left(seg: &Segmentation, b: [u32; 4]) -> bool {
    let g = Geometry::new(&seg.mask, b, seg.scale);
    let bw = b[2] - b[0];
    let height = |range: std::ops::Range<u32>| {
        range
            .filter_map(|x| g.column_extent(x).map(|(t, bo)| bo - t))
            .max()
            .unwrap_or(0)
    };
    height(b[0]..b[0] + bw / 5) >= height(b[2] - bw / 5..b[2])
}

/// Summed-area table.
struct Integral {
    w: usize,
    data: Vec<f64>,
}

impl Integral {
    fn new(w: u32, h: u32, f: impl Fn(u32, u32) -> f64) -> Self {
        let (wu, hu) = (w as usize, h as usize);
        let mut data = vec![0f64; (wu + 1) * (hu + 1)];
        for y in 0..hu {
            let mut row = 0.0;
            for x in 0..wu {
                row += f(x as u32, y as u32);
                data[(y + 1) * (wu + 1) + x + 1] = data[y * (wu + 1) + x + 1] + row;
            }
        }
        Self { w: wu, data }
    }

    fn sum(&self, r: [u32; 4]) -> f64 {
        let s = self.w + 1;
        let (x0, y0, x1, y1) = (r[0] as usize, r[1] as usize, r[2] as usize, r[3] as usize);
        self.data[y1 * s + x1] - self.data[y0 * s + x1] - self.data[y1 * s + x0]
            + self.data[y0 * s + x0]
    }
}

fn confidence(
    seg: &Segmentation,
    area_share: f64,
    scale: &MeasurementScale,
    colors: &[ColorShare],
) -> Confidence {
    let q = &seg.quality;
    let mut reasons = Vec::new();
    if q.nothing_found {
        reasons.push(
            "Nothing in the image stands out from its background: it looks like a uniform colour \
             with no product in it. The whole frame was used, so the box, colours and \
             measurements describe the image, not a product."
                .to_string(),
        );
        return Confidence {
            score: 0.05,
            reasons,
        };
    }
    let mut score: f64 = 0.9;
    if q.from_alpha {
        score = 0.95;
        reasons.push("The image's transparency gives the exact silhouette.".into());
    } else if q.busy_background {
        score -= 0.25;
        reasons.push(format!(
            "Busy background (colour spread ΔE {:.0}): the product was separated by colour models, so its edges may be off.",
            q.background_spread
        ));
    } else {
        reasons.push(format!(
            "Plain background (colour spread ΔE {:.1}): the product separates cleanly.",
            q.background_spread
        ));
    }
    if !q.from_alpha && q.contrast < 15.0 {
        score -= 0.2;
        reasons.push(format!(
            "Low contrast with the background (median ΔE {:.0}): parts of the product may be missed.",
            q.contrast
        ));
    }
    if q.touching_sides > 0 {
        score -= 0.1 * f64::from(q.touching_sides);
        reasons.push(format!(
            "The product touches {} edge(s) of the frame and may be cut off: measurements may be short.",
            q.touching_sides
        ));
    }
    if area_share < 0.02 {
        score -= 0.2;
        reasons.push(format!(
            "The product covers only {:.1} % of the image: details are small.",
            area_share * 100.0
        ));
    }
    if area_share > 0.9 {
        score -= 0.2;
        reasons.push(
            "The product fills nearly the whole frame: its outline may not be its own.".into(),
        );
    }
    match scale.source {
        ScaleSource::Reference => {
            reasons.push(format!(
                "Centimetres are scaled from the given reference ({}).",
                scale.basis
            ));
        }
        _ => {
            score -= 0.1;
            reasons.push(format!(
                "No reference size was given: centimetres assume {}, so treat them as estimates.",
                scale.basis
            ));
        }
    }
    if colors.is_empty() {
        score -= 0.1;
        reasons.push("No dominant colour could be measured.".into());
    }
    Confidence {
        score: round4(score.clamp(0.05, 1.0)),
        reasons,
    }
}

fn describe(
    input: &AnalyzeInput<'_>,
    colors: &[ColorShare],
    points: &[Measurement],
    scale: &MeasurementScale,
) -> String {
    let colour = colors.first().map_or("unknown colour", |c| c.name.as_str());
    let dim = |name: &str| points.iter().find(|p| p.name == name).map(|p| p.cm);
    let size = match (dim("overall_width"), dim("overall_height")) {
        (Some(w), Some(h)) => format!(", about {w:.0} × {h:.0} cm"),
        _ => String::new(),
    };
    let how = match scale.source {
        ScaleSource::Reference => "from the reference",
        _ => "at the category's default scale",
    };
    format!(
        "{colour} {} product, {} view{size} ({how})",
        input.category, input.view
    )
}

/// Marks the working-pixel box `r` on a mask-sized image (used by tests and debugging views).
#[cfg(test)]
pub(crate) fn paint_box(img: &mut GrayImage, r: [u32; 4]) {
    use image::Luma;
    for y in r[1]..r[3] {
        for x in r[0]..r[2] {
            img.put_pixel(x, y, Luma([255]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        assert_eq!(
            parse_reference("height=70cm").unwrap(),
            (Side::Height, 70.0)
        );
        assert_eq!(
            parse_reference("width = 50 cm").unwrap(),
            (Side::Width, 50.0)
        );
        assert_eq!(parse_reference("w=500mm").unwrap(), (Side::Width, 50.0));
        let (side, cm) = parse_reference("height=10in").unwrap();
        assert_eq!(side, Side::Height);
        assert!((cm - 25.4).abs() < 1e-9);
        for bad in [
            "70cm",
            "depth=3cm",
            "height=abc",
            "height=-3cm",
            "height=5 parsecs",
        ] {
            assert!(
                matches!(parse_reference(bad), Err(GenerateError::BadInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn symmetry_of_a_centred_rectangle_is_one() {
        let mut m = GrayImage::new(50, 40);
        paint_box(&mut m, [10, 5, 40, 35]);
        assert!((symmetry(&m, [10, 5, 40, 35]) - 1.0).abs() < 1e-9);
        let mut l = GrayImage::new(50, 40);
        paint_box(&mut l, [10, 5, 40, 35]);
        paint_box(&mut l, [0, 5, 10, 10]);
        assert!(symmetry(&l, [0, 5, 40, 35]) < 0.95);
    }
}
