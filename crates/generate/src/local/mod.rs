//! The `local` provider: offline, deterministic image processing.
//!
//! Every operation on a photo starts from the same preparation, computed once and shared
//! through a small cache keyed by the photo's bytes (`prepared.rs`):
//!
//! - `decode.rs`: decoding under size limits, EXIF orientation, scaling photos larger than
//!   the working limit down, clear errors for formats that stay unsupported;
//! - `segment.rs`: the product separated from its background on a working copy;
//! - `shape.rs`: the silhouette's geometry (profiles, mirror axis, contour, concavities).
//!
//! From it:
//!
//! - **Analysis** (`analyze.rs`): box, dominant colours (`color.rs`), the category — asked
//!   for, or detected from the shape when the request says `auto` (`category.rs`) —,
//!   landmarks (`landmarks/`), points of measure between them (`measure.rs`), features named
//!   from the category's vocabulary (`features.rs`, with prints from `contrast.rs`), close-up
//!   regions framed on the features, and a confidence with its reasons. The JSON layout is
//!   documented in `crates/generate/ANALYSIS_SCHEMA.md`.
//! - **Close-ups** (`closeup.rs`): each planned region cut from the full-resolution photo,
//!   enlarged at most 2×, saved as PNG.
//! - **Sketch** (`sketch/`): a vector technical flat with callouts and dimension lines.
//!
//! Every step is deterministic: fixed k-means seeds, no threads whose scheduling changes a
//! result, stable sorts with positional tie-breaks. Same bytes and options → same output bytes,
//! whether the preparation came from the cache or not.

mod analyze;
mod category;
mod closeup;
mod color;
mod contrast;
mod decode;
mod features;
mod landmarks;
mod measure;
mod prepared;
pub(crate) mod segment;
mod shape;
mod sketch;
mod svg;
mod timing;

use std::sync::Arc;

use async_trait::async_trait;
use image::GrayImage;
use techpack_model::ProductCategory;

use crate::{
    Analysis, Closeup, CloseupShot, CreditCosts, GenerateError, Generated, Provider, Sketch,
    ViewPhoto,
};
use prepared::{Prepared, PreparedCache};
pub use timing::StepTimes;
use timing::Timer;

/// The model name recorded in `ai_model` for everything this provider makes.
pub const LOCAL_MODEL: &str = "techpack-local/2.0";
/// The algorithm's version: bump it whenever output for the same photo changes, so cached
/// results made by an older version are not reused.
pub const LOCAL_ALGORITHM_VERSION: u32 = 2;

/// Options of the [`LocalProvider`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalOptions {
    /// Long side, in pixels, of the working copy analysis and sketches are computed on.
    /// Larger is slower and finer; 768 separates a product to within a pixel or two of a
    /// 1200 px photo.
    pub working_long_side: u32,
    /// Photos with a longer side than this are scaled down to it before anything else (their
    /// analysis then refers to the scaled image; `Analysis::source` says by how much).
    pub max_input_long_side: u32,
    /// How many close-ups a plan holds by default.
    pub closeup_count: usize,
    /// Close-ups are enlarged towards this long side, but never more than 2×.
    pub min_closeup_long_side: u32,
    /// Draw the flats of symmetric products mirrored into exact symmetry (one-sided features
    /// such as a chest logo stay where they are).
    pub symmetric_flats: bool,
    /// How many prepared photos the provider keeps for the next operation on the same photo.
    pub cache_photos: usize,
    /// What each operation costs.
    pub credits: CreditCosts,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            working_long_side: segment::DEFAULT_WORKING_LONG_SIDE,
            max_input_long_side: decode::DEFAULT_MAX_LONG_SIDE,
            closeup_count: 4,
            min_closeup_long_side: 1024,
            symmetric_flats: true,
            cache_photos: 6,
            credits: CreditCosts::default(),
        }
    }
}

/// The offline, deterministic provider. Cheap to clone (clones share the cache); all work
/// runs on Tokio's blocking pool.
#[derive(Debug, Clone)]
pub struct LocalProvider {
    options: LocalOptions,
    cache: Arc<PreparedCache>,
}

impl Default for LocalProvider {
    fn default() -> Self {
        Self::new(LocalOptions::default())
    }
}

/// The product's silhouette at the input image's size.
#[derive(Debug, Clone)]
pub struct Silhouette {
    /// 255 = product, 0 = background, same size as the input image (the photo after its
    /// EXIF orientation and any scaling down).
    pub mask: GrayImage,
    /// The product's box, `[x0, y0, x1, y1]` in input pixels, ends exclusive.
    pub bbox: [u32; 4],
}

/// The standard points of measure (by name, beyond `overall_width`/`overall_height`) that
/// the local provider takes for a category when their landmarks can be seen; `hooded` adds
/// the hood's. The spec sheet can rely on these names.
pub fn standard_points_of_measure(category: ProductCategory, hooded: bool) -> Vec<&'static str> {
    measure::standard_names(category, hooded)
}

impl LocalProvider {
    /// A provider with the given options.
    pub fn new(options: LocalOptions) -> Self {
        let cache = Arc::new(PreparedCache::new(options.cache_photos));
        Self { options, cache }
    }

    /// The options in use.
    pub fn options(&self) -> &LocalOptions {
        &self.options
    }

    /// Forgets the prepared photos (the next operation on any photo starts from its bytes).
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    /// The close-up shots a default plan holds for this analysis (the top
    /// [`LocalOptions::closeup_count`] detail regions).
    pub fn default_closeup_plan(&self, analysis: &Analysis) -> Vec<CloseupShot> {
        self.plan_closeups(analysis, self.options.closeup_count)
    }

    fn prepare(
        &self,
        bytes: &Arc<[u8]>,
        timer: &mut Timer,
    ) -> Result<Arc<Prepared>, GenerateError> {
        let (max, working) = (
            self.options.max_input_long_side,
            self.options.working_long_side,
        );
        self.cache
            .get_or_prepare(bytes, || Prepared::new(bytes, max, working, timer))
    }

    /// Separates the product from its background, synchronously, and returns its silhouette
    /// scaled back to the input image's size (for overlays, cut-outs and evaluation).
    pub fn silhouette(&self, bytes: &[u8]) -> Result<Silhouette, GenerateError> {
        let bytes: Arc<[u8]> = Arc::from(bytes);
        let prep = self.prepare(&bytes, &mut Timer::default())?;
        let seg = &prep.seg;
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
        self.analyze_timed(photo).map(|(a, _)| a)
    }

    /// [`LocalProvider::analyze_sync`], with the time each step took.
    pub fn analyze_timed(&self, photo: &ViewPhoto) -> Result<(Analysis, StepTimes), GenerateError> {
        let mut timer = Timer::default();
        let prep = self.prepare(&photo.bytes, &mut timer)?;
        let analysis = analyze::analyze(
            &prep,
            &analyze::AnalyzeInput {
                view: &photo.view,
                category: photo.category,
                reference: photo.reference.as_deref(),
            },
            &mut timer,
        )?;
        Ok((analysis, timer.finish()))
    }

    /// Renders one close-up synchronously: PNG bytes and size.
    pub fn closeup_sync(
        &self,
        photo: &ViewPhoto,
        shot: &CloseupShot,
    ) -> Result<Closeup, GenerateError> {
        self.closeup_timed(photo, shot).map(|(c, _)| c)
    }

    /// [`LocalProvider::closeup_sync`], with the time each step took.
    pub fn closeup_timed(
        &self,
        photo: &ViewPhoto,
        shot: &CloseupShot,
    ) -> Result<(Closeup, StepTimes), GenerateError> {
        let mut timer = Timer::default();
        let prep = self.prepare(&photo.bytes, &mut timer)?;
        let (png, size) = timer.time("closeup", || {
            closeup::render_closeup(&prep.photo.rgb, shot, self.options.min_closeup_long_side)
        })?;
        Ok((
            Closeup {
                shot: shot.clone(),
                png,
                size,
            },
            timer.finish(),
        ))
    }

    /// Draws the technical sketch synchronously.
    pub fn sketch_sync(
        &self,
        photo: &ViewPhoto,
        analysis: &Analysis,
    ) -> Result<Sketch, GenerateError> {
        self.sketch_timed(photo, analysis).map(|(s, _)| s)
    }

    /// [`LocalProvider::sketch_sync`], with the time each step took.
    pub fn sketch_timed(
        &self,
        photo: &ViewPhoto,
        analysis: &Analysis,
    ) -> Result<(Sketch, StepTimes), GenerateError> {
        let mut timer = Timer::default();
        let prep = self.prepare(&photo.bytes, &mut timer)?;
        let (iw, ih) = prep.seg.input_size;
        if (iw, ih) != (analysis.image.width, analysis.image.height) {
            return Err(GenerateError::BadInput(format!(
                "the analysis is of a {}×{} image but the photo is {iw}×{ih}",
                analysis.image.width, analysis.image.height
            )));
        }
        let sketch = sketch::draw_sketch(
            &prep,
            analysis,
            &sketch::SketchOptions {
                symmetric: self.options.symmetric_flats,
            },
            &mut timer,
        )?;
        Ok((sketch, timer.finish()))
    }

    fn params(&self, operation: &str, extra: serde_json::Value) -> String {
        let mut v = serde_json::json!({
            "provider": "local",
            "operation": operation,
            "algorithm_version": LOCAL_ALGORITHM_VERSION,
            "working_long_side": self.options.working_long_side,
            "max_input_long_side": self.options.max_input_long_side,
            "min_closeup_long_side": self.options.min_closeup_long_side,
            "symmetric_flats": self.options.symmetric_flats,
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
        // The cache size changes nothing in the output, so it is not part of the key.
        format!(
            "local/{LOCAL_MODEL}/alg{LOCAL_ALGORITHM_VERSION}/work{}/max{}/closeup{}/sym{}",
            self.options.working_long_side,
            self.options.max_input_long_side,
            self.options.min_closeup_long_side,
            u8::from(self.options.symmetric_flats)
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
