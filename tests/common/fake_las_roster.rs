//! A fake LAS (Magister/Somtoday/ParnasSys as far as UWLR 2.2 goes): the
//! leerlinggegevens service over SOAP 1.1, on 127.0.0.1 over HTTP or over
//! HTTPS with a required client certificate. It serves the schools of
//! EDEXML fixture files (the same element model), checks the
//! `autorisatie` header and the SOAPAction, answers `geenwijzigingen`,
//! `geengegevens` and SOAP faults on demand, and records every exchange
//! so the tests can validate requests and answers against the XSDs.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use quick_xml::Reader;
use quick_xml::events::Event;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

pub const LG_NS: &str = "http://www.edustandaard.nl/leerresultaten/2/leerlinggegevens";
pub const YEAR: &str = "2024-2025";

/// One school as the LAS holds it: raw EDEX fragments.
#[derive(Clone, Default)]
pub struct LasSchool {
    pub key: String,
    block: String,
    vestigingen: String,
    groepen: Vec<(String, String)>,
    leerlingen: Vec<(String, Vec<String>)>,
    leerkrachten: Vec<(String, Vec<String>)>,
    /// false: `laatstontvangengegevens` gets `geenwijzigingen`.
    pub changed: bool,
    /// true: every request gets `geengegevens`.
    pub no_data: bool,
    /// true: the connection is closed without an answer.
    pub hang_up: bool,
    /// true: the answer breaks off halfway (Content-Length promises all).
    pub cut_off: bool,
}

impl LasSchool {
    /// The school of an EDEXML file, with its autorisatiesleutel.
    pub fn from_edexml(path: &Path, key: &str) -> (String, LasSchool) {
        let xml = std::fs::read_to_string(path).unwrap();
        let mut r = Reader::from_str(&xml);
        let mut s = LasSchool {
            key: key.into(),
            changed: true,
            ..LasSchool::default()
        };
        let mut depth = 0;
        let mut section = String::new();
        let mut start = 0usize;
        let mut section_start = 0usize;
        let mut groups: Vec<String> = Vec::new();
        let mut code = String::new();
        let mut in_brin = false;
        let mut in_dep = false;
        let mut dep = "00".to_string();
        loop {
            let before = r.buffer_position() as usize;
            let ev = r.read_event().unwrap();
            match &ev {
                Event::Start(e) | Event::Empty(e) => {
                    let empty = matches!(ev, Event::Empty(_));
                    if !empty {
                        depth += 1;
                    }
                    let name = String::from_utf8(e.local_name().as_ref().to_vec()).unwrap();
                    let d = if empty { depth + 1 } else { depth };
                    if d == 2 {
                        section = name.clone();
                        section_start = before;
                    }
                    if d == 3 {
                        start = before;
                        groups.clear();
                    }
                    if d >= 4 && (name == "groep" || name == "samengestelde_groep") {
                        if let Some(k) = e.try_get_attribute("key").unwrap() {
                            groups.push(String::from_utf8(k.value.to_vec()).unwrap());
                        }
                    }
                    in_brin = name == "brincode";
                    in_dep = name == "dependancecode";
                }
                Event::Text(t) => {
                    let t = String::from_utf8(t.to_vec()).unwrap();
                    if in_brin {
                        code = t.trim().to_string();
                    }
                    if in_dep {
                        dep = t.trim().to_string();
                    }
                }
                Event::End(_) => {
                    in_brin = false;
                    in_dep = false;
                    let end = r.buffer_position() as usize;
                    let raw = xml[if depth == 2 { section_start } else { start }..end].to_string();
                    if depth == 2 {
                        match section.as_str() {
                            "school" => s.block = raw.clone(),
                            "vestigingen" => s.vestigingen = raw.clone(),
                            _ => {}
                        }
                    }
                    if depth == 3 {
                        match section.as_str() {
                            "groepen" => {
                                let key = raw.split("key=\"").nth(1).unwrap();
                                let key = key.split('"').next().unwrap().to_string();
                                s.groepen.push((key, raw));
                            }
                            "leerlingen" => s.leerlingen.push((raw, groups.clone())),
                            "leerkrachten" => s.leerkrachten.push((raw, groups.clone())),
                            _ => {}
                        }
                    }
                    depth -= 1;
                }
                Event::Eof => break,
                _ => {}
            }
        }
        (format!("{code}{dep}"), s)
    }
}

/// One request and what was answered.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub soap_action: String,
    pub headers: HashMap<String, String>,
    pub request: Vec<u8>,
    pub status: u16,
    pub response: Vec<u8>,
    /// The body element (`leerlinggegevens_verzoek`, ...).
    pub op: String,
    pub school: String,
}

impl Exchange {
    pub fn request_text(&self) -> String {
        String::from_utf8(self.request.clone()).unwrap()
    }

    pub fn response_text(&self) -> String {
        String::from_utf8(self.response.clone()).unwrap()
    }

    /// The request asks for changes since an earlier answer only.
    pub fn asks_since(&self) -> bool {
        self.request_text().contains("laatstontvangengegevens")
    }
}

#[derive(Default)]
pub struct LasState {
    pub schools: HashMap<String, LasSchool>,
    pub exchanges: Vec<Exchange>,
    /// The next request gets this SOAP fault (faultcode soap:Server).
    pub fault_next: Option<String>,
    /// A gateway header every request must carry: (name, value).
    pub require_header: Option<(String, String)>,
}

#[derive(Clone)]
pub struct FakeLas {
    pub url: String,
    pub state: Arc<Mutex<LasState>>,
}

/// What a request asked.
#[derive(Default, Debug)]
struct Asked {
    op: String,
    key: String,
    klantcode: String,
    schooljaar: String,
    brincode: String,
    dependancecode: String,
    since: Option<String>,
    refs: Vec<(Option<String>, bool)>,
}

fn parse_request(body: &[u8]) -> Asked {
    let mut a = Asked::default();
    let mut r = Reader::from_reader(body);
    let mut path: Vec<String> = Vec::new();
    let mut buf = Vec::new();
    while let Ok(ev) = r.read_event_into(&mut buf) {
        match &ev {
            Event::Start(e) | Event::Empty(e) => {
                let name = String::from_utf8(e.local_name().as_ref().to_vec()).unwrap();
                if path.len() == 2 && path[1] == "Body" {
                    a.op = name.clone();
                }
                if path.len() == 4
                    && path[3] == "groepen"
                    && (name == "groep" || name == "samengestelde_groep")
                {
                    let key = e
                        .try_get_attribute("key")
                        .unwrap()
                        .map(|k| String::from_utf8(k.value.to_vec()).unwrap());
                    a.refs.push((key, name == "samengestelde_groep"));
                }
                if matches!(ev, Event::Start(_)) {
                    path.push(name);
                }
            }
            Event::Text(t) => {
                let t = t.decode().unwrap().trim().to_string();
                match path.last().map(String::as_str) {
                    Some("autorisatiesleutel") => a.key = t,
                    Some("klantcode") => a.klantcode = t,
                    Some("schooljaar") => a.schooljaar = t,
                    Some("brincode") => a.brincode = t,
                    Some("dependancecode") => a.dependancecode = t,
                    Some("laatstontvangengegevens") => a.since = Some(t),
                    _ => {}
                }
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    a
}

fn envelope(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>{body}</soap:Body></soap:Envelope>\n"
    )
}

pub fn fault(code: &str, text: &str) -> String {
    envelope(&format!(
        "<soap:Fault><faultcode>soap:{code}</faultcode><faultstring>{text}</faultstring></soap:Fault>"
    ))
}

const ACTIONS: [(&str, &str); 4] = [
    ("leerlinggegevens_verzoek", "HaalLeerlinggegevens"),
    (
        "structuur_verzoek",
        "http://www.edustandaard.nl/leerresultaten/2/leerlinggegevens/structuur_verzoek",
    ),
    (
        "leerlingen_verzoek",
        "http://www.edustandaard.nl/leerresultaten/2/leerlinggegevens/leerlingen_verzoek",
    ),
    (
        "leerkrachten_verzoek",
        "http://www.edustandaard.nl/leerresultaten/2/leerlinggegevens/leerkrachten_verzoek",
    ),
];

impl LasState {
    /// (status, body, hang up) for one request.
    fn answer(
        &mut self,
        action: &str,
        headers: &HashMap<String, String>,
        a: &Asked,
    ) -> (u16, String, bool) {
        let cut = self
            .schools
            .get(&format!("{}{}", a.brincode, a.dependancecode))
            .is_some_and(|s| s.cut_off);
        let (status, body, hang_up) = self.answer_whole(action, headers, a);
        if cut && status == 200 {
            // the whole length announced, half the bytes sent
            return (status, format!("CUT{}", &body[..body.len() / 2]), hang_up);
        }
        (status, body, hang_up)
    }

    fn answer_whole(
        &mut self,
        action: &str,
        headers: &HashMap<String, String>,
        a: &Asked,
    ) -> (u16, String, bool) {
        if let Some(f) = self.fault_next.take() {
            return (500, fault("Server", &f), false);
        }
        if let Some((name, value)) = &self.require_header {
            if headers.get(&name.to_ascii_lowercase()) != Some(value) {
                return (
                    401,
                    "Access denied due to missing subscription key".into(),
                    false,
                );
            }
        }
        let Some((_, want)) = ACTIONS.iter().find(|(el, _)| *el == a.op) else {
            return (500, fault("Client", "Onbekende operatie"), false);
        };
        if action.trim_matches('"') != *want {
            return (
                500,
                fault("Client", "SOAPAction past niet bij het verzoek"),
                false,
            );
        }
        let dep = if a.dependancecode.is_empty() {
            "00"
        } else {
            &a.dependancecode
        };
        let code = format!("{}{dep}", a.brincode);
        let Some(s) = self.schools.get(&code) else {
            return (500, fault("Client", "School onbekend bij dit LAS"), false);
        };
        if a.key != s.key || a.klantcode.is_empty() {
            return (
                500,
                fault(
                    "Client",
                    "Autorisatie mislukt: ongeldige autorisatiesleutel",
                ),
                false,
            );
        }
        if s.hang_up {
            return (0, String::new(), true);
        }
        let antwoord = a.op.replace("_verzoek", "_antwoord");
        let exception = |what: &str| {
            envelope(&format!(
                "<{antwoord} xmlns=\"{LG_NS}\"><{what}/></{antwoord}>"
            ))
        };
        if s.no_data || a.schooljaar != YEAR {
            return (200, exception("geengegevens"), false);
        }
        if a.since.is_some() && !s.changed {
            return (200, exception("geenwijzigingen"), false);
        }
        let groepen = || {
            if s.groepen.is_empty() {
                String::new()
            } else {
                let all: String = s.groepen.iter().map(|(_, g)| g.as_str()).collect();
                format!("<groepen>{all}</groepen>")
            }
        };
        let wanted: HashSet<&str> = a.refs.iter().filter_map(|(k, _)| k.as_deref()).collect();
        let ungrouped = a.refs.iter().any(|(k, _)| k.is_none());
        let pick = |list: &[(String, Vec<String>)]| -> String {
            list.iter()
                .filter(|(_, gs)| {
                    gs.iter().any(|g| wanted.contains(g.as_str())) || (gs.is_empty() && ungrouped)
                })
                .map(|(raw, _)| raw.as_str())
                .collect()
        };
        let inner = match a.op.as_str() {
            "leerlinggegevens_verzoek" => {
                let ll: String = s.leerlingen.iter().map(|(r, _)| r.as_str()).collect();
                let lk: String = s.leerkrachten.iter().map(|(r, _)| r.as_str()).collect();
                let lk = if lk.is_empty() {
                    lk
                } else {
                    format!("<leerkrachten>{lk}</leerkrachten>")
                };
                format!(
                    "<leerlinggegevens>{}{}{}<leerlingen>{ll}</leerlingen>{lk}</leerlinggegevens>",
                    s.block,
                    s.vestigingen,
                    groepen()
                )
            }
            "structuur_verzoek" => format!(
                "<leerlinggegevens-structuur>{}{}{}</leerlinggegevens-structuur>",
                s.block,
                s.vestigingen,
                groepen()
            ),
            "leerlingen_verzoek" => {
                let ll = pick(&s.leerlingen);
                if ll.is_empty() {
                    return (200, exception("geengegevens"), false);
                }
                format!(
                    "<leerlinggegevens-leerlingen>{}<leerlingen>{ll}</leerlingen></leerlinggegevens-leerlingen>",
                    s.block
                )
            }
            _ => {
                let lk = pick(&s.leerkrachten);
                let lk = if lk.is_empty() {
                    lk
                } else {
                    format!("<leerkrachten>{lk}</leerkrachten>")
                };
                format!(
                    "<leerlinggegevens-leerkrachten>{}{lk}</leerlinggegevens-leerkrachten>",
                    s.block
                )
            }
        };
        (
            200,
            envelope(&format!(
                "<{antwoord} xmlns=\"{LG_NS}\">{inner}</{antwoord}>"
            )),
            false,
        )
    }
}

/// Serve one HTTP/1.1 exchange on a stream (HTTP or TLS).
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, state: Arc<Mutex<LasState>>) {
    let Some(request) = super::http1::read_request(&mut s).await else {
        return;
    };
    let headers: HashMap<String, String> = request.headers.into_iter().collect();
    let body = request.body;
    let action = headers.get("soapaction").cloned().unwrap_or_default();
    let asked = parse_request(&body);
    let (status, answer, hang_up) = {
        let mut st = state.lock().unwrap();
        let r = st.answer(&action, &headers, &asked);
        st.exchanges.push(Exchange {
            soap_action: action.clone(),
            headers: headers.clone(),
            request: body,
            status: r.0,
            response: r.1.clone().into_bytes(),
            op: asked.op.clone(),
            school: format!("{}{}", asked.brincode, asked.dependancecode),
        });
        r
    };
    if hang_up {
        return;
    }
    let ctype = if answer.starts_with('<') {
        "text/xml; charset=utf-8"
    } else {
        "text/plain"
    };
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        _ => "Internal Server Error",
    };
    let (answer, len) = match answer.strip_prefix("CUT") {
        Some(half) => (half.to_string(), half.len() * 2 + 1),
        None => (answer.clone(), answer.len()),
    };
    let ctype = if answer.starts_with('<') {
        "text/xml; charset=utf-8"
    } else {
        ctype
    };
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n{answer}"
    );
    let _ = s.write_all(resp.as_bytes()).await;
    let _ = s.shutdown().await;
}

impl FakeLas {
    /// Plain HTTP on 127.0.0.1.
    pub async fn start(schools: Vec<(String, LasSchool)>) -> FakeLas {
        Self::start_on(schools, None).await
    }

    /// HTTPS on localhost, refusing clients without a certificate of `pki`'s CA.
    pub async fn start_tls(schools: Vec<(String, LasSchool)>, pki: &Pki) -> FakeLas {
        Self::start_on(schools, Some(pki.acceptor())).await
    }

    async fn start_on(
        schools: Vec<(String, LasSchool)>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> FakeLas {
        let state = Arc::new(Mutex::new(LasState {
            schools: schools.into_iter().collect(),
            ..LasState::default()
        }));
        let s = state.clone();
        let (origin, port) = match tls {
            None => (
                "http://127.0.0.1",
                listen(move |tcp| serve(tcp, s.clone())).await,
            ),
            Some(a) => (
                "https://localhost",
                listen_tls(a, move |tls| serve(tls, s.clone())).await,
            ),
        };
        FakeLas {
            url: format!("{origin}:{port}/uwlr/leerlinggegevens"),
            state,
        }
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.state.lock().unwrap().exchanges.clone()
    }

    pub fn clear(&self) {
        self.state.lock().unwrap().exchanges.clear();
    }

    pub fn school(&self, code: &str, f: impl FnOnce(&mut LasSchool)) {
        f(self.state.lock().unwrap().schools.get_mut(code).unwrap());
    }
}

/// The two fixture schools: 99AA00 (key "sleutel-aa") and 99BB00
/// ("sleutel-bb").
pub fn fixture_schools() -> Vec<(String, LasSchool)> {
    let dir = super::repo().join("fixtures/edexml-2.1");
    vec![
        LasSchool::from_edexml(&dir.join("99AA00.xml"), "sleutel-aa"),
        LasSchool::from_edexml(&dir.join("99BB00.xml"), "sleutel-bb"),
    ]
}

use super::http1::{listen, listen_tls};
use super::test_pki::Pki;

/// Validate XML documents with `xmllint --schema` (Debian's
/// libxml2-utils): panics with xmllint's own report when one fails.
pub fn xsd_validate(xsd: &Path, docs: &[(String, Vec<u8>)]) {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (i, (name, bytes)) in docs.iter().enumerate() {
        let safe: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let p = dir.path().join(format!("{i:03}-{safe}.xml"));
        std::fs::write(&p, bytes).unwrap();
        paths.push(p);
    }
    for chunk in paths.chunks(50) {
        let out = std::process::Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(xsd)
            .args(chunk)
            .output()
            .expect("xmllint is installed (apt-get install libxml2-utils; .ci/run does)");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "XSD validation failed against {}:\n{}",
            xsd.display(),
            err.chars().take(3000).collect::<String>()
        );
        assert_eq!(
            err.matches(" validates").count(),
            chunk.len(),
            "every document validates: {err}"
        );
    }
}

/// Validate every request and answer the LAS exchanged against the
/// envelope XSD; the number of exchanges.
pub fn validate_exchanges(las: &FakeLas) -> usize {
    let ex = las.exchanges();
    let mut docs = Vec::new();
    for (i, e) in ex.iter().enumerate() {
        docs.push((format!("req-{i}-{}", e.op), e.request.clone()));
        if e.response.starts_with(b"<") {
            docs.push((format!("resp-{i}-{}", e.op), e.response.clone()));
        }
    }
    xsd_validate(&envelope_xsd(), &docs);
    ex.len()
}

/// The driver schema for whole leerlinggegevens envelopes.
pub fn envelope_xsd() -> std::path::PathBuf {
    super::repo().join("fixtures/specs/uwlr-2.2/check/leerlinggegevens-envelope.xsd")
}
