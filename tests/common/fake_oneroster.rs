//! An in-process OneRoster 1.2 REST service on 127.0.0.1, shared by the
//! tests and `benches/oneroster_rest.rs` (which include it by `#[path]`):
//! paged collections (`limit`, `offset`, `X-Total-Count`), the delta
//! filter `dateLastModified>'…'`, a static bearer token and OAuth2 client
//! credentials (`/token`, tokens that expire by age or by use), and faults
//! on demand (500 at an offset, 429, a slow or cut-off answer, a page
//! limit, a wrong total). Every request is recorded.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

/// The static bearer token the service accepts.
pub const SIS_TOKEN: &str = "sis-token-abcdef";

#[derive(Default)]
pub struct Sis {
    /// entity → records (each with dateLastModified)
    pub data: BTreeMap<String, Vec<Value>>,
    /// entity → records as JSON text, served as they are (full pulls
    /// only): the benchmark's 450,000 records as `Value`s would take
    /// the service 800 MB and the time to serialise them
    pub raw: BTreeMap<String, Vec<String>>,
    /// (path, query) of every request
    pub requests: Vec<(String, String)>,
    /// fail every request for this (entity, offset) with 500
    pub fail: Option<(String, usize)>,
    /// OAuth2 access tokens the service accepts now: when issued, and
    /// how often used
    pub valid_tokens: BTreeMap<String, (std::time::Instant, usize)>,
    pub token_requests: usize,
    /// `expires_in` of new tokens (default 3600); the service also refuses
    /// a token once it is older than that
    pub token_life: Option<u64>,
    /// the service refuses a token after this many requests (a token that
    /// expires earlier than it said)
    pub token_uses: Option<usize>,
    /// requests answered 401
    pub unauthorized: usize,
    /// each collection request takes this long (to see concurrency)
    pub delay: Option<std::time::Duration>,
    pub in_flight: usize,
    pub max_in_flight: usize,
    /// the service sends at most this many records a page
    pub max_limit: Option<usize>,
    /// (entity, n): n added to its X-Total-Count
    pub overcount: Option<(&'static str, usize)>,
    /// faults for the next collection requests, in order:
    /// "429" (with Retry-After: 1), "slow" (3 s), "truncated" (cut JSON)
    pub faults: std::collections::VecDeque<&'static str>,
}

/// Basic auth of client `sisync-client` with secret `s3cret-value`.
pub const CLIENT_BASIC: &str = "Basic c2lzeW5jLWNsaWVudDpzM2NyZXQtdmFsdWU=";

async fn token(State(s): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut sis = s.lock().unwrap();
    sis.token_requests += 1;
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if basic != Some(CLIENT_BASIC) || !body.contains("grant_type=client_credentials") {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let t = format!("access-{}", sis.token_requests);
    sis.valid_tokens
        .insert(t.clone(), (std::time::Instant::now(), 0));
    let life = sis.token_life.unwrap_or(3600);
    axum::Json(json!({"access_token": t, "token_type": "bearer", "expires_in": life}))
        .into_response()
}

pub type Shared = Arc<Mutex<Sis>>;

async fn collection(
    State(s): State<Shared>,
    Path(entity): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let slow = s.lock().unwrap().faults.front() == Some(&"slow");
    if slow {
        s.lock().unwrap().faults.pop_front();
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        return StatusCode::OK.into_response();
    }
    let delay = {
        let mut sis = s.lock().unwrap();
        sis.in_flight += 1;
        sis.max_in_flight = sis.max_in_flight.max(sis.in_flight);
        sis.delay
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    s.lock().unwrap().in_flight -= 1;
    page(&s, entity, q, headers)
}

fn page(s: &Shared, entity: String, q: BTreeMap<String, String>, headers: HeaderMap) -> Response {
    let mut sis = s.lock().unwrap();
    let query = serde_urlencoded_like(&q);
    sis.requests.push((entity.clone(), query));
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (life, uses) = (sis.token_life.unwrap_or(3600), sis.token_uses);
    let ok = auth == format!("Bearer {SIS_TOKEN}")
        || auth
            .strip_prefix("Bearer ")
            .and_then(|t| sis.valid_tokens.get_mut(t))
            .is_some_and(|(issued, used)| {
                *used += 1;
                issued.elapsed().as_secs_f64() < life as f64 && uses.is_none_or(|n| *used <= n)
            });
    if !ok {
        sis.unauthorized += 1;
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let fault = sis.faults.pop_front();
    if fault == Some("429") {
        return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")]).into_response();
    }
    let limit: usize = q
        .get("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
        .min(sis.max_limit.unwrap_or(usize::MAX));
    let offset: usize = q.get("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    if sis.fail.as_ref() == Some(&(entity.clone(), offset)) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let since = q
        .get("filter")
        .and_then(|f| f.strip_prefix("dateLastModified>'"))
        .and_then(|f| f.strip_suffix('\''))
        .map(String::from);
    if let Some(all) = sis.raw.get(&entity) {
        let page: Vec<&str> = all
            .iter()
            .skip(offset)
            .take(limit)
            .map(String::as_str)
            .collect();
        let body = format!("{{\"{entity}\":[{}]}}", page.join(","));
        return (
            [
                ("content-type", "application/json".to_string()),
                ("x-total-count", all.len().to_string()),
            ],
            body,
        )
            .into_response();
    }
    let all: Vec<&Value> = sis
        .data
        .get(&entity)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|r| match &since {
            Some(t) => r["dateLastModified"].as_str().unwrap() > t.as_str(),
            None => true,
        })
        .collect();
    let page: Vec<&Value> = all.iter().skip(offset).take(limit).copied().collect();
    if fault == Some("truncated") {
        let body = json!({ entity.clone(): page }).to_string();
        return (StatusCode::OK, body[..body.len() / 2].to_string()).into_response();
    }
    let mut resp = axum::Json(json!({ entity.clone(): page })).into_response();
    let over = match sis.overcount {
        Some((e, n)) if e == entity => n,
        _ => 0,
    };
    resp.headers_mut()
        .insert("x-total-count", (all.len() + over).into());
    resp
}

fn serde_urlencoded_like(q: &BTreeMap<String, String>) -> String {
    q.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Serve `data` (entity → records, each with `dateLastModified`) on
/// 127.0.0.1: (the service's state, its base URL).
pub async fn start(data: BTreeMap<String, Vec<Value>>) -> (Shared, String) {
    serve(Sis {
        data,
        ..Sis::default()
    })
    .await
}

/// Serve `raw` (entity → records as JSON text) as they are, for full
/// pulls of large rosters.
pub async fn start_raw(raw: BTreeMap<String, Vec<String>>) -> (Shared, String) {
    serve(Sis {
        raw,
        ..Sis::default()
    })
    .await
}

async fn serve(sis: Sis) -> (Shared, String) {
    let shared: Shared = Arc::new(Mutex::new(sis));
    let app = Router::new()
        .route("/ims/oneroster/rostering/v1p2/:entity", get(collection))
        .route("/token", axum::routing::post(token))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (shared, format!("http://{addr}"))
}
