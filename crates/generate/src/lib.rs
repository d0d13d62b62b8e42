//! Generation providers: one trait, [`Provider`], that turns one product photo (one view of one
//! revision) into an analysis, named close-up shots and a technical sketch.
//!
//! Three providers implement it: [`local::LocalProvider`] (the default: real image
//! processing, offline and deterministic), [`openai::OpenAiProvider`] (any OpenAI-compatible
//! endpoint) and [`HybridProvider`] (analyses from an OpenAI-compatible vision model,
//! close-ups and sketches made locally from them).
//! Nothing here touches a database or blob store; the pipeline crate stores the results.

mod analysis;
mod error;
mod hybrid;
pub mod local;
pub mod openai;
mod render;
mod select;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use techpack_model::ProductCategory;

pub use analysis::{
    ANALYSIS_SCHEMA_VERSION, Analysis, CategoryDetection, CategoryFeature, CategoryScore,
    CategorySource, ColorShare, Confidence, DetailRegion, Feature, ImageInfo, Landmark,
    Measurement, MeasurementScale, Measurements, ProductRegion, ScaleSource, SourceImage,
};
pub use error::{GenerateError, Refusal};
pub use hybrid::HybridProvider;
pub use render::{RenderError, RenderOptions, RenderedPng, render_svg_png};
pub use select::{ProviderKind, ProviderSetupError};

/// One view of a product: the photo's bytes and what it shows.
#[derive(Debug, Clone)]
pub struct ViewPhoto {
    /// The encoded image (JPEG, PNG or WebP).
    pub bytes: Arc<[u8]>,
    /// The view: front, back, side …
    pub view: String,
    /// The product category, which decides points of measure, callouts and shot names;
    /// [`ProductCategory::Auto`] asks the provider to detect it (the analysis then records
    /// the detected one in [`Analysis::category`] and how in
    /// [`Analysis::category_detection`]).
    pub category: ProductCategory,
    /// A known real size to scale measurements, e.g. `height=70cm` or `width=50cm`.
    pub reference: Option<String>,
}

/// A planned close-up shot: a named region of the product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloseupShot {
    /// The shot's name (collar, cuff, hem, logo, sole …): stored as `file_category`.
    pub name: String,
    /// The region in the input image's pixels, `[x0, y0, x1, y1]`, ends exclusive.
    pub bbox: [u32; 4],
    /// What the shot should show, for providers that draw it from a prompt.
    pub description: String,
}

/// A close-up image.
#[derive(Debug, Clone, PartialEq)]
pub struct Closeup {
    /// The shot it renders.
    pub shot: CloseupShot,
    /// The image, PNG encoded.
    pub png: Vec<u8>,
    /// Width and height of the PNG.
    pub size: [u32; 2],
}

/// A technical sketch.
#[derive(Debug, Clone, PartialEq)]
pub struct Sketch {
    /// The vector drawing.
    pub svg: String,
    /// The same drawing rendered to PNG.
    pub png: Vec<u8>,
    /// Callouts and measurements as data (the specification in `../shared/spec/` stores them
    /// in `analysis_data`): `{ "callouts": [{number, label, target: [x, y], anchor: [x, y],
    /// …}], "measurements": [...] }`; the local provider adds each callout's feature,
    /// confidence and reason.
    pub data: serde_json::Value,
}

/// A generation result with what it took to make it.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated<T> {
    /// The output.
    pub output: T,
    /// Model name and version, e.g. `techpack-local/1.0` or `gpt-4.1-mini`.
    pub model: String,
    /// The prompt, or the parameters for a non-prompted provider, as recorded in
    /// `generation_prompt`.
    pub prompt: String,
    /// Confidence in 0..=1.
    pub confidence: f64,
    /// Credits the operation costs.
    pub credits: i64,
}

/// What each operation costs, in credits (1 each, as in the seed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditCosts {
    /// One base-view analysis.
    pub analysis: i64,
    /// One close-up.
    pub closeup: i64,
    /// One sketch.
    pub sketch: i64,
}

impl Default for CreditCosts {
    fn default() -> Self {
        Self {
            analysis: 1,
            closeup: 1,
            sketch: 1,
        }
    }
}

/// A generator of tech-pack files from product photos.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The provider's name (`local`, `openai`).
    fn name(&self) -> &str;

    /// A stable string that changes whenever the provider would produce different output for
    /// the same photo (models, options, algorithm version): part of the generation cache key.
    fn fingerprint(&self) -> String;

    /// Analyses a photo.
    async fn analyze(&self, photo: &ViewPhoto) -> Result<Generated<Analysis>, GenerateError>;

    /// Plans up to `count` close-up shots from an analysis, best first. Cheap and free: the
    /// shots are then made one by one with [`Provider::closeup`].
    fn plan_closeups(&self, analysis: &Analysis, count: usize) -> Vec<CloseupShot> {
        analysis.plan_closeups(count)
    }

    /// Makes one close-up shot.
    async fn closeup(
        &self,
        photo: &ViewPhoto,
        analysis: &Analysis,
        shot: &CloseupShot,
    ) -> Result<Generated<Closeup>, GenerateError>;

    /// Makes a technical sketch with callouts and dimension lines.
    async fn sketch(
        &self,
        photo: &ViewPhoto,
        analysis: &Analysis,
    ) -> Result<Generated<Sketch>, GenerateError>;
}
