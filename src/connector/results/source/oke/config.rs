//! `[results.source] kind = "oke"`: an OKE exam platform read by flow 3.4.

use serde::Deserialize;

use crate::config::endpoint::{Endpoint, Needs};
use crate::config::{ConfigError, ConnectorConfig, Loaded};
use crate::connector::oke::{SCOPE_FLOW_2_3_4, check_page_size, is_uuid};

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
    #[serde(default = "crate::connector::oke::default_page_size")]
    pub page_size: u32,
}

impl ConnectorConfig for OkeResultSource {
    fn endpoint(&self) -> Option<(&Endpoint, Needs)> {
        Some((&self.endpoint, Needs::scoped(4, SCOPE_FLOW_2_3_4)))
    }
    fn validate(&self, l: &Loaded, section: &str) -> Result<(), ConfigError> {
        if self.offerings.is_empty() {
            return Err(l.error(
                section,
                "offerings",
                "list the exam sittings (offering ids on the platform) to read results of",
            ));
        }
        if let Some(bad) = self.offerings.iter().find(|x| !is_uuid(x)) {
            return Err(l.error(
                section,
                "offerings",
                format!("`{bad}` is not an offering id (a UUID)"),
            ));
        }
        check_page_size(l, section, u64::from(self.page_size))
    }
}
