//! A connector's config section (`[source]`, `[platform]`,
//! `[results.source]`, `[results.sink]`): its `kind`, and the settings the
//! connector module of that kind owns.
//!
//! `config` knows no connector: loading reads each section as a table, and
//! the connector layer's registry ([`Kinds`], passed to
//! [`Loaded::from_file`](super::Loaded::from_file)) turns it into the
//! connector's own settings struct, which then checks itself through
//! [`ConnectorConfig`]. So a new protocol adds its module and one registry
//! line, never a variant here.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};

use super::endpoint::{Endpoint, Needs};
use super::{ConfigError, Environment, Loaded};

/// What `config` asks of a connector's settings: their checks, paths,
/// endpoint and secrets. Everything else a connector does is its role's
/// contract in `connector`, reached through [`Section::settings`]'s
/// [`AsAny::as_any`].
pub trait ConnectorConfig: AsAny + fmt::Debug + Send + Sync {
    /// Make paths relative to the config file's folder absolute.
    fn resolve_paths(&mut self, _abs: &dyn Fn(&mut PathBuf)) {}
    /// Pure checks (no file, no environment, no network), with errors
    /// placed by `loaded.error(section, key, …)`.
    fn validate(&self, _loaded: &Loaded, _section: &str) -> Result<(), ConfigError> {
        Ok(())
    }
    /// The one HTTP endpoint, with what it needs (auth, concurrency,
    /// scope), for the shared endpoint checks, secrets and hygiene.
    fn endpoint(&self) -> Option<(&Endpoint, Needs)> {
        None
    }
    /// Requests in flight at once: the endpoint's `concurrency`, else what
    /// the connector needs by default (1 without an endpoint).
    fn concurrency(&self) -> usize {
        self.endpoint().map_or(1, |(e, needs)| e.concurrency(needs))
    }
    /// Secrets of its own beyond the endpoint's (a UWLR school key), each
    /// read as a run would, for `check-config`'s report.
    fn secret_problems(&self, _loaded: &Loaded, _section: &str) -> Vec<ConfigError> {
        Vec::new()
    }
    /// Secret files of its own beyond the endpoint's, as (key, file), for
    /// the permission check.
    fn secret_files(&self, _section: &str) -> Vec<(String, PathBuf)> {
        Vec::new()
    }
    /// Old forms of its own keys or values still read, one `check-config`
    /// warning line each (file:line, what to write instead).
    fn deprecations(&self, _loaded: &Loaded, _section: &str) -> Vec<String> {
        Vec::new()
    }
    /// Extra source roles (`source.role_map`), checked against sisync's
    /// roles.
    fn role_map(&self) -> Option<&BTreeMap<String, String>> {
        None
    }
    /// A platform's `environment`.
    fn environment(&self) -> Environment {
        Environment::Production
    }
}

/// For the connector layer's view of a section's settings as its role
/// (every settings struct has it).
pub trait AsAny: Any {
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Reads a section's table (without `kind`) into a kind's settings; an
/// error comes with the path of the key it is about (`page_size`,
/// `schools[0].brincode`), since the table carries no spans.
pub type ParseFn = fn(toml::Value) -> Result<Box<dyn ConnectorConfig>, (String, toml::de::Error)>;

/// One registered kind: its `kind = "…"` name and its settings reader.
#[derive(Clone, Copy)]
pub struct Kind {
    pub name: &'static str,
    pub parse: ParseFn,
}

impl Kind {
    /// The kind `name`, read into `T`.
    pub const fn of<T: ConnectorConfig + serde::de::DeserializeOwned>(name: &'static str) -> Kind {
        Kind {
            name,
            parse: parse_as::<T>,
        }
    }
}

fn parse_as<T: ConnectorConfig + serde::de::DeserializeOwned>(
    v: toml::Value,
) -> Result<Box<dyn ConnectorConfig>, (String, toml::de::Error)> {
    match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(t) => Ok(Box::new(t)),
        Err(e) => Err((e.path().to_string(), e.into_inner())),
    }
}

/// The kinds of each role, as the connector layer registers them.
pub struct Kinds {
    pub source: Vec<Kind>,
    pub platform: Vec<Kind>,
    pub result_source: Vec<Kind>,
    pub result_sink: Vec<Kind>,
}

/// A connector's section: read as a table, then built into its kind's
/// settings when the config is loaded.
#[derive(Clone)]
pub struct Section {
    kind: String,
    /// The section's place in the text, for errors serde gives no span.
    span: Range<usize>,
    /// The table as written, until [`Section::build`].
    raw: Option<toml::Value>,
    settings: Arc<dyn ConnectorConfig>,
}

impl fmt::Debug for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Section")
            .field("kind", &self.kind)
            .field("settings", &self.settings)
            .finish()
    }
}

/// The settings of a section not built yet; never seen after loading.
#[derive(Debug)]
struct Unbuilt;

impl ConnectorConfig for Unbuilt {}

impl<'de> Deserialize<'de> for Section {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Section, D::Error> {
        let spanned = toml::Spanned::<toml::Table>::deserialize(d)?;
        let span = spanned.span();
        let mut table = spanned.into_inner();
        let kind = match table.remove("kind") {
            Some(toml::Value::String(k)) => k,
            Some(_) => return Err(serde::de::Error::custom("`kind` must be a string")),
            None => return Err(serde::de::Error::missing_field("kind")),
        };
        Ok(Section {
            kind,
            span,
            raw: Some(toml::Value::Table(table)),
            settings: Arc::new(Unbuilt),
        })
    }
}

impl Section {
    /// `kind` as written.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The kind's settings.
    pub fn settings(&self) -> &dyn ConnectorConfig {
        &*self.settings
    }

    /// The settings as `T`, when this section is of that kind.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.settings().as_any().downcast_ref()
    }

    /// Read the table into the settings of its kind; `abs` makes relative
    /// paths absolute.
    pub(super) fn build(
        &mut self,
        loaded: &Loaded,
        section: &str,
        kinds: &[Kind],
        abs: &dyn Fn(&mut PathBuf),
    ) -> Result<(), ConfigError> {
        let Some(raw) = self.raw.take() else {
            return Ok(());
        };
        let Some(kind) = kinds.iter().find(|k| k.name == self.kind) else {
            let names: Vec<String> = kinds.iter().map(|k| format!("`{}`", k.name)).collect();
            return Err(loaded.error(
                section,
                "kind",
                format!(
                    "unknown kind `{}`; use one of {}",
                    self.kind,
                    names.join(", ")
                ),
            ));
        };
        let mut settings = (kind.parse)(raw)
            .map_err(|(path, e)| loaded.section_error(section, &path, &e, &self.span))?;
        settings.resolve_paths(abs);
        self.settings = Arc::from(settings);
        Ok(())
    }
}
