//! `[results.sink] kind = "uwlr"`: results to the student administration
//! (LAS) over UWLR 2.2 `BrengLeerresultaten` (SOAP 1.1).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// The namespaces of a `BrengLeerresultaten` request, which an
/// `anderresultaat_namespace` cannot be.
mod envelope_ns {
    pub const SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
    pub const AUT: &str = "http://www.edustandaard.nl/leerresultaten/2/autorisatie";
    pub const LR: &str = "http://www.edustandaard.nl/leerresultaten/2/leerresultaten";
}

use crate::config::endpoint::{Endpoint, Needs};
use crate::config::{ConfigError, ConnectorConfig, Loaded, Secret};
use crate::connector::school::{SchoolKeys, is_brin, is_dependance, parse_month_day};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UwlrResultSink {
    /// `base_url`: the LAS's Leerresultaten endpoint (the service address
    /// of `UWLR_Leerresultaten_v2p2.wsdl`); `[results.sink.tls]` (mutual
    /// TLS, PKIoverheid / Edukoppeling), results pushed at once
    /// (`concurrency`, 1 to 16), `rate_limit`, timeout, retries: see
    /// [`Endpoint`].
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// `autorisatiesleutel` of the `autorisatie` SOAP header: `env:NAME`
    /// (inline keys are refused) or a file in `autorisatiesleutel_file`.
    pub autorisatiesleutel: Option<String>,
    pub autorisatiesleutel_file: Option<PathBuf>,
    /// `klantcode` and `klantnaam` of the header: who sisync is to the
    /// LAS (as agreed with the school's LAS supplier).
    pub klantcode: String,
    pub klantnaam: String,
    /// `brincode`, `dependancecode`, `school_year_starts` (a result's
    /// `schooljaar` is the one its afnamedatum falls in).
    #[serde(flatten)]
    pub school: SchoolKeys,
    /// Extra HTTP headers on every request, e.g. a gateway's
    /// `Ocp-Apim-Subscription-Key`. A value `env:NAME` is read from the
    /// environment, `file:PATH` from a file (credentials directory first),
    /// `plain:VALUE` is taken as it is; a bare value is deprecated.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// UWLR 2.2's `score` takes whole numbers only; its `anderresultaat`
    /// is abstract (`ctpAnderResultaatType`): a LAS that takes grades or
    /// fractional scores defines a concrete type extending it in its own
    /// schema. This names that type as `prefix:Type`, in
    /// `anderresultaat_namespace`; unset, grades and fractional scores
    /// are refused.
    pub anderresultaat_type: Option<String>,
    pub anderresultaat_namespace: Option<String>,
    /// The element of that type carrying the value: `andere_score` (the
    /// default, the abstract type's own example element, in the UWLR
    /// namespace) or an element the type adds (in its namespace).
    #[serde(default = "default_ander_element")]
    pub anderresultaat_element: String,
    /// What goes through `anderresultaat`: `grade_or_score` (default: the
    /// grade when the result has one, else a score `score` cannot carry),
    /// `grade` or `score`.
    #[serde(default)]
    pub anderresultaat_value: AnderValue,
}

/// What a configured `anderresultaat` carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnderValue {
    #[default]
    GradeOrScore,
    Grade,
    Score,
}

impl AnderValue {
    pub fn grades(self) -> bool {
        self != AnderValue::Score
    }
    pub fn scores(self) -> bool {
        self != AnderValue::Grade
    }
}

/// A configured `anderresultaat`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ander {
    pub prefix: String,
    pub type_name: String,
    pub namespace: String,
    /// `None`: the base type's `andere_score` (UWLR namespace).
    pub element: Option<String>,
    pub value: AnderValue,
}

fn default_ander_element() -> String {
    "andere_score".into()
}

/// An XML NCName, ASCII only (letters, digits, `_`, `-`, `.`, not
/// starting with a digit, `-` or `.`).
fn ncname(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

/// What the sink needs at run time, secrets resolved.
pub struct UwlrSecrets {
    pub key: Secret,
    pub headers: reqwest::header::HeaderMap,
}

impl UwlrResultSink {
    /// The `anderresultaat` settings, when configured (checked by
    /// `validate_uwlr_results`; `None` also when they do not parse).
    pub fn ander(&self) -> Option<Ander> {
        let (prefix, type_name) = self
            .anderresultaat_type
            .as_deref()?
            .trim()
            .split_once(':')?;
        let namespace = self.anderresultaat_namespace.as_deref()?.trim();
        let element = self.anderresultaat_element.trim();
        (ncname(prefix) && ncname(type_name) && !namespace.is_empty() && ncname(element)).then(
            || Ander {
                prefix: prefix.to_string(),
                type_name: type_name.to_string(),
                namespace: namespace.to_string(),
                element: (element != "andere_score").then(|| element.to_string()),
                value: self.anderresultaat_value,
            },
        )
    }

    /// The school year a date (`YYYY-MM-DD`) falls in, as `2025-2026`.
    pub fn school_year(&self, date: &str) -> Option<String> {
        let d = chrono::NaiveDate::parse_from_str(date.get(..10)?, "%Y-%m-%d").ok()?;
        Some(self.school.year_of(d))
    }
}

impl ConnectorConfig for UwlrResultSink {
    fn deprecations(&self, l: &Loaded, section: &str) -> Vec<String> {
        crate::connector::gateway::bare_header_warnings(l, section, &self.headers)
    }
    /// No HTTP authentication (the key travels in the SOAP header); at
    /// most 16 results at once, 4 by default.
    fn endpoint(&self) -> Option<(&Endpoint, Needs)> {
        Some((
            &self.endpoint,
            Needs {
                concurrency: (4, 16),
                ..Needs::open(4)
            },
        ))
    }
    fn secret_problems(&self, l: &Loaded, _section: &str) -> Vec<ConfigError> {
        l.uwlr_secrets(self).err().into_iter().collect()
    }
    fn secret_files(&self, section: &str) -> Vec<(String, PathBuf)> {
        let f = self.autorisatiesleutel_file.iter();
        f.map(|f| (format!("{section}.autorisatiesleutel_file"), f.clone()))
            .collect()
    }
    fn validate(&self, l: &Loaded, _section: &str) -> Result<(), ConfigError> {
        const S: &str = "results.sink";
        let u = self;
        l.check_secret(
            S,
            ("autorisatiesleutel", &u.autorisatiesleutel),
            ("autorisatiesleutel_file", &u.autorisatiesleutel_file),
        )?;
        for (key, v) in [("klantcode", &u.klantcode), ("klantnaam", &u.klantnaam)] {
            let n = v.trim().chars().count();
            if n == 0 || n > 64 {
                return Err(l.error(
                    S,
                    key,
                    "must be 1 to 64 characters (UWLR autorisatie header), as agreed with the LAS supplier",
                ));
            }
        }
        let (brin, dep) = u.school.block(&l.config.institution.brin);
        if !is_brin(&brin) {
            return Err(l.error(
                S,
                "brincode",
                format!("`{brin}` is not a BRIN code (two digits and two capitals, e.g. 99AA)"),
            ));
        }
        if let Some(d) = dep {
            if !is_dependance(&d) {
                return Err(l.error(S, "dependancecode", format!("`{d}` is not two digits")));
            }
        }
        if parse_month_day(&u.school.school_year_starts).is_none() {
            return Err(l.error(
                S,
                "school_year_starts",
                "is not a month and day as MM-DD (e.g. 08-01)",
            ));
        }
        match (&u.anderresultaat_type, &u.anderresultaat_namespace) {
            (None, None) => {}
            (Some(_), None) => {
                return Err(l.error(
                    S,
                    "anderresultaat_namespace",
                    "anderresultaat_type needs the namespace URI of the LAS schema that defines it",
                ));
            }
            (None, Some(_)) => {
                return Err(l.error(
                    S,
                    "anderresultaat_type",
                    "anderresultaat_namespace needs anderresultaat_type (the type as prefix:Type)",
                ));
            }
            (Some(t), Some(ns)) => {
                let ok = t
                    .trim()
                    .split_once(':')
                    .is_some_and(|(p, n)| ncname(p) && ncname(n));
                let p = t.trim().split(':').next().unwrap_or("");
                if !ok
                    || p.to_ascii_lowercase().starts_with("xml")
                    || ["soapenv", "aut", "lr", "xsi"].contains(&p)
                {
                    return Err(l.error(
                        S,
                        "anderresultaat_type",
                        format!(
                            "`{t}` is not prefix:Type (XML names; the prefixes xml*, soapenv, aut, lr and xsi are sisync's own), e.g. \"las:Cijfer\" as in the LAS supplier's schema"
                        ),
                    ));
                }
                let ns = ns.trim();
                if ns.is_empty()
                    || ns
                        .chars()
                        .any(|c| c.is_whitespace() || c == '"' || c == '<')
                    || [envelope_ns::SOAP, envelope_ns::AUT, envelope_ns::LR].contains(&ns)
                {
                    return Err(l.error(
                        S,
                        "anderresultaat_namespace",
                        format!(
                            "`{ns}` is not the namespace URI of the LAS supplier's schema (not empty, no spaces, not a SOAP or UWLR namespace)"
                        ),
                    ));
                }
                if !ncname(u.anderresultaat_element.trim()) {
                    return Err(l.error(
                        S,
                        "anderresultaat_element",
                        format!(
                            "`{}` is not an XML element name (e.g. andere_score or the element the LAS type adds)",
                            u.anderresultaat_element
                        ),
                    ));
                }
            }
        }
        for (name, value) in &u.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(l.error(S, "headers", format!("`{name}` is not an HTTP header name")));
            }
            if value.is_empty() {
                return Err(l.error(S, "headers", format!("{name} has no value")));
            }
        }
        Ok(())
    }
}

/// The secrets of a `uwlr` results sink, read when a run (or `--connect`)
/// builds the client.
impl Loaded {
    /// The key and headers of the UWLR results sink, read and checked (only when a run or `--connect` needs them).
    pub fn uwlr_secrets(&self, u: &UwlrResultSink) -> Result<UwlrSecrets, ConfigError> {
        const S: &str = "results.sink";
        let key = self.secret_value(
            S,
            ("autorisatiesleutel", &u.autorisatiesleutel),
            ("autorisatiesleutel_file", &u.autorisatiesleutel_file),
        )?;
        let n = key.expose().chars().count();
        if n == 0 || n > 64 {
            return Err(self.error(
                S,
                "autorisatiesleutel",
                "the key must be 1 to 64 characters (UWLR autorisatie header); check the file or variable",
            ));
        }
        // a bare value is the old form: read for one more release
        let headers = self.gateway_headers(S, &u.headers, true)?;
        Ok(UwlrSecrets { key, headers })
    }
}
