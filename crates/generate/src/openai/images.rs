//! Image handling around the API: checking an input before paying for a request, cutting the
//! region a request is about, and turning whatever the service returns into PNG.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use crate::{GenerateError, ImageInfo};

/// The largest image OpenAI accepts in a chat request.
pub(crate) const MAX_INPUT_BYTES: usize = 20 * 1024 * 1024;

/// The image models work at about 1k pixels; sending more only costs upload time.
pub(crate) const MAX_UPLOAD_SIDE: u32 = 1536;

/// Bounds for decoding, so that a decompression bomb is refused instead of exhausting memory.
const MAX_DECODE_SIDE: u32 = 16_384;
const MAX_DECODE_ALLOC: u64 = 512 * 1024 * 1024;

/// What an input photo is, read from its header only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Inspected {
    pub(crate) format: ImageFormat,
    pub(crate) info: ImageInfo,
}

impl Inspected {
    /// The MIME type for a data URL.
    pub(crate) fn mime(&self) -> &'static str {
        self.format.to_mime_type()
    }
}

/// Reads format and size without decoding pixels; refuses what the API would refuse.
pub(crate) fn inspect(bytes: &[u8]) -> Result<Inspected, GenerateError> {
    if bytes.is_empty() {
        return Err(GenerateError::BadInput("the photo is empty".into()));
    }
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(GenerateError::BadInput(format!(
            "the photo is {} bytes; the OpenAI limit is {MAX_INPUT_BYTES} bytes (20 MB)",
            bytes.len()
        )));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| GenerateError::BadInput(format!("cannot read the photo: {e}")))?;
    let Some(format) = reader.format() else {
        return Err(GenerateError::BadInput(
            "the photo is not an image of a known format".into(),
        ));
    };
    if !matches!(
        format,
        ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP | ImageFormat::Gif
    ) {
        return Err(GenerateError::BadInput(format!(
            "{format:?} images are not accepted by the OpenAI API; use JPEG, PNG, WebP or GIF"
        )));
    }
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| GenerateError::BadInput(format!("cannot read the {format:?} header: {e}")))?;
    if width == 0 || height == 0 {
        return Err(GenerateError::BadInput(format!(
            "the photo is {width}x{height} pixels"
        )));
    }
    Ok(Inspected {
        format,
        info: ImageInfo { width, height },
    })
}

/// Decodes the photo within bounded memory.
pub(crate) fn decode(bytes: &[u8]) -> Result<DynamicImage, GenerateError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| GenerateError::BadInput(format!("cannot read the photo: {e}")))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECODE_SIDE);
    limits.max_image_height = Some(MAX_DECODE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    reader
        .decode()
        .map_err(|e| GenerateError::BadInput(format!("cannot decode the photo: {e}")))
}

/// `bbox` grown by `margin` (a share of its size, at least 8 px) on every side, clamped to the
/// image. Errors when the box is empty or outside the image.
pub(crate) fn expand(
    bbox: [u32; 4],
    margin: f64,
    image: ImageInfo,
) -> Result<[u32; 4], GenerateError> {
    let [x0, y0, x1, y1] = bbox;
    if !(x0 < x1 && y0 < y1 && x1 <= image.width && y1 <= image.height) {
        return Err(GenerateError::BadInput(format!(
            "region [{x0}, {y0}, {x1}, {y1}] is empty or outside the {}x{} photo",
            image.width, image.height
        )));
    }
    let grow = |extent: u32| ((f64::from(extent) * margin).round() as u32).max(8);
    let (dx, dy) = (grow(x1 - x0), grow(y1 - y0));
    Ok([
        x0.saturating_sub(dx),
        y0.saturating_sub(dy),
        (x1 + dx).min(image.width),
        (y1 + dy).min(image.height),
    ])
}

/// Cuts `rect` out of the photo, downscales it to the upload size and encodes it as PNG.
pub(crate) fn crop_png(photo: &DynamicImage, rect: [u32; 4]) -> Result<Vec<u8>, GenerateError> {
    let [x0, y0, x1, y1] = rect;
    let mut region = photo.crop_imm(x0, y0, x1 - x0, y1 - y0);
    if region.width().max(region.height()) > MAX_UPLOAD_SIDE {
        region = region.resize(
            MAX_UPLOAD_SIDE,
            MAX_UPLOAD_SIDE,
            image::imageops::FilterType::Lanczos3,
        );
    }
    encode_png(&region)
}

/// The service's image as PNG and its size, re-encoded when it sent another format.
pub(crate) fn to_png(bytes: Vec<u8>) -> Result<(Vec<u8>, [u32; 2]), GenerateError> {
    let invalid = |e: image::ImageError| {
        GenerateError::InvalidAnswer(format!("the returned image cannot be decoded: {e}"))
    };
    let format = image::guess_format(&bytes).map_err(invalid)?;
    let decoded = image::load_from_memory_with_format(&bytes, format).map_err(invalid)?;
    let size = [decoded.width(), decoded.height()];
    if format == ImageFormat::Png {
        return Ok((bytes, size));
    }
    Ok((encode_png(&decoded)?, size))
}

pub(crate) fn encode_png(image: &DynamicImage) -> Result<Vec<u8>, GenerateError> {
    let mut out = Cursor::new(Vec::new());
    // PNG has no 16-bit float or 32-bit layouts: bring exotic decodes to 8-bit RGBA first.
    let image = match image {
        DynamicImage::ImageRgb32F(_) | DynamicImage::ImageRgba32F(_) => {
            &DynamicImage::ImageRgba8(image.to_rgba8())
        }
        other => other,
    };
    image
        .write_to(&mut out, ImageFormat::Png)
        .map_err(|e| GenerateError::BadInput(format!("cannot encode PNG: {e}")))?;
    Ok(out.into_inner())
}

/// The sizes an image model accepts for `/images/edits`, when we know them.
pub(crate) fn accepted_sizes(model: &str) -> Option<&'static [[u32; 2]]> {
    let model = model.to_ascii_lowercase();
    if model.starts_with("gpt-image") {
        Some(&[[1024, 1024], [1024, 1536], [1536, 1024]])
    } else if model.starts_with("dall-e-2") {
        Some(&[[256, 256], [512, 512], [1024, 1024]])
    } else {
        None
    }
}

/// Whether `size` is one the model takes: `aspect` and `auto` always (`auto` is left to the
/// model), a `WxH` among the model's sizes when we know them, any `WxH` otherwise.
pub(crate) fn check_image_size(model: &str, size: &str) -> Result<(), String> {
    let dall_e = model.to_ascii_lowercase().starts_with("dall-e");
    if size == "aspect" || (size == "auto" && !dall_e) {
        return Ok(());
    }
    let parsed = parse_size(size);
    if parsed.is_none() && size != "auto" {
        return Err(format!(
            "{size:?}: expected aspect, auto or WIDTHxHEIGHT (e.g. 1024x1536)"
        ));
    }
    match accepted_sizes(model) {
        Some(sizes) if parsed.is_none_or(|parsed| !sizes.contains(&parsed)) => Err(format!(
            "{model} does not take {size}: use aspect{} or one of {}",
            if dall_e { "" } else { ", auto" },
            sizes
                .iter()
                .map(|[w, h]| format!("{w}x{h}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        _ => Ok(()),
    }
}

fn parse_size(size: &str) -> Option<[u32; 2]> {
    let (w, h) = size.split_once('x')?;
    let w = w.parse::<u32>().ok().filter(|&n| n > 0)?;
    let h = h.parse::<u32>().ok().filter(|&n| n > 0)?;
    Some([w, h])
}

/// What one image request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestSize {
    /// An exact size: the crop is padded to its shape first.
    Exact([u32; 2]),
    /// `auto`: the model decides; the crop is sent as it is.
    Auto,
}

impl RequestSize {
    /// The `size` field of the request.
    pub(crate) fn field(self) -> String {
        match self {
            RequestSize::Exact([w, h]) => format!("{w}x{h}"),
            RequestSize::Auto => "auto".into(),
        }
    }
}

/// The size to ask for a `width`×`height` crop: under `aspect`, the model's size whose shape is
/// nearest the crop's (a square for a model whose sizes we do not know, since every image API
/// takes one).
pub(crate) fn request_size(model: &str, setting: &str, width: u32, height: u32) -> RequestSize {
    match setting {
        "auto" => RequestSize::Auto,
        "aspect" => {
            let sizes: &[[u32; 2]] = accepted_sizes(model).unwrap_or(&[[1024, 1024]]);
            let shape = (f64::from(width) / f64::from(height.max(1))).ln();
            let nearest = sizes.iter().copied().min_by(|a, b| {
                let distance =
                    |[w, h]: [u32; 2]| ((f64::from(w) / f64::from(h)).ln() - shape).abs();
                // Of equal shapes, the largest: more detail for the same request.
                distance(*a).total_cmp(&distance(*b)).then(b[0].cmp(&a[0]))
            });
            RequestSize::Exact(nearest.unwrap_or([1024, 1024]))
        }
        other => RequestSize::Exact(parse_size(other).unwrap_or([1024, 1024])),
    }
}

/// `rect` (photo pixels) grown on two opposite sides to the shape of `size`, centred: the
/// frame a drawing of that size covers when the crop of `rect` is padded to it. May reach
/// outside the photo.
pub(crate) fn padded_frame(rect: [u32; 4], size: [u32; 2]) -> [f64; 4] {
    let [x0, y0, x1, y1] = rect.map(f64::from);
    let (w, h) = (x1 - x0, y1 - y0);
    let target = f64::from(size[0]) / f64::from(size[1]);
    if w / h < target {
        let grow = (h * target - w) / 2.0;
        [x0 - grow, y0, x1 + grow, y1]
    } else {
        let grow = (w / target - h) / 2.0;
        [x0, y0 - grow, x1, y1 + grow]
    }
}

/// Cuts `rect` out of the photo onto a white canvas of `frame`'s shape (see
/// [`padded_frame`]), downscaled to at most `max_side`, as PNG; RGBA when `rgba` (DALL·E 2
/// takes nothing else).
pub(crate) fn padded_crop_png(
    photo: &DynamicImage,
    rect: [u32; 4],
    frame: [f64; 4],
    max_side: u32,
    rgba: bool,
) -> Result<Vec<u8>, GenerateError> {
    let [x0, y0, x1, y1] = rect;
    let region = photo.crop_imm(x0, y0, x1 - x0, y1 - y0).to_rgba8();
    let width = (frame[2] - frame[0]).round().max(1.0) as u32;
    let height = (frame[3] - frame[1]).round().max(1.0) as u32;
    let mut canvas = image::RgbaImage::from_pixel(width, height, image::Rgba([255, 255, 255, 255]));
    let left = (f64::from(x0) - frame[0]).round().max(0.0) as i64;
    let top = (f64::from(y0) - frame[1]).round().max(0.0) as i64;
    image::imageops::overlay(&mut canvas, &region, left, top);
    let mut padded = DynamicImage::ImageRgba8(canvas);
    if padded.width().max(padded.height()) > max_side {
        padded = padded.resize(max_side, max_side, image::imageops::FilterType::Lanczos3);
    }
    if !rgba {
        padded = DynamicImage::ImageRgb8(padded.to_rgb8());
    }
    encode_png(&padded)
}

/// A fully transparent PNG of the image's size: as DALL·E 2's mask it lets the model redraw
/// everything (without a mask it demands transparency in the image itself).
pub(crate) fn transparent_mask_png(image_png: &[u8]) -> Result<Vec<u8>, GenerateError> {
    let image = image::load_from_memory(image_png)
        .map_err(|e| GenerateError::BadInput(format!("cannot read the crop: {e}")))?;
    encode_png(&DynamicImage::ImageRgba8(image::RgbaImage::new(
        image.width(),
        image.height(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requested_size_follows_the_shape_of_the_crop() {
        let size = |model, w, h| request_size(model, "aspect", w, h).field();
        assert_eq!(size("gpt-image-1", 300, 900), "1024x1536");
        assert_eq!(size("gpt-image-1", 900, 300), "1536x1024");
        assert_eq!(size("gpt-image-1", 500, 520), "1024x1024");
        assert_eq!(size("dall-e-2", 300, 900), "1024x1024");
        assert_eq!(size("llava", 300, 900), "1024x1024");
        assert_eq!(request_size("gpt-image-1", "auto", 1, 2).field(), "auto");
        assert_eq!(
            request_size("gpt-image-1", "1536x1024", 1, 2).field(),
            "1536x1024"
        );
    }

    #[test]
    fn a_padded_frame_has_the_shape_of_the_drawing_and_holds_the_crop() {
        let frame = padded_frame([100, 0, 200, 300], [1024, 1536]);
        let (w, h) = (frame[2] - frame[0], frame[3] - frame[1]);
        assert!((w / h - 1024.0 / 1536.0).abs() < 1e-9, "{frame:?}");
        assert!(frame[0] <= 100.0 && frame[2] >= 200.0 && frame[1] == 0.0 && frame[3] == 300.0);
        let photo = DynamicImage::new_rgb8(300, 300);
        let png = padded_crop_png(&photo, [100, 0, 200, 300], frame, 1536, true).unwrap();
        let decoded = image::load_from_memory(&png).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (200, 300));
        assert!(decoded.color().has_alpha());
        let mask = image::load_from_memory(&transparent_mask_png(&png).unwrap())
            .unwrap()
            .to_rgba8();
        assert_eq!(mask.dimensions(), (200, 300));
        assert!(mask.pixels().all(|p| p.0[3] == 0));
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        encode_png(&DynamicImage::new_rgb8(width, height)).unwrap()
    }

    #[test]
    fn inspect_reads_size_and_refuses_non_images() {
        let inspected = inspect(&png(30, 20)).unwrap();
        assert_eq!(
            inspected.info,
            ImageInfo {
                width: 30,
                height: 20
            }
        );
        assert_eq!(inspected.mime(), "image/png");
        for bad in [
            &b""[..],
            b"hello, I am text pretending to be a JPEG",
            &png(30, 20)[..20],
        ] {
            assert!(matches!(inspect(bad), Err(GenerateError::BadInput(_))));
        }
        let mut bmp = Cursor::new(Vec::new());
        DynamicImage::new_rgb8(4, 4)
            .write_to(&mut bmp, ImageFormat::Bmp)
            .unwrap();
        let err = inspect(bmp.get_ref()).unwrap_err();
        assert!(err.to_string().contains("JPEG, PNG"), "{err}");
        let huge = vec![0u8; MAX_INPUT_BYTES + 1];
        assert!(inspect(&huge).unwrap_err().to_string().contains("20 MB"));
    }

    #[test]
    fn expand_grows_and_clamps() {
        let image = ImageInfo {
            width: 100,
            height: 100,
        };
        assert_eq!(
            expand([40, 40, 60, 60], 0.5, image).unwrap(),
            [30, 30, 70, 70]
        );
        assert_eq!(
            expand([0, 0, 100, 100], 0.2, image).unwrap(),
            [0, 0, 100, 100]
        );
        assert!(expand([10, 10, 10, 20], 0.2, image).is_err());
        assert!(expand([10, 10, 120, 20], 0.2, image).is_err());
    }

    #[test]
    fn returned_jpeg_becomes_png() {
        let mut jpeg = Cursor::new(Vec::new());
        DynamicImage::new_rgb8(16, 8)
            .write_to(&mut jpeg, ImageFormat::Jpeg)
            .unwrap();
        let (png, size) = to_png(jpeg.into_inner()).unwrap();
        assert_eq!(size, [16, 8]);
        assert_eq!(image::guess_format(&png).unwrap(), ImageFormat::Png);
        assert!(matches!(
            to_png(b"nope".to_vec()),
            Err(GenerateError::InvalidAnswer(_))
        ));
    }
}
