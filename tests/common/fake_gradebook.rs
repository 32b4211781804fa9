//! An in-process OneRoster 1.2 gradebook service on 127.0.0.1 for tests:
//! an OAuth2 client-credentials token endpoint, `PUT lineItems/{id}` and
//! `PUT results/{id}` that store documents by sourcedId, and faults on
//! demand: a share of writes answered 500, 503 or 429 + Retry-After before
//! storing, or stored and then answered too late (client timeout) or with a
//! dropped connection, the nasty cases for exactly-once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "sisync-client";
pub const CLIENT_SECRET: &str = "s3cret-value";
/// `Basic base64(CLIENT_ID:CLIENT_SECRET)`.
const CLIENT_BASIC: &str = "Basic c2lzeW5jLWNsaWVudDpzM2NyZXQtdmFsdWU=";

/// Answers: Status500, Status503, TooMany, SlowAfterStore, DropAfterStore.
pub use super::faults::{Fault, Faults};

#[derive(Default)]
pub struct Inner {
    pub line_items: BTreeMap<String, Value>,
    pub results: BTreeMap<String, Value>,
    /// Every write request: (collection, id).
    pub writes: Vec<(String, String)>,
    pub token_requests: usize,
    tokens: Vec<String>,
    pub faults: Faults<Fault>,
    /// Answer writes of results for this student with 422.
    pub reject_student: Option<String>,
    /// Wait this long before handling each write.
    pub delay: Duration,
    /// How long a SlowAfterStore answer waits.
    pub slow: Duration,
}

#[derive(Clone)]
pub struct FakeGradebook {
    pub inner: Arc<Mutex<Inner>>,
    /// Service root (without /ims/...).
    pub base: String,
}

impl FakeGradebook {
    /// The `[results.sink.auth]` section for this gradebook: OAuth2 client
    /// credentials, the secret in `gb-secret` beside the config.
    pub fn sink_auth(&self) -> String {
        format!(
            "[results.sink.auth]\nkind = \"oauth2\"\ntoken_url = \"{}/token\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = \"gb-secret\"\n",
            self.base
        )
    }

    pub async fn start() -> FakeGradebook {
        let inner = Arc::new(Mutex::new(Inner {
            slow: Duration::from_millis(2500),
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/token", axum::routing::post(token))
            .route(
                "/ims/oneroster/gradebook/v1p2/lineItems",
                axum::routing::get(list_line_items),
            )
            .route(
                "/ims/oneroster/gradebook/v1p2/:collection/:id",
                axum::routing::put(put),
            )
            .with_state(inner.clone());
        let addr = super::http1::serve_router(app).await;
        FakeGradebook {
            inner,
            base: format!("http://{addr}"),
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap())
    }

    /// Stored results: (student, lineItem) pairs, to check that each
    /// result is held once.
    pub fn result_pairs(&self) -> Vec<(String, String)> {
        self.with(|g| {
            g.results
                .values()
                .map(|r| {
                    (
                        r["student"]["sourcedId"].as_str().unwrap_or("").to_string(),
                        r["lineItem"]["sourcedId"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                    )
                })
                .collect()
        })
    }

    pub fn result_writes(&self) -> usize {
        self.with(|g| g.writes.iter().filter(|w| w.0 == "results").count())
    }
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
    let t = format!("gb-token-{}", g.token_requests);
    g.tokens.push(t.clone());
    axum::Json(json!({"access_token": t, "token_type": "bearer", "expires_in": 3600}))
        .into_response()
}

fn authorised(g: &Inner, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| g.tokens.iter().any(|x| x == t))
}

async fn list_line_items(State(s): State<Arc<Mutex<Inner>>>, headers: HeaderMap) -> Response {
    let g = s.lock().unwrap();
    if !authorised(&g, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let items: Vec<&Value> = g.line_items.values().take(1).collect();
    axum::Json(json!({ "lineItems": items })).into_response()
}

fn imsx(status: StatusCode, text: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "imsx_codeMajor": "failure",
            "imsx_severity": "error",
            "imsx_description": text,
        })),
    )
        .into_response()
}

async fn put(
    State(s): State<Arc<Mutex<Inner>>>,
    Path((collection, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let delay = s.lock().unwrap().delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (fault, slow) = {
        let mut g = s.lock().unwrap();
        if !authorised(&g, &headers) {
            return imsx(StatusCode::UNAUTHORIZED, "token unknown or expired");
        }
        g.writes.push((collection.clone(), id.clone()));
        (g.faults.next(), g.slow)
    };
    match fault {
        Some(Fault::Status500) => {
            return imsx(StatusCode::INTERNAL_SERVER_ERROR, "database hiccup");
        }
        Some(Fault::Status503) => return imsx(StatusCode::SERVICE_UNAVAILABLE, "maintenance"),
        Some(Fault::TooMany) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "1")],
                "slow down",
            )
                .into_response();
        }
        _ => {}
    }
    let doc: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return imsx(StatusCode::BAD_REQUEST, &format!("not JSON: {e}")),
    };
    {
        let mut g = s.lock().unwrap();
        match collection.as_str() {
            "lineItems" => {
                let li = &doc["lineItem"];
                if li["sourcedId"] != json!(id) || li["class"]["sourcedId"].as_str().is_none() {
                    return imsx(
                        StatusCode::BAD_REQUEST,
                        "lineItem needs sourcedId = path id and class",
                    );
                }
                g.line_items.insert(id.clone(), li.clone());
            }
            "results" => {
                let r = &doc["result"];
                let student = r["student"]["sourcedId"].as_str().unwrap_or("");
                if g.reject_student.as_deref() == Some(student) {
                    return imsx(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        &format!("student {student} is not enrolled in the class"),
                    );
                }
                let li = r["lineItem"]["sourcedId"].as_str().unwrap_or("");
                if r["sourcedId"] != json!(id) || student.is_empty() {
                    return imsx(
                        StatusCode::BAD_REQUEST,
                        "result needs sourcedId = path id and student",
                    );
                }
                if !g.line_items.contains_key(li) {
                    return imsx(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        &format!("unknown lineItem {li}"),
                    );
                }
                g.results.insert(id.clone(), r.clone());
            }
            _ => return StatusCode::NOT_FOUND.into_response(),
        }
    }
    match fault {
        Some(Fault::SlowAfterStore) => {
            tokio::time::sleep(slow).await;
            StatusCode::CREATED.into_response()
        }
        Some(Fault::DropAfterStore) => {
            // headers go out, then the body fails: the connection is cut
            let stream = futures::stream::iter(vec![
                Ok::<_, std::io::Error>(Bytes::from_static(b"{\"result\":")),
                Err(std::io::Error::other("cut")),
            ]);
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, "100")
                .body(Body::from_stream(stream))
                .unwrap()
        }
        _ => (StatusCode::CREATED, axum::Json(doc)).into_response(),
    }
}
