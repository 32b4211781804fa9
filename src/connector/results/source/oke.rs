//! OKE result source (flow 3.4, the exam platform is the server): `GET
//! /offerings/{id}/associations?consumer=nl-test-admin` paged with
//! `pageSize`/`pageNumber`/`hasNextPage`; every association that carries
//! a result becomes an [`ExamResult`] with its [`OkeResult`] details,
//! keyed by the SIS registration (`orgAssociationId`) and attempt.

pub mod config;

use serde_json::Value;

use crate::config::Loaded;
use crate::connector::oke::is_uuid;
use crate::connector::oke::results_wire::{self as wire, CONSUMER_KEY, enc, get_pages, join};
use crate::connector::source::Testing;
use crate::http::{Http, HttpError};
use crate::model::{ExamResult, OkeResult, ResultValue, SourceIssue};

/// One exam sitting's associations as read from the platform.
pub struct Fetched {
    /// `GET …/offerings/{id}/associations` without the paging parameters.
    pub url: String,
    /// The pages as one JSON array: what is hashed and parsed.
    pub bytes: Vec<u8>,
}

/// Read every page of the associations of one offering (flow 3.4).
pub async fn fetch_offering(
    http: &Http,
    base_url: &str,
    offering: &str,
    page_size: u32,
) -> Result<Fetched, HttpError> {
    let url = join(
        base_url,
        &format!(
            "/offerings/{}/associations?consumer={CONSUMER_KEY}",
            enc(offering)
        ),
    );
    let pages = get_pages(http, &url, page_size).await?;
    Ok(Fetched {
        url,
        bytes: serde_json::to_vec(&pages).unwrap_or_default(),
    })
}

const ATTENDANCE: [&str; 5] = [
    "notKnown",
    "notPresent",
    "notStarted",
    "notFinished",
    "present",
];
const RESULT_STATES: [&str; 4] = ["in progress", "postponed", "completed", "queued"];

/// The results in the pages of one offering: each association with a
/// result (attendance known) becomes one [`ExamResult`]; a record that
/// cannot be read is reported with its location and skipped.
pub fn read_results(
    bytes: &[u8],
    origin: &str,
    offering: &str,
    each: &mut dyn FnMut(ExamResult) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<SourceIssue>> {
    let pages: Vec<wire::Page> = serde_json::from_slice(bytes)
        .map_err(|e| anyhow::anyhow!("{origin}: not OOAPI pages ({e})"))?;
    let mut issues = Vec::new();
    for (p, page) in pages.iter().enumerate() {
        for (i, item) in page.items.iter().enumerate() {
            let at = format!("{origin} page {} item {}", p + 1, i + 1);
            let issue = |id: Option<&str>, reason: String| SourceIssue {
                location: at.clone(),
                record_id: id.map(String::from),
                reason,
            };
            let a: wire::Association = match serde_json::from_value(item.clone()) {
                Ok(a) => a,
                Err(e) => {
                    issues.push(issue(
                        item.get("associationId").and_then(Value::as_str),
                        format!("not an OOAPI association ({e}); skipped, its result is not read"),
                    ));
                    continue;
                }
            };
            let Some(result) = &a.result else { continue };
            let rc = result.consumer().unwrap_or_default();
            let attendance = rc.attendance.clone().unwrap_or_else(|| "notKnown".into());
            if attendance == "notKnown" && result.score.is_none() {
                continue; // planned, not taken yet
            }
            let id = Some(a.association_id.as_str());
            if !ATTENDANCE.contains(&attendance.as_str()) {
                issues.push(issue(
                    id,
                    format!("attendance {attendance:?} is not one of {ATTENDANCE:?}; skipped"),
                ));
                continue;
            }
            let state = result.state.clone().unwrap_or_default();
            if !RESULT_STATES.contains(&state.as_str()) {
                issues.push(issue(
                    id,
                    format!("result.state {state:?} is not one of {RESULT_STATES:?}; skipped"),
                ));
                continue;
            }
            let Some(person) = a.person_id() else {
                issues.push(issue(id, "has no person; skipped".into()));
                continue;
            };
            let ac = a.consumer().unwrap_or_default();
            let attempt = ac.attempt.unwrap_or(1);
            let Ok(attempt) = u32::try_from(attempt) else {
                issues.push(issue(
                    id,
                    "attempt is not a positive number; skipped".into(),
                ));
                continue;
            };
            let attempt = attempt.max(1);
            let association_id = ac
                .org_association_id
                .clone()
                .unwrap_or_else(|| a.association_id.clone());
            if !is_uuid(&association_id) {
                issues.push(issue(
                    id,
                    "orgAssociationId (or associationId) is not a UUID; skipped".into(),
                ));
                continue;
            }
            let passed = match result.pass.as_deref() {
                Some("passed") => Some(true),
                Some("failed") => Some(false),
                _ => None,
            };
            let taken_at = rc.test_date.clone().or_else(|| result.result_date.clone());
            each(ExamResult {
                candidate: person,
                exam: a.offering_id().unwrap_or_else(|| offering.to_string()),
                session_id: Some(a.association_id.clone()),
                session_source: None,
                value: ResultValue {
                    score: rc.raw_score.map(|x| x as f64),
                    max_score: rc.max_raw_score.map(|x| x as f64),
                    passed,
                    grade: result.score.clone(),
                },
                taken_at,
                origin: at.clone(),
                oke: Some(OkeResult {
                    association_id,
                    attempt,
                    state,
                    attendance,
                    pass: result.pass.clone(),
                    score: result.score.clone(),
                    final_result: rc.r#final,
                    raw_score: rc.raw_score,
                    max_raw_score: rc.max_raw_score,
                    result_date: result.result_date.clone(),
                    test_date: rc.test_date.clone(),
                }),
            })?;
        }
    }
    Ok(issues)
}

impl crate::connector::results::ResultInput for config::OkeResultSource {
    fn check(&self) -> String {
        format!(
            "oke {} (flow 3.4, {} exam sittings)",
            self.endpoint.base_url,
            self.offerings.len()
        )
    }
    fn test_connection<'a>(&'a self, loaded: &'a Loaded) -> Testing<'a> {
        Box::pin(crate::connector::source::timed("results in", async move {
            let http = loaded
                .http_client("results.source", self)?
                .with_max_retries(0);
            let first = self
                .offerings
                .first()
                .map(String::as_str)
                .unwrap_or_default();
            let f = fetch_offering(&http, &self.endpoint.base_url, first, 10).await?;
            Ok(format!("GET {}: OK, authenticated", f.url))
        }))
    }
    fn documents(&self) -> crate::connector::results::Documents<'_> {
        crate::connector::results::Documents::Remote
    }
    fn fetch<'a>(
        &'a self,
        loaded: &'a Loaded,
    ) -> crate::connector::source::BoxFuture<'a, anyhow::Result<crate::connector::results::Fetched>>
    {
        Box::pin(async move {
            use anyhow::Context;
            let http = loaded.http_client("results.source", self)?;
            // every sitting is read before anything is stored: a transport
            // failure fails the whole read
            let mut documents = Vec::with_capacity(self.offerings.len());
            for off in &self.offerings {
                let f = fetch_offering(&http, &self.endpoint.base_url, off, self.page_size)
                    .await
                    .with_context(|| {
                        format!(
                            "cannot read the results of exam sitting {off} from the OKE platform; nothing was read (see sisync check-config --connect)"
                        )
                    })?;
                documents.push(crate::connector::results::Remote {
                    origin: f.url,
                    tag: off.clone(),
                    body: Some(f.bytes),
                });
            }
            Ok(crate::connector::results::Fetched { http, documents })
        })
    }
    fn read(
        &self,
        input: &mut dyn std::io::Read,
        name: &str,
        offering: &str,
        each: &mut dyn FnMut(ExamResult) -> anyhow::Result<()>,
    ) -> anyhow::Result<Vec<SourceIssue>> {
        let mut all = Vec::new();
        input.read_to_end(&mut all)?;
        read_results(&all, name, offering, each)
    }
}
