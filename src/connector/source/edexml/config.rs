//! `[source] kind = "edexml"`: an EDEXML 2.1 file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::ConnectorConfig;

/// An EDEXML 2.1 file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdexmlSource {
    pub path: PathBuf,
    #[serde(default)]
    pub role_map: BTreeMap<String, String>,
    #[serde(default)]
    pub qualify_ids: bool,
}

impl ConnectorConfig for EdexmlSource {
    fn resolve_paths(&mut self, abs: &dyn Fn(&mut PathBuf)) {
        abs(&mut self.path);
    }
    fn role_map(&self) -> Option<&BTreeMap<String, String>> {
        Some(&self.role_map)
    }
}
