//! Source `oke`: OKE flow 1.1a, the SIS (Eduarte, Osiris) is the server.
//!
//! 1. `GET /offerings?offeringType=component&component.componentType=test&since=&until=&consumer=nl-test-admin`
//!    over the planning window, paged with `pageSize`/`pageNumber` until
//!    `hasNextPage` is false;
//! 2. per sitting `GET /offerings/{id}/associations?consumer=nl-test-admin`
//!    (paged); an association listed without its nl-test-admin consumer
//!    object is read again by `GET /associations/{id}`;
//! 3. per person `GET /persons/{id}` (unless the association expanded it):
//!    names, e-mail, `otherCodes` with `codeType: eckid` → ECK iD, the
//!    `assignedNeeds` (personal needs with validity dates);
//! 4. with `class_context`, `GET /groups` and `GET /groups/{id}/members`.
//!
//! A canceled (or denied) association, or one whose `finalEndDate` has
//! passed, withdraws the registration; a sitting whose `offeringState` is
//! `canceled` is cancelled. A malformed record is reported (URL, id,
//! reason) and held; a request that fails after its retries fails the
//! whole read, before anything is planned or written.

pub mod config;

use std::collections::{HashMap, HashSet};

use anyhow::{Result, anyhow};
use reqwest::Method;
use serde_json::Value;

use crate::config::Loaded;
use crate::connector::oke::{
    AssignedNeed, Association, AssociationConsumer, CONSUMER, Group as WireGroup, MembershipItem,
    Offering, OfferingConsumer, Page, Person as WirePerson, consumer, id_of,
};
use crate::connector::source::Testing;
use crate::http::{Http, HttpError};
use crate::model::{
    Accommodations, Completeness, ExamOffering, ExamPlanning, Group, Membership, Person,
    PersonalNeed, Registration, RegistrationRole, RegistrationState, Role, Roster, SharedIds,
    SittingDetails, SourceIssue, Status,
};
use config::OkeSource as OkeSourceConfig;

pub struct OkeReader {
    base: String,
    http: Http,
    page_size: usize,
    before: u32,
    after: u32,
    class_context: bool,
}

/// A failed request as one line: what, where (method, URL, status), what
/// to do. The SIS's own problem `detail` is left out: this line reaches
/// the logs, and a detail may echo a record.
fn fail(e: HttpError) -> anyhow::Error {
    anyhow!(
        "{e}; nothing was read or written: check source.base_url, the OAuth2 client and its scope (nl-test-admin-flow-1-5), and try again"
    )
}

impl OkeReader {
    /// The client for a run: credentials and TLS files resolved now.
    pub fn connect(cfg: &OkeSourceConfig, loaded: &Loaded) -> Result<OkeReader> {
        Ok(OkeReader {
            base: cfg.endpoint.base_url.trim_end_matches('/').to_string(),
            http: loaded.http_client("source", cfg)?,
            page_size: cfg.page_size,
            before: cfg.window_days_before,
            after: cfg.window_days_after,
            class_context: cfg.class_context,
        })
    }

    async fn get(&self, url: &str) -> Result<Value> {
        let reply = self
            .http
            .send(Method::GET, url, None, "application/json", false)
            .await
            .map_err(fail)?;
        serde_json::from_slice(&reply.body).map_err(|e| {
            anyhow!("GET {url}: the answer is no JSON ({e}); nothing was read or written")
        })
    }

    /// One record; `None` when the SIS answers 404 (a record problem, not
    /// a transport one).
    async fn get_record(&self, url: &str) -> Result<Option<Value>> {
        let reply = match self
            .http
            .send(Method::GET, url, None, "application/json", false)
            .await
        {
            Ok(r) => r,
            Err(e) if e.status == Some(404) => return Ok(None),
            Err(e) => return Err(fail(e)),
        };
        serde_json::from_slice(&reply.body).map(Some).map_err(|e| {
            anyhow!("GET {url}: the answer is no JSON ({e}); nothing was read or written")
        })
    }

    /// Every item of a paged collection; `query` without paging keys.
    async fn pages(&self, path: &str, query: &str) -> Result<Vec<(String, Value)>> {
        let mut out = Vec::new();
        for number in 1.. {
            let sep = if query.is_empty() { "" } else { "&" };
            let url = format!(
                "{}{path}?{query}{sep}pageSize={}&pageNumber={number}",
                self.base, self.page_size
            );
            let v = self.get(&url).await?;
            let page: Page = serde_json::from_value(v).map_err(|e| {
                anyhow!("GET {url}: not an OOAPI page ({e}); nothing was read or written")
            })?;
            let n = page.items.len();
            out.extend(page.items.into_iter().map(|i| (url.clone(), i)));
            if !page.has_next_page || n == 0 {
                break;
            }
            if number >= 100_000 {
                anyhow::bail!(
                    "GET {url}: more than 100000 pages; the SIS keeps saying hasNextPage"
                );
            }
        }
        Ok(out)
    }

    /// The planning window as OOAPI `since`/`until` dates.
    fn window(&self) -> (String, String) {
        let today = crate::clock::today();
        let since = today - chrono::Days::new(u64::from(self.before));
        let until = today + chrono::Days::new(u64::from(self.after));
        (since.to_string(), until.to_string())
    }

    /// `check-config --connect`: the first page of the sittings.
    pub async fn ping(&self) -> Result<String> {
        let (since, until) = self.window();
        let url = format!(
            "{}/offerings?offeringType=component&since={since}&until={until}&consumer={CONSUMER}&pageSize=10&pageNumber=1",
            self.base
        );
        self.get(&url).await?;
        Ok(url)
    }

    pub async fn read(&self) -> Result<Roster> {
        let today = crate::clock::today().to_string();
        let (since, until) = self.window();
        let mut issues = Vec::new();
        let mut exams = ExamPlanning {
            completeness: Completeness::Bulk,
            ..ExamPlanning::default()
        };
        let list = self
            .pages(
                "/offerings",
                &format!(
                    "offeringType=component&component.componentType=test&since={since}&until={until}&consumer={CONSUMER}"
                ),
            )
            .await?;
        let mut live = Vec::new();
        for (url, item) in list {
            match offering(&item) {
                Ok(o) => {
                    exams.covered.insert(o.id.clone());
                    if o.status == Status::Active {
                        live.push(o.id.clone());
                    }
                    exams.offerings.push(o);
                }
                Err(reason) => issues.push(SourceIssue {
                    location: url,
                    record_id: item
                        .get("offeringId")
                        .and_then(Value::as_str)
                        .map(String::from),
                    reason,
                }),
            }
        }
        // registrations per sitting
        let mut person_roles: HashMap<String, RegistrationRole> = HashMap::new();
        let mut expanded: HashMap<String, Value> = HashMap::new();
        for oid in &live {
            let items = self
                .pages(
                    &format!("/offerings/{oid}/associations"),
                    &format!("consumer={CONSUMER}"),
                )
                .await?;
            for (url, mut item) in items {
                let aid = item
                    .get("associationId")
                    .and_then(Value::as_str)
                    .map(String::from);
                if let Some(id) = &aid {
                    if consumer(&item.get("consumers").and_then(|c| c.as_array().cloned()))
                        .is_none()
                    {
                        // a bare list entry: the association itself has the details
                        item = self
                            .get(&format!(
                                "{}/associations/{id}?consumer={CONSUMER}",
                                self.base
                            ))
                            .await?;
                    }
                }
                match registration(&item, oid, &today) {
                    Ok((r, person)) => {
                        if let Some(p) = person {
                            expanded.insert(r.person.clone(), p);
                        }
                        if r.state != RegistrationState::Canceled {
                            person_roles.entry(r.person.clone()).or_insert(r.role);
                        }
                        exams.registrations.push(r);
                    }
                    Err(reason) => {
                        if let Some(id) = &aid {
                            exams.held.insert(id.clone());
                        }
                        issues.push(SourceIssue {
                            location: url,
                            record_id: aid,
                            reason,
                        });
                    }
                }
            }
        }
        // the persons registered
        let mut persons = Vec::new();
        let mut held_persons = HashSet::new();
        let mut ids: Vec<&String> = person_roles.keys().collect();
        ids.sort();
        for pid in ids {
            let (url, v) = match expanded.get(pid) {
                Some(v) if v.get("givenName").is_some() => {
                    (format!("{}/persons/{pid}", self.base), v.clone())
                }
                _ => {
                    let url = format!("{}/persons/{pid}", self.base);
                    match self.get_record(&url).await? {
                        Some(v) => (url, v),
                        None => {
                            held_persons.insert(pid.clone());
                            issues.push(SourceIssue {
                                location: url,
                                record_id: Some(pid.clone()),
                                reason: "the SIS lists this person in a registration but has no such person (404); their registrations are held".into(),
                            });
                            continue;
                        }
                    }
                }
            };
            match person(&v, person_roles[pid]) {
                Ok(p) => persons.push(p),
                Err(reason) => {
                    held_persons.insert(pid.clone());
                    issues.push(SourceIssue {
                        location: url,
                        record_id: Some(pid.clone()),
                        reason,
                    });
                }
            }
        }
        for r in &exams.registrations {
            if held_persons.contains(&r.person) {
                exams.held.insert(r.id.clone());
            }
        }
        // class context
        let (mut groups, mut memberships) = (Vec::new(), Vec::new());
        let mut ids = SharedIds::default();
        if self.class_context {
            let known: HashSet<&str> = persons.iter().map(|p| p.sourced_id.as_str()).collect();
            for (url, item) in self.pages("/groups", "").await? {
                let g: WireGroup = match serde_json::from_value(item.clone()) {
                    Ok(g) => g,
                    Err(e) => {
                        issues.push(SourceIssue {
                            location: url,
                            record_id: item
                                .get("groupId")
                                .and_then(Value::as_str)
                                .map(String::from),
                            reason: format!("not an OOAPI group: {e}"),
                        });
                        continue;
                    }
                };
                let members = self
                    .pages(&format!("/groups/{}/members", g.group_id), "")
                    .await?;
                for (_, m) in members {
                    let Ok(m) = serde_json::from_value::<MembershipItem>(m) else {
                        continue;
                    };
                    if m.state.as_deref().is_some_and(|s| s != "active")
                        || !known.contains(m.person_id.as_str())
                    {
                        continue;
                    }
                    memberships.push(Membership {
                        status: Status::Active,
                        group: ids.get(&g.group_id),
                        person: ids.get(&m.person_id),
                        role: match m.role.as_deref() {
                            Some("student") | None => Role::Student,
                            _ => Role::Teacher,
                        },
                    });
                }
                groups.push(Group {
                    sourced_id: g.group_id.clone(),
                    status: Status::Active,
                    title: crate::connector::oke::title(&g.name, &g.group_id),
                    code: g.primary_code.map(|c| c.code),
                    org: None,
                    sessions: Vec::new(),
                    course: None,
                });
            }
        }
        Ok(Roster {
            persons,
            groups,
            memberships,
            // persons come with their registrations: one absent now may
            // have a sitting outside the window, so absence is no leaving
            persons_completeness: Completeness::Delta,
            groups_completeness: if self.class_context {
                Completeness::Delta
            } else {
                Completeness::Absent
            },
            memberships_completeness: if self.class_context {
                Completeness::Delta
            } else {
                Completeness::Absent
            },
            issues,
            held_persons,
            format: "OKE 1.0.1 (OOAPI v5, flow 1)".into(),
            exams,
            ..Roster::default()
        })
    }
}

fn text(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// A sitting from an `Offering` item.
pub fn offering(item: &Value) -> Result<ExamOffering, String> {
    let o: Offering =
        serde_json::from_value(item.clone()).map_err(|e| format!("not an OOAPI offering: {e}"))?;
    if o.offering_type.as_deref().is_some_and(|t| t != "component") {
        return Err(format!(
            "offeringType {:?} is no component offering (exam sitting)",
            o.offering_type.unwrap_or_default()
        ));
    }
    let c: OfferingConsumer = consumer(&o.consumers)
        .map(|c| serde_json::from_value(c.clone()))
        .transpose()
        .map_err(|e| format!("its nl-test-admin consumer object is malformed: {e}"))?
        .unwrap_or_default();
    let start = text(&o.start_date_time).ok_or("no startDateTime")?;
    let end = text(&o.end_date_time).ok_or("no endDateTime")?;
    let mut tests: Vec<String> = c
        .tests_to_be_used
        .iter()
        .map(|t| t.component_id.clone())
        .collect();
    if tests.is_empty() {
        if let Some(id) = o.component.as_ref().and_then(|c| id_of(c, "componentId")) {
            tests.push(id);
        }
    }
    let status = match c.offering_state.as_deref() {
        None | Some("active") => Status::Active,
        Some("canceled") => Status::ToBeDeleted,
        Some(other) => return Err(format!("offeringState {other:?} is not active or canceled")),
    };
    Ok(ExamOffering {
        id: o.offering_id.clone(),
        status,
        details: SittingDetails {
            code: o.primary_code.map(|c| c.code),
            title: crate::connector::oke::title(&o.name, &o.offering_id),
            tests,
            start: Some(start),
            end: Some(end),
            location: c.location_code,
        },
    })
}

/// A registration from an `Association` item of sitting `offering`, with
/// the expanded person when the SIS gave one.
pub fn registration(
    item: &Value,
    offering: &str,
    today: &str,
) -> Result<(Registration, Option<Value>), String> {
    let a: Association = serde_json::from_value(item.clone())
        .map_err(|e| format!("not an OOAPI association: {e}"))?;
    let person_v = a.person.clone().ok_or("no person")?;
    let person = id_of(&person_v, "personId").ok_or("no person id")?;
    if let Some(o) = a.offering.as_ref().and_then(|o| id_of(o, "offeringId")) {
        if o != offering {
            return Err(format!(
                "listed under sitting {offering} but names sitting {o}"
            ));
        }
    }
    let c: AssociationConsumer = consumer(&a.consumers)
        .map(|c| serde_json::from_value(c.clone()))
        .transpose()
        .map_err(|e| format!("its nl-test-admin consumer object is malformed: {e}"))?
        .unwrap_or_default();
    let role = match a.role.as_deref() {
        Some("student") => RegistrationRole::Candidate,
        Some("invigilator") => RegistrationRole::Surveillant,
        Some("lecturer" | "teaching assistant" | "coordinator" | "assessor" | "guest") => {
            RegistrationRole::Staff
        }
        Some(other) => {
            return Err(format!(
                "role {other:?} is none of the OOAPI association roles"
            ));
        }
        None => return Err("no role".into()),
    };
    let mut state = match a.state.as_deref() {
        Some("associated" | "pending" | "queued") => RegistrationState::Associated,
        Some("canceled" | "denied") => RegistrationState::Canceled,
        Some("finished") => RegistrationState::Finished,
        Some(other) => {
            return Err(format!(
                "state {other:?} is none of the OOAPI association states"
            ));
        }
        None => return Err("no state".into()),
    };
    // an end date that has passed ends the registration
    if c.final_end_date.as_deref().is_some_and(|d| d < today)
        && state == RegistrationState::Associated
    {
        state = RegistrationState::Canceled;
    }
    let expanded = person_v.is_object().then_some(person_v);
    Ok((
        Registration {
            id: a.association_id,
            person,
            offering: offering.to_string(),
            role,
            state,
            personal_needs: c.personal_needs,
            extra_minutes: c.additional_time_in_min,
            attempt: c.attempt,
        },
        expanded,
    ))
}

/// A person from a `Person` item; `role` is what they do at their sittings.
pub fn person(item: &Value, role: RegistrationRole) -> Result<Person, String> {
    let p: WirePerson =
        serde_json::from_value(item.clone()).map_err(|e| format!("not an OOAPI person: {e}"))?;
    let given = text(&p.given_name).ok_or("no givenName")?;
    let family = text(&p.surname).ok_or("no surname")?;
    let eck = p
        .other_codes
        .iter()
        .find(|c| c.code_type.eq_ignore_ascii_case("eckid"))
        .map(|c| c.code.trim().to_string())
        .filter(|c| !c.is_empty());
    let mut needs = Vec::new();
    if let Some(c) = consumer(&p.consumers) {
        // a list per the spec, a single object in the flow 1 example
        let list: Vec<Value> = match c.get("assignedNeeds") {
            Some(Value::Array(a)) => a.clone(),
            Some(o @ Value::Object(_)) => vec![o.clone()],
            _ => Vec::new(),
        };
        for n in list {
            let n: AssignedNeed = serde_json::from_value(n)
                .map_err(|e| format!("an assignedNeeds entry is malformed: {e}"))?;
            needs.push(PersonalNeed {
                code: n.code,
                start: n.start_date,
                end: n.end_date,
            });
        }
    }
    let role = match role {
        RegistrationRole::Candidate => Role::Student,
        RegistrationRole::Surveillant => Role::Proctor,
        RegistrationRole::Staff => Role::Staff,
    };
    Ok(Person {
        sourced_id: p.person_id,
        status: Status::Active,
        role: Some(role),
        username: p.primary_code.as_ref().map(|c| c.code.clone()),
        identifier: p.primary_code.map(|c| c.code),
        given_name: given,
        middle_name: text(&p.surname_prefix),
        family_name: family,
        email: text(&p.mail),
        eck_id: eck,
        bsn: None,
        orgs: Vec::new(),
        accommodations: Accommodations {
            personal_needs: needs,
            ..Accommodations::default()
        },
    })
}

impl crate::connector::source::RosterSource for OkeSourceConfig {
    fn check(&self) -> Result<String> {
        Ok(format!(
            "oke {} (OKE 1.0.1 flow 1, page size {}, sittings from {} days ago to {} days ahead; `check-config` does not connect)",
            self.endpoint.base_url, self.page_size, self.window_days_before, self.window_days_after
        ))
    }
    fn register_line(&self) -> String {
        format!("OKE (OOAPI) SIS service {}", self.endpoint.base_url)
    }
    fn status_json(&self) -> serde_json::Value {
        serde_json::json!({"base_url": self.endpoint.base_url})
    }
    fn test_connection<'a>(&'a self, loaded: &'a Loaded) -> Testing<'a> {
        Box::pin(crate::connector::source::timed("source link", async move {
            let url = OkeReader::connect(self, loaded)?.ping().await?;
            Ok(format!("GET {url}: OK, authenticated"))
        }))
    }
    fn read(&self, loaded: &Loaded, _: Option<&str>, _: &dyn Fn(u64)) -> Result<Roster> {
        let src = OkeReader::connect(self, loaded)?;
        crate::http::block_on(src.read())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_canceled_or_ended_association_withdraws_and_needs_come_along() {
        let a = json!({
            "associationId": "5a52f86b-edcd-4f7f-9ea9-c8617f6043b6",
            "associationType": "componentOfferingAssociation",
            "role": "student", "state": "associated",
            "consumers": [{"consumerKey": "nl-test-admin", "additionalTimeInMin": 30,
                           "personalNeeds": ["extraTime", "spoken"]}],
            "person": "500e6ac0-b5ab-4071-a207-7983ccd26f7b",
            "offering": "0fdc8e82-eacf-412f-b5cb-1ba2fce589dc"
        });
        let (r, _) =
            registration(&a, "0fdc8e82-eacf-412f-b5cb-1ba2fce589dc", "2027-01-10").unwrap();
        assert_eq!(r.state, RegistrationState::Associated);
        assert_eq!(r.extra_minutes, Some(30));
        assert_eq!(r.personal_needs, vec!["extraTime", "spoken"]);
        let mut ended = a.clone();
        ended["consumers"][0]["finalEndDate"] = json!("2027-01-09");
        let (r, _) =
            registration(&ended, "0fdc8e82-eacf-412f-b5cb-1ba2fce589dc", "2027-01-10").unwrap();
        assert_eq!(r.state, RegistrationState::Canceled);
        let mut canceled = a.clone();
        canceled["state"] = json!("canceled");
        let (r, _) = registration(
            &canceled,
            "0fdc8e82-eacf-412f-b5cb-1ba2fce589dc",
            "2027-01-10",
        )
        .unwrap();
        assert_eq!(r.state, RegistrationState::Canceled);
        let mut bad = a.clone();
        bad["role"] = json!("wizard");
        assert!(
            registration(&bad, "0fdc8e82-eacf-412f-b5cb-1ba2fce589dc", "2027-01-10")
                .unwrap_err()
                .contains("wizard")
        );
        let mut elsewhere = a;
        elsewhere["offering"] = json!("11111111-1111-1111-1111-111111111111");
        assert!(
            registration(
                &elsewhere,
                "0fdc8e82-eacf-412f-b5cb-1ba2fce589dc",
                "2027-01-10"
            )
            .is_err()
        );
    }

    #[test]
    fn eck_id_and_assigned_needs_of_a_person() {
        let p = json!({
            "personId": "123e4567-e89b-12d3-a456-426614174000",
            "primaryCode": {"codeType": "studentNumber", "code": "1234567"},
            "givenName": "Maartje", "surnamePrefix": "van", "surname": "Damme",
            "displayName": "Maartje van Damme", "activeEnrollment": true,
            "affiliations": ["student"], "mail": "m@example.invalid",
            "otherCodes": [{"codeType": "eckid", "code": "https://ketenid.nl/201703/x1"}],
            "consumers": [{"consumerKey": "nl-test-admin",
                "assignedNeeds": {"code": "spoken", "startDate": "2023-10-25", "endDate": "2025-09-30"}}]
        });
        let p = person(&p, RegistrationRole::Candidate).unwrap();
        assert_eq!(p.eck_id.as_deref(), Some("https://ketenid.nl/201703/x1"));
        assert_eq!(p.middle_name.as_deref(), Some("van"));
        assert_eq!(p.accommodations.needs_on("2024-01-01"), vec!["spoken"]);
        assert!(p.accommodations.needs_on("2026-01-01").is_empty());
    }
}
