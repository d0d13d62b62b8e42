//! The local provider refuses what is not a usable photo with `BadInput`, and says plainly
//! when a photo has nothing in it.

use std::io::Cursor;
use std::sync::Arc;

use image::{Rgb, RgbImage};
use techpack_generate::local::LocalProvider;
use techpack_generate::{GenerateError, Provider, ViewPhoto};
use techpack_model::ProductCategory;

fn photo(bytes: Vec<u8>) -> ViewPhoto {
    ViewPhoto {
        bytes: Arc::from(bytes),
        view: "front".into(),
        category: ProductCategory::Apparel,
        reference: None,
    }
}

fn encode(img: &RgbImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

async fn bad_input(bytes: Vec<u8>) -> String {
    match LocalProvider::default().analyze(&photo(bytes)).await {
        Err(GenerateError::BadInput(msg)) => msg,
        other => panic!("expected BadInput, got {other:?}"),
    }
}

#[tokio::test]
async fn a_text_file_named_jpg_is_not_an_image() {
    let msg = bad_input(b"This is a text file that someone named photo.jpg\n".to_vec()).await;
    assert!(msg.contains("not an image"), "{msg}");
}

#[tokio::test]
async fn a_truncated_jpeg_is_refused() {
    let img = RgbImage::from_fn(300, 200, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
    let jpeg = encode(&img, image::ImageFormat::Jpeg);
    let msg = bad_input(jpeg[..jpeg.len() / 2].to_vec()).await;
    assert!(msg.contains("truncated"), "{msg}");
}

#[tokio::test]
async fn a_one_pixel_image_is_too_small() {
    let msg = bad_input(encode(&RgbImage::new(1, 1), image::ImageFormat::Png)).await;
    assert!(msg.contains("too small"), "{msg}");
}

/// A PNG that is only a signature and a header declaring `w × h`: what a decompression bomb
/// looks like before its data is read.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut chunk = b"IHDR".to_vec();
    chunk.extend(w.to_be_bytes());
    chunk.extend(h.to_be_bytes());
    chunk.extend([8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    out.extend(13u32.to_be_bytes());
    out.extend(&chunk);
    out.extend(crc32(&chunk).to_be_bytes());
    out
}

#[tokio::test]
async fn a_huge_declared_size_is_refused_before_decoding() {
    let msg = bad_input(png_header(20_000, 20_000)).await;
    assert!(msg.contains("too large"), "{msg}");
    let msg = bad_input(png_header(100_000, 10)).await;
    assert!(msg.contains("too large"), "{msg}");
}

#[tokio::test]
async fn a_uniform_image_answers_with_low_confidence_said_plainly() {
    let img = RgbImage::from_pixel(640, 480, Rgb([120, 140, 160]));
    let a = LocalProvider::default()
        .analyze(&photo(encode(&img, image::ImageFormat::Png)))
        .await
        .unwrap();
    assert!(a.confidence <= 0.1, "confidence {}", a.confidence);
    let reasons = a.output.confidence.reasons.join(" ");
    assert!(
        reasons.contains("uniform colour with no product"),
        "{reasons}"
    );
}

#[tokio::test]
async fn closeups_and_sketches_refuse_bad_input_too() {
    let provider = LocalProvider::default();
    let good = RgbImage::from_fn(400, 400, |x, y| {
        if (100..300).contains(&x) && (100..300).contains(&y) {
            Rgb([200, 20, 20])
        } else {
            Rgb([250, 250, 250])
        }
    });
    let a = provider
        .analyze(&photo(encode(&good, image::ImageFormat::Png)))
        .await
        .unwrap()
        .output;
    let shot = provider.plan_closeups(&a, 1).remove(0);
    let junk = photo(b"not an image".to_vec());
    assert!(matches!(
        provider.closeup(&junk, &a, &shot).await,
        Err(GenerateError::BadInput(_))
    ));
    assert!(matches!(
        provider.sketch(&junk, &a).await,
        Err(GenerateError::BadInput(_))
    ));
}
