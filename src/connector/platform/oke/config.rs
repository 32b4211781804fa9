//! `[platform] kind = "oke"`: an exam platform (Remindo, TOA, …) that
//! takes sittings and registrations by flow 2.

use serde::Deserialize;

use crate::config::endpoint::{Endpoint, Needs};
use crate::config::{ConfigError, ConnectorConfig, Environment, Field, Loaded};
use crate::connector::oke::SCOPE_FLOW_2_3_4;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OkePlatform {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    #[serde(default)]
    pub environment: Environment,
    /// Writes in a row without an answer before the run stops.
    #[serde(default = "crate::connector::platform::default_max_consecutive_failures")]
    pub max_consecutive_failures: usize,
}

impl ConnectorConfig for OkePlatform {
    /// OAuth2 (or a bearer token) required; the flow 2 scope by default.
    fn endpoint(&self) -> Option<(&Endpoint, Needs)> {
        Some((&self.endpoint, Needs::scoped(4, SCOPE_FLOW_2_3_4)))
    }
    fn environment(&self) -> Environment {
        self.environment
    }
    fn validate(&self, l: &Loaded, _section: &str) -> Result<(), ConfigError> {
        l.needs_field(
            Field::Registrations,
            "platform kind \"oke\" takes exam registrations: add \"registrations\" to privacy.fields",
        )
    }
}
