//! The platform-sink contract and its registry: what the engine, the
//! commands and the metrics ask of a platform, decided once from the
//! config's `platform.kind`.
//!
//! The writes themselves go through the sink shape the platform has
//! (`RecordSink`, `FileSink`, `ExamSink` in `connector/mod.rs`); the engine
//! builds them in `sync::apply_plan`.

use crate::config::{Loaded, Platform};
use crate::connector::source::{BoxFuture, ConnectionReport};

/// How exam planning reaches the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExamShape {
    /// Every sitting becomes a group of its candidates (SCIM, EDEXML).
    Groups,
    /// Sittings and registrations as files beside the users (csv-drop).
    Files,
    /// Sittings and registrations, each registration carrying its person;
    /// no separate users or classes (OKE).
    Registrations,
}

/// A platform of one protocol, described by its config section.
pub trait PlatformSink: Sync {
    /// `platform.kind` as written in the config.
    fn kind(&self) -> &'static str;
    /// One line for `check-config`: where writes go and how (no connection).
    fn check(&self) -> String;
    /// The platform in the processing register (`privacy register`).
    fn register_line(&self) -> String;
    /// The platform in `status --json`: kind and where, no secrets.
    fn status_json(&self) -> serde_json::Value;
    /// How exam planning is shaped for this platform.
    fn exam_shape(&self) -> ExamShape;
    /// The platform takes the whole roster every time (a file that must
    /// name everyone): the source is then always read in full.
    fn wants_whole_roster(&self) -> bool {
        false
    }
    /// `check-config --connect`: one authenticated request.
    fn test_connection<'a>(&'a self, _loaded: &'a Loaded) -> BoxFuture<'a, ConnectionReport> {
        Box::pin(async { Vec::new() })
    }
}

/// The registry: the platform a config names. One line per protocol.
pub fn platform_sink(platform: &Platform) -> &dyn PlatformSink {
    match platform {
        Platform::Scim(c) => c,
        Platform::CsvDrop(c) => c,
        Platform::Oke(c) => c,
        Platform::EdexmlDrop(c) => c,
    }
}
