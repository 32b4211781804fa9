//! `[results.source] kind = "csv"`: CSV results files in a folder.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::results::{AfterRead, default_settle};
use crate::config::{ConfigError, ConnectorConfig, Loaded, humantime_serde_compat};

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

impl ConnectorConfig for CsvResults {
    fn resolve_paths(&mut self, abs: &dyn Fn(&mut PathBuf)) {
        abs(&mut self.path);
    }
    fn validate(&self, l: &Loaded, section: &str) -> Result<(), ConfigError> {
        if self.delimiter.len() != 1 {
            return Err(l.error(
                section,
                "delimiter",
                "must be one character, e.g. \",\" or \";\"",
            ));
        }
        Ok(())
    }
}
