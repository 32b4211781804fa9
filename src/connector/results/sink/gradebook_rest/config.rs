//! `[results.sink] kind = "oneroster-rest"`: a OneRoster 1.2 gradebook
//! service.

use serde::Deserialize;

use crate::config::ConnectorConfig;
use crate::config::endpoint::{Endpoint, Needs};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradebookRestSink {
    /// Service root (sisync appends `/ims/oneroster/gradebook/v1p2/...`),
    /// `[results.sink.auth]`, `[results.sink.tls]`, results pushed at once
    /// (`concurrency`, 1 to 64, default 8), `rate_limit`, and retries of
    /// one request within a run (after that the result waits for the next
    /// run): see [`Endpoint`].
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// sourcedId of the line item category.
    #[serde(default = "default_category")]
    pub category: String,
    /// sourcedId of the school org of the line items.
    pub school: Option<String>,
}

fn default_category() -> String {
    "exam".into()
}

impl ConnectorConfig for GradebookRestSink {
    fn endpoint(&self) -> Option<(&Endpoint, Needs)> {
        Some((&self.endpoint, Needs::authenticated(8)))
    }
}
