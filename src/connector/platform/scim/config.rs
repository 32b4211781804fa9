//! `[platform] kind = "scim"`: a SCIM 2.0 service, its keys and checks.

use serde::Deserialize;

use crate::config::endpoint::{Endpoint, Needs};
use crate::config::{ConfigError, ConnectorConfig, Environment, Field, Loaded, UserNameFrom};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimPlatform {
    /// Base URL of the SCIM service (`https://platform.example/scim/v2`),
    /// `[platform.auth]` (bearer or OAuth2), `[platform.tls]`, timeout,
    /// retries, `concurrency`, `rate_limit`: see [`Endpoint`].
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// `acceptance` for a test/acceptance platform: then sisync must run
    /// with `institution.environment = "acceptance"` (synthetic names).
    #[serde(default)]
    pub environment: Environment,
    #[serde(default)]
    pub user_name: UserNameFrom,
    /// Appended to the userName, e.g. `@voorbeeld.nl`.
    pub user_name_suffix: Option<String>,
    /// Writes that fail in a row for want of an answer (refused, timeout,
    /// 429, 5xx, each after its retries) before the run stops and leaves
    /// the rest for the next run: a dead platform must not hold the run
    /// lock for hours.
    #[serde(default = "crate::connector::platform::default_max_consecutive_failures")]
    pub max_consecutive_failures: usize,
    /// The SCIM extension schema that carries role, org and accommodations
    /// (`urn:sisync:schemas:extension:exam:1.0:User`, or the URN the
    /// platform loaded, e.g. an `urn:ietf:params:scim:schemas:extension:…`).
    #[serde(default = "default_extension_urn")]
    pub extension_urn: String,
    /// Where the tussenvoegsel goes: `separate` (name.middleName) or
    /// `in-family-name` ("van der Berg") for platforms without middleName.
    #[serde(default)]
    pub middle_name: MiddleName,
    /// `[platform.attributes]`: sisync's extension attribute names
    /// (`role`, `org`, `bsn`, `extraTimePercent`, `fontScale`,
    /// `screenReader`) → the platform's names in `extension_urn`.
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// sisync's own SCIM extension schema (the default `extension_urn`).
pub const EXAM_SCHEMA: &str = "urn:sisync:schemas:extension:exam:1.0:User";

fn default_extension_urn() -> String {
    EXAM_SCHEMA.to_string()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MiddleName {
    #[default]
    Separate,
    InFamilyName,
}

impl ConnectorConfig for ScimPlatform {
    /// A token is required; 4 requests in flight by default.
    fn endpoint(&self) -> Option<(&Endpoint, Needs)> {
        Some((&self.endpoint, Needs::authenticated(4)))
    }
    fn environment(&self) -> Environment {
        self.environment
    }
    fn validate(&self, l: &Loaded, section: &str) -> Result<(), ConfigError> {
        let privacy = &l.config.privacy;
        if self.user_name == UserNameFrom::Email && !privacy.fields.contains(&Field::Email) {
            return Err(l.error(
                section,
                "user_name",
                "\"email\" sends e-mail addresses; add \"email\" to privacy.fields or pick another user_name",
            ));
        }
        if privacy.pseudonymize_ids
            && matches!(
                self.user_name,
                UserNameFrom::Identifier | UserNameFrom::Username
            )
        {
            return Err(l.error(
                section,
                "user_name",
                "privacy.pseudonymize_ids = true but user_name sends the SIS's own identifier; use user_name = \"sourced-id\" (the pseudonym) or \"email\"",
            ));
        }
        Ok(())
    }
}
