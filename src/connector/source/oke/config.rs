//! `[source] kind = "oke"`: the SIS (Eduarte, Osiris) publishes the exam
//! sittings to be planned and who is registered for them (flow 1.1a), over
//! OOAPI with OAuth2 client credentials (or a bearer token) and an OKE
//! scope.

use serde::Deserialize;

use crate::config::endpoint::{Endpoint, Needs};
use crate::config::{ConfigError, ConnectorConfig, Loaded};
use crate::connector::oke::{SCOPE_FLOW_1_5, check_page_size};

/// Source `oke` (flow 1.1a, and 1.1b with `class_context`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OkeSource {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// OOAPI `pageSize`: 10, 20, 50, 100 or 250.
    #[serde(default = "crate::connector::oke::default_page_size")]
    pub page_size: usize,
    /// The planning window: sittings from this many days ago …
    #[serde(default)]
    pub window_days_before: u32,
    /// … to this many days ahead (`since`/`until`).
    #[serde(default = "default_window_after")]
    pub window_days_after: u32,
    /// Also read `/groups` and their members (flow 1.1b) for class
    /// context: the classes become groups on the platform.
    #[serde(default)]
    pub class_context: bool,
}

fn default_window_after() -> u32 {
    90
}

impl ConnectorConfig for OkeSource {
    /// OAuth2 (or a bearer token) required; the flow 1 scope by default.
    fn endpoint(&self) -> Option<(&Endpoint, Needs)> {
        Some((&self.endpoint, Needs::scoped(4, SCOPE_FLOW_1_5)))
    }
    fn validate(&self, l: &Loaded, section: &str) -> Result<(), ConfigError> {
        check_page_size(l, section, self.page_size as u64)
    }
}
