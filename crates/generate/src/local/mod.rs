//! The `local` provider: offline, deterministic image processing.
//!
//! - **Analysis**: the photo is decoded under size limits, downscaled to a working copy, the
//!   product separated from its background (see `segment.rs`), then measured: box, area,
//!   symmetry, dominant colours (k-means in CIELAB), category points of measure in pixels and
//!   centimetres, detail regions ranked by edge density, and a confidence with its reasons.
//!   The JSON layout is documented in `crates/generate/ANALYSIS_SCHEMA.md`.
//! - **Close-ups**: each planned region cropped from the full-resolution photo with a margin,
//!   upscaled with Lanczos3 to at least [`LocalOptions::min_closeup_long_side`] and sharpened.
//! - **Sketch**: vector line art from the silhouette and interior edges, with callouts and
//!   dimension lines (see `sketch.rs`).
//!
//! Every step is deterministic: fixed k-means seeds, no threads whose scheduling changes a
//! result, stable sorts with positional tie-breaks. Same bytes and options → same output bytes.

mod analyze;
mod closeup;
mod color;
pub(crate) mod segment;
mod sketch;
mod svg;

use async_trait::async_trait;
use image::GrayImage;

use crate::{
    Analysis, Closeup, CloseupShot, CreditCosts, GenerateError, Generated, Provider, Sketch,
    ViewPhoto,
};

/// The model name recorded in `ai_model` for everything this provider makes.
pub const LOCAL_MODEL: &str = "techpack-local/1.0";
/// The algorithm's version: bump it whenever output for the same photo changes, so cached
/// results made by an older version are not reused.
pub const LOCAL_ALGORITHM_VERSION: u32 = 1;

/// Options of the [`LocalProvider`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalOptions {
    /// Long side, in pixels, of the working copy analysis and sketches are computed on.
    /// Larger is slower and finer; 768 separates a product to within a pixel or two of a
    /// 1200 px photo.
    pub working_long_side: u32,
    /// How many close-ups a plan holds by default.
    pub closeup_count: usize,
    /// Close-ups are upscaled until their long side is at least this many pixels.
    pub min_closeup_long_side: u32,
    /// What each operation costs.
    pub credits: CreditCosts,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            working_long_side: segment::DEFAULT_WORKING_LONG_SIDE,
            closeup_count: 4,
            min_closeup_long_side: 1024,
            credits: CreditCosts::default(),
        }
    }
}

/// The offline, deterministic provider. Cheap to clone; all work runs on Tokio's blocking pool.
#[derive(Debug, Clone, Default)]
pub struct LocalProvider {
    options: LocalOptions,
}

/// The product's silhouette at the input image's size.
#[derive(Debug, Clone)]
pub struct Silhouette {
    /// 255 = product, 0 = background, same size as the input image.
    pub mask: GrayImage,
    /// The product's box, `[x0, y0, x1, y1]` in input pixels, ends exclusive.
    pub bbox: [u32; 4],
}

impl LocalProvider {
    /// A provider with the given options.
    pub fn new(options: LocalOptions) -> Self {
        Self { options }
    }

    /// The options in use.
    pub fn options(&self) -> &LocalOptions {
        &self.options
    }

    /// The close-up shots a default plan holds for this analysis (the top
    /// [`LocalOptions::closeup_count`] detail regions).
    pub fn default_closeup_plan(&self, analysis: &Analysis) -> Vec<CloseupShot> {
        self.plan_closeups(analysis, self.options.closeup_count)
    }

    /// Separates the product from its background, synchronously, and returns its silhouette
    /// scaled back to the input image's size (for overlays, cut-outs and evaluation).
    pub fn silhouette(&self, bytes: &[u8]) -> Result<Silhouette, GenerateError> {
        let seg = segment::decode_and_segment_with(bytes, self.options.working_long_side)?;
        let (iw, ih) = seg.input_size;
        let mask = if seg.mask.dimensions() == (iw, ih) {
            seg.mask.clone()
        } else {
            // Bilinear then threshold at half: the boundary lands between working pixels
            // instead of on a staircase.
            let mut up =
                image::imageops::resize(&seg.mask, iw, ih, image::imageops::FilterType::Triangle);
            up.pixels_mut()
                .for_each(|p| p.0 = [if p.0[0] >= 128 { 255 } else { 0 }]);
            up
        };
        let bbox = segment::mask_bbox(&mask).unwrap_or([0, 0, iw, ih]);
        Ok(Silhouette { mask, bbox })
    }

    /// Analyses a photo synchronously (what [`Provider::analyze`] runs on the blocking pool).
    pub fn analyze_sync(&self, photo: &ViewPhoto) -> Result<Analysis, GenerateError> {
        let seg = segment::decode_and_segment_with(&photo.bytes, self.options.working_long_side)?;
        analyze::analyze(
            &seg,
            &analyze::AnalyzeInput {
                view: &photo.view,
                category: photo.category,
                reference: photo.reference.as_deref(),
            },
        )
    }

    /// Renders one close-up synchronously: PNG bytes and size.
    pub fn closeup_sync(
        &self,
        photo: &ViewPhoto,
        shot: &CloseupShot,
    ) -> Result<Closeup, GenerateError> {
        let (png, size) =
            closeup::render_closeup(&photo.bytes, shot, self.options.min_closeup_long_side)?;
        Ok(Closeup {
            shot: shot.clone(),
            png,
            size,
        })
    }

    /// Draws the technical sketch synchronously.
    pub fn sketch_sync(
        &self,
        photo: &ViewPhoto,
        analysis: &Analysis,
    ) -> Result<Sketch, GenerateError> {
        let seg = segment::decode_and_segment_with(&photo.bytes, self.options.working_long_side)?;
        if seg.input_size != (analysis.image.width, analysis.image.height) {
            return Err(GenerateError::BadInput(format!(
                "the analysis is of a {}×{} image but the photo is {}×{}",
                analysis.image.width, analysis.image.height, seg.input_size.0, seg.input_size.1
            )));
        }
        sketch::draw_sketch(&seg, analysis)
    }

    fn params(&self, operation: &str, extra: serde_json::Value) -> String {
        let mut v = serde_json::json!({
            "provider": "local",
            "operation": operation,
            "algorithm_version": LOCAL_ALGORITHM_VERSION,
            "working_long_side": self.options.working_long_side,
            "min_closeup_long_side": self.options.min_closeup_long_side,
        });
        if let (Some(obj), serde_json::Value::Object(more)) = (v.as_object_mut(), extra) {
            obj.extend(more);
        }
        v.to_string()
    }
}

/// Runs CPU work on the blocking pool so the async runtime's workers stay responsive.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, GenerateError> + Send + 'static,
) -> Result<T, GenerateError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        GenerateError::InvalidAnswer(format!("local image processing task failed: {e}"))
    })?
}

#[async_trait]
impl Provider for LocalProvider {
    fn name(&self) -> &str {
        "local"
    }

    fn fingerprint(&self) -> String {
        format!(
            "local/{LOCAL_MODEL}/alg{LOCAL_ALGORITHM_VERSION}/work{}/closeup{}",
            self.options.working_long_side, self.options.min_closeup_long_side
        )
    }

    async fn analyze(&self, photo: &ViewPhoto) -> Result<Generated<Analysis>, GenerateError> {
        let this = self.clone();
        let p = photo.clone();
        let analysis = blocking(move || this.analyze_sync(&p)).await?;
        Ok(Generated {
            model: LOCAL_MODEL.to_string(),
            prompt: self.params(
                "analysis",
                serde_json::json!({ "view": photo.view, "category": photo.category, "reference": photo.reference }),
            ),
            confidence: analysis.confidence.score,
            credits: self.options.credits.analysis,
            output: analysis,
        })
    }

    async fn closeup(
        &self,
        photo: &ViewPhoto,
        analysis: &Analysis,
        shot: &CloseupShot,
    ) -> Result<Generated<Closeup>, GenerateError> {
        let this = self.clone();
        let (p, s) = (photo.clone(), shot.clone());
        let closeup = blocking(move || this.closeup_sync(&p, &s)).await?;
        Ok(Generated {
            model: LOCAL_MODEL.to_string(),
            prompt: self.params(
                "closeup",
                serde_json::json!({ "shot": shot.name, "bbox": shot.bbox }),
            ),
            confidence: analysis.confidence.score,
            credits: self.options.credits.closeup,
            output: closeup,
        })
    }

    async fn sketch(
        &self,
        photo: &ViewPhoto,
        analysis: &Analysis,
    ) -> Result<Generated<Sketch>, GenerateError> {
        let this = self.clone();
        let (p, a) = (photo.clone(), analysis.clone());
        let sketch = blocking(move || this.sketch_sync(&p, &a)).await?;
        Ok(Generated {
            model: LOCAL_MODEL.to_string(),
            prompt: self.params("sketch", serde_json::json!({})),
            confidence: analysis.confidence.score,
            credits: self.options.credits.sketch,
            output: sketch,
        })
    }
}
