//! `[source] kind = "uwlr"` (a LAS over UWLR 2.2 SOAP): its keys, checks
//! and resolved secrets (school keys, gateway headers).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::endpoint::{Endpoint, Needs};
use crate::config::{
    ConfigError, ConnectorConfig, Loaded, Secret, default_full_every, humantime_serde_compat,
};
use crate::connector::school::{
    default_year_start, is_brin, is_dependance, parse_month_day, valid_school_year,
};

/// UWLR 2.2 `HaalLeerlinggegevens` (or the staged operations) at a LAS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UwlrSource {
    /// `base_url`: the LAS's UWLR leerlinggegevens endpoint (SOAP 1.1);
    /// `[source.tls]`, timeout, retries: see [`Endpoint`].
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// `all-in-one` (`HaalLeerlinggegevens`) or `staged` (`HaalStructuur`,
    /// then `HaalLeerlingen` and `HaalLeerkrachten` per batch of groups).
    #[serde(default)]
    pub mode: UwlrMode,
    /// staged: groups per `HaalLeerlingen` / `HaalLeerkrachten` request.
    #[serde(default = "default_batch_groups")]
    pub batch_groups: usize,
    /// The `autorisatie` header: the supplier's customer code and name as
    /// the LAS registered them.
    pub klantcode: String,
    pub klantnaam: String,
    /// The schools to read; each completely, or the run fails.
    pub schools: Vec<UwlrSchool>,
    /// `xsdversie` in the request.
    #[serde(default = "default_xsdversie")]
    pub xsdversie: String,
    /// `gegevenssetid` (the profile, e.g. the LVS or Smalle set) when the
    /// LAS asks for one.
    pub gegevenssetid: Option<String>,
    /// An explicit `schooljaar` ("2025-2026"); default: derived from the
    /// date, a new year starting on `schooljaar_start`.
    pub schooljaar: Option<String>,
    /// First day of a school year, "MM-DD" (default "08-01").
    #[serde(default = "default_year_start")]
    pub schooljaar_start: String,
    /// Extra HTTP headers for a vendor gateway, e.g.
    /// `{ "Ocp-Apim-Subscription-Key" = "env:NAME" }`; a value is a secret
    /// (`env:NAME` or `file:/path`) or, prefixed `plain:`, a literal.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A full read at least this often; runs in between send
    /// `laatstontvangengegevens` and take `geenwijzigingen` for "nothing changed".
    #[serde(default = "default_full_every", with = "humantime_serde_compat")]
    pub full_every: Duration,
    /// Leerkracht `rol` codes (LRK, VAK, IB, ...) mapped to a sisync role;
    /// a leerkracht is a teacher by default.
    #[serde(default)]
    pub role_map: BTreeMap<String, String>,
    /// `true`: ids become `BRINdd:key` (LAS keys of different schools may
    /// collide); default: the LAS key alone, shared over the schools.
    #[serde(default)]
    pub qualify_ids: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UwlrMode {
    #[default]
    AllInOne,
    Staged,
}

/// One school (`[[source.schools]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UwlrSchool {
    /// "99AA".
    pub brincode: String,
    /// "00" (the default) for the main location.
    #[serde(default = "default_dependance")]
    pub dependancecode: String,
    /// The `autorisatiesleutel` the school issued: `env:NAME` or
    /// `file:/path` (relative: `$CREDENTIALS_DIRECTORY`, then next to the config).
    pub key: String,
    /// A display name for the school's org (default: its BRIN + dependance).
    pub name: Option<String>,
}

impl UwlrSchool {
    /// BRIN + dependance ("99AA00"): the school's org id and identifier.
    pub fn code(&self) -> String {
        format!("{}{}", self.brincode.trim(), self.dependancecode.trim())
    }
}

fn default_batch_groups() -> usize {
    25
}
fn default_xsdversie() -> String {
    "2.2".into()
}
fn default_dependance() -> String {
    "00".into()
}

/// An error about a key of the `n`th `[[source.schools]]` (0-based).
fn school_error(l: &Loaded, n: usize, key: &str, msg: impl Into<String>) -> ConfigError {
    l.error(&format!("source.schools[{n}]"), key, msg)
}

impl ConnectorConfig for UwlrSource {
    /// No HTTP authentication (each school's key travels in the SOAP
    /// header).
    fn endpoint(&self) -> Option<(&Endpoint, Needs)> {
        Some((&self.endpoint, Needs::open(4)))
    }
    fn role_map(&self) -> Option<&BTreeMap<String, String>> {
        Some(&self.role_map)
    }
    fn secret_files(&self, section: &str) -> Vec<(String, PathBuf)> {
        let keys = self.schools.iter().enumerate();
        let keys = keys.map(|(n, s)| (format!("{section}.schools[{n}].key"), &s.key));
        let headers = self.headers.iter();
        let headers = headers.map(|(h, v)| (format!("{section}.headers.{h}"), v));
        keys.chain(headers)
            .filter_map(|(key, v)| Some((key, PathBuf::from(v.strip_prefix("file:")?))))
            .collect()
    }
    fn secret_problems(&self, l: &Loaded, _section: &str) -> Vec<ConfigError> {
        let keys = (0..self.schools.len()).map(|n| l.school_key(n).map(drop));
        keys.chain([l.uwlr_headers(self).map(drop)])
            .filter_map(Result::err)
            .collect()
    }
    fn validate(&self, l: &Loaded, _section: &str) -> Result<(), ConfigError> {
        let u = self;
        for (key, v) in [("klantcode", &u.klantcode), ("klantnaam", &u.klantnaam)] {
            let n = v.trim().chars().count();
            if n == 0 || n > 64 {
                return Err(l.error(
                    "source",
                    key,
                    "must be 1 to 64 characters (as the LAS registered the supplier)",
                ));
            }
        }
        if u.xsdversie.trim().is_empty() || u.xsdversie.len() > 32 {
            return Err(l.error("source", "xsdversie", "must be 1 to 32 characters"));
        }
        if let Some(g) = &u.gegevenssetid {
            if g.trim().is_empty() || g.len() > 64 {
                return Err(l.error("source", "gegevenssetid", "must be 1 to 64 characters"));
            }
        }
        if u.batch_groups == 0 || u.batch_groups > 1000 {
            return Err(l.error("source", "batch_groups", "must be 1 to 1000"));
        }
        if parse_month_day(&u.schooljaar_start).is_none() {
            return Err(l.error(
                "source",
                "schooljaar_start",
                format!(
                    "`{}` is not a day of the year; write \"MM-DD\", e.g. \"08-01\"",
                    u.schooljaar_start
                ),
            ));
        }
        if let Some(y) = &u.schooljaar {
            if !valid_school_year(y) {
                return Err(l.error(
                    "source",
                    "schooljaar",
                    format!("`{y}` is not a school year; write e.g. \"2025-2026\""),
                ));
            }
        }
        if u.schools.is_empty() {
            return Err(l.error(
                "source",
                "schools",
                "no school; add a [[source.schools]] with brincode, dependancecode and key",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (n, s) in u.schools.iter().enumerate() {
            let codes = [
                (
                    "brincode",
                    &s.brincode,
                    is_brin(s.brincode.trim()),
                    "is not a BRIN code; write two digits and two capitals, e.g. \"99AA\"",
                ),
                (
                    "dependancecode",
                    &s.dependancecode,
                    is_dependance(s.dependancecode.trim()),
                    "is not a dependance code; write two digits, \"00\" for the main location",
                ),
            ];
            if let Some((key, value, _, what)) = codes.into_iter().find(|&(_, _, ok, _)| !ok) {
                return Err(school_error(l, n, key, format!("`{value}` {what}")));
            }
            if !seen.insert(s.code()) {
                return Err(school_error(
                    l,
                    n,
                    "brincode",
                    format!("school {} is listed twice", s.code()),
                ));
            }
            if s.key.starts_with("env:") || s.key.starts_with("file:") {
                continue;
            }
            return Err(school_error(
                l,
                n,
                "key",
                "inline secrets are not allowed; write \"env:NAME\" or \"file:/path\"",
            ));
        }
        for (name, v) in &u.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(l.error(
                    "source",
                    "headers",
                    format!("`{name}` is not an HTTP header name"),
                ));
            }
            if !["env:", "file:", "plain:"].iter().any(|p| v.starts_with(p)) {
                return Err(l.error(
                    "source",
                    "headers",
                    format!(
                        "header {name}: inline secrets are not allowed; write \"env:NAME\", \"file:/path\" or, for a value that is no secret, \"plain:…\""
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The secrets of a `uwlr` source, read when a run (or `--connect`)
/// builds the client.
impl Loaded {
    /// The `autorisatiesleutel` of the `n`th school.
    pub fn school_key(&self, n: usize) -> Result<Secret, ConfigError> {
        let Some(u) = self.config.source.get::<UwlrSource>() else {
            return Err(self.error("source", "kind", "not a uwlr source"));
        };
        let s = &u.schools[n];
        let key = self
            .secret_ref(&s.key)
            .map_err(|m| school_error(self, n, "key", m))?;
        if key.expose().chars().count() > 64 {
            return Err(school_error(
                self,
                n,
                "key",
                "the autorisatiesleutel is longer than 64 characters; is it the right file?",
            ));
        }
        Ok(key)
    }

    /// The gateway headers of the UWLR source, resolved (`env:`, `file:`
    /// or `plain:`; a bare value is refused).
    pub fn uwlr_headers(&self, u: &UwlrSource) -> Result<reqwest::header::HeaderMap, ConfigError> {
        self.gateway_headers("source", &u.headers, false)
    }
}
