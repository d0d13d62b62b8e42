//! The analysis document: what a provider learned from one photo. Serialized as JSON into
//! `tech_files.analysis_data`; `schema_version` changes whenever a field changes meaning.

use serde::{Deserialize, Serialize};
use techpack_model::ProductCategory;

use crate::CloseupShot;

/// The version of the [`Analysis`] JSON layout.
pub const ANALYSIS_SCHEMA_VERSION: u32 = 1;

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Name, snake_case: `overall_width`, `chest_width`, `body_length`, `heel_height` …
    pub name: String,
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
    /// The best `count` detail regions as close-up shots, in rank order.
    pub fn plan_closeups(&self, count: usize) -> Vec<CloseupShot> {
        self.detail_regions
            .iter()
            .take(count)
            .map(|region| CloseupShot {
                name: region.name.clone(),
                bbox: region.bbox,
                description: format!(
                    "close-up of the {} of the {} view of a {} product",
                    region.name, self.view, self.category
                ),
            })
            .collect()
    }
}
