//! `[results.source]` of kind `qti-folder` (QTI results XML files in a
//! folder) and `qti-http` (QTI documents listed by an HTTP endpoint).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::endpoint::{Endpoint, Needs};
use crate::config::results::{AfterRead, default_settle};
use crate::config::{ConnectorConfig, humantime_serde_compat};

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

impl ConnectorConfig for QtiFolder {
    fn resolve_paths(&mut self, abs: &dyn Fn(&mut PathBuf)) {
        abs(&mut self.path);
    }
}

impl ConnectorConfig for QtiHttp {
    /// Authentication optional.
    fn endpoint(&self) -> Option<(&Endpoint, Needs)> {
        Some((&self.endpoint, Needs::open(4)))
    }
}
