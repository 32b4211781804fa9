//! 1EdTech OneRoster 1.2 gradebook REST binding, as a result sink:
//! `PUT /ims/oneroster/gradebook/v1p2/lineItems/{id}` and
//! `PUT /ims/oneroster/gradebook/v1p2/results/{id}`. The ids are chosen
//! by sisync and deterministic, so sending a record again overwrites it:
//! a retry, or a push repeated after a crash, never makes a duplicate.

pub mod config;

use reqwest::Method;
use serde_json::{Value, json};

use crate::config::Loaded;
use crate::connector::results::ResultWriter;
use crate::connector::source::Testing;
use crate::connector::{GradebookResult, LineItem, PushError, ResultSink, Written};
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

    async fn put(&self, url: String, body: Value) -> Result<Written, PushError> {
        let bytes = serde_json::to_vec(&body).expect("JSON values serialise");
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
            Err(e) => Err(PushError {
                endpoint: url,
                status: e.status,
                message: e.reason,
                server_message: e.server_message,
                payload_sha256: Some(sha),
                refused: false,
            }),
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The `lineItem` document.
pub fn line_item_doc(li: &LineItem, category: &str, school: Option<&str>) -> Value {
    let mut v = json!({
        "sourcedId": li.sourced_id,
        "status": "active",
        "dateLastModified": now(),
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

/// The `result` document.
pub fn result_doc(r: &GradebookResult) -> Value {
    let mut v = json!({
        "sourcedId": r.sourced_id,
        "status": "active",
        "dateLastModified": now(),
        "lineItem": {"sourcedId": r.line_item_id, "type": "lineItem"},
        "student": {"sourcedId": r.student_id, "type": "user"},
        "class": {"sourcedId": r.class_id, "type": "class"},
        "scoreStatus": "fully graded",
        "scoreDate": r.date,
    });
    if let Some(s) = r.score {
        v["score"] = json!(s);
    }
    if let Some(t) = crate::connector::text_score(r) {
        v["textScore"] = json!(t);
    }
    let mut meta = serde_json::Map::new();
    if let Some(p) = r.passed {
        meta.insert("passed".into(), json!(p.to_string()));
    }
    if let Some(m) = r.max_score {
        meta.insert("maxScore".into(), json!(m.to_string()));
    }
    if !meta.is_empty() {
        v["metadata"] = Value::Object(meta);
    }
    json!({ "result": v })
}

impl ResultSink for GradebookRest {
    fn endpoint(&self) -> String {
        self.base.clone()
    }

    async fn put_line_item(&self, li: &LineItem) -> Result<Written, PushError> {
        let doc = line_item_doc(li, &self.category, self.school.as_deref());
        self.put(self.url("lineItems", &li.sourced_id), doc).await
    }

    async fn put_result(&self, r: &GradebookResult) -> Result<Written, PushError> {
        self.put(self.url("results", &r.sourced_id), result_doc(r))
            .await
    }
}

impl crate::connector::results::ResultOutput for config::GradebookRestSink {
    fn check(&self) -> String {
        format!(
            "oneroster-rest {}{} (gradebook 1.2, {} at once)",
            self.endpoint.base_url,
            PATH,
            self.endpoint.concurrency(Self::NEEDS)
        )
    }
    fn writer(&self, loaded: &Loaded) -> anyhow::Result<ResultWriter> {
        let http = loaded.http_client("results.sink", &self.endpoint, Self::NEEDS)?;
        let sink = GradebookRest::new(
            &self.endpoint.base_url,
            http,
            &self.category,
            self.school.as_deref(),
        );
        Ok(ResultWriter::Records {
            sink: Box::new(sink),
            concurrency: self.endpoint.concurrency(Self::NEEDS),
        })
    }
    fn test_connection<'a>(&'a self, loaded: &'a Loaded) -> Testing<'a> {
        Box::pin(crate::connector::source::timed("results out", async move {
            let http = loaded
                .http_client("results.sink", &self.endpoint, Self::NEEDS)?
                .with_max_retries(0);
            let sink = GradebookRest::new(
                &self.endpoint.base_url,
                http,
                &self.category,
                self.school.as_deref(),
            );
            Ok(format!("{}, authenticated", sink.ping().await?))
        }))
    }
}
