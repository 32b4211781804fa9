//! `[results]`: where exam results come from and which SIS gradebook they
//! go to.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Loaded, humantime_serde_compat};
use crate::http::{Auth, OAuth2};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Results {
    pub source: ResultSourceCfg,
    pub sink: ResultSinkCfg,
    /// Which of a candidate's classes an exam's result belongs to.
    #[serde(default)]
    pub class_rules: Vec<ClassRule>,
    /// The class for results no rule places and whose candidate is not in
    /// exactly one class.
    pub default_class: Option<String>,
    /// A result that still cannot be delivered this long after it was read
    /// is marked failed (retried by `sync results --retry-failed`).
    #[serde(default = "default_give_up", with = "humantime_serde_compat")]
    pub give_up_after: Duration,
}

fn default_give_up() -> Duration {
    Duration::from_secs(3 * 24 * 3600)
}

/// `exam = "EX-NED-*"` → the candidate's class matching `class = "cls-ne-*"`.
/// A trailing `*` matches any rest; without one the id must be equal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassRule {
    pub exam: String,
    pub class: String,
}

/// A pattern with an optional trailing `*`.
pub fn pattern_matches(pattern: &str, id: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => id.starts_with(prefix),
        None => pattern == id,
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ResultSourceCfg {
    /// QTI results XML files in a folder.
    QtiFolder(QtiFolder),
    /// QTI results XML documents listed by an HTTP endpoint.
    QtiHttp(QtiHttp),
    /// CSV results files in a folder.
    Csv(CsvResults),
    /// An OKE exam platform (flow 3.4: the associations of its sittings).
    Oke(OkeResultSource),
}

/// What happens to a file once its results are in the outbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AfterRead {
    /// Move to `done/` (or `failed/` when it cannot be read).
    #[default]
    Move,
    /// Leave in place; sisync remembers its SHA-256 and does not read the
    /// same bytes again.
    Keep,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QtiFolder {
    pub path: PathBuf,
    /// Outcome identifiers that carry a grade, first match wins.
    #[serde(default = "default_grade_outcomes")]
    pub grade_outcomes: Vec<String>,
    #[serde(default)]
    pub after: AfterRead,
    /// A file is read once its size and modification time stayed the same
    /// this long (a file still being uploaded is left for the next run).
    #[serde(default = "default_settle", with = "humantime_serde_compat")]
    pub settle: Duration,
}

/// Upload tools write in bursts; a few seconds of quiet means done.
pub fn default_settle() -> Duration {
    Duration::from_secs(5)
}

fn default_grade_outcomes() -> Vec<String> {
    vec!["GRADE".into()]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QtiHttp {
    /// Answers a JSON list of document URLs (strings, or objects with
    /// `href` or `url`), bare or under `documents`/`results`.
    pub list_url: String,
    /// Allow a plain `http://` URL to a host other than this machine
    /// (personal data and secrets would cross the network unencrypted).
    #[serde(default)]
    pub allow_insecure_http: bool,
    #[serde(default = "default_grade_outcomes")]
    pub grade_outcomes: Vec<String>,
    pub auth: Option<AuthCfg>,
    #[serde(default = "super::default_timeout", with = "humantime_serde_compat")]
    pub timeout: Duration,
    #[serde(default = "super::default_retries")]
    pub max_retries: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvResults {
    pub path: PathBuf,
    /// One character; `;` for Dutch spreadsheet exports.
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    #[serde(default)]
    pub columns: CsvResultColumns,
    #[serde(default)]
    pub after: AfterRead,
    /// See [`QtiFolder::settle`].
    #[serde(default = "default_settle", with = "humantime_serde_compat")]
    pub settle: Duration,
}

fn default_delimiter() -> String {
    ",".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ResultSinkCfg {
    /// OneRoster 1.2 gradebook REST service.
    OnerosterRest(GradebookRest),
    /// OneRoster 1.2 CSV gradebook files in a folder.
    OnerosterCsv(GradebookCsv),
    /// An OKE SIS (flow 5: PATCH/PUT of its associations).
    Oke(OkeResultSink),
    /// UWLR 2.2 `BrengLeerresultaten` to the LAS (SOAP 1.1).
    Uwlr(super::uwlr_results::UwlrResults),
}

/// `[results.source] kind = "oke"`: an OKE exam platform (Remindo, TOA, …)
/// read by flow 3.4.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OkeResultSource {
    /// The platform's OOAPI root (the paths `/offerings/…` follow it).
    pub base_url: String,
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// OAuth2 client credentials; the scope defaults to
    /// `nl-test-admin-flow-2-3-4`.
    pub auth: AuthCfg,
    /// The exam sittings (offering ids on the platform) whose results are
    /// read.
    pub offerings: Vec<String>,
    /// 10, 20, 50, 100 or 250.
    #[serde(default = "default_oke_page_size")]
    pub page_size: u32,
    #[serde(default = "super::default_timeout", with = "humantime_serde_compat")]
    pub timeout: Duration,
    #[serde(default = "super::default_retries")]
    pub max_retries: usize,
}

/// `[results.sink] kind = "oke"`: an OKE SIS (Eduarte, Osiris) written by
/// flow 5.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OkeResultSink {
    /// The SIS's OOAPI root (the paths `/associations/…` follow it).
    pub base_url: String,
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// OAuth2 client credentials; the scope defaults to
    /// `nl-test-admin-flow-1-5`.
    pub auth: AuthCfg,
    /// Results delivered at once (1 to 64).
    #[serde(default = "default_push_concurrency")]
    pub concurrency: usize,
    #[serde(default)]
    pub rate_limit: u32,
    #[serde(default = "super::default_timeout", with = "humantime_serde_compat")]
    pub timeout: Duration,
    #[serde(default = "super::default_retries")]
    pub max_retries: usize,
    /// Results of other platforms (QTI, CSV) are matched to a registration
    /// whose offering lies within this many days of the result date.
    #[serde(default = "default_match_window")]
    pub match_window_days: u32,
    /// Page size of the flow 1 reads (10, 20, 50, 100 or 250).
    #[serde(default = "default_oke_page_size")]
    pub page_size: u32,
}

fn default_oke_page_size() -> u32 {
    100
}

fn default_match_window() -> u32 {
    14
}

impl AuthCfg {
    /// OAuth2 without a scope gets `scope`; everything else stays.
    pub fn with_default_scope(&self, scope: &str) -> AuthCfg {
        match self {
            AuthCfg::Oauth2 {
                token_url,
                client_id,
                client_secret,
                client_secret_file,
                scope: None,
            } => AuthCfg::Oauth2 {
                token_url: token_url.clone(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                client_secret_file: client_secret_file.clone(),
                scope: Some(scope.to_string()),
            },
            other => other.clone(),
        }
    }
}

impl ResultSinkCfg {
    /// Whether a result must be placed in one of the candidate's classes
    /// (a OneRoster line item belongs to a class; a UWLR or OKE result does not).
    pub fn needs_class(&self) -> bool {
        !matches!(self, ResultSinkCfg::Uwlr(_) | ResultSinkCfg::Oke(_))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradebookRest {
    /// Service root; sisync appends `/ims/oneroster/gradebook/v1p2/...`.
    pub base_url: String,
    /// Allow a plain `http://` URL to a host other than this machine
    /// (personal data and secrets would cross the network unencrypted).
    #[serde(default)]
    pub allow_insecure_http: bool,
    pub auth: AuthCfg,
    /// Results pushed at once (1 to 64).
    #[serde(default = "default_push_concurrency")]
    pub concurrency: usize,
    /// At most this many requests per second (0: no limit).
    #[serde(default)]
    pub rate_limit: u32,
    #[serde(default = "super::default_timeout", with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// Retries of one request within a run (backoff with jitter,
    /// `Retry-After` honoured); after that the result waits for the next run.
    #[serde(default = "super::default_retries")]
    pub max_retries: usize,
    /// sourcedId of the line item category.
    #[serde(default = "default_category")]
    pub category: String,
    /// sourcedId of the school org of the line items.
    pub school: Option<String>,
}

fn default_push_concurrency() -> usize {
    8
}

fn default_category() -> String {
    "exam".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradebookCsv {
    pub path: PathBuf,
    #[serde(default = "default_category")]
    pub category: String,
    pub school: Option<String>,
    /// See `platform.formula_guard`.
    #[serde(default = "super::default_true")]
    pub formula_guard: bool,
    /// Delivered folders 0750 and files 0640 (for an importer in the
    /// folder's group) instead of 0700/0600.
    #[serde(default)]
    pub group_readable: bool,
}

/// Authentication to a results endpoint: a static bearer token or OAuth2
/// client credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum AuthCfg {
    Bearer {
        /// `env:NAME`; inline tokens are refused.
        token: Option<String>,
        token_file: Option<PathBuf>,
    },
    Oauth2 {
        token_url: String,
        client_id: String,
        client_secret: Option<String>,
        client_secret_file: Option<PathBuf>,
        scope: Option<String>,
    },
}

impl Loaded {
    pub(super) fn resolve_result_paths(&mut self, abs: &dyn Fn(&mut PathBuf)) {
        let Some(r) = &mut self.config.results else {
            return;
        };
        match &mut r.source {
            ResultSourceCfg::QtiFolder(s) => abs(&mut s.path),
            ResultSourceCfg::Csv(s) => abs(&mut s.path),
            ResultSourceCfg::QtiHttp(_) | ResultSourceCfg::Oke(_) => {}
        }
        if let ResultSinkCfg::OnerosterCsv(s) = &mut r.sink {
            abs(&mut s.path);
        }
    }

    pub(super) fn validate_results(&self) -> Result<(), ConfigError> {
        let Some(r) = &self.config.results else {
            return Ok(());
        };
        let http_url = |section: &str, key: &str, u: &str| match url::Url::parse(u) {
            Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Ok(()),
            _ => Err(self.error(section, key, format!("`{u}` is not an http(s) URL"))),
        };
        match &r.source {
            ResultSourceCfg::Csv(c) => {
                if c.delimiter.len() != 1 {
                    return Err(self.error(
                        "results.source",
                        "delimiter",
                        "must be one character, e.g. \",\" or \";\"",
                    ));
                }
            }
            ResultSourceCfg::QtiHttp(h) => {
                http_url("results.source", "list_url", &h.list_url)?;
                if let Some(a) = &h.auth {
                    self.result_auth("results.source.auth", a, h.timeout)?;
                }
            }
            ResultSourceCfg::QtiFolder(_) => {}
            ResultSourceCfg::Oke(o) => {
                http_url("results.source", "base_url", &o.base_url)?;
                self.result_auth("results.source.auth", &o.auth, o.timeout)?;
                if o.offerings.is_empty() {
                    return Err(self.error(
                        "results.source",
                        "offerings",
                        "list the exam sittings (offering ids on the platform) to read results of",
                    ));
                }
                if let Some(bad) = o.offerings.iter().find(|x| !is_uuid(x)) {
                    return Err(self.error(
                        "results.source",
                        "offerings",
                        format!("`{bad}` is not an offering id (a UUID)"),
                    ));
                }
                if !PAGE_SIZES.contains(&o.page_size) {
                    return Err(self.error(
                        "results.source",
                        "page_size",
                        "must be 10, 20, 50, 100 or 250 (the sizes OOAPI allows)",
                    ));
                }
            }
        }
        if let ResultSinkCfg::Oke(o) = &r.sink {
            http_url("results.sink", "base_url", &o.base_url)?;
            if o.concurrency == 0 || o.concurrency > 64 {
                return Err(self.error("results.sink", "concurrency", "must be 1 to 64"));
            }
            if !PAGE_SIZES.contains(&o.page_size) {
                return Err(self.error(
                    "results.sink",
                    "page_size",
                    "must be 10, 20, 50, 100 or 250 (the sizes OOAPI allows)",
                ));
            }
            self.result_auth("results.sink.auth", &o.auth, o.timeout)?;
        }
        if let ResultSinkCfg::Uwlr(u) = &r.sink {
            self.validate_uwlr_results(u)?;
        }
        if let ResultSinkCfg::OnerosterRest(g) = &r.sink {
            http_url("results.sink", "base_url", &g.base_url)?;
            if g.concurrency == 0 || g.concurrency > 64 {
                return Err(self.error("results.sink", "concurrency", "must be 1 to 64"));
            }
            self.result_auth("results.sink.auth", &g.auth, g.timeout)?;
        }
        for (i, rule) in r.class_rules.iter().enumerate() {
            if rule.exam.is_empty() || rule.class.is_empty() {
                return Err(self.error(
                    "results",
                    "class_rules",
                    format!("rule {} needs both exam and class patterns", i + 1),
                ));
            }
        }
        Ok(())
    }

    /// The HTTP authentication of a results endpoint, secrets resolved.
    pub fn result_auth(
        &self,
        section: &str,
        a: &AuthCfg,
        timeout: Duration,
    ) -> Result<Auth, ConfigError> {
        match a {
            AuthCfg::Bearer { token, token_file } => {
                Ok(Auth::Bearer(self.bearer_token(section, token, token_file)?))
            }
            AuthCfg::Oauth2 {
                token_url,
                client_id,
                client_secret,
                client_secret_file,
                scope,
            } => {
                if !matches!(url::Url::parse(token_url), Ok(u) if u.scheme() == "https" || u.scheme() == "http")
                {
                    return Err(self.error(
                        section,
                        "token_url",
                        format!("`{token_url}` is not an http(s) URL"),
                    ));
                }
                if client_id.trim().is_empty() {
                    return Err(self.error(section, "client_id", "must not be empty"));
                }
                let secret = self.secret_value(
                    section,
                    ("client_secret", client_secret),
                    ("client_secret_file", client_secret_file),
                )?;
                let o = OAuth2::new(token_url, client_id, secret, scope.clone(), timeout)
                    .map_err(|e| self.error(section, "token_url", format!("{e:#}")))?;
                Ok(Auth::OAuth2(std::sync::Arc::new(o)))
            }
        }
    }
}
/// Column names of a CSV results export.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CsvResultColumns {
    pub candidate: String,
    pub exam: String,
    pub session: String,
    pub score: String,
    pub max_score: String,
    pub passed: String,
    pub grade: String,
    pub date: String,
}

impl Default for CsvResultColumns {
    fn default() -> Self {
        CsvResultColumns {
            candidate: "candidate".into(),
            exam: "exam".into(),
            session: "session".into(),
            score: "score".into(),
            max_score: "max_score".into(),
            passed: "passed".into(),
            grade: "grade".into(),
            date: "date".into(),
        }
    }
}

/// The page sizes the specification allows.
pub const PAGE_SIZES: [u32; 5] = [10, 20, 50, 100, 250];

/// An OOAPI id is a UUID (8-4-4-4-12 hex digits).
pub fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}
