//! SCIM 2.0 (RFC 7643 / 7644) platform sink: Users with the sisync exam
//! extension, and Groups with members.
//!
//! Updates are PATCHes of the changed attributes, or a GET + PUT when the
//! service provider says it does not support PATCH. A user or group whose
//! mapping is lost is found again by externalId before any POST (an
//! `externalId eq` filter, or the platform's list read once per run when
//! that takes fewer requests), so a restart never creates a duplicate.

mod capabilities;
pub mod config;
mod paging;
mod verify;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use reqwest::Method;
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;

pub use capabilities::{Capabilities, ScimNeeds};

use crate::config::ConnectorConfig;
use crate::connector::{RecordSink, SinkError, Written};
use crate::digest::sha256_hex;
use crate::http::{Http, HttpError};
use crate::model::TrackedField;
use crate::model::platform::{PlatformGroup, PlatformUser};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub use config::EXAM_SCHEMA;
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const CONTENT_TYPE: &str = "application/scim+json";

/// How sisync's data is laid out in SCIM resources on this platform.
#[derive(Debug, Clone)]
pub struct Shape {
    /// The extension schema URN that carries role, org and accommodations.
    pub urn: String,
    /// The tussenvoegsel goes in front of familyName ("van der Berg") for
    /// platforms without name.middleName.
    pub middle_in_family: bool,
    /// sisync's extension attribute name → the platform's (for a vendor
    /// extension that calls `extraTimePercent` something else).
    pub attributes: std::collections::BTreeMap<String, String>,
    /// `personal_needs` is in privacy.fields: the accommodations include
    /// `extraTimeMinutes` and `personalNeeds` (set or removed); otherwise
    /// those attributes are never touched.
    pub personal_needs: bool,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            urn: EXAM_SCHEMA.to_string(),
            middle_in_family: false,
            attributes: Default::default(),
            personal_needs: false,
        }
    }
}

impl Shape {
    /// The extension attributes the `accommodations` field stands for.
    fn accommodation_attrs(&self) -> &'static [&'static str] {
        if self.personal_needs {
            &ACCOMMODATION_ATTRS
        } else {
            &ACCOMMODATION_ATTRS[..3]
        }
    }
}

impl Shape {
    /// The platform's name of one of sisync's extension attributes.
    pub fn attr<'a>(&'a self, name: &'a str) -> &'a str {
        self.attributes.get(name).map_or(name, String::as_str)
    }

    fn renamed(&self, ext: Map<String, Value>) -> Map<String, Value> {
        if self.attributes.is_empty() {
            return ext;
        }
        ext.into_iter()
            .map(|(k, v)| (self.attr(&k).to_string(), v))
            .collect()
    }
}

pub struct ScimSink {
    http: Http,
    base: String,
    /// PATCH advertised and not refused with 501/405 so far.
    patch: AtomicBool,
    caps: Capabilities,
    shape: Shape,
    /// externalId → id per resource, read once per run by a paged list
    /// when the platform cannot filter or when that is cheaper.
    index: [OnceCell<HashMap<String, String>>; 2],
    /// Creates the run is about to send per resource (`expect_creates`).
    planned: [AtomicUsize; 2],
    /// Per resource, decided at the first lookup: creates are looked up in
    /// the list read once (fewer requests than one filter GET each).
    by_list: [OnceCell<bool>; 2],
}

/// The slot of a resource in the per-resource arrays.
fn slot(resource: &str) -> usize {
    usize::from(resource == "Groups")
}

impl ScimSink {
    /// Connect: discover what the platform supports
    /// (`/ServiceProviderConfig`, then `/Schemas` and `/ResourceTypes`
    /// where it has them).
    pub async fn connect(base_url: &str, http: Http) -> Result<ScimSink, HttpError> {
        let base = base_url.trim_end_matches('/').to_string();
        let read = |path: &'static str| {
            let http = &http;
            let url = format!("{base}/{path}");
            async move {
                let reply = http
                    .send(Method::GET, &url, None, CONTENT_TYPE, false)
                    .await?;
                Ok::<Value, HttpError>(serde_json::from_slice(&reply.body).unwrap_or(Value::Null))
            }
        };
        let spc = read("ServiceProviderConfig").await?;
        let mut caps = Capabilities::from_service_provider_config(&spc);
        // optional endpoints: a platform without them is checked by
        // reading each write back
        if let Ok(v) = read("Schemas").await {
            if !v.is_null() {
                caps.read_schemas(&v);
            }
        }
        if let Ok(v) = read("ResourceTypes").await {
            if !v.is_null() {
                caps.read_resource_types(&v);
            }
        }
        Ok(ScimSink {
            http,
            base,
            patch: AtomicBool::new(caps.patch),
            caps,
            shape: Shape::default(),
            index: Default::default(),
            planned: Default::default(),
            by_list: Default::default(),
        })
    }

    pub fn with_shape(mut self, shape: Shape) -> ScimSink {
        self.shape = shape;
        self
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// One authenticated read (`/ServiceProviderConfig` may be public).
    pub async fn ping(&self) -> Result<String, SinkError> {
        let url = format!("{}?count=1", self.url("Users"));
        self.send(Method::GET, &url, None, false).await?;
        Ok(url)
    }

    pub fn uses_patch(&self) -> bool {
        self.patch.load(Ordering::Relaxed)
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        repeatable: bool,
    ) -> Result<(Value, String), SinkError> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("json serialises"));
        let sha = bytes.as_deref().map(sha256_hex).unwrap_or_default();
        let reply = self
            .http
            .send(method, url, bytes.as_deref(), CONTENT_TYPE, repeatable)
            .await
            .map_err(|e| SinkError {
                // the request's URL, also when the token endpoint failed
                endpoint: url.to_string(),
                ..SinkError::http(e, bytes.as_ref().map(|_| sha.clone()))
            })?;
        let v = if reply.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&reply.body).map_err(|e| SinkError {
                endpoint: url.to_string(),
                status: Some(reply.status.as_u16()),
                message: format!("{url}: response is not JSON ({e})"),
                payload_sha256: Some(sha.clone()),
                detail: None,
                refused: false,
            })?
        };
        Ok((v, sha))
    }

    /// The id of the resource with this externalId, if the platform has one:
    /// by an `externalId eq` filter, or from a list read once per run when
    /// the platform cannot filter or the list takes fewer requests.
    async fn find(&self, resource: &str, external_id: &str) -> Result<Option<String>, SinkError> {
        if !self.caps.filter || self.list_is_cheaper(resource).await? {
            return Ok(self.index(resource).await?.get(external_id).cloned());
        }
        let filter = format!(
            "externalId eq \"{}\"",
            external_id.replace('\\', "\\\\").replace('"', "\\\"")
        );
        let mut url = url::Url::parse(&self.url(resource)).map_err(|e| SinkError {
            endpoint: self.url(resource),
            message: format!("bad URL: {e}"),
            ..SinkError::default()
        })?;
        url.query_pairs_mut().append_pair("filter", &filter);
        let (v, _) = self.send(Method::GET, url.as_str(), None, false).await?;
        Ok(id_with_external_id(&v, external_id))
    }

    /// Whether reading the whole list (one request per page) costs fewer
    /// requests than one filter GET per planned create; asked once per run
    /// and resource, by one request for the list's size.
    async fn list_is_cheaper(&self, resource: &str) -> Result<bool, SinkError> {
        let i = slot(resource);
        let planned = self.planned[i].load(Ordering::Relaxed);
        if planned < 2 {
            return Ok(false);
        }
        let decided = self.by_list[i].get_or_try_init(|| async {
            let url = format!("{}?startIndex=1&count=1", self.url(resource));
            let (v, _) = self.send(Method::GET, &url, None, false).await?;
            let pages = v
                .get("totalResults")
                .and_then(Value::as_u64)
                .map(|total| total.div_ceil(paging::COUNT as u64) + 1);
            Ok::<bool, SinkError>(pages.is_some_and(|p| p < planned as u64))
        });
        Ok(*decided.await?)
    }

    /// externalId → id of every resource of a kind, by a paged list.
    async fn index(&self, resource: &str) -> Result<&HashMap<String, String>, SinkError> {
        let slot = &self.index[slot(resource)];
        slot.get_or_try_init(|| async {
            let mut map = HashMap::new();
            let mut pager = paging::Pager::new();
            while let Some(url) = pager.next_url(&self.url(resource)) {
                let (v, _) = self.send(Method::GET, &url, None, false).await?;
                for r in pager.take(&url, &v)? {
                    if let (Some(ext), Some(id)) = (
                        r.get("externalId").and_then(Value::as_str),
                        r.get("id").and_then(Value::as_str),
                    ) {
                        map.insert(ext.to_string(), id.to_string());
                    }
                }
            }
            tracing::info!(
                resource,
                found = map.len(),
                filter = self.caps.filter,
                "read the platform's externalIds once for this run"
            );
            Ok(map)
        })
        .await
    }

    /// What the platform holds after a write: the answer's resource, or a
    /// GET when the answer has none.
    async fn stored(&self, url: &str, answer: Value) -> Result<Value, SinkError> {
        if answer.get("id").is_some() {
            return Ok(answer);
        }
        Ok(self.send(Method::GET, url, None, false).await?.0)
    }

    /// A write the platform accepted but did not store as sent is a failed
    /// write naming the attribute, so the next run tries again.
    fn check(&self, url: &str, sent: &Value, stored: &Value, sha: &str) -> Result<(), SinkError> {
        match verify::difference(sent, stored) {
            None => Ok(()),
            Some(d) => Err(SinkError {
                endpoint: url.to_string(),
                status: Some(200),
                message: format!(
                    "platform {d}: it accepted the write but did not store it as sent; see `sisync check-config --connect` for what the platform supports"
                ),
                payload_sha256: Some(sha.to_string()),
                detail: None,
                refused: false,
            }),
        }
    }

    fn id_of(v: &Value, url: &str, sha: &str) -> Result<String, SinkError> {
        v.get("id")
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| SinkError {
                endpoint: url.to_string(),
                status: None,
                message: format!("{url}: the response has no id"),
                payload_sha256: Some(sha.to_string()),
                detail: None,
                refused: false,
            })
    }

    /// Delete a user (erasure). The platform's id, else the one found by
    /// externalId; a user the platform does not have counts as deleted.
    pub async fn delete_user(
        &self,
        platform_id: Option<&str>,
        external_id: &str,
    ) -> Result<Written, SinkError> {
        let id = match platform_id {
            Some(id) => Some(id.to_string()),
            None => self.find("Users", external_id).await?,
        };
        let Some(id) = id else {
            return Ok(Written {
                platform_id: None,
                endpoint: self.url("Users"),
                payload_sha256: String::new(),
            });
        };
        let url = self.url(&format!("Users/{}", encode_segment(&id)));
        match self.send(Method::DELETE, &url, None, false).await {
            Ok(_) => {}
            Err(e) if e.status == Some(404) => {}
            Err(e) => return Err(e),
        }
        Ok(Written {
            platform_id: Some(id),
            endpoint: url,
            payload_sha256: String::new(),
        })
    }

    /// PATCH `ops`, or with PUT-only servers GET + merge + PUT; then the
    /// stored resource is checked against `expected`.
    async fn modify(
        &self,
        resource: &str,
        id: &str,
        ops: Vec<Value>,
        full: impl FnOnce(&mut Map<String, Value>),
        expected: &Value,
    ) -> Result<Written, SinkError> {
        let url = self.url(&format!("{resource}/{}", encode_segment(id)));
        if self.uses_patch() {
            let body = json!({ "schemas": [PATCH_SCHEMA], "Operations": ops });
            match self.send(Method::PATCH, &url, Some(&body), false).await {
                Ok((answer, sha)) => {
                    let stored = self.stored(&url, answer).await?;
                    self.check(&url, expected, &stored, &sha)?;
                    return Ok(Written {
                        platform_id: Some(id.to_string()),
                        endpoint: url,
                        payload_sha256: sha,
                    });
                }
                // PATCH advertised but not implemented: GET + PUT from now on
                Err(e) if matches!(e.status, Some(501) | Some(405)) => {
                    tracing::warn!(
                        status = e.status,
                        "the platform refuses PATCH; using GET + PUT"
                    );
                    self.patch.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        let (current, _) = self.send(Method::GET, &url, None, false).await?;
        let mut obj = match current {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        obj.remove("meta");
        full(&mut obj);
        let body = Value::Object(obj);
        let (answer, sha) = self.send(Method::PUT, &url, Some(&body), false).await?;
        let stored = self.stored(&url, answer).await?;
        self.check(&url, expected, &stored, &sha)?;
        Ok(Written {
            platform_id: Some(id.to_string()),
            endpoint: url,
            payload_sha256: sha,
        })
    }

    /// POST a new resource, verify what was stored. A 409 means it exists
    /// after all (a platform that cannot filter, a race): found and
    /// updated instead.
    async fn post(
        &self,
        resource: &str,
        body: &Value,
    ) -> Result<Result<Written, String>, SinkError> {
        let url = self.url(resource);
        match self.send(Method::POST, &url, Some(body), false).await {
            Ok((v, sha)) => {
                let id = Self::id_of(&v, &url, &sha)?;
                let stored_url = self.url(&format!("{resource}/{}", encode_segment(&id)));
                let stored = self.stored(&stored_url, v).await?;
                self.check(&url, body, &stored, &sha)?;
                Ok(Ok(Written {
                    platform_id: Some(id),
                    endpoint: url,
                    payload_sha256: sha,
                }))
            }
            Err(e) if e.status == Some(409) => {
                let ext = body
                    .get("externalId")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                // the filter may not see it, the index may predate it:
                // read the list anew if need be
                let by_filter = if self.caps.filter {
                    self.find(resource, ext).await?
                } else {
                    None
                };
                let found = match by_filter {
                    Some(id) => Some(id),
                    None => self.fresh_lookup(resource, ext).await?,
                };
                match found {
                    Some(id) => Ok(Err(id)),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn fresh_lookup(&self, resource: &str, ext: &str) -> Result<Option<String>, SinkError> {
        let mut pager = paging::Pager::new();
        while let Some(url) = pager.next_url(&self.url(resource)) {
            let (v, _) = self.send(Method::GET, &url, None, false).await?;
            pager.take(&url, &v)?;
            if let Some(id) = id_with_external_id(&v, ext) {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }
}

impl ScimSink {
    /// Every resource of a kind, by a paged list.
    async fn list_all(&self, resource: &str) -> Result<Vec<Value>, SinkError> {
        let mut out = Vec::new();
        let mut pager = paging::Pager::new();
        while let Some(url) = pager.next_url(&self.url(resource)) {
            let (v, _) = self.send(Method::GET, &url, None, false).await?;
            out.extend(pager.take(&url, &v)?);
        }
        Ok(out)
    }

    /// Everything the platform holds, in sisync's terms (for reconcile).
    pub async fn read_back(&self) -> Result<crate::connector::PlatformSnapshot, SinkError> {
        Ok(crate::connector::PlatformSnapshot {
            users: self
                .read_all("Users", |id, v| crate::connector::StoredUser {
                    id,
                    user: user_from_resource(v, &self.shape),
                })
                .await?,
            groups: self.read_all("Groups", group_from_resource).await?,
        })
    }

    /// Every resource of a kind that has an `id`, as `from` (id, resource)
    /// makes it.
    async fn read_all<T>(
        &self,
        resource: &str,
        from: impl Fn(String, &Value) -> T,
    ) -> Result<Vec<T>, SinkError> {
        let all = self.list_all(resource).await?;
        Ok(all
            .iter()
            .filter_map(|v| Some(from(v.get("id")?.as_str()?.to_string(), v)))
            .collect())
    }
}

impl crate::connector::platform::ReadBack for ScimSink {
    fn read_back(
        &self,
    ) -> crate::connector::source::BoxFuture<
        '_,
        Result<crate::connector::PlatformSnapshot, SinkError>,
    > {
        Box::pin(ScimSink::read_back(self))
    }
    fn names_joined(&self) -> bool {
        self.shape().middle_in_family
    }
}

/// A SCIM User resource in sisync's terms: the inverse of
/// [`user_resource`].
pub fn user_from_resource(v: &Value, shape: &Shape) -> PlatformUser {
    // an empty string is no value: django-scim2 answers `"emails":
    // [{"value": ""}]` for a user sent without e-mail
    let s = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .filter(|x| !x.is_empty())
            .map(String::from)
    };
    let name = v.get("name");
    let ext = v.get(&shape.urn);
    let e = |k: &str| ext.and_then(|x| x.get(shape.attr(k)));
    let acc = crate::model::platform::ExamAccommodations {
        extra_time_percent: e("extraTimePercent")
            .and_then(Value::as_u64)
            .map(|x| x as u32),
        font_scale: e("fontScale").and_then(Value::as_f64),
        screen_reader: e("screenReader").and_then(Value::as_bool),
        extra_time_minutes: e("extraTimeMinutes")
            .and_then(Value::as_u64)
            .map(|x| x as u32),
        personal_needs: e("personalNeeds").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        }),
    };
    let has_acc = acc != crate::model::platform::ExamAccommodations::default();
    PlatformUser {
        external_id: s(v.get("externalId")).unwrap_or_default(),
        user_name: s(v.get("userName")).unwrap_or_default(),
        active: v.get("active").and_then(Value::as_bool).unwrap_or(true),
        given_name: s(name.and_then(|n| n.get("givenName"))),
        middle_name: s(name.and_then(|n| n.get("middleName"))),
        family_name: s(name.and_then(|n| n.get("familyName"))),
        email: s(v
            .get("emails")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|m| m.get("value"))),
        role: e("role")
            .and_then(Value::as_str)
            .and_then(crate::model::Role::parse),
        org: s(e("org")),
        accommodations: has_acc.then_some(acc),
        bsn: None,
        bsn_hash: None,
        unknown: Vec::new(),
    }
}

/// A SCIM Group resource (its `id` apart) as the platform holds it.
fn group_from_resource(id: String, v: &Value) -> crate::connector::StoredGroup {
    let text = |key: &str| v.get(key).and_then(Value::as_str).map(String::from);
    crate::connector::StoredGroup {
        id,
        external_id: text("externalId"),
        display_name: text("displayName"),
        members: v
            .get("members")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.get("value").and_then(Value::as_str))
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The id of the resource in a list answer whose externalId matches.
fn id_with_external_id(v: &Value, external_id: &str) -> Option<String> {
    v.get("Resources")
        .and_then(Value::as_array)
        .and_then(|r| {
            r.iter()
                .find(|res| res.get("externalId").and_then(Value::as_str) == Some(external_id))
        })
        .and_then(|res| res.get("id"))
        .and_then(Value::as_str)
        .map(String::from)
}

fn encode_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The full SCIM User resource for a platform user.
pub fn user_resource(u: &PlatformUser, shape: &Shape) -> Value {
    let mut schemas = vec![json!(USER_SCHEMA)];
    let mut m = Map::new();
    m.insert("externalId".into(), json!(u.external_id));
    m.insert("userName".into(), json!(u.user_name));
    m.insert("active".into(), json!(u.active));
    if let Some(name) = name_value(u, shape) {
        m.insert("name".into(), name);
    }
    if let Some(e) = &u.email {
        m.insert("emails".into(), emails_value(e));
    }
    let ext = exam_extension(u);
    if !ext.is_empty() {
        schemas.push(json!(shape.urn));
        m.insert(shape.urn.clone(), Value::Object(shape.renamed(ext)));
    }
    m.insert("schemas".into(), Value::Array(schemas));
    Value::Object(m)
}

fn name_value(u: &PlatformUser, shape: &Shape) -> Option<Value> {
    if u.given_name.is_none() && u.family_name.is_none() {
        return None;
    }
    let mut n = Map::new();
    if let Some(g) = &u.given_name {
        n.insert("givenName".into(), json!(g));
    }
    let (middle, family) = name_parts(u, shape);
    if let Some(mid) = middle {
        n.insert("middleName".into(), json!(mid));
    }
    if let Some(f) = family {
        n.insert("familyName".into(), json!(f));
    }
    Some(Value::Object(n))
}

/// middleName and familyName as this platform takes them.
fn name_parts(u: &PlatformUser, shape: &Shape) -> (Option<String>, Option<String>) {
    match (&u.middle_name, &u.family_name, shape.middle_in_family) {
        (Some(m), Some(f), true) => (None, Some(format!("{m} {f}"))),
        (_, f, true) => (None, f.clone()),
        (m, f, false) => (m.clone(), f.clone()),
    }
}

fn emails_value(e: &str) -> Value {
    json!([{ "value": e, "type": "work", "primary": true }])
}

fn exam_extension(u: &PlatformUser) -> Map<String, Value> {
    let mut ext = Map::new();
    if let Some(r) = u.role {
        ext.insert("role".into(), json!(r.as_str()));
    }
    if let Some(o) = &u.org {
        ext.insert("org".into(), json!(o));
    }
    if let Some(b) = &u.bsn {
        ext.insert("bsn".into(), json!(b));
    }
    if let Some(a) = &u.accommodations {
        if let Some(x) = a.extra_time_percent {
            ext.insert("extraTimePercent".into(), json!(x));
        }
        if let Some(x) = a.font_scale {
            ext.insert("fontScale".into(), json!(x));
        }
        if let Some(x) = a.screen_reader {
            ext.insert("screenReader".into(), json!(x));
        }
        if let Some(x) = a.extra_time_minutes {
            ext.insert("extraTimeMinutes".into(), json!(x));
        }
        if let Some(x) = &a.personal_needs {
            ext.insert("personalNeeds".into(), json!(x));
        }
    }
    ext
}

fn replace(path: &str, value: Value) -> Value {
    json!({ "op": "replace", "path": path, "value": value })
}

fn remove(path: &str) -> Value {
    json!({ "op": "remove", "path": path })
}

fn set_or_remove(ops: &mut Vec<Value>, path: &str, value: Option<Value>) {
    match value {
        Some(v) => ops.push(replace(path, v)),
        None => ops.push(remove(path)),
    }
}

/// The extension attributes the `accommodations` field stands for.
const ACCOMMODATION_ATTRS: [&str; 5] = [
    "extraTimePercent",
    "fontScale",
    "screenReader",
    "extraTimeMinutes",
    "personalNeeds",
];

/// PATCH operations that bring the platform's copy in line for `changed`.
pub fn user_patch_ops(u: &PlatformUser, changed: &[TrackedField], shape: &Shape) -> Vec<Value> {
    let mut ops = Vec::new();
    let ext = exam_extension(u);
    let ext_path = |a: &str| format!("{}:{}", shape.urn, shape.attr(a));
    let (middle, family) = name_parts(u, shape);
    for field in changed {
        match *field {
            TrackedField::UserName => ops.push(replace("userName", json!(u.user_name))),
            TrackedField::Active => ops.push(replace("active", json!(u.active))),
            TrackedField::Name => {
                set_or_remove(
                    &mut ops,
                    "name.givenName",
                    u.given_name.as_ref().map(|v| json!(v)),
                );
                if !shape.middle_in_family {
                    set_or_remove(
                        &mut ops,
                        "name.middleName",
                        middle.as_ref().map(|v| json!(v)),
                    );
                }
                set_or_remove(
                    &mut ops,
                    "name.familyName",
                    family.as_ref().map(|v| json!(v)),
                );
            }
            TrackedField::Email => {
                set_or_remove(&mut ops, "emails", u.email.as_deref().map(emails_value))
            }
            f @ (TrackedField::Role | TrackedField::Org | TrackedField::Bsn) => set_or_remove(
                &mut ops,
                &ext_path(f.as_str()),
                ext.get(f.as_str()).cloned(),
            ),
            TrackedField::Accommodations => {
                for a in shape.accommodation_attrs() {
                    set_or_remove(&mut ops, &ext_path(a), ext.get(*a).cloned());
                }
            }
            _ => {}
        }
    }
    ops
}

/// The PUT counterpart of [`user_patch_ops`]: change only the `changed`
/// attributes of the platform's current copy, keep everything else.
pub fn apply_user_fields(
    obj: &mut Map<String, Value>,
    u: &PlatformUser,
    changed: &[TrackedField],
    shape: &Shape,
) {
    let urn = shape.urn.as_str();
    let (middle, family) = name_parts(u, shape);
    fn set(m: &mut Map<String, Value>, k: &str, v: Option<Value>) {
        match v {
            Some(v) => {
                m.insert(k.to_string(), v);
            }
            None => {
                m.remove(k);
            }
        }
    }
    let ext = exam_extension(u);
    for field in changed {
        match *field {
            TrackedField::UserName => set(obj, "userName", Some(json!(u.user_name))),
            TrackedField::Active => set(obj, "active", Some(json!(u.active))),
            TrackedField::Name => {
                let name = obj
                    .entry("name")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(n) = name {
                    set(n, "givenName", u.given_name.as_ref().map(|v| json!(v)));
                    set(n, "middleName", middle.as_ref().map(|v| json!(v)));
                    set(n, "familyName", family.as_ref().map(|v| json!(v)));
                    n.remove("formatted");
                }
            }
            TrackedField::Email => set(obj, "emails", u.email.as_deref().map(emails_value)),
            f @ (TrackedField::Role
            | TrackedField::Org
            | TrackedField::Bsn
            | TrackedField::Accommodations) => {
                let attrs: &[&str] = match f {
                    TrackedField::Role => &["role"],
                    TrackedField::Org => &["org"],
                    TrackedField::Bsn => &["bsn"],
                    _ => shape.accommodation_attrs(),
                };
                let e = obj.entry(urn).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(e) = e {
                    for a in attrs {
                        set(e, shape.attr(a), ext.get(*a).cloned());
                    }
                }
            }
            _ => {}
        }
    }
    let has_ext = obj
        .get(urn)
        .and_then(Value::as_object)
        .is_some_and(|e| !e.is_empty());
    if !has_ext {
        obj.remove(urn);
    }
    let mut schemas: Vec<Value> = vec![json!(USER_SCHEMA)];
    if let Some(Value::Array(old)) = obj.get("schemas") {
        for sc in old {
            if sc != USER_SCHEMA && sc != urn {
                schemas.push(sc.clone());
            }
        }
    }
    if has_ext {
        schemas.push(json!(urn));
    }
    obj.insert("schemas".into(), Value::Array(schemas));
}

fn members_value(ids: &[String]) -> Value {
    Value::Array(ids.iter().map(|id| json!({ "value": id })).collect())
}

/// The full SCIM Group resource.
pub fn group_resource(g: &PlatformGroup, member_ids: &[String]) -> Value {
    let mut m = Map::new();
    m.insert("schemas".into(), json!([GROUP_SCHEMA]));
    m.insert("externalId".into(), json!(g.external_id));
    m.insert(
        "displayName".into(),
        json!(g.display_name.as_deref().unwrap_or(&g.external_id)),
    );
    m.insert("members".into(), members_value(member_ids));
    Value::Object(m)
}

/// What a SCIM Group carries of the tracked fields (a full update sends
/// both).
pub const SENT_GROUP_FIELDS: &[TrackedField] = &[TrackedField::DisplayName, TrackedField::Members];

#[async_trait::async_trait(?Send)]
impl RecordSink for ScimSink {
    fn endpoint(&self) -> String {
        self.base.clone()
    }

    fn expect_creates(&self, users: usize, groups: usize) {
        self.planned[0].store(users, Ordering::Relaxed);
        self.planned[1].store(groups, Ordering::Relaxed);
    }

    async fn create_user(&self, user: &PlatformUser) -> Result<Written, SinkError> {
        if let Some(id) = self.find("Users", &user.external_id).await? {
            tracing::info!(record = %user.external_id, "user already on the platform; adopting its id");
            return self.update_user(&id, user, TrackedField::USER).await;
        }
        let body = user_resource(user, &self.shape);
        match self.post("Users", &body).await? {
            Ok(w) => Ok(w),
            Err(id) => {
                tracing::info!(record = %user.external_id, "409: user already on the platform; adopting its id");
                self.update_user(&id, user, TrackedField::USER).await
            }
        }
    }

    async fn update_user(
        &self,
        id: &str,
        user: &PlatformUser,
        changed: &[TrackedField],
    ) -> Result<Written, SinkError> {
        let ops = user_patch_ops(user, changed, &self.shape);
        let expected = user_resource(user, &self.shape);
        self.modify(
            "Users",
            id,
            ops,
            |obj| {
                apply_user_fields(obj, user, changed, &self.shape);
                obj.insert("id".into(), json!(id));
            },
            &expected,
        )
        .await
    }

    async fn deactivate_user(&self, id: &str, _external_id: &str) -> Result<Written, SinkError> {
        self.modify(
            "Users",
            id,
            vec![replace("active", json!(false))],
            |obj| {
                obj.insert("active".into(), json!(false));
            },
            &json!({ "active": false }),
        )
        .await
    }

    async fn create_group(
        &self,
        group: &PlatformGroup,
        member_ids: &[String],
    ) -> Result<Written, SinkError> {
        if let Some(id) = self.find("Groups", &group.external_id).await? {
            tracing::info!(record = %group.external_id, "group already on the platform; adopting its id");
            return self
                .update_group(&id, group, member_ids, SENT_GROUP_FIELDS)
                .await;
        }
        let body = group_resource(group, member_ids);
        match self.post("Groups", &body).await? {
            Ok(w) => Ok(w),
            Err(id) => {
                tracing::info!(record = %group.external_id, "409: group already on the platform; adopting its id");
                self.update_group(&id, group, member_ids, SENT_GROUP_FIELDS)
                    .await
            }
        }
    }

    async fn update_group(
        &self,
        id: &str,
        group: &PlatformGroup,
        member_ids: &[String],
        changed: &[TrackedField],
    ) -> Result<Written, SinkError> {
        let mut ops = Vec::new();
        if let Some(name) = &group.display_name {
            if changed.contains(&TrackedField::DisplayName) {
                ops.push(replace("displayName", json!(name)));
            }
        }
        if changed.contains(&TrackedField::Members) || ops.is_empty() {
            if member_ids.is_empty() {
                ops.push(remove("members"));
            } else {
                ops.push(replace("members", members_value(member_ids)));
            }
        }
        let name = group.display_name.clone();
        let mut expected = Map::new();
        if let Some(n) = &name {
            expected.insert("displayName".into(), json!(n));
        }
        expected.insert("members".into(), members_value(member_ids));
        self.modify(
            "Groups",
            id,
            ops,
            |obj| {
                if let Some(n) = name {
                    obj.insert("displayName".into(), json!(n));
                }
                obj.insert("members".into(), members_value(member_ids));
                obj.insert("id".into(), json!(id));
            },
            &Value::Object(expected),
        )
        .await
    }
}

/// The config's view of a SCIM platform, in this connector's terms (kept
/// here so the config knows no connector type).
impl config::ScimPlatform {
    /// How sisync's data is laid out in this platform's SCIM resources.
    pub fn shape(&self) -> Shape {
        Shape {
            urn: self.extension_urn.clone(),
            middle_in_family: self.middle_name == config::MiddleName::InFamilyName,
            attributes: self.attributes.clone(),
            personal_needs: false,
        }
    }
}

impl crate::config::Field {
    /// What this field needs of a SCIM platform.
    pub fn scim_needs(fields: &[crate::config::Field]) -> ScimNeeds {
        let mut n = ScimNeeds::default();
        for f in fields {
            match f {
                crate::config::Field::Name => n.middle_name = true,
                crate::config::Field::Role => n.extension.push("role"),
                crate::config::Field::Org => n.extension.push("org"),
                crate::config::Field::Accommodations => {
                    n.extension
                        .extend(["extraTimePercent", "fontScale", "screenReader"])
                }
                crate::config::Field::Bsn => n.extension.push("bsn"),
                crate::config::Field::PersonalNeeds => {
                    n.extension.extend(["extraTimeMinutes", "personalNeeds"])
                }
                crate::config::Field::Email
                | crate::config::Field::Groups
                | crate::config::Field::Registrations => {}
            }
        }
        n
    }
}

impl crate::connector::platform::PlatformSink for config::ScimPlatform {
    fn writer<'a>(
        &'a self,
        loaded: &'a crate::config::Loaded,
        _: Option<Result<crate::connector::platform::edexml_drop::Snapshot, String>>,
    ) -> crate::connector::platform::Connecting<'a> {
        use anyhow::Context as _;
        Box::pin(async move {
            let fields = &loaded.config.privacy.fields;
            let http = loaded.http_client("platform", self)?;
            let sink = ScimSink::connect(&self.endpoint.base_url, http)
                .await
                .with_context(
                    || "cannot reach the SCIM platform; check platform.base_url and the token",
                )?
                .with_shape(Shape {
                    personal_needs: fields.contains(&crate::config::Field::PersonalNeeds),
                    ..self.shape()
                });
            // refused before the first write: never a silent loss
            let missing = sink
                .capabilities()
                .missing(&self.shape(), &crate::config::Field::scim_needs(fields));
            if !missing.is_empty() {
                anyhow::bail!(
                    "the platform at {} cannot store what privacy.fields sends; nothing was written:\n  {}",
                    self.endpoint.base_url,
                    missing.join("\n  ")
                );
            }
            tracing::info!(patch = sink.uses_patch(), "connected to SCIM platform");
            Ok(crate::connector::platform::Writer::Records {
                sink: Box::new(sink),
                concurrency: self.concurrency(),
                max_consecutive_failures: self.max_consecutive_failures,
            })
        })
    }
    fn check(&self) -> String {
        format!(
            "scim {} ({}, userName from {}, concurrency {}, timeout {:?})",
            self.endpoint.base_url,
            self.endpoint.describe_auth(),
            self.user_name.as_str(),
            self.concurrency(),
            self.endpoint.timeout
        )
    }
    fn register_line(&self) -> String {
        format!("exam platform (SCIM 2.0) {}", self.endpoint.base_url)
    }
    fn status_json(&self) -> serde_json::Value {
        serde_json::json!({
            "base_url": self.endpoint.base_url,
            "extension_urn": self.extension_urn,
        })
    }
    fn exam_shape(&self) -> crate::connector::platform::ExamShape {
        crate::connector::platform::ExamShape::Groups
    }
    fn test_connection<'a>(
        &'a self,
        loaded: &'a crate::config::Loaded,
    ) -> crate::connector::source::BoxFuture<'a, crate::connector::source::ConnectionReport> {
        Box::pin(async move {
            let r = async {
                let http = loaded
                    .http_client("platform", self)?
                    .with_max_retries(0);
                let started = std::time::Instant::now();
                let sink = ScimSink::connect(&self.endpoint.base_url, http).await?;
                let url = sink.ping().await?;
                let missing = sink.capabilities().missing(
                    &self.shape(),
                    &crate::config::Field::scim_needs(&loaded.config.privacy.fields),
                );
                if !missing.is_empty() {
                    anyhow::bail!(
                        "GET {url}: authenticated, but the platform cannot store what privacy.fields sends:\n  {}",
                        missing.join("\n  ")
                    );
                }
                Ok(format!(
                    "GET {url}: OK, authenticated, {} ms; {}",
                    started.elapsed().as_millis(),
                    sink.capabilities().summary(&self.extension_urn)
                ))
            }
            .await;
            vec![("platform link".to_string(), r)]
        })
    }
    fn erase_preview(&self, platform_id: Option<&str>, id: &str) -> String {
        match platform_id {
            Some(pid) => format!(
                "DELETE {}/Users/{pid}",
                self.endpoint.base_url.trim_end_matches('/')
            ),
            None => format!(
                "DELETE of the user with externalId {id} at {}, if the platform has one",
                self.endpoint.base_url
            ),
        }
    }
    fn erase<'a>(
        &'a self,
        loaded: &'a crate::config::Loaded,
        platform_id: Option<&'a str>,
        id: &'a str,
    ) -> crate::connector::platform::Erasing<'a> {
        use crate::connector::platform::{EraseError, Erased};
        use anyhow::Context as _;
        Box::pin(async move {
            let sink = async {
                let http = loaded.http_client("platform", self)?;
                anyhow::Ok(
                    ScimSink::connect(&self.endpoint.base_url, http)
                        .await
                        .context("cannot reach the SCIM platform; nothing was erased")?
                        .with_shape(self.shape()),
                )
            }
            .await
            .map_err(EraseError::Unreachable)?;
            let w = sink
                .delete_user(platform_id, id)
                .await
                .map_err(|e| EraseError::Refused(e.to_string()))?;
            Ok(Erased {
                endpoint: w.endpoint,
                delivered: None,
                note: None,
            })
        })
    }
    fn reconciles(&self) -> bool {
        true
    }
    fn user_name(&self) -> (crate::config::UserNameFrom, Option<String>) {
        (self.user_name, self.user_name_suffix.clone())
    }
    fn reconciler<'a>(
        &'a self,
        loaded: &'a crate::config::Loaded,
    ) -> crate::connector::source::BoxFuture<
        'a,
        anyhow::Result<Box<dyn crate::connector::platform::ReadBack>>,
    > {
        use anyhow::Context as _;
        Box::pin(async move {
            let http = loaded.http_client("platform", self)?;
            let sink = ScimSink::connect(&self.endpoint.base_url, http)
                .await
                .with_context(
                    || "cannot reach the SCIM platform; check platform.base_url and the token",
                )?
                .with_shape(self.shape());
            Ok(Box::new(sink) as Box<dyn crate::connector::platform::ReadBack>)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;
    use crate::model::platform::ExamAccommodations;

    fn user() -> PlatformUser {
        PlatformUser {
            given_name: Some("Zoë".into()),
            family_name: Some("Vries".into()),
            role: Some(Role::Student),
            org: Some("99AA00".into()),
            accommodations: Some(ExamAccommodations {
                extra_time_percent: Some(25),
                font_scale: Some(1.5),
                screen_reader: None,
                ..Default::default()
            }),
            ..crate::test_util::platform_user("stu-1")
        }
    }

    #[test]
    fn user_resource_carries_extension_and_no_email() {
        let v = user_resource(&user(), &Shape::default());
        assert_eq!(v["schemas"][1], EXAM_SCHEMA);
        assert_eq!(v[EXAM_SCHEMA]["extraTimePercent"], 25);
        assert_eq!(v[EXAM_SCHEMA]["fontScale"], 1.5);
        assert!(v[EXAM_SCHEMA].get("screenReader").is_none());
        assert!(v.get("emails").is_none());
        assert_eq!(v["name"]["givenName"], "Zoë");
    }

    #[test]
    fn patch_ops_only_for_changed_fields() {
        let ops = user_patch_ops(&user(), &[TrackedField::Name], &Shape::default());
        let paths: Vec<_> = ops.iter().map(|o| o["path"].as_str().unwrap()).collect();
        assert_eq!(
            paths,
            vec!["name.givenName", "name.middleName", "name.familyName"]
        );
        assert_eq!(ops[1]["op"], "remove");
        let ops = user_patch_ops(&user(), &[TrackedField::Accommodations], &Shape::default());
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[2]["op"], "remove");
        assert_eq!(ops[0]["path"], format!("{EXAM_SCHEMA}:extraTimePercent"));
    }

    #[test]
    fn put_merge_touches_only_changed_fields() {
        let mut obj = match json!({
            "schemas": [USER_SCHEMA, EXAM_SCHEMA],
            "id": "p1", "userName": "stu-1", "active": true,
            "name": {"givenName": "Old", "familyName": "Vries"},
            "platformOwn": "kept",
            EXAM_SCHEMA: {"role": "student", "extraTimePercent": 33}
        }) {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        apply_user_fields(
            &mut obj,
            &user(),
            &[TrackedField::Name, TrackedField::Accommodations],
            &Shape::default(),
        );
        assert_eq!(obj["name"]["givenName"], "Zoë");
        assert_eq!(obj["platformOwn"], "kept");
        assert_eq!(obj[EXAM_SCHEMA]["role"], "student");
        assert_eq!(obj[EXAM_SCHEMA]["extraTimePercent"], 25);
        assert_eq!(obj[EXAM_SCHEMA]["fontScale"], 1.5);
        assert_eq!(obj["schemas"], json!([USER_SCHEMA, EXAM_SCHEMA]));
    }

    #[test]
    fn ids_are_path_encoded() {
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn empty_strings_read_back_as_no_value() {
        let v = json!({"id": "1", "externalId": "stu-1", "userName": "stu-1",
            "name": {"givenName": "Zoë", "middleName": "", "familyName": "Berg"},
            "emails": [{"value": "", "primary": true}], "active": true});
        let u = user_from_resource(&v, &Shape::default());
        assert_eq!((u.email, u.middle_name), (None, None));
        assert_eq!(u.given_name.as_deref(), Some("Zoë"));
    }
}
