//! The one retry policy of the `openai` provider, and the HTTP client it runs on.
//!
//! Every call of the provider goes through [`Transport::send`], and nothing above it retries a
//! provider error: the pipeline calls the provider once per step and the job queue re-runs a
//! job only for failures that may pass. So a step makes at most `max_retries + 1` HTTP calls.
//!
//! - **Transient** (retried): 408, 409, 429 (but not `insufficient_quota`), 5xx, timeouts and
//!   dropped or refused connections. The wait is the server's `retry-after-ms` /
//!   `Retry-After` when it sends one, however long, up to [`OpenAiConfig::max_retry_after`]
//!   (beyond it the step fails at once saying when to retry); else exponential backoff with
//!   full jitter. All of it within one deadline per step ([`OpenAiConfig::deadline`]).
//! - **Permanent** (never retried): every other 4xx, answered as
//!   [`GenerateError::Refused`] with the URL that was called.
//!
//! The configured keys never leave this module: every message is redacted before it becomes
//! an error, and so before it is logged or stored.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::Url;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::config::{AuthHeader, Endpoint, OpenAiConfig, OpenAiConfigError};
use crate::{GenerateError, Refusal};

/// The limits one process puts on its requests to the provider: how many are in flight at
/// once and, optionally, how many start per minute. Make one per process and give it to every
/// provider the process makes, so that the limits hold however many jobs run at once.
#[derive(Debug)]
pub struct RequestLimiter {
    in_flight: Semaphore,
    limit: usize,
    per_minute: Option<u32>,
    /// When the next request may start under the per-minute limit.
    next_start: std::sync::Mutex<Option<Instant>>,
}

impl RequestLimiter {
    /// At most `in_flight` requests at once (at least 1) and, when given, `per_minute` starts
    /// per minute, spaced evenly.
    pub fn new(in_flight: usize, per_minute: Option<u32>) -> Self {
        let limit = in_flight.max(1);
        Self {
            in_flight: Semaphore::new(limit),
            limit,
            per_minute: per_minute.filter(|&n| n > 0),
            next_start: std::sync::Mutex::new(None),
        }
    }

    /// The limits of `config` ([`OpenAiConfig::concurrency`],
    /// [`OpenAiConfig::requests_per_minute`]).
    pub fn from_config(config: &OpenAiConfig) -> Self {
        Self::new(config.concurrency, config.requests_per_minute)
    }

    /// Requests in flight at once.
    pub fn in_flight_limit(&self) -> usize {
        self.limit
    }

    /// Requests started per minute, when limited.
    pub fn per_minute(&self) -> Option<u32> {
        self.per_minute
    }

    /// The limits in words, for a start-up line.
    pub fn describe(&self) -> String {
        match self.per_minute {
            Some(rpm) => format!(
                "at most {} request(s) in flight and {rpm} per minute",
                self.limit
            ),
            None => format!(
                "at most {} request(s) in flight, no per-minute limit",
                self.limit
            ),
        }
    }

    /// Waits for a slot and for the request's turn under the per-minute limit; the request
    /// holds the permit while it runs.
    async fn acquire(&self) -> Result<SemaphorePermit<'_>, GenerateError> {
        let permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| GenerateError::Upstream {
                status: None,
                message: "the provider was shut down".into(),
            })?;
        if let Some(rpm) = self.per_minute {
            let spacing = Duration::from_secs(60) / rpm;
            let start = {
                let mut next = self
                    .next_start
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let now = Instant::now();
                let start = next.map_or(now, |next| next.max(now));
                *next = Some(start + spacing);
                start
            };
            tokio::time::sleep_until(start).await;
        }
        Ok(permit)
    }
}

/// How and when to try again.
#[derive(Debug, Clone)]
struct RetryPolicy {
    max_retries: u32,
    deadline: Duration,
    backoff_base: Duration,
    backoff_max: Duration,
    max_retry_after: Duration,
}

/// The shared client of one provider.
#[derive(Debug)]
pub(crate) struct Transport {
    client: reqwest::Client,
    limiter: Arc<RequestLimiter>,
    timeout: Duration,
    policy: RetryPolicy,
    secrets: Vec<SecretString>,
}

/// A failed attempt and what it says about trying again.
struct Failure {
    error: GenerateError,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl Failure {
    fn permanent(error: GenerateError) -> Self {
        Self {
            error,
            retryable: false,
            retry_after: None,
        }
    }
}

impl Transport {
    pub(crate) fn new(
        config: &OpenAiConfig,
        limiter: Arc<RequestLimiter>,
    ) -> Result<Self, OpenAiConfigError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("techpack/", env!("CARGO_PKG_VERSION")))
            // Connecting is bounded separately so that a dead host fails fast even when the
            // request timeout is long enough for a slow image edit.
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| OpenAiConfigError::Client(e.to_string()))?;
        Ok(Self {
            client,
            limiter,
            timeout: config.timeout,
            policy: RetryPolicy {
                max_retries: config.max_retries,
                deadline: config.deadline,
                backoff_base: config.backoff_base,
                backoff_max: config.backoff_max,
                max_retry_after: config.max_retry_after,
            },
            secrets: config.secrets(),
        })
    }

    /// The limits this transport's requests run under.
    pub(crate) fn limiter(&self) -> &Arc<RequestLimiter> {
        &self.limiter
    }

    /// Sends the request `build` makes for `url` (once per attempt: multipart bodies cannot
    /// be cloned) with `endpoint`'s key, and returns the body of the first 2xx answer.
    pub(crate) async fn send(
        &self,
        operation: &str,
        endpoint: &Endpoint,
        url: Url,
        build: impl Fn(&reqwest::Client, Url) -> reqwest::RequestBuilder,
    ) -> Result<Bytes, GenerateError> {
        let shown = format!("POST {url}");
        let mut deadline = Instant::now() + self.policy.deadline;
        let mut calls = 0;
        loop {
            let queued = Instant::now();
            let permit = self.limiter.acquire().await?;
            // Waiting for a slot is the process' doing, not the provider's: it does not use up
            // the step's time.
            deadline += queued.elapsed();
            let remaining = deadline.saturating_duration_since(Instant::now());
            let timeout = self.timeout.min(remaining);
            calls += 1;
            let outcome = self.attempt(endpoint, &url, &shown, timeout, &build).await;
            drop(permit);
            let failure = match outcome {
                Ok(body) => return Ok(body),
                Err(failure) => failure,
            };
            let error = self.redact_error(failure.error);
            if !failure.retryable {
                return Err(error);
            }
            let out_of_time = |last: &GenerateError| GenerateError::DeadlineExceeded {
                deadline: self.policy.deadline,
                calls,
                last: last.to_string(),
            };
            if matches!(error, GenerateError::TimedOut(_)) && timeout < self.timeout {
                return Err(out_of_time(&error));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if let Some(wait) = failure.retry_after
                && (wait > self.policy.max_retry_after || wait >= remaining)
            {
                // Waiting that long here would hold a job's slot hostage; the step says when
                // to come back instead (and the job queue waits that long before re-running).
                return Err(GenerateError::RetryLater {
                    wait,
                    ceiling: self.policy.max_retry_after.min(remaining),
                    until: httpdate::fmt_http_date(SystemTime::now() + wait),
                });
            }
            if calls > self.policy.max_retries {
                return Err(error);
            }
            let wait = match failure.retry_after {
                // A little jitter on top, so that clients told the same instant do not all
                // come back at once.
                Some(wait) => wait + jitter(wait / 10, Duration::from_secs(1)),
                None => self.backoff(calls - 1),
            };
            if wait >= remaining {
                return Err(out_of_time(&error));
            }
            tracing::warn!(
                operation,
                retry = calls,
                wait_ms = wait.as_millis() as u64,
                error = %error,
                "openai request failed, retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(
        &self,
        endpoint: &Endpoint,
        url: &Url,
        shown: &str,
        timeout: Duration,
        build: &impl Fn(&reqwest::Client, Url) -> reqwest::RequestBuilder,
    ) -> Result<Bytes, Failure> {
        let mut request = build(&self.client, url.clone()).timeout(timeout);
        if let Some(key) = &endpoint.key {
            request = match endpoint.auth() {
                AuthHeader::ApiKey => request.header("api-key", key.expose_secret()),
                AuthHeader::Bearer | AuthHeader::Auto => request.bearer_auth(key.expose_secret()),
            };
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_failure(e, timeout))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_failure(e, timeout))?;
        if status.is_success() {
            return Ok(body);
        }
        Err(status_failure(
            status.as_u16(),
            &headers,
            &body,
            shown,
            SystemTime::now(),
        ))
    }

    /// Full jitter: uniformly random in `0..=min(max, base * 2^retry)`, which spreads the
    /// retries of many clients hit by the same outage.
    fn backoff(&self, retry: u32) -> Duration {
        let cap = self
            .policy
            .backoff_base
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.policy.backoff_max);
        jitter(cap, cap)
    }

    /// `text` with every configured secret replaced by `***`.
    pub(crate) fn redact(&self, text: &str) -> String {
        redact(text, &self.secrets)
    }

    /// `error` with every configured secret removed from its text.
    pub(crate) fn redact_error(&self, error: GenerateError) -> GenerateError {
        let r = |text: String| self.redact(&text);
        match error {
            GenerateError::BadInput(m) => GenerateError::BadInput(r(m)),
            GenerateError::Upstream { status, message } => GenerateError::Upstream {
                status,
                message: r(message),
            },
            GenerateError::Refused {
                reason,
                status,
                url,
                message,
            } => GenerateError::Refused {
                reason,
                status,
                url: r(url),
                message: r(message),
            },
            GenerateError::DeadlineExceeded {
                deadline,
                calls,
                last,
            } => GenerateError::DeadlineExceeded {
                deadline,
                calls,
                last: r(last),
            },
            GenerateError::ModelRefused(m) => GenerateError::ModelRefused(r(m)),
            GenerateError::InvalidAnswer(m) => GenerateError::InvalidAnswer(r(m)),
            other @ (GenerateError::RateLimited { .. }
            | GenerateError::RetryLater { .. }
            | GenerateError::TimedOut(_)) => other,
        }
    }
}

/// Uniformly random in `0..=min(span, cap)`.
fn jitter(span: Duration, cap: Duration) -> Duration {
    let span = span.min(cap);
    let ms = u64::try_from(span.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(fastrand::u64(0..=ms))
}

fn redact(text: &str, secrets: &[SecretString]) -> String {
    let mut text = text.to_owned();
    for secret in secrets {
        let secret = secret.expose_secret();
        // Shorter "secrets" would blank out ordinary words: a key that short is no secret.
        if secret.len() >= 4 {
            text = text.replace(secret, "***");
        }
    }
    text
}

fn transport_failure(error: reqwest::Error, timeout: Duration) -> Failure {
    if error.is_timeout() {
        return Failure {
            error: GenerateError::TimedOut(timeout),
            retryable: true,
            retry_after: None,
        };
    }
    Failure {
        // A request that cannot even be built (bad URL) will not build next time either.
        retryable: !error.is_builder(),
        error: GenerateError::Upstream {
            status: None,
            message: error_chain(&error),
        },
        retry_after: None,
    }
}

/// The body of an OpenAI error answer: `{"error": {"message", "type", "code"}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: Option<String>,
    code: Option<serde_json::Value>,
}

fn status_failure(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    url: &str,
    now: SystemTime,
) -> Failure {
    let detail = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.error);
    let code = detail
        .as_ref()
        .and_then(|d| d.code.as_ref())
        .and_then(|c| c.as_str().map(str::to_owned));
    let message = detail
        .and_then(|d| d.message)
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                reqwest::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("no message")
                    .to_owned()
            } else {
                text.chars().take(500).collect()
            }
        });
    let transient = |error| Failure {
        error,
        retryable: true,
        retry_after: retry_after(headers, now),
    };
    match status {
        // A 429 for an exhausted quota will not clear by waiting.
        429 if code.as_deref() == Some("insufficient_quota") => {
            Failure::permanent(GenerateError::Refused {
                reason: Refusal::QuotaExceeded,
                status,
                url: url.to_owned(),
                message,
            })
        }
        429 => transient(GenerateError::RateLimited {
            retry_after: retry_after(headers, now),
        }),
        // A request timeout and a conflict (Azure's "another operation in progress") pass.
        408 | 409 | 500..=599 => transient(GenerateError::Upstream {
            status: Some(status),
            message,
        }),
        _ => Failure::permanent(GenerateError::Refused {
            reason: Refusal::of(status, code.as_deref()),
            status,
            url: url.to_owned(),
            message,
        }),
    }
}

/// The wait a server asked for: `retry-after-ms` (OpenAI's, more precise) first, then
/// `Retry-After` as seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let non_negative = |n: f64| (n.is_finite() && n >= 0.0).then_some(n);
    if let Some(ms) = text("retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(non_negative)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = text(RETRY_AFTER.as_str())?;
    if let Ok(secs) = value.parse::<f64>() {
        return non_negative(secs).map(Duration::from_secs_f64);
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    const URL: &str = "POST http://127.0.0.1:9/v1/chat/completions";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn retry_after_reads_seconds_dates_and_milliseconds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after(&headers(&[("retry-after", "3")]), now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "0.5")]), now),
            Some(Duration::from_millis(500))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(20));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &date)]), now),
            Some(Duration::from_secs(20))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(20));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &past)]), now),
            Some(Duration::ZERO)
        );
        let both = headers(&[("retry-after", "3"), ("retry-after-ms", "250")]);
        assert_eq!(retry_after(&both, now), Some(Duration::from_millis(250)));
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-4")]), now), None);
        assert_eq!(retry_after(&headers(&[]), now), None);
    }

    #[test]
    fn errors_carry_the_service_message_and_retry_rules() {
        let now = SystemTime::now();
        let body = br#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        let failure = status_failure(401, &HeaderMap::new(), body, URL, now);
        assert!(!failure.retryable);
        assert_eq!(
            failure.error,
            GenerateError::Refused {
                reason: Refusal::Unauthorized,
                status: 401,
                url: URL.into(),
                message: "Incorrect API key provided".into()
            }
        );
        assert_eq!(
            failure.error.kind(),
            techpack_model::ErrorKind::Misconfigured
        );

        let failure = status_failure(503, &HeaderMap::new(), b"", URL, now);
        assert!(failure.retryable);
        assert_eq!(
            failure.error,
            GenerateError::Upstream {
                status: Some(503),
                message: "Service Unavailable".into()
            }
        );

        let failure = status_failure(429, &headers(&[("retry-after", "2")]), b"{}", URL, now);
        assert!(failure.retryable);
        assert_eq!(
            failure.error,
            GenerateError::RateLimited {
                retry_after: Some(Duration::from_secs(2))
            }
        );

        let quota = br#"{"error":{"message":"You exceeded your current quota","code":"insufficient_quota"}}"#;
        let failure = status_failure(429, &HeaderMap::new(), quota, URL, now);
        assert!(!failure.retryable);
        assert!(matches!(
            failure.error,
            GenerateError::Refused {
                reason: Refusal::QuotaExceeded,
                status: 429,
                ..
            }
        ));

        for (status, retryable) in [
            (400, false),
            (403, false),
            (404, false),
            (408, true),
            (409, true),
            (413, false),
            (422, false),
            (502, true),
        ] {
            let failure = status_failure(status, &HeaderMap::new(), b"", URL, now);
            assert_eq!(failure.retryable, retryable, "HTTP {status}");
            assert_eq!(failure.error.is_retryable(), retryable, "HTTP {status}");
        }
        let missing = status_failure(404, &HeaderMap::new(), b"", URL, now).error;
        assert!(missing.to_string().contains(URL), "{missing}");
    }

    #[test]
    fn secrets_are_redacted() {
        let secrets = [SecretString::from("sk-secret-1"), SecretString::from("k")];
        assert_eq!(
            redact(
                "Incorrect API key provided: sk-secret-1. k is fine",
                &secrets
            ),
            "Incorrect API key provided: ***. k is fine"
        );
    }

    #[tokio::test]
    async fn the_per_minute_limit_spaces_request_starts() {
        let limiter = RequestLimiter::new(4, Some(600));
        let started = Instant::now();
        for _ in 0..4 {
            drop(limiter.acquire().await.unwrap());
        }
        // 600 a minute: one every 100 ms, the first at once.
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            limiter.describe(),
            "at most 4 request(s) in flight and 600 per minute"
        );
    }
}
