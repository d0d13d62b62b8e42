//! A real server for each test: the application on a fresh SQLite folder or PostgreSQL
//! database, bound to port 0 on loopback, called through reqwest; tokens signed like
//! Supabase's (HS256 with the project secret, RS256/ES256 with the keys of `fixtures/`).

#![allow(dead_code)]

use std::io::Cursor;
use std::path::PathBuf;
use std::time::Duration;

use image::{ImageFormat, Rgb, RgbImage};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use techpack_app::{App, AppResult, Settings};
use techpack_pipeline::CancellationToken;
use techpack_server::{ServeOptions, Server, ServerConfig};
use techpack_store::test_support::TestDatabase;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The HS256 secret of the test project.
pub const JWT_SECRET: &str = "test-project-jwt-secret-with-at-least-32-characters";
/// The URL-signing secret of the test server.
pub const URL_SECRET: &str = "test-url-signing-secret-at-least-32-bytes!!";

/// Which database a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// How the test server authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No key: the local user.
    Local,
    /// The HS256 secret and the JWKS of `fixtures/`.
    Tokens,
}

/// A running server and what it runs on.
pub struct TestServer {
    pub base: String,
    pub client: Client,
    pub shutdown: CancellationToken,
    pub handle: Option<JoinHandle<AppResult<()>>>,
    pub app: App,
    pub dir: tempfile::TempDir,
    pub postgres: Option<TestDatabase>,
}

/// What a test may change before the server starts.
pub struct Options {
    pub db: Db,
    pub auth: Auth,
    pub workers: usize,
    pub configure: Box<dyn FnOnce(&mut Settings) + Send>,
}

impl Options {
    pub fn new(db: Db, auth: Auth) -> Self {
        Self {
            db,
            auth,
            workers: 1,
            configure: Box::new(|_| {}),
        }
    }
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

impl TestServer {
    pub async fn start(db: Db, auth: Auth) -> Self {
        Self::start_with(Options::new(db, auth)).await
    }

    pub async fn start_with(options: Options) -> Self {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let postgres = match options.db {
            Db::Sqlite => None,
            Db::Postgres => Some(TestDatabase::create().await),
        };
        let mut settings = Settings {
            data_dir: dir.path().to_path_buf(),
            ..Settings::default()
        };
        if let Some(database) = &postgres {
            settings.database_url = Some(database.url.clone().into());
        }
        settings.server.listen = "127.0.0.1:0".into();
        settings.server.workers = options.workers;
        settings.server.url_signing_secret = Some(URL_SECRET.to_owned().into());
        settings.jobs.poll_secs = 0.05;
        settings.jobs.lease_secs = 5.0;
        settings.packs.closeups_per_view = 2;
        if options.auth == Auth::Tokens {
            settings.server.jwt_secret = Some(JWT_SECRET.to_owned().into());
            settings.server.jwks = Some(fixture("jwks.json").display().to_string());
        }
        (options.configure)(&mut settings);
        let config = ServerConfig::from_settings(&settings, &ServeOptions::default()).unwrap();
        let app = App::open(settings).await.unwrap();
        let server = Server::bind(app.clone(), config).await.unwrap();
        let base = format!("http://{}", server.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(server.serve(shutdown.clone()));
        Self {
            base,
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
            shutdown,
            handle: Some(handle),
            app,
            dir,
            postgres,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request as `token`'s bearer (none for `None`).
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token).send().await.unwrap()
    }

    pub async fn get_json(&self, path: &str, token: Option<&str>) -> Value {
        let response = self.get(path, token).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.request(Method::POST, path, token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Uploads `bytes` as a file of `product` and returns its row.
    pub async fn upload(
        &self,
        token: Option<&str>,
        product: &str,
        view: &str,
        bytes: Vec<u8>,
    ) -> Value {
        let response = self
            .request(
                Method::POST,
                &format!(
                    "/api/v1/files/upload?product={product}&file_type=base_view&view_type={view}"
                ),
                token,
            )
            .header("content-type", "image/png")
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "upload: {body}");
        body
    }

    /// Another server on the same database and blobs, with `workers` in-process workers: as
    /// far as this one can tell, another machine (its own pools, its own listener). Stops
    /// when `shutdown` is cancelled.
    pub async fn beside(
        &self,
        workers: usize,
        shutdown: CancellationToken,
    ) -> JoinHandle<AppResult<()>> {
        let mut settings = self.app.settings().clone();
        settings.server.workers = workers;
        let config = ServerConfig::from_settings(&settings, &ServeOptions::default()).unwrap();
        let app = App::open(settings).await.unwrap();
        let server = Server::bind(app, config).await.unwrap();
        tokio::spawn(server.serve(shutdown))
    }

    /// Stops the server and waits for it.
    pub async fn stop(&mut self) -> AppResult<()> {
        self.shutdown.cancel();
        match self.handle.take() {
            Some(handle) => handle.await.unwrap(),
            None => Ok(()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The JSON of an error response, checked to be one.
pub async fn error_of(response: Response, status: StatusCode) -> (String, String) {
    let actual = response.status();
    let request_id = response
        .headers()
        .get("x-request-id")
        .map(|value| value.to_str().unwrap().to_owned());
    let body: Value = response.json().await.unwrap_or(json!(null));
    assert_eq!(actual, status, "{body}");
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!code.is_empty(), "an error body with a code: {body}");
    assert_eq!(
        body["error"]["request_id"].as_str(),
        request_id.as_deref(),
        "the body names the request id of the response"
    );
    (code, message)
}

/// Claims like a Supabase access token's.
pub fn claims(user: Uuid) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "sub": user.to_string(),
        "role": "authenticated",
        "aud": "authenticated",
        "iat": now,
        "exp": now + 3600,
    })
}

/// An HS256 token of the test project.
pub fn hs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

/// A user's HS256 token.
pub fn user_token(user: Uuid) -> String {
    hs256(&claims(user))
}

/// A service-role token.
pub fn service_token() -> String {
    let now = chrono::Utc::now().timestamp();
    hs256(&json!({
        "role": "service_role",
        "aud": "authenticated",
        "sub": "service",
        "iat": now,
        "exp": now + 3600,
    }))
}

/// An RS256 token signed with the fixture key `test-rsa`.
pub fn rs256(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("test-rsa".into());
    let der = std::fs::read(fixture("rsa_private.der")).unwrap();
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_der(&der)).unwrap()
}

/// An ES256 token signed with the fixture key `test-ec`.
pub fn es256(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("test-ec".into());
    let der = std::fs::read(fixture("ec_private.der")).unwrap();
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&der)).unwrap()
}

/// A product photo: a garment-like shape on a light background, as PNG.
pub fn photo_png(seed: u8) -> Vec<u8> {
    let (width, height) = (160u32, 200u32);
    let mut image = RgbImage::from_pixel(width, height, Rgb([236, 236, 232]));
    for y in 30..180 {
        for x in 30..130 {
            let sleeve = (y < 80) && !(50..110).contains(&x);
            if (50..110).contains(&x) || sleeve {
                image.put_pixel(x, y, Rgb([20 + seed, 60, 140]));
            }
        }
    }
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, ImageFormat::Png).unwrap();
    bytes.into_inner()
}

/// The events of an SSE body: (event, id, data).
pub fn parse_events(text: &str) -> Vec<(String, Option<String>, Value)> {
    let mut events = Vec::new();
    for block in text.split("\n\n") {
        let mut event = "message".to_owned();
        let mut id = None;
        let mut data = String::new();
        for line in block.lines() {
            if let Some(value) = line.strip_prefix("event:") {
                event = value.trim().to_owned();
            } else if let Some(value) = line.strip_prefix("id:") {
                id = Some(value.trim().to_owned());
            } else if let Some(value) = line.strip_prefix("data:") {
                data.push_str(value.trim_start());
            }
        }
        if !data.is_empty() {
            events.push((event, id, serde_json::from_str(&data).unwrap()));
        }
    }
    events
}
