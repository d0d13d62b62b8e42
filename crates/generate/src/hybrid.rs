//! The `hybrid` provider: the analysis from an OpenAI-compatible vision model, the close-ups
//! and the sketch made locally from that analysis.
//!
//! Self-hosted servers (Ollama, vLLM) answer `/chat/completions` with a vision model but have
//! no `/images/edits`, so with the `openai` provider alone every close-up and sketch of a pack
//! fails. Here the model sees the photo and names its colours, materials, measurements and
//! details; the `local` provider then cuts the close-ups from the photo at the regions the
//! model found and draws the technical flat with the model's callouts, so a self-hosted model
//! gives a complete pack, and no image is ever generated (or paid for).

use async_trait::async_trait;

use crate::local::LocalProvider;
use crate::openai::OpenAiProvider;
use crate::{
    Analysis, Closeup, CloseupShot, GenerateError, Generated, Provider, Sketch, ViewPhoto,
};

/// Analysis by [`OpenAiProvider`], close-ups and sketches by [`LocalProvider`].
#[derive(Debug)]
pub struct HybridProvider {
    vision: OpenAiProvider,
    local: LocalProvider,
}

impl HybridProvider {
    /// A hybrid of `vision` (only its chat endpoint is ever called) and `local`.
    pub fn new(vision: OpenAiProvider, local: LocalProvider) -> Self {
        Self { vision, local }
    }

    /// The vision half.
    pub fn vision(&self) -> &OpenAiProvider {
        &self.vision
    }
}

#[async_trait]
impl Provider for HybridProvider {
    fn name(&self) -> &str {
        "hybrid"
    }

    fn fingerprint(&self) -> String {
        // The image model plays no part: only the vision half and the local drawing do.
        format!(
            "hybrid:{}|{}",
            self.vision.vision_fingerprint(),
            self.local.fingerprint()
        )
    }

    async fn analyze(&self, photo: &ViewPhoto) -> Result<Generated<Analysis>, GenerateError> {
        self.vision.analyze(photo).await
    }

    async fn closeup(
        &self,
        photo: &ViewPhoto,
        analysis: &Analysis,
        shot: &CloseupShot,
    ) -> Result<Generated<Closeup>, GenerateError> {
        self.local.closeup(photo, analysis, shot).await
    }

    async fn sketch(
        &self,
        photo: &ViewPhoto,
        analysis: &Analysis,
    ) -> Result<Generated<Sketch>, GenerateError> {
        self.local.sketch(photo, analysis).await
    }
}
