//! SOAP 1.1 on the shared HTTP client, for the UWLR operations (no SOAP
//! framework): the envelope is written with quick-xml, the Edustandaard
//! `autorisatie` header carries the school's key, and a SOAP fault (sent
//! with HTTP 500, or by some servers with 200) becomes one error line with
//! the server's `faultcode` and `faultstring`.
//!
//! The request is written straight into one buffer (no document tree);
//! the answer is handed back as bytes for the caller's streaming reader.

use std::io::Write;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use reqwest::Method;
use reqwest::header::{self, HeaderMap, HeaderValue};

use crate::http::{Http, HttpError, Request};
use crate::secret::Secret;

pub const ENVELOPE_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const AUTORISATIE_NS: &str = "http://www.edustandaard.nl/leerresultaten/2/autorisatie";

/// The UWLR `autorisatie` SOAP header.
pub struct Autorisatie<'a> {
    /// The school's `autorisatiesleutel`.
    pub sleutel: &'a Secret,
    pub klantcode: &'a str,
    pub klantnaam: &'a str,
}

/// Where the body of an envelope is written.
pub type BodyWriter<'a> = Writer<&'a mut Vec<u8>>;

/// A whole SOAP 1.1 envelope: the `autorisatie` header, then whatever
/// `body` writes into `soap:Body`.
pub fn envelope(
    auth: &Autorisatie<'_>,
    body: impl FnOnce(&mut BodyWriter<'_>) -> std::io::Result<()>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(2048);
    let mut w = Writer::new(&mut out);
    // writing into a Vec cannot fail
    let _ = (|| -> std::io::Result<()> {
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        w.write_event(Event::Start(
            BytesStart::new("soap:Envelope").with_attributes([("xmlns:soap", ENVELOPE_NS)]),
        ))?;
        w.write_event(Event::Start(BytesStart::new("soap:Header")))?;
        w.write_event(Event::Start(
            BytesStart::new("autorisatie").with_attributes([("xmlns", AUTORISATIE_NS)]),
        ))?;
        text_element(&mut w, "autorisatiesleutel", auth.sleutel.expose())?;
        text_element(&mut w, "klantcode", auth.klantcode)?;
        text_element(&mut w, "klantnaam", auth.klantnaam)?;
        w.write_event(Event::End(BytesEnd::new("autorisatie")))?;
        w.write_event(Event::End(BytesEnd::new("soap:Header")))?;
        w.write_event(Event::Start(BytesStart::new("soap:Body")))?;
        body(&mut w)?;
        w.write_event(Event::End(BytesEnd::new("soap:Body")))?;
        w.write_event(Event::End(BytesEnd::new("soap:Envelope")))?;
        w.get_mut().write_all(b"\n")
    })();
    out
}

/// `<name>text</name>`, the text escaped.
pub fn text_element<W: Write>(w: &mut Writer<W>, name: &str, text: &str) -> std::io::Result<()> {
    w.write_event(Event::Start(BytesStart::new(name)))?;
    w.write_event(Event::Text(BytesText::new(text)))?;
    w.write_event(Event::End(BytesEnd::new(name)))
}

/// A SOAP fault as the server sent it: `faultstring` on one line, at most
/// 300 characters, e-mail addresses and runs of 6 or more digits masked
/// (it goes into the run's error line, which the daemon logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: String,
    pub string: String,
}

/// A failed SOAP call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SoapError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("POST {url} ({action}): the server answered SOAP fault {}: {}", fault.code, fault.string)]
    Fault {
        url: String,
        action: String,
        fault: Fault,
    },
    #[error(
        "POST {url} ({action}): HTTP 500 without a SOAP fault; the service failed, try again later"
    )]
    NoFault { url: String, action: String },
    #[error("POST {url} ({action}): the answer broke off ({reason})")]
    Broken {
        url: String,
        action: String,
        reason: String,
    },
}

impl SoapError {
    /// Worth another try later (transport trouble, a server-side fault).
    pub fn is_transient(&self) -> bool {
        match self {
            SoapError::Http(e) => e.status.is_none_or(|s| s == 429 || s >= 500),
            SoapError::Fault { fault, .. } => {
                let c = fault.code.rsplit(':').next().unwrap_or_default();
                c.eq_ignore_ascii_case("Server")
            }
            SoapError::NoFault { .. } | SoapError::Broken { .. } => true,
        }
    }
}

/// One SOAP endpoint.
#[derive(Clone)]
pub struct SoapClient {
    http: Http,
    url: String,
}

impl SoapClient {
    pub fn new(http: Http, url: &str) -> SoapClient {
        SoapClient {
            http: http.with_soap_faults(),
            url: url.to_string(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// [`SoapClient::call`], the answer left unread for the caller to
    /// stream (a fault in it is the streaming parser's to find; a fault
    /// sent with HTTP 500 is read and returned here).
    pub async fn call_streaming(
        &self,
        action: &str,
        envelope: &[u8],
        repeatable: bool,
    ) -> Result<reqwest::Response, SoapError> {
        let h = Self::headers(action);
        let resp = self
            .http
            .send_streaming(self.post(envelope, repeatable, &h))
            .await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let body = resp.bytes().await.map_err(|e| SoapError::Broken {
            url: self.url.clone(),
            action: action.to_string(),
            reason: e.to_string(),
        })?;
        Err(match fault(&body) {
            Some(f) => SoapError::Fault {
                url: self.url.clone(),
                action: action.to_string(),
                fault: f,
            },
            None => SoapError::NoFault {
                url: self.url.clone(),
                action: action.to_string(),
            },
        })
    }

    /// The POST of an envelope.
    fn post<'a>(&'a self, envelope: &'a [u8], repeatable: bool, h: &'a HeaderMap) -> Request<'a> {
        Request {
            method: Method::POST,
            url: &self.url,
            body: Some(envelope),
            content_type: "text/xml; charset=utf-8",
            repeatable,
            extra: h,
        }
    }

    fn headers(action: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("text/xml"));
        if let Ok(v) = HeaderValue::from_str(&format!("\"{action}\"")) {
            h.insert("SOAPAction", v);
        }
        h
    }

    /// POST an envelope with `SOAPAction: "<action>"`; the answer's bytes,
    /// or the fault. `repeatable`: the operation only reads (or is
    /// idempotent by key), so a lost answer may be asked again.
    pub async fn call(
        &self,
        action: &str,
        envelope: &[u8],
        repeatable: bool,
    ) -> Result<Vec<u8>, SoapError> {
        let h = Self::headers(action);
        let reply = self
            .http
            .send_with(self.post(envelope, repeatable, &h))
            .await?;
        match fault(&reply.body) {
            Some(f) => Err(SoapError::Fault {
                url: self.url.clone(),
                action: action.to_string(),
                fault: f,
            }),
            None if reply.status.as_u16() == 500 => Err(SoapError::NoFault {
                url: self.url.clone(),
                action: action.to_string(),
            }),
            None => Ok(reply.body),
        }
    }
}

/// The fault in an envelope, when the body's first element is
/// `Fault`; reads no further than that element.
pub fn fault(body: &[u8]) -> Option<Fault> {
    let mut r = quick_xml::Reader::from_reader(body);
    let mut in_body = false;
    let mut in_fault = false;
    let mut field: Option<&'static str> = None;
    let mut code = String::new();
    let mut string = String::new();
    let mut buf = Vec::new();
    loop {
        let ev = r.read_event_into(&mut buf).ok()?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let n = e.local_name();
                let n = n.as_ref();
                if !in_body {
                    in_body = n == b"Body";
                } else if !in_fault {
                    if n != b"Fault" {
                        return None;
                    }
                    in_fault = true;
                } else {
                    field = match n {
                        b"faultcode" => Some("code"),
                        b"faultstring" => Some("string"),
                        _ => None,
                    };
                }
            }
            Event::Text(ref t) => {
                let s = String::from_utf8_lossy(t);
                match field {
                    Some("code") => code.push_str(&s),
                    Some("string") => string.push_str(&s),
                    _ => {}
                }
            }
            Event::GeneralRef(ref g) => {
                let mut s = String::new();
                let _ = crate::xml_input::push_ref(&mut s, g);
                if field == Some("string") {
                    string.push_str(&s);
                }
            }
            Event::End(ref e) => {
                if in_fault && e.local_name().as_ref() == b"Fault" {
                    break;
                }
                field = None;
            }
            Event::DocType(_) | Event::Eof => return None,
            _ => {}
        }
        buf.clear();
    }
    let one_line = |s: &str| -> String {
        s.split_whitespace()
            .map(mask)
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(300)
            .collect()
    };
    Some(Fault {
        code: one_line(&code),
        string: one_line(&string),
    })
}

/// A word of a fault string as it may be shown and logged: an e-mail
/// address or a run of 6 or more digits (a BSN, a student number) is
/// replaced, since a server may echo request data in its faults.
fn mask(word: &str) -> std::borrow::Cow<'_, str> {
    if word.contains('@') && word.contains('.') {
        return "[e-mail]".into();
    }
    let mut run = 0;
    for b in word.bytes() {
        run = if b.is_ascii_digit() { run + 1 } else { 0 };
        if run >= 6 {
            return "[number]".into();
        }
    }
    word.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_carries_the_key_escaped_and_the_body() {
        let key = Secret::new("k<&>");
        let auth = Autorisatie {
            sleutel: &key,
            klantcode: "SUP",
            klantnaam: "Supplier & Co",
        };
        let env = envelope(&auth, |w| text_element(w, "x", "1"));
        let s = String::from_utf8(env).unwrap();
        for part in [
            "<autorisatiesleutel>k&lt;&amp;&gt;</autorisatiesleutel>",
            "<klantnaam>Supplier &amp; Co</klantnaam>",
            "<soap:Body><x>1</x></soap:Body>",
        ] {
            assert!(s.contains(part), "{part} in {s}");
        }
    }

    #[test]
    fn faults_are_recognised_and_data_is_not() {
        let f = br#"<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>Ongeldige
          autorisatiesleutel &amp; zo</faultstring></s:Fault></s:Body></s:Envelope>"#;
        assert_eq!(
            fault(f),
            Some(Fault {
                code: "s:Client".into(),
                string: "Ongeldige autorisatiesleutel & zo".into()
            })
        );
        let pii = br#"<s:Envelope xmlns:s="x"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>leerling 123456782 (jo@x.nl) onbekend</faultstring></s:Fault></s:Body></s:Envelope>"#;
        assert_eq!(
            fault(pii).unwrap().string,
            "leerling [number] [e-mail] onbekend"
        );
        let ok = br#"<s:Envelope xmlns:s="x"><s:Body><a><Fault/></a></s:Body></s:Envelope>"#;
        assert_eq!(fault(ok), None);
        assert_eq!(fault(b"not xml <<"), None);
    }
}
