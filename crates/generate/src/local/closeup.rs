//! Close-up shots: a detail region cropped from the full-resolution photo with a margin,
//! upscaled with Lanczos3 to a usable size and lightly sharpened.

use std::io::Cursor;

use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images::Image};
use image::{ImageEncoder, RgbImage};

use super::segment::decode;
use crate::{CloseupShot, GenerateError};

/// Margin added around a region on every side, as a share of its larger side: the detail
/// needs some of its surroundings to be read.
const MARGIN: f64 = 0.12;
/// Unsharp mask: Gaussian radius (px, at output size) and strength. Mild: it restores the
/// crispness Lanczos upscaling softens without halos on fabric.
const SHARPEN_SIGMA: f32 = 1.2;
const SHARPEN_AMOUNT: f32 = 0.6;

/// Renders one shot from the encoded photo. Returns the PNG and its size.
pub(crate) fn render_closeup(
    bytes: &[u8],
    shot: &CloseupShot,
    min_long_side: u32,
) -> Result<(Vec<u8>, [u32; 2]), GenerateError> {
    let img = decode(bytes)?.into_rgb8();
    let (iw, ih) = img.dimensions();
    let [x0, y0, x1, y1] = shot.bbox;
    if x0 >= x1 || y0 >= y1 || x1 > iw || y1 > ih {
        return Err(GenerateError::BadInput(format!(
            "close-up {:?}: region {:?} is not inside the {iw}×{ih} image",
            shot.name, shot.bbox
        )));
    }
    let m = (f64::from((x1 - x0).max(y1 - y0)) * MARGIN).round() as u32;
    let cx0 = x0.saturating_sub(m);
    let cy0 = y0.saturating_sub(m);
    let cx1 = (x1 + m).min(iw);
    let cy1 = (y1 + m).min(ih);
    let crop = image::imageops::crop_imm(&img, cx0, cy0, cx1 - cx0, cy1 - cy0).to_image();
    let (cw, ch) = crop.dimensions();
    let long = cw.max(ch);
    let out = if long < min_long_side {
        // The long side lands exactly on the minimum; the short side keeps the aspect ratio.
        let s = f64::from(min_long_side) / f64::from(long);
        let (ow, oh) = if cw >= ch {
            (min_long_side, ((f64::from(ch) * s).round() as u32).max(1))
        } else {
            (((f64::from(cw) * s).round() as u32).max(1), min_long_side)
        };
        unsharp(&upscale(&crop, ow, oh)?)
    } else {
        unsharp(&crop)
    };
    let size = [out.width(), out.height()];
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(Cursor::new(&mut png))
        .write_image(
            out.as_raw(),
            size[0],
            size[1],
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| {
            GenerateError::InvalidAnswer(format!("local close-up PNG encoding failed: {e}"))
        })?;
    Ok((png, size))
}

fn upscale(img: &RgbImage, w: u32, h: u32) -> Result<RgbImage, GenerateError> {
    let fail =
        |e: String| GenerateError::InvalidAnswer(format!("local close-up resize failed: {e}"));
    let src = fast_image_resize::images::ImageRef::new(
        img.width(),
        img.height(),
        img.as_raw(),
        PixelType::U8x3,
    )
    .map_err(|e| fail(e.to_string()))?;
    let mut dst = Image::new(w, h, PixelType::U8x3);
    Resizer::new()
        .resize(
            &src,
            &mut dst,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)),
        )
        .map_err(|e| fail(e.to_string()))?;
    RgbImage::from_raw(w, h, dst.into_vec()).ok_or_else(|| fail("wrong buffer size".into()))
}

/// `out = img + amount · (img − blur(img))`, clamped.
fn unsharp(img: &RgbImage) -> RgbImage {
    let blurred = imageproc::filter::gaussian_blur_f32(img, SHARPEN_SIGMA);
    let mut out = img.clone();
    for (o, b) in out.pixels_mut().zip(blurred.pixels()) {
        for c in 0..3 {
            let v = f32::from(o.0[c]);
            let s = v + SHARPEN_AMOUNT * (v - f32::from(b.0[c]));
            o.0[c] = s.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}
