//! The `openai` provider against a local fake of the OpenAI API (wiremock): the requests it
//! sends, and how it handles the answers the real service gives — success, rate limits, server
//! errors, hangs, malformed answers and auth failures — plus its concurrency limit.

use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use serde_json::{Value, json};
use techpack_generate::openai::{AuthHeader, OpenAiConfig, OpenAiProvider, RequestLimiter};
use techpack_generate::{
    Analysis, CloseupShot, GenerateError, HybridProvider, Provider, Refusal, ViewPhoto,
};
use techpack_model::{ErrorKind, ProductCategory};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const KEY: &str = "sk-test-key";
const WIDTH: u32 = 64;
const HEIGHT: u32 = 48;

/// A real PNG: a red "garment" on white.
fn photo_png() -> Vec<u8> {
    let mut img = RgbImage::from_pixel(WIDTH, HEIGHT, Rgb([255, 255, 255]));
    for y in 8..44 {
        for x in 12..52 {
            img.put_pixel(x, y, Rgb([200, 30, 40]));
        }
    }
    encode(&DynamicImage::ImageRgb8(img), ImageFormat::Png)
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// What an image model would return: black lines on white.
fn flat_png(size: u32) -> Vec<u8> {
    let mut img = RgbImage::from_pixel(size, size, Rgb([255, 255, 255]));
    for i in 4..size - 4 {
        img.put_pixel(i, 4, Rgb([0, 0, 0]));
        img.put_pixel(i, size - 5, Rgb([0, 0, 0]));
        img.put_pixel(4, i, Rgb([0, 0, 0]));
        img.put_pixel(size - 5, i, Rgb([0, 0, 0]));
    }
    encode(&DynamicImage::ImageRgb8(img), ImageFormat::Png)
}

fn photo() -> ViewPhoto {
    ViewPhoto {
        bytes: Arc::from(photo_png()),
        view: "front".into(),
        category: ProductCategory::Apparel,
        reference: Some("height=70cm".into()),
    }
}

fn config(server: &MockServer) -> OpenAiConfig {
    let mut config = OpenAiConfig::new(KEY);
    config.base_url = format!("{}/v1", server.uri());
    config.timeout = Duration::from_secs(5);
    config.max_retries = 2;
    config.backoff_base = Duration::from_millis(5);
    config.backoff_max = Duration::from_millis(20);
    config
}

fn provider(config: OpenAiConfig) -> OpenAiProvider {
    OpenAiProvider::new(config).unwrap()
}

/// A valid answer for [`photo`].
fn analysis_json() -> Value {
    json!({
        "schema_version": 2,
        "image": { "width": WIDTH, "height": HEIGHT },
        "view": "front",
        "category": "apparel",
        "product": { "bbox": [12, 8, 52, 44], "area_share": 0.47, "aspect_ratio": 1.11, "symmetry": 0.98 },
        "colors": [
            { "hex": "#c81e28", "share": 0.95, "name": "red" },
            { "hex": "#ffffff", "share": 0.05, "name": "white" }
        ],
        "materials": ["cotton jersey"],
        "measurements": {
            "scale": { "cm_per_px": 1.9444, "source": "reference", "basis": "height=70cm" },
            "points": [
                { "name": "overall_height", "px": 36.0, "cm": 70.0, "from": [32.0, 8.0], "to": [32.0, 44.0] },
                { "name": "chest_width", "px": 40.0, "cm": 77.8, "from": [12.0, 20.0], "to": [52.0, 20.0] }
            ]
        },
        "detail_regions": [
            { "name": "hem", "bbox": [12, 38, 52, 44], "score": 0.4 },
            { "name": "collar", "bbox": [24, 8, 40, 14], "score": 0.8 }
        ],
        "description": "A plain red tee.",
        "confidence": { "score": 0.82, "reasons": ["plain background", "scale from the given height"] }
    })
}

fn analysis() -> Analysis {
    serde_json::from_value(analysis_json()).unwrap()
}

fn chat_answer(content: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4.1-mini-2025-04-14",
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": content, "refusal": null },
            "finish_reason": "stop"
        }],
        "usage": { "prompt_tokens": 900, "completion_tokens": 300, "total_tokens": 1200 }
    }))
}

fn images_answer(png: &[u8]) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "created": 1_700_000_000,
        "data": [{ "b64_json": STANDARD.encode(png) }],
        "usage": { "input_tokens": 300, "output_tokens": 4000, "total_tokens": 4300 }
    }))
}

fn error_body(message: &str, kind: &str, code: &str) -> Value {
    json!({ "error": { "message": message, "type": kind, "param": null, "code": code } })
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap()
}

/// The text value of a multipart field, or the bytes of a file part.
fn multipart_field<'a>(request: &'a Request, name: &str) -> Option<&'a [u8]> {
    let content_type = request.headers.get("content-type")?.to_str().ok()?;
    let boundary = content_type.split("boundary=").nth(1)?.trim_matches('"');
    let delimiter = format!("--{boundary}");
    let body = &request.body;
    let needle = format!("name=\"{name}\"");
    let start = find(body, needle.as_bytes())?;
    let value_start = start + find(&body[start..], b"\r\n\r\n")? + 4;
    let value_end =
        value_start + find(&body[value_start..], format!("\r\n{delimiter}").as_bytes())?;
    Some(&body[value_start..value_end])
}

fn part_headers<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    let needle = format!("name=\"{name}\"");
    let start = find(&request.body, needle.as_bytes())?;
    let end = start + find(&request.body[start..], b"\r\n\r\n")?;
    std::str::from_utf8(&request.body[start..end]).ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn text_field(request: &Request, name: &str) -> Option<String> {
    multipart_field(request, name).map(|v| String::from_utf8_lossy(v).into_owned())
}

#[tokio::test]
async fn analyze_sends_the_photo_with_a_strict_schema_and_returns_the_checked_analysis() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(chat_answer(&analysis_json().to_string()))
        .expect(1)
        .mount(&server)
        .await;

    let photo = photo();
    let result = provider(config(&server)).analyze(&photo).await.unwrap();

    let body: Value = requests(&server).await[0].body_json().unwrap();
    assert_eq!(body["model"], "gpt-4.1-mini");
    let format = &body["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["strict"], true);
    assert_eq!(format["json_schema"]["schema"]["type"], "object");
    assert_eq!(
        format["json_schema"]["schema"]["additionalProperties"],
        false
    );
    assert_eq!(body["messages"][0]["role"], "system");
    let parts = body["messages"][1]["content"].as_array().unwrap();
    let text = parts.iter().find(|p| p["type"] == "text").unwrap()["text"]
        .as_str()
        .unwrap();
    assert!(
        text.contains("front") && text.contains("apparel") && text.contains("64x48"),
        "{text}"
    );
    assert!(
        text.contains("height=70cm"),
        "the reference reaches the model: {text}"
    );
    let url = parts.iter().find(|p| p["type"] == "image_url").unwrap()["image_url"]["url"]
        .as_str()
        .unwrap();
    let encoded = url
        .strip_prefix("data:image/png;base64,")
        .expect("a PNG data URL");
    assert_eq!(STANDARD.decode(encoded).unwrap(), &photo.bytes[..]);

    assert_eq!(
        result.model, "gpt-4.1-mini-2025-04-14",
        "the snapshot the service names"
    );
    assert!(result.prompt.contains(text), "the prompt sent is recorded");
    assert_eq!(result.credits, 1);
    assert_eq!(result.confidence, 0.82);
    let analysis = result.output;
    assert_eq!(analysis.product.bbox, [12, 8, 52, 44]);
    assert_eq!(analysis.detail_regions[0].name, "collar", "ranked by score");
    assert_eq!(analysis.materials, ["cotton jersey"]);
}

#[tokio::test]
async fn closeup_sends_the_cropped_region_as_a_multipart_edit() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/images/edits"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(images_answer(&flat_png(32)))
        .expect(1)
        .mount(&server)
        .await;
    let shot = CloseupShot {
        name: "collar".into(),
        bbox: [24, 8, 40, 14],
        description: "close-up of the collar of the front view of an apparel product".into(),
    };

    let result = provider(config(&server))
        .closeup(&photo(), &analysis(), &shot)
        .await
        .unwrap();

    let request = &requests(&server).await[0];
    let content_type = request
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        content_type.starts_with("multipart/form-data; boundary="),
        "{content_type}"
    );
    assert_eq!(text_field(request, "model").as_deref(), Some("gpt-image-1"));
    assert_eq!(text_field(request, "n").as_deref(), Some("1"));
    // The 32x22 crop is nearest in shape to 1536x1024, and padded to 3:2.
    assert_eq!(text_field(request, "size").as_deref(), Some("1536x1024"));
    let prompt = text_field(request, "prompt").unwrap();
    assert!(
        prompt.contains("collar") && prompt.contains("apparel"),
        "{prompt}"
    );
    assert!(
        text_field(request, "response_format").is_none(),
        "gpt-image-1 rejects response_format"
    );
    let headers = part_headers(request, "image").unwrap();
    assert!(
        headers.contains("filename=\"image.png\"") && headers.contains("image/png"),
        "{headers}"
    );
    let sent = image::load_from_memory_with_format(
        multipart_field(request, "image").unwrap(),
        ImageFormat::Png,
    )
    .expect("the image part is a PNG");
    // 16x6 region, each side grown by the 8 px minimum margin and clamped to the 64x48 photo
    // (32x22), then padded to the 3:2 of the size asked for.
    assert_eq!((sent.width(), sent.height()), (33, 22));
    assert_eq!(
        sent.to_rgb8().get_pixel(16, 11),
        &Rgb([200, 30, 40]),
        "the crop shows the product"
    );

    assert_eq!(result.output.shot, shot);
    assert_eq!(result.output.size, [32, 32]);
    assert_eq!(
        image::guess_format(&result.output.png).unwrap(),
        ImageFormat::Png
    );
    assert_eq!(result.model, "gpt-image-1");
    assert_eq!(result.prompt, prompt, "the prompt sent is recorded");
    assert_eq!(result.credits, 1);
}

#[tokio::test]
async fn closeup_returned_as_jpeg_is_converted_to_png() {
    let server = MockServer::start().await;
    let jpeg = encode(
        &DynamicImage::ImageRgb8(RgbImage::from_pixel(20, 10, Rgb([9, 9, 9]))),
        ImageFormat::Jpeg,
    );
    Mock::given(path("/v1/images/edits"))
        .respond_with(images_answer(&jpeg))
        .mount(&server)
        .await;
    let shot = analysis().plan_closeups(1).remove(0);
    let result = provider(config(&server))
        .closeup(&photo(), &analysis(), &shot)
        .await
        .unwrap();
    assert_eq!(
        image::guess_format(&result.output.png).unwrap(),
        ImageFormat::Png
    );
    assert_eq!(result.output.size, [20, 10]);
}

#[tokio::test]
async fn sketch_embeds_the_flat_under_vector_callouts_and_dimensions() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/images/edits"))
        .respond_with(images_answer(&flat_png(64)))
        .expect(1)
        .mount(&server)
        .await;
    let analysis = analysis();

    let result = provider(config(&server))
        .sketch(&photo(), &analysis)
        .await
        .unwrap();

    let request = &requests(&server).await[0];
    let prompt = text_field(request, "prompt").unwrap();
    assert!(
        prompt.contains("technical flat") && prompt.contains("white background"),
        "{prompt}"
    );
    assert_eq!(result.prompt, prompt);
    assert_eq!(result.model, "gpt-image-1");
    assert_eq!(result.credits, 1);

    let sketch = result.output;
    let tree =
        usvg::Tree::from_str(&sketch.svg, &usvg::Options::default()).expect("the SVG parses");
    assert!(tree.size().width() > 0.0);
    assert!(
        sketch.svg.contains("data:image/png;base64,"),
        "the flat is an embedded raster layer"
    );
    assert_eq!(
        sketch.svg.matches("<line").count(),
        4,
        "two dimension lines and two leader lines"
    );
    assert!(sketch.svg.contains(">collar<") && sketch.svg.contains("chest width 77.8 cm"));

    let callouts = sketch.data["callouts"].as_array().unwrap();
    assert_eq!(callouts.len(), analysis.detail_regions.len());
    assert_eq!(callouts[0]["number"], 1);
    assert_eq!(callouts[0]["label"], "hem");
    assert_eq!(
        callouts[0]["target"],
        json!([32.0, 41.0]),
        "the centre of the region"
    );
    let measurements = sketch.data["measurements"].as_array().unwrap();
    assert_eq!(measurements.len(), 2);
    assert_eq!(measurements[1]["name"], "chest_width");
    assert_eq!(sketch.data["raster"]["width"], 64);

    let png = image::load_from_memory_with_format(&sketch.png, ImageFormat::Png).unwrap();
    assert_eq!(png.width().max(png.height()), 1600, "rendered from the SVG");
    let dark = png.to_luma8().pixels().filter(|p| p.0[0] < 100).count();
    assert!(
        dark > 500,
        "the render shows the flat and its annotations ({dark} dark pixels)"
    );
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(error_body(
                    "Rate limit reached for requests",
                    "requests",
                    "rate_limit_exceeded",
                )),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/v1/chat/completions"))
        .respond_with(chat_answer(&analysis_json().to_string()))
        .expect(1)
        .mount(&server)
        .await;

    let started = Instant::now();
    let result = provider(config(&server)).analyze(&photo()).await;
    let elapsed = started.elapsed();

    assert!(result.is_ok(), "{result:?}");
    assert_eq!(requests(&server).await.len(), 2);
    assert!(
        elapsed >= Duration::from_secs(1),
        "Retry-After was honoured: {elapsed:?}"
    );
}

#[tokio::test]
async fn retry_after_ms_is_preferred_for_precision() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "30")
                .insert_header("retry-after-ms", "300"),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/v1/chat/completions"))
        .respond_with(chat_answer(&analysis_json().to_string()))
        .mount(&server)
        .await;

    let started = Instant::now();
    provider(config(&server)).analyze(&photo()).await.unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_limit_is_handed_to_the_caller() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3600"))
        .mount(&server)
        .await;

    let err = provider(config(&server))
        .analyze(&photo())
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            GenerateError::RetryLater { wait, ceiling, .. }
                if *wait == Duration::from_secs(3600) && *ceiling == Duration::from_secs(120)
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("try again after"), "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
    assert!(err.is_retryable());
    assert_eq!(
        requests(&server).await.len(),
        1,
        "no hour-long sleep inside the call"
    );
}

#[tokio::test]
async fn server_errors_are_retried_until_the_limit_then_reported() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/images/edits"))
        .respond_with(ResponseTemplate::new(500).set_body_json(error_body(
            "The server had an error while processing your request.",
            "server_error",
            "server_error",
        )))
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.max_retries = 3;

    let shot = analysis().plan_closeups(1).remove(0);
    let err = provider(config)
        .closeup(&photo(), &analysis(), &shot)
        .await
        .unwrap_err();

    assert_eq!(
        err,
        GenerateError::Upstream {
            status: Some(500),
            message: "The server had an error while processing your request.".into()
        }
    );
    assert_eq!(requests(&server).await.len(), 4, "max_retries + 1 attempts");
}

#[tokio::test]
async fn a_hanging_server_times_out() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/chat/completions"))
        .respond_with(chat_answer(&analysis_json().to_string()).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.timeout = Duration::from_millis(200);
    config.max_retries = 1;

    let started = Instant::now();
    let err = provider(config).analyze(&photo()).await.unwrap_err();

    assert_eq!(err, GenerateError::TimedOut(Duration::from_millis(200)));
    assert_eq!(requests(&server).await.len(), 2, "a timeout is retried");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn malformed_answers_are_invalid_and_not_retried() {
    let not_json = chat_answer("Sure! Here is the analysis: red tee.");
    let wrong_schema = chat_answer(r#"{"colour": "red"}"#);
    let mut outside = analysis_json();
    outside["product"]["bbox"] = json!([12, 8, 640, 44]);
    let inconsistent = chat_answer(&outside.to_string());
    let refusal = ResponseTemplate::new(200).set_body_json(json!({
        "model": "gpt-4.1-mini",
        "choices": [{ "index": 0, "finish_reason": "stop",
            "message": { "role": "assistant", "content": null, "refusal": "I can't help with that." } }]
    }));
    let html = ResponseTemplate::new(200).set_body_string("<html>gateway</html>");
    let cases = [
        (not_json, "does not follow the schema"),
        (wrong_schema, "does not follow the schema"),
        (inconsistent, "product.bbox"),
        (html, "not the expected JSON"),
    ];
    for (answer, expected) in cases {
        let server = MockServer::start().await;
        Mock::given(path("/v1/chat/completions"))
            .respond_with(answer)
            .mount(&server)
            .await;
        let err = provider(config(&server))
            .analyze(&photo())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, GenerateError::InvalidAnswer(m) if m.contains(expected)),
            "{err}"
        );
        assert!(!err.is_retryable());
        assert_eq!(requests(&server).await.len(), 1);
    }

    // A refusal is about the photo: the same photo is refused again.
    let server = MockServer::start().await;
    Mock::given(path("/v1/chat/completions"))
        .respond_with(refusal)
        .mount(&server)
        .await;
    let err = provider(config(&server))
        .analyze(&photo())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        GenerateError::ModelRefused("I can't help with that.".into())
    );
    assert_eq!(
        (err.kind(), err.code()),
        (ErrorKind::InvalidInput, "provider_refused")
    );
    assert!(!err.is_retryable());
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn an_image_answer_without_an_image_is_invalid() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/images/edits"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "created": 1, "data": [] })))
        .mount(&server)
        .await;
    let err = provider(config(&server))
        .sketch(&photo(), &analysis())
        .await
        .unwrap_err();
    assert!(matches!(err, GenerateError::InvalidAnswer(_)), "{err}");
}

#[tokio::test]
async fn unauthorized_is_reported_with_the_service_message_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(401).set_body_json(error_body(
            "Incorrect API key provided: sk-test-key.",
            "invalid_request_error",
            "invalid_api_key",
        )))
        .mount(&server)
        .await;

    let err = provider(config(&server))
        .analyze(&photo())
        .await
        .unwrap_err();

    assert_eq!(
        err,
        GenerateError::Refused {
            reason: Refusal::Unauthorized,
            status: 401,
            url: format!("POST {}/v1/chat/completions", server.uri()),
            message: "Incorrect API key provided: ***.".into()
        },
        "the key the service echoed is redacted"
    );
    assert_eq!(err.kind(), ErrorKind::Misconfigured);
    assert_eq!(err.code(), "provider_unauthorized");
    assert!(!err.to_string().contains(KEY), "{err}");
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn bad_input_is_refused_before_any_request() {
    let server = MockServer::start().await;
    let provider = provider(config(&server));
    let mut text = photo();
    text.bytes = Arc::from(&b"this is a text file named photo.jpg"[..]);
    assert!(matches!(
        provider.analyze(&text).await,
        Err(GenerateError::BadInput(_))
    ));
    let outside = CloseupShot {
        name: "cuff".into(),
        bbox: [60, 40, 90, 60],
        description: "cuff".into(),
    };
    assert!(matches!(
        provider.closeup(&photo(), &analysis(), &outside).await,
        Err(GenerateError::BadInput(_))
    ));
    assert!(requests(&server).await.is_empty());
}

/// Answers after a delay and records when each request arrived.
struct Recorder {
    arrivals: Arc<Mutex<Vec<Instant>>>,
    delay: Duration,
    body: String,
}

impl Respond for Recorder {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.arrivals.lock().unwrap().push(Instant::now());
        chat_answer(&self.body).set_delay(self.delay)
    }
}

#[tokio::test]
async fn no_more_requests_in_flight_than_the_limit() {
    let server = MockServer::start().await;
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let delay = Duration::from_millis(300);
    Mock::given(path("/v1/chat/completions"))
        .respond_with(Recorder {
            arrivals: arrivals.clone(),
            delay,
            body: analysis_json().to_string(),
        })
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.concurrency = 2;
    let provider = Arc::new(provider(config));

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let provider = provider.clone();
        tasks.spawn(async move { provider.analyze(&photo()).await });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap().unwrap();
    }

    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 6);
    // A request is in flight from its arrival until its delayed answer; a request that arrives
    // within one delay after another overlapped it.
    let window = delay.mul_f64(0.9);
    let max_in_flight = arrivals
        .iter()
        .map(|&t| {
            arrivals
                .iter()
                .filter(|&&s| s <= t && t.duration_since(s) < window)
                .count()
        })
        .max()
        .unwrap();
    assert!(
        max_in_flight <= 2,
        "{max_in_flight} requests in flight with a limit of 2"
    );
    assert_eq!(max_in_flight, 2, "the limit still lets two run at once");
}

#[test]
fn fingerprint_names_endpoint_models_size_and_prompt_version() {
    let mut config = OpenAiConfig::new(KEY);
    config.base_url = "http://127.0.0.1:8080/v1".into();
    let first = OpenAiProvider::new(config.clone()).unwrap().fingerprint();
    assert!(
        first.starts_with("openai:127.0.0.1:8080:gpt-4.1-mini:gpt-image-1:aspect:"),
        "{first}"
    );
    config.image_model = "dall-e-2".into();
    assert_ne!(OpenAiProvider::new(config).unwrap().fingerprint(), first);
}

/// Every class of error, under two retry settings: a transient one costs the step
/// `max_retries + 1` calls, a permanent one a single call, and nothing else retries either.
#[tokio::test]
async fn a_failing_step_makes_at_most_max_retries_plus_one_calls() {
    let cases: &[(u16, &str, bool)] = &[
        (400, "invalid_value", false),
        (401, "invalid_api_key", false),
        (403, "unsupported_country_region_territory", false),
        (404, "model_not_found", false),
        (408, "timeout", true),
        (409, "conflict", true),
        (413, "too_large", false),
        (422, "unprocessable", false),
        (429, "rate_limit_exceeded", true),
        (429, "insufficient_quota", false),
        (500, "server_error", true),
        (502, "bad_gateway", true),
        (503, "overloaded", true),
    ];
    for max_retries in [0, 2] {
        for &(status, code, transient) in cases {
            let server = MockServer::start().await;
            Mock::given(path("/v1/images/edits"))
                .respond_with(
                    ResponseTemplate::new(status).set_body_json(error_body("failed", "e", code)),
                )
                .mount(&server)
                .await;
            let mut config = config(&server);
            config.max_retries = max_retries;
            let err = provider(config)
                .sketch(&photo(), &analysis())
                .await
                .unwrap_err();
            let expected = if transient {
                max_retries as usize + 1
            } else {
                1
            };
            assert_eq!(
                requests(&server).await.len(),
                expected,
                "HTTP {status} {code} with max_retries {max_retries}: {err}"
            );
            assert_eq!(err.is_retryable(), transient, "HTTP {status} {code}: {err}");
        }
    }
}

#[tokio::test]
async fn timeouts_and_dropped_connections_are_retried_up_to_the_limit() {
    for max_retries in [0, 2] {
        let server = MockServer::start().await;
        Mock::given(path("/v1/chat/completions"))
            .respond_with(
                chat_answer(&analysis_json().to_string()).set_delay(Duration::from_secs(3)),
            )
            .mount(&server)
            .await;
        let mut config = config(&server);
        config.timeout = Duration::from_millis(100);
        config.max_retries = max_retries;
        let err = provider(config).analyze(&photo()).await.unwrap_err();
        assert_eq!(err, GenerateError::TimedOut(Duration::from_millis(100)));
        assert_eq!(requests(&server).await.len(), max_retries as usize + 1);

        // A server that accepts the connection and closes it without answering.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        let dropper = tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(socket);
            }
        });
        let mut config = OpenAiConfig::new(KEY);
        config.base_url = format!("http://{address}/v1");
        config.max_retries = max_retries;
        config.backoff_base = Duration::from_millis(5);
        config.backoff_max = Duration::from_millis(20);
        let err = provider(config).analyze(&photo()).await.unwrap_err();
        assert!(
            matches!(err, GenerateError::Upstream { status: None, .. }),
            "{err:?}"
        );
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            max_retries as usize + 1,
            "{err}"
        );
        dropper.abort();
    }
}

#[tokio::test]
async fn a_hanging_server_cannot_keep_a_step_past_its_deadline() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/images/edits"))
        .respond_with(images_answer(&flat_png(32)).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.timeout = Duration::from_millis(400);
    config.deadline = Duration::from_millis(600);
    config.max_retries = 5;

    let started = Instant::now();
    let err = provider(config)
        .sketch(&photo(), &analysis())
        .await
        .unwrap_err();
    assert!(
        matches!(err, GenerateError::DeadlineExceeded { calls: 2, .. }),
        "the second call gets what is left of the deadline: {err:?}"
    );
    assert_eq!(requests(&server).await.len(), 2);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_long_retry_after_is_waited_out_up_to_the_ceiling_and_never_past_the_deadline() {
    // Up to the ceiling, however long: 2 s is waited out when the ceiling allows 3 s.
    let server = MockServer::start().await;
    Mock::given(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "2"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/v1/chat/completions"))
        .respond_with(chat_answer(&analysis_json().to_string()))
        .mount(&server)
        .await;
    let mut settings = config(&server);
    settings.max_retry_after = Duration::from_secs(3);
    let started = Instant::now();
    provider(settings).analyze(&photo()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(requests(&server).await.len(), 2);

    // A wait the step's deadline cannot hold fails at once, saying when to come back.
    let server = MockServer::start().await;
    Mock::given(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "30"))
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.max_retry_after = Duration::from_secs(3600);
    config.deadline = Duration::from_secs(10);
    let started = Instant::now();
    let err = provider(config).analyze(&photo()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(err, GenerateError::RetryLater { wait, .. } if wait == Duration::from_secs(30)),
        "{err:?}"
    );
    assert!(err.to_string().contains("try again after"), "{err}");
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn a_key_echoed_by_the_upstream_is_redacted_from_every_error() {
    let echo = format!("invalid request from key {KEY} (sk-images-key)");
    for status in [400, 500] {
        let server = MockServer::start().await;
        Mock::given(path("/v1/images/edits"))
            .respond_with(ResponseTemplate::new(status).set_body_json(error_body(&echo, "e", "e")))
            .mount(&server)
            .await;
        let mut config = config(&server);
        config.images_base_url = Some(format!("{}/v1", server.uri()));
        config.images_api_key = Some("sk-images-key".to_owned().into());
        let err = provider(config)
            .sketch(&photo(), &analysis())
            .await
            .unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains(KEY) && !shown.contains("sk-images-key"),
            "HTTP {status}: {shown}"
        );
        assert!(
            shown.contains("invalid request from key *** (***)"),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn a_missing_images_api_is_not_retried_and_names_the_url_it_called() {
    // Ollama and vLLM have no /v1/images/edits.
    let server = MockServer::start().await;
    Mock::given(path("/v1/images/edits"))
        .respond_with(ResponseTemplate::new(404).set_body_string("404 page not found"))
        .mount(&server)
        .await;
    let err = provider(config(&server))
        .sketch(&photo(), &analysis())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            GenerateError::Refused {
                reason: Refusal::NotFound,
                status: 404,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&format!("POST {}/v1/images/edits", server.uri())),
        "{message}"
    );
    assert_eq!(err.kind(), ErrorKind::Misconfigured);
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn azure_deployments_get_their_urls_api_version_and_api_key_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/openai/deployments/vision-dep/chat/completions"))
        .and(query_param("api-version", "2025-04-01-preview"))
        .and(header("api-key", KEY))
        .respond_with(chat_answer(&analysis_json().to_string()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/openai/deployments/image-dep/images/edits"))
        .and(query_param("api-version", "2025-04-01-preview"))
        .and(header("api-key", KEY))
        .respond_with(images_answer(&flat_png(64)))
        .expect(1)
        .mount(&server)
        .await;
    let mut settings = config(&server);
    settings.base_url = server.uri();
    settings.api_version = Some("2025-04-01-preview".into());
    settings.auth = AuthHeader::ApiKey;
    settings.vision_model = "vision-dep".into();
    settings.image_model = "image-dep".into();
    let azure = provider(settings);
    azure.analyze(&photo()).await.unwrap();
    azure.sketch(&photo(), &analysis()).await.unwrap();
    for request in requests(&server).await {
        assert!(
            request.headers.get("authorization").is_none(),
            "the key goes in api-key only"
        );
    }

    // Azure's v1 API: the usual paths under /openai/v1, no api-version needed.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/openai/v1/chat/completions"))
        .and(header("api-key", KEY))
        .respond_with(chat_answer(&analysis_json().to_string()))
        .expect(1)
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.base_url = format!("{}/openai/v1", server.uri());
    config.auth = AuthHeader::ApiKey;
    provider(config).analyze(&photo()).await.unwrap();
    assert!(requests(&server).await[0].url.query().is_none());
}

#[tokio::test]
async fn images_can_go_to_a_second_server_with_its_own_key() {
    let vision = MockServer::start().await;
    let images = MockServer::start().await;
    Mock::given(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(chat_answer(&analysis_json().to_string()))
        .expect(1)
        .mount(&vision)
        .await;
    Mock::given(path("/v1/images/edits"))
        .and(header("authorization", "Bearer sk-images"))
        .respond_with(images_answer(&flat_png(32)))
        .expect(2)
        .mount(&images)
        .await;
    let mut config = config(&vision);
    config.images_base_url = Some(format!("{}/v1", images.uri()));
    config.images_api_key = Some("sk-images".to_owned().into());
    let provider = provider(config);
    let analysis = provider.analyze(&photo()).await.unwrap().output;
    let shot = analysis.plan_closeups(1).remove(0);
    provider.closeup(&photo(), &analysis, &shot).await.unwrap();
    provider.sketch(&photo(), &analysis).await.unwrap();
    assert_eq!(requests(&vision).await.len(), 1);
    assert_eq!(requests(&images).await.len(), 2);
}

/// A tall product: 20x140 px in a 60x160 photo.
fn tall_photo() -> ViewPhoto {
    let mut img = RgbImage::from_pixel(60, 160, Rgb([255, 255, 255]));
    for y in 10..150 {
        for x in 20..40 {
            img.put_pixel(x, y, Rgb([30, 60, 200]));
        }
    }
    ViewPhoto {
        bytes: Arc::from(encode(&DynamicImage::ImageRgb8(img), ImageFormat::Png)),
        view: "front".into(),
        category: ProductCategory::Bottles,
        reference: None,
    }
}

fn tall_analysis() -> Analysis {
    let mut json = analysis_json();
    json["image"] = json!({ "width": 60, "height": 160 });
    json["category"] = json!("bottles");
    json["product"] = json!({ "bbox": [20, 10, 40, 150], "area_share": 0.29, "aspect_ratio": 0.14, "symmetry": 0.99 });
    json["measurements"]["points"] = json!([
        { "name": "overall_height", "px": 140.0, "cm": 25.0, "from": [30.0, 10.0], "to": [30.0, 150.0] }
    ]);
    json["detail_regions"] = json!([
        { "name": "cap", "bbox": [22, 10, 38, 24], "score": 0.9 },
        { "name": "label", "bbox": [20, 60, 40, 100], "score": 0.7 },
        { "name": "base", "bbox": [20, 136, 40, 150], "score": 0.5 }
    ]);
    serde_json::from_value(json).unwrap()
}

/// The `<image>` element's x, y, width and height.
fn image_rect(svg: &str) -> [f64; 4] {
    let start = svg.find("<image ").unwrap();
    let element = &svg[start..start + svg[start..].find("/>").unwrap()];
    let attribute = |name: &str| -> f64 {
        let needle = format!(" {name}=\"");
        let from = element.find(&needle).unwrap() + needle.len();
        element[from..from + element[from..].find('"').unwrap()]
            .parse()
            .unwrap()
    };
    [
        attribute("x"),
        attribute("y"),
        attribute("width"),
        attribute("height"),
    ]
}

#[tokio::test]
async fn a_tall_products_sketch_is_drawn_tall_and_its_callouts_land_on_the_drawing() {
    let server = MockServer::start().await;
    let drawn = {
        let img = RgbImage::from_pixel(1024, 1536, Rgb([255, 255, 255]));
        encode(&DynamicImage::ImageRgb8(img), ImageFormat::Png)
    };
    Mock::given(path("/v1/images/edits"))
        .respond_with(images_answer(&drawn))
        .expect(1)
        .mount(&server)
        .await;
    let analysis = tall_analysis();
    let sketch = provider(config(&server))
        .sketch(&tall_photo(), &analysis)
        .await
        .unwrap()
        .output;

    let request = &requests(&server).await[0];
    assert_eq!(text_field(request, "size").as_deref(), Some("1024x1536"));
    let sent = image::load_from_memory(multipart_field(request, "image").unwrap()).unwrap();
    let sent_shape = f64::from(sent.width()) / f64::from(sent.height());
    assert!(
        (sent_shape - 1024.0 / 1536.0).abs() < 0.03,
        "the crop is padded to the shape asked for: {}x{}",
        sent.width(),
        sent.height()
    );

    // The drawing fills its element exactly (same shape: nothing letterboxed), so the photo's
    // coordinates are the drawing's, and every callout points inside it at its region.
    let [x, y, w, h] = image_rect(&sketch.svg);
    assert!((w / h - 1024.0 / 1536.0).abs() < 0.01, "{w}x{h}");
    let [px0, py0, px1, py1] = analysis.product.bbox.map(f64::from);
    assert!(x <= px0 && y <= py0 && x + w >= px1 && y + h >= py1);
    let callouts = sketch.data["callouts"].as_array().unwrap();
    assert_eq!(callouts.len(), 3);
    for (callout, region) in callouts.iter().zip(&analysis.detail_regions) {
        let target = callout["target"].as_array().unwrap();
        let (tx, ty) = (target[0].as_f64().unwrap(), target[1].as_f64().unwrap());
        let [rx0, ry0, rx1, ry1] = region.bbox.map(f64::from);
        assert!(
            (rx0..=rx1).contains(&tx) && (ry0..=ry1).contains(&ty),
            "{callout} on {region:?}"
        );
        assert!(
            (x..=x + w).contains(&tx) && (y..=y + h).contains(&ty),
            "{callout} inside the drawing {x},{y} {w}x{h}"
        );
    }
    assert_eq!(sketch.data["raster"]["height"], 1536);
}

#[tokio::test]
async fn dall_e_2_gets_a_square_rgba_image_and_a_clear_mask() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/images/edits"))
        .respond_with(images_answer(&flat_png(64)))
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.image_model = "dall-e-2".into();
    provider(config)
        .sketch(&tall_photo(), &tall_analysis())
        .await
        .unwrap();
    let request = &requests(&server).await[0];
    assert_eq!(text_field(request, "size").as_deref(), Some("1024x1024"));
    assert_eq!(
        text_field(request, "response_format").as_deref(),
        Some("b64_json")
    );
    let image = image::load_from_memory(multipart_field(request, "image").unwrap()).unwrap();
    assert_eq!(image.width(), image.height(), "square");
    assert!(image.color().has_alpha(), "RGBA");
    let mask = image::load_from_memory(multipart_field(request, "mask").unwrap())
        .unwrap()
        .to_rgba8();
    assert_eq!(mask.dimensions(), (image.width(), image.height()));
    assert!(
        mask.pixels().all(|p| p.0[3] == 0),
        "everything may be redrawn"
    );
}

#[tokio::test]
async fn hybrid_makes_a_whole_pack_from_a_server_without_an_images_api() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/chat/completions"))
        .respond_with(chat_answer(&analysis_json().to_string()))
        .mount(&server)
        .await;
    // Anything else (the images API) answers 404, as Ollama and vLLM do.
    let mut config = config(&server);
    config.api_key = String::new().into();
    config.vision_model = "llava".into();
    let hybrid = HybridProvider::new(
        provider(config),
        techpack_generate::local::LocalProvider::default(),
    );
    let photo = photo();
    let analysis = hybrid.analyze(&photo).await.unwrap();
    let shots = hybrid.plan_closeups(&analysis.output, 2);
    assert_eq!(shots.len(), 2);
    for shot in &shots {
        let closeup = hybrid
            .closeup(&photo, &analysis.output, shot)
            .await
            .unwrap();
        assert!(!closeup.output.png.is_empty());
    }
    let sketch = hybrid.sketch(&photo, &analysis.output).await.unwrap();
    assert!(sketch.output.svg.contains("<svg"));
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 1, "only the analysis goes to the server");
    assert!(
        sent[0].headers.get("authorization").is_none(),
        "no key, no header"
    );
    assert!(hybrid.fingerprint().starts_with("hybrid:openai-vision:"));
}

#[tokio::test]
async fn providers_sharing_a_limiter_share_its_limit() {
    let server = MockServer::start().await;
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let delay = Duration::from_millis(300);
    Mock::given(path("/v1/chat/completions"))
        .respond_with(Recorder {
            arrivals: arrivals.clone(),
            delay,
            body: analysis_json().to_string(),
        })
        .mount(&server)
        .await;
    let limiter = Arc::new(RequestLimiter::new(2, None));
    // Two providers, as two jobs of one process would use.
    let first = Arc::new(OpenAiProvider::with_limiter(config(&server), limiter.clone()).unwrap());
    let second = Arc::new(OpenAiProvider::with_limiter(config(&server), limiter).unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..6 {
        let provider = if index % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.spawn(async move { provider.analyze(&photo()).await });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap().unwrap();
    }
    let arrivals = arrivals.lock().unwrap().clone();
    let window = delay.mul_f64(0.9);
    let max_in_flight = arrivals
        .iter()
        .map(|&t| {
            arrivals
                .iter()
                .filter(|&&s| s <= t && t.duration_since(s) < window)
                .count()
        })
        .max()
        .unwrap();
    assert_eq!(max_in_flight, 2, "two in flight across both providers");
}
