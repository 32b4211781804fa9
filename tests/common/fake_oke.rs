//! The one in-process OKE 1.0.1 (OOAPI v5 mbo profile, nl-test-admin)
//! service on 127.0.0.1 of the tests, in every role: the SIS of flow 1
//! (offerings, associations, persons, groups, paged, with the consumer
//! objects) and of flow 5 (results written to associations), the exam
//! platform of flow 2 (PUT/PATCH offerings and associations) and of flow
//! 3.4 (association lists with results). It demands an OAuth2
//! client-credentials token with its OKE scope, answers errors as
//! `application/problem+json` like the spec, fails on demand (a status, a
//! path, a page, a fraction of the writes with 500/503/429 or a late
//! answer) and records every exchange in the line format of
//! `tests/peers/openapi/validate.py`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "sisync-test";
pub const CLIENT_SECRET: &str = "oke-client-secret-0123456789";

/// Answers in association writes: Status500, Status503, TooMany,
/// SlowAfterStore.
pub use super::faults::{Fault, Faults};

#[derive(Default)]
pub struct Inner {
    /// The scope a token must be asked for.
    pub scope: String,
    pub tokens_issued: usize,
    /// Every request to the token endpoint, refused ones too.
    pub token_requests: usize,
    tokens: Vec<String>,
    /// Offerings by id, in order.
    pub offerings: BTreeMap<String, Value>,
    /// Associations by id (each names its offering).
    pub associations: BTreeMap<String, Value>,
    pub persons: BTreeMap<String, Value>,
    pub groups: BTreeMap<String, Value>,
    pub members: BTreeMap<String, Vec<Value>>,
    /// Every exchange, as validate.py reads it.
    pub exchanges: Vec<Value>,
    /// Status codes to answer the next non-token requests with.
    pub fail_next: VecDeque<u16>,
    /// Answer requests for this path with 500 (a broken SIS page).
    pub fail_path: Option<String>,
    /// Leave the nl-test-admin consumer out of association list items
    /// (the details then come from GET /associations/{id}).
    pub bare_association_lists: bool,
    /// Attributes a PUT of an offering or association silently does not
    /// keep (top-level or in a consumer object), like a platform that
    /// drops what it does not support; the PUT still answers 200/201.
    pub drop_on_put: Vec<String>,
    /// List only the offerings between the `since` and `until` the client
    /// asks for (a SIS's planning window).
    pub filter_window: bool,
    /// Answer association pages with this number 500 (an outage in the
    /// middle of a read).
    pub fail_page: Option<usize>,
    /// Every association write: (method, association id, body).
    pub writes: Vec<(String, String, Value)>,
    /// Faults for association writes.
    pub faults: Faults<Fault>,
    /// Refuse writes to this association with 400 and this detail.
    pub refuse: Option<(String, String)>,
    /// Each association write waits this long first.
    pub delay: Duration,
    /// How late a `SlowAfterStore` answer comes.
    pub slow: Duration,
    /// `result` attributes an association write silently does not keep
    /// (it still answers 200/201), like a SIS that drops what it does not
    /// support.
    pub drop_result: Vec<String>,
    /// Set by a `SlowAfterStore` write: how long its answer waits.
    late_answer: Option<Duration>,
}

/// Remove `drop` from a stored record and its consumer objects.
fn drop_fields(v: &mut Value, drop: &[String]) {
    let Some(o) = v.as_object_mut() else { return };
    for f in drop {
        o.remove(f);
    }
    if let Some(cs) = o.get_mut("consumers").and_then(Value::as_array_mut) {
        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
            for f in drop {
                c.remove(f);
            }
        }
    }
}

#[derive(Clone)]
pub struct FakeOke {
    pub base: String,
    pub token_url: String,
    pub inner: Arc<Mutex<Inner>>,
}

fn problem(status: u16, title: &str, detail: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [(header::CONTENT_TYPE, "application/problem+json")],
        json!({"status": status.to_string(), "title": title, "detail": detail}).to_string(),
    )
        .into_response()
}

fn page(items: Vec<Value>, q: &BTreeMap<String, String>) -> Response {
    let size: usize = q.get("pageSize").and_then(|s| s.parse().ok()).unwrap_or(10);
    if ![10, 20, 50, 100, 250].contains(&size) {
        return problem(
            400,
            "Bad Request",
            "pageSize must be 10, 20, 50, 100 or 250",
        );
    }
    let number: usize = q
        .get("pageNumber")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let total_pages = items.len().div_ceil(size).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((number - 1) * size)
        .take(size)
        .collect();
    let body = json!({
        "pageSize": size,
        "pageNumber": number,
        "hasPreviousPage": number > 1,
        "hasNextPage": number < total_pages,
        "totalPages": total_pages,
        "items": slice,
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn json_ok(v: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// Merge-patch (RFC 7396), with `consumers` merged by consumerKey.
fn merge(target: &mut Value, patch: &Value) {
    let (Some(t), Some(p)) = (target.as_object_mut(), patch.as_object()) else {
        return;
    };
    for (k, v) in p {
        if k == "consumers" {
            let list = t.entry(k.clone()).or_insert_with(|| json!([]));
            for c in v.as_array().into_iter().flatten() {
                let key = c.get("consumerKey").cloned();
                let arr = list.as_array_mut().unwrap();
                match arr
                    .iter_mut()
                    .find(|x| x.get("consumerKey") == key.as_ref())
                {
                    Some(x) => merge(x, c),
                    None => arr.push(c.clone()),
                }
            }
        } else if v.is_null() {
            t.remove(k);
        } else {
            t.insert(k.clone(), v.clone());
        }
    }
}

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let headers: HeaderMap = req.headers().clone();
    let body: Bytes = to_bytes(req.into_body(), 1 << 20).await.unwrap_or_default();
    let body_text = String::from_utf8_lossy(&body).to_string();

    if path == "/token" {
        return token(&inner, &headers, &body_text);
    }
    let association_write = method != Method::GET && path.starts_with("/associations/");
    let delay = inner.lock().unwrap().delay;
    if association_write && !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let resp = route(&inner, &method, &path, &query, &headers, &body_text);
    let late = inner.lock().unwrap().late_answer.take();
    if let Some(d) = late {
        tokio::time::sleep(d).await;
    }
    // record the exchange for the OpenAPI validator
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (parts, rbody) = resp.into_parts();
    let rbytes = to_bytes(rbody, 1 << 22).await.unwrap_or_default();
    let rtext = String::from_utf8_lossy(&rbytes).to_string();
    let mut h = serde_json::Map::new();
    if let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        h.insert("content-type".into(), json!(ct));
    }
    inner.lock().unwrap().exchanges.push(json!({
        "method": method.as_str(),
        "path": path,
        "query": query,
        "headers": h,
        "body": if body_text.is_empty() { Value::Null } else { json!(body_text) },
        "status": status,
        "response_headers": if ct.is_empty() { json!({}) } else { json!({"content-type": ct}) },
        "response_body": if rtext.is_empty() { Value::Null } else { json!(rtext) },
        // 401s come from the OAuth2 layer the spec does not model per
        // path, and it defines no 503, no 500 for writes and no 429 for
        // PATCH: injected faults are checked as requests only
        "skip_response": status == 401
            || status == 503
            || (status >= 500 && method != Method::GET)
            || (status == 429 && method == Method::PATCH),
    }));
    Response::from_parts(parts, axum::body::Body::from(rbytes))
}

fn token(inner: &Arc<Mutex<Inner>>, headers: &HeaderMap, body: &str) -> Response {
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(String::from);
    use base64::Engine;
    let creds_ok = match basic {
        Some(b) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .is_some_and(|s| s == format!("{CLIENT_ID}:{CLIENT_SECRET}")),
        None => {
            form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
        }
    };
    let mut g = inner.lock().unwrap();
    g.token_requests += 1;
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") || !creds_ok {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"error":"invalid_client"}"#,
        )
            .into_response();
    }
    if form.get("scope") != Some(&g.scope) {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"error":"invalid_scope"}"#,
        )
            .into_response();
    }
    g.tokens_issued += 1;
    let t = format!("tok-{}-{}", g.scope, g.tokens_issued);
    g.tokens.push(t.clone());
    json_ok(
        &json!({"access_token": t, "token_type": "bearer", "expires_in": 3600, "scope": g.scope}),
    )
}

fn route(
    inner: &Arc<Mutex<Inner>>,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &str,
) -> Response {
    let mut g = inner.lock().unwrap();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let known = bearer
        .strip_prefix("Bearer ")
        .is_some_and(|t| g.tokens.iter().any(|x| x == t));
    if !known {
        return problem(401, "Unauthorized", "no valid token for this scope");
    }
    if let Some(code) = g.fail_next.pop_front() {
        return problem(code, "Injected failure", "the service is having a bad day");
    }
    if g.fail_path.as_deref() == Some(path) {
        return problem(500, "Internal Server Error", "database unavailable");
    }
    let q: BTreeMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.clone(), seg.as_slice()) {
        (Method::GET, ["offerings"]) => {
            let since = q.get("since").cloned().unwrap_or_default();
            let until = q.get("until").cloned().unwrap_or_else(|| "9999".into());
            let day = |o: &Value, k: &str| {
                let t = o[k].as_str().unwrap_or("");
                t[..10.min(t.len())].to_string()
            };
            let items = g
                .offerings
                .values()
                .filter(|o| {
                    !g.filter_window
                        || (day(o, "endDateTime") >= since && day(o, "startDateTime") <= until)
                })
                .cloned()
                .collect();
            page(items, &q)
        }
        (Method::GET, ["offerings", id]) => match g.offerings.get(*id) {
            Some(o) => json_ok(o),
            None => problem(404, "Not Found", "no such offering"),
        },
        (Method::GET, ["offerings", id, "associations"]) => {
            if q.get("consumer").map(String::as_str) != Some("nl-test-admin") {
                return problem(400, "Bad Request", "consumer=nl-test-admin is required");
            }
            if !g.offerings.contains_key(*id) {
                return problem(404, "Not Found", "no such offering");
            }
            let number: usize = q
                .get("pageNumber")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            if g.fail_page == Some(number) {
                return problem(
                    500,
                    "Internal Server Error",
                    "database hiccup for Kandidaat Geheim",
                );
            }
            let bare = g.bare_association_lists;
            let items = g
                .associations
                .values()
                .filter(|a| a["offering"] == json!(id))
                .map(|a| {
                    let mut a = a.clone();
                    if bare {
                        a.as_object_mut().unwrap().remove("consumers");
                    }
                    a
                })
                .collect();
            page(items, &q)
        }
        (Method::GET, ["associations", id]) => match g.associations.get(*id) {
            Some(a) => {
                let mut a = a.clone();
                let expand = q
                    .get("expand")
                    .is_some_and(|e| e.split(',').any(|x| x == "offering"));
                if let Some(o) = a["offering"]
                    .as_str()
                    .and_then(|o| g.offerings.get(o))
                    .filter(|_| expand)
                {
                    a["offering"] = o.clone();
                }
                json_ok(&a)
            }
            None => problem(404, "Not Found", "no such association"),
        },
        (Method::GET, ["persons", id]) => match g.persons.get(*id) {
            Some(p) => json_ok(p),
            None => problem(404, "Not Found", "no such person"),
        },
        (Method::GET, ["groups"]) => {
            let items = g.groups.values().cloned().collect();
            page(items, &q)
        }
        (Method::GET, ["groups", id, "members"]) => {
            let items = g.members.get(*id).cloned().unwrap_or_default();
            page(items, &q)
        }
        (Method::PUT, ["offerings", id]) => {
            let Ok(v) = serde_json::from_str::<Value>(body) else {
                return problem(400, "Bad Request", "the body is no JSON");
            };
            if v.get("offeringId") != Some(&json!(id)) {
                return problem(400, "Bad Request", "offeringId differs from the path");
            }
            let mut v = v;
            drop_fields(&mut v, &g.drop_on_put);
            let created = g.offerings.insert(id.to_string(), v).is_none();
            (if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            })
            .into_response()
        }
        (Method::PATCH, ["offerings", id]) => {
            let Ok(v) = serde_json::from_str::<Value>(body) else {
                return problem(400, "Bad Request", "the body is no JSON");
            };
            match g.offerings.get_mut(*id) {
                Some(o) => {
                    merge(o, &v);
                    StatusCode::OK.into_response()
                }
                None => problem(404, "Not Found", "no such offering"),
            }
        }
        (Method::PUT | Method::PATCH, ["associations", id]) => {
            write_association(&mut g, method, id, headers, body)
        }
        _ => problem(405, "Method Not Allowed", "not supported here"),
    }
}

/// A PUT (create or replace) or PATCH (merge) of association `id`, with
/// the faults, refusals and dropped attributes asked for.
fn write_association(
    g: &mut Inner,
    method: &Method,
    id: &str,
    headers: &HeaderMap,
    body: &str,
) -> Response {
    let f = g.faults.next();
    if let Some(r) = early(f) {
        return r;
    }
    let want = if method == Method::PATCH {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with(want) {
        return problem(400, "Bad Request", &format!("Content-Type must be {want}"));
    }
    let Ok(mut v) = serde_json::from_str::<Value>(body) else {
        return problem(400, "Bad Request", "the body is no JSON");
    };
    if let Some((rid, detail)) = g.refuse.clone() {
        if rid == id {
            return problem(400, "Bad Request", &detail);
        }
    }
    g.writes
        .push((method.to_string(), id.to_string(), v.clone()));
    let status = if method == Method::PATCH {
        let Some(a) = g.associations.get_mut(id) else {
            return problem(400, "Bad Request", "no such association");
        };
        merge(a, &v);
        StatusCode::OK
    } else {
        if v.get("associationId").is_some_and(|a| a != id) {
            return problem(400, "Bad Request", "associationId must be the path id");
        }
        let offering = v.get("offering").and_then(Value::as_str).unwrap_or("");
        if !g.offerings.contains_key(offering) {
            return problem(400, "Bad Request", "association for an unknown offering");
        }
        drop_fields(&mut v, &g.drop_on_put);
        match g.associations.insert(id.to_string(), v) {
            None => StatusCode::CREATED,
            Some(_) => StatusCode::OK,
        }
    };
    let drop = g.drop_result.clone();
    if let Some(r) = g
        .associations
        .get_mut(id)
        .and_then(|a| a.get_mut("result"))
        .and_then(Value::as_object_mut)
    {
        for k in &drop {
            r.remove(k);
        }
    }
    if f == Some(Fault::SlowAfterStore) {
        g.late_answer = Some(g.slow);
    }
    if method == Method::PUT {
        return status.into_response();
    }
    json_ok(&json!({
        "associationId": id,
        "message": [{"language": "nl-NL", "value": "Deelname bijgewerkt"}],
        "state": g.associations[id]["state"],
    }))
}

/// The answer of a fault that answers at once.
fn early(f: Option<Fault>) -> Option<Response> {
    match f? {
        Fault::Status500 => Some(problem(500, "Internal Server Error", "database hiccup")),
        Fault::Status503 => Some(problem(503, "Service Unavailable", "maintenance")),
        Fault::TooMany => Some(
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
        Fault::SlowAfterStore => None,
        other => panic!("the OKE fake does not inject {other:?}"),
    }
}

/// A UUID for test records: `kind` and a number.
pub fn uuid(kind: u32, n: u32) -> String {
    format!("{kind:08x}-0000-4000-8000-{n:012x}")
}

impl FakeOke {
    pub async fn start(scope: &str) -> FakeOke {
        let inner = Arc::new(Mutex::new(Inner {
            scope: scope.to_string(),
            slow: Duration::from_millis(2500),
            ..Inner::default()
        }));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let addr = super::http1::serve_router(app).await;
        FakeOke {
            base: format!("http://{addr}"),
            token_url: format!("http://{addr}/token"),
            inner,
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap())
    }

    /// The recorded exchanges, one JSON document a line.
    pub fn jsonl(&self) -> String {
        self.with(|g| g.exchanges.iter().map(|e| format!("{e}\n")).collect())
    }

    pub fn exchanges(&self) -> Vec<Value> {
        self.inner.lock().unwrap().exchanges.clone()
    }

    pub fn clear_exchanges(&self) {
        self.inner.lock().unwrap().exchanges.clear();
    }

    /// Write the exchanges recorded so far as JSONL and validate them
    /// against the OKE OpenAPI document with openapi-core; panics with the
    /// validator's lines when any is invalid.
    pub fn validate(&self, dir: &std::path::Path, name: &str) {
        let file = dir.join(format!("{name}.jsonl"));
        let lines: Vec<String> = self.exchanges().iter().map(|e| e.to_string()).collect();
        assert!(!lines.is_empty(), "no exchanges recorded for {name}");
        std::fs::write(&file, lines.join("\n") + "\n").unwrap();
        validate_file(&file);
    }
}

/// The Python of the CI venv (`.venv` in the repository, made by
/// `.ci/run`).
pub fn python() -> std::path::PathBuf {
    let p = super::repo().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `bash .ci/run` (or python3 -m venv .venv && .venv/bin/pip install -r tests/peers/openapi/requirements.txt)",
        p.display()
    );
    p
}

/// The OKE 1.0.1 OpenAPI document with two defects of the document
/// itself worked around (see tests/peers/openapi/writable.py):
/// `primaryCode` and an association's `person` writable (marked read-only,
/// yet `primaryCode` is required in PUT /offerings and flows 2.1/2.2 send
/// both), and the association union an `anyOf` (its `oneOf` branches
/// overlap, so no association answer could validate). Written into `dir`.
fn writable_spec(dir: &std::path::Path) -> std::path::PathBuf {
    let repo = super::repo();
    let out = dir.join("ooapiv5_MBO.writable.yaml");
    if out.exists() {
        return out;
    }
    let o = std::process::Command::new(python())
        .arg(repo.join("tests/peers/openapi/writable.py"))
        .arg(super::oke_spec())
        .arg(&out)
        .args(["--any-of-associations", "primaryCode", "person"])
        .output()
        .unwrap();
    super::assert_success(&o, "writable.py");
    out
}

/// Validate a JSONL file of exchanges against the OKE 1.0.1 OpenAPI.
pub fn validate_file(file: &std::path::Path) {
    let repo = super::repo();
    let spec = writable_spec(file.parent().unwrap());
    let out = std::process::Command::new(python())
        .arg(repo.join("tests/peers/openapi/validate.py"))
        .arg(&spec)
        .arg(file)
        .output()
        .unwrap();
    super::assert_success(&out, &format!("OpenAPI validation of {}", file.display()));
}
