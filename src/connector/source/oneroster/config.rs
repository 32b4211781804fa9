//! `[source]` of kind `oneroster-csv` (an export folder or zip) and
//! `oneroster-rest` (a OneRoster 1.1/1.2 rostering service): their keys
//! and checks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::endpoint::{Endpoint, Needs};
use crate::config::{
    ConfigError, ConnectorConfig, Loaded, default_full_every, humantime_serde_compat,
};
use crate::connector::source::accommodation_keys::{AccommodationKeys, OneRoster};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneRosterCsvSource {
    /// A folder holding `manifest.csv` and friends, or a `.zip` of them.
    pub path: PathBuf,
    /// Extra OneRoster roles to sync, mapped to a sisync role
    /// (`aide = "assessor"`). student, teacher and proctor map by default.
    #[serde(default)]
    pub role_map: BTreeMap<String, String>,
    /// Which `users.csv` columns carry exam accommodations.
    #[serde(default)]
    pub accommodations: AccommodationKeys<OneRoster>,
}

/// OneRoster 1.1 / 1.2 REST rostering service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneRosterRestSource {
    /// Service root, e.g. `https://sis.example/api`; sisync appends
    /// `/ims/oneroster/rostering/v1p2/...` (or `/ims/oneroster/v1p1/...`).
    /// `[source.auth]`, `[source.tls]`, timeout, retries, `concurrency`
    /// (page requests in flight once `X-Total-Count` is known) and
    /// `rate_limit`: see [`Endpoint`].
    #[serde(flatten)]
    pub endpoint: Endpoint,
    #[serde(default)]
    pub version: OneRosterVersion,
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    /// A full pull at least this often; runs in between fetch only records
    /// changed since the last successful run.
    #[serde(default = "default_full_every", with = "humantime_serde_compat")]
    pub full_every: Duration,
    #[serde(default)]
    pub role_map: BTreeMap<String, String>,
    /// Which `metadata` keys of a user carry exam accommodations.
    #[serde(default)]
    pub accommodations: AccommodationKeys<OneRoster>,
}

fn default_page_size() -> usize {
    1000
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum OneRosterVersion {
    #[serde(rename = "1.1")]
    V1_1,
    #[default]
    #[serde(rename = "1.2")]
    V1_2,
}

impl ConnectorConfig for OneRosterCsvSource {
    fn resolve_paths(&mut self, abs: &dyn Fn(&mut PathBuf)) {
        abs(&mut self.path);
    }
    fn role_map(&self) -> Option<&BTreeMap<String, String>> {
        Some(&self.role_map)
    }
}

impl ConnectorConfig for OneRosterRestSource {
    /// A token is required; 4 page requests in flight by default.
    fn endpoint(&self) -> Option<(&Endpoint, Needs)> {
        Some((&self.endpoint, Needs::authenticated(4)))
    }
    fn validate(&self, l: &Loaded, section: &str) -> Result<(), ConfigError> {
        if self.page_size == 0 || self.page_size > 10_000 {
            return Err(l.error(section, "page_size", "must be 1 to 10000"));
        }
        Ok(())
    }
    fn role_map(&self) -> Option<&BTreeMap<String, String>> {
        Some(&self.role_map)
    }
}
