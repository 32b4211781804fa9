//! Platform `oke`: OKE flow 2, the exam platform (Remindo, TOA, …) is the
//! server and sisync the planner.
//!
//! - `PUT /offerings/{offeringId}`: the sitting (flow 2.1), with the
//!   nl-test-admin consumer (`offeringState: active`, `locationCode`,
//!   `testsToBeUsed`);
//! - `PUT /associations/{associationId}`: a candidate or staff member with
//!   the person inside and the nl-test-admin consumer
//!   (`additionalTimeInMin`, `personalNeeds`, `attempt`) (flows 2.2, 2.3);
//! - `PATCH /associations/{associationId}` `state: canceled` to withdraw
//!   (flow 2.4) and `PATCH /offerings/{offeringId}` `offeringState:
//!   canceled` to cancel a sitting (flow 2.5). Nothing is ever deleted.
//!
//! A refusal names the status, the URL and the platform's own problem
//! `detail` (shown to the admin, never logged). Every `PUT` is verified
//! ([`crate::connector::oke::verify`]): the platform's answer, or a `GET` of the record,
//! must hold what sisync sent for the attributes it owns.

pub mod config;

use reqwest::Method;
use serde_json::{Value, json};

use crate::config::Loaded;
use crate::connector::oke::{CONSUMER, is_uuid, uuid_for};
use crate::connector::source::Testing;
use crate::connector::{ExamSink, SinkError, Written};
use crate::digest::sha256_hex;
use crate::http::Http;
use crate::model::RegistrationRole;
use crate::model::platform::PlatformUser;
use crate::model::platform::{PlatformOffering, PlatformRegistration};

const NIL_UUID: &str = "00000000-0000-0000-0000-000000000000";

pub struct OkeExamSink {
    base: String,
    http: Http,
}

/// The language-typed form of a text.
fn nl(s: &str) -> Value {
    json!([{ "language": "nl-NL", "value": s }])
}

/// The OOAPI body of a sitting (flow 2.1).
pub fn offering_body(offering: &PlatformOffering) -> Value {
    let o = &offering.details;
    let mut c = json!({ "consumerKey": CONSUMER, "offeringState": "active" });
    if let Some(l) = &o.location {
        c["locationCode"] = json!(l);
    }
    if !o.tests.is_empty() {
        c["testsToBeUsed"] = o
            .tests
            .iter()
            .map(|t| json!({ "componentId": t }))
            .collect();
    }
    let mut b = json!({
        "offeringId": offering.external_id,
        "primaryCode": { "codeType": "offeringCode", "code": o.code.as_deref().unwrap_or(&offering.external_id) },
        "offeringType": "component",
        "name": nl(&o.title),
        "description": nl(&o.title),
        "teachingLanguage": "nld",
        "resultExpected": true,
        "consumers": [c],
        "startDateTime": o.start,
        "endDateTime": o.end,
    });
    if let Some(t) = o.tests.first() {
        b["component"] = json!(t);
    }
    b
}

/// The OOAPI person inside an association: only what the policy let
/// through (no e-mail unless allowed).
pub fn person_body(id: &str, u: Option<&PlatformUser>, role: RegistrationRole) -> Value {
    let pid = uuid_for(id);
    let Some(u) = u else {
        return json!(pid);
    };
    let display = [&u.given_name, &u.middle_name, &u.family_name]
        .iter()
        .filter_map(|x| x.as_deref())
        .collect::<Vec<_>>()
        .join(" ");
    let mut p = json!({
        "personId": pid,
        "primaryCode": { "codeType": "identifier", "code": u.user_name },
        "givenName": u.given_name.clone().unwrap_or_default(),
        "surname": u.family_name.clone().unwrap_or_default(),
        "displayName": display,
        "activeEnrollment": true,
        "affiliations": [if role == RegistrationRole::Candidate { "student" } else { "employee" }],
    });
    if let Some(m) = &u.middle_name {
        p["surnamePrefix"] = json!(m);
    }
    if let Some(e) = &u.email {
        p["mail"] = json!(e);
    }
    let mut codes = Vec::new();
    if id.starts_with("https://ketenid.nl/") {
        codes.push(json!({ "codeType": "eckid", "code": id }));
    }
    if !is_uuid(id) {
        codes.push(json!({ "codeType": "identifier", "code": id }));
    }
    if !codes.is_empty() {
        p["otherCodes"] = json!(codes);
    }
    p
}

/// The OOAPI body of a registration (flows 2.2, 2.3).
pub fn association_body(r: &PlatformRegistration) -> Value {
    let role = match r.role {
        RegistrationRole::Candidate => "student",
        RegistrationRole::Surveillant => "invigilator",
        RegistrationRole::Staff => "coordinator",
    };
    let mut c = json!({ "consumerKey": CONSUMER });
    // personal needs and extra time are for candidates only
    if r.role == RegistrationRole::Candidate {
        if let Some(m) = r.extra_minutes {
            c["additionalTimeInMin"] = json!(m);
        }
        if let Some(n) = &r.personal_needs {
            c["personalNeeds"] = json!(n);
        }
    }
    if let Some(a) = r.attempt {
        c["attempt"] = json!(a);
    }
    json!({
        "associationId": r.external_id,
        "associationType": "componentOfferingAssociation",
        "role": role,
        "state": r.state.as_str(),
        "consumers": [c],
        "person": person_body(&r.person, r.person_record.as_ref(), r.role),
        "offering": r.offering,
    })
}

impl OkeExamSink {
    /// `http`: the endpoint's client (see `Loaded::http_client`).
    pub fn new(cfg: &config::OkePlatform, http: Http) -> OkeExamSink {
        OkeExamSink {
            base: cfg.endpoint.base_url.trim_end_matches('/').to_string(),
            http,
        }
    }

    /// The URL of `kind` record `id`, the body's bytes and their SHA-256.
    fn encode(
        &self,
        kind: &Kind,
        id: &str,
        body: &Value,
    ) -> Result<(String, Vec<u8>, String), SinkError> {
        let url = format!("{}/{}/{id}", self.base, kind.path);
        let bytes = serde_json::to_vec(body).map_err(|e| SinkError {
            endpoint: url.clone(),
            message: format!("cannot encode the body: {e}"),
            ..SinkError::default()
        })?;
        let sha = sha256_hex(&bytes);
        Ok((url, bytes, sha))
    }

    /// Cancel a record: a merge patch of its state only.
    async fn cancel(&self, kind: &Kind, id: &str) -> Result<Written, SinkError> {
        let (url, bytes, sha) = self.encode(kind, id, &(kind.canceled)())?;
        let merge = "application/merge-patch+json";
        self.http
            .send(Method::PATCH, &url, Some(&bytes), merge, true)
            .await
            .map_err(|e| SinkError::http(e, Some(sha.clone())))?;
        Ok(Written {
            platform_id: None,
            endpoint: url,
            payload_sha256: sha,
        })
    }

    /// A `PUT` of a whole record, then verified delivery: the platform's
    /// answer, or a `GET` of the record when the answer does not carry it,
    /// must hold what was sent for the attributes sisync owns
    /// ([`crate::connector::oke::verify`]). A dropped or changed attribute fails the write
    /// by name (never its value); the state is not touched, so the next
    /// run sends it again.
    async fn put_verified(
        &self,
        kind: &Kind,
        id: &str,
        body: &Value,
    ) -> Result<Written, SinkError> {
        let (url, bytes, sha) = self.encode(kind, id, body)?;
        let reply = self
            .http
            .send(Method::PUT, &url, Some(&bytes), "application/json", true)
            .await
            .map_err(|e| SinkError::http(e, Some(sha.clone())))?;
        let status = reply.status.as_u16();
        let answered = serde_json::from_slice::<Value>(&reply.body)
            .ok()
            .filter(crate::connector::oke::verify::carries_record);
        let (seen, how) = match answered {
            Some(v) => (v, "in its answer"),
            None => {
                let back = self
                    .http
                    .send(Method::GET, &url, None, "application/json", true)
                    .await
                    .map_err(|e| SinkError {
                        endpoint: url.clone(),
                        status: e.status,
                        message: format!(
                            "the platform answered {status} to PUT {url}, but reading it back failed ({e}); not marked done, the next run sends it again"
                        ),
                        payload_sha256: Some(sha.clone()),
                        detail: e.server_message.clone(),
                        refused: false,
                    })?;
                let v = serde_json::from_slice::<Value>(&back.body).map_err(|e| SinkError {
                    endpoint: url.clone(),
                    status: Some(status),
                    message: format!(
                        "the platform answered {status} to PUT {url}, but GET {url} sent no JSON record ({e}); not marked done, the next run sends it again; ask the platform supplier"
                    ),
                    payload_sha256: Some(sha.clone()),
                    detail: None,
                    refused: false,
                })?;
                (v, "read back with GET")
            }
        };
        let lost = (kind.differences)(body, &seen);
        if !lost.is_empty() {
            return Err(SinkError {
                endpoint: url.clone(),
                status: Some(status),
                message: format!(
                    "the platform answered {status} to PUT {url} but did not keep {} ({how}); not marked done, the next run sends it again; ask the platform supplier why it drops or changes {}",
                    lost.join(", "),
                    if lost.len() == 1 { "it" } else { "them" }
                ),
                payload_sha256: Some(sha),
                detail: None,
                refused: false,
            });
        }
        Ok(Written {
            platform_id: None,
            endpoint: url,
            payload_sha256: sha,
        })
    }

    /// `check-config --connect`: one authenticated request (the token with
    /// scope nl-test-admin-flow-2-3-4, then `GET /offerings/{id}` of a
    /// sitting sisync planned, or of the nil UUID before the first run).
    /// A 404 for the nil UUID still proves the token was accepted. Returns
    /// the URL and what the platform answered.
    pub async fn ping(&self, offering: Option<&str>) -> anyhow::Result<(String, String)> {
        let id = offering.unwrap_or(NIL_UUID);
        let url = format!("{}/offerings/{id}", self.base);
        match self
            .http
            .send(Method::GET, &url, None, "application/json", true)
            .await
        {
            Ok(r) => Ok((url, format!("{} (sitting {id} known)", r.status.as_u16()))),
            Err(e) if e.status == Some(404) && offering.is_none() => {
                Ok((url, "404 (no sitting planned yet; the token was accepted)".into()))
            }
            Err(e) if e.status == Some(404) => anyhow::bail!(
                "GET {url}: 404: the platform does not know sitting {id} that sisync planned; check platform.base_url (is this the right platform?) and run `sisync sync --full`"
            ),
            Err(e) => Err(anyhow::Error::new(e).context(format!(
                "GET {url} failed; check platform.base_url, client_id, client_secret_file and that the client may use scope {}",
                crate::connector::oke::SCOPE_FLOW_2_3_4
            ))),
        }
    }

    /// The platform's view of a sitting's registrations (flow 2.6), for
    /// checks: (association id, state) per registration.
    pub async fn associations_of(&self, offering: &str) -> anyhow::Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for number in 1.. {
            let url = format!(
                "{}/offerings/{offering}/associations?consumer={CONSUMER}&pageSize=100&pageNumber={number}",
                self.base
            );
            let reply = self
                .http
                .send(Method::GET, &url, None, "application/json", false)
                .await?;
            let page: crate::connector::oke::Page = serde_json::from_slice(&reply.body)?;
            for i in &page.items {
                if let (Some(id), Some(st)) = (
                    i.get("associationId").and_then(Value::as_str),
                    i.get("state").and_then(Value::as_str),
                ) {
                    out.push((id.to_string(), st.to_string()));
                }
            }
            if !page.has_next_page || page.items.is_empty() {
                break;
            }
        }
        Ok(out)
    }
}

/// A record kind flow 2 writes: where it lives, how a `PUT` is verified
/// and the merge patch that cancels it.
struct Kind {
    path: &'static str,
    differences: fn(&Value, &Value) -> Vec<&'static str>,
    canceled: fn() -> Value,
}

/// Exam sittings.
const OFFERINGS: Kind = Kind {
    path: "offerings",
    differences: crate::connector::oke::verify::offering_differences,
    canceled: || {
        json!({
            "offeringType": "component",
            "consumers": [{ "consumerKey": CONSUMER, "offeringState": "canceled" }],
        })
    },
};

/// Registrations.
const ASSOCIATIONS: Kind = Kind {
    path: "associations",
    differences: crate::connector::oke::verify::association_differences,
    canceled: || json!({ "associationType": "componentOfferingAssociation", "state": "canceled" }),
};

#[async_trait::async_trait(?Send)]
impl ExamSink for OkeExamSink {
    fn endpoint(&self) -> String {
        self.base.clone()
    }

    async fn put_offering(&self, o: &PlatformOffering) -> Result<Written, SinkError> {
        let body = offering_body(o);
        self.put_verified(&OFFERINGS, &o.external_id, &body).await
    }

    async fn cancel_offering(&self, id: &str) -> Result<Written, SinkError> {
        self.cancel(&OFFERINGS, id).await
    }

    async fn put_registration(&self, r: &PlatformRegistration) -> Result<Written, SinkError> {
        let body = association_body(r);
        self.put_verified(&ASSOCIATIONS, &r.external_id, &body)
            .await
    }

    async fn cancel_registration(&self, id: &str) -> Result<Written, SinkError> {
        self.cancel(&ASSOCIATIONS, id).await
    }
}

impl crate::connector::platform::PlatformSink for config::OkePlatform {
    fn writer<'a>(
        &'a self,
        loaded: &'a Loaded,
        _: Option<Result<crate::connector::platform::edexml_drop::Snapshot, String>>,
    ) -> crate::connector::platform::Connecting<'a> {
        Box::pin(async move {
            let http = loaded.http_client("platform", self)?;
            Ok(crate::connector::platform::Writer::Exams {
                sink: Box::new(OkeExamSink::new(self, http)),
                max_consecutive_failures: self.max_consecutive_failures,
            })
        })
    }
    fn check(&self) -> String {
        format!(
            "oke {} (OKE 1.0.1 flow 2, timeout {:?})",
            self.endpoint.base_url, self.endpoint.timeout
        )
    }
    fn register_line(&self) -> String {
        format!("exam platform (OKE) {}", self.endpoint.base_url)
    }
    fn status_json(&self) -> serde_json::Value {
        serde_json::json!({"base_url": self.endpoint.base_url})
    }
    fn exam_shape(&self) -> crate::connector::platform::ExamShape {
        crate::connector::platform::ExamShape::Registrations
    }
    fn test_connection<'a>(&'a self, loaded: &'a Loaded) -> Testing<'a> {
        Box::pin(async move {
            let r = async {
                let http = loaded.http_client("platform", self)?;
                let sink = OkeExamSink::new(self, http);
                let known = known_offering(loaded);
                let started = std::time::Instant::now();
                let (url, answer) = sink.ping(known.as_deref()).await?;
                Ok(format!(
                    "GET {url}: OK, authenticated (scope {}), {} ms, answered {answer}",
                    crate::connector::oke::SCOPE_FLOW_2_3_4,
                    started.elapsed().as_millis()
                ))
            }
            .await;
            vec![("platform link".to_string(), r)]
        })
    }
    fn erase_preview(&self, _platform_id: Option<&str>, _id: &str) -> String {
        format!(
            "nothing at {}: OKE has no person endpoint; ask the platform to erase the person",
            self.endpoint.base_url
        )
    }
    /// OKE has no person endpoint: the person lives in their
    /// registrations, which the platform keeps under its own rules.
    fn erase<'a>(
        &'a self,
        _loaded: &'a Loaded,
        _platform_id: Option<&'a str>,
        _id: &'a str,
    ) -> crate::connector::platform::Erasing<'a> {
        Box::pin(async move {
            Ok(crate::connector::platform::Erased {
                endpoint: self.endpoint.base_url.clone(),
                delivered: None,
                note: Some(format!(
                    "the OKE platform at {} has no person endpoint; ask the platform to erase the person from its registrations",
                    self.endpoint.base_url
                )),
            })
        })
    }
    fn reconciler<'a>(
        &'a self,
        _loaded: &'a Loaded,
    ) -> crate::connector::source::BoxFuture<
        'a,
        anyhow::Result<Box<dyn crate::connector::platform::ReadBack>>,
    > {
        Box::pin(async {
            anyhow::bail!(
                "reconcile compares SCIM users and groups; an OKE platform holds sittings and registrations, which reconcile does not read yet: nothing to compare"
            )
        })
    }
}

/// One active exam sitting sisync wrote to the platform, if the state file
/// exists and holds one (for the connection test).
fn known_offering(loaded: &Loaded) -> Option<String> {
    let path = &loaded.config.state.path;
    if !path.exists() {
        return None;
    }
    let store = crate::store::Store::open(path).ok()?;
    let offerings = store.load_state(crate::store::RecordKind::Offering).ok()?;
    let mut ids: Vec<&String> = offerings
        .iter()
        .filter(|(_, s)| s.active)
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    ids.first().map(|id| id.to_string())
}
