//! The results-side contract and its registries: what `check-config` (also
//! `--connect`) asks of a result source (transport × format) and of a
//! result sink, decided once from `results.source.kind` and
//! `results.sink.kind`. A result source is a transport (a folder, or
//! documents fetched over HTTP) and a format (QTI, CSV, OKE pages): the
//! outbox flow (`sync::results`) finds documents through
//! [`ResultInput::documents`] / [`ResultInput::fetch`] and parses each
//! through [`ResultInput::read`], without knowing the kind.

pub mod sink;
pub mod source;

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::config::results::AfterRead;
use crate::config::{Loaded, Section};
use crate::connector::source::{BoxFuture, ConnectionReport, Testing};
use crate::connector::{GradebookResult, LineItem, ResultSink, SinkError};
use crate::connector::{Registered, register};
use crate::http::Http;
use crate::model::{ExamResult, SourceIssue};

/// Where a result source finds its documents.
pub enum Documents<'a> {
    /// Files with this extension in a folder (which holds `done/` and
    /// `failed/` when files are moved after reading).
    Folder {
        path: &'a Path,
        extension: &'static str,
        after: AfterRead,
        /// How long a file must be unchanged before it is read.
        settle: Duration,
    },
    /// Documents [`ResultInput::fetch`] names over HTTP.
    Remote,
}

/// One document a remote source names.
pub struct Remote {
    /// Its URL: where it is read, audited and remembered as read.
    pub origin: String,
    /// What [`ResultInput::read`] needs besides the bytes (the OKE
    /// sitting's offering id); empty when nothing.
    pub tag: String,
    /// The bytes when the listing read them already; else the flow GETs
    /// `origin` itself, one document at a time.
    pub body: Option<Vec<u8>>,
}

/// What a remote source's listing found, with the client that found it.
pub struct Fetched {
    pub http: Http,
    pub documents: Vec<Remote>,
}

/// The result sources of one kind: a transport and a format, described by
/// its config section.
pub trait ResultInput: Sync {
    /// One line for `check-config`: where results are read and how.
    fn check(&self) -> String;
    /// `check-config --connect`: one authenticated request (none for a folder).
    fn test_connection<'a>(&'a self, _loaded: &'a Loaded) -> BoxFuture<'a, ConnectionReport> {
        Box::pin(async { Vec::new() })
    }
    /// The transport.
    fn documents(&self) -> Documents<'_>;
    /// [`Documents::Remote`]: the documents to read now. Secrets are
    /// resolved here, once per run; a failure fails the whole read before
    /// anything is stored.
    fn fetch<'a>(&'a self, _loaded: &'a Loaded) -> BoxFuture<'a, Result<Fetched>> {
        Box::pin(async { anyhow::bail!("this result source reads a folder, not HTTP") })
    }
    /// A folder whose read documents are moved into `done/` and `failed/`
    /// and kept there, with their format: erasure searches them.
    fn processed(&self) -> Option<(&Path, crate::connector::DocumentFormat)> {
        None
    }
    /// The format: every result of one document goes to `each`; a record
    /// that cannot be read comes back as an issue with its location.
    fn read(
        &self,
        input: &mut dyn Read,
        name: &str,
        tag: &str,
        each: &mut dyn FnMut(ExamResult) -> Result<()>,
    ) -> Result<Vec<SourceIssue>>;
}

/// A result sink of one kind, described by its config section.
pub trait ResultOutput: Sync {
    /// One line for `check-config`: where results go and how.
    fn check(&self) -> String;
    /// `check-config --connect`: one authenticated request (none for files).
    fn test_connection<'a>(&'a self, _loaded: &'a Loaded) -> BoxFuture<'a, ConnectionReport> {
        Box::pin(async { Vec::new() })
    }
    /// The writer of one run; secrets are resolved here.
    fn writer(&self, loaded: &Loaded) -> Result<ResultWriter>;
    /// The folder result files are delivered into (folders
    /// `sisync-results-…`), which erasure searches.
    fn delivery_folder(&self) -> Option<&Path> {
        None
    }
    /// The SIS finds each result's registration itself when it is
    /// delivered ([`ResultWriter::Registrations`]), so results need no
    /// roster class to leave the outbox.
    fn matches_at_delivery(&self) -> bool {
        false
    }
    /// A result must be placed in one of the candidate's classes (a
    /// OneRoster line item belongs to a class; a UWLR or OKE result does
    /// not).
    fn needs_class(&self) -> bool {
        true
    }
}

/// How the outbox flow hands results to a sink.
pub enum ResultWriter {
    /// Every due result at once, as one delivery of files.
    Files(Box<dyn ResultFiles>),
    /// One result at a time, `concurrency` writes in flight.
    Records {
        sink: Box<dyn ResultSink>,
        concurrency: usize,
    },
    /// OKE flow 5: each result is written to its registration at the SIS,
    /// which is looked up first (and a result parked until it exists).
    Registrations {
        sink: Box<sink::oke::OkeSink>,
        concurrency: usize,
    },
}

/// A sink that takes the due results as files in one delivery.
pub trait ResultFiles {
    fn endpoint(&self) -> String;
    /// Write every line item and result; all or nothing.
    fn deliver(
        &self,
        run_id: i64,
        line_items: &[LineItem],
        results: &[GradebookResult],
    ) -> std::result::Result<FilesDelivered, SinkError>;
}

/// A delivery of result files.
#[derive(Debug)]
pub struct FilesDelivered {
    /// The folder delivered.
    pub folder: std::path::PathBuf,
    /// SHA-256 of each result's row, by the result's sourcedId.
    pub row_hashes: std::collections::HashMap<String, String>,
}

/// The registry of result sources, one line per kind.
pub(crate) static SOURCE_KINDS: [Registered<dyn ResultInput>; 4] = [
    register!("qti-folder" => source::qti::config::QtiFolder as dyn ResultInput),
    register!("qti-http" => source::qti::config::QtiHttp as dyn ResultInput),
    register!("csv" => source::csv::config::CsvResults as dyn ResultInput),
    register!("oke" => source::oke::config::OkeResultSource as dyn ResultInput),
];

/// The registry of result sinks, one line per kind.
pub(crate) static SINK_KINDS: [Registered<dyn ResultOutput>; 4] = [
    register!("oneroster-rest" => sink::gradebook_rest::config::GradebookRestSink as dyn ResultOutput),
    register!("oneroster-csv" => sink::gradebook_csv::config::GradebookCsvSink as dyn ResultOutput),
    register!("oke" => sink::oke::config::OkeResultSink as dyn ResultOutput),
    register!("uwlr" => sink::uwlr::config::UwlrResultSink as dyn ResultOutput),
];

/// The result source a config's `[results.source]` names.
pub fn result_source(source: &Section) -> &dyn ResultInput {
    super::registered(&SOURCE_KINDS, source)
}

/// The result sink a config's `[results.sink]` names.
pub fn result_sink(sink: &Section) -> &dyn ResultOutput {
    super::registered(&SINK_KINDS, sink)
}

/// The `check-config` line of a result sink that sends over HTTP: its
/// kind, where, what it sends and how many at once.
pub(crate) fn sending_line(
    kind: &str,
    url: &str,
    what: &str,
    settings: &dyn crate::config::ConnectorConfig,
) -> String {
    format!("{kind} {url} ({what}, {} at once)", settings.concurrency())
}

/// `check-config --connect` of a result sink over HTTP: `ping` the sink
/// made on a client that tries once; the line names what it reached.
pub(crate) fn probe_http_sink<'a, F>(
    loaded: &'a Loaded,
    settings: &'a dyn crate::config::ConnectorConfig,
    ping: impl FnOnce(Http) -> F + Send + 'a,
) -> Testing<'a>
where
    F: std::future::Future<Output = Result<String, crate::http::HttpError>> + Send + 'a,
{
    Box::pin(crate::connector::source::timed("results out", async move {
        let http = loaded.http_client("results.sink", settings)?;
        Ok(format!(
            "{}, authenticated",
            ping(http.with_max_retries(0)).await?
        ))
    }))
}
