//! The analysis document: what a provider learned from one photo. Serialized as JSON into
//! `tech_files.analysis_data`; `schema_version` changes whenever a field changes meaning.
//! The layout is documented field by field in `crates/generate/ANALYSIS_SCHEMA.md`.
//!
//! Fields added after version 1 are `#[serde(default)]` and left out of the JSON when empty,
//! so documents stored by older versions (and answers of providers that do not fill them)
//! still read.

use serde::{Deserialize, Serialize};
use techpack_model::ProductCategory;

use crate::CloseupShot;

/// The version of the [`Analysis`] JSON layout.
///
/// Version 2 (the current one) added `source`, `category_detection`, `landmarks`, `features`
/// and the points of measure's `code`, `label`, `method` and landmark names, and changed
/// meanings: coordinates refer to the photo after its EXIF orientation and any scaling down,
/// `body_length` runs from the high point of the shoulder, and detail-region names are never
/// numbered. Version 1 documents still deserialize (every new field has a default).
pub const ANALYSIS_SCHEMA_VERSION: u32 = 2;

/// What a provider learned from one photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Always [`ANALYSIS_SCHEMA_VERSION`] when written by this version.
    pub schema_version: u32,
    /// The input image.
    pub image: ImageInfo,
    /// The view analysed (front, back …).
    pub view: String,
    /// The product category.
    pub category: ProductCategory,
    /// Where the product is.
    pub product: ProductRegion,
    /// Dominant colours of the product alone, largest share first.
    pub colors: Vec<ColorShare>,
    /// Materials, where the provider can tell (the local provider cannot: empty).
    #[serde(default)]
    pub materials: Vec<String>,
    /// Measurements in pixels and centimetres.
    pub measurements: Measurements,
    /// Regions worth a close-up, most to see first.
    pub detail_regions: Vec<DetailRegion>,
    /// A short description, where the provider gives one.
    #[serde(default)]
    pub description: Option<String>,
    /// How sure the provider is, and why.
    pub confidence: Confidence,
    /// The photo as stored (size, EXIF orientation) and how it was scaled to the input image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceImage>,
    /// How the category was decided: asked for, or detected from the photo's shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_detection: Option<CategoryDetection>,
    /// Named points on the product (high point of the shoulder, underarm, brim tip …) that
    /// the points of measure run between.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub landmarks: Vec<Landmark>,
    /// Construction and decoration features found on the product (neckline, zip, pocket,
    /// cuff, print …), each with why it was found: the sketch's callouts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<Feature>,
}

/// The photo as its file stores it, before it became the analysed input image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SourceImage {
    /// Width in pixels as stored in the file (before the EXIF orientation is applied).
    pub width: u32,
    /// Height in pixels as stored in the file.
    pub height: u32,
    /// The EXIF orientation (1–8; 1 = as stored) that was applied.
    pub exif_orientation: u8,
    /// Input-image pixels per stored pixel: below 1 when a photo larger than the working
    /// limit was scaled down.
    pub scale: f64,
}

/// Whether a category was asked for or detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CategorySource {
    /// The request named the category and it was used as given.
    Request,
    /// The request named a broad category (`apparel`, `accessories`, `home`) and the photo
    /// decided which of its finer categories it is.
    Refined,
    /// The request asked for `auto` and the photo decided.
    Detected,
}

/// How the analysis' category was decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryDetection {
    /// The category the request asked for (`auto` to detect).
    pub requested: ProductCategory,
    /// What the photo's shape says it is (always a detectable category, never `auto`).
    pub detected: ProductCategory,
    /// How sure the detection is, 0..=1.
    pub confidence: f64,
    /// Which of the two became [`Analysis::category`].
    pub source: CategorySource,
    /// The measured shape features that decided it, most telling first.
    pub features: Vec<CategoryFeature>,
    /// Every candidate's score, best first.
    pub scores: Vec<CategoryScore>,
}

/// One shape feature used to detect the category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryFeature {
    /// Its name, snake_case (`sleeves`, `neckline_dip`, `handle_loop`, `leg_split` …).
    pub name: String,
    /// Its measured value (what the number means is in `note`).
    pub value: f64,
    /// A plain sentence: what was measured and which category it speaks for.
    pub note: String,
}

/// A candidate category and its score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryScore {
    /// The category.
    pub category: ProductCategory,
    /// Its score, 0..=1.
    pub score: f64,
}

/// A named point on the product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Landmark {
    /// Stable snake_case name (`hps_left`, `shoulder_right`, `underarm_left`, `hem_left`,
    /// `hood_top`, `brim_tip` …); `left`/`right` are the wearer's for worn products.
    pub name: String,
    /// The point in input pixels.
    pub point: [f64; 2],
    /// How sure its placement is, 0..=1.
    pub confidence: f64,
}

/// A feature found on the product: what a callout points at and a close-up frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    /// Its name from the category's vocabulary, unique within the document (`neckline`,
    /// `left cuff`, `centre front zip`, `kangaroo pocket`, `left chest print` …).
    pub name: String,
    /// What kind of feature it is, snake_case (`neckline`, `hood`, `zip`, `placket`,
    /// `pocket`, `cuff`, `sleeve_hem`, `hem`, `rib`, `drawcord`, `print`, `colour_block`,
    /// `seam`, `handle`, `brim`, `crown`, `rim`, `base`, `cap` …).
    pub kind: String,
    /// Its box in input pixels, `[x0, y0, x1, y1]`, ends exclusive.
    pub bbox: [u32; 4],
    /// Where a callout's leader points, in input pixels (on the feature).
    pub anchor: [f64; 2],
    /// Wearer's side (`left`, `right`), `centre`, or empty when a side means nothing.
    #[serde(default)]
    pub side: String,
    /// How sure the detection is, 0..=1.
    pub confidence: f64,
    /// Why it was placed: what was seen and measured.
    pub evidence: String,
}

/// Size of the analysed image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// Width in pixels of the input image.
    pub width: u32,
    /// Height in pixels of the input image.
    pub height: u32,
}

/// The product's place in the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductRegion {
    /// `[x0, y0, x1, y1]` in the input image's pixels, ends exclusive.
    pub bbox: [u32; 4],
    /// Share of the image's pixels that are product, 0..=1.
    pub area_share: f64,
    /// Width / height of the bounding box.
    pub aspect_ratio: f64,
    /// Left-right symmetry of the silhouette, 0..=1 (1 = mirror image).
    pub symmetry: f64,
}

/// A dominant colour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColorShare {
    /// `#rrggbb`.
    pub hex: String,
    /// Share of the product's pixels, 0..=1.
    pub share: f64,
    /// A plain colour name (red, navy, black …).
    pub name: String,
}

/// Measurements and the scale used to turn pixels into centimetres.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurements {
    /// How pixels map to centimetres.
    pub scale: MeasurementScale,
    /// Points of measure: overall width and height plus the category's own.
    pub points: Vec<Measurement>,
}

/// Where a scale came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleSource {
    /// A reference size given with the photo.
    Reference,
    /// The documented default size of the category.
    CategoryDefault,
    /// Estimated by the provider (e.g. a vision model).
    Estimated,
}

/// Pixels to centimetres.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasurementScale {
    /// Centimetres per input pixel.
    pub cm_per_px: f64,
    /// Where the scale came from.
    pub source: ScaleSource,
    /// The reference text or default that set it, e.g. `height=70cm`.
    pub basis: String,
}

/// One point of measure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Name, snake_case and stable: `body_length`, `chest_width`, `across_shoulder`,
    /// `sleeve_length`, `crown_height`, `handle_drop`, `overall_width` …
    pub name: String,
    /// A short stable code for the spec sheet (`BL`, `CH`, `AS` …), empty when the provider
    /// gives none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub code: String,
    /// What it is, for people: `Body length from HPS`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// How it is measured, so every factory measures it alike.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// The landmark it starts at (see [`Analysis::landmarks`]), when it runs between two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_landmark: Option<String>,
    /// The landmark it ends at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_landmark: Option<String>,
    /// Length in input pixels.
    pub px: f64,
    /// Length in centimetres.
    pub cm: f64,
    /// Start point in input pixels.
    pub from: [f64; 2],
    /// End point in input pixels.
    pub to: [f64; 2],
}

/// A region worth a close-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetailRegion {
    /// Its name by place and category (collar, cuff, hem, logo, sole …).
    pub name: String,
    /// `[x0, y0, x1, y1]` in input pixels, ends exclusive.
    pub bbox: [u32; 4],
    /// How much there is to see, 0..=1.
    pub score: f64,
}

/// Confidence and its reasons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confidence {
    /// 0..=1.
    pub score: f64,
    /// Plain sentences: why the score is what it is.
    pub reasons: Vec<String>,
}

impl Analysis {
    /// The feature a detail region frames (same name), when the analysis records features.
    pub fn feature(&self, name: &str) -> Option<&Feature> {
        self.features.iter().find(|f| f.name == name)
    }

    /// A point of measure by name.
    pub fn point_of_measure(&self, name: &str) -> Option<&Measurement> {
        self.measurements.points.iter().find(|m| m.name == name)
    }

    /// A landmark by name.
    pub fn landmark(&self, name: &str) -> Option<&Landmark> {
        self.landmarks.iter().find(|l| l.name == name)
    }

    /// The best `count` detail regions as close-up shots, in rank order.
    pub fn plan_closeups(&self, count: usize) -> Vec<CloseupShot> {
        self.detail_regions
            .iter()
            .take(count)
            .map(|region| CloseupShot {
                name: region.name.clone(),
                bbox: region.bbox,
                description: {
                    let category = self.category.to_string();
                    let article = if category.starts_with(['a', 'e', 'i', 'o', 'u']) {
                        "an"
                    } else {
                        "a"
                    };
                    format!(
                        "close-up of the {} of the {} view of {article} {category} product",
                        region.name, self.view
                    )
                },
            })
            .collect()
    }
}
