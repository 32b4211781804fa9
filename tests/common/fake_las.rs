//! An in-process UWLR 2.2 LAS (Leerresultaten service) on 127.0.0.1 for
//! tests, over plain HTTP or HTTPS that requires a client certificate
//! from its own test CA (as Edukoppeling endpoints do with PKIoverheid).
//! Every request body is validated with `xmllint --schema` against the
//! official UWLR 2.2 schemas (../shared/specs/uwlr-2.2: SOAP envelope,
//! autorisatie header, leerresultaten body); a request that does not
//! validate is refused with a SOAP Client fault and recorded. Results are
//! stored per `resultaat@key`, so a retry overwrites; the writes per key
//! are counted. Faults on demand: 500, 503, a SOAP Server fault, or the
//! write stored and answered after the client gave up.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quick_xml::events::Event;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

pub const KEY: &str = "las-key-0123456789";
pub const KLANTCODE: &str = "sisync-test";
pub const KLANTNAAM: &str = "sisync";
pub const GATEWAY_HEADER: &str = "ocp-apim-subscription-key";
pub const GATEWAY_KEY: &str = "gw-key-42";
pub const PATH: &str = "/uwlr/leerresultaten";

/// Answers: Status500, Status503, SoapServer, SlowAfterStore, HtmlOk.
pub use super::faults::{Fault, Faults};

/// One stored result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub leerlingid: String,
    pub eckid: Option<String>,
    pub toetscode: String,
    /// `score`; empty when the result came as an `anderresultaat`.
    pub score: String,
    /// An `anderresultaat`: `{namespace}Type`, the element carrying the
    /// value (`{namespace}local`) and the value.
    pub ander: Option<Ander>,
    pub afnamedatum: String,
    pub schooljaar: String,
}

#[derive(Default)]
pub struct Inner {
    /// By `resultaat@key`.
    pub results: BTreeMap<String, Stored>,
    /// Accepted writes per key (a retry overwrites and counts again).
    pub writes: BTreeMap<String, usize>,
    /// Every request that reached the handler.
    pub requests: usize,
    /// Requests that did not validate against the UWLR 2.2 XSDs: the
    /// xmllint message.
    pub invalid: Vec<String>,
    /// Faults for result writes.
    pub faults: Faults<Fault>,
    /// Answer results for this leerlingid with a SOAP Client fault.
    pub reject_student: Option<String>,
    /// Wait this long before handling each request.
    pub delay: Duration,
    /// How long a SlowAfterStore answer waits.
    pub slow: Duration,
    /// Request headers seen (lower-case names), of the last request.
    pub last_headers: BTreeMap<String, String>,
}

#[derive(Clone)]
pub struct FakeLas {
    pub inner: Arc<Mutex<Inner>>,
    /// The service URL.
    pub url: String,
}

use super::http1::{listen, listen_tls};
use super::test_pki::Pki;

impl FakeLas {
    fn inner() -> Arc<Mutex<Inner>> {
        Arc::new(Mutex::new(Inner {
            slow: Duration::from_millis(2500),
            ..Inner::default()
        }))
    }

    /// Over plain HTTP.
    pub async fn start() -> FakeLas {
        let inner = Self::inner();
        let s = inner.clone();
        let port = listen(move |tcp| serve(tcp, s.clone())).await;
        FakeLas {
            inner,
            url: format!("http://127.0.0.1:{port}{PATH}"),
        }
    }

    /// Over HTTPS, refusing any client without a certificate of its CA.
    pub async fn start_mtls() -> (FakeLas, Pki) {
        let pki = super::test_pki::pki();
        let inner = Self::inner();
        let s = inner.clone();
        let port = listen_tls(pki.acceptor(), move |tls| serve(tls, s.clone())).await;
        let url = format!("https://localhost:{port}{PATH}");
        (FakeLas { inner, url }, pki)
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap())
    }

    /// Accepted writes over all keys.
    pub fn total_writes(&self) -> usize {
        self.with(|g| g.writes.values().sum())
    }
}

/// One HTTP/1.1 exchange per connection.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, s: Arc<Mutex<Inner>>) {
    let Some(super::http1::Request {
        line: request_line,
        headers,
        body,
    }) = super::http1::read_request(&mut io).await
    else {
        return;
    };
    let (status, ctype, answer, wait) = handle(&s, &request_line, headers, body).await;
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        answer.len()
    );
    let _ = io.write_all(resp.as_bytes()).await;
    let _ = io.write_all(answer.as_bytes()).await;
    let _ = io.shutdown().await;
}

const XML: &str = "text/xml; charset=utf-8";

fn fault(code: &str, text: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><soap:Fault><faultcode>soap:{code}</faultcode><faultstring>{}</faultstring></soap:Fault></soap:Body></soap:Envelope>\n",
        quick_xml::escape::escape(text)
    )
}

fn confirmation() -> String {
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><lr:leerresultaten_bevestiging xmlns:lr=\"http://www.edustandaard.nl/leerresultaten/2/leerresultaten\"/></soap:Body></soap:Envelope>\n".to_string()
}

/// `xmllint --schema` of a request body against the UWLR 2.2 XSDs, plus
/// the test-only LAS extension that defines concrete `anderresultaat`
/// types (fixtures/specs/sisync-test-las).
fn validate(body: &[u8]) -> Result<(), String> {
    let xsd = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/specs/sisync-test-las/soap-request.xsd");
    let mut child = std::process::Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("xmllint (Debian libxml2-utils) is installed by .ci/run");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(body).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// (type, element, value) of an `anderresultaat`, names as `{ns}local`.
type Ander = (String, String, String);
/// (key, leerlingid, toetscode, score, afnamedatum, anderresultaat)
type ParsedResult = (String, String, String, String, String, Option<Ander>);

/// What a request carries: the header values and each resultaat.
#[derive(Default, Debug)]
struct Parsed {
    sleutel: String,
    klantcode: String,
    schooljaar: String,
    /// (key, leerlingid, toetscode, score, afnamedatum, anderresultaat)
    results: Vec<ParsedResult>,
    /// eckid of the toetsafname (one per request from sisync)
    eckid: Option<String>,
    empty_probe: bool,
}

fn parse(body: &[u8]) -> Parsed {
    let mut r = quick_xml::Reader::from_reader(body);
    let mut p = Parsed::default();
    let mut path: Vec<String> = Vec::new();
    let mut leerling = String::new();
    let mut cur: Option<(String, String, String, String)> = None; // key, code, score, date
    let mut text = String::new();
    // xsi:type of the anderresultaat, resolved, and its value element
    let mut ander: Option<Ander> = None;
    let mut ns_decls: Vec<(String, String)> = Vec::new();
    loop {
        let ev = r.read_event().unwrap_or(Event::Eof);
        let empty = matches!(ev, Event::Empty(_));
        match ev {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if name == "leerresultaten_verzoek" && empty {
                    p.empty_probe = true;
                }
                for a in e.attributes().flatten() {
                    let k = String::from_utf8_lossy(a.key.as_ref()).into_owned();
                    if let Some(p) = k.strip_prefix("xmlns:") {
                        ns_decls.push((
                            p.to_string(),
                            String::from_utf8_lossy(&a.value).into_owned(),
                        ));
                    }
                }
                let resolve = |q: &str| -> String {
                    let (p, l) = q.split_once(':').unwrap_or(("", q));
                    let ns = ns_decls
                        .iter()
                        .rev()
                        .find(|d| d.0 == p)
                        .map(|d| d.1.as_str())
                        .unwrap_or("");
                    format!("{{{ns}}}{l}")
                };
                if name == "anderresultaat" {
                    let t = e
                        .attributes()
                        .flatten()
                        .find(|a| a.key.local_name().as_ref() == b"type")
                        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
                        .unwrap_or_default();
                    ander = Some((resolve(&t), String::new(), String::new()));
                } else if path.last().map(String::as_str) == Some("anderresultaat") {
                    let q = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                    if let Some(a) = ander.as_mut() {
                        a.1 = resolve(&q);
                    }
                }
                if name == "resultaat" {
                    let key = e
                        .attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == b"key")
                        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
                        .unwrap_or_default();
                    cur = Some((key, String::new(), String::new(), String::new()));
                }
                text.clear();
                if !empty {
                    path.push(name);
                }
            }
            Event::Text(t) => text.push_str(&t.decode().unwrap_or_default()),
            Event::GeneralRef(g) => {
                let s = String::from_utf8_lossy(&g).into_owned();
                text.push_str(match s.as_str() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "apos" => "'",
                    "quot" => "\"",
                    _ => "?",
                });
            }
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                let parent = path.last().map(String::as_str).unwrap_or("");
                match (parent, name.as_str()) {
                    ("autorisatie", "autorisatiesleutel") => p.sleutel = text.clone(),
                    ("autorisatie", "klantcode") => p.klantcode = text.clone(),
                    ("school", "schooljaar") => p.schooljaar = text.clone(),
                    ("toetsafname", "leerlingid") => leerling = text.clone(),
                    ("toetsafname", "eckid") => p.eckid = Some(text.clone()),
                    ("resultaat", "toetscode") => {
                        if let Some(c) = cur.as_mut() {
                            c.1 = text.clone()
                        }
                    }
                    ("resultaat", "score") => {
                        if let Some(c) = cur.as_mut() {
                            c.2 = text.clone()
                        }
                    }
                    ("anderresultaat", _) => {
                        if let Some(a) = ander.as_mut() {
                            a.2 = text.clone()
                        }
                    }
                    ("resultaat", "afnamedatum") => {
                        if let Some(c) = cur.as_mut() {
                            c.3 = text.clone()
                        }
                    }
                    (_, "resultaat") => {
                        if let Some((k, code, score, date)) = cur.take() {
                            p.results
                                .push((k, leerling.clone(), code, score, date, ander.take()));
                        }
                    }
                    _ => {}
                }
                text.clear();
            }
            _ => {}
        }
    }
    p
}

async fn handle(
    s: &Arc<Mutex<Inner>>,
    request_line: &str,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
) -> (u16, &'static str, String, Duration) {
    let delay = s.lock().unwrap().delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    {
        let mut g = s.lock().unwrap();
        g.requests += 1;
        g.last_headers = headers.clone();
    }
    if request_line != format!("POST {PATH} HTTP/1.1") {
        return (404, "text/plain", "no such service".into(), Duration::ZERO);
    }
    if headers.get(GATEWAY_HEADER).map(String::as_str) != Some(GATEWAY_KEY) {
        return (
            401,
            "text/plain",
            "Access denied due to missing subscription key".into(),
            Duration::ZERO,
        );
    }
    let action = headers.get("soapaction").map(|v| v.trim_matches('"'));
    if action != Some("BrengLeerresultaten") {
        return (
            500,
            XML,
            fault("Client", "SOAPAction is not BrengLeerresultaten"),
            Duration::ZERO,
        );
    }
    let p = parse(&body);
    if p.sleutel != KEY || p.klantcode != KLANTCODE {
        return (
            500,
            XML,
            fault("Client", "autorisatiesleutel onbekend of ingetrokken"),
            Duration::ZERO,
        );
    }
    if p.empty_probe {
        return (
            500,
            XML,
            fault("Client", "leerresultaten_verzoek zonder school"),
            Duration::ZERO,
        );
    }
    let checked = tokio::task::spawn_blocking({
        let body = body.clone();
        move || validate(&body)
    })
    .await
    .unwrap();
    if let Err(why) = checked {
        s.lock().unwrap().invalid.push(why);
        return (
            500,
            XML,
            fault("Client", "verzoek voldoet niet aan UWLR 2.2"),
            Duration::ZERO,
        );
    }
    let mut g = s.lock().unwrap();
    if let Some(bad) = &g.reject_student {
        if p.results.iter().any(|r| &r.1 == bad) {
            let text = format!("leerling {bad} is niet bekend op deze school");
            return (500, XML, fault("Client", &text), Duration::ZERO);
        }
    }
    let injected = g.faults.next();
    match injected {
        Some(Fault::Status500) => {
            return (500, "text/plain", "internal error".into(), Duration::ZERO);
        }
        Some(Fault::Status503) => {
            return (503, "text/plain", "maintenance".into(), Duration::ZERO);
        }
        Some(Fault::HtmlOk) => {
            return (
                200,
                "text/html",
                "<html><body>Please log in</body></html>".into(),
                Duration::ZERO,
            );
        }
        Some(Fault::SoapServer) => {
            return (
                500,
                XML,
                fault("Server", "database tijdelijk niet beschikbaar"),
                Duration::ZERO,
            );
        }
        _ => {}
    }
    for (key, leerlingid, toetscode, score, afnamedatum, ander) in p.results {
        g.results.insert(
            key.clone(),
            Stored {
                leerlingid,
                eckid: p.eckid.clone(),
                toetscode,
                score,
                ander,
                afnamedatum,
                schooljaar: p.schooljaar.clone(),
            },
        );
        *g.writes.entry(key).or_default() += 1;
    }
    let wait = if injected == Some(Fault::SlowAfterStore) {
        g.slow
    } else {
        Duration::ZERO
    };
    (200, XML, confirmation(), wait)
}
