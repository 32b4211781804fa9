//! Configuration of the OKE (OOAPI v5 mbo profile) connectors: the source
//! `oke` (flow 1, the SIS is the server) and the platform `oke` (flow 2,
//! the exam platform is the server). Both are an OOAPI endpoint with OAuth2
//! client credentials (or a static bearer token) and an OKE scope.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{
    ConfigError, Environment, Loaded, RestAuth, Secret, default_concurrency, default_retries,
    default_timeout, humantime_serde_compat,
};

/// The OKE scope of flows 1 and 5 (SIS ↔ planning).
pub const SCOPE_FLOW_1_5: &str = "nl-test-admin-flow-1-5";
/// The OKE scope of flows 2, 3 and 4 (planning ↔ exam platform).
pub const SCOPE_FLOW_2_3_4: &str = "nl-test-admin-flow-2-3-4";

/// One OOAPI endpoint: where, and how sisync authenticates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OkeEndpoint {
    /// The OOAPI root, e.g. `https://sis.example/ooapi`.
    pub base_url: String,
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// `oauth2` (client credentials, the OKE default) or `bearer`.
    #[serde(default = "default_oauth2")]
    pub auth: RestAuth,
    pub token_url: Option<String>,
    pub client_id: Option<String>,
    /// `env:NAME`; inline secrets are refused.
    pub client_secret: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    /// Space-separated scopes; the OKE scope of the flow by default.
    pub scope: Option<String>,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    #[serde(default = "default_timeout", with = "humantime_serde_compat")]
    pub timeout: Duration,
    #[serde(default = "default_retries")]
    pub max_retries: usize,
    /// At most this many requests per second (0: no limit).
    #[serde(default)]
    pub rate_limit: u32,
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Mutual TLS: PEM client certificate (chain) and its private key; a
    /// relative name is looked up in `$CREDENTIALS_DIRECTORY` first.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// Extra trusted roots (PEM), e.g. PKIoverheid.
    pub ca_file: Option<PathBuf>,
}

/// Source `oke`: the SIS (Eduarte, Osiris) publishes the exam sittings to
/// be planned and who is registered for them (flow 1.1a).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OkeSource {
    #[serde(flatten)]
    pub endpoint: OkeEndpoint,
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
    pub endpoint: OkeEndpoint,
    #[serde(default)]
    pub environment: Environment,
    /// Writes in a row without an answer before the run stops.
    #[serde(default = "default_max_failures")]
    pub max_consecutive_failures: usize,
}

fn default_oauth2() -> RestAuth {
    RestAuth::OAuth2
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

impl Loaded {
    /// The authentication of an OKE endpoint in `section`, with its
    /// default scope.
    pub fn oke_auth(
        &self,
        section: &str,
        e: &OkeEndpoint,
        default_scope: &str,
    ) -> Result<crate::http::Auth, ConfigError> {
        Ok(match e.auth {
            RestAuth::Bearer => {
                crate::http::Auth::Bearer(self.bearer_token(section, &e.token, &e.token_file)?)
            }
            RestAuth::OAuth2 => {
                let secret: Secret = self.secret_value(
                    section,
                    ("client_secret", &e.client_secret),
                    ("client_secret_file", &e.client_secret_file),
                )?;
                let oauth = crate::http::OAuth2::new(
                    e.token_url.as_deref().unwrap_or_default(),
                    e.client_id.as_deref().unwrap_or_default(),
                    secret,
                    Some(e.scope.clone().unwrap_or_else(|| default_scope.to_string())),
                    e.timeout,
                )
                .map_err(|err| self.error(section, "token_url", err.to_string()))?;
                crate::http::Auth::OAuth2(std::sync::Arc::new(oauth))
            }
        })
    }

    /// The TLS material of an OKE endpoint in `section`, read and parsed
    /// (a bad file is a config error naming its key).
    pub fn oke_tls(
        &self,
        section: &str,
        e: &OkeEndpoint,
    ) -> Result<crate::http::TlsFiles, ConfigError> {
        let read = |key: &str, f: &std::path::Path| {
            let path = self.secret_path(f);
            std::fs::read(&path).map_err(|err| {
                self.error(
                    section,
                    key,
                    format!("cannot read {} ({err})", path.display()),
                )
            })
        };
        let identity_pem = match (&e.client_cert_file, &e.client_key_file) {
            (None, None) => None,
            (Some(c), Some(k)) => {
                let mut pem = read("client_cert_file", c)?;
                pem.push(b'\n');
                pem.extend(read("client_key_file", k)?);
                Some(pem)
            }
            (Some(_), None) => {
                return Err(self.error(
                    section,
                    "client_key_file",
                    "client_cert_file needs client_key_file",
                ));
            }
            (None, Some(_)) => {
                return Err(self.error(
                    section,
                    "client_cert_file",
                    "client_key_file needs client_cert_file",
                ));
            }
        };
        let ca_pem = e.ca_file.as_ref().map(|f| read("ca_file", f)).transpose()?;
        let tls = crate::http::TlsFiles {
            identity_pem,
            ca_pem,
        };
        crate::http::Http::with_tls(e.timeout, crate::http::Auth::None, 0, &tls)
            .map_err(|err| self.error(section, "client_cert_file", format!("{err}")))?;
        Ok(tls)
    }

    /// Checks of an OKE endpoint (URLs, OAuth2 keys; secrets are resolved
    /// when the connector is built for a run).
    pub(super) fn validate_oke_endpoint(
        &self,
        section: &str,
        e: &OkeEndpoint,
    ) -> Result<(), ConfigError> {
        let http = |u: &str| matches!(url::Url::parse(u), Ok(u) if u.scheme() == "https" || u.scheme() == "http");
        if !http(&e.base_url) {
            return Err(self.error(
                section,
                "base_url",
                format!("`{}` is not an http(s) URL", e.base_url),
            ));
        }
        if e.concurrency == 0 || e.concurrency > 64 {
            return Err(self.error(section, "concurrency", "must be 1 to 64"));
        }
        self.oke_tls(section, e)?;
        if e.auth == RestAuth::OAuth2 {
            if !http(e.token_url.as_deref().unwrap_or_default()) {
                return Err(self.error(
                    section,
                    "token_url",
                    "auth = \"oauth2\" (the OKE default) needs token_url = \"https://…/token\"; or set auth = \"bearer\" with token_file",
                ));
            }
            if e.client_id.as_deref().unwrap_or_default().is_empty() {
                return Err(self.error(section, "client_id", "auth = \"oauth2\" needs client_id"));
            }
        }
        Ok(())
    }

    pub(super) fn validate_oke(&self) -> Result<(), ConfigError> {
        if let super::Source::Oke(s) = &self.config.source {
            self.validate_oke_endpoint("source", &s.endpoint)?;
            if !PAGE_SIZES.contains(&s.page_size) {
                return Err(self.error(
                    "source",
                    "page_size",
                    "must be 10, 20, 50, 100 or 250 (the OOAPI pageSize values)",
                ));
            }
        }
        if let super::Platform::Oke(p) = &self.config.platform {
            self.validate_oke_endpoint("platform", &p.endpoint)?;
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
