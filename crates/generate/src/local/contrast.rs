//! Regions inside the silhouette whose colour is not the fabric's: prints, logos, trims and
//! cords (see `features.rs` for what each becomes).
//!
//! The product's pixels are clustered in CIELAB. A cluster is *fabric* when it reaches the
//! silhouette's outline (the material a product is made of runs to its edges; a colour-
//! blocked sleeve is fabric too) or covers much of the product. A pixel is *contrast* when
//! it stands far from every fabric colour, with lightness differences counted at half weight
//! so that folds and shading of the fabric itself are not taken for a print. Contrast pixels
//! are closed into regions (the letters of a wordmark become one region) and measured.

use image::{GrayImage, Luma};
use imageproc::distance_transform::Norm;
use imageproc::region_labelling::{Connectivity, connected_components};

use super::color::{LabF, image_to_lab};
use super::segment::{Segmentation, kmeans, subsample};

/// Lightness counts at this weight in the contrast distance: shading changes lightness.
const L_WEIGHT: f32 = 0.5;
/// A pixel this far (shade-tolerant ΔE) from every fabric colour is contrast.
const CONTRAST_DELTA_E: f32 = 18.0;

/// A contrast region.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Region {
    /// Box in working pixels, ends exclusive.
    pub bbox: [u32; 4],
    /// Pixels.
    pub area: usize,
    /// Centre of mass (working pixels).
    pub centre: [f64; 2],
    /// Share of its pixels in the band along the silhouette's outline.
    pub outline_share: f64,
    /// Median shade-tolerant ΔE from the nearest fabric colour.
    pub contrast: f64,
    /// Its typical colour.
    pub colour: LabF,
    /// Its pixels' indices (y · width + x), for outlines and masks.
    pub pixels: Vec<usize>,
}

/// The contrast analysis of one segmentation.
#[derive(Debug, Clone)]
pub(crate) struct ContrastMap {
    /// Fabric colours, largest first.
    pub fabric: Vec<(LabF, f64)>,
    /// Per product pixel, the fabric colour it belongs to (index into `fabric`), or `u8::MAX`.
    pub fabric_of: Vec<u8>,
    /// Contrast regions, largest first.
    pub regions: Vec<Region>,
    /// Width of the band along the outline, in working pixels.
    pub band: u32,
    /// Per pixel, whether it is contrast itself (before regions were closed): the print's
    /// own shapes, letter by letter.
    pub raw: Vec<bool>,
}

/// Squared distance of pixel `p` from fabric colour `f`, tolerant of shading: lightness
/// counts at half weight, and a pixel darker than the fabric is compared with the fabric's
/// colour darkened to its lightness (chroma falls with lightness in a shadow), its lightness
/// difference at a third.
fn shade_distance2(p: &LabF, f: &LabF) -> f32 {
    if p.l < f.l && f.l > 1.0 {
        let k = p.l / f.l;
        let dl = (p.l - f.l) * (L_WEIGHT * 0.7);
        let da = p.a - f.a * k;
        let db = p.b - f.b * k;
        dl * dl + da * da + db * db
    } else {
        let dl = (p.l - f.l) * L_WEIGHT;
        let da = p.a - f.a;
        let db = p.b - f.b;
        dl * dl + da * da + db * db
    }
}

/// Finds the fabric colours and contrast regions of a segmentation.
pub(crate) fn analyse(seg: &Segmentation) -> ContrastMap {
    let (w, h) = seg.mask.dimensions();
    let n = (w * h) as usize;
    let smooth = imageproc::filter::gaussian_blur_f32(&seg.working, 0.8);
    let lab = image_to_lab(&smooth);
    let area = seg.mask.pixels().filter(|p| p.0[0] > 0).count();
    let long = {
        let b = super::segment::mask_bbox(&seg.mask).unwrap_or([0, 0, w, h]);
        (b[2] - b[0]).max(b[3] - b[1])
    };
    let inner = imageproc::morphology::erode(&seg.mask, Norm::LInf, 2);
    let band = ((f64::from(long) * 0.012).round() as u32).clamp(3, 20);
    let core = imageproc::morphology::erode(&seg.mask, Norm::LInf, band.min(255) as u8);
    // The outermost pixels blend the product with the backdrop: the band starts inside them.
    let in_band = |i: usize| inner.as_raw()[i] > 0 && core.as_raw()[i] == 0;

    let px: Vec<LabF> = (0..n)
        .filter(|&i| inner.as_raw()[i] > 0)
        .map(|i| lab[i])
        .collect();
    let empty = ContrastMap {
        fabric: Vec::new(),
        fabric_of: vec![u8::MAX; n],
        regions: Vec::new(),
        band,
        raw: vec![false; n],
    };
    if px.len() < 64 {
        return empty;
    }
    let centres = kmeans(&subsample(&px, 20_000), 6);
    let nearest = |p: &LabF| -> usize {
        centres
            .iter()
            .enumerate()
            .min_by(|a, b| {
                super::color::delta_e2(p, a.1).total_cmp(&super::color::delta_e2(p, b.1))
            })
            .map_or(0, |(i, _)| i)
    };
    let k = centres.len();
    let (mut total, mut banded) = (vec![0usize; k], vec![0usize; k]);
    let mut band_px = 0usize;
    for (i, px) in lab.iter().enumerate().take(n) {
        if inner.as_raw()[i] == 0 {
            continue;
        }
        let c = nearest(px);
        total[c] += 1;
        if in_band(i) {
            banded[c] += 1;
            band_px += 1;
        }
    }
    let mut fabric: Vec<(LabF, f64)> = (0..k)
        .filter(|&c| {
            let share = total[c] as f64 / px.len().max(1) as f64;
            let band_share = banded[c] as f64 / band_px.max(1) as f64;
            (band_share >= 0.08 && share >= 0.03) || share >= 0.35
        })
        .map(|c| (centres[c], total[c] as f64 / area.max(1) as f64))
        .collect();
    // Shades of a fabric colour (its folds) are fabric too.
    for c in 0..k {
        if fabric.iter().any(|f| f.0 == centres[c]) {
            continue;
        }
        if fabric
            .iter()
            .any(|f| super::color::delta_e(&f.0, &centres[c]) < 12.0)
        {
            fabric.push((centres[c], total[c] as f64 / area.max(1) as f64));
        }
    }
    fabric.sort_by(|a, b| b.1.total_cmp(&a.1));
    if std::env::var_os("TECHPACK_DEBUG_CONTRAST").is_some() {
        for c in 0..k {
            eprintln!(
                "cluster {c}: L{:.0} a{:.0} b{:.0} share {:.3} band {:.3} fabric {}",
                centres[c].l,
                centres[c].a,
                centres[c].b,
                total[c] as f64 / area.max(1) as f64,
                banded[c] as f64 / band_px.max(1) as f64,
                fabric.iter().any(|f| f.0 == centres[c])
            );
        }
    }
    if fabric.is_empty() {
        return empty;
    }
    let t2 = CONTRAST_DELTA_E * CONTRAST_DELTA_E;
    let mut fabric_of = vec![u8::MAX; n];
    let mut contrast = GrayImage::new(w, h);
    for i in 0..n {
        if seg.mask.as_raw()[i] == 0 {
            continue;
        }
        let (fi, d2) = fabric
            .iter()
            .enumerate()
            .map(|(j, f)| (j, shade_distance2(&lab[i], &f.0)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, 0.0));
        if d2 > t2 && inner.as_raw()[i] > 0 {
            contrast.put_pixel((i as u32) % w, (i as u32) / w, Luma([255]));
        } else {
            fabric_of[i] = fi as u8;
        }
    }
    // Letters and the strokes of a logo become one region; specks go.
    let close = ((f64::from(long) * 0.008).round() as u8).clamp(1, 12);
    let mut merged = imageproc::morphology::close(&contrast, Norm::LInf, close);
    // Closing may reach outside the silhouette: keep it inside.
    for (m, s) in merged.pixels_mut().zip(seg.mask.pixels()) {
        if s.0[0] == 0 {
            m.0 = [0];
        }
    }
    let merged = imageproc::morphology::open(&merged, Norm::LInf, 1);
    let labels = connected_components(&merged, Connectivity::Eight, Luma([0u8]));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, l) in labels.pixels().enumerate() {
        let l = l.0[0] as usize;
        if l == 0 {
            continue;
        }
        if groups.len() < l {
            groups.resize(l, Vec::new());
        }
        groups[l - 1].push(i);
    }
    let min_area = (area / 3000).max(12);
    let grad = |i: usize| -> f32 {
        let (x, y) = ((i as u32) % w, (i as u32) / w);
        let at = |x: u32, y: u32| lab[(y.min(h - 1) * w + x.min(w - 1)) as usize];
        let gx = super::color::delta_e(&at(x + 1, y), &at(x.saturating_sub(1), y));
        let gy = super::color::delta_e(&at(x, y + 1), &at(x, y.saturating_sub(1)));
        (gx * gx + gy * gy).sqrt() * 0.5
    };
    let mut regions: Vec<Region> = groups
        .into_iter()
        .filter(|g| g.len() >= min_area)
        .filter(|g| {
            // A print's edge is crisp; a fold's or a shadow's fades over many pixels. The
            // edge steepness is compared with the region's own contrast.
            let set: std::collections::HashSet<usize> = g.iter().copied().collect();
            let edge: Vec<usize> = g
                .iter()
                .copied()
                .filter(|&i| contrast.as_raw()[i] > 0)
                .filter(|&i| {
                    let (x, y) = ((i as u32) % w, (i as u32) / w);
                    x == 0 || y == 0 || x + 1 >= w || y + 1 >= h || {
                        let wn = w as usize;
                        !set.contains(&(i - 1))
                            || !set.contains(&(i + 1))
                            || !set.contains(&(i - wn))
                            || !set.contains(&(i + wn))
                    }
                })
                .collect();
            if edge.is_empty() {
                return false;
            }
            let steep = edge.iter().map(|&i| grad(i)).sum::<f32>() / edge.len() as f32;
            let depth = edge
                .iter()
                .map(|&i| {
                    fabric
                        .iter()
                        .map(|f| super::color::delta_e(&lab[i], &f.0))
                        .fold(f32::INFINITY, f32::min)
                })
                .sum::<f32>()
                / edge.len() as f32;
            steep >= 0.12 * depth.max(1.0)
        })
        .map(|pixels| {
            let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
            let (mut sx, mut sy) = (0.0, 0.0);
            let mut banded = 0usize;
            let mut dists: Vec<f32> = Vec::new();
            let (mut sl, mut sa, mut sb, mut nc) = (0.0f32, 0.0f32, 0.0f32, 0usize);
            for &i in &pixels {
                let (x, y) = ((i as u32) % w, (i as u32) / w);
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x + 1);
                y1 = y1.max(y + 1);
                sx += f64::from(x);
                sy += f64::from(y);
                banded += usize::from(in_band(i));
                if contrast.as_raw()[i] > 0 {
                    let d = fabric
                        .iter()
                        .map(|f| shade_distance2(&lab[i], &f.0))
                        .fold(f32::INFINITY, f32::min)
                        .sqrt();
                    dists.push(d);
                    sl += lab[i].l;
                    sa += lab[i].a;
                    sb += lab[i].b;
                    nc += 1;
                }
            }
            dists.sort_by(f32::total_cmp);
            let count = pixels.len() as f64;
            let ncf = nc.max(1) as f32;
            Region {
                bbox: [x0, y0, x1, y1],
                area: pixels.len(),
                centre: [sx / count, sy / count],
                outline_share: banded as f64 / count,
                contrast: f64::from(dists.get(dists.len() / 2).copied().unwrap_or(0.0)),
                colour: LabF::new(sl / ncf, sa / ncf, sb / ncf),
                pixels,
            }
        })
        .collect();
    regions.sort_by(|a, b| b.area.cmp(&a.area).then(a.bbox.cmp(&b.bbox)));
    ContrastMap {
        fabric,
        fabric_of,
        regions,
        band,
        raw: contrast.pixels().map(|p| p.0[0] > 0).collect(),
    }
}
