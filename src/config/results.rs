//! `[results]`: where exam results come from and which SIS gradebook they
//! go to.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Loaded, Section, humantime_serde_compat};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Results {
    /// `[results.source]`: read by its kind's connector.
    pub source: Section,
    /// `[results.sink]`: written by its kind's connector.
    pub sink: Section,
    /// Which of a candidate's classes an exam's result belongs to.
    #[serde(default)]
    pub class_rules: Vec<ClassRule>,
    /// The class for results no rule places and whose candidate is not in
    /// exactly one class.
    pub default_class: Option<String>,
    /// A result that still cannot be delivered this long after it was read
    /// is marked failed (retried by `sync results --retry-failed`).
    #[serde(default = "default_give_up", with = "humantime_serde_compat")]
    pub give_up_after: Duration,
}

fn default_give_up() -> Duration {
    Duration::from_secs(3 * 24 * 3600)
}

/// `exam = "EX-NED-*"` → the candidate's class matching `class = "cls-ne-*"`.
/// A trailing `*` matches any rest; without one the id must be equal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassRule {
    pub exam: String,
    pub class: String,
}

/// A pattern with an optional trailing `*`.
pub fn pattern_matches(pattern: &str, id: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => id.starts_with(prefix),
        None => pattern == id,
    }
}

/// What happens to a file once its results are in the outbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AfterRead {
    /// Move to `done/` (or `failed/` when it cannot be read).
    #[default]
    Move,
    /// Leave in place; sisync remembers its SHA-256 and does not read the
    /// same bytes again.
    Keep,
}

/// Upload tools write in bursts; a few seconds of quiet means done.
pub fn default_settle() -> Duration {
    Duration::from_secs(5)
}

impl Loaded {
    pub(super) fn validate_results(&self) -> Result<(), ConfigError> {
        let Some(r) = &self.config.results else {
            return Ok(());
        };
        for (i, rule) in r.class_rules.iter().enumerate() {
            if rule.exam.is_empty() || rule.class.is_empty() {
                return Err(self.error(
                    "results",
                    "class_rules",
                    format!("rule {} needs both exam and class patterns", i + 1),
                ));
            }
        }
        Ok(())
    }
}
