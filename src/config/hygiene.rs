//! Config hygiene: settings that are valid TOML but unsafe or useless.
//!
//! Refused (exit 2): credentials inside a URL (they end up in every retry
//! line and error), a zero timeout, an anchor file inside the state
//! directory. Warned about (check-config, daemon start): secret files any
//! user on the machine can read; refusing those would stop a running
//! installation at its next restart over a permission an admin can fix in
//! a minute.

use std::path::PathBuf;
use std::time::Duration;

use super::endpoint::AuthCfg;
use super::{ConfigError, Loaded};

/// Query parameters that carry a credential.
const SECRET_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "api_key",
    "apikey",
    "key",
    "secret",
    "client_secret",
    "password",
    "pwd",
    "sig",
    "signature",
];

impl Loaded {
    /// Every URL and timeout key in the config, checked.
    pub(super) fn validate_hygiene(&self) -> Result<(), ConfigError> {
        let c = &self.config;
        let mut urls: Vec<(String, &str, &str)> = Vec::new();
        // (section, URL key, URL, allow_insecure_http)
        let mut plain: Vec<(&str, &str, &str, bool)> = Vec::new();
        let mut timeouts: Vec<(&str, Duration)> = Vec::new();
        for (section, e) in self.endpoints() {
            urls.push((section.to_string(), e.url_key(), &e.base_url));
            plain.push((section, e.url_key(), &e.base_url, e.allow_insecure_http));
            if let Some(AuthCfg::Oauth2 { token_url, .. }) = &e.auth {
                urls.push((format!("{section}.auth"), "token_url", token_url));
            }
            timeouts.push((section, e.timeout));
        }
        for (section, key, u) in urls {
            if let Some(what) = credentials_in_url(u) {
                return Err(self.error(
                    &section,
                    key,
                    format!(
                        "the URL carries {what}; it would be printed in every retry line and error: remove it and use the token or token_file keys"
                    ),
                ));
            }
        }
        for (section, key, u, allowed) in plain {
            if !allowed && insecure_remote(u) {
                return Err(self.error(
                    section,
                    key,
                    format!(
                        "{u} is plain http:// to another machine: personal data and tokens would cross the network unencrypted; use https://, or set {section}.allow_insecure_http = true if the link is protected otherwise (a VPN, an stunnel)"
                    ),
                ));
            }
        }
        for (section, d) in timeouts {
            if d.is_zero() {
                return Err(self.error(
                    section,
                    "timeout",
                    "\"0s\" makes every request fail at once; write e.g. \"30s\"",
                ));
            }
        }
        if let Some(anchor) = &c.audit.anchor_file {
            let state_dir = c.state.path.parent().unwrap_or(std::path::Path::new("/"));
            if anchor.starts_with(state_dir) {
                return Err(self.error(
                    "audit",
                    "anchor_file",
                    format!(
                        "{} is inside the state directory {}: whoever can remove the audit log could remove its anchors too; put it elsewhere, e.g. /var/log/sisync/audit.anchor",
                        anchor.display(),
                        state_dir.display()
                    ),
                ));
            }
        }
        if c.privacy.keep_deliveries == 0 {
            return Err(self.error("privacy", "keep_deliveries", "must be at least 1 (days)"));
        }
        Ok(())
    }

    /// The secret files the config names (resolved), with their keys.
    fn secret_files(&self) -> Vec<(String, PathBuf)> {
        let c = &self.config;
        let mut out: Vec<(String, &PathBuf)> = Vec::new();
        if let Some(f) = &c.privacy.pseudonym_key_file {
            out.push(("privacy.pseudonym_key_file".into(), f));
        }
        if let Some(f) = &c.admin.token_file {
            out.push(("admin.token_file".into(), f));
        }
        let own = self.sections().into_iter();
        out.into_iter()
            .map(|(k, f)| (k, f.clone()))
            .chain(own.flat_map(|(section, s)| s.settings().secret_files(section)))
            .chain(self.endpoint_files())
            .map(|(k, f)| (k, self.secret_path(&f)))
            .collect()
    }

    /// Problems worth a warning line each: secret files other users of the
    /// machine can read, keys written in their deprecated form.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = self.deprecations();
        for (section, s) in self.sections() {
            out.extend(s.settings().deprecations(self, section));
        }
        let files = self.secret_files();
        #[cfg(unix)]
        for (key, path) in files {
            use std::os::unix::fs::PermissionsExt;
            let Ok(m) = std::fs::metadata(&path) else {
                continue;
            };
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o004 != 0 {
                out.push(format!(
                    "{}: {key}: {} is readable by every user on this machine (mode {mode:04o}); run `chmod 600 {}` (or 640 with the daemon's group)",
                    self.file.display(),
                    path.display(),
                    path.display()
                ));
            }
        }
        out
    }
}

/// What secret a URL carries (user info or a credential query parameter).
/// `http://` to a host that is not this machine.
fn insecure_remote(u: &str) -> bool {
    let Ok(url) = url::Url::parse(u) else {
        return false;
    };
    if url.scheme() != "http" {
        return false;
    }
    match url.host() {
        Some(url::Host::Domain(d)) => !d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => !ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => !ip.is_loopback(),
        None => false,
    }
}

fn credentials_in_url(u: &str) -> Option<String> {
    let url = url::Url::parse(u).ok()?;
    if !url.username().is_empty() || url.password().is_some() {
        return Some("a user name or password (user:password@)".into());
    }
    url.query_pairs()
        .find(|(k, _)| SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()))
        .map(|(k, _)| format!("a credential in the query (`{k}=`)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_to_another_machine_is_found() {
        assert!(insecure_remote("http://platform.school.example/scim/v2"));
        assert!(insecure_remote("http://10.1.2.3:8080/"));
        assert!(!insecure_remote("http://127.0.0.1:8080/scim/v2"));
        assert!(!insecure_remote("http://localhost/x"));
        assert!(!insecure_remote("http://[::1]:9/x"));
        assert!(!insecure_remote("https://platform.school.example/"));
    }

    #[test]
    fn credentials_in_urls_are_found() {
        assert!(credentials_in_url("https://u:p@h.example/scim").is_some());
        assert!(credentials_in_url("https://h.example/x?access_token=1").is_some());
        assert!(credentials_in_url("https://h.example/x?Key=1").is_some());
        assert!(credentials_in_url("https://h.example/scim/v2?page=1").is_none());
    }
}
