//! Turning the bytes of a photo into the image every other step works on.
//!
//! A photo is refused before any pixel buffer exists when it is not a usable image: an
//! unknown or unsupported format (HEIC, AVIF, JPEG XL, PSD, PDF and SVG are named, with what to
//! do), truncated data, a tiny image, or a declared size beyond [`MAX_SIDE`] or [`MAX_PIXELS`]
//! (so a decompression bomb costs a header read, not memory).
//!
//! What is accepted is normalised once, and every coordinate in an analysis refers to the
//! result: the EXIF orientation is applied (a phone photo taken upright is analysed upright),
//! and a photo whose long side exceeds the working limit (4096 px by default) is scaled down
//! to it rather than refused, since no measurement here needs more than that.

use std::io::Cursor;

use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images::Image};
use image::{DynamicImage, GrayImage, ImageDecoder, ImageReader, Limits, RgbImage};

use crate::{GenerateError, SourceImage};

/// Longest side the decoder accepts, in pixels.
pub(crate) const MAX_SIDE: u32 = 32_768;
/// Most pixels accepted in one photo: a 200-megapixel phone photo (16 320 × 12 240) passes, a
/// 20 000 × 20 000 image is refused.
pub(crate) const MAX_PIXELS: u64 = 200_000_000;
/// Memory the decoder may allocate: an 8-bit RGB photo of [`MAX_PIXELS`] and some room.
const MAX_ALLOC: u64 = 1536 * 1024 * 1024;
/// Shortest accepted side: below this there is no product to see.
pub(crate) const MIN_SIDE: u32 = 16;
/// Default long side that photos are scaled down to.
pub(crate) const DEFAULT_MAX_LONG_SIDE: u32 = 4096;

/// A photo decoded, oriented and scaled: the "input image" of an analysis.
#[derive(Debug, Clone)]
pub(crate) struct DecodedPhoto {
    /// The pixels, alpha composited on white.
    pub rgb: RgbImage,
    /// The alpha channel, only when it carries real transparency (some pixels clear, some
    /// opaque): it is then the product's exact silhouette.
    pub alpha: Option<GrayImage>,
    /// The file's own size and orientation, and how it was scaled.
    pub source: SourceImage,
}

/// Decodes, orients and scales `bytes`, refusing what cannot be used.
pub(crate) fn decode_photo(
    bytes: &[u8],
    max_long_side: u32,
) -> Result<DecodedPhoto, GenerateError> {
    if let Some(format) = unsupported_format(bytes) {
        return Err(GenerateError::BadInput(format.message()));
    }
    let reader = || -> Result<ImageReader<Cursor<&[u8]>>, GenerateError> {
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
    // A PNG's size is in its first chunk, but the decoder reads on to the first image data
    // before it answers; a bomb cut short after its header must still be refused as too
    // large, not as truncated, so the declared size is taken from the header itself first.
    let (w, h) = match png_declared_size(bytes) {
        Some(size) if exceeds_limits(size) => size,
        _ => reader()?
            .into_dimensions()
            .map_err(|e| image_error("cannot read the image header", e))?,
    };
    if exceeds_limits((w, h)) {
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
    let mut decoder = reader()?
        .into_decoder()
        .map_err(|e| image_error("cannot decode the image", e))?;
    // A broken EXIF block should not cost the photo: it is then taken as it is stored.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let decoded = DynamicImage::from_decoder(decoder)
        .map_err(|e| image_error("cannot decode the image", e))?;
    let (rgb, alpha) = split_alpha(decoded);

    // Scale first, orient second: rotating a 100-megapixel buffer costs a copy of it.
    let max_long_side = max_long_side.max(MIN_SIDE);
    let long = w.max(h);
    let (rgb, alpha, scale) = if long > max_long_side {
        let s = f64::from(max_long_side) / f64::from(long);
        let sw = ((f64::from(w) * s).round() as u32).max(1);
        let sh = ((f64::from(h) * s).round() as u32).max(1);
        let rgb = resize_rgb(&rgb, sw, sh)?;
        let alpha = alpha.map(|a| resize_gray(&a, sw, sh)).transpose()?;
        (rgb, alpha, f64::from(sw) / f64::from(w))
    } else {
        (rgb, alpha, 1.0)
    };
    let rgb = orient_rgb(rgb, orientation);
    let alpha = alpha.map(|a| orient_gray(a, orientation));
    Ok(DecodedPhoto {
        rgb,
        alpha,
        source: SourceImage {
            width: w,
            height: h,
            exif_orientation: orientation.to_exif(),
            scale,
        },
    })
}

/// Whether a declared size is beyond what is decoded.
fn exceeds_limits((w, h): (u32, u32)) -> bool {
    w > MAX_SIDE || h > MAX_SIDE || u64::from(w) * u64::from(h) > MAX_PIXELS
}

/// The width and height a PNG's IHDR chunk declares, when `bytes` start like a PNG.
fn png_declared_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    if bytes.len() < 24 || bytes[..8] != SIGNATURE || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    Some((be(16), be(20)))
}

fn orient_rgb(img: RgbImage, orientation: image::metadata::Orientation) -> RgbImage {
    if orientation == image::metadata::Orientation::NoTransforms {
        return img;
    }
    let mut d = DynamicImage::ImageRgb8(img);
    d.apply_orientation(orientation);
    d.into_rgb8()
}

fn orient_gray(img: GrayImage, orientation: image::metadata::Orientation) -> GrayImage {
    if orientation == image::metadata::Orientation::NoTransforms {
        return img;
    }
    let mut d = DynamicImage::ImageLuma8(img);
    d.apply_orientation(orientation);
    d.into_luma8()
}

/// Formats people send that the decoder cannot read, recognised by their signature so the
/// error can say what the file is and what to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnsupportedFormat {
    /// HEIC/HEIF, the default of iPhone cameras.
    Heic,
    /// AVIF.
    Avif,
    /// JPEG XL.
    JpegXl,
    /// A Photoshop document.
    Psd,
    /// A PDF document.
    Pdf,
    /// An SVG drawing (vector, not a photo).
    Svg,
}

impl UnsupportedFormat {
    fn message(self) -> String {
        let (name, what_to_do) = match self {
            UnsupportedFormat::Heic => (
                "HEIC/HEIF (the iPhone camera's default)",
                "convert it to JPEG or PNG first (e.g. `heif-convert photo.heic photo.jpg`, or set the iPhone to Settings → Camera → Formats → Most Compatible)",
            ),
            UnsupportedFormat::Avif => (
                "AVIF",
                "convert it to JPEG, PNG or WebP first (e.g. `avifdec photo.avif photo.png`)",
            ),
            UnsupportedFormat::JpegXl => (
                "JPEG XL",
                "convert it to JPEG or PNG first (e.g. `djxl photo.jxl photo.png`)",
            ),
            UnsupportedFormat::Psd => (
                "a Photoshop document (PSD)",
                "export the photo as JPEG or PNG",
            ),
            UnsupportedFormat::Pdf => (
                "a PDF document",
                "export the product photo from it as JPEG or PNG",
            ),
            UnsupportedFormat::Svg => (
                "an SVG drawing",
                "send a photo of the product (JPEG, PNG or WebP), or render the drawing to PNG",
            ),
        };
        format!(
            "unsupported image format: the file is {name}; {what_to_do}. Supported: JPEG, PNG, WebP, GIF, BMP, TIFF"
        )
    }
}

/// Recognises the formats of [`UnsupportedFormat`] by their first bytes.
pub(crate) fn unsupported_format(bytes: &[u8]) -> Option<UnsupportedFormat> {
    // ISO base media files (HEIF, AVIF) start with a `ftyp` box: size, "ftyp", major brand,
    // minor version, then compatible brands up to the box's end.
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        let size = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let end = size.clamp(12, bytes.len().min(256));
        let mut brands = vec![&bytes[8..12]];
        brands.extend(bytes[16.min(end)..end].chunks_exact(4));
        if brands.iter().any(|b| matches!(*b, b"avif" | b"avis")) {
            return Some(UnsupportedFormat::Avif);
        }
        if brands.iter().any(|b| {
            matches!(
                *b,
                b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1"
            )
        }) {
            return Some(UnsupportedFormat::Heic);
        }
    }
    if bytes.starts_with(&[0xFF, 0x0A])
        || bytes.starts_with(&[
            0, 0, 0, 0x0C, b'J', b'X', b'L', b' ', 0x0D, 0x0A, 0x87, 0x0A,
        ])
    {
        return Some(UnsupportedFormat::JpegXl);
    }
    if bytes.starts_with(b"8BPS") {
        return Some(UnsupportedFormat::Psd);
    }
    if bytes.starts_with(b"%PDF") {
        return Some(UnsupportedFormat::Pdf);
    }
    let text = bytes
        .iter()
        .skip_while(|b| b.is_ascii_whitespace() || **b == 0xEF || **b == 0xBB || **b == 0xBF)
        .take(512)
        .copied()
        .collect::<Vec<u8>>();
    let text = String::from_utf8_lossy(&text).to_ascii_lowercase();
    if text.starts_with("<svg") || (text.starts_with("<?xml") && text.contains("<svg")) {
        return Some(UnsupportedFormat::Svg);
    }
    None
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

/// Resizes an RGB image with a Lanczos3 convolution (fast_image_resize's SIMD path).
pub(crate) fn resize_rgb(img: &RgbImage, w: u32, h: u32) -> Result<RgbImage, GenerateError> {
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

/// Resizes a grey image with a Lanczos3 convolution.
pub(crate) fn resize_gray(img: &GrayImage, w: u32, h: u32) -> Result<GrayImage, GenerateError> {
    let buf = resize_raw(img.as_raw(), img.width(), img.height(), w, h, PixelType::U8)?;
    GrayImage::from_raw(w, h, buf).ok_or_else(|| internal("resize produced a wrong-sized buffer"))
}

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

/// An internal failure of the image code (never the photo's fault).
pub(crate) fn internal(msg: &str) -> GenerateError {
    GenerateError::InvalidAnswer(format!("local image processing failed: {msg}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let size = 16 + 4 * compatible.len();
        let mut out = (size as u32).to_be_bytes().to_vec();
        out.extend(b"ftyp");
        out.extend(major);
        out.extend([0, 0, 0, 0]);
        for c in compatible {
            out.extend(*c);
        }
        out.extend([0u8; 32]);
        out
    }

    #[test]
    fn recognises_the_formats_people_send_by_their_signature() {
        assert_eq!(
            unsupported_format(&ftyp(b"heic", &[b"mif1", b"heic"])),
            Some(UnsupportedFormat::Heic)
        );
        assert_eq!(
            unsupported_format(&ftyp(b"avif", &[b"mif1", b"avif"])),
            Some(UnsupportedFormat::Avif)
        );
        // A generic HEIF major brand with AVIF among the compatible ones is AVIF.
        assert_eq!(
            unsupported_format(&ftyp(b"mif1", &[b"avif"])),
            Some(UnsupportedFormat::Avif)
        );
        assert_eq!(
            unsupported_format(b"%PDF-1.7\n"),
            Some(UnsupportedFormat::Pdf)
        );
        assert_eq!(
            unsupported_format(b"  <?xml version=\"1.0\"?>\n<svg xmlns=\"x\"/>"),
            Some(UnsupportedFormat::Svg)
        );
        assert_eq!(
            unsupported_format(&[0xFF, 0x0A, 1, 2]),
            Some(UnsupportedFormat::JpegXl)
        );
        assert_eq!(unsupported_format(&[0xFF, 0xD8, 0xFF, 0xE0]), None);
        let msg = UnsupportedFormat::Heic.message();
        assert!(
            msg.contains("HEIC") && msg.contains("convert it to JPEG"),
            "{msg}"
        );
    }
}
