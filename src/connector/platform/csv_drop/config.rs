//! `[platform] kind = "csv-drop"`: a folder of CSV files per run.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::{ConnectorConfig, Environment, default_true};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvDropPlatform {
    /// Folder that receives `users.csv`, `groups.csv`, `memberships.csv`.
    pub path: PathBuf,
    /// Whether the platform is a production or an acceptance (test)
    /// platform; see [`ConnectorConfig::environment`].
    #[serde(default)]
    pub environment: Environment,
    /// Cells that look like spreadsheet formulas get a leading `'` (see
    /// `connector::csv_guard`); off only for an importer that needs them
    /// as given.
    #[serde(default = "default_true")]
    pub formula_guard: bool,
    /// Delivered folders 0750 and files 0640 (for an importer in the
    /// folder's group) instead of 0700/0600.
    #[serde(default)]
    pub group_readable: bool,
}

impl ConnectorConfig for CsvDropPlatform {
    fn resolve_paths(&mut self, abs: &dyn Fn(&mut PathBuf)) {
        abs(&mut self.path);
    }
    fn environment(&self) -> Environment {
        self.environment
    }
}
