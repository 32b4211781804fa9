//! `[results.sink] kind = "oneroster-csv"`: OneRoster 1.2 CSV gradebook
//! files in a folder.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::{ConnectorConfig, default_true};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradebookCsvSink {
    pub path: PathBuf,
    #[serde(default = "default_category")]
    pub category: String,
    pub school: Option<String>,
    /// See `platform.formula_guard`.
    #[serde(default = "default_true")]
    pub formula_guard: bool,
    /// Delivered folders 0750 and files 0640 (for an importer in the
    /// folder's group) instead of 0700/0600.
    #[serde(default)]
    pub group_readable: bool,
}

fn default_category() -> String {
    "exam".into()
}

impl ConnectorConfig for GradebookCsvSink {
    fn resolve_paths(&mut self, abs: &dyn Fn(&mut PathBuf)) {
        abs(&mut self.path);
    }
}
