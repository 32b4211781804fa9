//! The OOAPI v5 / OKE 1.0.1 (nl-test-admin) shapes and HTTP helpers of
//! the results flows (3.4 read by the result source, 5 written by the
//! result sink): associations with their result and consumer objects,
//! pages, offerings and persons. Only the fields used are read, everything
//! else is ignored.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::{Http, HttpError};

pub const CONSUMER_KEY: &str = "nl-test-admin";

/// A page of a collection (`hasNextPage` is followed by the reader).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    /// Items are parsed one by one, so one bad record is reported and
    /// skipped instead of failing the page.
    #[serde(default)]
    pub items: Vec<Value>,
}

/// An association as read (flow 1 at the SIS, flow 3.4 at the platform).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Association {
    pub association_id: String,
    pub state: Option<String>,
    pub role: Option<String>,
    #[serde(default)]
    pub consumers: Vec<Value>,
    pub result: Option<WireResult>,
    /// A person id, or the person when expanded.
    pub person: Option<Value>,
    /// An offering id, or the offering when expanded.
    pub offering: Option<Value>,
}

impl Association {
    /// The nl-test-admin consumer object of the association.
    pub fn consumer(&self) -> Option<AssociationConsumer> {
        nl_consumer(&self.consumers)
    }

    pub fn person_id(&self) -> Option<String> {
        id_or_object(self.person.as_ref()?, "personId")
    }

    pub fn offering_id(&self) -> Option<String> {
        id_or_object(self.offering.as_ref()?, "offeringId")
    }
}

fn id_or_object(v: &Value, key: &str) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get(key)?.as_str().map(String::from),
        _ => None,
    }
}

/// The nl-test-admin entry of a `consumers` list, parsed into `T`.
fn nl_consumer<T: for<'de> Deserialize<'de>>(consumers: &[Value]) -> Option<T> {
    consumers
        .iter()
        .find(|c| c.get("consumerKey").and_then(Value::as_str) == Some(CONSUMER_KEY))
        .and_then(|c| serde_json::from_value(c.clone()).ok())
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationConsumer {
    pub attempt: Option<i64>,
    pub org_association_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireResult {
    pub state: Option<String>,
    pub pass: Option<String>,
    pub score: Option<String>,
    pub result_date: Option<String>,
    #[serde(default)]
    pub consumers: Vec<Value>,
}

impl WireResult {
    pub fn consumer(&self) -> Option<ResultConsumerIn> {
        nl_consumer(&self.consumers)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultConsumerIn {
    pub attendance: Option<String>,
    #[serde(default)]
    pub r#final: bool,
    pub raw_score: Option<i64>,
    pub max_raw_score: Option<i64>,
    pub test_date: Option<String>,
}

/// An offering (flow 1: the SIS's planned test).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Offering {
    pub offering_id: String,
    #[serde(flatten)]
    pub codes: Codes,
}

impl Offering {
    /// Whether the offering (or its test) carries this code.
    pub fn has_code(&self, code: &str) -> bool {
        self.codes.has(code)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Code {
    pub code: String,
}

/// The codes of an OOAPI object: `primaryCode` and `otherCodes`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Codes {
    pub primary_code: Option<Code>,
    #[serde(default)]
    pub other_codes: Vec<Code>,
}

impl Codes {
    /// Whether one of them is `code`.
    pub fn has(&self, code: &str) -> bool {
        self.primary_code
            .iter()
            .chain(&self.other_codes)
            .any(|c| c.code == code)
    }
}

/// A person (flow 1): only its codes are read, to match a candidate.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    pub person_id: String,
    #[serde(flatten)]
    pub codes: Codes,
}

impl Person {
    /// Whether the candidate id names this person: its id, its primary
    /// code (student number) or another code (ECK iD, account).
    pub fn is(&self, candidate: &str) -> bool {
        self.person_id == candidate || self.codes.has(candidate)
    }
}

/// The body of a flow 5 write: `PATCH` (5.1, merge patch) or `PUT` (5.2,
/// a new association for an attempt).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub association_id: Option<String>,
    pub association_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
    pub consumers: Vec<AssociationConsumerOut>,
    pub result: ResultOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offering: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationConsumerOut {
    pub consumer_key: &'static str,
    pub org_association_id: String,
    pub attempt: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultOut {
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<String>,
    pub result_date: String,
    /// Required by the component result schema; always 100 in OKE.
    pub weight: u32,
    pub consumers: Vec<ResultConsumerOut>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultConsumerOut {
    pub consumer_key: &'static str,
    pub attendance: String,
    pub r#final: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_score: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_raw_score: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_date: Option<String>,
}

/// The scope of the SIS ↔ planner flows (1 and 5).
pub const SCOPE_SIS: &str = "nl-test-admin-flow-1-5";
/// The scope of the planner ↔ exam platform flows (2, 3 and 4).
pub const SCOPE_PLATFORM: &str = "nl-test-admin-flow-2-3-4";

pub(crate) const JSON: &str = "application/json";
pub(crate) const MERGE_PATCH: &str = "application/merge-patch+json";

pub(crate) fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

pub(crate) fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Every page of a collection, as raw page bodies (one JSON array of pages
/// is what is hashed and parsed). A transport failure fails the whole read.
pub(crate) async fn get_pages(
    http: &Http,
    url: &str,
    page_size: u32,
) -> Result<Vec<Value>, HttpError> {
    let mut pages = Vec::new();
    let sep = if url.contains('?') { '&' } else { '?' };
    for n in 1.. {
        let u = format!("{url}{sep}pageSize={page_size}&pageNumber={n}");
        let reply = http.send(Method::GET, &u, None, JSON, false).await?;
        let page: Value = serde_json::from_slice(&reply.body).map_err(|_| {
            HttpError::unusable(
                "GET",
                &u,
                Some(reply.status.as_u16()),
                "the answer is not a JSON page (pageSize, pageNumber, hasNextPage, items)".into(),
            )
        })?;
        let next = page
            .get("hasNextPage")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let empty = page
            .get("items")
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty());
        pages.push(page);
        // a server that says "more" but sends nothing would loop forever
        if !next || empty || n >= 10_000 {
            break;
        }
    }
    Ok(pages)
}

/// Every item of a collection that parses as `T`; pages and items that do
/// not are passed over (the caller looks for matches, not for faults).
pub(crate) async fn get_items<T: serde::de::DeserializeOwned>(
    http: &Http,
    url: &str,
    page_size: u32,
) -> Result<Vec<T>, HttpError> {
    Ok(get_pages(http, url, page_size)
        .await?
        .into_iter()
        .filter_map(|p| serde_json::from_value::<Page>(p).ok())
        .flat_map(|p| p.items)
        .filter_map(|i| serde_json::from_value::<T>(i).ok())
        .collect())
}
