//! TOML configuration: parsing, validation, secret resolution.
//!
//! Every error names the file, the line and the key, and says what to do.
//! Relative paths are resolved against the directory of the config file.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::model::Role;

pub mod alerts;
pub mod endpoint;
mod hygiene;
pub mod results;
mod secrets;
pub mod section;
mod spans;

pub use section::{ConnectorConfig, Kind, Kinds, Section};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub institution: Institution,
    #[serde(default)]
    pub state: State,
    /// `[source]`: the roster source, read by its kind's connector.
    pub source: Section,
    /// `[platform]`: the platform, read by its kind's connector.
    pub platform: Section,
    #[serde(default)]
    pub safety: Safety,
    #[serde(default)]
    pub privacy: Privacy,
    /// Exam results back to the SIS (`sisync sync results`).
    pub results: Option<results::Results>,
    #[serde(default)]
    pub schedule: Schedule,
    #[serde(default)]
    pub admin: Admin,
    /// Notifications that reach a person.
    pub alerts: Option<alerts::Alerts>,
    #[serde(default)]
    pub audit: AuditCfg,
}

/// `[audit]`: where the audit log's head is anchored outside the database.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditCfg {
    /// A file outside the state directory that gets the head (entry number
    /// and hash) appended at the end of every run; `audit verify` checks
    /// the log against it.
    pub anchor_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Institution {
    pub name: String,
    pub brin: String,
    #[serde(default)]
    pub environment: Environment,
}

crate::model::names! {
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Environment {
        #[default]
        Production = "production",
        Acceptance = "acceptance",
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    #[serde(default = "default_state_path")]
    pub path: PathBuf,
    /// A run that would send data starts only with this much free space
    /// (MiB) on the state volume: nothing may leave sisync without its
    /// audit entry committed.
    #[serde(default = "default_min_free_mb")]
    pub min_free_mb: u64,
}

fn default_min_free_mb() -> u64 {
    64
}

impl Default for State {
    fn default() -> Self {
        State {
            path: default_state_path(),
            min_free_mb: default_min_free_mb(),
        }
    }
}

fn default_state_path() -> PathBuf {
    PathBuf::from("/var/lib/sisync/state.db")
}

pub use crate::secret::Secret;

/// The old `auth = "bearer" | "oauth2"` string (see [`endpoint`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestAuth {
    #[default]
    Bearer,
    OAuth2,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_retries() -> usize {
    4
}
/// For `#[serde(default = …)]` of a switch that is on unless turned off.
pub(crate) fn default_true() -> bool {
    true
}
/// A full read at least once a day (incremental sources).
pub(crate) fn default_full_every() -> Duration {
    Duration::from_secs(24 * 3600)
}

crate::model::names! {
    /// Which source attribute becomes the SCIM `userName`.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum UserNameFrom {
        #[default]
        SourcedId = "sourced-id",
        Username = "username",
        Identifier = "identifier",
        Email = "email",
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Safety {
    /// Users deactivated, of active users.
    #[serde(default = "default_max_share")]
    pub max_deactivate_share: f64,
    /// Users updated (a real change), of active users.
    #[serde(default = "default_update_share")]
    pub max_update_share: f64,
    /// Memberships removed, of known memberships.
    #[serde(default = "default_membership_share")]
    pub max_membership_removal_share: f64,
    /// Classes emptied or retired, of active classes.
    #[serde(default = "default_max_share")]
    pub max_group_loss_share: f64,
    /// Persons whose accommodations are removed or reduced, of persons who
    /// have any (one person is always allowed).
    #[serde(default = "default_accommodation_share")]
    pub max_accommodation_loss_share: f64,
    /// Exam registrations withdrawn, of active registrations.
    #[serde(default = "default_membership_share")]
    pub max_registration_withdrawal_share: f64,
    /// Exam periods and rollovers: `[[safety.freeze]]`.
    #[serde(default)]
    pub freeze: Vec<Freeze>,
}

/// A freeze window: from the start of `from` to the end of `until`
/// (local dates, both included).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Freeze {
    pub from: chrono::NaiveDate,
    pub until: chrono::NaiveDate,
    pub mode: FreezeMode,
    #[serde(default)]
    pub reason: String,
}

crate::model::names! {
    #[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum FreezeMode {
        /// Creates, non-reducing updates and membership additions only.
        AddsOnly = "adds-only",
        /// Nothing is written.
        Paused = "paused",
    }
}

impl Freeze {
    /// ` (reason)` as `show` renders it (escaped for a page), or nothing
    /// when the window gives none.
    pub fn reason_note(&self, show: impl Fn(&str) -> String) -> String {
        if self.reason.is_empty() {
            String::new()
        } else {
            format!(" ({})", show(&self.reason))
        }
    }
}

impl Safety {
    /// The freeze window in force on `today` (the strictest when several
    /// overlap).
    pub fn freeze_on(&self, today: chrono::NaiveDate) -> Option<&Freeze> {
        self.freeze
            .iter()
            .filter(|f| f.from <= today && today <= f.until)
            .max_by_key(|f| f.mode == FreezeMode::Paused)
    }
}

impl Default for Safety {
    fn default() -> Self {
        Safety {
            max_deactivate_share: default_max_share(),
            max_update_share: default_update_share(),
            max_membership_removal_share: default_membership_share(),
            max_group_loss_share: default_max_share(),
            max_accommodation_loss_share: default_accommodation_share(),
            max_registration_withdrawal_share: default_membership_share(),
            freeze: Vec::new(),
        }
    }
}

impl Safety {
    /// (key, value) of every share, for validation.
    pub fn shares(&self) -> [(&'static str, f64); 6] {
        [
            ("max_deactivate_share", self.max_deactivate_share),
            ("max_update_share", self.max_update_share),
            (
                "max_membership_removal_share",
                self.max_membership_removal_share,
            ),
            ("max_group_loss_share", self.max_group_loss_share),
            (
                "max_accommodation_loss_share",
                self.max_accommodation_loss_share,
            ),
            (
                "max_registration_withdrawal_share",
                self.max_registration_withdrawal_share,
            ),
        ]
    }
}

fn default_max_share() -> f64 {
    0.05
}

fn default_update_share() -> f64 {
    0.25
}

fn default_membership_share() -> f64 {
    0.10
}

fn default_accommodation_share() -> f64 {
    0.02
}

crate::model::names! {
    /// A field that may leave sisync towards the platform.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Field {
        /// Given, middle and family name.
        Name = "name",
        /// E-mail address: opt-in.
        Email = "email",
        Role = "role",
        /// The person's school (BRIN + location) in the extension schema.
        Org = "org",
        /// Extra time, font scale, screen reader.
        Accommodations = "accommodations",
        /// Class membership (SCIM Groups / memberships.csv).
        Groups = "groups",
        /// The BSN: only with `privacy.allow_bsn = true`.
        Bsn = "bsn",
        /// Exam sittings and registrations (OKE offerings/associations).
        Registrations = "registrations",
        /// Personal-needs codes and extra time in minutes (OKE).
        #[serde(rename = "personal_needs")]
        PersonalNeeds = "personal_needs",
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Privacy {
    #[serde(default = "default_fields")]
    pub fields: Vec<Field>,
    /// Org sourcedIds or identifiers (BRIN / BRIN+location) covered by the
    /// processing agreement. Empty: all orgs in the source.
    #[serde(default, alias = "scope_brins")]
    pub scope_orgs: Vec<String>,
    /// The platform sees an HMAC-SHA256 pseudonym of the SIS id instead of
    /// the id (externalId, userName with `user_name = "sourced-id"`).
    #[serde(default)]
    pub pseudonymize_ids: bool,
    /// The pseudonym key: `env:NAME` (inline refused) or a file.
    pub pseudonym_key: Option<String>,
    pub pseudonym_key_file: Option<PathBuf>,
    /// Which result values may go to the SIS gradebook.
    #[serde(default = "default_result_fields")]
    pub result_fields: Vec<ResultField>,
    /// A person's ECK iD from the SIS, when present, is passed through as
    /// their platform id (externalId) as-is.
    #[serde(default)]
    pub use_eck_id: bool,
    /// BSN (burgerservicenummer) may be processed: the OneRoster, IMS and
    /// UWLR/EDEXML sources then read it (11-test checked) and it is sent
    /// only where `"bsn"` is in `fields`; never stored. `check-config`
    /// warns when this is set.
    #[serde(default)]
    pub allow_bsn: bool,
    /// Persons absent from the SIS (deactivated) longer than this many days
    /// are purged by `sisync privacy purge` (the daemon runs it daily).
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// Audit entries older than this many days lose their subject id (the
    /// hash chain stays verifiable).
    #[serde(default = "default_retention_days")]
    pub audit_retention_days: u32,
    /// `sisync report results` shows groups of at least this many
    /// candidates; smaller groups are merged into "other".
    #[serde(default = "default_min_group_size")]
    pub min_group_size: usize,
    /// Folders sisync delivered (csv-drop, gradebook CSV) and result files
    /// it processed (`done/`, `failed/`) are removed by the purge after
    /// this many days.
    #[serde(default = "default_keep_deliveries")]
    pub keep_deliveries: u32,
}

fn default_keep_deliveries() -> u32 {
    30
}

/// A result value that may go to the SIS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultField {
    Score,
    /// The grade (textScore), or pass/fail when only PASSED is known.
    Grade,
    Passed,
    MaxScore,
}

fn default_result_fields() -> Vec<ResultField> {
    vec![
        ResultField::Score,
        ResultField::Grade,
        ResultField::Passed,
        ResultField::MaxScore,
    ]
}

fn default_retention_days() -> u32 {
    730
}

fn default_min_group_size() -> usize {
    10
}

impl Default for Privacy {
    fn default() -> Self {
        Privacy {
            fields: default_fields(),
            scope_orgs: Vec::new(),
            pseudonymize_ids: false,
            pseudonym_key: None,
            pseudonym_key_file: None,
            result_fields: default_result_fields(),
            use_eck_id: false,
            allow_bsn: false,
            retention_days: default_retention_days(),
            audit_retention_days: default_retention_days(),
            min_group_size: default_min_group_size(),
            keep_deliveries: default_keep_deliveries(),
        }
    }
}

fn default_fields() -> Vec<Field> {
    vec![
        Field::Name,
        Field::Role,
        Field::Org,
        Field::Accommodations,
        Field::Groups,
    ]
}

/// When `sisync run` syncs (the daemon's scheduler).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// A roster sync this often.
    #[serde(default = "default_roster_every", with = "humantime_serde_compat")]
    pub roster_every: Duration,
    /// Optional daily full roster run (`sync roster --full`) at this local
    /// time, `"HH:MM"`.
    pub full_at: Option<String>,
    /// A results sync this often (when the results sync is configured).
    #[serde(default = "default_results_every", with = "humantime_serde_compat")]
    pub results_every: Duration,
    /// Each run starts up to this much later than due, at random, so that
    /// many institutions do not hit a shared SIS or platform at once.
    #[serde(default = "default_jitter", with = "humantime_serde_compat")]
    pub jitter: Duration,
    /// On SIGTERM, how long the current run may take to finish its batch.
    #[serde(default = "default_shutdown_timeout", with = "humantime_serde_compat")]
    pub shutdown_timeout: Duration,
    /// `sisync reconcile` (report only, never `--fix`) this often; off
    /// unless set. SCIM platforms only.
    #[serde(default, with = "humantime_serde_opt")]
    pub reconcile_every: Option<Duration>,
}

mod humantime_serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| {
            humantime::parse_duration(&s).map_err(|e| {
                serde::de::Error::custom(format!(
                    "`{s}` is not a duration ({e}); write e.g. \"24h\""
                ))
            })
        })
        .transpose()
    }
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            roster_every: default_roster_every(),
            full_at: None,
            results_every: default_results_every(),
            jitter: default_jitter(),
            shutdown_timeout: default_shutdown_timeout(),
            reconcile_every: None,
        }
    }
}

impl Schedule {
    /// `full_at` as a time of day (validated when the config is loaded).
    pub fn full_at_time(&self) -> Option<chrono::NaiveTime> {
        self.full_at.as_deref().and_then(parse_time_of_day)
    }
}

fn parse_time_of_day(s: &str) -> Option<chrono::NaiveTime> {
    chrono::NaiveTime::parse_from_str(s.trim(), "%H:%M").ok()
}

fn default_roster_every() -> Duration {
    Duration::from_secs(3600)
}
fn default_results_every() -> Duration {
    Duration::from_secs(300)
}
fn default_jitter() -> Duration {
    Duration::from_secs(60)
}
fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(60)
}

/// The daemon's admin HTTP endpoint (health, metrics, status page).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// `host:port`; `"off"` disables the endpoint.
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    /// Optional bearer token for `/metrics` and the status page:
    /// `env:NAME`; inline tokens are refused.
    pub token: Option<String>,
    /// File holding that token (looked up in `$CREDENTIALS_DIRECTORY`
    /// first when relative).
    pub token_file: Option<PathBuf>,
    /// Serve `/metrics` and the status page on a non-loopback address
    /// without a token (refused otherwise).
    #[serde(default)]
    pub allow_unauthenticated: bool,
    /// `/readyz` fails once a kind of run has been failing for longer than
    /// this.
    #[serde(
        default = "default_ready_max_failing_age",
        with = "humantime_serde_compat"
    )]
    pub ready_max_failing_age: Duration,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            listen: default_admin_listen(),
            token: None,
            token_file: None,
            allow_unauthenticated: false,
            ready_max_failing_age: default_ready_max_failing_age(),
        }
    }
}

impl Admin {
    /// The address to bind, or None when the endpoint is off.
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        if self.listen.trim() == "off" {
            return None;
        }
        self.listen.trim().parse().ok()
    }
}

fn default_admin_listen() -> String {
    "127.0.0.1:9187".into()
}
fn default_ready_max_failing_age() -> Duration {
    Duration::from_secs(3 * 3600)
}

pub(crate) mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!("`{s}` is not a duration ({e}); write e.g. \"30s\""))
        })
    }
}

/// A configuration problem: where it is and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// serde's error about `file`, at the line of its span, or of the key
    /// it names inside `within` (a connector section, whose keys serde
    /// reads without spans).
    fn from_serde(
        file: &Path,
        text: &str,
        e: &toml::de::Error,
        within: Option<&Range<usize>>,
    ) -> Self {
        let unknown = e
            .message()
            .strip_prefix("unknown field `")
            .and_then(|m| m.split_once('`'))
            .map(|(k, _)| k);
        let span = e.span().or_else(|| within.cloned());
        let span = match (span, unknown) {
            (Some(s), Some(k)) => spans::key_inside(text, &s, k).or(Some(s)),
            (s, _) => s,
        };
        ConfigError {
            file: file.to_path_buf(),
            line: span.map(|s| line_of(text, s.start)),
            key: None,
            message: e.message().trim().to_string(),
        }
    }
}

/// A parsed, validated config with the place it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub file: PathBuf,
    text: String,
}

impl Loaded {
    /// Read and validate a config file; `kinds` are the connectors that
    /// read the connector sections (`connector::kinds()`).
    pub fn from_file(path: &Path, kinds: &Kinds) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: None,
            message: format!("cannot read config ({e}); pass --config PATH or set SISYNC_CONFIG"),
        })?;
        Loaded::from_str(path, text, kinds)
    }

    /// Parse and validate config text that claims to come from `path`.
    pub fn from_str(path: &Path, text: String, kinds: &Kinds) -> Result<Loaded, ConfigError> {
        let config: Config =
            toml::from_str(&text).map_err(|e| ConfigError::from_serde(path, &text, &e, None))?;
        let mut loaded = Loaded {
            config,
            file: path.to_path_buf(),
            text,
        };
        loaded.build_sections(kinds)?;
        loaded.validate()?;
        Ok(loaded)
    }

    /// A serde error of a connector section, placed in the text: at the
    /// key `path` (inside `section`) names when it is written there, else
    /// at the key an unknown-field message names, else at the section.
    pub(crate) fn section_error(
        &self,
        section: &str,
        path: &str,
        e: &toml::de::Error,
        span: &Range<usize>,
    ) -> ConfigError {
        let unknown = e.message().starts_with("unknown field");
        let (parent, key) = match path.rsplit_once('.') {
            Some((p, k)) => (format!("{section}.{p}"), k),
            None => (section.to_string(), path),
        };
        // a list element (`offerings[2]`) is placed at its list
        let key = key.split_once('[').map_or(key, |(k, _)| k);
        let known = !unknown && !path.is_empty() && !path.contains('?');
        if let Some(at) = known
            .then(|| spans::locate_exact(&self.text, &parent, key))
            .flatten()
        {
            return ConfigError {
                file: self.file.clone(),
                line: Some(line_of(&self.text, at.start)),
                key: Some(format!("{parent}.{key}")),
                message: e.message().trim().to_string(),
            };
        }
        ConfigError::from_serde(&self.file, &self.text, e, Some(span))
    }

    /// Each connector section read by its kind's connector, and every
    /// relative path made absolute against the config file's folder.
    fn build_sections(&mut self, kinds: &Kinds) -> Result<(), ConfigError> {
        let dir = self.dir();
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = normalize(&dir.join(&*p));
            }
        };
        let mut source = self.config.source.clone();
        source.build(self, "source", &kinds.source, &abs)?;
        self.config.source = source;
        let mut platform = self.config.platform.clone();
        platform.build(self, "platform", &kinds.platform, &abs)?;
        self.config.platform = platform;
        if let Some(r) = &self.config.results {
            let (mut rs, mut rk) = (r.source.clone(), r.sink.clone());
            rs.build(self, "results.source", &kinds.result_source, &abs)?;
            rk.build(self, "results.sink", &kinds.result_sink, &abs)?;
            if let Some(r) = &mut self.config.results {
                (r.source, r.sink) = (rs, rk);
            }
        }
        abs(&mut self.config.state.path);
        if let Some(a) = &mut self.config.audit.anchor_file {
            abs(a);
        }
        Ok(())
    }

    /// The connector sections with their place: `source`, `platform`,
    /// `results.source`, `results.sink`.
    pub fn sections(&self) -> Vec<(&'static str, &Section)> {
        let c = &self.config;
        let mut out = vec![("source", &c.source), ("platform", &c.platform)];
        if let Some(r) = &c.results {
            out.push(("results.source", &r.source));
            out.push(("results.sink", &r.sink));
        }
        out
    }

    fn dir(&self) -> PathBuf {
        self.file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// An error about `section.key`, located in the file.
    pub fn error(&self, section: &str, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: spans::locate(&self.text, section, key).map(|s| line_of(&self.text, s.start)),
            key: Some(format!("{section}.{key}")),
            message: message.into(),
        }
    }

    /// A connector that needs `field` in `privacy.fields`: else the error,
    /// at that key, says why.
    pub fn needs_field(&self, field: Field, why: &str) -> Result<(), ConfigError> {
        if self.config.privacy.fields.contains(&field) {
            Ok(())
        } else {
            Err(self.error("privacy", "fields", why))
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let c = &self.config;
        if c.privacy.fields.contains(&Field::Bsn) && !c.privacy.allow_bsn {
            return Err(self.error(
                "privacy",
                "fields",
                "lists \"bsn\" but privacy.allow_bsn is false; remove \"bsn\", or set allow_bsn = true only where the law requires the BSN for this processing",
            ));
        }
        if c.institution.brin.trim().is_empty() {
            return Err(self.error("institution", "brin", "must not be empty"));
        }
        for (i, f) in c.safety.freeze.iter().enumerate() {
            if f.until < f.from {
                return Err(self.error(
                    &format!("safety.freeze[{i}]"),
                    "until",
                    format!(
                        "{} is before from = {}; a window runs from its first to its last day",
                        f.until, f.from
                    ),
                ));
            }
        }
        for (key, share) in c.safety.shares() {
            if !(0.0..=1.0).contains(&share) || share.is_nan() {
                return Err(self.error(
                    "safety",
                    key,
                    format!("{share} is not a share; use a number from 0.0 to 1.0 (0.05 = 5 %)"),
                ));
            }
        }
        if let Some(roles) = c.source.settings().role_map() {
            for (from, to) in roles {
                if Role::parse(to).is_none() {
                    return Err(self.error(
                        "source.role_map",
                        from,
                        format!(
                            "`{to}` is not a sisync role; use student, teacher, assessor, proctor or staff"
                        ),
                    ));
                }
            }
        }
        self.validate_hygiene()?;
        for (section, s) in self.sections() {
            if let Some((e, needs)) = s.settings().endpoint() {
                self.check_endpoint(section, e, needs)?;
            }
            s.settings().validate(self, section)?;
        }
        self.validate_daemon()?;
        self.validate_alerts()?;
        self.validate_results()?;
        if c.privacy.pseudonymize_ids {
            let p = &c.privacy;
            self.check_secret(
                "privacy",
                ("pseudonym_key", &p.pseudonym_key),
                ("pseudonym_key_file", &p.pseudonym_key_file),
            )?;
        }
        if c.platform.settings().environment() == Environment::Acceptance
            && c.institution.environment == Environment::Production
        {
            return Err(self.error(
                "platform",
                "environment",
                "the platform is an acceptance platform but institution.environment = \"production\": real names and e-mail addresses would go to it; set institution.environment = \"acceptance\" (sisync then sends synthetic names) or point platform at the production platform",
            ));
        }
        if !c.privacy.result_fields.iter().any(|f| {
            matches!(
                f,
                ResultField::Score | ResultField::Grade | ResultField::Passed
            )
        }) {
            return Err(self.error(
                "privacy",
                "result_fields",
                "allows none of score, grade, passed: results would carry nothing; add at least one",
            ));
        }
        if c.privacy.min_group_size == 0 {
            return Err(self.error("privacy", "min_group_size", "must be at least 1"));
        }
        Ok(())
    }

    /// The pseudonym key (`privacy.pseudonym_key_file` or `env:NAME`); at
    /// least 16 bytes.
    pub fn pseudonym_key(&self) -> Result<Secret, ConfigError> {
        let p = &self.config.privacy;
        let key = self.secret_value(
            "privacy",
            ("pseudonym_key", &p.pseudonym_key),
            ("pseudonym_key_file", &p.pseudonym_key_file),
        )?;
        if key.expose().len() < 16 {
            return Err(self.error(
                "privacy",
                if p.pseudonym_key_file.is_some() {
                    "pseudonym_key_file"
                } else {
                    "pseudonym_key"
                },
                "the key is shorter than 16 bytes; generate one with `openssl rand -hex 32`",
            ));
        }
        Ok(key)
    }

    fn validate_daemon(&self) -> Result<(), ConfigError> {
        let s = &self.config.schedule;
        for (key, d) in [
            ("roster_every", s.roster_every),
            ("results_every", s.results_every),
        ] {
            if d < Duration::from_millis(100) {
                return Err(self.error(
                    "schedule",
                    key,
                    "must be at least 100ms; write e.g. \"1h\" or \"15m\"",
                ));
            }
        }
        if let Some(t) = &s.full_at {
            if parse_time_of_day(t).is_none() {
                return Err(self.error(
                    "schedule",
                    "full_at",
                    format!("`{t}` is not a time of day; write e.g. \"03:00\" (local time, 24 h)"),
                ));
            }
        }
        let a = &self.config.admin;
        if a.listen.trim() != "off" && a.listen_addr().is_none() {
            return Err(self.error(
                "admin",
                "listen",
                format!(
                    "`{}` is not an address; write e.g. \"127.0.0.1:9187\" or \"off\"",
                    a.listen
                ),
            ));
        }
        let token = a.token.is_some() || a.token_file.is_some();
        if token {
            self.check_secret("admin", ("token", &a.token), ("token_file", &a.token_file))?;
        }
        if let Some(addr) = a.listen_addr() {
            if !token && !addr.ip().is_loopback() && !a.allow_unauthenticated {
                return Err(self.error(
                    "admin",
                    "listen",
                    format!(
                        "`{}` serves /metrics and the status page to the network without a token; set admin.token_file, listen on 127.0.0.1, or set admin.allow_unauthenticated = true",
                        a.listen
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The admin endpoint's bearer token, when one is configured.
    pub fn admin_token(&self) -> Result<Option<Secret>, ConfigError> {
        let a = &self.config.admin;
        if a.token.is_none() && a.token_file.is_none() {
            return Ok(None);
        }
        self.bearer_token("admin", &a.token, &a.token_file)
            .map(Some)
    }

    /// Resolve a bearer token given as `token = "env:NAME"` or `token_file`
    /// in `section`.
    pub fn bearer_token(
        &self,
        section: &str,
        token: &Option<String>,
        token_file: &Option<PathBuf>,
    ) -> Result<Secret, ConfigError> {
        self.secret_value(section, ("token", token), ("token_file", token_file))
    }

    /// Check how a secret is given, without reading it: exactly one of
    /// `<key> = "env:NAME"` and `<file_key> = "/path"`, never inline.
    pub(crate) fn check_secret(
        &self,
        section: &str,
        (key, value): (&str, &Option<String>),
        (file_key, file): (&str, &Option<PathBuf>),
    ) -> Result<(), ConfigError> {
        match (value, file) {
            (Some(_), Some(_)) => Err(self.error(
                section,
                key,
                format!("set either {key} = \"env:NAME\" or {file_key}, not both"),
            )),
            (None, None) => Err(self.error(
                section,
                file_key,
                format!("missing; set {file_key} = \"/path\" or {key} = \"env:NAME\""),
            )),
            (Some(t), None) if !t.starts_with("env:") => Err(self.error(
                section,
                key,
                format!("inline secrets are not allowed; use {key} = \"env:NAME\" or {file_key}"),
            )),
            _ => Ok(()),
        }
    }

    /// A secret given as `<key> = "env:NAME"` or `<file_key> = "/path"`,
    /// read (only when a run builds what needs it).
    pub(crate) fn secret_value(
        &self,
        section: &str,
        (key, value): (&str, &Option<String>),
        (file_key, file): (&str, &Option<PathBuf>),
    ) -> Result<Secret, ConfigError> {
        self.check_secret(section, (key, value), (file_key, file))?;
        let env = value.as_deref().and_then(|t| t.strip_prefix("env:"));
        if let Some(name) = env {
            return match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim())),
                _ => Err(self.error(
                    section,
                    key,
                    format!(
                        "environment variable {name} is not set or empty; export it (or, under systemd, set it in the unit)"
                    ),
                )),
            };
        }
        let path = self.secret_path(file.as_deref().unwrap_or(Path::new("")));
        match std::fs::read_to_string(&path) {
            Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim())),
            Ok(_) => Err(self.error(
                section,
                file_key,
                format!("{} is empty; put the secret in it", path.display()),
            )),
            Err(e) => Err(self.error(
                section,
                file_key,
                format!(
                    "cannot read {} ({e}); create it, or run as the user that can read it (under systemd: LoadCredential=)",
                    path.display()
                ),
            )),
        }
    }

    /// A secret file named in the config: relative paths are looked up
    /// in `$CREDENTIALS_DIRECTORY` first, then next to the config.
    pub(crate) fn secret_path(&self, f: &Path) -> PathBuf {
        if f.is_absolute() {
            return f.to_path_buf();
        }
        if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            let p = Path::new(&dir).join(f);
            if p.exists() {
                return p;
            }
            // a whole folder loaded by `LoadCredential=sisync:/dir`
            // (sisync@.service) arrives as `sisync_<file name>`
            let mut name = std::ffi::OsString::from("sisync_");
            name.push(f.as_os_str());
            let p = Path::new(&dir).join(name);
            if f.components().count() == 1 && p.exists() {
                return p;
            }
        }
        self.dir().join(f)
    }
}

/// Drop `.` and fold `dir/..` without touching the file system, so that
/// messages show `state/sisync.db`, not `config/../state/sisync.db`.
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                _ => out.push(".."),
            },
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names `as_str` gives (check-config, status, the processing
    /// register) are the ones the config is written in.
    #[test]
    fn names_are_the_config_names() {
        fn check<T>(all: &[T], name: fn(T) -> &'static str)
        where
            T: Copy + PartialEq + std::fmt::Debug + serde::de::DeserializeOwned,
        {
            for &v in all {
                assert_eq!(serde_json::from_value::<T>(name(v).into()).unwrap(), v);
            }
        }
        check(Environment::ALL, Environment::as_str);
        check(UserNameFrom::ALL, UserNameFrom::as_str);
        check(FreezeMode::ALL, FreezeMode::as_str);
        check(Field::ALL, Field::as_str);
    }

    fn parse(text: &str) -> Result<Loaded, ConfigError> {
        crate::connector::load_str(Path::new("/etc/sisync/sisync.toml"), text.to_string())
    }

    const BASE: &str = r#"
[institution]
name = "Voorbeeld College"
brin = "99AA"

[source]
kind = "oneroster-csv"
path = "export"

[platform]
kind = "csv-drop"
path = "/tmp/drop"
"#;

    #[test]
    fn minimal_config_gets_defaults_and_absolute_paths() {
        let l = parse(BASE).unwrap();
        assert_eq!(l.config.safety.max_deactivate_share, 0.05);
        assert!(!l.config.privacy.fields.contains(&Field::Email));
        use crate::connector::source::oneroster::config::OneRosterCsvSource;
        let s = l.config.source.get::<OneRosterCsvSource>().expect("csv");
        assert_eq!(s.path, PathBuf::from("/etc/sisync/export"));
    }

    #[test]
    fn safety_limits_and_freeze_windows() {
        let text = format!(
            "{BASE}\n[safety]\nmax_update_share = 0.5\n\n[[safety.freeze]]\nfrom = \"2027-05-11\"\nuntil = \"2027-05-29\"\nmode = \"adds-only\"\nreason = \"centrale examens\"\n\n[[safety.freeze]]\nfrom = \"2027-05-20\"\nuntil = \"2027-05-20\"\nmode = \"paused\"\n"
        );
        let l = parse(&text).unwrap();
        let s = &l.config.safety;
        assert_eq!(
            (s.max_update_share, s.max_membership_removal_share),
            (0.5, 0.10)
        );
        let day = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
        assert_eq!(s.freeze_on(day("2027-05-10")), None);
        assert_eq!(
            s.freeze_on(day("2027-05-11")).unwrap().mode,
            FreezeMode::AddsOnly
        );
        assert_eq!(
            s.freeze_on(day("2027-05-29")).unwrap().reason,
            "centrale examens"
        );
        assert_eq!(
            s.freeze_on(day("2027-05-20")).unwrap().mode,
            FreezeMode::Paused,
            "the strictest wins"
        );
        assert_eq!(s.freeze_on(day("2027-05-30")), None);
        let e =
            parse(&text.replace("until = \"2027-05-29\"", "until = \"2027-05-01\"")).unwrap_err();
        assert!(e.message.contains("is before from"), "{e}");
        let e =
            parse(&text.replace("max_update_share = 0.5", "max_update_share = 25")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("safety.max_update_share"));
        let e = parse(&text.replace("\"adds-only\"", "\"frozen\"")).unwrap_err();
        assert!(e.message.contains("adds-only"), "{e}");
    }

    #[test]
    fn ims_enterprise_source_resolves_path_and_checks_role_map() {
        let text = BASE.replace(
            "kind = \"oneroster-csv\"\npath = \"export\"",
            "kind = \"ims-enterprise\"\npath = \"../feed/roster.xml\"\nrole_map = { \"08\" = \"assessor\", staff = \"proctor\" }",
        );
        let l = parse(&text).unwrap();
        use crate::connector::source::ims_enterprise::config::ImsEnterpriseSource;
        let s = l.config.source.get::<ImsEnterpriseSource>().expect("ims");
        assert_eq!(s.path, PathBuf::from("/etc/feed/roster.xml"));
        assert!(!s.qualify_ids);
        assert_eq!(s.role_map["08"], "assessor");
        assert_eq!(s.accommodations.extra_time_percent, "extraTimePercent");

        let bad = text.replace("\"assessor\"", "\"examiner\"");
        let e = parse(&bad).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("source.role_map.08"), "{e}");
        assert_eq!(e.line, Some(9), "the value inside the inline table: {e}");
        let unknown = text.replace("role_map", "qualify_ids = true\nrole_mapp");
        let e = parse(&unknown).unwrap_err();
        assert!(e.message.contains("unknown field `role_mapp`"), "{e}");
    }

    #[test]
    fn an_unknown_kind_names_its_line_and_the_registered_kinds() {
        let text = BASE.replace("kind = \"oneroster-csv\"", "kind = \"magister\"");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("source.kind"), "{e}");
        assert_eq!(e.line, Some(7), "{e}");
        assert!(e.message.contains("unknown kind `magister`"), "{e}");
        assert!(
            e.message.contains("`uwlr`") && e.message.contains("`edexml`"),
            "{e}"
        );
        let text = BASE.replace("kind = \"csv-drop\"\n", "");
        let e = parse(&text).unwrap_err();
        assert!(e.message.contains("missing field `kind`"), "{e}");
        assert_eq!(e.line, Some(10), "at [platform]: {e}");
    }

    #[test]
    fn a_wrong_value_in_a_connector_section_names_its_key_and_line() {
        let text = BASE.replace(
            "path = \"export\"",
            "path = \"export\"\nrole_map = { aide = 5 }",
        );
        let e = parse(&text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("source.role_map.aide"), "{e}");
        assert_eq!(e.line, Some(9), "{e}");
        assert!(e.message.contains("invalid type: integer `5`"), "{e}");
        let text = BASE.replace(
            "path = \"/tmp/drop\"",
            "path = \"/tmp/drop\"\nformula_guard = \"yes\"",
        );
        let e = parse(&text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("platform.formula_guard"), "{e}");
        assert_eq!(e.line, Some(13), "{e}");
    }

    #[test]
    fn every_role_registers_each_kind_once() {
        let k = crate::connector::kinds();
        for (role, kinds) in [
            ("source", &k.source),
            ("platform", &k.platform),
            ("results.source", &k.result_source),
            ("results.sink", &k.result_sink),
        ] {
            let mut names: Vec<&str> = kinds.iter().map(|k| k.name).collect();
            names.sort_unstable();
            let n = names.len();
            names.dedup();
            assert_eq!(names.len(), n, "{role}: a kind registered twice");
        }
        assert_eq!(k.source.len(), 6);
        assert_eq!(k.platform.len(), 4);
    }

    #[test]
    fn unknown_key_names_line() {
        let text = BASE.replace("brin = \"99AA\"", "brin = \"99AA\"\nbrn = \"x\"");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("unknown field `brn`"), "{e}");
    }

    #[test]
    fn unknown_key_in_tagged_section_is_refused() {
        let text = BASE.replace("path = \"/tmp/drop\"", "path = \"/tmp/drop\"\nurl = \"x\"");
        let e = parse(&text).unwrap_err();
        assert!(e.message.contains("unknown field `url`"), "{e}");
    }

    #[test]
    fn inline_token_is_refused_with_key_and_line() {
        let text = BASE.replace(
            "kind = \"csv-drop\"\npath = \"/tmp/drop\"",
            "kind = \"scim\"\nbase_url = \"https://p.example/scim/v2\"\ntoken = \"abc123\"",
        );
        let e = parse(&text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("platform.token"));
        assert_eq!(e.line, Some(13), "{e}");
        assert!(!e.to_string().contains("abc123"), "secret leaked: {e}");
    }

    #[test]
    fn env_token_resolves() {
        // SAFETY: test-only env var with a unique name.
        unsafe { std::env::set_var("SISYNC_TEST_TOKEN_CFG", "s3cret\n") };
        let text = BASE.replace(
            "kind = \"csv-drop\"\npath = \"/tmp/drop\"",
            "kind = \"scim\"\nbase_url = \"https://p.example/scim/v2\"\ntoken = \"env:SISYNC_TEST_TOKEN_CFG\"",
        );
        let l = parse(&text).unwrap();
        use crate::connector::platform::scim::config::ScimPlatform;
        let p = l.config.platform.get::<ScimPlatform>().expect("scim");
        let Ok(crate::http::Auth::Bearer(t)) =
            l.endpoint_auth("platform", &p.endpoint, None, &Default::default())
        else {
            panic!("not a bearer token")
        };
        assert_eq!(t.expose(), "s3cret");
        assert_eq!(format!("{t:?}"), "Secret(***)");
    }

    #[test]
    fn relative_paths_are_folded() {
        assert_eq!(
            normalize(Path::new("config/../state/x.db")),
            PathBuf::from("state/x.db")
        );
        assert_eq!(normalize(Path::new("../a/./b")), PathBuf::from("../a/b"));
        assert_eq!(
            normalize(Path::new("/etc/sisync/../x")),
            PathBuf::from("/etc/x")
        );
    }

    #[test]
    fn bad_share_is_refused() {
        let text = format!("{BASE}\n[safety]\nmax_deactivate_share = 5\n");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("safety.max_deactivate_share"));
        assert_eq!(e.line, Some(15));
    }

    #[test]
    fn schedule_and_admin_defaults_and_errors() {
        let l = parse(BASE).unwrap();
        let s = &l.config.schedule;
        assert_eq!(s.roster_every, Duration::from_secs(3600));
        assert_eq!(s.results_every, Duration::from_secs(300));
        assert_eq!(s.full_at_time(), None);
        assert_eq!(
            l.config.admin.listen_addr(),
            Some("127.0.0.1:9187".parse().unwrap())
        );
        assert!(l.admin_token().unwrap().is_none());

        let text = format!(
            "{BASE}\n[schedule]\nroster_every = \"15m\"\nfull_at = \"03:30\"\njitter = \"0s\"\n\n[admin]\nlisten = \"off\"\n"
        );
        let l = parse(&text).unwrap();
        assert_eq!(l.config.schedule.roster_every, Duration::from_secs(900));
        assert_eq!(
            l.config.schedule.full_at_time(),
            chrono::NaiveTime::from_hms_opt(3, 30, 0)
        );
        assert_eq!(l.config.admin.listen_addr(), None);

        let e = parse(&text.replace("\"03:30\"", "\"3 in the night\"")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("schedule.full_at"), "{e}");
        assert_eq!(e.line, Some(16), "{e}");
        let e = parse(&text.replace("\"15m\"", "\"soon\"")).unwrap_err();
        assert_eq!(e.line, Some(15), "{e}");
        assert!(e.message.contains("not a duration"), "{e}");
        let e = parse(&text.replace("listen = \"off\"", "listen = \"localhost\"")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("admin.listen"), "{e}");
        let e = parse(&text.replace("listen = \"off\"", "token = \"hunter2\"")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("admin.token"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = parse(&text.replace("jitter", "jiter")).unwrap_err();
        assert!(e.message.contains("unknown field `jiter`"), "{e}");
    }

    #[test]
    fn unknown_privacy_field_is_refused() {
        let text = format!("{BASE}\n[privacy]\nfields = [\"name\", \"address\"]\n");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, Some(15), "{e}");
        assert!(e.message.contains("address"), "{e}");
    }

    #[test]
    fn bsn_in_fields_needs_allow_bsn() {
        let text = format!("{BASE}\n[privacy]\nfields = [\"name\", \"bsn\"]\n");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("privacy.fields"), "{e}");
        assert!(e.message.contains("allow_bsn is false"), "{e}");
        let ok = text.replace("[privacy]\n", "[privacy]\nallow_bsn = true\n");
        let c = parse(&ok).unwrap();
        assert!(c.config.privacy.fields.contains(&Field::Bsn));
    }
}
