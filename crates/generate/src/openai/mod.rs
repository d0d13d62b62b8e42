//! The `openai` provider: any OpenAI-compatible endpoint (OpenAI, Azure, vLLM, Ollama …).
//!
//! - **Analysis**: `POST {base}/chat/completions` with the photo as a base64 data URL and a
//!   strict JSON-schema response format; the answer is parsed as [`Analysis`] and checked
//!   against the photo (boxes inside the image, shares and scores in 0..=1, consistent units).
//! - **Close-ups**: the shot's region (with a margin) is cut from the photo and sent to
//!   `POST {base}/images/edits` with a prompt naming the shot; the answer's `b64_json` image is
//!   returned as PNG.
//! - **Sketch**: the product's region is sent to `/images/edits` with a technical-flat prompt;
//!   the returned raster becomes one layer of an SVG whose callouts, dimension lines and title
//!   block are vector elements drawn from the analysis: the flat itself stays a raster.
//!
//! Every request goes through one shared client with a per-request timeout, a concurrency
//! limit and retries (exponential backoff with full jitter on 429, 5xx, timeouts and connection
//! errors, honouring `Retry-After`). Nothing is charged for a failed call: credits are only in
//! the `Ok` result.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use techpack_generate::openai::{OpenAiConfig, OpenAiProvider};
//! let provider = OpenAiProvider::new(OpenAiConfig::from_env()?)?;
//! # let _ = provider; Ok(()) }
//! ```

mod config;
mod images;
mod overlay;
mod prompts;
mod schema;
mod transport;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::json;

pub use config::{
    DEFAULT_BASE_URL, DEFAULT_IMAGE_MODEL, DEFAULT_IMAGE_SIZE, DEFAULT_VISION_MODEL, ENV_API_KEY,
    ENV_API_KEY_FALLBACK, ENV_BASE_URL, ENV_CONCURRENCY, ENV_IMAGE_MODEL, ENV_IMAGE_SIZE,
    ENV_MAX_RETRIES, ENV_TIMEOUT_SECS, ENV_VISION_MODEL, OpenAiConfig, OpenAiConfigError,
};

use crate::{
    Analysis, Closeup, CloseupShot, GenerateError, Generated, Provider, Sketch, ViewPhoto,
};
use transport::Transport;

/// Share of the product's box added around it before the sketch request, so that the outline
/// is not cut at the frame's edge.
const SKETCH_MARGIN: f64 = 0.06;

/// A provider backed by an OpenAI-compatible HTTP API. Cheap to share: wrap it in an `Arc`;
/// all clones of that `Arc` share one connection pool and one concurrency limit.
#[derive(Debug)]
pub struct OpenAiProvider {
    config: OpenAiConfig,
    transport: Transport,
}

impl OpenAiProvider {
    /// A provider with the given settings (validated here).
    pub fn new(config: OpenAiConfig) -> Result<Self, OpenAiConfigError> {
        config.validate()?;
        let transport = Transport::new(&config)?;
        Ok(Self { config, transport })
    }

    /// A provider configured from the environment; see [`OpenAiConfig::from_lookup`] for the
    /// variables. Fails with [`OpenAiConfigError::MissingApiKey`] when no key is set.
    pub fn from_env() -> Result<Self, OpenAiConfigError> {
        Self::new(OpenAiConfig::from_env()?)
    }

    /// The settings in use.
    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }

    /// Sends one image edit and returns the first image as PNG with its size.
    async fn edit_image(
        &self,
        operation: &str,
        image_png: Vec<u8>,
        prompt: &str,
    ) -> Result<(Vec<u8>, [u32; 2]), GenerateError> {
        let url = self.config.endpoint("/images/edits");
        let config = &self.config;
        let body = self
            .transport
            .send(operation, |client| {
                let image = reqwest::multipart::Part::bytes(image_png.clone())
                    .file_name("image.png")
                    .mime_str("image/png")
                    .expect("image/png is a valid MIME type");
                let mut form = reqwest::multipart::Form::new()
                    .text("model", config.image_model.clone())
                    .text("prompt", prompt.to_owned())
                    .text("size", config.image_size.clone())
                    .text("n", "1")
                    .part("image", image);
                // gpt-image models always answer in base64 and reject this field; DALL·E 2
                // answers with a URL unless asked.
                if config.image_model.starts_with("dall-e") {
                    form = form.text("response_format", "b64_json");
                }
                client.post(&url).multipart(form)
            })
            .await?;
        let answer: ImagesResponse = serde_json::from_slice(&body).map_err(|e| {
            GenerateError::InvalidAnswer(format!("images answer is not the expected JSON: {e}"))
        })?;
        let first = answer
            .data
            .into_iter()
            .next()
            .ok_or_else(|| GenerateError::InvalidAnswer("images answer has no image".into()))?;
        let encoded = first.b64_json.ok_or_else(|| {
            GenerateError::InvalidAnswer(
                "images answer has no b64_json image (URL answers are not fetched)".into(),
            )
        })?;
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|e| GenerateError::InvalidAnswer(format!("b64_json is not base64: {e}")))?;
        images::to_png(bytes)
    }
}

/// `POST /chat/completions` answer, the parts we read.
#[derive(Deserialize)]
struct ChatResponse {
    model: Option<String>,
    choices: Vec<ChatChoice>,
}

#[derive(Deserialize)]
struct ChatChoice {
    message: ChatMessage,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChatMessage {
    content: Option<String>,
    refusal: Option<String>,
}

/// `POST /images/edits` answer, the parts we read.
#[derive(Deserialize)]
struct ImagesResponse {
    data: Vec<ImageData>,
}

#[derive(Deserialize)]
struct ImageData {
    b64_json: Option<String>,
}

#[async_trait]
impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        "openai"
    }

    fn fingerprint(&self) -> String {
        format!(
            "openai:{}:{}:{}:{}:{}",
            self.config.host(),
            self.config.vision_model,
            self.config.image_model,
            self.config.image_size,
            prompts::PROMPT_VERSION
        )
    }

    async fn analyze(&self, photo: &ViewPhoto) -> Result<Generated<Analysis>, GenerateError> {
        let inspected = images::inspect(&photo.bytes)?;
        let image = inspected.info;
        let user = prompts::analysis_user(photo, image);
        let data_url = format!(
            "data:{};base64,{}",
            inspected.mime(),
            STANDARD.encode(&photo.bytes)
        );
        let request = json!({
            "model": self.config.vision_model,
            "messages": [
                { "role": "system", "content": prompts::ANALYSIS_SYSTEM },
                { "role": "user", "content": [
                    { "type": "text", "text": user },
                    { "type": "image_url", "image_url": { "url": data_url, "detail": "high" } }
                ]}
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": schema::SCHEMA_NAME,
                    "strict": true,
                    "schema": schema::analysis_schema(photo, image)
                }
            }
        });
        let url = self.config.endpoint("/chat/completions");
        let body = self
            .transport
            .send("analyze", |client| client.post(&url).json(&request))
            .await?;

        let answer: ChatResponse = serde_json::from_slice(&body).map_err(|e| {
            GenerateError::InvalidAnswer(format!("chat answer is not the expected JSON: {e}"))
        })?;
        let choice = answer
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| GenerateError::InvalidAnswer("chat answer has no choices".into()))?;
        if let Some(refusal) = choice.message.refusal.filter(|r| !r.trim().is_empty()) {
            return Err(GenerateError::InvalidAnswer(format!(
                "the model refused: {refusal}"
            )));
        }
        if choice.finish_reason.as_deref() == Some("length") {
            return Err(GenerateError::InvalidAnswer(
                "the answer was cut off at the token limit".into(),
            ));
        }
        let content = choice
            .message
            .content
            .ok_or_else(|| GenerateError::InvalidAnswer("chat answer has no content".into()))?;
        let analysis: Analysis = serde_json::from_str(&content).map_err(|e| {
            GenerateError::InvalidAnswer(format!("the analysis does not follow the schema: {e}"))
        })?;
        let analysis = schema::validate(analysis, photo, image).map_err(|problems| {
            GenerateError::InvalidAnswer(format!(
                "the analysis is inconsistent: {}",
                problems.join("; ")
            ))
        })?;
        Ok(Generated {
            confidence: analysis.confidence.score,
            output: analysis,
            // The answer names the exact snapshot (e.g. gpt-4.1-mini-2025-04-14).
            model: answer
                .model
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| self.config.vision_model.clone()),
            prompt: format!("{}\n\n{user}", prompts::ANALYSIS_SYSTEM),
            credits: self.config.credits.analysis,
        })
    }

    async fn closeup(
        &self,
        photo: &ViewPhoto,
        analysis: &Analysis,
        shot: &CloseupShot,
    ) -> Result<Generated<Closeup>, GenerateError> {
        let inspected = images::inspect(&photo.bytes)?;
        let rect = images::expand(shot.bbox, self.config.closeup_margin, inspected.info)?;
        let crop = images::crop_png(&images::decode(&photo.bytes)?, rect)?;
        let prompt = prompts::closeup(photo, analysis, shot);
        let (png, size) = self.edit_image("closeup", crop, &prompt).await?;
        Ok(Generated {
            output: Closeup {
                shot: shot.clone(),
                png,
                size,
            },
            model: self.config.image_model.clone(),
            prompt,
            // The image model reports no confidence; the shot is as trustworthy as the region
            // the analysis found.
            confidence: analysis.confidence.score,
            credits: self.config.credits.closeup,
        })
    }

    /// Makes a technical flat with the image model and annotates it.
    ///
    /// The [`Sketch::svg`] is *not* vector line art: the flat itself is the model's raster,
    /// embedded as a data-URL `<image>` layer. The callouts (numbered, with leader lines to the
    /// analysis' detail regions), the dimension lines of its measurements and the title block are
    /// vector elements on top, in the input photo's pixel coordinates. [`Sketch::png`] is that
    /// SVG rendered, and [`Sketch::data`] holds the callouts and measurements.
    async fn sketch(
        &self,
        photo: &ViewPhoto,
        analysis: &Analysis,
    ) -> Result<Generated<Sketch>, GenerateError> {
        let inspected = images::inspect(&photo.bytes)?;
        let frame = images::expand(analysis.product.bbox, SKETCH_MARGIN, inspected.info)?;
        let crop = images::crop_png(&images::decode(&photo.bytes)?, frame)?;
        let prompt = prompts::sketch(photo);
        let (raster_png, raster_size) = self.edit_image("sketch", crop, &prompt).await?;
        let overlay = overlay::build(
            analysis,
            &overlay::Raster {
                png: &raster_png,
                size: raster_size,
                frame,
                model: &self.config.image_model,
            },
        );
        // Transparent under the raster layer, as this provider's sketches always were.
        let png = crate::render_svg_png(
            &overlay.svg,
            &crate::RenderOptions {
                background: None,
                ..crate::RenderOptions::default()
            },
        )?
        .png;
        Ok(Generated {
            output: Sketch {
                svg: overlay.svg,
                png,
                data: overlay.data,
            },
            model: self.config.image_model.clone(),
            prompt,
            confidence: analysis.confidence.score,
            credits: self.config.credits.sketch,
        })
    }
}
