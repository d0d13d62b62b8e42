//! A deterministic provider for tests and the benchmark: tiny PNGs and SVGs, a fixed analysis,
//! a call counter per step, injectable failures and hangs, an optional fixed latency.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::io::Cursor;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use techpack_generate::{
    ANALYSIS_SCHEMA_VERSION, Analysis, Closeup, CloseupShot, Confidence, DetailRegion,
    GenerateError, Generated, ImageInfo, MeasurementScale, Measurements, ProductRegion, Provider,
    ScaleSource, Sketch, ViewPhoto,
};

/// Counts calls per step name (`front:analysis`, `front:closeup:collar`, `front:sketch`).
#[derive(Default)]
pub struct TestProvider {
    pub latency: Duration,
    calls: Mutex<HashMap<String, usize>>,
    failing: Mutex<HashSet<String>>,
    errors: Mutex<HashMap<String, GenerateError>>,
    hanging: Mutex<HashSet<String>>,
    pub fingerprint: String,
}

impl TestProvider {
    pub fn new() -> Self {
        Self {
            fingerprint: "test/1".into(),
            ..Self::default()
        }
    }

    pub fn with_latency(latency: Duration) -> Self {
        Self {
            latency,
            ..Self::new()
        }
    }

    /// Makes a step fail (a retryable upstream error) on every call until `heal`.
    pub fn fail(&self, step: &str) {
        self.failing.lock().unwrap().insert(step.to_owned());
    }

    /// Makes a step fail with `error` on every call until `heal`.
    pub fn fail_with(&self, step: &str, error: GenerateError) {
        self.errors.lock().unwrap().insert(step.to_owned(), error);
        self.fail(step);
    }

    /// Makes a step never answer (to simulate an interruption).
    pub fn hang(&self, step: &str) {
        self.hanging.lock().unwrap().insert(step.to_owned());
    }

    pub fn heal(&self) {
        self.failing.lock().unwrap().clear();
        self.errors.lock().unwrap().clear();
        self.hanging.lock().unwrap().clear();
    }

    pub fn calls(&self, step: &str) -> usize {
        self.calls.lock().unwrap().get(step).copied().unwrap_or(0)
    }

    pub fn total_calls(&self) -> usize {
        self.calls.lock().unwrap().values().sum()
    }

    pub fn reset_calls(&self) {
        self.calls.lock().unwrap().clear();
    }

    async fn call(&self, step: String) -> Result<(), GenerateError> {
        *self.calls.lock().unwrap().entry(step.clone()).or_default() += 1;
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        if self.hanging.lock().unwrap().contains(&step) {
            std::future::pending::<()>().await;
        }
        if let Some(error) = self.errors.lock().unwrap().get(&step) {
            return Err(error.clone());
        }
        if self.failing.lock().unwrap().contains(&step) {
            return Err(GenerateError::Upstream {
                status: Some(503),
                message: format!("injected failure of {step}"),
            });
        }
        Ok(())
    }
}

/// The analysis the test provider returns for a view.
pub fn test_analysis(photo: &ViewPhoto) -> Analysis {
    let names = ["collar", "cuff", "hem", "pocket", "placket", "logo"];
    Analysis {
        schema_version: ANALYSIS_SCHEMA_VERSION,
        image: ImageInfo {
            width: 64,
            height: 64,
        },
        view: photo.view.clone(),
        category: photo.category,
        product: ProductRegion {
            bbox: [4, 4, 60, 60],
            area_share: 0.7,
            aspect_ratio: 1.0,
            symmetry: 0.9,
        },
        colors: vec![],
        materials: vec![],
        measurements: Measurements {
            scale: MeasurementScale {
                cm_per_px: 1.0,
                source: ScaleSource::CategoryDefault,
                basis: "test".into(),
            },
            points: vec![],
        },
        detail_regions: names
            .iter()
            .enumerate()
            .map(|(i, name)| DetailRegion {
                name: (*name).into(),
                bbox: [i as u32 * 8, 0, i as u32 * 8 + 8, 8],
                score: 1.0 - i as f64 / 10.0,
            })
            .collect(),
        description: Some(format!("photo of {} bytes", photo.bytes.len())),
        confidence: Confidence {
            score: 0.8,
            reasons: vec!["test".into()],
        },
        source: None,
        category_detection: None,
        landmarks: vec![],
        features: vec![],
    }
}

/// A small PNG whose pixels depend on `seed`.
pub fn png(seed: u8) -> Vec<u8> {
    let image =
        image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([seed, x as u8 * 16, y as u8 * 16]));
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn seed(text: &str) -> u8 {
    text.bytes()
        .fold(7u8, |acc, b| acc.wrapping_mul(31).wrapping_add(b))
}

fn generated<T>(output: T) -> Generated<T> {
    Generated {
        output,
        model: "test-model/1".into(),
        prompt: "test".into(),
        confidence: 0.8,
        credits: 1,
    }
}

#[async_trait]
impl Provider for TestProvider {
    fn name(&self) -> &str {
        "test"
    }

    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    async fn analyze(&self, photo: &ViewPhoto) -> Result<Generated<Analysis>, GenerateError> {
        self.call(format!("{}:analysis", photo.view)).await?;
        Ok(generated(test_analysis(photo)))
    }

    async fn closeup(
        &self,
        photo: &ViewPhoto,
        _: &Analysis,
        shot: &CloseupShot,
    ) -> Result<Generated<Closeup>, GenerateError> {
        self.call(format!("{}:closeup:{}", photo.view, shot.name))
            .await?;
        let png = png(seed(&format!(
            "{}{}{}",
            photo.view,
            shot.name,
            photo.bytes.len()
        )));
        Ok(generated(Closeup {
            shot: shot.clone(),
            png,
            size: [8, 8],
        }))
    }

    async fn sketch(
        &self,
        photo: &ViewPhoto,
        _: &Analysis,
    ) -> Result<Generated<Sketch>, GenerateError> {
        self.call(format!("{}:sketch", photo.view)).await?;
        let svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"64\" height=\"64\"><text x=\"4\" y=\"20\">{} {}</text></svg>",
            photo.view,
            photo.bytes.len()
        );
        let data = serde_json::json!({
            "callouts": [{"number": 1, "label": "collar", "target": [10, 10], "anchor": [30, 5]}],
            "measurements": [{"name": "overall_width", "cm": 50.0}],
        });
        Ok(generated(Sketch {
            svg,
            png: png(seed(&photo.view)),
            data,
        }))
    }
}
