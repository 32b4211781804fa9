//! An in-process SCIM 2.0 service provider on 127.0.0.1 for tests: keeps
//! Users and Groups in memory, applies PATCH operations, counts requests,
//! captures bodies and fails on demand.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

pub const TOKEN: &str = "test-token-0123456789";

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: String,
}

#[derive(Default)]
pub struct Inner {
    pub users: BTreeMap<String, Value>,
    pub groups: BTreeMap<String, Value>,
    pub requests: Vec<Request>,
    pub next_id: u64,
    pub patch_supported: bool,
    /// Status codes to answer the next write requests with, in order.
    pub fail_writes: VecDeque<(u16, Option<&'static str>)>,
    /// Refuse writes whose body contains this text with 400.
    pub reject_containing: Option<String>,
    /// Like SCIMMY or django-scim2 with their defaults: what a faithful
    /// platform would not do. Attributes (top-level keys, `name.sub`) that
    /// are silently dropped when stored.
    pub drop_attrs: Vec<String>,
    /// `filter.supported` is false and a filter is answered with 400.
    pub no_filter: bool,
    /// Lists ignore startIndex and count: always the first 20 (SCIMMY
    /// served by Express 5).
    pub ignore_start_index: bool,
    /// The filter finds nothing (a buggy or eventually consistent index).
    pub filter_blind: bool,
    /// POST of an externalId that exists answers 409.
    pub conflict_on_external_id: bool,
    /// PATCH advertised but answered with 501.
    pub patch_501: bool,
    /// `/Schemas` answer; 404 when None.
    pub schemas: Option<Value>,
    /// `/ResourceTypes` answer; 404 when None.
    pub resource_types: Option<Value>,
    /// The scope of each accepted OAuth2 token request to `/token`.
    pub token_scopes: Vec<String>,
}

/// OAuth2 client credentials that `/token` exchanges for [`TOKEN`].
pub const CLIENT_ID: &str = "sisync-scim";
pub const CLIENT_SECRET: &str = "scim-client-s3cret";

impl Inner {
    /// Store as a lossy platform would.
    fn lossy(&self, mut v: Value) -> Value {
        for a in &self.drop_attrs {
            match a.split_once('.') {
                Some((outer, inner)) if !a.starts_with("urn:") => {
                    if let Some(o) = v.get_mut(outer).and_then(Value::as_object_mut) {
                        o.remove(inner);
                    }
                }
                _ => {
                    if let Some(o) = v.as_object_mut() {
                        o.remove(a.as_str());
                    }
                }
            }
        }
        v
    }
}

#[derive(Clone)]
pub struct FakeScim {
    pub inner: Arc<Mutex<Inner>>,
    pub base: String,
    /// Milliseconds each write request waits before it is handled.
    pub write_delay_ms: Arc<std::sync::atomic::AtomicU64>,
}

impl FakeScim {
    pub async fn start(patch_supported: bool) -> FakeScim {
        let inner = Arc::new(Mutex::new(Inner {
            patch_supported,
            ..Inner::default()
        }));
        // every request but /token, /Schemas and /ResourceTypes passes the gate
        let gated = Router::new()
            .route("/scim/v2/ServiceProviderConfig", get(spc))
            .route("/scim/v2/:resource", get(list).post(create))
            .route(
                "/scim/v2/:resource/:id",
                get(read).patch(patch).put(put).delete(delete),
            )
            .route_layer(axum::middleware::from_fn_with_state(inner.clone(), gated));
        let app = Router::new()
            .route("/token", axum::routing::post(token))
            .route("/scim/v2/Schemas", get(schemas))
            .route("/scim/v2/ResourceTypes", get(resource_types))
            .merge(gated)
            .with_state(inner.clone());
        let write_delay_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let delay = write_delay_ms.clone();
        let app = app.layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let ms = delay.load(std::sync::atomic::Ordering::SeqCst);
                async move {
                    if ms > 0 && req.method() != Method::GET {
                        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    }
                    next.run(req).await
                }
            },
        ));
        let addr = super::http1::serve_router(app).await;
        FakeScim {
            inner,
            base: format!("http://{addr}/scim/v2"),
            write_delay_ms,
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.inner.lock().unwrap().requests.clone()
    }

    pub fn writes(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .collect()
    }

    pub fn clear_requests(&self) {
        self.inner.lock().unwrap().requests.clear();
    }

    pub fn users(&self) -> Vec<Value> {
        self.inner.lock().unwrap().users.values().cloned().collect()
    }

    pub fn groups(&self) -> Vec<Value> {
        self.inner
            .lock()
            .unwrap()
            .groups
            .values()
            .cloned()
            .collect()
    }

    pub fn user_by_external_id(&self, ext: &str) -> Option<Value> {
        self.users().into_iter().find(|u| u["externalId"] == ext)
    }

    /// Users by externalId, without the platform's own `id` and `meta`:
    /// what two platforms fed the same roster must agree on.
    pub fn users_by_external_id(&self) -> BTreeMap<String, Value> {
        self.users()
            .into_iter()
            .map(|mut u| {
                let ext = u["externalId"].as_str().unwrap().to_string();
                let o = u.as_object_mut().unwrap();
                o.remove("id");
                o.remove("meta");
                (ext, u)
            })
            .collect()
    }

    /// The users' externalIds by the platform's `id`.
    pub fn external_ids(&self) -> BTreeMap<String, String> {
        self.users()
            .iter()
            .map(|u| {
                (
                    u["id"].as_str().unwrap().to_string(),
                    u["externalId"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Groups by externalId: (displayName, the members' externalIds).
    pub fn groups_by_external_id(&self) -> BTreeMap<String, (String, BTreeSet<String>)> {
        let ext_of = self.external_ids();
        self.groups()
            .iter()
            .map(|g| {
                let members = g["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| ext_of[m["value"].as_str().unwrap()].clone())
                    .collect();
                (
                    g["externalId"].as_str().unwrap().to_string(),
                    (g["displayName"].as_str().unwrap().to_string(), members),
                )
            })
            .collect()
    }

    /// The memberships of all groups together.
    pub fn member_count(&self) -> usize {
        self.groups()
            .iter()
            .map(|g| g["members"].as_array().unwrap().len())
            .sum()
    }
}

type Shared = State<Arc<Mutex<Inner>>>;

/// OAuth2 client credentials (RFC 6749 §4.4, client authenticated with
/// HTTP Basic) for the SCIM token.
async fn token(State(s): Shared, headers: HeaderMap, body: String) -> Response {
    use base64::Engine as _;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    let ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Basic {basic}"));
    if !ok || !body.contains("grant_type=client_credentials") {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let scope = body
        .split('&')
        .find_map(|kv| kv.strip_prefix("scope="))
        .unwrap_or("")
        .replace("%3A", ":")
        .replace("+", " ");
    s.lock().unwrap().token_scopes.push(scope);
    axum::Json(json!({"access_token": TOKEN, "token_type": "bearer", "expires_in": 3600}))
        .into_response()
}

fn scim(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/scim+json")],
        v.to_string(),
    )
        .into_response()
}

fn error(status: u16, detail: &str) -> Response {
    let mut body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": status.to_string(), "detail": detail});
    // RFC 7644 §3.12: a 400 names its kind
    if status == 400 {
        body["scimType"] = json!("invalidValue");
    }
    scim(StatusCode::from_u16(status).unwrap(), body)
}

/// Auth, recording and fault injection in front of every SCIM handler: the
/// request is recorded with its path below `/scim/v2` and its body.
async fn gated(
    State(s): Shared,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let path = parts.uri.path().trim_start_matches("/scim/v2");
    if let Some(r) = gate(
        &mut s.lock().unwrap(),
        &parts.method,
        path,
        &parts.headers,
        &body,
    ) {
        return r;
    }
    let req = axum::extract::Request::from_parts(parts, axum::body::Body::from(body));
    next.run(req).await
}

fn gate(
    inner: &mut Inner,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<Response> {
    inner.requests.push(Request {
        method: method.to_string(),
        path: path.to_string(),
        body: String::from_utf8_lossy(body).to_string(),
    });
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {TOKEN}")) {
        return Some(error(401, "bad token"));
    }
    if method != Method::GET {
        if let Some((code, retry_after)) = inner.fail_writes.pop_front() {
            let mut r = error(code, "injected");
            if let Some(ra) = retry_after {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, ra.parse().unwrap());
            }
            return Some(r);
        }
        if let Some(bad) = &inner.reject_containing {
            if String::from_utf8_lossy(body).contains(bad.as_str()) {
                return Some(error(400, "rejected by test"));
            }
        }
    }
    None
}

fn store<'a>(inner: &'a mut Inner, resource: &str) -> Option<&'a mut BTreeMap<String, Value>> {
    match resource {
        "Users" => Some(&mut inner.users),
        "Groups" => Some(&mut inner.groups),
        _ => None,
    }
}

async fn spc(State(s): Shared) -> Response {
    let inner = s.lock().unwrap();
    scim(
        StatusCode::OK,
        json!({"patch": {"supported": inner.patch_supported}, "filter": {"supported": !inner.no_filter, "maxResults": 200}, "bulk": {"supported": false}}),
    )
}

async fn schemas(State(s): Shared) -> Response {
    match s.lock().unwrap().schemas.clone() {
        Some(v) => scim(StatusCode::OK, v),
        None => error(404, "not found"),
    }
}

async fn resource_types(State(s): Shared) -> Response {
    match s.lock().unwrap().resource_types.clone() {
        Some(v) => scim(StatusCode::OK, v),
        None => error(404, "not found"),
    }
}

async fn list(
    State(s): Shared,
    Path(resource): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let mut inner = s.lock().unwrap();
    if q.contains_key("filter") && inner.no_filter {
        return error(400, "filtering is not supported");
    }
    let blind = inner.filter_blind && q.contains_key("filter");
    let Some(map) = store(&mut inner, &resource) else {
        return error(404, "no such resource type");
    };
    let wanted = q.get("filter").and_then(|f| {
        f.strip_prefix("externalId eq \"")
            .and_then(|r| r.strip_suffix('"'))
            .map(|v| v.replace("\\\"", "\""))
    });
    let found: Vec<Value> = map
        .values()
        .filter(|_| !blind)
        .filter(|v| match &wanted {
            Some(w) => v["externalId"] == *w.as_str(),
            None => true,
        })
        .cloned()
        .collect();
    // pages as RFC 7644 §3.4.2.4 says: startIndex (1-based) and count
    let total = found.len();
    let start: usize = q
        .get("startIndex")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let count: usize = q
        .get("count")
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
        .min(50);
    let (start, count) = if inner.ignore_start_index {
        (1, 20)
    } else {
        (start, count)
    };
    let page: Vec<Value> = found.into_iter().skip(start - 1).take(count).collect();
    scim(
        StatusCode::OK,
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": total, "startIndex": start, "itemsPerPage": page.len(), "Resources": page}),
    )
}

async fn create(State(s): Shared, Path(resource): Path<String>, body: Bytes) -> Response {
    let mut inner = s.lock().unwrap();
    let Ok(mut v) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "not json");
    };
    inner.next_id += 1;
    let id = format!("{}-{}", resource.to_lowercase(), inner.next_id);
    if resource == "Users" {
        let taken = inner.users.values().any(|u| u["userName"] == v["userName"]);
        if taken {
            return error(409, "userName taken");
        }
    }
    if inner.conflict_on_external_id {
        let ext = v["externalId"].clone();
        if let Some(m) = store(&mut inner, &resource) {
            if m.values().any(|x| x["externalId"] == ext) {
                return error(409, "externalId taken");
            }
        }
    }
    v["id"] = json!(id);
    let v = inner.lossy(v);
    let Some(map) = store(&mut inner, &resource) else {
        return error(404, "no such resource type");
    };
    map.insert(id, v.clone());
    scim(StatusCode::CREATED, v)
}

async fn read(State(s): Shared, Path((resource, id)): Path<(String, String)>) -> Response {
    let mut inner = s.lock().unwrap();
    match store(&mut inner, &resource).and_then(|m| m.get(&id)) {
        Some(v) => scim(StatusCode::OK, v.clone()),
        None => error(404, "not found"),
    }
}

/// Apply one PATCH operation (the subset sisync sends).
fn apply_op(target: &mut Value, op: &Value) {
    let path = op["path"].as_str().unwrap_or_default();
    let kind = op["op"].as_str().unwrap_or_default().to_ascii_lowercase();
    // extension attributes: "urn:...:User:attr"
    let (container, attr): (Vec<String>, String) = if let Some(i) = path.rfind(':') {
        (vec![path[..i].to_string()], path[i + 1..].to_string())
    } else if let Some((a, b)) = path.split_once('.') {
        (vec![a.to_string()], b.to_string())
    } else {
        (vec![], path.to_string())
    };
    let mut obj = target;
    for c in &container {
        if obj.get(c).is_none() {
            obj[c.as_str()] = json!({});
        }
        obj = obj.get_mut(c).unwrap();
    }
    match kind.as_str() {
        "remove" => {
            if let Some(m) = obj.as_object_mut() {
                m.remove(&attr);
            }
        }
        _ => obj[attr.as_str()] = op["value"].clone(),
    }
}

async fn patch(
    State(s): Shared,
    Path((resource, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut inner = s.lock().unwrap();
    if !inner.patch_supported || inner.patch_501 {
        return error(501, "patch not supported");
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "not json");
    };
    let Some(target) = store(&mut inner, &resource).and_then(|m| m.get_mut(&id)) else {
        return error(404, "not found");
    };
    for op in v["Operations"].as_array().cloned().unwrap_or_default() {
        apply_op(target, &op);
    }
    let stored = target.clone();
    let stored = inner.lossy(stored);
    let id2 = id.clone();
    if let Some(m) = store(&mut inner, &resource) {
        m.insert(id2, stored.clone());
    }
    scim(StatusCode::OK, stored)
}

async fn put(
    State(s): Shared,
    Path((resource, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut inner = s.lock().unwrap();
    let Ok(mut v) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "not json");
    };
    let Some(map) = store(&mut inner, &resource) else {
        return error(404, "no such resource type");
    };
    if !map.contains_key(&id) {
        return error(404, "not found");
    }
    v["id"] = json!(id);
    let v = inner.lossy(v);
    if let Some(map) = store(&mut inner, &resource) {
        map.insert(id, v.clone());
    }
    scim(StatusCode::OK, v)
}

async fn delete(State(s): Shared, Path((resource, id)): Path<(String, String)>) -> Response {
    let mut inner = s.lock().unwrap();
    match store(&mut inner, &resource).and_then(|m| m.remove(&id)) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => error(404, "not found"),
    }
}
