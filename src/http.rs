//! The one place for outbound HTTP: rustls, timeouts, a `sisync/<version>`
//! user agent, bearer auth, and retries with backon (exponential with
//! jitter, `Retry-After` honoured for 429 and 503).
//!
//! Errors carry the method, URL and status, never the Authorization header
//! or a response body (which may hold personal data).

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::{Method, StatusCode, header};

use crate::config::Secret;

/// A failed HTTP exchange, safe to show and log.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{method} {url}: {reason}")]
pub struct HttpError {
    pub method: String,
    pub url: String,
    pub status: Option<u16>,
    pub reason: String,
    /// Seconds the server asked us to wait.
    #[source]
    pub retry_after: Option<RetryAfter>,
    retryable: bool,
}

#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("retry after {0:?}")]
pub struct RetryAfter(pub Duration);

impl HttpError {
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

/// A response read to the end.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: header::HeaderMap,
    pub body: Vec<u8>,
}

/// Shared client for one endpoint.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    bearer: Option<Secret>,
    max_retries: usize,
    min_backoff: Duration,
}

impl Http {
    pub fn new(
        timeout: Duration,
        bearer: Option<Secret>,
        max_retries: usize,
    ) -> anyhow::Result<Http> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("sisync/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .use_rustls_tls()
            .build()?;
        Ok(Http {
            client,
            bearer,
            max_retries,
            min_backoff: Duration::from_millis(200),
        })
    }

    /// Shorter backoff for tests.
    pub fn with_min_backoff(mut self, d: Duration) -> Http {
        self.min_backoff = d;
        self
    }

    /// Send a request, retrying what is safe to retry. `repeatable` marks a
    /// non-idempotent request (POST) as safe to send again; otherwise only
    /// answers that say the server did not act (429, 503) are retried.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&[u8]>,
        content_type: &str,
        repeatable: bool,
    ) -> Result<Reply, HttpError> {
        let idempotent = repeatable
            || matches!(
                method,
                Method::GET | Method::PUT | Method::DELETE | Method::HEAD | Method::OPTIONS
            );
        let once = || async {
            self.once(&method, url, body, content_type, idempotent)
                .await
        };
        once.retry(
            ExponentialBuilder::default()
                .with_min_delay(self.min_backoff)
                .with_max_delay(Duration::from_secs(30))
                .with_max_times(self.max_retries)
                .with_jitter(),
        )
        .when(|e: &HttpError| e.retryable)
        .adjust(|e: &HttpError, d| match e.retry_after {
            Some(RetryAfter(ra)) => Some(ra.min(Duration::from_secs(300))),
            None => d,
        })
        .notify(|e: &HttpError, d| {
            tracing::warn!(method = %e.method, url = %e.url, status = ?e.status, "retrying in {d:?}: {}", e.reason)
        })
        .await
    }

    async fn once(
        &self,
        method: &Method,
        url: &str,
        body: Option<&[u8]>,
        content_type: &str,
        idempotent: bool,
    ) -> Result<Reply, HttpError> {
        let mut req = self
            .client
            .request(method.clone(), url)
            .header(header::ACCEPT, "application/scim+json, application/json");
        if let Some(t) = &self.bearer {
            req = req.bearer_auth(t.expose());
        }
        if let Some(b) = body {
            req = req
                .header(header::CONTENT_TYPE, content_type)
                .body(b.to_vec());
        }
        let err = |status: Option<u16>, reason: String, retryable: bool, ra: Option<Duration>| {
            HttpError {
                method: method.to_string(),
                url: url.to_string(),
                status,
                reason,
                retry_after: ra.map(RetryAfter),
                retryable,
            }
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let (what, safe) = if e.is_connect() {
                    ("cannot connect", true)
                } else if e.is_timeout() {
                    ("timed out", idempotent)
                } else {
                    ("connection failed", idempotent)
                };
                return Err(err(
                    None,
                    format!("{what} ({})", root_cause(&e)),
                    safe,
                    None,
                ));
            }
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = match resp.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) => {
                return Err(err(
                    Some(status.as_u16()),
                    format!("response cut off ({})", root_cause(&e)),
                    idempotent,
                    None,
                ));
            }
        };
        if status.is_success() {
            return Ok(Reply {
                status,
                headers,
                body,
            });
        }
        let code = status.as_u16();
        let (retryable, hint) = match code {
            401 | 403 => (false, "check the token and its permissions"),
            408 => (idempotent, "the server timed out"),
            429 => (true, "rate limited"),
            503 => (true, "service unavailable"),
            500..=599 => (idempotent, "server error"),
            _ => (false, ""),
        };
        let mut reason = format!("HTTP {code}");
        if let Some(t) = scim_type(&body) {
            reason.push_str(&format!(" (scimType {t})"));
        }
        if !hint.is_empty() {
            reason.push_str(&format!(": {hint}"));
        }
        tracing::debug!(url, code, body = %String::from_utf8_lossy(&body[..body.len().min(500)]), "error response");
        Err(err(Some(code), reason, retryable, retry_after))
    }
}

/// `Retry-After`: delta-seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(s) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v.trim()).ok()?;
    let secs = (when.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
    Some(Duration::from_secs(secs.max(0) as u64))
}

fn scim_type(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("scimType")?.as_str().map(String::from)
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        let past = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(parse_retry_after(past), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
