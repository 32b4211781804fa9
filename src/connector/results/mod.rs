//! The results-side contract and its registries: what `check-config` (also
//! `--connect`) asks of a result source (transport × format) and of a
//! result sink, decided once from `results.source.kind` and
//! `results.sink.kind`. The outbox flow (`sync::results`) reads and
//! pushes through the reader and `ResultSink` writer of each kind.

pub mod sink;
pub mod source;

use anyhow::Result;

use crate::config::Loaded;
use crate::config::results::{ResultSinkCfg, ResultSourceCfg};
use crate::connector::source::{BoxFuture, ConnectionReport};

/// A result source of one kind, described by its config section.
pub trait ResultInput: Sync {
    /// One line for `check-config`: where results are read and how.
    fn check(&self) -> String;
    /// `check-config --connect`: one authenticated request (none for a folder).
    fn test_connection<'a>(&'a self, _loaded: &'a Loaded) -> BoxFuture<'a, ConnectionReport> {
        Box::pin(async { Vec::new() })
    }
}

/// A result sink of one kind, described by its config section.
pub trait ResultOutput: Sync {
    /// One line for `check-config`: where results go and how.
    fn check(&self) -> String;
    /// `check-config --connect`: one authenticated request (none for files).
    fn test_connection<'a>(&'a self, _loaded: &'a Loaded) -> BoxFuture<'a, ConnectionReport> {
        Box::pin(async { Vec::new() })
    }
}

/// One labelled connection line, for the implementations.
pub(crate) fn report(label: &str, r: Result<String>) -> ConnectionReport {
    vec![(label.to_string(), r)]
}

/// The registry of result sources. One line per kind.
pub fn result_source(cfg: &ResultSourceCfg) -> &dyn ResultInput {
    match cfg {
        ResultSourceCfg::QtiFolder(c) => c,
        ResultSourceCfg::QtiHttp(c) => c,
        ResultSourceCfg::Csv(c) => c,
        ResultSourceCfg::Oke(c) => c,
    }
}

/// The registry of result sinks. One line per kind.
pub fn result_sink(cfg: &ResultSinkCfg) -> &dyn ResultOutput {
    match cfg {
        ResultSinkCfg::OnerosterRest(c) => c,
        ResultSinkCfg::OnerosterCsv(c) => c,
        ResultSinkCfg::Oke(c) => c,
        ResultSinkCfg::Uwlr(c) => c,
    }
}
