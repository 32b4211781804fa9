//! `[results]`: where exam results come from and which SIS gradebook they
//! go to.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use super::endpoint::AuthCfg;
use super::endpoint::{Endpoint, Needs};
use super::{ConfigError, Loaded, humantime_serde_compat};

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
    /// `base_url` answers a JSON list of document URLs (strings, or
    /// objects with `href` or `url`), bare or under `documents`/`results`;
    /// optional `[results.source.auth]`, `[results.source.tls]`: see
    /// [`Endpoint`].
    #[serde(flatten)]
    pub endpoint: Endpoint,
    #[serde(default = "default_grade_outcomes")]
    pub grade_outcomes: Vec<String>,
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
#[allow(clippy::large_enum_variant)] // one value per loaded config
pub enum ResultSinkCfg {
    /// OneRoster 1.2 gradebook REST service.
    OnerosterRest(GradebookRestSink),
    /// OneRoster 1.2 CSV gradebook files in a folder.
    OnerosterCsv(GradebookCsvSink),
    /// An OKE SIS (flow 5: PATCH/PUT of its associations).
    Oke(OkeResultSink),
    /// UWLR 2.2 `BrengLeerresultaten` to the LAS (SOAP 1.1).
    Uwlr(super::uwlr_results::UwlrResultSink),
}

/// `[results.source] kind = "oke"`: an OKE exam platform (Remindo, TOA, …)
/// read by flow 3.4.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OkeResultSource {
    /// The platform's OOAPI root (the paths `/offerings/…` follow it) and
    /// `[results.source.auth]` (the scope defaults to
    /// `nl-test-admin-flow-2-3-4`).
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// The exam sittings (offering ids on the platform) whose results are
    /// read.
    pub offerings: Vec<String>,
    /// 10, 20, 50, 100 or 250.
    #[serde(default = "default_oke_page_size")]
    pub page_size: u32,
}

/// `[results.sink] kind = "oke"`: an OKE SIS (Eduarte, Osiris) written by
/// flow 5.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OkeResultSink {
    /// The SIS's OOAPI root (the paths `/associations/…` follow it),
    /// `[results.sink.auth]` (the scope defaults to
    /// `nl-test-admin-flow-1-5`), results delivered at once
    /// (`concurrency`, 1 to 64, default 8).
    #[serde(flatten)]
    pub endpoint: Endpoint,
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

impl ResultSinkCfg {
    /// Whether a result must be placed in one of the candidate's classes
    /// (a OneRoster line item belongs to a class; a UWLR or OKE result does not).
    pub fn needs_class(&self) -> bool {
        !matches!(self, ResultSinkCfg::Uwlr(_) | ResultSinkCfg::Oke(_))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradebookRestSink {
    /// Service root (sisync appends `/ims/oneroster/gradebook/v1p2/...`),
    /// `[results.sink.auth]`, `[results.sink.tls]`, results pushed at once
    /// (`concurrency`, 1 to 64, default 8), `rate_limit`, and retries of
    /// one request within a run (after that the result waits for the next
    /// run): see [`Endpoint`].
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// sourcedId of the line item category.
    #[serde(default = "default_category")]
    pub category: String,
    /// sourcedId of the school org of the line items.
    pub school: Option<String>,
}

fn default_category() -> String {
    "exam".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradebookCsvSink {
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

impl QtiHttp {
    /// Authentication optional.
    pub const NEEDS: Needs = Needs {
        auth: false,
        concurrency: (4, 64),
        scope: None,
    };
}

impl OkeResultSource {
    pub const NEEDS: Needs = Needs {
        auth: true,
        concurrency: (4, 64),
        scope: Some(super::oke::SCOPE_FLOW_2_3_4),
    };
}

impl OkeResultSink {
    pub const NEEDS: Needs = Needs {
        auth: true,
        concurrency: (8, 64),
        scope: Some(super::oke::SCOPE_FLOW_1_5),
    };
}

impl GradebookRestSink {
    pub const NEEDS: Needs = Needs::authenticated(8);
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
                self.check_endpoint("results.source", &h.endpoint, QtiHttp::NEEDS)?;
            }
            ResultSourceCfg::QtiFolder(_) => {}
            ResultSourceCfg::Oke(o) => {
                self.check_endpoint("results.source", &o.endpoint, OkeResultSource::NEEDS)?;
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
            self.check_endpoint("results.sink", &o.endpoint, OkeResultSink::NEEDS)?;
            if !PAGE_SIZES.contains(&o.page_size) {
                return Err(self.error(
                    "results.sink",
                    "page_size",
                    "must be 10, 20, 50, 100 or 250 (the sizes OOAPI allows)",
                ));
            }
        }
        if let ResultSinkCfg::Uwlr(u) = &r.sink {
            self.validate_uwlr_results(u)?;
        }
        if let ResultSinkCfg::OnerosterRest(g) = &r.sink {
            self.check_endpoint("results.sink", &g.endpoint, GradebookRestSink::NEEDS)?;
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
