//! The roster-source contract and its registry. The engine reads a roster
//! through [`RosterSource`] only; which protocol answers is decided here,
//! once, from the config's `source.kind`.
//!
//! Every source keeps docs/connector-contract.md: bad records are reported
//! with a location and held (never deactivated), completeness is declared
//! per kind, a transport failure fails the whole read before anything is
//! written, and secrets are resolved when a read or a connection test
//! builds the client, never by `describe`/`register_line`/`check`.

pub mod accommodation_keys;
pub mod edexml;
pub mod ims_enterprise;
pub mod oke;
pub mod oneroster;
pub mod uwlr;
pub(crate) mod uwlr_roster;

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::config::{Loaded, Section};
use crate::connector::{Registered, register};
use crate::model::Roster;

/// A boxed future, for the async parts of an object-safe contract.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// What `check-config --connect` reports per endpoint: a label ("source
/// link") and one line (latency, authorisation) or the error.
pub type ConnectionReport = Vec<(String, Result<String>)>;
/// What `test_connection` returns.
pub type Testing<'a> = BoxFuture<'a, ConnectionReport>;

/// One `check-config --connect` line: `label`, and what `probe` found
/// followed by how long it took (client set-up and request).
pub(crate) async fn timed(
    label: &str,
    probe: impl std::future::Future<Output = Result<String>>,
) -> ConnectionReport {
    let started = std::time::Instant::now();
    let r = probe
        .await
        .map(|line| format!("{line}, {} ms", started.elapsed().as_millis()));
    vec![(label.to_string(), r)]
}

/// A roster source of one protocol, described by its config section.
pub trait RosterSource: Sync {
    /// One line for `check-config`: what is read and from where. File
    /// sources look at the file (format, size); network sources do not
    /// connect.
    fn check(&self) -> Result<String>;
    /// The source in the processing register (`privacy register`).
    fn register_line(&self) -> String;
    /// The source in `check-config --json`: where, no secrets (the caller
    /// adds its `kind`).
    fn status_json(&self) -> serde_json::Value;
    /// The file or folder read, for a held plan's fingerprint; `None` for
    /// a network source (its plan is fingerprinted by its answers).
    fn file(&self) -> Option<&Path> {
        None
    }
    /// A source that can read changes since the last run: how often a full
    /// read is still due. `None`: every read is a full read.
    fn full_every(&self) -> Option<Duration> {
        None
    }
    /// `check-config --connect`: one authenticated request per endpoint.
    fn test_connection<'a>(&'a self, _loaded: &'a Loaded) -> BoxFuture<'a, ConnectionReport> {
        Box::pin(async { Vec::new() })
    }
    /// Read the roster (blocking; network sources drive their client on
    /// the current runtime). `since` (RFC 3339) asks an incremental source
    /// for changes only.
    fn read(&self, loaded: &Loaded, since: Option<&str>, progress: &dyn Fn(u64)) -> Result<Roster>;
}

/// The registry: every roster source, one line per protocol.
pub(crate) static KINDS: [Registered<dyn RosterSource>; 6] = [
    register!("oneroster-csv" => oneroster::config::OneRosterCsvSource as dyn RosterSource),
    register!("oneroster-rest" => oneroster::config::OneRosterRestSource as dyn RosterSource),
    register!("ims-enterprise" => ims_enterprise::config::ImsEnterpriseSource as dyn RosterSource),
    register!("uwlr" => uwlr::config::UwlrSource as dyn RosterSource),
    register!("edexml" => edexml::config::EdexmlSource as dyn RosterSource),
    register!("oke" => oke::config::OkeSource as dyn RosterSource),
];

/// The roster source a config's `[source]` names.
pub fn roster_source(source: &Section) -> &dyn RosterSource {
    super::registered(&KINDS, source)
}

/// The contract of a roster read from one file or folder (`path`), whose
/// reader has `new(&config)`, `probe()` and `read(progress)`: the same for
/// every file source, so written once.
macro_rules! file_roster_source {
    ($cfg:ty, $reader:ty, $kind:literal, $what:literal) => {
        impl $crate::connector::source::RosterSource for $cfg {
            fn check(&self) -> anyhow::Result<String> {
                let what = <$reader>::new(self).probe()?;
                Ok(format!("{} {} ({what})", $kind, self.path.display()))
            }
            fn register_line(&self) -> String {
                format!("{} {}", $what, self.path.display())
            }
            fn status_json(&self) -> serde_json::Value {
                serde_json::json!({"path": self.path})
            }
            fn file(&self) -> Option<&std::path::Path> {
                Some(&self.path)
            }
            fn read(
                &self,
                _: &$crate::config::Loaded,
                _: Option<&str>,
                progress: &dyn Fn(u64),
            ) -> anyhow::Result<$crate::model::Roster> {
                <$reader>::new(self).read(progress)
            }
        }
    };
}
pub(crate) use file_roster_source;
