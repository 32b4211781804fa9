//! `[results.sink] kind = "oke"`: an OKE SIS written by flow 5.

use serde::Deserialize;

use crate::config::endpoint::{Endpoint, Needs};
use crate::config::{ConfigError, ConnectorConfig, Loaded};
use crate::connector::oke::{SCOPE_FLOW_1_5, check_page_size};

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
    #[serde(default = "crate::connector::oke::default_page_size")]
    pub page_size: u32,
}

fn default_match_window() -> u32 {
    14
}

impl ConnectorConfig for OkeResultSink {
    fn endpoint(&self) -> Option<(&Endpoint, Needs)> {
        Some((&self.endpoint, Needs::scoped(8, SCOPE_FLOW_1_5)))
    }
    fn validate(&self, l: &Loaded, section: &str) -> Result<(), ConfigError> {
        check_page_size(l, section, u64::from(self.page_size))
    }
}
