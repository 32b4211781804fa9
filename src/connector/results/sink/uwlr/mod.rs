//! UWLR 2.2 result sink: each result goes to the LAS as one
//! `BrengLeerresultaten` request (SOAP 1.1, document/literal) with a
//! `leerresultaten_verzoek` holding the school block, one `toetsafname`
//! (the student by `leerlingid`, the LAS's own key) with one `resultaat`,
//! and the `toetsen` block naming the test. The `resultaat@key` is the
//! result's sourcedId, derived from the outbox idempotency key: a retry,
//! or a push repeated after a crash, overwrites the same result at the LAS
//! and never adds one. The LAS confirms with `leerresultaten_bevestiging`;
//! a SOAP fault `Client` is a refusal (failed, with the fault string kept
//! in the outbox), any other fault or an HTTP error follows the outbox
//! retry rules.

pub mod config;
mod envelope;

pub use envelope::{Answer, Fault, answer};

use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue};

use crate::config::{ConnectorConfig, Loaded, Secret};
use crate::connector::results::{ResultWriter, sending_line};
use crate::connector::source::Testing;
use crate::connector::{GradebookResult, LineItem, ResultSink, SinkError, Written};
use crate::digest::sha256_hex;
use crate::http::Http;
use config::{Ander, UwlrResultSink as Cfg};

pub struct UwlrResults {
    url: String,
    http: Http,
    key: Secret,
    klantcode: String,
    klantnaam: String,
    cfg: Cfg,
    brincode: String,
    dependancecode: Option<String>,
    ander: Option<Ander>,
}

/// What a result is sent as.
#[derive(Debug, PartialEq, Eq)]
enum Carried {
    Score(u64),
    Ander(String),
}

impl UwlrResults {
    /// The sink of a config, secrets and certificates read.
    pub fn build(loaded: &Loaded, cfg: &Cfg) -> anyhow::Result<UwlrResults> {
        let secrets = loaded.uwlr_secrets(cfg)?;
        let mut headers: HeaderMap = secrets.headers;
        headers.insert(
            HeaderName::from_static("soapaction"),
            HeaderValue::from_str(&format!("\"{}\"", envelope::SOAP_ACTION))
                .expect("a plain ASCII header value"),
        );
        headers.insert(ACCEPT, HeaderValue::from_static("text/xml"));
        let http = loaded
            .http_client("results.sink", cfg)?
            .with_headers(headers)
            // a SOAP fault (HTTP 500 with an XML body) is an answer: a Client
            // fault is not sent again, a Server fault waits for the outbox's
            // next try
            .with_soap_faults()
            .with_error_bodies();
        let (brincode, dependancecode) = cfg.school.block(&loaded.config.institution.brin);
        Ok(UwlrResults {
            url: cfg.endpoint.base_url.clone(),
            http,
            key: secrets.key,
            klantcode: cfg.klantcode.trim().to_string(),
            klantnaam: cfg.klantnaam.trim().to_string(),
            cfg: cfg.clone(),
            brincode,
            dependancecode,
            ander: cfg.ander(),
        })
    }

    /// Ask once (`check-config --connect`).
    pub fn with_max_retries(mut self, n: usize) -> UwlrResults {
        self.http = self.http.with_max_retries(n);
        self
    }

    fn fail(&self, message: String, refused: bool, sha: Option<String>) -> SinkError {
        SinkError {
            endpoint: self.url.clone(),
            status: None,
            message,
            detail: None,
            payload_sha256: sha,
            refused,
        }
    }

    /// The `autorisatie` header of every request.
    fn autorisatie(&self) -> envelope::Autorisatie<'_> {
        envelope::Autorisatie {
            sleutel: &self.key,
            klantcode: &self.klantcode,
            klantnaam: &self.klantnaam,
        }
    }

    /// `check-config --connect`: one authenticated POST. UWLR has no
    /// read-only operation for results, so the probe is a
    /// `BrengLeerresultaten` the schema refuses (no `toetsafname`): a LAS
    /// that checks the key first answers a fault about the request, one
    /// that refuses the key a fault about authorisation. Nothing is stored.
    pub async fn ping(&self) -> anyhow::Result<String> {
        let probe = envelope::wrap(&self.autorisatie(), "<lr:leerresultaten_verzoek/>");
        let r = self
            .http
            .send(
                Method::POST,
                &self.url,
                Some(probe.as_slice()),
                "text/xml; charset=utf-8",
                false,
            )
            .await;
        let (status, body) = match r {
            Ok(reply) => (reply.status.as_u16(), reply.body),
            Err(e) => match e.body {
                Some(b) if e.status == Some(500) => (500, b.0),
                _ => return Err(anyhow::anyhow!("{e}")),
            },
        };
        match answer(&body) {
            Answer::Fault(f) => {
                let auth = f.string.to_lowercase();
                if ["autoris", "sleutel", "author", "key"]
                    .iter()
                    .any(|w| auth.contains(w))
                {
                    anyhow::bail!(
                        "POST {}: the LAS refused the autorisatie (SOAP fault {}: {}); check autorisatiesleutel, klantcode and klantnaam with the LAS supplier",
                        self.url,
                        f.code,
                        f.string
                    )
                }
                // the probe holds no personal data, so neither can the
                // LAS's answer to it: shown as it is
                Ok(format!(
                    "POST {}: SOAP answered (HTTP {status}, fault {} to an empty probe, as expected: {}), autorisatie accepted",
                    self.url, f.code, f.string
                ))
            }
            Answer::Confirmed => Ok(format!("POST {}: SOAP answered (HTTP {status})", self.url)),
            Answer::Unexpected(why) => anyhow::bail!(
                "POST {}: HTTP {status}, but {why}; check results.sink.url points at the Leerresultaten service",
                self.url
            ),
        }
    }
}

/// A whole-number score of at least 0, as UWLR's `score`
/// (`xs:nonNegativeInteger`) takes it.
fn whole(score: f64) -> Option<u64> {
    (score >= 0.0 && score.fract() == 0.0 && score <= 1e15).then_some(score as u64)
}

/// A score as `anderresultaat` text: `7.5`, `12` (no exponent, no sign
/// of zero); `None` for NaN, infinities and magnitudes beyond 1e15.
fn decimal(score: f64) -> Option<String> {
    (score.is_finite() && score.abs() <= 1e15).then(|| format!("{}", score + 0.0))
}

/// How a result goes to the LAS: a grade through `anderresultaat` when
/// configured to carry grades; else a whole-number score as `score`; else
/// a fractional score through `anderresultaat` when configured to carry
/// scores; else the one line why not.
fn carried(ander: Option<&Ander>, r: &GradebookResult) -> Result<Carried, String> {
    let grade = r.value.grade_text();
    if let (Some(a), Some(g)) = (ander, grade) {
        if a.value.grades() {
            if g.chars().count() > 256 {
                return Err("the grade is longer than 256 characters; not sent".into());
            }
            return Ok(Carried::Ander(g.to_string()));
        }
    }
    if let Some(n) = r.value.score.and_then(whole) {
        return Ok(Carried::Score(n));
    }
    let carries_scores = ander.is_some_and(|a| a.value.scores());
    if let (true, Some(t)) = (carries_scores, r.value.score.and_then(decimal)) {
        return Ok(Carried::Ander(t));
    }
    Err(match (ander, r.value.score, grade) {
            (_, None, None) => "no score or grade to send (check privacy.result_fields allows \"score\" or \"grade\"); not sent".into(),
            (None, _, _) => "the result has a grade or a score that is not a whole number of at least 0; UWLR 2.2's score takes whole numbers only: set results.sink.anderresultaat_type and anderresultaat_namespace to the result type the LAS supplier defines for grades; not sent".into(),
            (Some(a), Some(_), _) if !a.value.scores() => "the score is not a whole number of at least 0 and results.sink.anderresultaat_value = \"grade\" sends grades only; set it to \"grade_or_score\" to send such scores; not sent".into(),
            (Some(_), Some(_), _) => "the score is not a finite number; not sent".into(),
            (Some(_), None, _) => "the result has only a grade and results.sink.anderresultaat_value = \"score\" sends scores only; set it to \"grade_or_score\" to send grades; not sent".into(),
        })
}

#[async_trait::async_trait(?Send)]
impl ResultSink for UwlrResults {
    fn endpoint(&self) -> String {
        self.url.clone()
    }

    fn needs_line_items(&self) -> bool {
        false
    }

    async fn put_line_item(&self, li: &LineItem) -> Result<Written, SinkError> {
        // never called (needs_line_items is false): the test is named in
        // each request's toetsen block
        Ok(Written {
            platform_id: None,
            endpoint: self.url.clone(),
            payload_sha256: sha256_hex(li.sourced_id.as_bytes()),
        })
    }

    async fn put_result(&self, r: &GradebookResult) -> Result<Written, SinkError> {
        let value_text: String;
        let value = match carried(self.ander.as_ref(), r) {
            Ok(Carried::Score(n)) => envelope::Value::Score(n),
            Ok(Carried::Ander(t)) => {
                value_text = t;
                envelope::Value::Ander {
                    // value() only answers Ander when one is configured
                    ander: self.ander.as_ref().expect("anderresultaat configured"),
                    text: &value_text,
                }
            }
            Err(why) => return Err(self.fail(why, true, None)),
        };
        for (what, v, max) in [
            ("the student id", r.student_id.as_str(), 256),
            ("the exam id", r.exam.as_str(), 256),
            ("the result key", r.sourced_id.as_str(), 256),
        ] {
            if v.is_empty() || v.chars().count() > max {
                return Err(self.fail(
                    format!(
                        "{what} is empty or longer than the {max} characters UWLR allows; not sent"
                    ),
                    true,
                    None,
                ));
            }
        }
        let Some(schooljaar) = self.cfg.school_year(&r.date) else {
            return Err(self.fail(
                "the result has no date (afnamedatum); not sent".into(),
                true,
                None,
            ));
        };
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let (bytes, body) = envelope::request(
            &self.autorisatie(),
            &envelope::School {
                schooljaar: &schooljaar,
                brincode: &self.brincode,
                dependancecode: self.dependancecode.as_deref(),
                created: &created,
            },
            &envelope::Resultaat {
                key: &r.sourced_id,
                leerlingid: &r.student_id,
                eckid: r.eckid.as_deref().filter(|e| e.chars().count() <= 256),
                afnamedatum: &r.date[..10.min(r.date.len())],
                toetscode: &r.exam,
                value,
            },
        );
        // the body's hash: the header carries the key
        let sha = sha256_hex(&body);
        let sent = self
            .http
            .send(
                Method::POST,
                &self.url,
                Some(&bytes),
                "text/xml; charset=utf-8",
                // the @key makes sending again an overwrite
                true,
            )
            .await;
        let (status, reply) = match sent {
            Ok(reply) => (reply.status.as_u16(), reply.body),
            Err(e) => match e.body.clone() {
                Some(b) if matches!(answer(&b.0), Answer::Fault(_)) => {
                    (e.status.unwrap_or(500), b.0)
                }
                _ => {
                    return Err(SinkError {
                        endpoint: self.url.clone(),
                        status: e.status,
                        message: e.reason,
                        detail: e.server_message,
                        payload_sha256: Some(sha),
                        refused: false,
                    });
                }
            },
        };
        match answer(&reply) {
            Answer::Confirmed => Ok(Written {
                platform_id: None,
                endpoint: self.url.clone(),
                payload_sha256: sha,
            }),
            Answer::Fault(f) => Err(SinkError {
                endpoint: self.url.clone(),
                status: Some(status),
                message: format!(
                    "HTTP {status}: SOAP fault {}{}",
                    f.code,
                    if f.is_client() {
                        ": the LAS refused the result"
                    } else {
                        ": the LAS could not store it now"
                    }
                ),
                detail: (!f.string.is_empty()).then_some(f.string.clone()),
                payload_sha256: Some(sha),
                refused: f.is_client(),
            }),
            // stored or not, sending again only overwrites: transient
            Answer::Unexpected(why) => Err(SinkError {
                endpoint: self.url.clone(),
                status: (status >= 300).then_some(status),
                message: format!("HTTP {status}, but {why}; sent again next run"),
                detail: None,
                payload_sha256: Some(sha),
                refused: false,
            }),
        }
    }
}

impl crate::connector::results::ResultOutput for config::UwlrResultSink {
    fn needs_class(&self) -> bool {
        false
    }
    fn check(&self) -> String {
        let url = &self.endpoint.base_url;
        sending_line("uwlr", url, "UWLR 2.2 BrengLeerresultaten", self)
    }
    fn writer(&self, loaded: &Loaded) -> anyhow::Result<ResultWriter> {
        Ok(ResultWriter::Records {
            sink: Box::new(UwlrResults::build(loaded, self)?),
            concurrency: self.concurrency(),
        })
    }
    fn test_connection<'a>(&'a self, loaded: &'a Loaded) -> Testing<'a> {
        Box::pin(crate::connector::source::timed("results out", async move {
            UwlrResults::build(loaded, self)?
                .with_max_retries(0)
                .ping()
                .await
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResultValue;

    #[test]
    fn reads_confirmation_and_faults() {
        let ok = format!(
            "<s:Envelope xmlns:s=\"{}\"><s:Body><b:leerresultaten_bevestiging xmlns:b=\"{}\"/></s:Body></s:Envelope>",
            envelope::SOAP_NS,
            envelope::LR_NS
        );
        assert_eq!(answer(ok.as_bytes()), Answer::Confirmed);
        let fault = format!(
            "<?xml version=\"1.0\"?><soap:Envelope xmlns:soap=\"{}\"><soap:Header/><soap:Body><soap:Fault><faultcode>soap:Client</faultcode><faultstring>leerling &lt;x&gt; onbekend</faultstring><detail><x>1</x></detail></soap:Fault></soap:Body></soap:Envelope>",
            envelope::SOAP_NS
        );
        let Answer::Fault(f) = answer(fault.as_bytes()) else {
            panic!("no fault")
        };
        assert_eq!(f.code, "Client");
        assert_eq!(f.string, "leerling <x> onbekend");
        assert!(f.is_client());
        let server = fault.replace("soap:Client", "soap:Server");
        let Answer::Fault(f) = answer(server.as_bytes()) else {
            panic!("no fault")
        };
        assert!(!f.is_client());
        assert!(matches!(
            answer(b"<html>oops</html>"),
            Answer::Unexpected(_)
        ));
        assert!(matches!(answer(b"not xml <"), Answer::Unexpected(_)));
        let dtd = b"<!DOCTYPE x [<!ENTITY a \"b\">]><x/>";
        assert!(matches!(answer(dtd), Answer::Unexpected(w) if w.contains("DTD")));
    }

    #[test]
    fn what_goes_as_score_and_what_as_anderresultaat() {
        use super::config::AnderValue;
        let r = |score: Option<f64>, grade: Option<&str>| GradebookResult {
            sourced_id: "r".into(),
            exam: "e".into(),
            line_item_id: String::new(),
            class_id: String::new(),
            student_id: "s".into(),
            eckid: None,
            value: ResultValue {
                score,
                grade: grade.map(String::from),
                ..Default::default()
            },
            date: "2026-06-02".into(),
        };
        let a = |value| Ander {
            prefix: "t".into(),
            type_name: "Cijfer".into(),
            namespace: "urn:x".into(),
            element: None,
            value,
        };
        let both = a(AnderValue::GradeOrScore);
        let ander = |s: &str| Ok(Carried::Ander(s.into()));
        // not configured: whole scores only
        assert_eq!(
            carried(None, &r(Some(12.0), Some("7,5"))),
            Ok(Carried::Score(12))
        );
        assert!(
            carried(None, &r(Some(7.5), None))
                .unwrap_err()
                .contains("anderresultaat_type")
        );
        assert!(
            carried(None, &r(None, Some("goed")))
                .unwrap_err()
                .contains("anderresultaat_type")
        );
        assert!(
            carried(None, &r(None, None))
                .unwrap_err()
                .contains("no score or grade")
        );
        // grade_or_score: the grade first, whole scores as score
        assert_eq!(
            carried(Some(&both), &r(Some(12.0), Some(" 7,5 "))),
            ander("7,5")
        );
        assert_eq!(
            carried(Some(&both), &r(Some(12.0), None)),
            Ok(Carried::Score(12))
        );
        assert_eq!(carried(Some(&both), &r(Some(6.25), None)), ander("6.25"));
        assert_eq!(
            carried(Some(&both), &r(Some(-0.0 - 1.5), None)),
            ander("-1.5")
        );
        assert!(carried(Some(&both), &r(Some(f64::NAN), None)).is_err());
        let long = "x".repeat(257);
        assert!(
            carried(Some(&both), &r(None, Some(&long)))
                .unwrap_err()
                .contains("256")
        );
        // grade only / score only
        let g = a(AnderValue::Grade);
        assert!(
            carried(Some(&g), &r(Some(6.25), None))
                .unwrap_err()
                .contains("grades only")
        );
        assert_eq!(carried(Some(&g), &r(Some(3.0), Some("8"))), ander("8"));
        let s = a(AnderValue::Score);
        assert_eq!(
            carried(Some(&s), &r(Some(3.0), Some("8"))),
            Ok(Carried::Score(3))
        );
        assert!(
            carried(Some(&s), &r(None, Some("8")))
                .unwrap_err()
                .contains("scores only")
        );
    }

    #[test]
    fn only_whole_scores() {
        assert_eq!(whole(42.0), Some(42));
        assert_eq!(whole(0.0), Some(0));
        assert_eq!(whole(7.5), None);
        assert_eq!(whole(-1.0), None);
        assert_eq!(whole(f64::NAN), None);
    }
}
