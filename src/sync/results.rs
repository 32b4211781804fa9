//! The result half of sisync: read results from the platform into the
//! outbox, then push what is pending to the SIS gradebook.
//!
//! Exactly once: a result is committed to the outbox (with its idempotency
//! key) before anything is pushed, and each push uses sourcedIds derived
//! from that key, so a push repeated after a crash or timeout overwrites
//! the same SIS record. A result is marked pushed, with its audit entry, in
//! one transaction after the SIS accepted it.
//!
//! Keys: `sha256("session2" | candidate | session sourceID | session id |
//! exam)` when the platform gives a session id, else `sha256("result" |
//! candidate | exam | date)`; values are not part of the key, so a
//! re-marked result is the same result with new values (pushed again,
//! audited as `result.update`). Rows stored under the key of schema 4
//! (`sha256("session" | session id | exam)`) keep it and match a re-read of
//! the same candidate only: another candidate's result is never a
//! re-marking.

mod documents;
mod keys;
mod matching;
mod oke;
mod push;

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use serde::Serialize;

use crate::config::Loaded;
use crate::config::results::Results;
use crate::connector::results::result_sink;
use crate::model::SourceIssue;
use crate::store::outbox::{IngestCounts, OutboxSummary};
use crate::store::{RunOutcome, Store};
use crate::sync::Progress;

use documents::read_documents;
pub use keys::{legacy_key, line_item_id, result_key, result_sourced_id, value_hash};
pub use matching::{Directory, choose_class};
use push::push;

#[derive(Debug, Clone, Copy, Default)]
pub struct ResultsOptions {
    pub dry_run: bool,
    /// Put failed results back to pending first.
    pub retry_failed: bool,
    /// Leave results whose next try is not due yet (the daemon); a manual
    /// run tries every pending result now.
    pub respect_backoff: bool,
}

/// What one results sync did (or would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ResultsReport {
    pub run_id: Option<i64>,
    pub dry_run: bool,
    /// Documents read, and already-read documents skipped.
    pub documents: usize,
    pub documents_skipped: usize,
    /// Files still being written (changed within `results.source.settle`):
    /// left where they are, read next run.
    pub documents_waiting: usize,
    /// Documents that could not be read (one line each; file moved to failed/).
    pub document_errors: Vec<String>,
    pub ingested: IngestCounts,
    pub issues: Vec<SourceIssue>,
    /// Parked results matched now.
    pub unparked: usize,
    pub retried_failed: usize,
    pub line_items: usize,
    pub pushed: usize,
    pub updated: usize,
    /// Not delivered this time; tried again later.
    pub retrying: usize,
    /// Refused by the SIS or given up: need `--retry-failed` after a fix.
    pub failed: usize,
    /// Pending results of restricted persons, kept in the outbox.
    pub held: usize,
    /// Dry run: results that would be pushed.
    pub would_push: usize,
    pub delivered: Option<PathBuf>,
    pub outbox: OutboxSummary,
    /// Stopped early for shutdown (SIGTERM): the rest goes next run.
    pub interrupted: bool,
    /// Wall time of reading into the outbox and of pushing.
    pub read_seconds: f64,
    pub push_seconds: f64,
}

impl ResultsReport {
    /// Whether anything needs the admin: unreadable documents or results
    /// that failed or still wait.
    pub fn partial(&self) -> bool {
        !self.document_errors.is_empty() || self.failed > 0 || self.retrying > 0
    }
}

/// One results sync.
pub async fn results(
    loaded: &Loaded,
    opts: ResultsOptions,
    actor: &str,
    progress: &dyn Progress,
) -> Result<ResultsReport, crate::sync::RunError> {
    let Some(rcfg) = &loaded.config.results else {
        return Err(anyhow!(
            "{}: no [results] section; add one to sync results (see README, \"Results\")",
            loaded.file.display()
        )
        .into());
    };
    // One run at a time per state file (a dry run writes nothing).
    let _lock = if opts.dry_run {
        None
    } else {
        Some(crate::sync::lock::RunLock::acquire(
            &loaded.config.state.path,
        )?)
    };
    let mut store = if opts.dry_run {
        Store::open_for_dry_run(&loaded.config.state.path)?
    } else {
        Store::open(&loaded.config.state.path)?
    };
    let run_id = if opts.dry_run {
        None
    } else {
        Some(store.begin_run("results", actor, false)?)
    };
    let mut report = ResultsReport {
        run_id,
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let step = Run {
        loaded,
        rcfg,
        opts,
        actor,
        progress,
    };
    let r = run(&step, &mut store, &mut report).await;
    progress.done();
    report.outbox = store.outbox_summary()?;
    if let Some(id) = run_id {
        let summary = serde_json::json!({
            "documents": report.documents,
            "ingested": report.ingested,
            "pushed": report.pushed,
            "updated": report.updated,
            "retrying": report.retrying,
            "failed": report.failed,
            "document_errors": report.document_errors.len(),
        });
        match &r {
            Err(e) => {
                store.finish_run(id, RunOutcome::Failed, &summary, Some(&format!("{e:#}")))?
            }
            Ok(()) => {
                let first = report.document_errors.first().cloned();
                store.finish_run(
                    id,
                    if report.interrupted {
                        RunOutcome::Interrupted
                    } else if report.partial() {
                        RunOutcome::Partial
                    } else {
                        RunOutcome::Ok
                    },
                    &summary,
                    first.as_deref(),
                )?
            }
        }
        crate::store::anchor::record(&store, loaded.config.audit.anchor_file.as_deref())?;
    }
    r?;
    Ok(report)
}

/// What every step of one results run reads, passed as one.
pub(super) struct Run<'a> {
    pub loaded: &'a Loaded,
    pub rcfg: &'a Results,
    pub opts: ResultsOptions,
    pub actor: &'a str,
    pub progress: &'a dyn Progress,
}

async fn run(step: &Run<'_>, store: &mut Store, report: &mut ResultsReport) -> Result<()> {
    let Run {
        rcfg,
        opts,
        progress,
        ..
    } = *step;
    let dir = Directory::load(store)?;
    // parked results first: the roster may know them by now
    let parked = store.outbox_parked()?;
    // a sink that matches results to registrations at the SIS itself (OKE)
    // when it delivers (parked ones again on every run)
    let at_delivery = result_sink(&rcfg.sink).matches_at_delivery();
    if !parked.is_empty() && !at_delivery {
        let updates: Vec<_> = parked
            .iter()
            .map(|p| {
                let (person, class, why) = dir.place(rcfg, &p.candidate, &p.line_item);
                let why = matching::value_problem(p.value.score, p.value.max_score).or(why);
                (p.key.clone(), person, class, why)
            })
            .collect();
        report.unparked = if opts.dry_run {
            updates.iter().filter(|u| u.3.is_none()).count()
        } else {
            store.outbox_rematch(&updates)?
        };
    }
    progress.phase("reading results", None);
    let started = std::time::Instant::now();
    read_documents(step, store, &dir, report).await?;
    report.read_seconds = started.elapsed().as_secs_f64();
    for i in &report.issues {
        tracing::warn!("skipped: {i}");
    }
    if opts.retry_failed && !opts.dry_run {
        report.retried_failed = store.outbox_retry_failed()?;
    }
    if opts.dry_run {
        report.would_push = store.outbox_due(false, "", usize::MAX)?.len()
            + report.ingested.new
            + report.ingested.changed
            - report
                .ingested
                .parked
                .min(report.ingested.new + report.ingested.changed);
        return Ok(());
    }
    let started = std::time::Instant::now();
    let pushed = push(step, store, report, &dir).await;
    report.push_seconds = started.elapsed().as_secs_f64();
    pushed
}

/// `check-config --connect` for the results endpoints.
pub async fn connect_checks(loaded: &Loaded) -> Vec<(String, Result<String>)> {
    let mut out = Vec::new();
    let Some(r) = &loaded.config.results else {
        return out;
    };
    out.extend(
        crate::connector::results::result_source(&r.source)
            .test_connection(loaded)
            .await,
    );
    out.extend(
        crate::connector::results::result_sink(&r.sink)
            .test_connection(loaded)
            .await,
    );
    out
}

/// One line for `check-config` about the results section.
pub fn describe(r: &Results) -> (String, String) {
    let source = crate::connector::results::result_source(&r.source).check();
    let sink = crate::connector::results::result_sink(&r.sink).check();
    (
        format!("{source} → {sink}"),
        format!(
            "{} class rules; give up after {}",
            r.class_rules.len(),
            humantime::format_duration(r.give_up_after)
        ),
    )
}
