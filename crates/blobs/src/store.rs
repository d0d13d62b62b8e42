//! [`BlobStore`]: content-addressed blobs over any `object_store` backend.

use std::error::Error as StdError;
use std::path::{Path as FsPath, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::Stream;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::RetryConfig;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::signer::{Method, Signer};
use object_store::{
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart,
};
use sha2::{Digest, Sha256};
use tokio::io::AsyncRead;
use url::Url;
use uuid::Uuid;

use crate::error::BlobError;
use crate::key::{digest_key, temp_key};
use crate::options::BlobStoreOptions;
use crate::sniff::{SNIFF_LEN, sniff};

/// Read size used when an upload comes from an [`AsyncRead`].
const READ_CHUNK: usize = 64 * 1024;

/// Which kind of backend a [`BlobStore`] talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// A directory on the local disk.
    Local {
        /// The directory holding the blobs.
        root: PathBuf,
    },
    /// Process memory; gone when the process ends (tests).
    Memory,
    /// An S3 bucket (AWS or any S3-compatible server).
    S3 {
        /// The bucket.
        bucket: String,
        /// Key prefix inside the bucket, empty for the bucket root.
        prefix: String,
    },
    /// A store handed to [`BlobStore::with_store`].
    Custom,
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Local { .. } => "file",
            Backend::Memory => "memory",
            Backend::S3 { .. } => "s3",
            Backend::Custom => "custom",
        }
    }
}

/// What [`BlobStore::put_stream`] stored: everything a `tech_files` row records about its blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// The key (`{owner}/{sha[0..2]}/{sha}`); goes into `tech_files.file_url`.
    pub key: String,
    /// SHA-256 of the content, lower-case hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// MIME type sniffed from the content.
    pub mime: String,
    /// True when the same content was already stored under this key, so no new object was made.
    /// Exact on `file://`, `memory://` and AWS S3; on S3-compatible servers whose conditional
    /// writes are not atomic, two racing uploads may both report `false` (still one object).
    pub deduplicated: bool,
}

/// A stored object as listed or looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    /// The key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// When the object was last written. A re-upload of existing content refreshes it, so an
    /// orphan sweep "older than a grace period" never takes a blob that was just uploaded again.
    pub last_modified: DateTime<Utc>,
    /// The backend's entity tag, when it has one.
    pub e_tag: Option<String>,
}

impl BlobMeta {
    fn from_object(meta: ObjectMeta) -> Self {
        Self {
            key: meta.location.to_string(),
            size: meta.size,
            last_modified: meta.last_modified,
            e_tag: meta.e_tag,
        }
    }
}

/// Size and hash of stored bytes, as recomputed by [`BlobStore::verify_blob`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobDigest {
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
}

/// A blob being read: its metadata and a stream of its bytes.
pub struct BlobDownload {
    /// Size, modification time and tag of the blob.
    pub meta: BlobMeta,
    /// The content, in backend-sized chunks.
    pub stream: BoxStream<'static, Result<Bytes, BlobError>>,
}

impl std::fmt::Debug for BlobDownload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobDownload")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// Content-addressed blob storage over an [`ObjectStore`]; cheap to clone and share.
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    backend: Backend,
    /// The unprefixed S3 client and the prefix, kept to presign URLs of full object paths.
    s3: Option<(Arc<AmazonS3>, String)>,
    options: BlobStoreOptions,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("backend", &self.inner.backend)
            .field("max_blob_size", &self.inner.options.max_blob_size)
            .finish_non_exhaustive()
    }
}

impl BlobStore {
    /// Opens the store a URL names:
    ///
    /// - `file:///abs/dir` or a plain path (relative to the working directory): blobs in that
    ///   directory, created if missing;
    /// - `memory://`: blobs in process memory;
    /// - `s3://bucket[/prefix]`: an S3 bucket, configured from the standard `AWS_*`
    ///   environment variables (credentials, `AWS_REGION`, `AWS_ENDPOINT_URL`,
    ///   `AWS_ALLOW_HTTP`, …) and then [`BlobStoreOptions::s3_config`].
    pub fn from_url(url: &str, options: BlobStoreOptions) -> Result<Self, BlobError> {
        let url = url.trim();
        let Some((scheme, _)) = url.split_once("://") else {
            return Self::local(FsPath::new(url), options);
        };
        let invalid = |reason: String| BlobError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                let parsed = Url::parse(url).map_err(|e| invalid(e.to_string()))?;
                let dir = parsed.to_file_path().map_err(|()| {
                    invalid(
                        "a file URL needs an absolute path, e.g. file:///var/lib/techpack/blobs"
                            .into(),
                    )
                })?;
                Self::local(&dir, options)
            }
            "memory" => Ok(Self::with_store(
                Arc::new(InMemory::new()),
                Backend::Memory,
                options,
            )),
            "s3" | "s3a" => {
                let parsed = Url::parse(url).map_err(|e| invalid(e.to_string()))?;
                let bucket = parsed
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| invalid("missing bucket, expected s3://bucket[/prefix]".into()))?
                    .to_owned();
                let prefix = parsed.path().trim_matches('/').to_owned();
                Self::s3(bucket, prefix, options)
            }
            _ => Err(BlobError::UnsupportedScheme {
                scheme: scheme.to_owned(),
            }),
        }
    }

    /// Wraps an already-built object store (GCS, Azure, a throttled test store…).
    pub fn with_store(
        store: Arc<dyn ObjectStore>,
        backend: Backend,
        options: BlobStoreOptions,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                backend,
                s3: None,
                options,
            }),
        }
    }

    fn local(dir: &FsPath, options: BlobStoreOptions) -> Result<Self, BlobError> {
        let io_err = |source| BlobError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let root = std::path::absolute(dir).map_err(io_err)?;
        std::fs::create_dir_all(&root).map_err(io_err)?;
        let store = LocalFileSystem::new_with_prefix(&root).map_err(BlobError::Backend)?;
        Ok(Self::with_store(
            Arc::new(store),
            Backend::Local { root },
            options,
        ))
    }

    fn s3(bucket: String, prefix: String, options: BlobStoreOptions) -> Result<Self, BlobError> {
        let retry = RetryConfig {
            max_retries: options.s3_max_retries,
            retry_timeout: options.s3_retry_timeout,
            ..RetryConfig::default()
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            .with_retry(retry);
        for (key, value) in &options.s3_config {
            let key: AmazonS3ConfigKey = key.parse().map_err(BlobError::Backend)?;
            builder = builder.with_config(key, value);
        }
        let client = Arc::new(builder.build().map_err(BlobError::Backend)?);
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            client.clone()
        } else {
            Arc::new(PrefixStore::new(client.clone(), prefix.as_str()))
        };
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                backend: Backend::S3 {
                    bucket,
                    prefix: prefix.clone(),
                },
                s3: Some((client, prefix)),
                options,
            }),
        })
    }

    /// The backend in use.
    pub fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    /// The options in force.
    pub fn options(&self) -> &BlobStoreOptions {
        &self.inner.options
    }

    /// The underlying object store, for operations this type does not wrap.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    /// Stores `bytes` for `owner`; see [`BlobStore::put_stream`].
    pub async fn put_bytes(
        &self,
        owner: Uuid,
        bytes: impl Into<Bytes>,
    ) -> Result<StoredBlob, BlobError> {
        let bytes = bytes.into();
        let limit = self.inner.options.max_blob_size;
        if bytes.len() as u64 > limit {
            return Err(BlobError::TooLarge { limit });
        }
        self.put_stream(
            owner,
            futures::stream::iter([Ok::<_, std::convert::Infallible>(bytes)]),
        )
        .await
    }

    /// Stores what `reader` yields for `owner`; see [`BlobStore::put_stream`].
    pub async fn put_reader<R>(&self, owner: Uuid, reader: R) -> Result<StoredBlob, BlobError>
    where
        R: AsyncRead + Send,
    {
        self.put_stream(
            owner,
            tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK),
        )
        .await
    }

    /// Stores a stream of bytes for `owner` under its content address and returns what was
    /// stored.
    ///
    /// The input is never held whole: the first bytes are sniffed for the type (refused at once
    /// if not accepted, before anything is written), then the content is hashed and counted as
    /// it flows into a multipart upload at a temporary key, which is aborted the moment the
    /// size limit is crossed. Once the hash is known the object moves to
    /// `{owner}/{sha[0..2]}/{sha}`; if that key already exists the content is stored once.
    /// Content that fits in one part skips the temporary key and the multipart upload.
    pub async fn put_stream<S, E>(&self, owner: Uuid, stream: S) -> Result<StoredBlob, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn StdError + Send + Sync + 'static>>,
    {
        let opts = &self.inner.options;
        let limit = opts.max_blob_size;
        let mut stream = pin!(stream.map_err(|e| BlobError::Source(e.into())));
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;

        // Gather at least the sniff window, then up to one part: small blobs (nearly all
        // of ours) go up in one request.
        let mut head: Vec<Bytes> = Vec::new();
        let mut head_len = 0usize;
        let mut ended = false;
        let mut mime: Option<String> = None;
        while head_len < opts.part_size.max(SNIFF_LEN) {
            let Some(chunk) = stream.next().await.transpose()? else {
                ended = true;
                break;
            };
            size += chunk.len() as u64;
            if size > limit {
                return Err(BlobError::TooLarge { limit });
            }
            hasher.update(&chunk);
            head_len += chunk.len();
            head.push(chunk);
            if mime.is_none() && head_len >= SNIFF_LEN {
                mime = Some(self.check_type(&head, false)?);
            }
        }
        let mime = match mime {
            Some(m) => m,
            None => self.check_type(&head, ended)?,
        };

        if ended {
            let sha256 = hex::encode(hasher.finalize());
            let key = digest_key(owner, &sha256);
            let deduplicated = self.put_small(&key, PutPayload::from_iter(head)).await?;
            return Ok(StoredBlob {
                key,
                sha256,
                size,
                mime,
                deduplicated,
            });
        }

        let tmp_key = temp_key(owner);
        let tmp = Path::from(tmp_key.as_str());
        let upload = self
            .inner
            .store
            .put_multipart(&tmp)
            .await
            .map_err(BlobError::Backend)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, opts.part_size);
        let streamed = async {
            for chunk in head {
                writer.put(chunk);
            }
            while let Some(chunk) = stream.next().await.transpose()? {
                size += chunk.len() as u64;
                if size > limit {
                    return Err(BlobError::TooLarge { limit });
                }
                hasher.update(&chunk);
                // Back-pressure: never more than `upload_concurrency` parts in flight.
                writer
                    .wait_for_capacity(opts.upload_concurrency)
                    .await
                    .map_err(BlobError::Backend)?;
                writer.put(chunk);
            }
            Ok(())
        }
        .await;
        if let Err(err) = streamed {
            if let Err(abort_err) = writer.abort().await {
                tracing::warn!(key = %tmp_key, error = %abort_err, "aborting a refused upload failed; cleanup will sweep the temp key");
            }
            return Err(err);
        }
        writer.finish().await.map_err(BlobError::Backend)?;

        let sha256 = hex::encode(hasher.finalize());
        let key = digest_key(owner, &sha256);
        let moved = self.move_into_place(&tmp, &key).await;
        if let Err(err) = self.inner.store.delete(&tmp).await {
            tracing::warn!(key = %tmp_key, error = %err, "deleting a temp upload failed; cleanup will sweep it");
        }
        let deduplicated = moved?;
        Ok(StoredBlob {
            key,
            sha256,
            size,
            mime,
            deduplicated,
        })
    }

    fn check_type(&self, head: &[Bytes], complete: bool) -> Result<String, BlobError> {
        let mut window = BytesMut::with_capacity(SNIFF_LEN);
        for chunk in head {
            let take = (SNIFF_LEN - window.len()).min(chunk.len());
            window.extend_from_slice(&chunk[..take]);
            if window.len() == SNIFF_LEN {
                break;
            }
        }
        // A window shorter than the content is a prefix even when the head is complete.
        let complete = complete && head.iter().map(Bytes::len).sum::<usize>() <= SNIFF_LEN;
        let detected = sniff(&window, complete);
        let allowed = &self.inner.options.allowed_types;
        if allowed.contains(&detected) {
            Ok(detected)
        } else {
            Err(BlobError::UnsupportedType {
                detected,
                allowed: allowed.iter().cloned().collect(),
            })
        }
    }

    /// Writes a small blob straight to its final key. Returns whether it already existed.
    async fn put_small(&self, key: &str, payload: PutPayload) -> Result<bool, BlobError> {
        let path = Path::from(key);
        let store = &self.inner.store;
        let create = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let existed = match store.put_opts(&path, payload.clone(), create).await {
            Ok(_) => return Ok(false),
            Err(object_store::Error::AlreadyExists { .. }) => true,
            Err(
                object_store::Error::NotImplemented { .. }
                | object_store::Error::NotSupported { .. },
            ) => self.exists(key).await?,
            Err(e) => return Err(BlobError::Backend(e)),
        };
        // Rewriting identical bytes refreshes last_modified, so an orphan sweep by age spares
        // content that was just uploaded again (its row is about to be written).
        store
            .put(&path, payload)
            .await
            .map_err(BlobError::Backend)?;
        Ok(existed)
    }

    /// Copies a finished temp upload to its content key. Returns whether the key already held
    /// the content.
    async fn move_into_place(&self, tmp: &Path, key: &str) -> Result<bool, BlobError> {
        let path = Path::from(key);
        let store = &self.inner.store;
        let existed = match store.copy_if_not_exists(tmp, &path).await {
            Ok(()) => return Ok(false),
            Err(object_store::Error::AlreadyExists { .. }) => true,
            Err(
                object_store::Error::NotImplemented { .. }
                | object_store::Error::NotSupported { .. },
            ) => self.exists(key).await?,
            Err(e) => return Err(BlobError::Backend(e)),
        };
        // Same bytes under the same key, so overwriting is harmless; it refreshes
        // last_modified (see `put_small`).
        store.copy(tmp, &path).await.map_err(BlobError::Backend)?;
        Ok(existed)
    }

    /// Reads a blob as a stream of chunks.
    pub async fn get_stream(&self, key: &str) -> Result<BlobDownload, BlobError> {
        self.download(key, object_store::GetOptions::default())
            .await
    }

    /// Reads the bytes `range` (end exclusive) of a blob as a stream of chunks, for HTTP
    /// range requests. A range past the end is refused by the backend.
    pub async fn get_range_stream(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<BlobDownload, BlobError> {
        let options = object_store::GetOptions {
            range: Some(object_store::GetRange::Bounded(range)),
            ..Default::default()
        };
        self.download(key, options).await
    }

    async fn download(
        &self,
        key: &str,
        options: object_store::GetOptions,
    ) -> Result<BlobDownload, BlobError> {
        let path = parse_key_path(key)?;
        let result = self
            .inner
            .store
            .get_opts(&path, options)
            .await
            .map_err(|e| BlobError::from_store(key, e))?;
        let meta = BlobMeta::from_object(result.meta.clone());
        let owned_key = key.to_owned();
        let stream = result
            .into_stream()
            .map_err(move |e| BlobError::from_store(&owned_key, e))
            .boxed();
        Ok(BlobDownload { meta, stream })
    }

    /// Reads a whole blob into memory; for blobs known to be small (the size limit bounds it).
    pub async fn get_bytes(&self, key: &str) -> Result<Bytes, BlobError> {
        let path = parse_key_path(key)?;
        let result = self
            .inner
            .store
            .get(&path)
            .await
            .map_err(|e| BlobError::from_store(key, e))?;
        result
            .bytes()
            .await
            .map_err(|e| BlobError::from_store(key, e))
    }

    /// Size, modification time and tag of a blob.
    pub async fn head(&self, key: &str) -> Result<BlobMeta, BlobError> {
        let path = parse_key_path(key)?;
        let meta = self
            .inner
            .store
            .head(&path)
            .await
            .map_err(|e| BlobError::from_store(key, e))?;
        Ok(BlobMeta::from_object(meta))
    }

    /// Whether a blob is stored under `key`.
    pub async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        match self.head(key).await {
            Ok(_) => Ok(true),
            Err(BlobError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes a blob. Deleting a missing key succeeds, so cleanup can be retried.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let path = parse_key_path(key)?;
        match self.inner.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(BlobError::Backend(e)),
        }
    }

    /// Streams every object whose key is under `prefix` (whole path segments: `"a/b"` and
    /// `"a/b/"` both mean "inside a/b"; `""` means everything), temp uploads included.
    pub fn list(
        &self,
        prefix: &str,
    ) -> Result<BoxStream<'static, Result<BlobMeta, BlobError>>, BlobError> {
        let trimmed = prefix.trim_end_matches('/');
        let path = if trimmed.is_empty() {
            None
        } else {
            Some(parse_key_path(trimmed)?)
        };
        Ok(self
            .inner
            .store
            .list(path.as_ref())
            .map_ok(BlobMeta::from_object)
            .map_err(BlobError::Backend)
            .boxed())
    }

    /// [`BlobStore::list`] collected into a vector, sorted by key.
    pub async fn list_all(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError> {
        let mut all: Vec<BlobMeta> = self.list(prefix)?.try_collect().await?;
        all.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(all)
    }

    /// Re-reads a stored blob and recomputes its size and SHA-256, streaming; fsck compares
    /// them with what the row recorded (and, for content keys, with the key itself).
    pub async fn verify_blob(&self, key: &str) -> Result<BlobDigest, BlobError> {
        let mut download = self.get_stream(key).await?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = download.stream.try_next().await? {
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok(BlobDigest {
            size,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    /// A time-limited URL that fetches the blob straight from S3 (SigV4 presigning), for
    /// clients that may download from the bucket directly.
    pub async fn presigned_get_url(&self, key: &str, ttl: Duration) -> Result<Url, BlobError> {
        let Some((client, prefix)) = &self.inner.s3 else {
            return Err(BlobError::PresignUnsupported {
                backend: self.inner.backend.name(),
            });
        };
        parse_key_path(key)?;
        let full = if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}/{key}")
        };
        let path = Path::parse(&full).map_err(|e| BlobError::InvalidKey {
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
        client
            .signed_url(Method::GET, &path, ttl)
            .await
            .map_err(BlobError::Backend)
    }
}

/// Turns a key into an object path, refusing what `object_store` would silently rewrite.
fn parse_key_path(key: &str) -> Result<Path, BlobError> {
    let invalid = |reason: String| BlobError::InvalidKey {
        key: key.to_owned(),
        reason,
    };
    if key.is_empty() {
        return Err(invalid("empty key".into()));
    }
    let path = Path::parse(key).map_err(|e| invalid(e.to_string()))?;
    if path.as_ref() != key {
        return Err(invalid(
            "not in canonical form (leading, trailing or doubled '/')".into(),
        ));
    }
    Ok(path)
}
