//! One HTTP endpoint config for every HTTP connector: where (`base_url`),
//! how sisync authenticates (`[… .auth]`: a bearer token or OAuth2 client
//! credentials), which TLS material it presents (`[… .tls]`: client
//! certificate and key, extra CA), and how hard it may push (`timeout`,
//! `max_retries`, `concurrency`, `rate_limit`).
//!
//! Checking is pure (no file or environment read), so that read-only
//! commands work on a host without the secrets; the secrets and TLS files
//! are read once, by [`Loaded::http_client`], when a run builds its
//! connectors.
//!
//! The flat keys of earlier releases (`token_file`, `auth = "oauth2"` with
//! `token_url`…, `client_cert_file`…, `url`, `list_url`) are still read,
//! for one release, and reported by `check-config` with the key that
//! replaces them.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Deserializer};

use super::{ConfigError, ConnectorConfig, Loaded, RestAuth, Secret};
use crate::http::{Auth, Http, OAuth2, TlsFiles};

/// `[<section>.auth]`: a static bearer token or OAuth2 client credentials.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum AuthCfg {
    Bearer {
        /// `env:NAME`; inline tokens are refused.
        token: Option<String>,
        /// File holding the token (`$CREDENTIALS_DIRECTORY` first when
        /// relative).
        token_file: Option<PathBuf>,
    },
    Oauth2 {
        token_url: String,
        client_id: String,
        /// `env:NAME`; inline secrets are refused.
        client_secret: Option<String>,
        client_secret_file: Option<PathBuf>,
        /// Space-separated scopes; a connector may have a default.
        scope: Option<String>,
    },
}

/// `[<section>.tls]`: mutual TLS and extra trusted roots (PEM; relative
/// names are looked up in `$CREDENTIALS_DIRECTORY` first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCfg {
    /// Client certificate (chain), e.g. PKIoverheid for Edukoppeling.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// Extra trusted roots, e.g. the PKIoverheid roots.
    pub ca_file: Option<PathBuf>,
}

impl TlsCfg {
    fn is_empty(&self) -> bool {
        *self == TlsCfg::default()
    }
}

/// A key written in its old form, and the key that replaces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deprecated {
    pub old: String,
    pub new: String,
}

/// One HTTP endpoint, embedded (`#[serde(flatten)]`) in a connector's
/// section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The service root (REST, OOAPI, SCIM), the SOAP endpoint (UWLR) or
    /// the document list (QTI over HTTP).
    pub base_url: String,
    /// Allow a plain `http://` URL to a host other than this machine.
    pub allow_insecure_http: bool,
    /// None: no authentication header (UWLR carries its key in the SOAP
    /// header; a QTI list may be open).
    pub auth: Option<AuthCfg>,
    pub tls: TlsCfg,
    pub timeout: Duration,
    pub max_retries: usize,
    /// None: the connector's default.
    concurrency: Option<usize>,
    /// Requests per second (0: no limit).
    pub rate_limit: u32,
    /// Old keys in use (warned about by `check-config`).
    pub deprecated: Vec<Deprecated>,
    /// The auth / TLS keys were written flat in the section (old form):
    /// errors then name the keys where they are.
    auth_flat: bool,
    tls_flat: bool,
    /// The key the URL was written under (`base_url`, or old `url` /
    /// `list_url`).
    url_key: &'static str,
    /// Old and new forms mixed: (key, what to do).
    conflict: Option<(String, String)>,
}

/// `auth` as written: a table (`[… .auth] kind = …`), or the old string
/// (`auth = "oauth2"` with flat keys beside it).
#[derive(Debug, Clone)]
enum AuthKey {
    Table(AuthCfg),
    Kind(RestAuth),
}

impl<'de> Deserialize<'de> for AuthKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AuthKey, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = AuthKey;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a table `[… .auth]` with kind = \"bearer\" or \"oauth2\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<AuthKey, E> {
                RestAuth::deserialize(serde::de::value::StrDeserializer::<E>::new(s))
                    .map(AuthKey::Kind)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<AuthKey, A::Error> {
                AuthCfg::deserialize(serde::de::value::MapAccessDeserializer::new(m))
                    .map(AuthKey::Table)
            }
        }
        d.deserialize_any(V)
    }
}

/// The keys as written; [`Endpoint`] is what they mean.
#[derive(Deserialize)]
struct EndpointToml {
    base_url: Option<String>,
    #[serde(default)]
    allow_insecure_http: bool,
    auth: Option<AuthKey>,
    tls: Option<TlsCfg>,
    #[serde(default, with = "super::humantime_serde_opt")]
    timeout: Option<Duration>,
    max_retries: Option<usize>,
    concurrency: Option<usize>,
    #[serde(default)]
    rate_limit: u32,
    // the old keys, read for one release
    url: Option<String>,
    list_url: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    token_url: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_file: Option<PathBuf>,
    scope: Option<String>,
    client_cert_file: Option<PathBuf>,
    client_key_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Endpoint, D::Error> {
        EndpointToml::deserialize(d).map(Endpoint::from)
    }
}

impl From<EndpointToml> for Endpoint {
    fn from(t: EndpointToml) -> Endpoint {
        let mut deprecated = Vec::new();
        let mut conflict = None;
        let mut old = |old: &str, new: &str| {
            deprecated.push(Deprecated {
                old: old.into(),
                new: new.into(),
            })
        };

        let mut url_key = "base_url";
        let mut base_url = t.base_url.clone();
        for (key, v) in [("url", &t.url), ("list_url", &t.list_url)] {
            if let Some(v) = v {
                if base_url.is_some() {
                    conflict = Some((key.to_string(), format!("set base_url or {key}, not both")));
                } else {
                    old(key, "base_url");
                    base_url = Some(v.clone());
                    url_key = if key == "url" { "url" } else { "list_url" };
                }
            }
        }

        let flat_bearer = [
            ("token", t.token.is_some()),
            ("token_file", t.token_file.is_some()),
        ];
        let flat_oauth2 = [
            ("token_url", t.token_url.is_some()),
            ("client_id", t.client_id.is_some()),
            ("client_secret", t.client_secret.is_some()),
            ("client_secret_file", t.client_secret_file.is_some()),
            ("scope", t.scope.is_some()),
        ];
        let flat: Vec<&str> = flat_bearer
            .iter()
            .chain(&flat_oauth2)
            .filter(|(_, set)| *set)
            .map(|(k, _)| *k)
            .collect();
        let (auth, auth_flat) = match t.auth {
            Some(AuthKey::Table(a)) => {
                if let Some(k) = flat.first() {
                    conflict = Some((
                        k.to_string(),
                        format!(
                            "set the [… .auth] table or the old flat {k}, not both; move it into the table"
                        ),
                    ));
                }
                (Some(a), false)
            }
            kind => {
                let kind = match kind {
                    Some(AuthKey::Kind(k)) => {
                        let name = match k {
                            RestAuth::Bearer => "bearer",
                            RestAuth::OAuth2 => "oauth2",
                        };
                        old(&format!("auth = \"{name}\""), "[… .auth] kind");
                        Some(k)
                    }
                    _ if flat_bearer.iter().any(|(_, s)| *s) => Some(RestAuth::Bearer),
                    _ if flat_oauth2.iter().any(|(_, s)| *s) => Some(RestAuth::OAuth2),
                    _ => None,
                };
                for k in &flat {
                    old(k, &format!("auth.{k}"));
                }
                let auth = kind.map(|k| match k {
                    RestAuth::Bearer => AuthCfg::Bearer {
                        token: t.token.clone(),
                        token_file: t.token_file.clone(),
                    },
                    RestAuth::OAuth2 => AuthCfg::Oauth2 {
                        token_url: t.token_url.clone().unwrap_or_default(),
                        client_id: t.client_id.clone().unwrap_or_default(),
                        client_secret: t.client_secret.clone(),
                        client_secret_file: t.client_secret_file.clone(),
                        scope: t.scope.clone(),
                    },
                });
                (auth, true)
            }
        };

        let flat_tls = TlsCfg {
            client_cert_file: t.client_cert_file,
            client_key_file: t.client_key_file,
            ca_file: t.ca_file,
        };
        let tls_flat = !flat_tls.is_empty();
        for (k, set) in [
            ("client_cert_file", flat_tls.client_cert_file.is_some()),
            ("client_key_file", flat_tls.client_key_file.is_some()),
            ("ca_file", flat_tls.ca_file.is_some()),
        ] {
            if set {
                if t.tls.is_some() {
                    conflict = Some((
                        k.to_string(),
                        format!(
                            "set the [… .tls] table or the old flat {k}, not both; move it into the table"
                        ),
                    ));
                }
                old(k, &format!("tls.{k}"));
            }
        }
        let tls = t.tls.unwrap_or(flat_tls);

        Endpoint {
            base_url: base_url.unwrap_or_default(),
            allow_insecure_http: t.allow_insecure_http,
            auth,
            tls,
            timeout: t.timeout.unwrap_or_else(super::default_timeout),
            max_retries: t.max_retries.unwrap_or_else(super::default_retries),
            concurrency: t.concurrency,
            rate_limit: t.rate_limit,
            deprecated,
            auth_flat,
            tls_flat,
            url_key,
            conflict,
        }
    }
}

/// What a connector asks of its endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    /// Authentication is required (a SCIM platform, a REST SIS).
    pub auth: bool,
    /// Default and largest `concurrency`.
    pub concurrency: (usize, usize),
    /// The OAuth2 scope when the config names none (OKE flows).
    pub scope: Option<&'static str>,
}

impl Needs {
    pub const fn authenticated(concurrency: usize) -> Needs {
        Needs {
            auth: true,
            concurrency: (concurrency, 64),
            scope: None,
        }
    }

    /// Authentication required; `scope` is the OAuth2 scope when the
    /// config names none (the OKE flows).
    pub const fn scoped(concurrency: usize, scope: &'static str) -> Needs {
        Needs {
            auth: true,
            concurrency: (concurrency, 64),
            scope: Some(scope),
        }
    }

    /// Authentication optional (or carried in the message itself).
    pub const fn open(concurrency: usize) -> Needs {
        Needs {
            auth: false,
            concurrency: (concurrency, 64),
            scope: None,
        }
    }
}

impl Endpoint {
    /// Requests in flight at once (the connector's default when unset).
    pub fn concurrency(&self, needs: Needs) -> usize {
        self.concurrency.unwrap_or(needs.concurrency.0)
    }

    /// How sisync authenticates, for `check-config` (no secret).
    pub fn describe_auth(&self) -> String {
        let auth = match &self.auth {
            None => "no HTTP authentication".to_string(),
            Some(AuthCfg::Bearer { token_file, .. }) => format!(
                "bearer token from {}",
                if token_file.is_some() {
                    "token_file"
                } else {
                    "the environment"
                }
            ),
            Some(AuthCfg::Oauth2 { client_id, .. }) => {
                format!("OAuth2 client credentials, client {client_id}")
            }
        };
        match &self.tls.client_cert_file {
            Some(_) => format!("{auth}, client certificate"),
            None => auth,
        }
    }

    /// The key the URL was written under.
    pub fn url_key(&self) -> &'static str {
        self.url_key
    }

    /// Where the auth keys of `section` are written.
    fn auth_section(&self, section: &str) -> String {
        if self.auth_flat {
            section.to_string()
        } else {
            format!("{section}.auth")
        }
    }

    fn tls_section(&self, section: &str) -> String {
        if self.tls_flat {
            section.to_string()
        } else {
            format!("{section}.tls")
        }
    }
}

fn is_http_url(u: &str) -> bool {
    matches!(url::Url::parse(u), Ok(u) if u.scheme() == "https" || u.scheme() == "http")
}

impl Loaded {
    /// Check an endpoint without reading a file or the environment.
    pub(crate) fn check_endpoint(
        &self,
        section: &str,
        e: &Endpoint,
        needs: Needs,
    ) -> Result<(), ConfigError> {
        if let Some((key, msg)) = &e.conflict {
            return Err(self.error(section, key, msg.clone()));
        }
        if e.base_url.is_empty() {
            return Err(self.error(section, "base_url", "missing; set base_url = \"https://…\""));
        }
        if !is_http_url(&e.base_url) {
            return Err(self.error(
                section,
                e.url_key,
                format!("`{}` is not an http(s) URL", e.base_url),
            ));
        }
        let (_, max) = needs.concurrency;
        let n = e.concurrency(needs);
        if n == 0 || n > max {
            return Err(self.error(section, "concurrency", format!("must be 1 to {max}")));
        }
        let auth_section = e.auth_section(section);
        match &e.auth {
            None if needs.auth => {
                return Err(self.error(
                    section,
                    "auth",
                    format!(
                        "missing; add [{section}.auth] with kind = \"bearer\" and token_file (or token = \"env:NAME\"), or kind = \"oauth2\" with token_url, client_id and client_secret_file"
                    ),
                ));
            }
            None => {}
            Some(AuthCfg::Bearer { token, token_file }) => {
                self.check_secret(&auth_section, ("token", token), ("token_file", token_file))?;
            }
            Some(AuthCfg::Oauth2 {
                token_url,
                client_id,
                client_secret,
                client_secret_file,
                ..
            }) => {
                if !is_http_url(token_url) {
                    return Err(self.error(
                        &auth_section,
                        "token_url",
                        "kind = \"oauth2\" needs token_url = \"https://…/token\"",
                    ));
                }
                if client_id.trim().is_empty() {
                    return Err(self.error(
                        &auth_section,
                        "client_id",
                        "kind = \"oauth2\" needs client_id",
                    ));
                }
                self.check_secret(
                    &auth_section,
                    ("client_secret", client_secret),
                    ("client_secret_file", client_secret_file),
                )?;
            }
        }
        let tls_section = e.tls_section(section);
        match (&e.tls.client_cert_file, &e.tls.client_key_file) {
            (Some(_), None) => Err(self.error(
                &tls_section,
                "client_key_file",
                "client_cert_file needs client_key_file",
            )),
            (None, Some(_)) => Err(self.error(
                &tls_section,
                "client_cert_file",
                "client_key_file needs client_cert_file",
            )),
            _ => Ok(()),
        }
    }

    /// The authentication of an endpoint, secrets read.
    pub fn endpoint_auth(
        &self,
        section: &str,
        e: &Endpoint,
        default_scope: Option<&str>,
        tls: &TlsFiles,
    ) -> Result<Auth, ConfigError> {
        let auth_section = e.auth_section(section);
        Ok(match &e.auth {
            None => Auth::None,
            Some(AuthCfg::Bearer { token, token_file }) => Auth::Bearer(self.secret_value(
                &auth_section,
                ("token", token),
                ("token_file", token_file),
            )?),
            Some(AuthCfg::Oauth2 {
                token_url,
                client_id,
                client_secret,
                client_secret_file,
                scope,
            }) => {
                let secret: Secret = self.secret_value(
                    &auth_section,
                    ("client_secret", client_secret),
                    ("client_secret_file", client_secret_file),
                )?;
                let scope = scope.clone().or(default_scope.map(str::to_string));
                let o = OAuth2::new(token_url, client_id, secret, scope, e.timeout, tls)
                    .map_err(|err| self.error(&auth_section, "token_url", format!("{err:#}")))?;
                Auth::OAuth2(std::sync::Arc::new(o))
            }
        })
    }

    /// The TLS material of an endpoint, read and parsed (a bad file is an
    /// error naming its key).
    pub fn endpoint_tls(&self, section: &str, e: &Endpoint) -> Result<TlsFiles, ConfigError> {
        let s = e.tls_section(section);
        let read = |key: &str, f: &std::path::Path| {
            let path = self.secret_path(f);
            std::fs::read(&path).map_err(|err| {
                self.error(&s, key, format!("cannot read {} ({err})", path.display()))
            })
        };
        let identity_pem = match (&e.tls.client_cert_file, &e.tls.client_key_file) {
            (Some(c), Some(k)) => {
                let mut pem = read("client_cert_file", c)?;
                pem.push(b'\n');
                pem.extend(read("client_key_file", k)?);
                Some(pem)
            }
            (None, None) => None,
            _ => {
                // refused by check_endpoint already
                return Err(self.error(
                    &s,
                    "client_cert_file",
                    "client_cert_file and client_key_file go together",
                ));
            }
        };
        let ca_pem = e
            .tls
            .ca_file
            .as_ref()
            .map(|f| read("ca_file", f))
            .transpose()?;
        let tls = TlsFiles {
            identity_pem,
            ca_pem,
        };
        // parsed now, so that a bad file is named by its key
        Http::with_tls(e.timeout, Auth::None, 0, &tls).map_err(|err| {
            let key = if tls.identity_pem.is_some() {
                "client_cert_file"
            } else {
                "ca_file"
            };
            self.error(&s, key, format!("{err:#}"))
        })?;
        Ok(tls)
    }

    /// The HTTP client of a connector's endpoint ([`ConnectorConfig::endpoint`]):
    /// secrets and TLS files read now (when a run or `check-config
    /// --connect` builds its connectors).
    pub fn http_client(
        &self,
        section: &str,
        settings: &dyn ConnectorConfig,
    ) -> anyhow::Result<Http> {
        let (e, needs) = settings
            .endpoint()
            .with_context(|| format!("[{section}] has no HTTP endpoint"))?;
        let tls = self.endpoint_tls(section, e)?;
        let auth = self.endpoint_auth(section, e, needs.scope, &tls)?;
        Ok(Http::with_tls(e.timeout, auth, e.max_retries, &tls)?
            .with_rate_limit(e.rate_limit)
            .with_concurrency(e.concurrency(needs)))
    }

    /// Every HTTP endpoint of the config, with its section.
    pub fn endpoints(&self) -> Vec<(&'static str, &Endpoint)> {
        let sections = self.sections().into_iter();
        sections
            .filter_map(|(section, s)| Some((section, s.settings().endpoint()?.0)))
            .collect()
    }

    /// The secret and TLS files the endpoints name, with their keys.
    pub(super) fn endpoint_files(&self) -> Vec<(String, PathBuf)> {
        let mut out = Vec::new();
        for (section, e) in self.endpoints() {
            let a = e.auth_section(section);
            match &e.auth {
                Some(AuthCfg::Bearer {
                    token_file: Some(f),
                    ..
                }) => out.push((format!("{a}.token_file"), f.clone())),
                Some(AuthCfg::Oauth2 {
                    client_secret_file: Some(f),
                    ..
                }) => out.push((format!("{a}.client_secret_file"), f.clone())),
                _ => {}
            }
            if let Some(f) = &e.tls.client_key_file {
                out.push((
                    format!("{}.client_key_file", e.tls_section(section)),
                    f.clone(),
                ));
            }
        }
        out
    }

    /// One line per old key in use: where, and the key that replaces it.
    pub fn deprecations(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (section, e) in self.endpoints() {
            for d in &e.deprecated {
                let key = d.old.split_whitespace().next().unwrap_or(&d.old);
                let at = self.error(section, key, String::new());
                let new = d.new.replace("… ", section);
                let new = if new.starts_with('[') {
                    new
                } else {
                    format!("{section}.{new}")
                };
                out.push(format!(
                    "{}{}: {section}.{} is deprecated (read for one more release); write {new} instead",
                    self.file.display(),
                    at.line.map(|l| format!(":{l}")).unwrap_or_default(),
                    d.old
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::platform::scim::config::ScimPlatform;
    use crate::connector::source::oneroster::config::OneRosterRestSource;
    use std::path::Path;

    fn parse(text: &str) -> Result<Loaded, ConfigError> {
        crate::connector::load_str(Path::new("/etc/sisync/sisync.toml"), text.to_string())
    }

    const HEAD: &str = "[institution]\nname = \"T\"\nbrin = \"99AA\"\n\n[source]\nkind = \"oneroster-csv\"\npath = \"export\"\n\n";

    fn scim(l: &Loaded) -> &Endpoint {
        let p = l.config.platform.get::<ScimPlatform>();
        &p.expect("scim").endpoint
    }

    /// The meaning of an endpoint, without how it was written.
    fn meaning(e: &Endpoint) -> (String, Option<AuthCfg>, TlsCfg, Duration, usize, u32) {
        (
            e.base_url.clone(),
            e.auth.clone(),
            e.tls.clone(),
            e.timeout,
            e.max_retries,
            e.rate_limit,
        )
    }

    #[test]
    fn old_flat_keys_mean_the_same_as_the_auth_and_tls_tables() {
        let old = parse(&format!(
            "{HEAD}[platform]\nkind = \"scim\"\nbase_url = \"https://p.example/scim/v2\"\ntoken_file = \"scim-token\"\nclient_cert_file = \"c.pem\"\nclient_key_file = \"c.key\"\nrate_limit = 5\n"
        ))
        .unwrap();
        let new = parse(&format!(
            "{HEAD}[platform]\nkind = \"scim\"\nbase_url = \"https://p.example/scim/v2\"\nrate_limit = 5\n\n[platform.auth]\nkind = \"bearer\"\ntoken_file = \"scim-token\"\n\n[platform.tls]\nclient_cert_file = \"c.pem\"\nclient_key_file = \"c.key\"\n"
        ))
        .unwrap();
        assert_eq!(meaning(scim(&old)), meaning(scim(&new)));
        assert!(new.deprecations().is_empty());
        let warned = old.deprecations();
        assert_eq!(warned.len(), 3, "{warned:?}");
        assert_eq!(
            warned[0],
            "/etc/sisync/sisync.toml:12: platform.token_file is deprecated (read for one more release); write platform.auth.token_file instead"
        );
        assert!(
            warned[1].contains(":13: platform.client_cert_file")
                && warned[1].contains("platform.tls.client_cert_file"),
            "{warned:?}"
        );
        assert!(
            old.warnings().contains(&warned[0]),
            "check-config shows them"
        );

        // OneRoster REST: `auth = "oauth2"` with flat keys, UWLR-style `url`
        let old = parse(&format!(
            "{}[platform]\nkind = \"csv-drop\"\npath = \"drop\"\n",
            HEAD.replace(
                "kind = \"oneroster-csv\"\npath = \"export\"",
                "kind = \"oneroster-rest\"\nbase_url = \"https://sis.example/api\"\nauth = \"oauth2\"\ntoken_url = \"https://sis.example/token\"\nclient_id = \"sisync\"\nclient_secret_file = \"secret\"\nscope = \"roster.readonly\"\nca_file = \"ca.pem\""
            )
        ))
        .unwrap();
        let new = parse(&format!(
            "{}[source.auth]\nkind = \"oauth2\"\ntoken_url = \"https://sis.example/token\"\nclient_id = \"sisync\"\nclient_secret_file = \"secret\"\nscope = \"roster.readonly\"\n\n[source.tls]\nca_file = \"ca.pem\"\n\n[platform]\nkind = \"csv-drop\"\npath = \"drop\"\n",
            HEAD.replace(
                "kind = \"oneroster-csv\"\npath = \"export\"",
                "kind = \"oneroster-rest\"\nbase_url = \"https://sis.example/api\""
            )
        ))
        .unwrap();
        let rest = |l: &Loaded| {
            let s = l.config.source.get::<OneRosterRestSource>();
            meaning(&s.expect("rest").endpoint)
        };
        assert_eq!(rest(&old), rest(&new));
        let warned = old.deprecations().join("\n");
        assert!(
            warned.contains("source.auth = \"oauth2\" is deprecated"),
            "{warned}"
        );
        assert!(
            warned.contains("write [source.auth] kind instead"),
            "{warned}"
        );
        assert!(
            warned.contains("write source.auth.token_url instead"),
            "{warned}"
        );
    }

    #[test]
    fn an_unknown_key_beside_the_endpoint_keys_is_refused_with_its_line() {
        let e = parse(&format!(
            "{HEAD}[platform]\nkind = \"scim\"\nbase_url = \"https://p.example/scim/v2\"\ntokne_file = \"t\"\n"
        ))
        .unwrap_err();
        assert!(e.message.contains("unknown field `tokne_file`"), "{e}");
        assert_eq!(e.line, Some(12), "{e}");
        let e = parse(&format!(
            "{HEAD}[platform]\nkind = \"scim\"\nbase_url = \"https://p.example/scim/v2\"\n\n[platform.tls]\nclient_cert = \"c.pem\"\n"
        ))
        .unwrap_err();
        assert!(e.message.contains("unknown field `client_cert`"), "{e}");
        assert_eq!(e.line, Some(14), "{e}");
    }

    #[test]
    fn mixing_old_and_new_forms_is_refused_at_the_old_key() {
        let e = parse(&format!(
            "{HEAD}[platform]\nkind = \"scim\"\nbase_url = \"https://p.example/scim/v2\"\ntoken_file = \"scim-token\"\n\n[platform.auth]\nkind = \"bearer\"\ntoken_file = \"t\"\n"
        ))
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("platform.token_file"), "{e}");
        assert_eq!(e.line, Some(12), "{e}");
        assert!(e.message.contains("not both"), "{e}");
    }

    #[test]
    fn a_missing_secret_loads_and_fails_where_it_is_read() {
        let text = format!(
            "{HEAD}[platform]\nkind = \"scim\"\nbase_url = \"https://p.example/scim/v2\"\n\n[platform.auth]\nkind = \"oauth2\"\ntoken_url = \"https://p.example/token\"\nclient_id = \"sisync\"\nclient_secret_file = \"/nonexistent/sisync-secret\"\n"
        );
        let l = parse(&text).expect("loading reads no secret");
        let problems = l.secret_problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        let e = &problems[0];
        assert_eq!(e.key.as_deref(), Some("platform.auth.client_secret_file"));
        assert_eq!(e.line, Some(17), "{e}");
        assert!(
            e.message.contains("cannot read /nonexistent/sisync-secret"),
            "{e}"
        );
        let err = l
            .http_client("platform", l.config.platform.settings())
            .err()
            .expect("a run cannot build the client");
        assert_eq!(
            err.downcast_ref::<ConfigError>(),
            Some(e),
            "the run stops with the same line"
        );
        // what is wrong without reading anything is still refused at load
        let e = parse(&text.replace(
            "client_secret_file = \"/nonexistent/sisync-secret\"",
            "client_secret = \"hunter2\"",
        ))
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("platform.auth.client_secret"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn errors_inside_inline_tables_name_their_line() {
        // (document, the key the error names, its line)
        let cases = [
            // a value in an inline table of a section
            (
                format!(
                    "{HEAD}[platform]\nkind = \"scim\"\nbase_url = \"https://p.example/scim/v2\"\nauth = {{ kind = \"oauth2\", token_url = \"ftp://p.example/token\", client_id = \"c\", client_secret_file = \"s\" }}\ntls = {{ client_cert_file = \"c.pem\" }}\n"
                ),
                "platform.auth.token_url",
                12,
            ),
            (
                format!(
                    "{HEAD}[platform]\nkind = \"scim\"\nbase_url = \"https://p.example/scim/v2\"\nauth = {{ kind = \"bearer\", token_file = \"t\" }}\n\ntls = {{ client_cert_file = \"c.pem\" }}\n"
                ),
                "platform.tls.client_key_file",
                14,
            ),
            // a whole section as an inline table, with a nested one
            (
                "# sisync\nsource = { kind = \"ims-enterprise\", path = \"x.xml\", role_map = { aide = \"examiner\" } }\nplatform = { kind = \"csv-drop\", path = \"drop\" }\n\n[institution]\nname = \"T\"\nbrin = \"99AA\"\n".to_string(),
                "source.role_map.aide",
                2,
            ),
            // alerts: the e-mail settings inline
            (
                format!(
                    "{HEAD}[platform]\nkind = \"csv-drop\"\npath = \"drop\"\n\n[alerts]\nfailing_after = \"1h\"\nemail = {{ smtp_host = \"mail.example\", tls = \"none\", from = \"a@b.example\", to = [\"c@d.example\"] }}\n"
                ),
                "alerts.email.tls",
                15,
            ),
        ];
        for (text, key, line) in cases {
            let e = parse(&text).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{e}");
            assert_eq!(e.line, Some(line), "{e}");
        }
        // an unknown key inside a tagged section (serde's span is the section)
        let e = parse(&format!(
            "{HEAD}[platform]\nkind = \"csv-drop\"\npath = \"drop\"\n\nurl = \"x\"\n"
        ))
        .unwrap_err();
        assert!(e.message.contains("unknown field `url`"), "{e}");
        assert_eq!(e.line, Some(13), "{e}");
    }
}
