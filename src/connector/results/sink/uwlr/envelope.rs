//! The SOAP 1.1 envelope of `BrengLeerresultaten` and the reading of its
//! answer (`leerresultaten_bevestiging`, or a SOAP fault). Private to this
//! sink until the SOAP pieces of the UWLR source and this sink are one
//! module.

use std::fmt::Write as _;

use quick_xml::escape::escape;
use quick_xml::events::Event;

use super::config::Ander;
use crate::connector::xml_input::{doctype_refused, push_ref};
pub use crate::soap::Autorisatie;

/// The namespaces of the envelope and its `autorisatie` header, as the
/// UWLR source's requests use them.
pub use crate::soap::{AUTORISATIE_NS as AUT_NS, ENVELOPE_NS as SOAP_NS};
pub const LR_NS: &str = "http://www.edustandaard.nl/leerresultaten/2/leerresultaten";
/// `soapAction` of the operation in `UWLR_Leerresultaten_v2p2.wsdl`.
pub const SOAP_ACTION: &str = "BrengLeerresultaten";

/// The `school` block.
pub struct School<'a> {
    pub schooljaar: &'a str,
    pub brincode: &'a str,
    pub dependancecode: Option<&'a str>,
    /// `aanmaakdatum`, RFC 3339.
    pub created: &'a str,
}

/// One `resultaat` of one student.
pub struct Resultaat<'a> {
    pub key: &'a str,
    pub leerlingid: &'a str,
    pub eckid: Option<&'a str>,
    pub afnamedatum: &'a str,
    pub toetscode: &'a str,
    pub value: Value<'a>,
}

/// What the `resultaat` carries.
pub enum Value<'a> {
    /// `score`, UWLR's own whole-number result.
    Score(u64),
    /// `anderresultaat` with `xsi:type` naming the LAS's concrete type.
    Ander { ander: &'a Ander, text: &'a str },
}

pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

fn el(out: &mut String, name: &str, v: &str) {
    let _ = write!(out, "<lr:{name}>{}</lr:{name}>", escape(v));
}

/// The whole request. The body (`leerresultaten_verzoek`) is returned
/// apart too: its hash is what the audit log records (the header holds
/// the key).
pub fn request(a: &Autorisatie<'_>, s: &School<'_>, r: &Resultaat<'_>) -> (Vec<u8>, Vec<u8>) {
    let mut body = String::with_capacity(1024);
    body.push_str("<lr:leerresultaten_verzoek><lr:school>");
    el(&mut body, "schooljaar", s.schooljaar);
    el(&mut body, "brincode", s.brincode);
    if let Some(d) = s.dependancecode {
        el(&mut body, "dependancecode", d);
    }
    el(&mut body, "aanmaakdatum", s.created);
    el(&mut body, "auteur", "sisync");
    el(&mut body, "xsdversie", "2.2");
    body.push_str("</lr:school><lr:toetsafnames><lr:toetsafname>");
    el(&mut body, "leerlingid", r.leerlingid);
    if let Some(e) = r.eckid {
        el(&mut body, "eckid", e);
    }
    let _ = write!(
        body,
        "<lr:resultaten><lr:resultaat key=\"{}\">",
        escape(r.key)
    );
    el(&mut body, "afnamedatum", r.afnamedatum);
    el(&mut body, "toetscode", r.toetscode);
    match &r.value {
        Value::Score(n) => el(&mut body, "score", &n.to_string()),
        Value::Ander { ander, text } => {
            let _ = write!(
                body,
                "<lr:anderresultaat xmlns:xsi=\"{XSI_NS}\" xmlns:{p}=\"{}\" xsi:type=\"{p}:{}\">",
                escape(&ander.namespace),
                ander.type_name,
                p = ander.prefix,
            );
            match &ander.element {
                None => el(&mut body, "andere_score", text),
                Some(e) => {
                    let _ = write!(
                        body,
                        "<{p}:{e}>{}</{p}:{e}>",
                        escape(*text),
                        p = ander.prefix
                    );
                }
            }
            body.push_str("</lr:anderresultaat>");
        }
    }
    body.push_str("</lr:resultaat></lr:resultaten></lr:toetsafname></lr:toetsafnames>");
    body.push_str("<lr:toetsen><lr:toets>");
    el(&mut body, "toetscode", r.toetscode);
    if r.toetscode.chars().count() <= 128 {
        el(&mut body, "toetsnaam", r.toetscode);
    }
    body.push_str("</lr:toets></lr:toetsen></lr:leerresultaten_verzoek>");
    (wrap(a, &body), body.into_bytes())
}

/// A whole SOAP envelope: the `autorisatie` header, then `body` (written
/// by the caller, the `lr` prefix declared here).
pub fn wrap(a: &Autorisatie<'_>, body: &str) -> Vec<u8> {
    let mut env = String::with_capacity(body.len() + 512);
    let _ = write!(
        env,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soapenv:Envelope xmlns:soapenv=\"{SOAP_NS}\" xmlns:aut=\"{AUT_NS}\" xmlns:lr=\"{LR_NS}\"><soapenv:Header><aut:autorisatie><aut:autorisatiesleutel>{}</aut:autorisatiesleutel><aut:klantcode>{}</aut:klantcode><aut:klantnaam>{}</aut:klantnaam></aut:autorisatie></soapenv:Header><soapenv:Body>",
        escape(a.sleutel.expose()),
        escape(a.klantcode),
        escape(a.klantnaam)
    );
    env.push_str(body);
    env.push_str("</soapenv:Body></soapenv:Envelope>\n");
    env.into_bytes()
}

/// A SOAP 1.1 fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The local part of `faultcode` (`Client`, `Server`, `Client.Auth`…).
    pub code: String,
    /// `faultstring`, at most 300 characters. It may echo the request:
    /// kept in the outbox for the admin, never logged.
    pub string: String,
}

impl Fault {
    /// The sender's fault (bad request, bad key): sending it again will
    /// not help.
    pub fn is_client(&self) -> bool {
        self.code == "Client" || self.code.starts_with("Client.")
    }
}

/// What the LAS answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `leerresultaten_bevestiging`: stored.
    Confirmed,
    Fault(Fault),
    /// A SOAP envelope without either, or no SOAP at all; the reason
    /// names what was found, never content.
    Unexpected(String),
}

/// Read an answer body.
pub fn answer(bytes: &[u8]) -> Answer {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    reader.config_mut().check_end_names = true;
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut in_body = false;
    let mut fault: Option<Fault> = None;
    let mut field: Option<&'static str> = None;
    let mut text = String::new();
    let mut first_in_body: Option<String> = None;
    loop {
        let ev = match reader.read_event() {
            Ok(e) => e,
            Err(_) => return Answer::Unexpected("the answer is not well-formed XML".into()),
        };
        let empty = matches!(ev, Event::Empty(_));
        match ev {
            Event::Eof => break,
            Event::DocType(d) if doctype_refused(&d) => {
                return Answer::Unexpected("the answer declares a DTD; refused".into());
            }
            Event::Start(e) | Event::Empty(e) => {
                let local = e.local_name().as_ref().to_vec();
                if in_body && path.len() == 2 && first_in_body.is_none() {
                    first_in_body = Some(String::from_utf8_lossy(&local).into_owned());
                    match local.as_slice() {
                        b"leerresultaten_bevestiging" => return Answer::Confirmed,
                        b"Fault" => {
                            fault = Some(Fault {
                                code: String::new(),
                                string: String::new(),
                            })
                        }
                        _ => {}
                    }
                }
                if fault.is_some() && path.len() == 3 {
                    field = match local.as_slice() {
                        b"faultcode" => Some("code"),
                        b"faultstring" => Some("string"),
                        _ => None,
                    };
                    text.clear();
                }
                if path.len() == 1 && local.as_slice() == b"Body" {
                    in_body = true;
                }
                if !empty {
                    path.push(local);
                }
            }
            Event::Text(t) if field.is_some() => {
                if let Ok(s) = t.decode() {
                    text.push_str(&s);
                }
            }
            Event::CData(t) if field.is_some() => {
                if let Ok(s) = t.decode() {
                    text.push_str(&s);
                }
            }
            Event::GeneralRef(r) if field.is_some() && push_ref(&mut text, &r).is_err() => {
                return Answer::Unexpected("the fault uses an unknown entity".into());
            }
            Event::End(_) => {
                if let (Some(f), Some(which)) = (fault.as_mut(), field) {
                    if path.len() == 4 {
                        let v = text.trim();
                        match which {
                            "code" => {
                                f.code = v.rsplit(':').next().unwrap_or(v).to_string();
                            }
                            _ => f.string = v.chars().take(300).collect(),
                        }
                        field = None;
                    }
                }
                path.pop();
            }
            _ => {}
        }
    }
    match (fault, first_in_body) {
        (Some(f), _) => Answer::Fault(f),
        (None, Some(other)) => Answer::Unexpected(format!(
            "the SOAP body holds {other}, not leerresultaten_bevestiging"
        )),
        (None, None) if in_body => Answer::Unexpected("the SOAP body is empty".into()),
        (None, None) => Answer::Unexpected("the answer is not a SOAP envelope".into()),
    }
}
