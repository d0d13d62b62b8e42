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
//! Every request goes through one shared client with a per-request timeout, the process'
//! [`RequestLimiter`] and the one retry policy of `transport` (transient failures retried
//! with jittered backoff honouring `Retry-After`, within one deadline per step; permanent ones
//! never). Error messages never carry the configured keys. Nothing is charged for a failed
//! call: credits are only in the `Ok` result.
//!
//! Image requests ask for the model's size nearest the shape of what is sent and pad the crop
//! to exactly that shape, so that the drawing lines up with the photo and the sketch's vector
//! callouts land on it.
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

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::json;

pub use config::{
    AuthHeader, DEFAULT_BASE_URL, DEFAULT_IMAGE_MODEL, DEFAULT_IMAGE_SIZE, DEFAULT_VISION_MODEL,
    ENV_API_KEY, ENV_API_KEY_FALLBACK, ENV_API_VERSION, ENV_AUTH, ENV_BASE_URL, ENV_CONCURRENCY,
    ENV_DEADLINE_SECS, ENV_IMAGE_MODEL, ENV_IMAGE_SIZE, ENV_IMAGES_API_KEY, ENV_IMAGES_BASE_URL,
    ENV_MAX_RETRIES, ENV_MAX_RETRY_AFTER_SECS, ENV_REQUESTS_PER_MINUTE, ENV_TIMEOUT_SECS,
    ENV_VISION_MODEL, OpenAiConfig, OpenAiConfigError,
};
pub use transport::RequestLimiter;

use crate::{
    Analysis, Closeup, CloseupShot, GenerateError, Generated, Provider, Sketch, ViewPhoto,
};
use config::Endpoint;
use images::RequestSize;
use transport::Transport;

/// Share of the product's box added around it before the sketch request, so that the outline
/// is not cut at the frame's edge.
const SKETCH_MARGIN: f64 = 0.06;

/// A provider backed by an OpenAI-compatible HTTP API. Cheap to share: wrap it in an `Arc`;
/// all clones of that `Arc` share one connection pool, and every provider given the same
/// [`RequestLimiter`] shares its limits.
#[derive(Debug)]
pub struct OpenAiProvider {
    config: OpenAiConfig,
    transport: Transport,
    chat: Endpoint,
    images: Endpoint,
}

impl OpenAiProvider {
    /// A provider with the given settings (validated here) and limits of its own.
    pub fn new(config: OpenAiConfig) -> Result<Self, OpenAiConfigError> {
        let limiter = Arc::new(RequestLimiter::from_config(&config));
        Self::with_limiter(config, limiter)
    }

    /// A provider with the given settings whose requests run under `limiter`, which other
    /// providers of the process may share (its limits then hold for all of them together).
    pub fn with_limiter(
        config: OpenAiConfig,
        limiter: Arc<RequestLimiter>,
    ) -> Result<Self, OpenAiConfigError> {
        config.validate()?;
        let transport = Transport::new(&config, limiter)?;
        Ok(Self {
            chat: config.chat_endpoint()?,
            images: config.images_endpoint()?,
            config,
            transport,
        })
    }

    /// What decides its analyses (endpoint, vision model, prompts): the part of the
    /// fingerprint a provider that only borrows its analyses depends on.
    pub fn vision_fingerprint(&self) -> String {
        format!(
            "openai-vision:{}:{}:{}",
            self.chat.url(&self.config.vision_model, "chat/completions"),
            self.config.vision_model,
            prompts::PROMPT_VERSION
        )
    }

    /// The limits its requests run under.
    pub fn limiter(&self) -> &Arc<RequestLimiter> {
        self.transport.limiter()
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

    /// Sends the `rect` of the photo as one image edit, padded to the shape of the size asked
    /// for, and returns the first image as PNG with its size and the frame (photo pixels) the
    /// drawing covers.
    async fn edit_image(
        &self,
        operation: &str,
        photo: &ViewPhoto,
        rect: [u32; 4],
        prompt: &str,
    ) -> Result<(Vec<u8>, [u32; 2], [f64; 4]), GenerateError> {
        let config = &self.config;
        let decoded = images::decode(&photo.bytes)?;
        let [x0, y0, x1, y1] = rect;
        let dall_e_2 = config
            .image_model
            .to_ascii_lowercase()
            .starts_with("dall-e-2");
        let size = images::request_size(&config.image_model, &config.image_size, x1 - x0, y1 - y0);
        let (image_png, frame) = match size {
            RequestSize::Exact(size) => {
                let frame = images::padded_frame(rect, size);
                let max_side = images::MAX_UPLOAD_SIDE.min(size[0].max(size[1]));
                let png = images::padded_crop_png(&decoded, rect, frame, max_side, dall_e_2)?;
                (png, frame)
            }
            RequestSize::Auto => (images::crop_png(&decoded, rect)?, rect.map(f64::from)),
        };
        // DALL·E 2 redraws only where its mask is transparent, and wants a mask (or an image
        // with transparency): a clear mask lets it redraw the whole crop.
        let mask_png = if dall_e_2 {
            Some(images::transparent_mask_png(&image_png)?)
        } else {
            None
        };
        let url = self.images.url(&config.image_model, "images/edits");
        let body = self
            .transport
            .send(operation, &self.images, url, |client, url| {
                let png_part = |bytes: &Vec<u8>, name: &'static str| {
                    reqwest::multipart::Part::bytes(bytes.clone())
                        .file_name(name)
                        .mime_str("image/png")
                        .expect("image/png is a valid MIME type")
                };
                let mut form = reqwest::multipart::Form::new()
                    .text("model", config.image_model.clone())
                    .text("prompt", prompt.to_owned())
                    .text("size", size.field())
                    .text("n", "1")
                    .part("image", png_part(&image_png, "image.png"));
                if let Some(mask) = &mask_png {
                    form = form.part("mask", png_part(mask, "mask.png"));
                }
                // gpt-image models always answer in base64 and reject this field; DALL·E 2
                // answers with a URL unless asked.
                if config.image_model.starts_with("dall-e") {
                    form = form.text("response_format", "b64_json");
                }
                client.post(url).multipart(form)
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
        let (png, size) = images::to_png(bytes)?;
        Ok((png, size, frame))
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

impl OpenAiProvider {
    async fn analyze_photo(&self, photo: &ViewPhoto) -> Result<Generated<Analysis>, GenerateError> {
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
        let url = self.chat.url(&self.config.vision_model, "chat/completions");
        let body = self
            .transport
            .send("analyze", &self.chat, url, |client, url| {
                client.post(url).json(&request)
            })
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
            return Err(GenerateError::ModelRefused(refusal));
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

    async fn closeup_of(
        &self,
        photo: &ViewPhoto,
        analysis: &Analysis,
        shot: &CloseupShot,
    ) -> Result<Generated<Closeup>, GenerateError> {
        let inspected = images::inspect(&photo.bytes)?;
        let rect = images::expand(shot.bbox, self.config.closeup_margin, inspected.info)?;
        let prompt = prompts::closeup(photo, analysis, shot);
        let (png, size, _) = self.edit_image("closeup", photo, rect, &prompt).await?;
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

    async fn sketch_of(
        &self,
        photo: &ViewPhoto,
        analysis: &Analysis,
    ) -> Result<Generated<Sketch>, GenerateError> {
        let inspected = images::inspect(&photo.bytes)?;
        let frame = images::expand(analysis.product.bbox, SKETCH_MARGIN, inspected.info)?;
        let prompt = prompts::sketch(photo);
        let (raster_png, raster_size, image_frame) =
            self.edit_image("sketch", photo, frame, &prompt).await?;
        let overlay = overlay::build(
            analysis,
            &overlay::Raster {
                png: &raster_png,
                size: raster_size,
                frame,
                image_frame,
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

    // Each operation's error passes through the redaction once more: whatever the provider
    // echoed (an answer quoting the key, a URL with credentials) never reaches a log or a row.
    async fn analyze(&self, photo: &ViewPhoto) -> Result<Generated<Analysis>, GenerateError> {
        self.analyze_photo(photo)
            .await
            .map_err(|e| self.transport.redact_error(e))
    }

    async fn closeup(
        &self,
        photo: &ViewPhoto,
        analysis: &Analysis,
        shot: &CloseupShot,
    ) -> Result<Generated<Closeup>, GenerateError> {
        self.closeup_of(photo, analysis, shot)
            .await
            .map_err(|e| self.transport.redact_error(e))
    }

    /// Makes a technical flat with the image model and annotates it.
    ///
    /// The [`Sketch::svg`] is *not* vector line art: the flat itself is the model's raster,
    /// embedded as a data-URL `<image>` layer over the frame it was drawn for. The callouts
    /// (numbered, with leader lines to the analysis' detail regions), the dimension lines of
    /// its measurements and the title block are vector elements on top, in the input photo's
    /// pixel coordinates. [`Sketch::png`] is that SVG rendered, and [`Sketch::data`] holds the
    /// callouts and measurements.
    async fn sketch(
        &self,
        photo: &ViewPhoto,
        analysis: &Analysis,
    ) -> Result<Generated<Sketch>, GenerateError> {
        self.sketch_of(photo, analysis)
            .await
            .map_err(|e| self.transport.redact_error(e))
    }
}
