//! Separating the product from its background, on a downscaled working copy of the decoded
//! photo (see `decode.rs`).
//!
//! This is the contract between the analysis, close-up and sketch code: all three start from
//! one [`Segmentation`], computed once per photo and shared through the provider's cache.
//!
//! 1. A background colour model from the border band (k-means in CIELAB, since a studio
//!    backdrop is one colour but a busy one is many), and each pixel's distance to it.
//! 2. On a plain backdrop, the background is *flooded* from the frame's border through pixels
//!    that look like backdrop and carry no edge. Colour alone fails on light-on-light and
//!    dark-on-dark products (a white tee on white differs by a few ΔE), but their outline is
//!    still an edge: the flood stops there, and everything it cannot reach is product — so a
//!    print the colour of the backdrop stays inside the silhouette instead of becoming a hole.
//!    The edge barrier is widened by a pixel to close hairline gaps, then the rim is restored.
//! 3. Regions the flood could not reach that *are* backdrop seen through the product (the
//!    loop of a bag's handle, the gap between an arm and the body) are recognised by looking
//!    exactly like the backdrop while being separated from the outside only by a thin band of
//!    product (a strap), unlike a print, which sits deep inside; they are put back.
//! 4. On a busy background, a GrabCut-like refinement instead: foreground and background
//!    colour models re-estimated from the current mask, pixels reassigned by which model
//!    explains them better, the decision smoothed spatially.
//! 5. Morphological clean-up and the largest connected component (and any of comparable size).
//!
//! A photo with real transparency needs none of this: its alpha channel is the silhouette.

use image::{GrayImage, Luma, RgbImage};
use imageproc::distance_transform::Norm;
use imageproc::region_labelling::{Connectivity, connected_components};

use super::color::{LabF, delta_e2, image_to_lab};
use super::decode::{DecodedPhoto, resize_gray, resize_rgb};
use crate::GenerateError;

/// Default long side of the working copy.
pub(crate) const DEFAULT_WORKING_LONG_SIDE: u32 = 768;
/// Seed for every k-means run here, so the same photo always gives the same mask.
const SEED: u64 = 0x7ec4_9ac8;

/// A photo's working copy and the product's silhouette.
#[derive(Debug, Clone)]
pub(crate) struct Segmentation {
    /// The photo downscaled to the working size (RGB, alpha composited on white).
    pub working: RgbImage,
    /// The product's silhouette: 255 = product, 0 = background; same size as `working`.
    pub mask: GrayImage,
    /// Width and height of the input image (the decoded, oriented photo).
    pub input_size: (u32, u32),
    /// Input pixels per working pixel (≥ 1).
    pub scale: f64,
    /// How the mask was found, and how well the product stands out.
    pub quality: SegmentQuality,
}

/// Facts about a segmentation that decide the analysis' confidence.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SegmentQuality {
    /// The mask came from the image's own alpha channel (exact).
    pub from_alpha: bool,
    /// Colour spread of the border band in ΔE: ~1–3 for a studio backdrop, 20+ for a busy scene.
    pub background_spread: f64,
    /// Whether the busy-background refinement ran.
    pub busy_background: bool,
    /// Median ΔE between product pixels and the nearest background colour.
    pub contrast: f64,
    /// Nothing stood out from the background: the mask is the whole frame.
    pub nothing_found: bool,
    /// The product touches the frame's edge on this many sides (0–4).
    pub touching_sides: u8,
    /// Share of the product's pixels that only the edge barrier kept (their colour is within
    /// reach of the backdrop's): high for light-on-light and dark-on-dark products.
    pub edge_held_share: f64,
    /// See-through openings put back as background (handle loops, gaps by the arms).
    pub openings: usize,
    /// Enclosed regions exactly the backdrop's colour that were kept as product because
    /// nothing in the outline says whether they are a print of that colour or the backdrop
    /// seen through a gap (between an arm lying on the body and the body, say). Landmark
    /// finders may read them as gaps where their shape and place say so.
    pub backdrop_islands: Vec<Island>,
}

/// An enclosed, backdrop-coloured region kept as product (see
/// [`SegmentQuality::backdrop_islands`]), in working pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Island {
    /// Its box, ends exclusive.
    pub bbox: [u32; 4],
    /// Its pixels.
    pub area: usize,
    /// Its highest pixel.
    pub top: [f64; 2],
    /// Its lowest pixel.
    pub bottom: [f64; 2],
}

/// Segments a decoded photo on a copy whose long side is at most `working_long_side`.
pub(crate) fn segment_photo(
    photo: &DecodedPhoto,
    working_long_side: u32,
) -> Result<Segmentation, GenerateError> {
    let input_size = photo.rgb.dimensions();
    let working_long_side = working_long_side.max(64);
    let long = input_size.0.max(input_size.1);
    let (working, alpha, scale) = if long > working_long_side {
        let s = f64::from(working_long_side) / f64::from(long);
        let w = ((f64::from(input_size.0) * s).round() as u32).max(1);
        let h = ((f64::from(input_size.1) * s).round() as u32).max(1);
        let working = resize_rgb(&photo.rgb, w, h)?;
        let alpha = photo
            .alpha
            .as_ref()
            .map(|a| resize_gray(a, w, h))
            .transpose()?;
        (
            working,
            alpha,
            f64::from(long) / f64::from(working_long_side),
        )
    } else {
        (photo.rgb.clone(), photo.alpha.clone(), 1.0)
    };
    let (mask, quality) = match alpha {
        Some(alpha) => mask_from_alpha(&alpha),
        None => segment(&working),
    };
    Ok(Segmentation {
        working,
        mask,
        input_size,
        scale,
        quality,
    })
}

/// Decodes `bytes` and segments the product at the default sizes (tests use it).
#[cfg(test)]
pub(crate) fn decode_and_segment(bytes: &[u8]) -> Result<Segmentation, GenerateError> {
    let photo = super::decode::decode_photo(bytes, super::decode::DEFAULT_MAX_LONG_SIDE)?;
    segment_photo(&photo, DEFAULT_WORKING_LONG_SIDE)
}

/// Decodes `bytes` and segments on a copy whose long side is at most `working_long_side`.
#[cfg(test)]
pub(crate) fn decode_and_segment_with(
    bytes: &[u8],
    working_long_side: u32,
) -> Result<Segmentation, GenerateError> {
    let photo = super::decode::decode_photo(bytes, super::decode::DEFAULT_MAX_LONG_SIDE)?;
    segment_photo(&photo, working_long_side)
}

fn mask_from_alpha(alpha: &GrayImage) -> (GrayImage, SegmentQuality) {
    let mut mask = GrayImage::new(alpha.width(), alpha.height());
    for (m, a) in mask.pixels_mut().zip(alpha.pixels()) {
        m.0 = [if a.0[0] >= 128 { 255 } else { 0 }];
    }
    let touching_sides = touching_sides(&mask);
    (
        mask,
        SegmentQuality {
            from_alpha: true,
            background_spread: 0.0,
            busy_background: false,
            contrast: 100.0,
            nothing_found: false,
            touching_sides,
            edge_held_share: 0.0,
            openings: 0,
            backdrop_islands: Vec::new(),
        },
    )
}

/// The segmentation described in the module docs.
fn segment(working: &RgbImage) -> (GrayImage, SegmentQuality) {
    let (w, h) = working.dimensions();
    let n = (w * h) as usize;
    // A light blur first: JPEG noise and fabric texture would otherwise speckle the
    // distance map, and busy mosaic backgrounds average towards their local colour.
    let blurred = imageproc::filter::gaussian_blur_f32(working, 1.2);
    let lab = image_to_lab(&blurred);

    let band = (w.min(h) / 60).max(2);
    let border: Vec<usize> = border_indices(w, h, band);
    let border_lab: Vec<LabF> = border.iter().map(|&i| lab[i]).collect();
    let background_spread = spread(&border_lab);
    let busy = background_spread > 12.0;

    let k = if busy { 12 } else { 4 };
    let bg_model = kmeans(&subsample(&border_lab, 8_000), k);
    let dist: Vec<f32> = lab.iter().map(|p| nearest2(p, &bg_model).sqrt()).collect();

    // The backdrop's own noise, measured on the band, sets the threshold: a product pixel must
    // stand further from every backdrop colour than nearly all backdrop pixels do.
    let mut border_d: Vec<f32> = border.iter().map(|&i| dist[i]).collect();
    border_d.sort_by(f32::total_cmp);
    let noise = quantile(&border_d, 0.97);
    let threshold = (noise * 1.6).max(5.0);

    let (mut mask, edge_held_share, openings, backdrop_islands) = if busy {
        let mut fg: Vec<bool> = dist.iter().map(|&d| d > threshold).collect();
        refine_busy(&lab, w, h, band, &mut fg);
        let mut mask = mask_from_bools(&fg, w, h);
        let r = (w.max(h) / 300).clamp(1, 4) as u8;
        mask = imageproc::morphology::open(&mask, Norm::LInf, r);
        mask = imageproc::morphology::close(&mask, Norm::LInf, r + 1);
        keep_main_components(&mut mask);
        fill_small_holes(&mut mask, 0.05);
        (mask, 0.0, 0, Vec::new())
    } else {
        flood_segment(&lab, &bg_model, &dist, w, h, &border, threshold)
    };

    let product: Vec<f32> = mask
        .pixels()
        .zip(dist.iter())
        .filter(|(m, _)| m.0[0] > 0)
        .map(|(_, d)| *d)
        .collect();
    let area = product.len();
    let nothing_found = area < n / 500;
    let contrast = if product.is_empty() {
        0.0
    } else {
        let mut p = product;
        p.sort_by(f32::total_cmp);
        f64::from(quantile(&p, 0.5))
    };
    if nothing_found {
        // Nothing stands out: answer with the whole frame and let the confidence say so.
        mask.pixels_mut().for_each(|p| p.0 = [255]);
    }
    let touching_sides = if nothing_found {
        4
    } else {
        touching_sides(&mask)
    };
    (
        mask,
        SegmentQuality {
            from_alpha: false,
            background_spread: f64::from(background_spread),
            busy_background: busy,
            contrast,
            nothing_found,
            touching_sides,
            edge_held_share,
            openings,
            backdrop_islands,
        },
    )
}

fn mask_from_bools(fg: &[bool], w: u32, h: u32) -> GrayImage {
    GrayImage::from_fn(w, h, |x, y| {
        Luma([if fg[(y * w + x) as usize] { 255 } else { 0 }])
    })
}

/// Colour gradient magnitude in ΔE per pixel (central differences of the Lab image).
fn lab_gradient(lab: &[LabF], w: u32, h: u32) -> Vec<f32> {
    let (w, h) = (w as usize, h as usize);
    let mut out = vec![0f32; w * h];
    for y in 0..h {
        let (ya, yb) = (y.saturating_sub(1), (y + 1).min(h - 1));
        for x in 0..w {
            let (xa, xb) = (x.saturating_sub(1), (x + 1).min(w - 1));
            let gx = delta_e2(&lab[y * w + xb], &lab[y * w + xa]);
            let gy = delta_e2(&lab[yb * w + x], &lab[ya * w + x]);
            out[y * w + x] = (gx + gy).sqrt() * 0.5;
        }
    }
    out
}

/// The edge-aware background flood of the module docs (plain backdrops). Returns the mask,
/// the share of product pixels only the edge barrier kept, the openings put back and the
/// backdrop-coloured islands kept.
fn flood_segment(
    lab: &[LabF],
    bg_model: &[LabF],
    dist: &[f32],
    w: u32,
    h: u32,
    border: &[usize],
    threshold: f32,
) -> (GrayImage, f64, usize, Vec<Island>) {
    let n = (w * h) as usize;
    let (wu, hu) = (w as usize, h as usize);
    let mut islands = Vec::new();
    let grad = lab_gradient(lab, w, h);
    let mut border_g: Vec<f32> = border.iter().map(|&i| grad[i]).collect();
    border_g.sort_by(f32::total_cmp);
    // An edge is a colour change steeper than the backdrop's own (its grain, its JPEG noise,
    // the slow light fall-off of a sweep), with a floor of 1 ΔE per pixel: soft shadows fade
    // at about half that, while a product's outline — even a white tee's on white — rises to
    // several ΔE per pixel.
    let edge = (quantile(&border_g, 0.99) * 2.0).max(1.0);
    let on_edge: Vec<bool> = grad.iter().map(|&g| g >= edge).collect();
    // The wall is the edges widened by about 1 % of the image, so the flood cannot slip
    // through a gap where an outline fades for a few pixels; what the widening takes from
    // the background is given back below, only where no edge stands.
    let r = ((w.max(h) as f64 / 150.0).round() as usize).clamp(2, 12);
    let wall = dilate_bools(&on_edge, wu, hu, r);
    let passable: Vec<bool> = wall.iter().map(|w| !w).collect();
    let mut reached = vec![false; n];
    let mut queue: std::collections::VecDeque<usize> = border
        .iter()
        .copied()
        .filter(|&i| passable[i] && dist[i] < threshold)
        .collect();
    for &i in &queue {
        reached[i] = true;
    }
    flood(&mut queue, &mut reached, &passable, wu, hu);
    for _ in 0..=r {
        let grow: Vec<usize> = (0..n)
            .filter(|&i| !reached[i] && !on_edge[i] && neighbours4(i, wu, hu).any(|j| reached[j]))
            .collect();
        for i in grow {
            reached[i] = true;
        }
    }

    // Regions the flood could not reach but that carry no edge: backdrop seen through the
    // product, or product (a light fabric's body, a print the backdrop's colour)?
    let mut openings = 0usize;
    let product_area = reached.iter().filter(|r| !**r).count();
    let mut enclosed = GrayImage::new(w, h);
    for i in 0..n {
        if !reached[i] && !on_edge[i] {
            enclosed.put_pixel((i % wu) as u32, (i / wu) as u32, Luma([255]));
        }
    }
    let labels = connected_components(&enclosed, Connectivity::Four, Luma([0u8]));
    let mut comps: Vec<Vec<usize>> = Vec::new();
    for (i, l) in labels.pixels().enumerate() {
        let l = l.0[0] as usize;
        if l == 0 {
            continue;
        }
        if comps.len() < l {
            comps.resize(l, Vec::new());
        }
        comps[l - 1].push(i);
    }
    if !comps.is_empty() {
        // Which enclosed pixels the outside reaches when only real edges stop it (the wall
        // not widened): a gap under an arm opens to the outside through a passage the widened
        // wall closed; a print is closed off by its own edge.
        let mut open_to_outside = reached.clone();
        let mut queue: std::collections::VecDeque<usize> = (0..n).filter(|&i| reached[i]).collect();
        let thin_passable: Vec<bool> = on_edge.iter().map(|e| !e).collect();
        flood(&mut queue, &mut open_to_outside, &thin_passable, wu, hu);
        // Distance (L∞, capped at 255) from every pixel to the reached background.
        let mut outside = GrayImage::new(w, h);
        for (i, r) in reached.iter().enumerate() {
            if *r {
                outside.put_pixel((i % wu) as u32, (i / wu) as u32, Luma([255]));
            }
        }
        let to_outside = imageproc::distance_transform::distance_transform(&outside, Norm::LInf);
        let min_area = (product_area / 1000).max(12);
        for comp in &comps {
            let area = comp.len();
            // An opening is smaller than the product around it, and it *is* the backdrop.
            if area < min_area || area * 2 > product_area.saturating_sub(area) {
                if std::env::var_os("TECHPACK_DEBUG_SEG").is_some() && area >= 50 {
                    let i0 = comp[0];
                    eprintln!(
                        "skipped comp at ({},{}) area {area} (min {min_area})",
                        i0 % wu,
                        i0 / wu
                    );
                }
                continue;
            }
            // Most of it is the backdrop itself; the rest is the shadow the product casts into
            // the opening.
            let backdrop_like = comp.iter().filter(|&&i| dist[i] < threshold).count();
            if backdrop_like * 10 < area * 6 {
                continue;
            }
            // A strap or an arm separates it from the outside; a print sits deep inside.
            let separation = comp
                .iter()
                .map(|&i| to_outside.get_pixel((i % wu) as u32, (i / wu) as u32).0[0])
                .min()
                .unwrap_or(255);
            let limit = ((area as f64).sqrt() * 0.5).max(3.0);
            let opens = comp.iter().any(|&i| open_to_outside[i]);
            if std::env::var_os("TECHPACK_DEBUG_SEG").is_some() {
                let i0 = comp[0];
                eprintln!(
                    "enclosed comp at ({},{}) area {area} backdrop {backdrop_like} sep {separation} limit {limit:.1} opens {opens}",
                    i0 % wu,
                    i0 / wu
                );
            }
            if f64::from(separation) <= limit || opens {
                openings += 1;
                for &i in comp {
                    reached[i] = true;
                }
            } else {
                let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
                for &i in comp {
                    let (x, y) = (i % wu, i / wu);
                    x0 = x0.min(x);
                    y0 = y0.min(y);
                    x1 = x1.max(x + 1);
                    y1 = y1.max(y + 1);
                }
                let row_mid = |row: usize| {
                    let xs: Vec<usize> = comp
                        .iter()
                        .filter(|&&i| i / wu == row)
                        .map(|&i| i % wu)
                        .collect();
                    let (lo, hi) = (
                        xs.iter().copied().min().unwrap_or(x0),
                        xs.iter().copied().max().unwrap_or(x0),
                    );
                    (lo + hi) as f64 / 2.0 + 0.5
                };
                islands.push(Island {
                    bbox: [x0 as u32, y0 as u32, x1 as u32, y1 as u32],
                    area,
                    top: [row_mid(y0), y0 as f64],
                    bottom: [row_mid(y1 - 1), (y1 - 1) as f64],
                });
            }
        }
    }

    // The flood stops where the edge starts, so the product keeps its blended rim (and the
    // foot of a soft shadow). Where the product stands well clear of the backdrop, cut
    // halfway instead, as an alpha ≥ 50 % silhouette does.
    let mut product_d: Vec<f32> = (0..n).filter(|&i| !reached[i]).map(|i| dist[i]).collect();
    if product_d.len() > n / 500 {
        product_d.sort_by(f32::total_cmp);
        let half = 0.5 * quantile(&product_d, 0.25);
        if half > threshold {
            for _ in 0..3 {
                let peel: Vec<usize> = (0..n)
                    .filter(|&i| {
                        !reached[i] && dist[i] < half && neighbours4(i, wu, hu).any(|j| reached[j])
                    })
                    .collect();
                for i in peel {
                    reached[i] = true;
                }
            }
        }
    }

    let fg: Vec<bool> = reached.iter().map(|r| !r).collect();
    let mut mask = mask_from_bools(&fg, w, h);
    let r = (w.max(h) / 400).clamp(1, 3) as u8;
    mask = imageproc::morphology::open(&mask, Norm::LInf, r);
    let sliver = ((w.max(h) as f64 / 200.0).round() as u8).clamp(2, 8);
    remove_shadow_slivers(&mut mask, lab, bg_model, sliver);
    keep_main_components(&mut mask);
    let kept = mask.pixels().filter(|p| p.0[0] > 0).count();
    let held = mask
        .pixels()
        .zip(dist)
        .filter(|(m, d)| m.0[0] > 0 && **d < threshold)
        .count();
    let held_share = if kept == 0 {
        0.0
    } else {
        held as f64 / kept as f64
    };
    (mask, held_share, openings, islands)
}

/// Drops the thin slivers of cast shadow that a product's base or side keeps: product pixels
/// that look like the backdrop in shadow (its hue, somewhat darker) in strands narrower
/// than `2r + 1` pixels that reach the background. A shadow under a mug is such a strand; a
/// grey or white *part* of a product is wider, and a dark strap is far darker than a shadow.
/// Products that are mostly neutral themselves are left alone.
fn remove_shadow_slivers(mask: &mut GrayImage, lab: &[LabF], bg_model: &[LabF], r: u8) {
    let (w, h) = mask.dimensions();
    let (wu, hu) = (w as usize, h as usize);
    let shadow: Vec<bool> = mask
        .pixels()
        .zip(lab)
        .map(|(m, p)| {
            if m.0[0] == 0 {
                return false;
            }
            let Some(c) = bg_model
                .iter()
                .min_by(|a, b| delta_e2(p, a).total_cmp(&delta_e2(p, b)))
            else {
                return false;
            };
            let dab = ((p.a - c.a).powi(2) + (p.b - c.b).powi(2)).sqrt();
            let darker = c.l - p.l;
            dab < 4.0 && (2.0..=35.0).contains(&darker)
        })
        .collect();
    // On a grey, white or black product most pixels look like shadow too, and its thin
    // parts cannot be told from one: leave such products alone.
    let area = mask.pixels().filter(|p| p.0[0] > 0).count();
    let shadow_like = shadow.iter().filter(|s| **s).count();
    if shadow_like == 0 || shadow_like * 10 > area * 3 {
        return;
    }
    let opened = imageproc::morphology::open(&mask_from_bools(&shadow, w, h), Norm::LInf, r);
    let thin: Vec<bool> = shadow
        .iter()
        .zip(opened.pixels())
        .map(|(s, o)| *s && o.0[0] == 0)
        .collect();
    // Only strands connected to the outside go: a thin neutral line inside the product (a
    // seam, a zip tape) is part of it.
    let mut gone = vec![false; wu * hu];
    let mut queue: std::collections::VecDeque<usize> = (0..wu * hu)
        .filter(|&i| thin[i] && neighbours4(i, wu, hu).any(|j| mask.as_raw()[j] == 0))
        .collect();
    for &i in &queue {
        gone[i] = true;
    }
    flood(&mut queue, &mut gone, &thin, wu, hu);
    for (i, g) in gone.iter().enumerate() {
        if *g {
            mask.put_pixel((i % wu) as u32, (i / wu) as u32, Luma([0]));
        }
    }
}

/// Widens the set pixels by `r` in every direction (a (2r+1)² square), via a summed-area
/// table so the cost does not grow with `r`.
fn dilate_bools(on: &[bool], w: usize, h: usize, r: usize) -> Vec<bool> {
    let mut integral = vec![0u32; (w + 1) * (h + 1)];
    for y in 0..h {
        let mut row = 0u32;
        for x in 0..w {
            row += u32::from(on[y * w + x]);
            integral[(y + 1) * (w + 1) + x + 1] = integral[y * (w + 1) + x + 1] + row;
        }
    }
    let mut out = vec![false; w * h];
    for y in 0..h {
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
        for x in 0..w {
            let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
            let s = integral[y1 * (w + 1) + x1] + integral[y0 * (w + 1) + x0]
                - integral[y0 * (w + 1) + x1]
                - integral[y1 * (w + 1) + x0];
            out[y * w + x] = s > 0;
        }
    }
    out
}

/// Breadth-first flood over `passable` pixels from the queued ones (4-connected).
fn flood(
    queue: &mut std::collections::VecDeque<usize>,
    reached: &mut [bool],
    passable: &[bool],
    w: usize,
    h: usize,
) {
    while let Some(i) = queue.pop_front() {
        for j in neighbours4(i, w, h) {
            if !reached[j] && passable[j] {
                reached[j] = true;
                queue.push_back(j);
            }
        }
    }
}

/// The 4-neighbours of pixel `i` inside a `w × h` image.
fn neighbours4(i: usize, w: usize, h: usize) -> impl Iterator<Item = usize> {
    let (x, y) = (i % w, i / w);
    let left = (x > 0).then(|| i - 1);
    let right = (x + 1 < w).then(|| i + 1);
    let up = (y > 0).then(|| i - w);
    let down = (y + 1 < h).then(|| i + w);
    [left, right, up, down].into_iter().flatten()
}

/// GrabCut-like refinement for busy backgrounds (see module docs).
///
/// As in GrabCut, everything outside a rectangle around the first guess is background by
/// definition, and only that outside trains the background model: learning it from inside
/// pixels that were wrongly dropped would teach it the product's own colour and lose more of
/// the product at each round.
fn refine_busy(lab: &[LabF], w: u32, h: u32, band: u32, fg: &mut [bool]) {
    let n = lab.len();
    let mut seed = GrayImage::from_fn(w, h, |x, y| {
        Luma([if fg[(y * w + x) as usize] { 255 } else { 0 }])
    });
    seed = imageproc::morphology::open(&seed, Norm::LInf, 3);
    keep_main_components(&mut seed);
    let Some([x0, y0, x1, y1]) = mask_bbox(&seed) else {
        return;
    };
    let mx = w / 40;
    let my = h / 40;
    let rect = [
        x0.saturating_sub(mx).max(band),
        y0.saturating_sub(my).max(band),
        (x1 + mx).min(w - band),
        (y1 + my).min(h - band),
    ];
    let inside = |i: usize| {
        let (x, y) = ((i as u32) % w, (i as u32) / w);
        x >= rect[0] && x < rect[2] && y >= rect[1] && y < rect[3]
    };
    let bg_px: Vec<LabF> = (0..n).filter(|&i| !inside(i)).map(|i| lab[i]).collect();
    if bg_px.len() < 64 {
        return;
    }
    let bg_model = kmeans(&subsample(&bg_px, 16_000), 16);
    let bg_d: Vec<f32> = lab.iter().map(|p| nearest2(p, &bg_model).sqrt()).collect();
    let mut is_fg: Vec<bool> = seed.pixels().map(|p| p.0[0] > 0).collect();
    for _ in 0..3 {
        let fg_px: Vec<LabF> = (0..n).filter(|&i| is_fg[i]).map(|i| lab[i]).collect();
        if fg_px.len() < 64 {
            break;
        }
        let fg_model = kmeans(&subsample(&fg_px, 12_000), 8);
        // Positive where the foreground model explains the pixel better.
        let score: Vec<f32> = lab
            .iter()
            .zip(&bg_d)
            .map(|(p, bd)| bd - nearest2(p, &fg_model).sqrt())
            .collect();
        let smoothed = box_mean(&score, w, h, 2);
        for (i, f) in is_fg.iter_mut().enumerate() {
            *f = inside(i) && smoothed[i] > 0.0;
        }
        let mut m = GrayImage::from_fn(w, h, |x, y| {
            Luma([if is_fg[(y * w + x) as usize] { 255 } else { 0 }])
        });
        m = imageproc::morphology::open(&m, Norm::LInf, 1);
        keep_main_components(&mut m);
        is_fg = m.pixels().map(|p| p.0[0] > 0).collect();
    }
    fg.copy_from_slice(&is_fg);
}

/// Mean over a (2r+1)² window, via an integral image.
fn box_mean(v: &[f32], w: u32, h: u32, r: u32) -> Vec<f32> {
    let (w, h, r) = (w as usize, h as usize, r as usize);
    let mut integral = vec![0f64; (w + 1) * (h + 1)];
    for y in 0..h {
        let mut row = 0f64;
        for x in 0..w {
            row += f64::from(v[y * w + x]);
            integral[(y + 1) * (w + 1) + x + 1] = integral[y * (w + 1) + x + 1] + row;
        }
    }
    let mut out = vec![0f32; w * h];
    for y in 0..h {
        let y0 = y.saturating_sub(r);
        let y1 = (y + r + 1).min(h);
        for x in 0..w {
            let x0 = x.saturating_sub(r);
            let x1 = (x + r + 1).min(w);
            let s = integral[y1 * (w + 1) + x1]
                - integral[y0 * (w + 1) + x1]
                - integral[y1 * (w + 1) + x0]
                + integral[y0 * (w + 1) + x0];
            out[y * w + x] = (s / ((y1 - y0) * (x1 - x0)) as f64) as f32;
        }
    }
    out
}

fn border_indices(w: u32, h: u32, band: u32) -> Vec<usize> {
    let mut out = Vec::new();
    for y in 0..h {
        for x in 0..w {
            if x < band || y < band || x >= w - band || y >= h - band {
                out.push((y * w + x) as usize);
            }
        }
    }
    out
}

/// Root-mean-square ΔE of the colours from their mean.
fn spread(px: &[LabF]) -> f32 {
    if px.is_empty() {
        return 0.0;
    }
    let n = px.len() as f32;
    let (l, a, b) = px.iter().fold((0.0, 0.0, 0.0), |acc, p| {
        (acc.0 + p.l, acc.1 + p.a, acc.2 + p.b)
    });
    let mean = LabF::new(l / n, a / n, b / n);
    (px.iter().map(|p| delta_e2(p, &mean)).sum::<f32>() / n).sqrt()
}

/// Every `len / max`-th element, so k-means cost does not grow with the image.
pub(crate) fn subsample<T: Copy>(v: &[T], max: usize) -> Vec<T> {
    let step = v.len().div_ceil(max).max(1);
    v.iter().step_by(step).copied().collect()
}

/// Deterministic k-means in CIELAB; returns the centroids.
pub(crate) fn kmeans(px: &[LabF], k: usize) -> Vec<LabF> {
    if px.is_empty() {
        return Vec::new();
    }
    let k = k.min(px.len()).max(1);
    kmeans_colors::get_kmeans(k, 20, 1.0, false, px, SEED).centroids
}

#[inline]
fn nearest2(p: &LabF, centres: &[LabF]) -> f32 {
    centres
        .iter()
        .map(|c| delta_e2(p, c))
        .fold(f32::INFINITY, f32::min)
}

/// The value below which a share `q` of the sorted values lie.
fn quantile(sorted: &[f32], q: f64) -> f32 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

/// Keeps the largest 8-connected component and any at least a fifth of its size (the second
/// shoe of a pair, a separate strap); drops specks.
pub(crate) fn keep_main_components(mask: &mut GrayImage) {
    let labels = connected_components(mask, Connectivity::Eight, Luma([0u8]));
    let mut areas: Vec<u64> = Vec::new();
    for l in labels.pixels() {
        let l = l.0[0] as usize;
        if l == 0 {
            continue;
        }
        if areas.len() <= l {
            areas.resize(l + 1, 0);
        }
        areas[l] += 1;
    }
    let largest = areas.iter().copied().max().unwrap_or(0);
    if largest == 0 {
        return;
    }
    let keep: Vec<bool> = areas.iter().map(|&a| a > 0 && a * 5 >= largest).collect();
    for (m, l) in mask.pixels_mut().zip(labels.pixels()) {
        let l = l.0[0] as usize;
        m.0 = [if l > 0 && keep[l] { 255 } else { 0 }];
    }
}

/// Fills background holes inside the product smaller than `max_share` of the product's area.
fn fill_small_holes(mask: &mut GrayImage, max_share: f64) {
    let (w, h) = mask.dimensions();
    let product = mask.pixels().filter(|p| p.0[0] > 0).count() as f64;
    let mut inverted = mask.clone();
    inverted.pixels_mut().for_each(|p| p.0 = [255 - p.0[0]]);
    // 4-connectivity for the background, so a diagonal gap in the outline does not leak.
    let labels = connected_components(&inverted, Connectivity::Four, Luma([0u8]));
    let mut areas: Vec<u64> = Vec::new();
    let mut touches: Vec<bool> = Vec::new();
    for (x, y, l) in labels.enumerate_pixels() {
        let l = l.0[0] as usize;
        if l == 0 {
            continue;
        }
        if areas.len() <= l {
            areas.resize(l + 1, 0);
            touches.resize(l + 1, false);
        }
        areas[l] += 1;
        if x == 0 || y == 0 || x == w - 1 || y == h - 1 {
            touches[l] = true;
        }
    }
    for (m, l) in mask.pixels_mut().zip(labels.pixels()) {
        let l = l.0[0] as usize;
        if l > 0 && !touches[l] && (areas[l] as f64) < product * max_share {
            m.0 = [255];
        }
    }
}

fn touching_sides(mask: &GrayImage) -> u8 {
    let (w, h) = mask.dimensions();
    let on = |x: u32, y: u32| mask.get_pixel(x, y).0[0] > 0;
    let top = (0..w).any(|x| on(x, 0));
    let bottom = (0..w).any(|x| on(x, h - 1));
    let left = (0..h).any(|y| on(0, y));
    let right = (0..h).any(|y| on(w - 1, y));
    [top, bottom, left, right].iter().filter(|&&b| b).count() as u8
}

/// Bounding box of the mask's set pixels, `[x0, y0, x1, y1]` ends exclusive, in mask pixels.
pub(crate) fn mask_bbox(mask: &GrayImage) -> Option<[u32; 4]> {
    let (w, h) = mask.dimensions();
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for (x, y, p) in mask.enumerate_pixels() {
        if p.0[0] > 0 {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x + 1);
            y1 = y1.max(y + 1);
        }
    }
    (x1 > x0 && y1 > y0).then_some([x0, y0, x1, y1])
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn png(img: &RgbImage) -> Vec<u8> {
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn finds_a_rectangle_on_white() {
        let img = RgbImage::from_fn(400, 300, |x, y| {
            if (100..300).contains(&x) && (50..250).contains(&y) {
                image::Rgb([200, 30, 40])
            } else {
                image::Rgb([250, 250, 250])
            }
        });
        let seg = decode_and_segment(&png(&img)).unwrap();
        assert_eq!(seg.input_size, (400, 300));
        assert_eq!(seg.scale, 1.0);
        let bbox = mask_bbox(&seg.mask).unwrap();
        for (got, want) in bbox.iter().zip([100, 50, 300, 250]) {
            assert!((*got as i64 - want).abs() <= 2, "{bbox:?}");
        }
        assert!(!seg.quality.nothing_found);
        assert_eq!(seg.quality.touching_sides, 0);
    }

    #[test]
    fn downscales_to_the_working_size() {
        let img = RgbImage::from_pixel(2000, 1000, image::Rgb([10, 10, 10]));
        let seg = decode_and_segment_with(&png(&img), 500).unwrap();
        assert_eq!(seg.working.dimensions(), (500, 250));
        assert_eq!(seg.mask.dimensions(), (500, 250));
        assert!((seg.scale - 4.0).abs() < 1e-9);
        assert!(seg.quality.nothing_found);
    }

    #[test]
    fn uses_real_transparency_as_the_mask() {
        let img = image::RgbaImage::from_fn(100, 100, |x, y| {
            let a = if (20..80).contains(&x) && (30..70).contains(&y) {
                255
            } else {
                0
            };
            image::Rgba([255, 255, 255, a])
        });
        let mut bytes = Vec::new();
        img.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
            .unwrap();
        let seg = decode_and_segment(&bytes).unwrap();
        assert!(seg.quality.from_alpha);
        assert_eq!(mask_bbox(&seg.mask), Some([20, 30, 80, 70]));
    }
}
