//! Configuration of the OKE (OOAPI v5 mbo profile) connectors: the source
//! `oke` (flow 1, the SIS is the server) and the platform `oke` (flow 2,
//! the exam platform is the server). Both are an OOAPI endpoint with OAuth2
//! client credentials (or a static bearer token) and an OKE scope.

use serde::Deserialize;

use super::endpoint::{Endpoint, Needs};
use super::{ConfigError, Environment, Loaded};

/// The OKE scope of flows 1 and 5 (SIS ↔ planning).
pub const SCOPE_FLOW_1_5: &str = "nl-test-admin-flow-1-5";
/// The OKE scope of flows 2, 3 and 4 (planning ↔ exam platform).
pub const SCOPE_FLOW_2_3_4: &str = "nl-test-admin-flow-2-3-4";

/// Source `oke`: the SIS (Eduarte, Osiris) publishes the exam sittings to
/// be planned and who is registered for them (flow 1.1a).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OkeSource {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// OOAPI `pageSize`: 10, 20, 50, 100 or 250.
    #[serde(default = "default_page_size")]
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

/// Platform `oke`: an exam platform (Remindo, TOA, …) that takes sittings
/// and registrations by flow 2.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OkePlatform {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    #[serde(default)]
    pub environment: Environment,
    /// Writes in a row without an answer before the run stops.
    #[serde(default = "default_max_failures")]
    pub max_consecutive_failures: usize,
}

fn default_page_size() -> usize {
    100
}

fn default_window_after() -> u32 {
    90
}

fn default_max_failures() -> usize {
    5
}

/// The page sizes the OOAPI spec allows.
pub const PAGE_SIZES: [usize; 5] = [10, 20, 50, 100, 250];

impl OkeSource {
    /// OAuth2 (or a bearer token) required; the flow 1 scope by default.
    pub const NEEDS: Needs = Needs {
        auth: true,
        concurrency: (4, 64),
        scope: Some(SCOPE_FLOW_1_5),
    };
}

impl OkePlatform {
    /// OAuth2 (or a bearer token) required; the flow 2 scope by default.
    pub const NEEDS: Needs = Needs {
        auth: true,
        concurrency: (4, 64),
        scope: Some(SCOPE_FLOW_2_3_4),
    };
}

impl Loaded {
    pub(super) fn validate_oke(&self) -> Result<(), ConfigError> {
        if let super::Source::Oke(s) = &self.config.source {
            self.check_endpoint("source", &s.endpoint, OkeSource::NEEDS)?;
            if !PAGE_SIZES.contains(&s.page_size) {
                return Err(self.error(
                    "source",
                    "page_size",
                    "must be 10, 20, 50, 100 or 250 (the OOAPI pageSize values)",
                ));
            }
        }
        if let super::Platform::Oke(p) = &self.config.platform {
            self.check_endpoint("platform", &p.endpoint, OkePlatform::NEEDS)?;
            if !self
                .config
                .privacy
                .fields
                .contains(&super::Field::Registrations)
            {
                return Err(self.error(
                    "privacy",
                    "fields",
                    "platform kind \"oke\" takes exam registrations: add \"registrations\" to privacy.fields",
                ));
            }
        }
        Ok(())
    }
}
