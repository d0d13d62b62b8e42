//! One HTTP client per provider with the reliability rules of the OpenAI API: a concurrency
//! limit, a per-request timeout, and retries with exponential backoff and full jitter on 429,
//! 5xx, timeouts and connection errors, honouring `Retry-After` / `retry-after-ms`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::config::{OpenAiConfig, OpenAiConfigError};
use crate::GenerateError;

/// How and when to try again.
#[derive(Debug, Clone)]
struct RetryPolicy {
    max_retries: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    max_retry_after: Duration,
}

/// The shared client of one provider.
#[derive(Debug)]
pub(crate) struct Transport {
    client: reqwest::Client,
    api_key: SecretString,
    limit: Arc<Semaphore>,
    timeout: Duration,
    policy: RetryPolicy,
}

/// A failed attempt and what it says about trying again.
struct Failure {
    error: GenerateError,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl Transport {
    pub(crate) fn new(config: &OpenAiConfig) -> Result<Self, OpenAiConfigError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("techpack/", env!("CARGO_PKG_VERSION")))
            // Connecting is bounded separately so that a dead host fails fast even when the
            // request timeout is long enough for a slow image edit.
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| OpenAiConfigError::Client(e.to_string()))?;
        Ok(Self {
            client,
            api_key: config.api_key.clone(),
            limit: Arc::new(Semaphore::new(config.concurrency)),
            timeout: config.timeout,
            policy: RetryPolicy {
                max_retries: config.max_retries,
                backoff_base: config.backoff_base,
                backoff_max: config.backoff_max,
                max_retry_after: config.max_retry_after,
            },
        })
    }

    /// Sends the request `build` makes (once per attempt: multipart bodies cannot be cloned)
    /// and returns the body of the first 2xx answer.
    pub(crate) async fn send(
        &self,
        operation: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Bytes, GenerateError> {
        let mut retries = 0;
        loop {
            let failure = match self.attempt(&build).await {
                Ok(body) => return Ok(body),
                Err(failure) => failure,
            };
            if !failure.retryable || retries >= self.policy.max_retries {
                return Err(failure.error);
            }
            let wait = match failure.retry_after {
                // Waiting minutes inside one call would hold a pipeline slot hostage; the caller
                // gets the hint and can reschedule.
                Some(wait) if wait > self.policy.max_retry_after => return Err(failure.error),
                Some(wait) => wait,
                None => self.backoff(retries),
            };
            retries += 1;
            tracing::warn!(
                operation,
                retry = retries,
                wait_ms = wait.as_millis() as u64,
                error = %failure.error,
                "openai request failed, retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(
        &self,
        build: &impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Bytes, Failure> {
        // The permit covers one attempt only, so that a request sleeping in backoff does not
        // keep others from running.
        let _permit = self.limit.acquire().await.map_err(|_| Failure {
            error: GenerateError::Upstream {
                status: None,
                message: "the provider was shut down".into(),
            },
            retryable: false,
            retry_after: None,
        })?;
        let request = build(&self.client)
            .bearer_auth(self.api_key.expose_secret())
            .timeout(self.timeout);
        let response = request
            .send()
            .await
            .map_err(|e| self.transport_failure(e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_failure(e))?;
        if status.is_success() {
            return Ok(body);
        }
        Err(status_failure(
            status.as_u16(),
            &headers,
            &body,
            SystemTime::now(),
        ))
    }

    fn transport_failure(&self, error: reqwest::Error) -> Failure {
        if error.is_timeout() {
            return Failure {
                error: GenerateError::TimedOut(self.timeout),
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

    /// Full jitter: uniformly random in `0..=min(max, base * 2^retry)`, which spreads the
    /// retries of many clients hit by the same outage.
    fn backoff(&self, retry: u32) -> Duration {
        let cap = self
            .policy
            .backoff_base
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.policy.backoff_max);
        let cap_ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(fastrand::u64(0..=cap_ms))
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

fn status_failure(status: u16, headers: &HeaderMap, body: &[u8], now: SystemTime) -> Failure {
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
    match status {
        // A 429 for an exhausted quota will not clear by waiting.
        429 if code.as_deref() == Some("insufficient_quota") => Failure {
            error: GenerateError::Upstream {
                status: Some(status),
                message,
            },
            retryable: false,
            retry_after: None,
        },
        429 => {
            let retry_after = retry_after(headers, now);
            Failure {
                error: GenerateError::RateLimited { retry_after },
                retryable: true,
                retry_after,
            }
        }
        500..=599 => Failure {
            error: GenerateError::Upstream {
                status: Some(status),
                message,
            },
            retryable: true,
            retry_after: retry_after(headers, now),
        },
        _ => Failure {
            error: GenerateError::Upstream {
                status: Some(status),
                message,
            },
            retryable: false,
            retry_after: None,
        },
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
        let failure = status_failure(401, &HeaderMap::new(), body, now);
        assert!(!failure.retryable);
        assert_eq!(
            failure.error,
            GenerateError::Upstream {
                status: Some(401),
                message: "Incorrect API key provided".into()
            }
        );

        let failure = status_failure(503, &HeaderMap::new(), b"", now);
        assert!(failure.retryable);
        assert_eq!(
            failure.error,
            GenerateError::Upstream {
                status: Some(503),
                message: "Service Unavailable".into()
            }
        );

        let failure = status_failure(429, &headers(&[("retry-after", "2")]), b"{}", now);
        assert!(failure.retryable);
        assert_eq!(
            failure.error,
            GenerateError::RateLimited {
                retry_after: Some(Duration::from_secs(2))
            }
        );

        let quota = br#"{"error":{"message":"You exceeded your current quota","code":"insufficient_quota"}}"#;
        let failure = status_failure(429, &HeaderMap::new(), quota, now);
        assert!(!failure.retryable);
        assert!(matches!(
            failure.error,
            GenerateError::Upstream {
                status: Some(429),
                ..
            }
        ));
    }
}
