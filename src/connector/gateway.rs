//! Secrets written in a connector's settings and the extra HTTP headers a
//! vendor gateway wants (a subscription key in front of a UWLR LAS): one
//! rule for every connector that has them, the UWLR source and the UWLR
//! results sink alike.

use std::collections::BTreeMap;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{ConfigError, Loaded, Secret};

impl Loaded {
    /// A secret written `env:NAME` or `file:PATH` (a relative path from the
    /// credentials directory first), trimmed; empty is an error.
    pub(crate) fn secret_ref(&self, v: &str) -> Result<Secret, String> {
        if let Some(name) = v.strip_prefix("env:") {
            return match std::env::var(name) {
                Ok(x) if !x.trim().is_empty() => Ok(Secret::new(x.trim())),
                _ => Err(format!(
                    "environment variable {name} is not set or empty; export it"
                )),
            };
        }
        if let Some(f) = v.strip_prefix("file:") {
            let path = self.secret_path(std::path::Path::new(f));
            return match std::fs::read_to_string(&path) {
                Ok(x) if !x.trim().is_empty() => Ok(Secret::new(x.trim())),
                Ok(_) => Err(format!("{} is empty", path.display())),
                Err(e) => Err(format!("cannot read {} ({e})", path.display())),
            };
        }
        Err("inline secrets are not allowed; write \"env:NAME\" or \"file:/path\"".into())
    }

    /// The `headers` of `section`, resolved. A value is `env:NAME`,
    /// `file:PATH` or `plain:VALUE` (for a value that is no secret). A
    /// value without a prefix is refused, except where `bare_ok` (the UWLR
    /// results sink took one as it is; read for one more release, and
    /// `check-config` warns, see [`bare_header_warnings`]).
    pub fn gateway_headers(
        &self,
        section: &str,
        headers: &BTreeMap<String, String>,
        bare_ok: bool,
    ) -> Result<HeaderMap, ConfigError> {
        let mut out = HeaderMap::new();
        for (name, v) in headers {
            let problem = |m: String| self.error(section, "headers", format!("header {name}: {m}"));
            let value = match v.strip_prefix("plain:") {
                Some(p) => Secret::new(p),
                None if bare_ok && is_bare(v) => Secret::new(v.as_str()),
                None => self.secret_ref(v).map_err(problem)?,
            };
            let mut hv = HeaderValue::from_str(value.expose())
                .map_err(|_| problem("the value holds characters a header cannot carry".into()))?;
            hv.set_sensitive(true);
            let hn = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| problem("this is not an HTTP header name".into()))?;
            out.insert(hn, hv);
        }
        Ok(out)
    }
}

/// A header value written without `env:`, `file:` or `plain:`.
fn is_bare(v: &str) -> bool {
    !["env:", "file:", "plain:"].iter().any(|p| v.starts_with(p))
}

/// One `check-config` warning per header of `section` whose value is
/// written bare (accepted where the old form was, for one more release).
pub fn bare_header_warnings(
    l: &Loaded,
    section: &str,
    headers: &BTreeMap<String, String>,
) -> Vec<String> {
    let at = l.error(section, "headers", String::new());
    headers
        .iter()
        .filter(|(_, v)| is_bare(v))
        .map(|(name, _)| {
            format!(
                "{}{}: {section}.headers.{name} is written without env:, file: or plain: (read for one more release); write \"plain:VALUE\" for a value that is no secret, \"env:NAME\" or \"file:PATH\" for a key",
                l.file.display(),
                at.line.map(|n| format!(":{n}")).unwrap_or_default()
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(sink_headers: &str, source_headers: &str) -> Loaded {
        let text = format!(
            "[institution]\nname = \"T\"\nbrin = \"99AA\"\n\n\
             [source]\nkind = \"uwlr\"\nbase_url = \"https://las.example/uwlr\"\nklantcode = \"K\"\nklantnaam = \"N\"\n\
             schools = [{{ brincode = \"99AA\", key = \"env:SISYNC_GW_TEST_KEY\" }}]\nheaders = {source_headers}\n\n\
             [platform]\nkind = \"csv-drop\"\npath = \"drop\"\n\n\
             [results.source]\nkind = \"qti-folder\"\npath = \"inbox\"\n\n\
             [results.sink]\nkind = \"uwlr\"\nurl = \"https://las.example/resultaten\"\n\
             autorisatiesleutel_file = \"las.key\"\nklantcode = \"K\"\nklantnaam = \"N\"\n\
             headers = {sink_headers}\n"
        );
        crate::connector::load_str(Path::new("/etc/sisync/sisync.toml"), text).unwrap()
    }

    fn headers(s: &str) -> BTreeMap<String, String> {
        toml::from_str::<BTreeMap<String, String>>(s).unwrap()
    }

    #[test]
    fn a_header_is_env_file_or_plain_and_bare_only_where_the_old_form_was() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("gw.key");
        std::fs::write(&key, "from-file\n").unwrap();
        // SAFETY: a variable only this test reads
        unsafe { std::env::set_var("SISYNC_GW_TEST_HEADER", " from-env ") };
        let l = config("{}", "{}");
        let h = headers(&format!(
            "A = \"env:SISYNC_GW_TEST_HEADER\"\nB = \"file:{}\"\nC = \"plain:open\"",
            key.display()
        ));
        for bare_ok in [false, true] {
            let got = l.gateway_headers("source", &h, bare_ok).unwrap();
            assert_eq!(got["a"], "from-env");
            assert_eq!(got["b"], "from-file");
            assert_eq!(got["c"], "open");
            assert!(got["a"].is_sensitive());
        }
        let bare = headers("A = \"literal\"");
        assert_eq!(
            l.gateway_headers("results.sink", &bare, true).unwrap()["a"],
            "literal"
        );
        // (headers, bare allowed, the error)
        for (h, bare_ok, want) in [
            (
                "A = \"literal\"",
                false,
                "header A: inline secrets are not allowed",
            ),
            (
                "A = \"env:SISYNC_GW_TEST_UNSET\"",
                true,
                "SISYNC_GW_TEST_UNSET is not set or empty",
            ),
            (
                "A = \"plain:two\\nlines\"",
                false,
                "characters a header cannot carry",
            ),
        ] {
            let e = l
                .gateway_headers("source", &headers(h), bare_ok)
                .unwrap_err();
            assert!(e.to_string().contains(want), "{h}: {e}");
        }
    }

    #[test]
    fn check_config_warns_of_a_bare_value_in_the_results_sink_only() {
        let l = config(
            "{ \"X-Key\" = \"literal\", \"X-Other\" = \"plain:ok\" }",
            "{ \"X-Gw\" = \"plain:ok\" }",
        );
        let w: Vec<String> = l
            .warnings()
            .into_iter()
            .filter(|w| w.contains("headers"))
            .collect();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("/etc/sisync/sisync.toml:")
                && w[0].contains(
                    "results.sink.headers.X-Key is written without env:, file: or plain:"
                )
                && w[0].contains("\"plain:VALUE\""),
            "{w:?}"
        );
    }
}
