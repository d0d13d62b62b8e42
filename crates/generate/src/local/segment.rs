//! Decoding a photo safely and separating the product from its background.
//!
//! This is the contract between the analysis/close-up code and the sketch code: both start
//! from one [`Segmentation`].
//!
//! Decoding refuses what is not a usable photo (unknown format, truncated data, tiny images,
//! declared sizes beyond [`MAX_SIDE`] or [`MAX_PIXELS`]) before allocating pixels, so a
//! decompression bomb costs a header read, not memory.
//!
//! Segmentation works on a downscaled working copy:
//! 1. a background colour model from the border band (k-means in CIELAB, since a studio
//!    backdrop is one colour but a busy one is many);
//! 2. a distance-to-background map, thresholded just above the backdrop's own noise;
//! 3. on busy backgrounds, a GrabCut-like refinement: foreground and background colour models
//!    re-estimated from the current mask, pixels reassigned by which model explains them
//!    better, the decision smoothed spatially (a cheap stand-in for the graph-cut's
//!    pairwise term);
//! 4. morphological clean-up, the largest connected component (and any of comparable size),
//!    small holes filled (prints the colour of the backdrop), large background-coloured holes
//!    kept (the loop of a bag handle).
//!
//! A PNG with real transparency needs none of this: its alpha channel is the silhouette.

use std::io::Cursor;

use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images::Image};
use image::{DynamicImage, GrayImage, ImageReader, Limits, Luma, RgbImage};
use imageproc::distance_transform::Norm;
use imageproc::region_labelling::{Connectivity, connected_components};

use super::color::{LabF, delta_e2, image_to_lab};
use crate::GenerateError;

/// Longest accepted side of an input image, in pixels.
pub(crate) const MAX_SIDE: u32 = 16_384;
/// Most pixels accepted in one input image (a 20 000 × 20 000 image is refused).
pub(crate) const MAX_PIXELS: u64 = 50_000_000;
/// Memory the decoder may allocate.
const MAX_ALLOC: u64 = 512 * 1024 * 1024;
/// Shortest accepted side: below this there is no product to see.
pub(crate) const MIN_SIDE: u32 = 16;
/// Default long side of the working copy.
pub(crate) const DEFAULT_WORKING_LONG_SIDE: u32 = 768;
/// Seed for every k-means run here, so the same photo always gives the same mask.
const SEED: u64 = 0x7ec4_9ac8;

/// A decoded photo, its working copy and the product's silhouette.
#[derive(Debug, Clone)]
pub(crate) struct Segmentation {
    /// The photo downscaled to the working size (RGB, alpha composited on white).
    pub working: RgbImage,
    /// The product's silhouette: 255 = product, 0 = background; same size as `working`.
    pub mask: GrayImage,
    /// Width and height of the input image.
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
}

/// Decodes `bytes` and segments the product at the default working size.
// The agreed entry point for the sketch code and tests; the provider itself passes its
// configured working size to `decode_and_segment_with`.
#[allow(dead_code)]
pub(crate) fn decode_and_segment(bytes: &[u8]) -> Result<Segmentation, GenerateError> {
    decode_and_segment_with(bytes, DEFAULT_WORKING_LONG_SIDE)
}

/// Decodes `bytes` and segments the product on a copy whose long side is at most
/// `working_long_side` pixels.
pub(crate) fn decode_and_segment_with(
    bytes: &[u8],
    working_long_side: u32,
) -> Result<Segmentation, GenerateError> {
    let decoded = decode(bytes)?;
    let input_size = (decoded.width(), decoded.height());
    let (rgb, alpha) = split_alpha(decoded);
    let working_long_side = working_long_side.max(64);
    let long = input_size.0.max(input_size.1);
    let (working, alpha, scale) = if long > working_long_side {
        let s = working_long_side as f64 / long as f64;
        let w = ((input_size.0 as f64 * s).round() as u32).max(1);
        let h = ((input_size.1 as f64 * s).round() as u32).max(1);
        let working = resize_rgb(&rgb, w, h)?;
        let alpha = alpha.map(|a| resize_gray(&a, w, h)).transpose()?;
        (working, alpha, long as f64 / working_long_side as f64)
    } else {
        (rgb, alpha, 1.0)
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

/// Decodes with size checks done on the header, before any pixel buffer exists.
pub(crate) fn decode(bytes: &[u8]) -> Result<DynamicImage, GenerateError> {
    let reader = |bytes| {
        let mut reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| GenerateError::BadInput(format!("cannot read the image: {e}")))?;
        if reader.format().is_none() {
            return Err(GenerateError::BadInput(
                "not an image: the data matches no supported format (JPEG, PNG, WebP, GIF, BMP, TIFF)"
                    .into(),
            ));
        }
        let mut limits = Limits::default();
        limits.max_image_width = Some(MAX_SIDE);
        limits.max_image_height = Some(MAX_SIDE);
        limits.max_alloc = Some(MAX_ALLOC);
        reader.limits(limits);
        Ok(reader)
    };
    let (w, h) = reader(bytes)?
        .into_dimensions()
        .map_err(|e| image_error("cannot read the image header", e))?;
    if w > MAX_SIDE || h > MAX_SIDE || u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(GenerateError::BadInput(format!(
            "image too large: {w}×{h} pixels declared; the limit is {MAX_SIDE} px per side and {} megapixels",
            MAX_PIXELS / 1_000_000
        )));
    }
    if w < MIN_SIDE || h < MIN_SIDE {
        return Err(GenerateError::BadInput(format!(
            "image too small: {w}×{h} pixels; at least {MIN_SIDE}×{MIN_SIDE} is needed to see a product"
        )));
    }
    if is_truncated_jpeg(bytes) {
        return Err(GenerateError::BadInput(
            "truncated JPEG: the file ends before its end-of-image marker".into(),
        ));
    }
    reader(bytes)?
        .decode()
        .map_err(|e| image_error("cannot decode the image", e))
}

/// The JPEG decoder fills a cut-off scan with grey rather than failing, which would analyse a
/// half-grey photo as if it were real; a JPEG must end with its EOI marker (0xFFD9), allowing
/// for the few bytes of padding some encoders append.
fn is_truncated_jpeg(bytes: &[u8]) -> bool {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let tail = &bytes[bytes.len().saturating_sub(64)..];
    !tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

fn image_error(context: &str, e: image::ImageError) -> GenerateError {
    use image::ImageError;
    let what = match &e {
        ImageError::Limits(_) => "image too large for the decoder's memory limit",
        ImageError::Unsupported(_) => "unsupported image format or feature",
        ImageError::Decoding(_) => "corrupt or truncated image data",
        ImageError::IoError(_) => "truncated or unreadable image data",
        ImageError::Parameter(_) | ImageError::Encoding(_) => "invalid image",
    };
    GenerateError::BadInput(format!("{context}: {what} ({e})"))
}

/// RGB composited on white, plus the alpha channel when it carries real transparency.
fn split_alpha(img: DynamicImage) -> (RgbImage, Option<GrayImage>) {
    if !img.color().has_alpha() {
        return (img.into_rgb8(), None);
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut rgb = RgbImage::new(w, h);
    let mut alpha = GrayImage::new(w, h);
    let mut transparent = 0u64;
    for ((src, dst), a) in rgba.pixels().zip(rgb.pixels_mut()).zip(alpha.pixels_mut()) {
        let [r, g, b, al] = src.0;
        let blend = |c: u8| {
            ((u32::from(c) * u32::from(al) + 255 * (255 - u32::from(al)) + 127) / 255) as u8
        };
        dst.0 = [blend(r), blend(g), blend(b)];
        a.0 = [al];
        if al < 128 {
            transparent += 1;
        }
    }
    let total = u64::from(w) * u64::from(h);
    // An alpha channel that is all opaque (or all clear) says nothing about the product.
    let useful = transparent * 100 >= total && transparent * 100 <= total * 99;
    (rgb, useful.then_some(alpha))
}

fn resize_rgb(img: &RgbImage, w: u32, h: u32) -> Result<RgbImage, GenerateError> {
    let buf = resize_raw(
        img.as_raw(),
        img.width(),
        img.height(),
        w,
        h,
        PixelType::U8x3,
    )?;
    RgbImage::from_raw(w, h, buf).ok_or_else(|| internal("resize produced a wrong-sized buffer"))
}

fn resize_gray(img: &GrayImage, w: u32, h: u32) -> Result<GrayImage, GenerateError> {
    let buf = resize_raw(img.as_raw(), img.width(), img.height(), w, h, PixelType::U8)?;
    GrayImage::from_raw(w, h, buf).ok_or_else(|| internal("resize produced a wrong-sized buffer"))
}

/// Downscales with a Lanczos3 convolution (fast_image_resize's SIMD path).
fn resize_raw(
    src: &[u8],
    sw: u32,
    sh: u32,
    dw: u32,
    dh: u32,
    pixel: PixelType,
) -> Result<Vec<u8>, GenerateError> {
    let src = fast_image_resize::images::ImageRef::new(sw, sh, src, pixel)
        .map_err(|e| internal(&format!("resize source: {e}")))?;
    let mut dst = Image::new(dw, dh, pixel);
    Resizer::new()
        .resize(
            &src,
            &mut dst,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)),
        )
        .map_err(|e| internal(&format!("resize: {e}")))?;
    Ok(dst.into_vec())
}

fn internal(msg: &str) -> GenerateError {
    GenerateError::InvalidAnswer(format!("local image processing failed: {msg}"))
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
        },
    )
}

/// The colour-model segmentation described in the module docs.
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
    let dist2: Vec<f32> = lab.iter().map(|p| nearest2(p, &bg_model)).collect();

    // The backdrop's own noise, measured on the band, sets the threshold: a product pixel must
    // stand further from every backdrop colour than nearly all backdrop pixels do.
    let mut border_d: Vec<f32> = border.iter().map(|&i| dist2[i].sqrt()).collect();
    border_d.sort_by(f32::total_cmp);
    let noise = quantile(&border_d, 0.97);
    let threshold = (noise * 1.6).max(5.0);
    let t2 = threshold * threshold;
    let mut fg: Vec<bool> = dist2.iter().map(|&d| d > t2).collect();
    // A threshold just above the backdrop's noise also takes the blended rim pixels of a
    // high-contrast product, growing it by a pixel all round. Where the product stands far
    // from the backdrop, cut halfway instead (as an alpha ≥ 50 % silhouette does).
    let mut product_d: Vec<f32> = (0..n).filter(|&i| fg[i]).map(|i| dist2[i].sqrt()).collect();
    if !busy && product_d.len() > n / 500 {
        product_d.sort_by(f32::total_cmp);
        let half = 0.5 * quantile(&product_d, 0.25);
        if half > threshold {
            let h2 = half * half;
            fg = dist2.iter().map(|&d| d > h2).collect();
        }
    }

    if busy {
        refine_busy(&lab, w, h, band, &mut fg);
    }

    let mut mask = GrayImage::from_fn(w, h, |x, y| {
        Luma([if fg[(y * w + x) as usize] { 255 } else { 0 }])
    });
    let r = (w.max(h) / 300).clamp(1, 4) as u8;
    mask = imageproc::morphology::open(&mask, Norm::LInf, r);
    mask = imageproc::morphology::close(&mask, Norm::LInf, r + 1);
    keep_main_components(&mut mask);
    fill_small_holes(&mut mask, 0.05);

    let product: Vec<f32> = mask
        .pixels()
        .zip(dist2.iter())
        .filter(|(m, _)| m.0[0] > 0)
        .map(|(_, d)| d.sqrt())
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
        },
    )
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
