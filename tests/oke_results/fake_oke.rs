//! An in-process OKE 1.0.1 (OOAPI v5, nl-test-admin) server on 127.0.0.1,
//! playing the SIS (flow 1 reads, flow 5 writes) or the exam platform
//! (flow 3.4 reads): an OAuth2 client-credentials token endpoint that
//! checks the scope, paged collections (`pageSize`, `pageNumber`,
//! `hasNextPage`), the consumer objects, OOAPI problem bodies for errors,
//! and faults on demand (500, 503, 429 + Retry-After, stored-then-too-late).
//! Every OOAPI exchange is recorded for the OpenAPI validator.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "sisync-oke";
pub const CLIENT_SECRET: &str = "oke-s3cret-value";
/// `Basic base64(CLIENT_ID:CLIENT_SECRET)`.
const CLIENT_BASIC: &str = "Basic c2lzeW5jLW9rZTpva2UtczNjcmV0LXZhbHVl";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Status500,
    Status503,
    TooMany,
    /// Store the write, then answer after the client gave up.
    SlowAfterStore,
}

#[derive(Default)]
pub struct Inner {
    /// The scope a token must be asked for.
    pub scope: String,
    pub offerings: BTreeMap<String, Value>,
    /// Associations by id (each names its offering and person).
    pub associations: BTreeMap<String, Value>,
    pub persons: BTreeMap<String, Value>,
    /// Every write: (method, association id, body).
    pub writes: Vec<(String, String, Value)>,
    /// Exchanges as JSONL lines for validate.py.
    pub exchanges: Vec<Value>,
    pub token_requests: usize,
    tokens: Vec<String>,
    pub fault_percent: u32,
    pub faults: Vec<Fault>,
    fault_counter: u64,
    rng: u64,
    pub faults_injected: usize,
    /// Refuse writes to this association with 400 and this detail.
    pub refuse: Option<(String, String)>,
    pub delay: Duration,
    pub slow: Duration,
    /// Answer association pages with this number 500 (a platform outage
    /// in the middle of a read).
    pub fail_page: Option<usize>,
    /// `result` attributes a write silently does not keep (the write still
    /// answers 200/201), like a SIS that drops what it does not support.
    pub drop_result: Vec<String>,
}

#[derive(Clone)]
pub struct FakeOke {
    pub inner: Arc<Mutex<Inner>>,
    pub base: String,
}

impl FakeOke {
    pub async fn start(scope: &str) -> FakeOke {
        let inner = Arc::new(Mutex::new(Inner {
            scope: scope.to_string(),
            rng: 0x2545_f491_4f6c_dd1d,
            slow: Duration::from_millis(2500),
            ..Inner::default()
        }));
        let ooapi = Router::new()
            .route("/offerings", axum::routing::get(list_offerings))
            .route(
                "/offerings/:id/associations",
                axum::routing::get(list_associations),
            )
            .route(
                "/associations/:id",
                axum::routing::get(get_association)
                    .patch(patch_association)
                    .put(put_association),
            )
            .route("/persons/:id", axum::routing::get(get_person))
            .layer(axum::middleware::from_fn_with_state(inner.clone(), record))
            .with_state(inner.clone());
        let app = Router::new()
            .route("/token", axum::routing::post(token))
            .with_state(inner.clone())
            .merge(ooapi);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeOke {
            inner,
            base: format!("http://{addr}"),
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap())
    }

    /// The recorded exchanges, one JSON document a line.
    pub fn jsonl(&self) -> String {
        self.with(|g| {
            g.exchanges
                .iter()
                .map(|e| format!("{e}\n"))
                .collect::<String>()
        })
    }
}

/// A UUID for test records: `kind` and a number.
pub fn uuid(kind: u32, n: u32) -> String {
    format!("{kind:08x}-0000-4000-8000-{n:012x}")
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = json!({"status": status.as_u16().to_string(), "title": title, "detail": detail});
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// Record the exchange (request and response bodies) for validate.py.
async fn record(State(s): State<Arc<Mutex<Inner>>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let method = parts.method.to_string();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let req = Request::from_parts(parts, Body::from(bytes.clone()));
    let resp = next.run(req).await;
    let (rparts, rbody) = resp.into_parts();
    let rbytes = axum::body::to_bytes(rbody, 1 << 22)
        .await
        .unwrap_or_default();
    let rct = rparts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let status = rparts.status.as_u16();
    // 401s are the token handling, and the spec defines no 500/503 (and
    // no 429 for PATCH): injected faults are checked as requests only
    let skip_response = status == 401
        || status == 503
        || (status >= 500 && method != "GET")
        || (status == 429 && method == "PATCH");
    let text = |b: &Bytes| (!b.is_empty()).then(|| String::from_utf8_lossy(b).to_string());
    s.lock().unwrap().exchanges.push(json!({
        "method": method,
        "path": path,
        "query": query,
        "headers": if ct.is_empty() { json!({}) } else { json!({"content-type": ct}) },
        "body": text(&bytes),
        "status": status,
        "response_headers": if rct.is_empty() { json!({}) } else { json!({"content-type": rct}) },
        "response_body": text(&rbytes),
        "skip_response": skip_response,
    }));
    Response::from_parts(rparts, Body::from(rbytes))
}

async fn token(State(s): State<Arc<Mutex<Inner>>>, headers: HeaderMap, body: String) -> Response {
    let mut g = s.lock().unwrap();
    g.token_requests += 1;
    let ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(CLIENT_BASIC);
    if !ok || !body.contains("grant_type=client_credentials") {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let scope = url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    if scope != g.scope {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_scope"})),
        )
            .into_response();
    }
    let t = format!("oke-token-{}", g.token_requests);
    g.tokens.push(t.clone());
    axum::Json(
        json!({"access_token": t, "token_type": "bearer", "expires_in": 3600, "scope": scope}),
    )
    .into_response()
}

fn authorised(g: &Inner, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| g.tokens.iter().any(|x| x == t))
}

fn unauthorised() -> Response {
    problem(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "token unknown or expired",
    )
}

/// One page of `items` as OOAPI pages them.
fn page(items: Vec<Value>, q: &BTreeMap<String, String>) -> Response {
    let size: usize = q.get("pageSize").and_then(|s| s.parse().ok()).unwrap_or(10);
    if ![10, 20, 50, 100, 250].contains(&size) {
        return problem(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "pageSize must be 10, 20, 50, 100 or 250",
        );
    }
    let n: usize = q
        .get("pageNumber")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let total = items.len().div_ceil(size).max(1);
    let chunk: Vec<Value> = items.into_iter().skip((n - 1) * size).take(size).collect();
    axum::Json(json!({
        "pageSize": size,
        "pageNumber": n,
        "hasPreviousPage": n > 1,
        "hasNextPage": n < total,
        "totalPages": total,
        "items": chunk,
    }))
    .into_response()
}

async fn list_offerings(
    State(s): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let g = s.lock().unwrap();
    if !authorised(&g, &headers) {
        return unauthorised();
    }
    let since = q.get("since").cloned().unwrap_or_default();
    let until = q.get("until").cloned().unwrap_or_else(|| "9999".into());
    let items = g
        .offerings
        .values()
        .filter(|o| {
            let start = o["startDateTime"].as_str().unwrap_or("");
            let end = o["endDateTime"].as_str().unwrap_or("");
            end[..10.min(end.len())] >= *since && start[..10.min(start.len())] <= *until
        })
        .cloned()
        .collect();
    page(items, &q)
}

async fn list_associations(
    State(s): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let g = s.lock().unwrap();
    if !authorised(&g, &headers) {
        return unauthorised();
    }
    if q.get("consumer").map(String::as_str) != Some("nl-test-admin") {
        return problem(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "consumer=nl-test-admin is required",
        );
    }
    if !g.offerings.contains_key(&id) {
        return problem(
            StatusCode::NOT_FOUND,
            "Resource not found",
            "no such offering",
        );
    }
    let n: usize = q
        .get("pageNumber")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    if g.fail_page == Some(n) {
        return problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            "database hiccup for Kandidaat Geheim",
        );
    }
    let items = g
        .associations
        .values()
        .filter(|a| a["offering"] == json!(id))
        .cloned()
        .collect();
    page(items, &q)
}

async fn get_association(
    State(s): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let g = s.lock().unwrap();
    if !authorised(&g, &headers) {
        return unauthorised();
    }
    let Some(a) = g.associations.get(&id) else {
        return problem(
            StatusCode::NOT_FOUND,
            "Resource not found",
            "no such association",
        );
    };
    let mut a = a.clone();
    if q.get("expand")
        .is_some_and(|e| e.split(',').any(|x| x == "offering"))
    {
        if let Some(o) = a["offering"].as_str().and_then(|o| g.offerings.get(o)) {
            a["offering"] = o.clone();
        }
    }
    axum::Json(a).into_response()
}

async fn get_person(
    State(s): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let g = s.lock().unwrap();
    if !authorised(&g, &headers) {
        return unauthorised();
    }
    match g.persons.get(&id) {
        Some(p) => axum::Json(p.clone()).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "Resource not found",
            "no such person",
        ),
    }
}

/// A fault for this write, maybe (reproducible xorshift sequence).
fn fault(g: &mut Inner) -> Option<Fault> {
    g.rng ^= g.rng << 13;
    g.rng ^= g.rng >> 7;
    g.rng ^= g.rng << 17;
    if !g.faults.is_empty() && (g.rng % 100) < g.fault_percent as u64 {
        let f = g.faults[(g.fault_counter % g.faults.len() as u64) as usize];
        g.fault_counter += 1;
        g.faults_injected += 1;
        Some(f)
    } else {
        None
    }
}

fn early(f: Option<Fault>) -> Option<Response> {
    match f {
        Some(Fault::Status500) => Some(problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            "database hiccup",
        )),
        Some(Fault::Status503) => Some(problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "maintenance",
        )),
        Some(Fault::TooMany) => Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [
                    (header::RETRY_AFTER, "1"),
                    (header::CONTENT_TYPE, "application/problem+json"),
                ],
                json!({"status": "429", "title": "Too many requests"}).to_string(),
            )
                .into_response(),
        ),
        _ => None,
    }
}

/// RFC 7386 merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

async fn patch_association(
    State(s): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    write(s, "PATCH", id, headers, body).await
}

async fn put_association(
    State(s): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    write(s, "PUT", id, headers, body).await
}

async fn write(
    s: Arc<Mutex<Inner>>,
    method: &str,
    id: String,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let delay = s.lock().unwrap().delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let want = if method == "PATCH" {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    let (f, slow) = {
        let mut g = s.lock().unwrap();
        if !authorised(&g, &headers) {
            return unauthorised();
        }
        (fault(&mut g), g.slow)
    };
    if let Some(r) = early(f) {
        return r;
    }
    if !ct.starts_with(want) {
        return problem(
            StatusCode::BAD_REQUEST,
            "Bad request",
            &format!("Content-Type must be {want}"),
        );
    }
    let doc: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return problem(StatusCode::BAD_REQUEST, "Bad request", "body is not JSON"),
    };
    {
        let mut g = s.lock().unwrap();
        if let Some((rid, detail)) = g.refuse.clone() {
            if rid == id {
                return problem(StatusCode::BAD_REQUEST, "Bad request", &detail);
            }
        }
        g.writes.push((method.to_string(), id.clone(), doc.clone()));
        if method == "PATCH" {
            let Some(a) = g.associations.get_mut(&id) else {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "Bad request",
                    "no such association",
                );
            };
            merge(a, &doc);
        } else {
            if doc["associationId"] != json!(id) {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "Bad request",
                    "associationId must be the path id",
                );
            }
            g.associations.insert(id.clone(), doc.clone());
        }
        let drop = g.drop_result.clone();
        if let Some(r) = g
            .associations
            .get_mut(&id)
            .and_then(|a| a.get_mut("result"))
            .and_then(Value::as_object_mut)
        {
            for k in &drop {
                r.remove(k);
            }
        }
    }
    if f == Some(Fault::SlowAfterStore) {
        tokio::time::sleep(slow).await;
    }
    if method == "PUT" {
        return StatusCode::CREATED.into_response();
    }
    let state = s.lock().unwrap().associations[&id]["state"].clone();
    axum::Json(json!({
        "associationId": id,
        "message": [{"language": "en-GB", "value": "Result received"}],
        "state": state,
    }))
    .into_response()
}
