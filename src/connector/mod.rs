//! Connectors: one wire protocol each, translating into and out of the
//! canonical types of [`crate::model`] and [`crate::privacy::policy`].
//! They know nothing of planning, state or audit.

pub mod csv_guard;
pub(crate) mod drop_folder;
pub mod gateway;
pub mod oke;
pub mod platform;
pub mod results;
pub mod school;
pub mod source;
pub(crate) use crate::xml_input;

use std::any::Any;
use std::path::Path;

use crate::config::{ConfigError, Kind, Kinds, Loaded, Section};
use crate::http::HttpError;
use crate::model::platform::{PlatformGroup, PlatformUser};
use crate::model::platform::{PlatformOffering, PlatformRegistration};
use crate::model::{ResultValue, TrackedField};

/// One line of a role's registry: the `kind` name, how its config section
/// is read (into the connector's own settings struct), and how those
/// settings are seen as the role's contract `R`. Written with
/// [`register!`].
pub struct Registered<R: ?Sized + 'static> {
    pub kind: Kind,
    pub view: fn(&dyn Any) -> Option<&R>,
}

/// `register!("kind" => Settings as dyn Role)`: a registry line.
macro_rules! register {
    ($name:literal => $t:ty as $role:ty) => {
        $crate::connector::Registered::<$role> {
            kind: $crate::config::Kind::of::<$t>($name),
            view: |a| a.downcast_ref::<$t>().map(|c| c as &$role),
        }
    };
}
pub(crate) use register;

/// The connector a loaded section names, as its role `R`.
fn registered<'a, R: ?Sized>(list: &[Registered<R>], section: &'a Section) -> &'a R {
    let settings = section.settings().as_any();
    match list.iter().find_map(|r| (r.view)(settings)) {
        Some(c) => c,
        // a section is built only by `Loaded::from_str` with `kinds()`,
        // which reads it with this very list
        None => unreachable!(
            "config section of kind `{}` built outside the registry",
            section.kind()
        ),
    }
}

/// Every registered kind by role, for loading a config.
pub fn kinds() -> Kinds {
    fn names<R: ?Sized>(list: &[Registered<R>]) -> Vec<Kind> {
        list.iter().map(|r| r.kind).collect()
    }
    Kinds {
        source: names(&source::KINDS),
        platform: names(&platform::KINDS),
        result_source: names(&results::SOURCE_KINDS),
        result_sink: names(&results::SINK_KINDS),
    }
}

/// Read and validate a config file, its connector sections read by the
/// registered connectors.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    Loaded::from_file(path, &kinds())
}

/// [`load`] of config text that claims to come from `path`.
pub fn load_str(path: &Path, text: String) -> Result<Loaded, ConfigError> {
    Loaded::from_str(path, text, &kinds())
}

/// How person ids appear in the documents a result source reads, for
/// erasure in the processed copies sisync keeps (`done/`, `failed/`).
#[derive(Debug, Clone)]
pub enum DocumentFormat {
    Qti,
    Csv { delimiter: u8, candidate: String },
}

/// A write the platform accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The platform's own id of the resource, when it has one.
    pub platform_id: Option<String>,
    /// The URL or file that received it.
    pub endpoint: String,
    /// SHA-256 of the exact bytes sent.
    pub payload_sha256: String,
}

/// A write the platform or the SIS refused, or that could not be
/// delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("{endpoint}: {message}")]
pub struct SinkError {
    pub endpoint: String,
    pub status: Option<u16>,
    /// What went wrong (status and class), without personal data or
    /// secrets.
    pub message: String,
    pub payload_sha256: Option<String>,
    /// The other side's own explanation (SCIM `detail`, the SIS's error
    /// description), at most 300 characters. It may echo a record, so it
    /// is shown to the admin, kept in the run's failure lines and the
    /// outbox, never logged or audited.
    pub detail: Option<String>,
    /// The SIS refused the content whatever the status (a SOAP `Client`
    /// fault travels with HTTP 500): no retry, a person must look.
    pub refused: bool,
}

impl SinkError {
    /// A request that failed: its URL, status and the server's own
    /// explanation, for the payload with this SHA-256.
    pub fn http(e: HttpError, payload_sha256: Option<String>) -> SinkError {
        SinkError {
            message: e.to_string(),
            endpoint: e.url,
            status: e.status,
            payload_sha256,
            detail: e.server_message,
            refused: false,
        }
    }

    /// Worth another try later: no answer, a timeout, a conflict, rate
    /// limiting or a server error. Any other 4xx needs a person.
    pub fn is_transient(&self) -> bool {
        if self.refused {
            return false;
        }
        match self.status {
            None => true,
            Some(s) => matches!(s, 408 | 409 | 429) || s >= 500,
        }
    }
}

/// A platform that takes one record at a time (SCIM). `?Send`: a run's
/// writes stay on its own thread; `async_trait` boxes each write, so the
/// platform registry hands out a `Box<dyn RecordSink>`.
#[async_trait::async_trait(?Send)]
pub trait RecordSink {
    /// Where writes go, for messages and the audit log.
    fn endpoint(&self) -> String;
    /// The run is about to create this many users and groups: a sink may
    /// prepare its externalId lookups for that many (SCIM reads its list
    /// once instead of one filter per create when that is cheaper).
    fn expect_creates(&self, _users: usize, _groups: usize) {}
    /// Create a user, or adopt the one the platform already has with this
    /// externalId (so a lost mapping never makes a duplicate).
    async fn create_user(&self, user: &PlatformUser) -> Result<Written, SinkError>;
    /// Send the `changed` fields of a user the platform knows as `id`.
    async fn update_user(
        &self,
        id: &str,
        user: &PlatformUser,
        changed: &[TrackedField],
    ) -> Result<Written, SinkError>;
    /// Set `active: false`.
    async fn deactivate_user(&self, id: &str, external_id: &str) -> Result<Written, SinkError>;
    /// Create a group (or adopt one by externalId) with these member ids.
    async fn create_group(
        &self,
        group: &PlatformGroup,
        member_ids: &[String],
    ) -> Result<Written, SinkError>;
    /// Replace the group's changed fields; `member_ids` is the full list.
    async fn update_group(
        &self,
        id: &str,
        group: &PlatformGroup,
        member_ids: &[String],
        changed: &[TrackedField],
    ) -> Result<Written, SinkError>;
}

/// One file-drop delivery: the records changed in a run.
#[derive(Debug, Clone, Default)]
pub struct ChangeSet<'a> {
    pub users: Vec<&'a PlatformUser>,
    pub deactivated_users: Vec<&'a str>,
    pub groups: Vec<(&'a PlatformGroup, bool)>,
    /// Exam sittings created or changed, and those canceled.
    pub offerings: Vec<&'a PlatformOffering>,
    pub canceled_offerings: Vec<&'a str>,
    /// Registrations created or changed, and (id, sitting) of withdrawn ones.
    pub registrations: Vec<&'a PlatformRegistration>,
    pub withdrawn_registrations: Vec<(&'a str, Option<&'a str>)>,
}

/// A platform that takes exam sittings and registrations one at a time
/// (OKE flow 2). Withdrawal is a cancellation, never a delete.
#[async_trait::async_trait(?Send)]
pub trait ExamSink {
    fn endpoint(&self) -> String;
    /// Create or replace the sitting.
    async fn put_offering(&self, o: &PlatformOffering) -> Result<Written, SinkError>;
    /// Mark the sitting canceled.
    async fn cancel_offering(&self, id: &str) -> Result<Written, SinkError>;
    /// Create or replace the registration.
    async fn put_registration(&self, r: &PlatformRegistration) -> Result<Written, SinkError>;
    /// Mark the registration canceled.
    async fn cancel_registration(&self, id: &str) -> Result<Written, SinkError>;
}

/// A platform that takes whole files (csv-drop).
pub trait FileSink {
    fn endpoint(&self) -> String;
    /// Deliver the change set atomically; returns the folder written and the
    /// SHA-256 of each record line by external id.
    fn deliver(&self, run_id: i64, changes: &ChangeSet<'_>) -> Result<Delivery, SinkError>;
    /// The file of a delivery that carries a user (or, with `group`, a
    /// group) record, or a deactivation: the audit endpoint, and the file
    /// part of its key in [`Delivery::row_hashes`].
    fn record_file(&self, group: bool, deactivate: bool) -> &'static str {
        let _ = deactivate;
        if group { "groups.csv" } else { "users.csv" }
    }
}

#[derive(Debug, Clone)]
pub struct Delivery {
    pub folder: std::path::PathBuf,
    /// (file, externalId) → SHA-256 of the CSV row written for it.
    pub row_hashes: std::collections::HashMap<(String, String), String>,
    /// (file, externalId) → why the record was left out of the delivery
    /// (a value the format cannot carry): it fails and is held, the rest
    /// is delivered.
    pub refused: std::collections::HashMap<(String, String), String>,
}

/// A line item (one exam for one class) as the SIS gradebook gets it.
#[derive(Debug, Clone, PartialEq)]
pub struct LineItem {
    /// Deterministic sourcedId (see `sync::results`).
    pub sourced_id: String,
    /// The exam id on the platform.
    pub title: String,
    pub class_id: String,
    /// Highest score seen for the exam, when the platform gives one.
    pub max_score: Option<f64>,
    /// Date of the first result (YYYY-MM-DD), used as assign/due date.
    pub date: String,
}

/// One result as the SIS gradebook gets it.
#[derive(Debug, Clone, PartialEq)]
pub struct GradebookResult {
    /// Deterministic sourcedId: a retry overwrites, never duplicates.
    pub sourced_id: String,
    /// The exam id on the platform (the UWLR `toetscode`).
    pub exam: String,
    pub line_item_id: String,
    pub class_id: String,
    /// The SIS sourcedId of the student.
    pub student_id: String,
    /// The student's ECK iD, when the roster sync knows it (with
    /// `privacy.use_eck_id` it is their platform id).
    pub eckid: Option<String>,
    pub value: ResultValue,
    /// YYYY-MM-DD.
    pub date: String,
}

/// A SIS gradebook that takes one record at a time (OneRoster REST).
#[async_trait::async_trait(?Send)]
pub trait ResultSink {
    fn endpoint(&self) -> String;
    /// Create or overwrite the line item.
    async fn put_line_item(&self, li: &LineItem) -> Result<Written, SinkError>;
    /// Create or overwrite the result.
    async fn put_result(&self, r: &GradebookResult) -> Result<Written, SinkError>;
    /// Whether the SIS keeps line items apart (OneRoster); a sink whose
    /// results name their test themselves (UWLR) gets no `put_line_item`.
    fn needs_line_items(&self) -> bool {
        true
    }
}

/// The `textScore` of a result: its grade, else pass/fail when that is all
/// the platform gave.
pub fn text_score(r: &GradebookResult) -> Option<String> {
    r.value.grade.clone().or_else(|| {
        r.value
            .passed
            .map(|p| if p { "pass" } else { "fail" }.to_string())
    })
}

/// What a platform holds, read back for `sisync reconcile`: protocol-free.
#[derive(Debug, Clone, Default)]
pub struct PlatformSnapshot {
    pub users: Vec<StoredUser>,
    pub groups: Vec<StoredGroup>,
}

/// A user as the platform holds it.
#[derive(Debug, Clone)]
pub struct StoredUser {
    /// The platform's id.
    pub id: String,
    /// Its fields in sisync's terms (`external_id` empty when it has none).
    pub user: crate::model::platform::PlatformUser,
}

/// A group as the platform holds it.
#[derive(Debug, Clone)]
pub struct StoredGroup {
    pub id: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    /// The platform's ids of its members.
    pub members: Vec<String>,
}
