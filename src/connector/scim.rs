//! SCIM 2.0 (RFC 7643 / 7644) platform sink: Users with the sisync exam
//! extension, and Groups with members.
//!
//! Updates are PATCHes of the changed attributes, or a GET + PUT when the
//! service provider says it does not support PATCH. A user or group whose
//! mapping is lost is found again by an `externalId eq` filter before any
//! POST, so a restart never creates a duplicate.

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::connector::{RecordSink, SinkError, Written};
use crate::http::{Http, HttpError};
use crate::privacy::policy::{PlatformGroup, PlatformUser};
use crate::store::audit::sha256_hex;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const EXAM_SCHEMA: &str = "urn:sisync:schemas:extension:exam:1.0:User";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const CONTENT_TYPE: &str = "application/scim+json";

pub struct ScimSink {
    http: Http,
    base: String,
    patch: bool,
}

impl ScimSink {
    /// Connect: read `/ServiceProviderConfig` to learn whether PATCH works.
    pub async fn connect(base_url: &str, http: Http) -> Result<ScimSink, HttpError> {
        let base = base_url.trim_end_matches('/').to_string();
        let reply = http
            .send(
                Method::GET,
                &format!("{base}/ServiceProviderConfig"),
                None,
                CONTENT_TYPE,
                false,
            )
            .await?;
        let cfg: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        let patch = cfg
            .pointer("/patch/supported")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(ScimSink { http, base, patch })
    }

    /// One authenticated read (`/ServiceProviderConfig` may be public).
    pub async fn ping(&self) -> Result<String, SinkError> {
        let url = format!("{}?count=1", self.url("Users"));
        self.send(Method::GET, &url, None, false).await?;
        Ok(url)
    }

    pub fn uses_patch(&self) -> bool {
        self.patch
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
                endpoint: url.to_string(),
                status: e.status,
                message: e.to_string(),
                payload_sha256: bytes.as_ref().map(|_| sha.clone()),
            })?;
        let v = if reply.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&reply.body).map_err(|e| SinkError {
                endpoint: url.to_string(),
                status: Some(reply.status.as_u16()),
                message: format!("{url}: response is not JSON ({e})"),
                payload_sha256: Some(sha.clone()),
            })?
        };
        Ok((v, sha))
    }

    /// The id of the resource with this externalId, if the platform has one.
    async fn find(&self, resource: &str, external_id: &str) -> Result<Option<String>, SinkError> {
        let filter = format!(
            "externalId eq \"{}\"",
            external_id.replace('\\', "\\\\").replace('"', "\\\"")
        );
        let mut url = url::Url::parse(&self.url(resource)).map_err(|e| SinkError {
            endpoint: self.url(resource),
            status: None,
            message: format!("bad URL: {e}"),
            payload_sha256: None,
        })?;
        url.query_pairs_mut().append_pair("filter", &filter);
        let (v, _) = self.send(Method::GET, url.as_str(), None, false).await?;
        let found = v
            .get("Resources")
            .and_then(Value::as_array)
            .and_then(|r| {
                r.iter()
                    .find(|res| res.get("externalId").and_then(Value::as_str) == Some(external_id))
            })
            .and_then(|res| res.get("id"))
            .and_then(Value::as_str)
            .map(String::from);
        Ok(found)
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

    /// PATCH `ops`, or with PUT-only servers GET + merge + PUT.
    async fn modify(
        &self,
        resource: &str,
        id: &str,
        ops: Vec<Value>,
        full: impl FnOnce(&mut Map<String, Value>),
    ) -> Result<Written, SinkError> {
        let url = self.url(&format!("{resource}/{}", encode_segment(id)));
        if self.patch {
            let body = json!({ "schemas": [PATCH_SCHEMA], "Operations": ops });
            let (_, sha) = self.send(Method::PATCH, &url, Some(&body), false).await?;
            return Ok(Written {
                platform_id: Some(id.to_string()),
                endpoint: url,
                payload_sha256: sha,
            });
        }
        let (current, _) = self.send(Method::GET, &url, None, false).await?;
        let mut obj = match current {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        obj.remove("meta");
        full(&mut obj);
        let body = Value::Object(obj);
        let (_, sha) = self.send(Method::PUT, &url, Some(&body), false).await?;
        Ok(Written {
            platform_id: Some(id.to_string()),
            endpoint: url,
            payload_sha256: sha,
        })
    }
}

fn encode_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The full SCIM User resource for a platform user.
pub fn user_resource(u: &PlatformUser) -> Value {
    let mut schemas = vec![json!(USER_SCHEMA)];
    let mut m = Map::new();
    m.insert("externalId".into(), json!(u.external_id));
    m.insert("userName".into(), json!(u.user_name));
    m.insert("active".into(), json!(u.active));
    if let Some(name) = name_value(u) {
        m.insert("name".into(), name);
    }
    if let Some(e) = &u.email {
        m.insert("emails".into(), emails_value(e));
    }
    let ext = exam_extension(u);
    if !ext.is_empty() {
        schemas.push(json!(EXAM_SCHEMA));
        m.insert(EXAM_SCHEMA.into(), Value::Object(ext));
    }
    m.insert("schemas".into(), Value::Array(schemas));
    Value::Object(m)
}

fn name_value(u: &PlatformUser) -> Option<Value> {
    if u.given_name.is_none() && u.family_name.is_none() {
        return None;
    }
    let mut n = Map::new();
    if let Some(g) = &u.given_name {
        n.insert("givenName".into(), json!(g));
    }
    if let Some(mid) = &u.middle_name {
        n.insert("middleName".into(), json!(mid));
    }
    if let Some(f) = &u.family_name {
        n.insert("familyName".into(), json!(f));
    }
    Some(Value::Object(n))
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

/// PATCH operations that bring the platform's copy in line for `changed`.
pub fn user_patch_ops(u: &PlatformUser, changed: &[&str]) -> Vec<Value> {
    let mut ops = Vec::new();
    let ext = exam_extension(u);
    let ext_path = |a: &str| format!("{EXAM_SCHEMA}:{a}");
    for field in changed {
        match *field {
            "userName" => ops.push(replace("userName", json!(u.user_name))),
            "active" => ops.push(replace("active", json!(u.active))),
            "name" => {
                set_or_remove(
                    &mut ops,
                    "name.givenName",
                    u.given_name.as_ref().map(|v| json!(v)),
                );
                set_or_remove(
                    &mut ops,
                    "name.middleName",
                    u.middle_name.as_ref().map(|v| json!(v)),
                );
                set_or_remove(
                    &mut ops,
                    "name.familyName",
                    u.family_name.as_ref().map(|v| json!(v)),
                );
            }
            "email" => set_or_remove(&mut ops, "emails", u.email.as_deref().map(emails_value)),
            "role" | "org" | "bsn" => {
                set_or_remove(&mut ops, &ext_path(field), ext.get(*field).cloned())
            }
            "accommodations" => {
                for a in ["extraTimePercent", "fontScale", "screenReader"] {
                    set_or_remove(&mut ops, &ext_path(a), ext.get(a).cloned());
                }
            }
            _ => {}
        }
    }
    ops
}

/// The PUT counterpart of [`user_patch_ops`]: change only the `changed`
/// attributes of the platform's current copy, keep everything else.
pub fn apply_user_fields(obj: &mut Map<String, Value>, u: &PlatformUser, changed: &[&str]) {
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
            "userName" => set(obj, "userName", Some(json!(u.user_name))),
            "active" => set(obj, "active", Some(json!(u.active))),
            "name" => {
                let name = obj
                    .entry("name")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(n) = name {
                    set(n, "givenName", u.given_name.as_ref().map(|v| json!(v)));
                    set(n, "middleName", u.middle_name.as_ref().map(|v| json!(v)));
                    set(n, "familyName", u.family_name.as_ref().map(|v| json!(v)));
                    n.remove("formatted");
                }
            }
            "email" => set(obj, "emails", u.email.as_deref().map(emails_value)),
            "role" | "org" | "bsn" | "accommodations" => {
                let attrs: &[&str] = match *field {
                    "role" => &["role"],
                    "org" => &["org"],
                    "bsn" => &["bsn"],
                    _ => &["extraTimePercent", "fontScale", "screenReader"],
                };
                let e = obj
                    .entry(EXAM_SCHEMA)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(e) = e {
                    for a in attrs {
                        set(e, a, ext.get(*a).cloned());
                    }
                }
            }
            _ => {}
        }
    }
    let has_ext = obj
        .get(EXAM_SCHEMA)
        .and_then(Value::as_object)
        .is_some_and(|e| !e.is_empty());
    if !has_ext {
        obj.remove(EXAM_SCHEMA);
    }
    let mut schemas: Vec<Value> = vec![json!(USER_SCHEMA)];
    if let Some(Value::Array(old)) = obj.get("schemas") {
        for sc in old {
            if sc != USER_SCHEMA && sc != EXAM_SCHEMA {
                schemas.push(sc.clone());
            }
        }
    }
    if has_ext {
        schemas.push(json!(EXAM_SCHEMA));
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

impl RecordSink for ScimSink {
    fn endpoint(&self) -> String {
        self.base.clone()
    }

    async fn create_user(&self, user: &PlatformUser) -> Result<Written, SinkError> {
        if let Some(id) = self.find("Users", &user.external_id).await? {
            tracing::info!(record = %user.external_id, "user already on the platform; adopting its id");
            return self
                .update_user(&id, user, crate::privacy::policy::USER_FIELDS)
                .await;
        }
        let url = self.url("Users");
        let body = user_resource(user);
        let (v, sha) = self.send(Method::POST, &url, Some(&body), false).await?;
        let id = Self::id_of(&v, &url, &sha)?;
        Ok(Written {
            platform_id: Some(id),
            endpoint: url,
            payload_sha256: sha,
        })
    }

    async fn update_user(
        &self,
        id: &str,
        user: &PlatformUser,
        changed: &[&str],
    ) -> Result<Written, SinkError> {
        let ops = user_patch_ops(user, changed);
        self.modify("Users", id, ops, |obj| {
            apply_user_fields(obj, user, changed);
            obj.insert("id".into(), json!(id));
        })
        .await
    }

    async fn deactivate_user(&self, id: &str, _external_id: &str) -> Result<Written, SinkError> {
        self.modify("Users", id, vec![replace("active", json!(false))], |obj| {
            obj.insert("active".into(), json!(false));
        })
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
                .update_group(&id, group, member_ids, &["displayName", "members"])
                .await;
        }
        let url = self.url("Groups");
        let body = group_resource(group, member_ids);
        let (v, sha) = self.send(Method::POST, &url, Some(&body), false).await?;
        let id = Self::id_of(&v, &url, &sha)?;
        Ok(Written {
            platform_id: Some(id),
            endpoint: url,
            payload_sha256: sha,
        })
    }

    async fn update_group(
        &self,
        id: &str,
        group: &PlatformGroup,
        member_ids: &[String],
        changed: &[&str],
    ) -> Result<Written, SinkError> {
        let mut ops = Vec::new();
        if let Some(name) = &group.display_name {
            if changed.contains(&"displayName") {
                ops.push(replace("displayName", json!(name)));
            }
        }
        if changed.contains(&"members") || ops.is_empty() {
            if member_ids.is_empty() {
                ops.push(remove("members"));
            } else {
                ops.push(replace("members", members_value(member_ids)));
            }
        }
        let name = group.display_name.clone();
        self.modify("Groups", id, ops, |obj| {
            if let Some(n) = name {
                obj.insert("displayName".into(), json!(n));
            }
            obj.insert("members".into(), members_value(member_ids));
            obj.insert("id".into(), json!(id));
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;
    use crate::privacy::policy::ExamAccommodations;

    fn user() -> PlatformUser {
        PlatformUser {
            external_id: "stu-1".into(),
            user_name: "stu-1".into(),
            active: true,
            given_name: Some("Zoë".into()),
            middle_name: None,
            family_name: Some("Vries".into()),
            email: None,
            role: Some(Role::Student),
            org: Some("99AA00".into()),
            accommodations: Some(ExamAccommodations {
                extra_time_percent: Some(25),
                font_scale: Some(1.5),
                screen_reader: None,
            }),
            bsn: None,
            bsn_hash: None,
            unknown: Vec::new(),
        }
    }

    #[test]
    fn user_resource_carries_extension_and_no_email() {
        let v = user_resource(&user());
        assert_eq!(v["schemas"][1], EXAM_SCHEMA);
        assert_eq!(v[EXAM_SCHEMA]["extraTimePercent"], 25);
        assert_eq!(v[EXAM_SCHEMA]["fontScale"], 1.5);
        assert!(v[EXAM_SCHEMA].get("screenReader").is_none());
        assert!(v.get("emails").is_none());
        assert_eq!(v["name"]["givenName"], "Zoë");
    }

    #[test]
    fn patch_ops_only_for_changed_fields() {
        let ops = user_patch_ops(&user(), &["name"]);
        let paths: Vec<_> = ops.iter().map(|o| o["path"].as_str().unwrap()).collect();
        assert_eq!(
            paths,
            vec!["name.givenName", "name.middleName", "name.familyName"]
        );
        assert_eq!(ops[1]["op"], "remove");
        let ops = user_patch_ops(&user(), &["accommodations"]);
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
        apply_user_fields(&mut obj, &user(), &["name", "accommodations"]);
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
}
