//! The one place for outbound HTTP: rustls, timeouts, a `sisync/<version>`
//! user agent, static bearer tokens or OAuth2 client credentials (the
//! `oauth2` crate; token cached until shortly before it expires, fetched
//! anew once when the server answers 401), and retries with backon
//! (exponential with jitter, `Retry-After` honoured for 429 and 503).
//!
//! Errors carry the method, URL and status, never the Authorization header
//! or a response body (which may hold personal data).

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::{Method, StatusCode, header};

use crate::secret::Secret;

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
    /// What the server said about a refused request (its error
    /// description, at most 300 characters). May name a record, so it goes
    /// to local state for the admin, never into logs or the audit log.
    pub server_message: Option<String>,
    /// The error response's body, only for a client made
    /// [`Http::with_error_bodies`] (a SOAP fault travels in it). May hold
    /// personal data: parse it, never log it.
    pub body: Option<ErrorBody>,
    retryable: bool,
}

/// An error response body; its `Debug` shows only the length.
#[derive(Clone)]
pub struct ErrorBody(pub Vec<u8>);

impl std::fmt::Debug for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ErrorBody({} bytes)", self.0.len())
    }
}

#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("retry after {0:?}")]
pub struct RetryAfter(pub Duration);

impl HttpError {
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// An answer that arrived but cannot be used (not retried).
    pub fn unusable(method: &str, url: &str, status: Option<u16>, reason: String) -> HttpError {
        HttpError::new(method, url, status, reason, false)
    }

    fn new(
        method: &str,
        url: &str,
        status: Option<u16>,
        reason: String,
        retryable: bool,
    ) -> HttpError {
        HttpError {
            method: method.to_string(),
            url: url.to_string(),
            status,
            reason,
            retry_after: None,
            server_message: None,
            body: None,
            retryable,
        }
    }
}

/// A response read to the end.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: header::HeaderMap,
    pub body: Vec<u8>,
}

/// How requests authenticate.
#[derive(Clone, Default)]
pub enum Auth {
    #[default]
    None,
    Bearer(Secret),
    OAuth2(std::sync::Arc<OAuth2>),
}

impl From<Option<Secret>> for Auth {
    fn from(s: Option<Secret>) -> Auth {
        s.map(Auth::Bearer).unwrap_or_default()
    }
}

/// OAuth2 client-credentials grant (RFC 6749 §4.4) with a cached token.
pub struct OAuth2 {
    token_url: String,
    client_id: String,
    secret: Secret,
    scope: Option<String>,
    client: reqwest::Client,
    /// The token and when to fetch a new one.
    cached: tokio::sync::Mutex<Option<(Secret, std::time::Instant)>>,
    /// Counts token fetches, so that concurrent requests that all got a 401
    /// for the same token fetch one new token between them.
    generation: std::sync::atomic::AtomicU64,
}

impl OAuth2 {
    /// `tls`: the endpoint's client certificate and extra roots, which its
    /// token endpoint (often the same gateway) gets to see too.
    pub fn new(
        token_url: &str,
        client_id: &str,
        secret: Secret,
        scope: Option<String>,
        timeout: Duration,
        tls: &TlsFiles,
    ) -> anyhow::Result<OAuth2> {
        let client = client_builder(timeout, tls)?
            // token endpoints must not redirect credentials elsewhere
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(OAuth2 {
            token_url: token_url.to_string(),
            client_id: client_id.to_string(),
            secret,
            scope,
            client,
            cached: tokio::sync::Mutex::new(None),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// A valid access token: the cached one until shortly before it
    /// expires (30 s, or half the lifetime of a token that lives less than
    /// a minute).
    pub async fn token(&self) -> Result<Secret, HttpError> {
        use oauth2::{ClientId, ClientSecret, Scope, TokenResponse, TokenUrl, basic::BasicClient};
        let mut cached = self.cached.lock().await;
        if let Some((t, refresh_at)) = &*cached {
            if std::time::Instant::now() < *refresh_at {
                return Ok(t.clone());
            }
        }
        let asked = std::time::Instant::now();
        let fail = |reason: String| HttpError::unusable("POST", &self.token_url, None, reason);
        let url = TokenUrl::new(self.token_url.clone())
            .map_err(|e| fail(format!("bad token_url ({e})")))?;
        let client = BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(ClientSecret::new(self.secret.expose().to_string()))
            .set_token_uri(url);
        let mut req = client.exchange_client_credentials();
        for s in self.scope.iter().flat_map(|s| s.split_whitespace()) {
            req = req.add_scope(Scope::new(s.to_string()));
        }
        let resp = req.request_async(&self.client).await.map_err(|e| {
            use oauth2::RequestTokenError as E;
            fail(match e {
                E::ServerResponse(r) => format!(
                    "the token endpoint refused the client credentials ({}); check client_id and the client secret",
                    r.error()
                ),
                E::Request(_) => "cannot reach the token endpoint".to_string(),
                E::Parse(_, _) => "the token endpoint sent no valid token response".to_string(),
                E::Other(o) => format!("token request failed ({o})"),
            })
        })?;
        let token = Secret::new(resp.access_token().secret().clone());
        let lifetime = resp.expires_in().unwrap_or(Duration::from_secs(3600));
        let early = Duration::from_secs(30).min(lifetime / 2);
        *cached = Some((token.clone(), asked + lifetime - early));
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(token)
    }

    /// Which token fetch the cache holds now (see [`OAuth2::invalidate`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Forget the cached token (the server said 401), unless it was
    /// fetched anew since `seen` (another request already did this).
    pub async fn invalidate(&self, seen: u64) {
        let mut cached = self.cached.lock().await;
        if self.generation() == seen {
            *cached = None;
        }
    }
}

/// rustls, the user agent, timeouts and the endpoint's TLS material.
fn client_builder(timeout: Duration, tls: &TlsFiles) -> anyhow::Result<reqwest::ClientBuilder> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("sisync/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .use_rustls_tls();
    if let Some(pem) = &tls.identity_pem {
        let id = reqwest::Identity::from_pem(pem).map_err(|_| {
            anyhow::anyhow!(
                "the client certificate or key is not a PEM certificate chain with its private key"
            )
        })?;
        builder = builder.identity(id);
    }
    if let Some(pem) = &tls.ca_pem {
        let roots = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|_| anyhow::anyhow!("ca_file holds no PEM certificate"))?;
        if roots.is_empty() {
            anyhow::bail!("ca_file holds no PEM certificate");
        }
        for r in roots {
            builder = builder.add_root_certificate(r);
        }
    }
    Ok(builder)
}

type RateLimiter = governor::DefaultDirectRateLimiter;

/// One request, as every try sends it.
pub struct Request<'a> {
    pub method: Method,
    pub url: &'a str,
    pub body: Option<&'a [u8]>,
    /// The body's `Content-Type`.
    pub content_type: &'a str,
    /// Safe to send again after a failure the server may have acted on
    /// (GET, PUT, DELETE are by their method; a POST by the caller's word).
    pub repeatable: bool,
    /// Headers of this request only (`SOAPAction`).
    pub extra: &'a header::HeaderMap,
}

/// The first retry waits about this long (then twice as long each time,
/// with jitter, up to 30 s).
const MIN_BACKOFF: Duration = Duration::from_millis(200);

/// Shared client for one endpoint.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    auth: Auth,
    /// At most this many requests per second to the endpoint.
    rate: Option<std::sync::Arc<RateLimiter>>,
    /// At most this many requests in flight to the endpoint.
    in_flight: Option<std::sync::Arc<tokio::sync::Semaphore>>,
    max_retries: usize,
    /// Headers sent with every request (a vendor gateway's subscription
    /// key); marked sensitive, never logged.
    headers: header::HeaderMap,
    /// Hand a 500 answer with an XML body to the caller (a SOAP fault is
    /// an answer, not a transport error; see `crate::soap`).
    soap_faults: bool,
    /// Keep error response bodies in [`HttpError::body`].
    error_bodies: bool,
}

/// Extra TLS material for one endpoint, as PEM.
#[derive(Clone, Default)]
pub struct TlsFiles {
    /// Client certificate chain and private key (mutual TLS, e.g. the
    /// PKIoverheid certificates of Edukoppeling endpoints).
    pub identity_pem: Option<Vec<u8>>,
    /// Extra trusted root certificates (e.g. the PKIoverheid roots).
    pub ca_pem: Option<Vec<u8>>,
}

impl Http {
    pub fn new(
        timeout: Duration,
        auth: impl Into<Auth>,
        max_retries: usize,
    ) -> anyhow::Result<Http> {
        Self::with_tls(timeout, auth, max_retries, &TlsFiles::default())
    }

    /// A client that presents a client certificate and/or trusts extra
    /// roots.
    pub fn with_tls(
        timeout: Duration,
        auth: impl Into<Auth>,
        max_retries: usize,
        tls: &TlsFiles,
    ) -> anyhow::Result<Http> {
        let client = client_builder(timeout, tls)?.build()?;
        Ok(Http {
            client,
            auth: auth.into(),
            rate: None,
            in_flight: None,
            max_retries,
            headers: header::HeaderMap::new(),
            soap_faults: false,
            error_bodies: false,
        })
    }

    /// Limit requests to `per_second` (token bucket: a burst of one
    /// second's worth, then a steady rate); 0 means no limit.
    pub fn with_rate_limit(mut self, per_second: u32) -> Http {
        self.rate = std::num::NonZeroU32::new(per_second).map(|n| {
            std::sync::Arc::new(governor::RateLimiter::direct(governor::Quota::per_second(
                n,
            )))
        });
        self
    }

    /// At most `n` requests in flight at once over all clones of this
    /// client; 0 means no limit.
    pub fn with_concurrency(mut self, n: usize) -> Http {
        self.in_flight = (n > 0).then(|| std::sync::Arc::new(tokio::sync::Semaphore::new(n)));
        self
    }

    /// Retries of one request (a `--connect` check asks once).
    pub fn with_max_retries(mut self, n: usize) -> Http {
        self.max_retries = n;
        self
    }

    /// Send these headers with every request (an `Accept` here replaces
    /// the default one).
    pub fn with_headers(mut self, h: header::HeaderMap) -> Http {
        self.headers = h;
        self
    }

    /// Keep the body of error responses in [`HttpError::body`].
    pub fn with_error_bodies(mut self) -> Http {
        self.error_bodies = true;
        self
    }

    /// Return an HTTP 500 whose body is XML as a [`Reply`] (SOAP 1.1 sends
    /// faults with status 500), without retrying it.
    pub fn with_soap_faults(mut self) -> Http {
        self.soap_faults = true;
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
        self.send_with(Request {
            method,
            url,
            body,
            content_type,
            repeatable,
            extra: &header::HeaderMap::new(),
        })
        .await
    }

    /// [`Http::send`] of a whole [`Request`] (extra headers: `SOAPAction`).
    pub async fn send_with(&self, req: Request<'_>) -> Result<Reply, HttpError> {
        let req = Request {
            repeatable: req.repeatable
                || matches!(
                    req.method,
                    Method::GET | Method::PUT | Method::DELETE | Method::HEAD | Method::OPTIONS
                ),
            ..req
        };
        // the token this request goes out with (fetched now if need be)
        let generation = match &self.auth {
            Auth::OAuth2(o) => {
                o.token().await?;
                o.generation()
            }
            _ => 0,
        };
        let result = self.retrying(|| self.once(&req)).await;
        match (&self.auth, &result) {
            (Auth::OAuth2(o), Err(e)) if e.status == Some(401) => {
                // the token may have been revoked or expired early: a new
                // token, and this request once more (never more than once)
                o.invalidate(generation).await;
                self.retrying(|| self.once(&req)).await
            }
            _ => result,
        }
    }

    /// Send `req` once and read the whole answer.
    async fn once(&self, req: &Request<'_>) -> Result<Reply, HttpError> {
        let (resp, _permit) = self.once_head(req).await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        match resp.bytes().await {
            Ok(b) => Ok(Reply {
                status,
                headers,
                body: b.to_vec(),
            }),
            Err(e) => Err(self.error(
                &req.method,
                req.url,
                Some(status.as_u16()),
                format!("response cut off ({})", root_cause(&e)),
                req.repeatable,
            )),
        }
    }

    /// [`Http::send_with`], but the answer's body is left to the caller to
    /// stream (a large SOAP answer is parsed as it arrives). Only the
    /// request is retried: a body that breaks off is the caller's error.
    pub async fn send_streaming(&self, req: Request<'_>) -> Result<reqwest::Response, HttpError> {
        let once = || async { self.once_head(&req).await.map(|(resp, _permit)| resp) };
        self.retrying(once).await
    }

    /// Run `once` again while it fails retryably: exponential backoff with
    /// jitter, a server's Retry-After honoured (at most 5 minutes), each
    /// retry counted and logged (method, URL, status; never a body).
    async fn retrying<T, F, Fut>(&self, once: F) -> Result<T, HttpError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, HttpError>>,
    {
        once.retry(
            ExponentialBuilder::default()
                .with_min_delay(MIN_BACKOFF)
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
            crate::telemetry::http_retry(&e.url);
            tracing::warn!(method = %e.method, url = %e.url, status = ?e.status, "retrying in {d:?}: {}", e.reason)
        })
        .await
    }

    fn error(
        &self,
        method: &Method,
        url: &str,
        status: Option<u16>,
        reason: String,
        retryable: bool,
    ) -> HttpError {
        HttpError::new(method.as_str(), url, status, reason, retryable)
    }

    /// Send one request: the response of a success (or, with
    /// `soap_faults`, of an HTTP 500 with an XML body) with its body
    /// unread, and the in-flight permit it holds; any other status is
    /// read and turned into the error.
    async fn once_head(
        &self,
        r: &Request<'_>,
    ) -> Result<(reqwest::Response, Option<tokio::sync::SemaphorePermit<'_>>), HttpError> {
        let (method, url, body, idempotent) = (&r.method, r.url, r.body, r.repeatable);
        let (content_type, extra) = (r.content_type, r.extra);
        let permit = match &self.in_flight {
            Some(sem) => Some(sem.acquire().await.expect("semaphore is never closed")),
            None => None,
        };
        if let Some(rate) = &self.rate {
            rate.until_ready().await;
        }
        // parsed once: reqwest, the metrics label and the endpoint status
        // all read it (three parses a request were about 4 % of the CPU of
        // a results push)
        let parsed = url::Url::parse(url).ok();
        let mut req = match &parsed {
            Some(u) => self.client.request(method.clone(), u.clone()),
            // reqwest says what is wrong with it
            None => self.client.request(method.clone(), url),
        };
        if !self.headers.contains_key(header::ACCEPT) && !extra.contains_key(header::ACCEPT) {
            req = req.header(header::ACCEPT, "application/scim+json, application/json");
        }
        for (k, v) in self.headers.iter().chain(extra.iter()) {
            req = req.header(k, v.clone());
        }
        match &self.auth {
            Auth::None => {}
            Auth::Bearer(t) => req = req.bearer_auth(t.expose()),
            Auth::OAuth2(o) => req = req.bearer_auth(o.token().await?.expose()),
        }
        if let Some(b) = body {
            req = req
                .header(header::CONTENT_TYPE, content_type)
                .body(b.to_vec());
        }
        let err = |status: Option<u16>, reason: String, retryable: bool, ra: Option<Duration>| {
            HttpError {
                retry_after: ra.map(RetryAfter),
                ..self.error(method, url, status, reason, retryable)
            }
        };
        let sent = req.send().await;
        let status = sent.as_ref().ok().map(|r| r.status().as_u16());
        crate::telemetry::http_request(parsed.as_ref(), status);
        crate::endpoints::note(parsed.as_ref(), status);
        let resp = match sent {
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
        let xml = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.contains("xml"));
        if status.is_success() || (self.soap_faults && status.as_u16() == 500 && xml) {
            return Ok((resp, permit));
        }
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
        // never the body: platforms echo the request (names, e-mail
        // addresses, BSNs, grades) in their error messages
        tracing::debug!(url, code, scim_type = ?scim_type(&body), body_bytes = body.len(), "error response");
        let mut e = err(Some(code), reason, retryable, retry_after);
        e.server_message = server_message(&body);
        if self.error_bodies {
            e.body = Some(ErrorBody(body));
        }
        Err(e)
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

/// The `scimType` keyword of an error body; anything but a short keyword
/// (a server that puts free text there) is left out, as it may hold data.
fn scim_type(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("scimType")?
        .as_str()
        .filter(|t| {
            !t.is_empty()
                && t.len() <= 40
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
        .map(String::from)
}

/// The error description in a JSON error body (OneRoster `imsx_description`,
/// SCIM `detail`, OAuth2 `error_description`, or a `message`), else the
/// first line of a text body.
fn server_message(body: &[u8]) -> Option<String> {
    fn find(v: &serde_json::Value) -> Option<String> {
        const KEYS: [&str; 5] = [
            "imsx_description",
            "detail",
            "error_description",
            "message",
            "error",
        ];
        match v {
            serde_json::Value::Object(m) => KEYS
                .iter()
                .find_map(|k| m.get(*k).and_then(|x| x.as_str()).map(String::from))
                .or_else(|| m.values().find_map(find)),
            serde_json::Value::Array(a) => a.iter().find_map(find),
            _ => None,
        }
    }
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => find(&v)?,
        Err(_) => {
            let t = std::str::from_utf8(body).ok()?.trim();
            if t.starts_with('<') {
                return None; // an HTML error page says nothing useful
            }
            t.lines().next()?.to_string()
        }
    };
    let t = text.trim();
    (!t.is_empty()).then(|| t.chars().take(300).collect())
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Run an async source read from the synchronous read path: inside the
/// runtime without blocking its other tasks, or on a runtime of its own.
pub fn block_on<T>(fut: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => tokio::task::block_in_place(|| h.block_on(fut)),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(fut),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrency_limit_holds_over_clones() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let now = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (n2, m2) = (now.clone(), max.clone());
        tokio::spawn(async move {
            loop {
                let (mut tcp, _) = listener.accept().await.unwrap();
                let (n, m) = (n2.clone(), m2.clone());
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = [0u8; 1024];
                    let _ = tcp.read(&mut buf).await;
                    let cur = n.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(cur, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    n.fetch_sub(1, Ordering::SeqCst);
                    let _ = tcp
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                        )
                        .await;
                });
            }
        });
        let http = Http::new(Duration::from_secs(5), Auth::None, 0)
            .unwrap()
            .with_concurrency(2);
        let url = format!("http://{addr}/x");
        let calls = (0..6).map(|_| {
            let h = http.clone();
            let u = url.clone();
            async move {
                h.send(Method::GET, &u, None, "application/json", false)
                    .await
            }
        });
        for r in futures::future::join_all(calls).await {
            r.unwrap();
        }
        assert_eq!(max.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        let past = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(parse_retry_after(past), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
