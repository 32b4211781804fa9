//! Every secret and TLS file of the config, read once for `check-config`'s
//! report. Loading a config reads none of them (read-only commands work
//! without them); a run reads those of the connectors it builds.

use super::{ConfigError, Loaded};

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
        for (section, s) in self.sections() {
            s.settings()
                .secret_problems(self, section)
                .into_iter()
                .for_each(|e| check(Err(e)));
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
