//! The platform-sink contract and its registry: what the engine, the
//! commands and the metrics ask of a platform, decided once from the
//! config's `platform.kind`.
//!
//! The writes themselves go through the sink shape the platform has
//! (`RecordSink`, `FileSink`, `ExamSink` in `connector/mod.rs`); the engine
//! builds them in `sync::apply_plan`.

pub mod csv_drop;
pub mod edexml_drop;
pub mod oke;
pub mod scim;

use anyhow::Result;

use crate::config::{Loaded, Section, UserNameFrom};
use crate::connector::platform::edexml_drop::Snapshot;
use crate::connector::source::{BoxFuture, ConnectionReport};
use crate::connector::{ExamSink, FileSink, PlatformSnapshot, RecordSink, SinkError};
use crate::connector::{Registered, register};

/// A platform connected for one run, in the shape its writes take.
pub enum Writer<'a> {
    /// One record at a time (SCIM), `concurrency` in flight; a run stops
    /// after `max_consecutive_failures` failed writes in a row.
    Records {
        sink: Box<dyn RecordSink + 'a>,
        concurrency: usize,
        max_consecutive_failures: usize,
    },
    /// One delivery of files per run (csv-drop, edexml-drop).
    Files(Box<dyn FileSink + 'a>),
    /// Exam sittings and registrations one at a time (OKE).
    Exams {
        sink: Box<dyn ExamSink + 'a>,
        max_consecutive_failures: usize,
    },
}

/// The boxed, connected writer of a run.
pub type Connecting<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Writer<'a>>> + 'a>>;

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
    /// One line for `check-config`: where writes go and how (no connection).
    fn check(&self) -> String;
    /// The platform in the processing register (`privacy register`).
    fn register_line(&self) -> String;
    /// The platform in `check-config --json`: where, no secrets (the
    /// caller adds its `kind`).
    fn status_json(&self) -> serde_json::Value;
    /// How exam planning is shaped for this platform.
    fn exam_shape(&self) -> ExamShape;
    /// The platform takes the whole roster every time (a file that must
    /// name everyone): the source is then always read in full.
    fn wants_whole_roster(&self) -> bool {
        false
    }
    /// Connect for a run with changes: secrets and TLS files are read now,
    /// capabilities checked before the first write. `whole` is the whole
    /// roster for a platform that [`wants_whole_roster`](Self::wants_whole_roster)
    /// (`None` for a held plan, which carries only changes).
    fn writer<'a>(
        &'a self,
        loaded: &'a Loaded,
        whole: Option<Result<Snapshot, String>>,
    ) -> Connecting<'a>;
    /// `check-config --connect`: one authenticated request.
    fn test_connection<'a>(&'a self, _loaded: &'a Loaded) -> BoxFuture<'a, ConnectionReport> {
        Box::pin(async { Vec::new() })
    }
    /// The folder sisync delivers files into (its folders start with
    /// `sisync-`), which erasure and retention search; `None` when the
    /// platform keeps nothing on this machine.
    fn delivery_folder(&self) -> Option<&std::path::Path> {
        None
    }
    /// Where the platform's user name comes from, and the suffix added to
    /// it (a platform without user names: the default, unused).
    fn user_name(&self) -> (UserNameFrom, Option<String>) {
        Default::default()
    }
    /// `sisync reconcile` (and the daemon's `reconcile_every`) can read
    /// this platform back.
    fn reconciles(&self) -> bool {
        false
    }
    /// `sisync reconcile`: connect, and read back what the platform holds.
    fn reconciler<'a>(&'a self, _loaded: &'a Loaded) -> BoxFuture<'a, Result<Box<dyn ReadBack>>> {
        Box::pin(async move {
            anyhow::bail!(
                "reconcile reads the platform back, and a file-drop platform cannot be read: nothing to compare. Check the files the platform imported instead"
            )
        })
    }
    /// `privacy erase --dry-run`: what erasing one person (`id` as the
    /// platform knows it, `platform_id` its own id if any) does here.
    fn erase_preview(&self, platform_id: Option<&str>, id: &str) -> String;
    /// `privacy erase`: erase one person at the platform. It runs before
    /// anything local is dropped, so a failure changes nothing.
    fn erase<'a>(
        &'a self,
        loaded: &'a Loaded,
        platform_id: Option<&'a str>,
        id: &'a str,
    ) -> Erasing<'a>;
}

/// A platform that delivers folders of files on this machine (csv-drop,
/// edexml-drop). Such a platform is a [`PlatformSink`] through the one
/// impl below: described by [`FileDrop::describe`], connected by its own
/// [`FileDrop::connect`]; an erasure is an `erasures.csv` drop for the
/// platform's importer (a file cannot be asked to delete).
pub trait FileDrop: Sync {
    fn describe(&self) -> DropPlatform<'_>;
    /// [`PlatformSink::writer`] for this platform.
    fn connect<'a>(
        &'a self,
        loaded: &'a Loaded,
        whole: Option<Result<Snapshot, String>>,
    ) -> Connecting<'a>;
}

/// What sets one file-drop platform apart.
pub struct DropPlatform<'a> {
    /// The folder deliveries go into.
    pub path: &'a std::path::Path,
    /// Its name in `check-config` (`csv-drop`, `edexml-drop (EDEXML 2.1)`).
    pub name: &'static str,
    /// Its name in the processing register (`file drop`, `EDEXML file drop`).
    pub register: &'static str,
    pub exam_shape: ExamShape,
    /// See [`PlatformSink::wants_whole_roster`].
    pub whole_roster: bool,
    /// The formula guard of the `erasures.csv` drop.
    pub formula_guard: bool,
    pub group_readable: bool,
}

impl<T: FileDrop> PlatformSink for T {
    fn check(&self) -> String {
        let d = self.describe();
        format!("{} into {}", d.name, d.path.display())
    }
    fn register_line(&self) -> String {
        let d = self.describe();
        format!("exam platform {} {}", d.register, d.path.display())
    }
    fn status_json(&self) -> serde_json::Value {
        serde_json::json!({"path": self.describe().path})
    }
    fn exam_shape(&self) -> ExamShape {
        self.describe().exam_shape
    }
    fn wants_whole_roster(&self) -> bool {
        self.describe().whole_roster
    }
    fn writer<'a>(
        &'a self,
        loaded: &'a Loaded,
        whole: Option<Result<Snapshot, String>>,
    ) -> Connecting<'a> {
        self.connect(loaded, whole)
    }
    fn delivery_folder(&self) -> Option<&std::path::Path> {
        Some(self.describe().path)
    }
    fn erase_preview(&self, _platform_id: Option<&str>, _id: &str) -> String {
        format!(
            "an erasures.csv drop folder in {} for the platform's importer",
            self.describe().path.display()
        )
    }
    fn erase<'a>(
        &'a self,
        _loaded: &'a Loaded,
        _platform_id: Option<&'a str>,
        id: &'a str,
    ) -> Erasing<'a> {
        Box::pin(async move {
            let d = self.describe();
            super::drop_folder::erase_by_drop(d.path, id, d.formula_guard, d.group_readable)
        })
    }
}

/// The answer of [`PlatformSink::erase`].
pub type Erasing<'a> = BoxFuture<'a, std::result::Result<Erased, EraseError>>;

/// A connected platform that can be read back.
pub trait ReadBack: Send + Sync {
    /// Every user and group the platform holds, in sisync's terms.
    fn read_back(&self) -> BoxFuture<'_, std::result::Result<PlatformSnapshot, SinkError>>;
    /// The platform keeps the tussenvoegsel in the family name.
    fn names_joined(&self) -> bool;
}

/// A person erased at the platform.
pub struct Erased {
    /// Where (a URL or the delivered folder), for the audit entry.
    pub endpoint: String,
    /// A folder just delivered that the sweep of kept files must spare.
    pub delivered: Option<std::path::PathBuf>,
    /// What the admin must still do (a platform without a delete).
    pub note: Option<String>,
}

/// Why an erasure at the platform did not happen.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    /// The platform could not be reached or written (config, network).
    #[error("{0:#}")]
    Unreachable(anyhow::Error),
    /// The platform answered and refused the delete.
    #[error("{0}")]
    Refused(String),
}

/// The registry: every platform, one line per protocol.
pub(crate) static KINDS: [Registered<dyn PlatformSink>; 4] = [
    register!("scim" => scim::config::ScimPlatform as dyn PlatformSink),
    register!("csv-drop" => csv_drop::config::CsvDropPlatform as dyn PlatformSink),
    register!("oke" => oke::config::OkePlatform as dyn PlatformSink),
    register!("edexml-drop" => edexml_drop::config::EdexmlDropPlatform as dyn PlatformSink),
];

/// The platform a config's `[platform]` names.
pub fn platform_sink(platform: &Section) -> &dyn PlatformSink {
    super::registered(&KINDS, platform)
}

/// `max_consecutive_failures` of a platform written record by record
/// (SCIM, OKE) unless set: writes in a row without an answer before the
/// run stops.
pub fn default_max_consecutive_failures() -> usize {
    5
}
