//! The HTTP floors of `bench/compare.sh` (issue 17): a fast SCIM 2.0 and
//! OneRoster gradebook server, and a bare load loop that replays the very
//! requests sisync sent to it, with the same concurrency and the same HTTP
//! client library.
//!
//!   floor_http serve                      prints its base URL, serves until killed
//!   floor_http replay URL FILE N [lookup] replays FILE with N requests in flight
//!
//! The server keeps what it is sent in memory (externalId → stored
//! resource, in order, for filters and paged lists), answers a write with
//! the resource as stored (the body with its `id`), and records every
//! write request; `POST /_bench/dump?path=F` writes them to F (one JSON
//! line each: method, path, body) and `POST /_bench/reset` forgets
//! everything. `replay` sends those writes again and prints its wall
//! time in seconds; with `lookup` every POST is preceded by the
//! `externalId eq` GET sisync used to send before each create.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

const TOKEN: &str = "Bearer bench";

#[derive(Serialize, Deserialize)]
struct Captured {
    method: String,
    path: String,
    body: String,
}

#[derive(Default)]
struct Kind {
    /// Stored resources in the order they came.
    stored: Vec<Bytes>,
    by_external_id: HashMap<String, usize>,
}

#[derive(Default)]
struct Inner {
    users: Kind,
    groups: Kind,
    captured: Vec<(Method, String, Bytes)>,
}

type Shared = Arc<Mutex<Inner>>;

fn authorised(h: &HeaderMap) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some(TOKEN)
}

fn scim_json(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    (
        status,
        [("content-type", "application/scim+json")],
        body.into(),
    )
        .into_response()
}

#[derive(Deserialize)]
struct ExternalId<'a> {
    #[serde(rename = "externalId", borrow)]
    external_id: Option<std::borrow::Cow<'a, str>>,
}

fn kind<'a>(inner: &'a mut Inner, resource: &str) -> Option<&'a mut Kind> {
    match resource {
        "Users" => Some(&mut inner.users),
        "Groups" => Some(&mut inner.groups),
        _ => None,
    }
}

/// `{"id":"u7",` + the rest of the body: the resource as stored.
fn with_id(prefix: char, n: usize, body: &[u8]) -> Bytes {
    let mut v = format!("{{\"id\":\"{prefix}{n}\"").into_bytes();
    let rest = body.strip_prefix(b"{").unwrap_or(b"}");
    if rest.trim_ascii_start() != b"}" {
        v.push(b',');
    }
    v.extend_from_slice(rest);
    v.into()
}

async fn create(
    State(s): State<Shared>,
    Path(resource): Path<String>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorised(&h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(ExternalId { external_id }) = serde_json::from_slice::<ExternalId>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut inner = s.lock().unwrap();
    inner
        .captured
        .push((Method::POST, format!("/{resource}"), body.clone()));
    let prefix = if resource == "Groups" { 'g' } else { 'u' };
    let Some(k) = kind(&mut inner, &resource) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(ext) = &external_id {
        if k.by_external_id.contains_key(ext.as_ref()) {
            return StatusCode::CONFLICT.into_response();
        }
    }
    let n = k.stored.len();
    let stored = with_id(prefix, n, &body);
    k.stored.push(stored.clone());
    if let Some(ext) = external_id {
        k.by_external_id.insert(ext.into_owned(), n);
    }
    scim_json(StatusCode::CREATED, stored)
}

fn list(total: usize, start: usize, items: &[&Bytes]) -> Response {
    let mut v = format!(
        r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":{total},"startIndex":{start},"itemsPerPage":{},"Resources":["#,
        items.len()
    )
    .into_bytes();
    for (i, r) in items.iter().enumerate() {
        if i > 0 {
            v.push(b',');
        }
        v.extend_from_slice(r);
    }
    v.extend_from_slice(b"]}");
    scim_json(StatusCode::OK, v)
}

async fn query(
    State(s): State<Shared>,
    Path(resource): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    if !authorised(&h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut inner = s.lock().unwrap();
    let Some(k) = kind(&mut inner, &resource) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(f) = q.get("filter") {
        // only `externalId eq "…"`, what sisync sends
        let Some(ext) = f
            .strip_prefix("externalId eq \"")
            .and_then(|r| r.strip_suffix('"'))
        else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        let ext = ext.replace("\\\"", "\"").replace("\\\\", "\\");
        let found: Vec<&Bytes> = k
            .by_external_id
            .get(&ext)
            .map(|&i| &k.stored[i])
            .into_iter()
            .collect();
        return list(found.len(), 1, &found);
    }
    let start = q
        .get("startIndex")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    let count = q
        .get("count")
        .and_then(|v| v.parse().ok())
        .unwrap_or(200usize)
        .min(1000);
    let page: Vec<&Bytes> = k.stored.iter().skip(start - 1).take(count).collect();
    list(k.stored.len(), start, &page)
}

async fn gradebook(
    State(s): State<Shared>,
    Path((collection, id)): Path<(String, String)>,
    h: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if !authorised(&h) {
        return StatusCode::UNAUTHORIZED;
    }
    if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
        return StatusCode::BAD_REQUEST;
    }
    let path = format!("/ims/oneroster/gradebook/v1p2/{collection}/{id}");
    s.lock().unwrap().captured.push((Method::PUT, path, body));
    StatusCode::CREATED
}

async fn dump(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<String, (StatusCode, String)> {
    let path = q
        .get("path")
        .ok_or((StatusCode::BAD_REQUEST, "?path= missing".into()))?;
    let captured = std::mem::take(&mut s.lock().unwrap().captured);
    let mut out = Vec::new();
    for (method, path, body) in &captured {
        let line = Captured {
            method: method.to_string(),
            path: path.clone(),
            body: String::from_utf8_lossy(body).into_owned(),
        };
        serde_json::to_writer(&mut out, &line).expect("serialises");
        out.push(b'\n');
    }
    std::fs::write(path, out).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(format!("{} requests\n", captured.len()))
}

async fn serve() {
    let shared: Shared = Default::default();
    let spc = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],"patch":{"supported":true},"filter":{"supported":true,"maxResults":200},"bulk":{"supported":false},"sort":{"supported":false},"etag":{"supported":false},"changePassword":{"supported":false}}"#;
    let app = Router::new()
        .route(
            "/ServiceProviderConfig",
            get(move || async move { scim_json(StatusCode::OK, spc) }),
        )
        .route("/:resource", get(query).post(create))
        .route(
            "/ims/oneroster/gradebook/v1p2/:collection/:id",
            put(gradebook),
        )
        .route(
            "/_bench/reset",
            post(|State(s): State<Shared>| async move {
                *s.lock().unwrap() = Inner::default();
            }),
        )
        .route("/_bench/dump", post(dump))
        .fallback(any(|uri: Uri| async move {
            (StatusCode::NOT_FOUND, format!("{uri}: not served\n"))
        }))
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("http://{}", listener.local_addr().unwrap());
    use std::io::Write as _;
    std::io::stdout().flush().unwrap();
    axum::serve(listener, app).await.unwrap();
}

fn filter_url(base: &str, c: &Captured) -> Option<String> {
    if c.method != "POST" {
        return None;
    }
    let v: ExternalId = serde_json::from_str(&c.body).ok()?;
    let ext = v.external_id?;
    let mut url = url::Url::parse(&format!("{base}{}", c.path)).ok()?;
    url.query_pairs_mut().append_pair(
        "filter",
        &format!(
            "externalId eq \"{}\"",
            ext.replace('\\', "\\\\").replace('"', "\\\"")
        ),
    );
    Some(url.into())
}

async fn replay(base: &str, file: &str, concurrency: usize, lookup: bool) -> f64 {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file}: {e}"));
    let requests: Vec<Captured> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a captured request"))
        .collect();
    let client = reqwest::Client::builder().build().unwrap();
    let started = Instant::now();
    let content_type = |path: &str| {
        if path.starts_with("/ims/") {
            "application/json"
        } else {
            "application/scim+json"
        }
    };
    let sent = futures::stream::iter(&requests)
        .map(|c| {
            let client = &client;
            async move {
                if lookup {
                    if let Some(url) = filter_url(base, c) {
                        let r = client
                            .get(url)
                            .header("authorization", TOKEN)
                            .send()
                            .await
                            .expect("lookup sent");
                        assert!(r.status().is_success(), "lookup: {}", r.status());
                        r.bytes().await.expect("lookup answered");
                    }
                }
                let method = Method::from_bytes(c.method.as_bytes()).expect("a method");
                let r = client
                    .request(method, format!("{base}{}", c.path))
                    .header("authorization", TOKEN)
                    .header("content-type", content_type(&c.path))
                    .body(c.body.clone())
                    .send()
                    .await
                    .expect("request sent");
                assert!(r.status().is_success(), "{}: {}", c.path, r.status());
                r.bytes().await.expect("answered");
            }
        })
        .buffer_unordered(concurrency)
        .count()
        .await;
    assert_eq!(sent, requests.len());
    started.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; without a mode there is nothing to do
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--bench")
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match args.as_slice() {
        ["serve"] => rt.block_on(serve()),
        ["replay", base, file, n, rest @ ..] => {
            let lookup = rest == ["lookup"];
            let n = n.parse().expect("concurrency is a number");
            println!("{:.3}", rt.block_on(replay(base, file, n, lookup)));
        }
        [] => eprintln!("floor_http: a floor of bench/compare.sh; see its header"),
        _ => {
            eprintln!("usage: floor_http serve | floor_http replay URL FILE CONCURRENCY [lookup]");
            std::process::exit(2);
        }
    }
}
