//! Close-up shots: the planned region — already framed on its feature by the analysis — cut
//! from the full-resolution photo with a small margin and saved as PNG (lossless).
//!
//! A crop smaller than the target size is enlarged at most 2× (Lanczos3, then a mild unsharp
//! mask to restore what the interpolation softens): a smaller, honest image is better than a
//! large one of invented detail. A crop larger than twice the target is reduced to that.
//! A crop at its own size is left exactly as the photo has it.

use std::io::Cursor;

use image::{ImageEncoder, RgbImage};

use super::decode::resize_rgb;
use crate::{CloseupShot, GenerateError};

/// Margin added around the region on every side, as a share of its larger side.
const MARGIN: f64 = 0.04;
/// Most a crop is enlarged.
pub(crate) const MAX_UPSCALE: f64 = 2.0;
/// Unsharp mask after enlarging: Gaussian radius (px, at output size) and strength.
const SHARPEN_SIGMA: f32 = 1.0;
const SHARPEN_AMOUNT: f32 = 0.4;

/// Renders one shot from the photo. Returns the PNG and its size.
pub(crate) fn render_closeup(
    img: &RgbImage,
    shot: &CloseupShot,
    target_long_side: u32,
) -> Result<(Vec<u8>, [u32; 2]), GenerateError> {
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
    let crop = image::imageops::crop_imm(img, cx0, cy0, cx1 - cx0, cy1 - cy0).to_image();
    let (cw, ch) = crop.dimensions();
    let long = f64::from(cw.max(ch));
    let target = f64::from(target_long_side.max(1));
    let factor = if long < target {
        (target / long).min(MAX_UPSCALE)
    } else if long > target * 2.0 {
        target * 2.0 / long
    } else {
        1.0
    };
    let out = if (factor - 1.0).abs() < 1e-9 {
        crop
    } else {
        let ow = ((f64::from(cw) * factor).round() as u32).max(1);
        let oh = ((f64::from(ch) * factor).round() as u32).max(1);
        let resized = resize_rgb(&crop, ow, oh)?;
        if factor > 1.0 {
            unsharp(&resized)
        } else {
            resized
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn shot(bbox: [u32; 4]) -> CloseupShot {
        CloseupShot {
            name: "t".into(),
            bbox,
            description: String::new(),
        }
    }

    #[test]
    fn small_regions_are_enlarged_at_most_twice_and_large_ones_kept() {
        let img = RgbImage::from_fn(2000, 1500, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 7])
        });
        let (_, size) = render_closeup(&img, &shot([100, 100, 300, 200]), 1024).unwrap();
        // 200 × 100 plus a 4 % margin (8 px a side), doubled.
        assert_eq!(size, [432, 232]);
        // 832 × 632 reaches the target at 1.23×.
        let (_, size) = render_closeup(&img, &shot([0, 0, 800, 600]), 1024).unwrap();
        assert_eq!(size, [1024, 778]);
        let (png, size) = render_closeup(&img, &shot([0, 0, 1990, 1490]), 512).unwrap();
        assert_eq!(size[0], 1024);
        assert!(png.starts_with(b"\x89PNG"));
    }

    #[test]
    fn a_crop_at_its_own_size_keeps_the_photos_pixels() {
        let img = RgbImage::from_fn(600, 600, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 99])
        });
        let (png, size) = render_closeup(&img, &shot([100, 100, 500, 500]), 400).unwrap();
        let out = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(size, [432, 432]);
        assert_eq!(out.get_pixel(0, 0), img.get_pixel(84, 84));
        assert_eq!(out.get_pixel(431, 431), img.get_pixel(515, 515));
    }
}
