//! `sisync sync results` and the outbox lines of `sisync status`.

use super::out::outln;
use super::{Bar, print_issues, print_json, table};
use crate::cli::{Cli, ResultsArgs};
use crate::config::Loaded;
use crate::exit::{CliError, CliResult, Exit};
use crate::store::audit::actor;
use crate::store::outbox::OutboxSummary;
use crate::sync::results::{self, ResultsOptions, ResultsReport};

/// Run a results sync and print what it did. `quiet_if_absent`: `sync all`
/// without a `[results]` section says nothing about results.
pub async fn sync_results(cli: &Cli, loaded: &Loaded, a: &ResultsArgs, in_all: bool) -> CliResult {
    if loaded.config.results.is_none() {
        eprintln!(
            "config error: {}: no [results] section; add [results.source] and [results.sink] to sync results (see README, \"Results\")",
            loaded.file.display()
        );
        return Ok(Exit::Config);
    }
    let opts = ResultsOptions {
        dry_run: a.dry_run,
        retry_failed: a.retry_failed,
        respect_backoff: false,
    };
    let bar = Bar::new(cli.json);
    let report = results::results(loaded, opts, &actor(), &bar).await;
    let report = report?;
    if in_all && !cli.json {
        outln!()?;
    }
    print(cli, &report)?;
    Ok(if report.partial() {
        Exit::Failure
    } else {
        Exit::Ok
    })
}

fn print(cli: &Cli, r: &ResultsReport) -> Result<(), CliError> {
    if cli.json {
        print_json(r)?;
        return Ok(());
    }
    print_issues("Skipped results", &r.issues)?;
    for e in &r.document_errors {
        eprintln!("unreadable: {e}");
    }
    let i = &r.ingested;
    let mut t = table(&["results", "new", "re-marked", "unchanged", "parked"]);
    t.add_row(vec![
        format!(
            "read from {} documents ({} already read)",
            r.documents, r.documents_skipped
        ),
        i.new.to_string(),
        i.changed.to_string(),
        i.unchanged.to_string(),
        i.parked.to_string(),
    ]);
    outln!("{t}")?;
    if r.documents_waiting > 0 {
        outln!(
            "{} files are still being written (changed within results.source.settle): read next run",
            r.documents_waiting
        )?;
    }
    if r.unparked > 0 {
        outln!("{} parked results matched the roster now", r.unparked)?;
    }
    if r.dry_run {
        outln!(
            "Dry run: nothing was stored, moved or pushed. {} results would be pushed.",
            r.would_push
        )?;
        return Ok(());
    }
    let mut t = table(&[
        "pushed",
        "updated (re-marked)",
        "retrying",
        "failed",
        "line items",
    ]);
    t.add_row([r.pushed, r.updated, r.retrying, r.failed, r.line_items]);
    outln!("{t}")?;
    if let Some(d) = &r.delivered {
        outln!("delivered to {}", d.display())?;
    }
    if let Some(id) = r.run_id {
        outln!("run {id}")?;
    }
    print_outbox(&r.outbox)?;
    if r.retrying > 0 {
        eprintln!(
            "{} results were not delivered; they are tried again on the next run (the SIS may be down: see the log).",
            r.retrying
        );
    }
    if r.failed > 0 {
        eprintln!(
            "{} results failed; `sisync status` shows why. Fix the cause, then `sisync sync results --retry-failed`.",
            r.failed
        );
    }
    Ok(())
}

/// The outbox lines of `status` (also after a results sync).
pub fn print_outbox(o: &OutboxSummary) -> Result<(), CliError> {
    let oldest = match &o.oldest_pending {
        Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(t) => {
                let age = chrono::Utc::now().signed_duration_since(t);
                let age = std::time::Duration::from_secs(age.num_seconds().max(0) as u64);
                format!(", oldest pending {} old", humantime::format_duration(age))
            }
            Err(_) => String::new(),
        },
        None => String::new(),
    };
    outln!(
        "outbox   {} pending, {} pushed, {} failed, {} parked{oldest}",
        o.pending,
        o.pushed,
        o.failed,
        o.parked
    )?;
    for (state, reason, n) in &o.reasons {
        outln!("         {n} {state}: {reason}")?;
    }
    Ok(())
}
