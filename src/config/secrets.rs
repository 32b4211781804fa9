//! Every secret and TLS file of the config, read once for `check-config`'s
//! report. Loading a config reads none of them (read-only commands work
//! without them); a run reads those of the connectors it builds.

use super::results::ResultSinkCfg;
use super::{ConfigError, Loaded, Source};

impl Loaded {
    /// Each secret or TLS file that cannot be read (or does not parse), as
    /// the error a run would stop with.
    pub fn secret_problems(&self) -> Vec<ConfigError> {
        let mut out = Vec::new();
        let mut check = |r: Result<(), ConfigError>| {
            if let Err(e) = r {
                out.push(e);
            }
        };
        for (section, e) in self.endpoints() {
            match self.endpoint_tls(section, e) {
                Ok(tls) => check(self.endpoint_auth(section, e, None, &tls).map(drop)),
                Err(err) => {
                    check(Err(err));
                    let none = crate::http::TlsFiles::default();
                    check(self.endpoint_auth(section, e, None, &none).map(drop));
                }
            }
        }
        if let Source::Uwlr(u) = &self.config.source {
            for n in 0..u.schools.len() {
                check(self.school_key(n).map(drop));
            }
            check(self.uwlr_headers(u).map(drop));
        }
        if let Some(ResultSinkCfg::Uwlr(u)) = self.config.results.as_ref().map(|r| &r.sink) {
            check(self.uwlr_secrets(u).map(drop));
        }
        if self.config.privacy.pseudonymize_ids {
            check(self.pseudonym_key().map(drop));
        }
        check(self.admin_token().map(drop));
        check(self.alert_webhook_url().map(drop));
        check(self.smtp_password().map(drop));
        out
    }
}
