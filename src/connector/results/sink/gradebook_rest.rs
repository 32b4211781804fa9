//! 1EdTech OneRoster 1.2 gradebook REST binding, as a result sink:
//! `PUT /ims/oneroster/gradebook/v1p2/lineItems/{id}` and
//! `PUT /ims/oneroster/gradebook/v1p2/results/{id}`. The ids are chosen
//! by sisync and deterministic, so sending a record again overwrites it:
//! a retry, or a push repeated after a crash, never makes a duplicate.

pub mod config;

use reqwest::Method;
use serde::Serialize;

use crate::config::{ConnectorConfig, Loaded};
use crate::connector::results::{ResultWriter, probe_http_sink, sending_line};
use crate::connector::source::Testing;
use crate::connector::{GradebookResult, LineItem, ResultSink, SinkError, Written};
use crate::digest::sha256_hex;
use crate::http::{Http, HttpError};

pub const PATH: &str = "/ims/oneroster/gradebook/v1p2";

pub struct GradebookRest {
    /// Service root + [`PATH`], without a trailing slash.
    base: String,
    http: Http,
    /// sourcedId of the line item category (OneRoster 1.2 requires one).
    category: String,
    /// sourcedId of the school org the line items belong to, if set.
    school: Option<String>,
}

impl GradebookRest {
    pub fn new(base_url: &str, http: Http, category: &str, school: Option<&str>) -> GradebookRest {
        GradebookRest {
            base: format!("{}{PATH}", base_url.trim_end_matches('/')),
            http,
            category: category.to_string(),
            school: school.map(String::from),
        }
    }

    fn url(&self, collection: &str, id: &str) -> String {
        let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
        format!("{}/{collection}/{id}", self.base)
    }

    /// One authenticated request (`check-config --connect`).
    pub async fn ping(&self) -> Result<String, HttpError> {
        let url = format!("{}/lineItems?limit=1", self.base);
        let reply = self
            .http
            .send(Method::GET, &url, None, "application/json", false)
            .await?;
        Ok(format!("GET {url}: HTTP {}", reply.status.as_u16()))
    }

    async fn put(&self, url: String, bytes: Vec<u8>) -> Result<Written, SinkError> {
        let sha = sha256_hex(&bytes);
        match self
            .http
            .send(Method::PUT, &url, Some(&bytes), "application/json", false)
            .await
        {
            Ok(_) => Ok(Written {
                platform_id: None,
                endpoint: url,
                payload_sha256: sha,
            }),
            Err(e) => Err(SinkError {
                endpoint: url,
                status: e.status,
                message: e.reason,
                detail: e.server_message,
                payload_sha256: Some(sha),
                refused: false,
            }),
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

// The documents are serialised from these structs straight into bytes
// (a `serde_json::Value` built per result cost more than the request).
// Fields are declared in name order, as a `Value` map sorts them, so the
// bytes (and the payload hashes in the audit log) are the ones sent before.

#[derive(Serialize)]
struct Ref<'a> {
    #[serde(rename = "sourcedId")]
    sourced_id: &'a str,
    r#type: &'static str,
}

fn reference<'a>(sourced_id: &'a str, kind: &'static str) -> Ref<'a> {
    Ref {
        sourced_id,
        r#type: kind,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LineItemDoc<'a> {
    assign_date: &'a str,
    category: Ref<'a>,
    class: Ref<'a>,
    date_last_modified: &'a str,
    due_date: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    result_value_max: Option<f64>,
    result_value_min: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    school: Option<Ref<'a>>,
    sourced_id: &'a str,
    status: &'static str,
    title: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultDoc<'a> {
    class: Ref<'a>,
    date_last_modified: &'a str,
    line_item: Ref<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f64>,
    score_date: &'a str,
    score_status: &'static str,
    sourced_id: &'a str,
    status: &'static str,
    student: Ref<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text_score: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_score: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    passed: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum Wrapped<'a> {
    LineItem(LineItemDoc<'a>),
    Result(ResultDoc<'a>),
}

fn to_bytes(doc: &Wrapped<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    serde_json::to_writer(&mut out, doc).expect("documents of strings and numbers serialise");
    out
}

/// The `lineItem` document, as sent, modified `now`.
fn line_item_body(li: &LineItem, category: &str, school: Option<&str>, now: &str) -> Vec<u8> {
    to_bytes(&Wrapped::LineItem(LineItemDoc {
        assign_date: &li.date,
        category: reference(category, "category"),
        class: reference(&li.class_id, "class"),
        date_last_modified: now,
        due_date: &li.date,
        result_value_max: li.max_score,
        result_value_min: 0.0,
        school: school.map(|s| reference(s, "org")),
        sourced_id: &li.sourced_id,
        status: "active",
        title: &li.title,
    }))
}

/// The `result` document, as sent, modified `now`.
fn result_body(r: &GradebookResult, now: &str) -> Vec<u8> {
    let metadata = (r.value.passed.is_some() || r.value.max_score.is_some()).then(|| Metadata {
        max_score: r.value.max_score.map(|m| m.to_string()),
        passed: r.value.passed.map(|p| p.to_string()),
    });
    to_bytes(&Wrapped::Result(ResultDoc {
        class: reference(&r.class_id, "class"),
        date_last_modified: now,
        line_item: reference(&r.line_item_id, "lineItem"),
        metadata,
        score: r.value.score,
        score_date: &r.date,
        score_status: "fully graded",
        sourced_id: &r.sourced_id,
        status: "active",
        student: reference(&r.student_id, "user"),
        text_score: crate::connector::text_score(r),
    }))
}

#[async_trait::async_trait(?Send)]
impl ResultSink for GradebookRest {
    fn endpoint(&self) -> String {
        self.base.clone()
    }

    async fn put_line_item(&self, li: &LineItem) -> Result<Written, SinkError> {
        let body = line_item_body(li, &self.category, self.school.as_deref(), &now());
        self.put(self.url("lineItems", &li.sourced_id), body).await
    }

    async fn put_result(&self, r: &GradebookResult) -> Result<Written, SinkError> {
        self.put(self.url("results", &r.sourced_id), result_body(r, &now()))
            .await
    }
}

impl config::GradebookRestSink {
    /// The sink, writing through `http`.
    fn sink(&self, http: Http) -> GradebookRest {
        let school = self.school.as_deref();
        GradebookRest::new(&self.endpoint.base_url, http, &self.category, school)
    }
}

impl crate::connector::results::ResultOutput for config::GradebookRestSink {
    fn check(&self) -> String {
        let url = format!("{}{PATH}", self.endpoint.base_url);
        sending_line("oneroster-rest", &url, "gradebook 1.2", self)
    }
    fn writer(&self, loaded: &Loaded) -> anyhow::Result<ResultWriter> {
        Ok(ResultWriter::Records {
            sink: Box::new(self.sink(loaded.http_client("results.sink", self)?)),
            concurrency: self.concurrency(),
        })
    }
    fn test_connection<'a>(&'a self, loaded: &'a Loaded) -> Testing<'a> {
        probe_http_sink(loaded, self, move |http| async move {
            self.sink(http).ping().await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResultValue;
    use serde_json::{Value, json};

    /// The documents as built before (a `Value` each): the bytes sent must
    /// not change.
    fn line_item_doc(li: &LineItem, category: &str, school: Option<&str>, now: &str) -> Value {
        let mut v = json!({
            "sourcedId": li.sourced_id,
            "status": "active",
            "dateLastModified": now,
            "title": li.title,
            "assignDate": li.date,
            "dueDate": li.date,
            "class": {"sourcedId": li.class_id, "type": "class"},
            "category": {"sourcedId": category, "type": "category"},
            "resultValueMin": 0.0,
        });
        if let Some(max) = li.max_score {
            v["resultValueMax"] = json!(max);
        }
        if let Some(s) = school {
            v["school"] = json!({"sourcedId": s, "type": "org"});
        }
        json!({ "lineItem": v })
    }

    fn result_doc(r: &GradebookResult, now: &str) -> Value {
        let mut v = json!({
            "sourcedId": r.sourced_id,
            "status": "active",
            "dateLastModified": now,
            "lineItem": {"sourcedId": r.line_item_id, "type": "lineItem"},
            "student": {"sourcedId": r.student_id, "type": "user"},
            "class": {"sourcedId": r.class_id, "type": "class"},
            "scoreStatus": "fully graded",
            "scoreDate": r.date,
        });
        if let Some(s) = r.value.score {
            v["score"] = json!(s);
        }
        if let Some(t) = crate::connector::text_score(r) {
            v["textScore"] = json!(t);
        }
        let mut meta = serde_json::Map::new();
        if let Some(p) = r.value.passed {
            meta.insert("passed".into(), json!(p.to_string()));
        }
        if let Some(m) = r.value.max_score {
            meta.insert("maxScore".into(), json!(m.to_string()));
        }
        if !meta.is_empty() {
            v["metadata"] = Value::Object(meta);
        }
        json!({ "result": v })
    }

    #[test]
    fn documents_are_the_bytes_sent_before() {
        let now = "2026-12-07T18:00:00Z";
        let base = GradebookResult {
            sourced_id: "sisync-r-k\"1".into(),
            exam: "EX".into(),
            line_item_id: "sisync-li-1".into(),
            class_id: "cls-ü".into(),
            student_id: "stu-1".into(),
            eckid: None,
            value: ResultValue::default(),
            date: "2026-06-01".into(),
        };
        let with = |value: ResultValue| GradebookResult {
            value,
            ..base.clone()
        };
        let variants = [
            with(ResultValue {
                score: Some(7.5),
                ..Default::default()
            }),
            with(ResultValue {
                score: Some(10.0),
                max_score: Some(20.0),
                passed: Some(true),
                ..Default::default()
            }),
            with(ResultValue {
                grade: Some("7,5".into()),
                passed: Some(false),
                ..Default::default()
            }),
            with(ResultValue {
                score: Some(f64::NAN),
                max_score: Some(3.25),
                ..Default::default()
            }),
            base.clone(),
        ];
        for r in &variants {
            let old = serde_json::to_vec(&result_doc(r, now)).unwrap();
            assert_eq!(
                String::from_utf8(result_body(r, now)).unwrap(),
                String::from_utf8(old).unwrap()
            );
        }
        for (max, school) in [(None, None), (Some(12.5), Some("org-1")), (Some(3.0), None)] {
            let li = LineItem {
                sourced_id: "sisync-li-1".into(),
                title: "Exam \"A\"".into(),
                class_id: "cls-1".into(),
                max_score: max,
                date: "2026-06-01".into(),
            };
            let old = serde_json::to_vec(&line_item_doc(&li, "cat", school, now)).unwrap();
            assert_eq!(
                String::from_utf8(line_item_body(&li, "cat", school, now)).unwrap(),
                String::from_utf8(old).unwrap()
            );
        }
    }
}
