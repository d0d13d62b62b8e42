//! Image handling around the API: checking an input before paying for a request, cutting the
//! region a request is about, and turning whatever the service returns into PNG.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use crate::{GenerateError, ImageInfo};

/// The largest image OpenAI accepts in a chat request.
pub(crate) const MAX_INPUT_BYTES: usize = 20 * 1024 * 1024;

/// The image models work at about 1k pixels; sending more only costs upload time.
const MAX_UPLOAD_SIDE: u32 = 1536;

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

#[cfg(test)]
mod tests {
    use super::*;

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
