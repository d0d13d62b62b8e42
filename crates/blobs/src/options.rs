//! Limits and backend settings of a [`crate::BlobStore`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use crate::sniff;

/// Default largest blob: product photos and generated images stay well below it.
pub const DEFAULT_MAX_BLOB_SIZE: u64 = 50 * 1024 * 1024;

/// Default multipart part size. S3 refuses parts under 5 MiB (except the last).
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

/// How a [`crate::BlobStore`] limits what it stores and how it talks to its backend.
#[derive(Clone)]
pub struct BlobStoreOptions {
    /// Largest blob accepted, in bytes; larger uploads fail with
    /// [`crate::BlobError::TooLarge`] as soon as the limit is crossed.
    pub max_blob_size: u64,
    /// MIME types accepted, as sniffed from the content (see [`crate::mime`]).
    pub allowed_types: BTreeSet<String>,
    /// Size of each multipart part. Memory held by one upload is about
    /// `part_size * (upload_concurrency + 1)`.
    pub part_size: usize,
    /// Parts of one upload sent at the same time.
    pub upload_concurrency: usize,
    /// Extra `object_store` S3 settings applied after the `AWS_*` environment, keyed as
    /// `object_store` names them (`aws_endpoint`, `aws_allow_http`, `aws_access_key_id`,
    /// `aws_copy_if_not_exists`, …). Lets a config file or a test configure S3 without
    /// touching the process environment.
    pub s3_config: BTreeMap<String, String>,
    /// How often one S3 request is retried after a connection error, a timeout or a 5xx
    /// answer, with exponential backoff (100 ms doubling up to 15 s); 0 never retries.
    pub s3_max_retries: usize,
    /// How long one S3 request may keep retrying, from its first try.
    pub s3_retry_timeout: Duration,
}

impl fmt::Debug for BlobStoreOptions {
    /// Credentials among the S3 settings are shown as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s3_config: BTreeMap<&str, &str> = self
            .s3_config
            .iter()
            .map(|(key, value)| {
                let secret = key.contains("secret") || key.contains("token");
                (key.as_str(), if secret { "***" } else { value.as_str() })
            })
            .collect();
        f.debug_struct("BlobStoreOptions")
            .field("max_blob_size", &self.max_blob_size)
            .field("allowed_types", &self.allowed_types)
            .field("part_size", &self.part_size)
            .field("upload_concurrency", &self.upload_concurrency)
            .field("s3_config", &s3_config)
            .field("s3_max_retries", &self.s3_max_retries)
            .field("s3_retry_timeout", &self.s3_retry_timeout)
            .finish()
    }
}

impl Default for BlobStoreOptions {
    fn default() -> Self {
        Self {
            max_blob_size: DEFAULT_MAX_BLOB_SIZE,
            allowed_types: default_allowed_types(),
            part_size: DEFAULT_PART_SIZE,
            upload_concurrency: 4,
            s3_config: BTreeMap::new(),
            // object_store's own defaults: enough for an endpoint that restarts.
            s3_max_retries: 10,
            s3_retry_timeout: Duration::from_secs(180),
        }
    }
}

impl BlobStoreOptions {
    /// Sets the largest blob accepted, in bytes.
    pub fn with_max_blob_size(mut self, bytes: u64) -> Self {
        self.max_blob_size = bytes;
        self
    }

    /// Replaces the accepted MIME types.
    pub fn with_allowed_types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_types = types.into_iter().map(Into::into).collect();
        self
    }

    /// Sets how often, and for how long, one S3 request is retried.
    pub fn with_s3_retry(mut self, max_retries: usize, timeout: Duration) -> Self {
        self.s3_max_retries = max_retries;
        self.s3_retry_timeout = timeout;
        self
    }

    /// Adds one `object_store` S3 setting (see [`BlobStoreOptions::s3_config`]).
    pub fn with_s3_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.s3_config.insert(key.into(), value.into());
        self
    }
}

/// The types techpack stores: product photos and generated images, SVG sketches, JSON
/// analyses and PDF exports.
pub fn default_allowed_types() -> BTreeSet<String> {
    [
        sniff::PNG,
        sniff::JPEG,
        sniff::WEBP,
        sniff::GIF,
        sniff::SVG,
        sniff::JSON,
        sniff::PDF,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}
