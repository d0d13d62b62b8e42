//! The local provider's analysis against synthetic photos whose truth is known: a T-shirt
//! shape of a known colour and size drawn on a plain, a noisy and a busy background.

use std::io::Cursor;
use std::sync::Arc;

use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_polygon_mut};
use imageproc::point::Point;
use imageproc::rect::Rect;
use palette::{FromColor, Lab, Srgb};
use techpack_generate::local::LocalProvider;
use techpack_generate::{Analysis, GenerateError, Provider, ScaleSource, ViewPhoto};
use techpack_model::ProductCategory;

const NAVY: [u8; 3] = [32, 52, 120];
/// The truth of the drawn shirt, in pixels of a 1000 × 1000 canvas.
const TRUTH_BBOX: [u32; 4] = [180, 200, 820, 900];
const BODY: (i32, i32, i32, i32) = (300, 200, 700, 900);

/// A flat T-shirt: a body rectangle and two sleeves that leave it at the shoulders.
fn draw_shirt(img: &mut RgbImage, colour: [u8; 3]) {
    let (x0, y0, x1, y1) = BODY;
    draw_filled_rect_mut(
        img,
        Rect::at(x0, y0).of_size((x1 - x0) as u32, (y1 - y0) as u32),
        Rgb(colour),
    );
    let left = [
        Point::new(300, 200),
        Point::new(180, 330),
        Point::new(250, 400),
        Point::new(300, 330),
    ];
    let right: Vec<Point<i32>> = left.iter().map(|p| Point::new(999 - p.x, p.y)).collect();
    draw_polygon_mut(img, &left, Rgb(colour));
    draw_polygon_mut(img, &right, Rgb(colour));
}

/// A deterministic pseudo-random generator (xorshift), so the backgrounds are the same on
/// every run.
struct Noise(u64);
impl Noise {
    fn next(&mut self) -> u8 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 32) as u8
    }
}

fn plain() -> RgbImage {
    let mut img = RgbImage::from_pixel(1000, 1000, Rgb([246, 246, 244]));
    draw_shirt(&mut img, NAVY);
    img
}

/// Light grey with ±24 levels of per-pixel colour noise.
fn noisy() -> RgbImage {
    let mut n = Noise(0x1234_5678_9abc_def1);
    let mut img = RgbImage::from_fn(1000, 1000, |_, _| {
        let mut c = [0u8; 3];
        for v in &mut c {
            *v = (200 + i32::from(n.next() % 49) - 24) as u8;
        }
        Rgb(c)
    });
    draw_shirt(&mut img, NAVY);
    img
}

/// A mosaic of random muted colours in 20 px blocks, like the busy sample photo.
fn busy() -> RgbImage {
    let mut n = Noise(0x0fed_cba9_8765_4321);
    let mut muted = || 80 + n.next() % 101;
    let blocks: Vec<[u8; 3]> = (0..50 * 50).map(|_| [muted(), muted(), muted()]).collect();
    let mut img = RgbImage::from_fn(1000, 1000, |x, y| {
        Rgb(blocks[(y / 20 * 50 + x / 20) as usize])
    });
    draw_shirt(&mut img, [200, 30, 40]);
    img
}

fn photo(img: &RgbImage, reference: Option<&str>) -> ViewPhoto {
    let mut bytes = Vec::new();
    img.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
        .unwrap();
    ViewPhoto {
        bytes: Arc::from(bytes),
        view: "front".into(),
        category: ProductCategory::Apparel,
        reference: reference.map(str::to_string),
    }
}

fn lab(rgb: [u8; 3]) -> Lab {
    Lab::from_color(Srgb::new(rgb[0], rgb[1], rgb[2]).into_format::<f32>())
}

fn hex_to_rgb(hex: &str) -> [u8; 3] {
    let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap();
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

fn delta_e(a: Lab, b: Lab) -> f32 {
    ((a.l - b.l).powi(2) + (a.a - b.a).powi(2) + (a.b - b.b).powi(2)).sqrt()
}

fn assert_bbox_near(got: [u32; 4], want: [u32; 4], size: u32, what: &str) {
    let tol = f64::from(size) * 0.02;
    for i in 0..4 {
        let d = (f64::from(got[i]) - f64::from(want[i])).abs();
        assert!(
            d <= tol,
            "{what}: bbox {got:?} is not within 2 % of {want:?}"
        );
    }
}

fn point(a: &Analysis, name: &str) -> f64 {
    a.measurements
        .points
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", a.measurements.points))
        .cm
}

fn assert_within(got: f64, want: f64, share: f64, what: &str) {
    assert!(
        (got - want).abs() <= want * share,
        "{what}: {got} is not within {} % of {want}",
        share * 100.0
    );
}

async fn analyse(img: &RgbImage, reference: Option<&str>) -> Analysis {
    let generated = LocalProvider::default()
        .analyze(&photo(img, reference))
        .await
        .unwrap();
    assert_eq!(generated.model, "techpack-local/2.0");
    assert_eq!(generated.credits, 1);
    generated.output
}

/// The shirt's measurements with a 70 cm height reference: the 700 px body is 70 cm, so
/// one pixel is a millimetre.
fn assert_shirt_measurements(a: &Analysis) {
    assert_eq!(a.measurements.scale.source, ScaleSource::Reference);
    assert_within(point(a, "overall_height"), 70.0, 0.03, "overall height");
    assert_within(point(a, "overall_width"), 64.0, 0.03, "overall width");
    assert_within(point(a, "body_length"), 70.0, 0.03, "body length");
    assert_within(point(a, "chest_width"), 40.0, 0.03, "chest width");
    assert_within(point(a, "hem_width"), 40.0, 0.03, "hem width");
}

#[tokio::test]
async fn plain_background_box_colour_and_measurements() {
    let a = analyse(&plain(), Some("height=70cm")).await;
    assert_eq!((a.image.width, a.image.height), (1000, 1000));
    assert_bbox_near(a.product.bbox, TRUTH_BBOX, 1000, "plain");
    let top = &a.colors[0];
    assert!(top.share > 0.9, "{:?}", a.colors);
    assert_eq!(top.name, "navy");
    let de = delta_e(lab(hex_to_rgb(&top.hex)), lab(NAVY));
    assert!(
        de < 5.0,
        "dominant colour {} is ΔE {de} from the truth",
        top.hex
    );
    assert_shirt_measurements(&a);
    assert!(a.product.symmetry > 0.97, "symmetry {}", a.product.symmetry);
    assert!(a.confidence.score >= 0.7, "{:?}", a.confidence);
    // The body is 400 × 700 px plus two sleeves of 12 000 px each on a 1 Mpx canvas.
    assert_within(a.product.area_share, 0.304, 0.03, "area share");
    assert_within(a.product.aspect_ratio, 640.0 / 700.0, 0.03, "aspect ratio");
}

#[tokio::test]
async fn noisy_background_still_measures_the_shirt() {
    let a = analyse(&noisy(), Some("height=70cm")).await;
    assert_bbox_near(a.product.bbox, TRUTH_BBOX, 1000, "noisy");
    let de = delta_e(lab(hex_to_rgb(&a.colors[0].hex)), lab(NAVY));
    assert!(
        de < 5.0,
        "dominant colour {} is ΔE {de} from the truth",
        a.colors[0].hex
    );
    assert_shirt_measurements(&a);
}

#[tokio::test]
async fn busy_background_answers_with_lower_confidence() {
    let busy = analyse(&busy(), Some("height=70cm")).await;
    let plain = analyse(&plain(), Some("height=70cm")).await;
    assert_bbox_near(busy.product.bbox, TRUTH_BBOX, 1000, "busy");
    let de = delta_e(lab(hex_to_rgb(&busy.colors[0].hex)), lab([200, 30, 40]));
    assert!(
        de < 5.0,
        "dominant colour {} is ΔE {de} from the truth",
        busy.colors[0].hex
    );
    assert!(busy.confidence.score < plain.confidence.score);
    assert!(
        busy.confidence
            .reasons
            .iter()
            .any(|r| r.contains("Busy background")),
        "{:?}",
        busy.confidence.reasons
    );
}

#[tokio::test]
async fn without_a_reference_the_category_default_scale_is_used_and_said() {
    let a = analyse(&plain(), None).await;
    let scale = &a.measurements.scale;
    assert_eq!(scale.source, ScaleSource::CategoryDefault);
    // Tops default to a 70 cm body length (from the high point of the shoulder).
    assert!(scale.basis.contains("70cm"), "{}", scale.basis);
    assert!(
        a.confidence
            .reasons
            .iter()
            .any(|r| r.contains("No reference size")),
        "{:?}",
        a.confidence.reasons
    );
    // A width reference scales from the box's width instead: 640 px = 32 cm.
    let w = analyse(&plain(), Some("width=32cm")).await;
    assert_within(
        point(&w, "overall_height"),
        35.0,
        0.03,
        "height from width reference",
    );
}

#[tokio::test]
async fn a_reference_that_cannot_be_read_is_bad_input() {
    let err = LocalProvider::default()
        .analyze(&photo(&plain(), Some("seventy centimetres")))
        .await
        .unwrap_err();
    assert!(matches!(err, GenerateError::BadInput(_)), "{err:?}");
}

#[tokio::test]
async fn detail_regions_are_ranked_named_and_do_not_overlap() {
    let mut img = plain();
    // A printed logo on the chest: white and yellow stripes.
    for i in 0..6 {
        let colour = if i % 2 == 0 {
            [250, 250, 250]
        } else {
            [240, 200, 40]
        };
        draw_filled_rect_mut(
            &mut img,
            Rect::at(430 + i * 24, 380).of_size(12, 120),
            Rgb(colour),
        );
    }
    let a = analyse(&img, None).await;
    assert!(!a.detail_regions.is_empty());
    for pair in a.detail_regions.windows(2) {
        assert!(
            pair[0].score >= pair[1].score,
            "not ranked: {:?}",
            a.detail_regions
        );
    }
    let best = &a.detail_regions[0];
    // Named for the feature and where it sits on the garment, not as a generic region.
    assert!(best.name.ends_with("print"), "{:?}", a.detail_regions);
    let print = a
        .feature(&best.name)
        .expect("the print is a recorded feature");
    assert_eq!(print.kind, "print");
    let [x0, y0, x1, y1] = best.bbox;
    assert!(
        x0 < 500 && x1 > 530 && y0 < 440 && y1 > 440,
        "the logo is not in {:?}",
        best.bbox
    );
    for (i, a1) in a.detail_regions.iter().enumerate() {
        for a2 in &a.detail_regions[i + 1..] {
            let (p, q) = (a1.bbox, a2.bbox);
            assert!(
                !(p[0] < q[2] && q[0] < p[2] && p[1] < q[3] && q[1] < p[3]),
                "{} and {} overlap",
                a1.name,
                a2.name
            );
            assert_ne!(a1.name, a2.name);
        }
    }
}

/// A close-up reaches 1024 px on its long side unless that would enlarge the photo more than
/// 2× (a smaller output is better than invented detail), and is never enlarged further.
fn assert_closeup_size(region: [u32; 4], size: [u32; 2]) {
    let region_long = f64::from((region[2] - region[0]).max(region[3] - region[1]));
    let long = f64::from(size[0].max(size[1]));
    assert!(
        long >= (2.0 * region_long).min(1024.0) - 1.0,
        "{size:?} is smaller than it may be for the region {region:?}"
    );
    // The crop adds a 4 % margin a side; it is enlarged at most 2×.
    assert!(
        long <= 2.0 * (region_long * 1.08 + 2.0),
        "{size:?} enlarges the region {region:?} more than 2×"
    );
}

#[tokio::test]
async fn closeups_are_large_sharp_pngs_of_the_region() {
    let provider = LocalProvider::default();
    let p = photo(&plain(), None);
    let a = provider.analyze(&p).await.unwrap().output;
    let shots = provider.plan_closeups(&a, 4);
    assert!(!shots.is_empty() && shots.len() <= 4);
    for shot in &shots {
        let c = provider.closeup(&p, &a, shot).await.unwrap();
        assert_eq!(c.credits, 1);
        let img =
            image::load_from_memory_with_format(&c.output.png, image::ImageFormat::Png).unwrap();
        assert_eq!([img.width(), img.height()], c.output.size);
        assert_closeup_size(shot.bbox, c.output.size);
        assert_eq!(c.output.shot, *shot);
    }
    // A region outside the image is refused, not clamped silently.
    let mut outside = shots[0].clone();
    outside.bbox = [900, 900, 1100, 1100];
    let err = provider.closeup(&p, &a, &outside).await.unwrap_err();
    assert!(matches!(err, GenerateError::BadInput(_)), "{err:?}");
}

#[test]
fn fingerprint_changes_with_the_options() {
    use techpack_generate::local::LocalOptions;
    let a = LocalProvider::default();
    let b = LocalProvider::new(LocalOptions {
        working_long_side: 1024,
        ..LocalOptions::default()
    });
    assert_eq!(a.name(), "local");
    assert_ne!(a.fingerprint(), b.fingerprint());
    assert!(a.fingerprint().contains("techpack-local/2.0"));
}
