//! Pushing pending results to the SIS gradebook: line items first, then
//! results in chunks, each outcome committed with its audit entry.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Result, anyhow};
use futures::StreamExt;

use super::keys::{line_item_id, result_sourced_id};
use super::matching::Directory;
use super::{ResultsOptions, ResultsReport, Run};
use crate::config::ResultField;
use crate::connector::results::{ResultWriter, result_sink};
use crate::connector::{GradebookResult, LineItem, ResultSink, SinkError};
use crate::model::ResultValue;
use crate::store::Store;
use crate::store::audit::{AuditAction, AuditEntry, AuditKind, AuditOutcome, Direction};
use crate::store::holds::Holds;
use crate::store::outbox::{OutboxRow, PushOutcome};
use crate::sync::Progress;
use crate::sync::apply::{CommitClock, Tick};

/// The date pushed with a result: its own, else the day it was read.
pub(super) fn result_date(row: &OutboxRow) -> String {
    row.taken_at
        .as_deref()
        .unwrap_or(&row.first_seen)
        .chars()
        .take(10)
        .collect()
}

/// The parts of a result's value that `privacy.result_fields` allows.
pub(super) fn allowed_value(v: &ResultValue, allowed: &[ResultField]) -> ResultValue {
    let ok = |f: ResultField| allowed.contains(&f);
    ResultValue {
        score: v.score.filter(|_| ok(ResultField::Score)),
        max_score: v.max_score.filter(|_| ok(ResultField::MaxScore)),
        passed: v.passed.filter(|_| ok(ResultField::Passed)),
        grade: v.grade.clone().filter(|_| ok(ResultField::Grade)),
    }
}

/// The result as the SIS gets it: only the values `privacy.result_fields`
/// allows.
fn gradebook_result(row: &OutboxRow, allowed: &[ResultField]) -> GradebookResult {
    let class = row.class_id.clone().unwrap_or_default();
    GradebookResult {
        sourced_id: result_sourced_id(&row.key),
        exam: row.line_item.clone(),
        line_item_id: line_item_id(&row.line_item, &class),
        class_id: class,
        student_id: row.person_id.clone().unwrap_or_default(),
        eckid: None,
        value: allowed_value(&row.value, allowed),
        date: result_date(row),
    }
}

fn sent_fields(r: &GradebookResult) -> String {
    field_list(
        "student,lineItem,scoreDate",
        &[
            (r.value.score.is_some(), "score"),
            (crate::connector::text_score(r).is_some(), "textScore"),
            (r.value.passed.is_some(), "passed"),
            (r.value.max_score.is_some(), "maxScore"),
        ],
    )
}

/// The fields an audit entry names: those always sent, then each optional
/// one that was sent, comma-separated.
pub(super) fn field_list(always: &str, optional: &[(bool, &str)]) -> String {
    let mut f = String::with_capacity(64);
    f.push_str(always);
    for (sent, name) in optional {
        if *sent {
            f.push(',');
            f.push_str(name);
        }
    }
    f
}

/// When to try a result again after `attempts` failed pushes: 1, 2, 4 …
/// minutes, at most an hour.
pub(super) fn next_try(attempts: i64) -> String {
    let mins = 1u64 << attempts.clamp(0, 6);
    (chrono::Utc::now() + Duration::from_secs(60 * mins.min(60)))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// What happened to one result push, for the outbox and the audit log.
pub(super) fn outcome_of(
    row: &OutboxRow,
    (fields, detail): (String, String),
    res: Result<crate::connector::Written, SinkError>,
    base: &AuditEntry,
    audit_id: &str,
) -> (String, PushOutcome, AuditEntry) {
    let mut e = base.clone();
    e.action = if row.pushed_hash.is_some() {
        AuditAction::ResultUpdate
    } else {
        AuditAction::ResultPush
    };
    e.record_kind = AuditKind::Result;
    e.record_id = audit_id.to_string();
    e.fields = fields;
    let outcome = match res {
        Ok(w) => {
            e.endpoint = w.endpoint;
            e.payload_sha256 = Some(w.payload_sha256);
            e.outcome = AuditOutcome::Ok;
            e.detail = Some(detail);
            PushOutcome::Pushed {
                value_hash: row.value_hash.clone(),
            }
        }
        Err(err) => {
            e.endpoint = err.endpoint.clone();
            e.payload_sha256 = err.payload_sha256.clone();
            e.outcome = AuditOutcome::Failed;
            e.detail = Some(format!("{detail} {}", err.message));
            failed(row, &err)
        }
    };
    (row.key.clone(), outcome, e)
}

/// Retry or failed, with the SIS's own message for the admin (outbox only).
pub(super) fn failed(row: &OutboxRow, err: &SinkError) -> PushOutcome {
    let mut reason = err.message.clone();
    if let Some(m) = &err.detail {
        reason.push_str(&format!(" (SIS says: {m})"));
    }
    tracing::warn!(key = %row.key, status = ?err.status, "result not delivered: {}", err.message);
    if err.is_transient() {
        PushOutcome::Retry {
            reason,
            next_try_at: next_try(row.attempts + 1),
        }
    } else {
        PushOutcome::Failed { reason }
    }
}

/// What a gradebook result's audit entry says: the fields sent, and the
/// outbox key with the line item.
fn gradebook_entry(row: &OutboxRow, gr: &GradebookResult) -> (String, String) {
    (
        sent_fields(gr),
        format!("key={} lineItem={}", row.key, gr.line_item_id),
    )
}

/// Take push outcomes as they finish and commit them (outbox and audit)
/// every `every` results, or `BATCH_WAIT` after the first uncommitted one,
/// whichever comes first (a slow SIS never leaves answered results
/// uncommitted for long). The commits run on their own thread while the
/// next pushes go out (at most two groups wait for it), so the requests in
/// flight never stall behind a commit; an outcome is still committed only
/// after its answer, and one that never is (a crash) stays pending and is
/// sent again, with the same key, next run. When a stop is asked for, the
/// pushes still in flight are dropped: their results stay pending and go
/// again next run (`report.interrupted`).
pub(super) async fn record_as_they_finish(
    outcomes: impl futures::Stream<Item = (String, PushOutcome, AuditEntry)>,
    every: usize,
    progress: &dyn Progress,
    store: &mut Store,
    report: &mut ResultsReport,
    by_key: &HashMap<String, &OutboxRow>,
    give_up_before: &str,
) -> Result<()> {
    type Batch = Vec<(String, PushOutcome, AuditEntry)>;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(2);
    let until = give_up_before.to_string();
    let committer = crate::sync::apply::committer(store, move |s| {
        for batch in rx {
            s.outbox_record(&batch, &until)?;
        }
        Ok(())
    })?;
    let mut outcomes = std::pin::pin!(outcomes);
    let mut batch = Vec::with_capacity(every);
    let mut clock = CommitClock::new(every);
    // hands a batch to the committer; false when it stopped on an error
    // (it says which)
    let send = |batch: &mut Batch, report: &mut ResultsReport| {
        count(report, by_key, batch, give_up_before);
        let full = std::mem::replace(batch, Vec::with_capacity(every));
        tx.send(full).is_ok()
    };
    loop {
        let o = match clock.next(&mut outcomes).await {
            Tick::Item(o) => o,
            Tick::Due => {
                if !send(&mut batch, report) {
                    break;
                }
                continue;
            }
            Tick::End => break,
        };
        progress.tick();
        batch.push(o);
        if progress.stop_requested() {
            report.interrupted = true;
            break;
        }
        if clock.added(batch.len()) && !send(&mut batch, report) {
            break;
        }
    }
    if !batch.is_empty() {
        send(&mut batch, report);
    }
    drop(tx);
    committer.give_back(store).await
}

pub(super) fn count(
    report: &mut ResultsReport,
    rows: &HashMap<String, &OutboxRow>,
    outcomes: &[(String, PushOutcome, AuditEntry)],
    give_up_before: &str,
) {
    for (key, o, _) in outcomes {
        match o {
            PushOutcome::Pushed { .. } => {
                if rows.get(key).is_some_and(|r| r.pushed_hash.is_some()) {
                    report.updated += 1;
                } else {
                    report.pushed += 1;
                }
            }
            PushOutcome::Retry { .. } => {
                if rows
                    .get(key)
                    .is_some_and(|r| r.first_seen.as_str() < give_up_before)
                {
                    report.failed += 1;
                } else {
                    report.retrying += 1;
                }
            }
            PushOutcome::Failed { .. } => report.failed += 1,
            PushOutcome::Parked { .. } => {}
        }
    }
}

/// Results read and pushed per chunk. Between chunks the pushes in flight
/// run out and the last commit is waited for, so fewer, larger chunks
/// keep the requests going (20,000 rows are a few MB).
pub(super) const CHUNK: usize = 20_000;

/// Push outcomes per commit (or fewer, `BATCH_WAIT` after the first). A
/// commit writes every page it changed to the WAL, and each outcome's audit
/// entry lands at a random place of the audit log's record index: with 256
/// a commit most of a 100,000-result push went into rewriting those pages
/// (and SQLite's page cache bookkeeping at each commit).
const RESULTS_PER_COMMIT: usize = 1024;

/// What every push reads besides the sink, the store and the report.
pub(super) struct Pushing<'a> {
    pub opts: ResultsOptions,
    pub progress: &'a dyn Progress,
    /// The audit entry each outcome's entry starts from.
    pub base: &'a AuditEntry,
    /// A result that cannot be delivered and was first seen before this
    /// gives up (`failed`).
    pub give_up_before: &'a str,
    pub dir: &'a Directory,
    /// Restricted or erased persons: their results stay in the outbox.
    pub holds: &'a Holds,
    /// `privacy.result_fields`.
    pub allowed: &'a [ResultField],
}

pub(super) async fn push(
    step: &Run<'_>,
    store: &mut Store,
    report: &mut ResultsReport,
    dir: &Directory,
) -> Result<()> {
    let (loaded, rcfg, opts) = (step.loaded, step.rcfg, step.opts);
    // restricted (or erased) persons: their results stay in the outbox
    let holds = store.holds()?;
    let give_up_before = (chrono::Utc::now()
        - chrono::Duration::from_std(rcfg.give_up_after).unwrap_or(chrono::Duration::MAX))
    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
    .to_string();
    // each entry sets its action, kind, record and outcome
    let base = AuditEntry {
        actor: step.actor.to_string(),
        run_id: report.run_id,
        direction: Direction::Out,
        endpoint: String::new(),
        action: AuditAction::ResultPush,
        record_kind: AuditKind::Result,
        record_id: String::new(),
        fields: String::new(),
        payload_sha256: None,
        outcome: AuditOutcome::Ok,
        detail: None,
    };
    let progress = step.progress;
    let pushing = Pushing {
        opts,
        progress,
        base: &base,
        give_up_before: &give_up_before,
        dir,
        holds: &holds,
        allowed: &loaded.config.privacy.result_fields,
    };
    match result_sink(&rcfg.sink).writer(loaded)? {
        ResultWriter::Files(sink) => {
            let rows = store.outbox_due(opts.respect_backoff, "", usize::MAX)?;
            let rows = without_held(rows, &holds, report);
            if rows.is_empty() {
                return Ok(());
            }
            progress.phase("writing results", Some(rows.len() as u64));
            let allowed = &loaded.config.privacy.result_fields;
            let results: Vec<GradebookResult> =
                rows.iter().map(|r| gradebook_result(r, allowed)).collect();
            let line_items = line_items_of(&rows, allowed);
            report.line_items += line_items.len();
            let delivered = sink.deliver(report.run_id.unwrap_or(0), &line_items, &results);
            let folder = delivered.as_ref().ok().map(|d| d.folder.clone());
            let outcomes: Vec<_> = rows
                .iter()
                .zip(&results)
                .map(|(row, gr)| {
                    let res = match &delivered {
                        Ok(d) => Ok(crate::connector::Written {
                            platform_id: None,
                            endpoint: d.folder.display().to_string(),
                            payload_sha256: d
                                .row_hashes
                                .get(&gr.sourced_id)
                                .cloned()
                                .unwrap_or_default(),
                        }),
                        Err(e) => Err(e.clone()),
                    };
                    outcome_of(
                        row,
                        gradebook_entry(row, gr),
                        res,
                        &base,
                        dir.audit_id(&gr.student_id),
                    )
                })
                .collect();
            let by_key: HashMap<String, &OutboxRow> =
                rows.iter().map(|r| (r.key.clone(), r)).collect();
            count(report, &by_key, &outcomes, &give_up_before);
            store.outbox_record(&outcomes, &give_up_before)?;
            report.delivered = folder;
            if let Err(e) = delivered {
                return Err(anyhow!("{}", e.message));
            }
        }
        ResultWriter::Registrations { sink, concurrency } => {
            super::oke::push_oke(&pushing, (sink, concurrency), store, report).await?;
        }
        ResultWriter::Records { sink, concurrency } => {
            push_records(&pushing, (&*sink, concurrency), store, report).await?;
        }
    }
    Ok(())
}

/// Rows whose person is restricted or erased stay pending (counted).
pub(super) fn without_held(
    rows: Vec<OutboxRow>,
    holds: &Holds,
    report: &mut ResultsReport,
) -> Vec<OutboxRow> {
    if holds.is_empty() {
        return rows;
    }
    let before = rows.len();
    let rows: Vec<OutboxRow> = rows
        .into_iter()
        .filter(|r| {
            r.person_id
                .as_deref()
                .is_none_or(|p| holds.kind_of(p).is_none())
        })
        .collect();
    report.held += before - rows.len();
    rows
}

/// The line items a set of results needs, one per exam and class.
fn line_items_of(rows: &[OutboxRow], allowed: &[ResultField]) -> Vec<LineItem> {
    let with_max = allowed.contains(&ResultField::MaxScore);
    let mut out: BTreeMap<String, LineItem> = BTreeMap::new();
    for row in rows {
        let class = row.class_id.clone().unwrap_or_default();
        let id = line_item_id(&row.line_item, &class);
        let date = result_date(row);
        let li = out.entry(id.clone()).or_insert_with(|| LineItem {
            sourced_id: id,
            title: row.line_item.clone(),
            class_id: class,
            max_score: None,
            date: date.clone(),
        });
        if let Some(m) = row.value.max_score.filter(|_| with_max) {
            li.max_score = Some(li.max_score.map_or(m, |x: f64| x.max(m)));
        }
        if date < li.date {
            li.date = date;
        }
    }
    out.into_values().collect()
}

async fn push_records<S: ResultSink + ?Sized>(
    p: &Pushing<'_>,
    (sink, concurrency): (&S, usize),
    store: &mut Store,
    report: &mut ResultsReport,
) -> Result<()> {
    let Pushing {
        opts,
        progress,
        base,
        give_up_before,
        dir,
        holds,
        allowed,
    } = *p;
    let mut ensured: HashMap<String, Result<(), SinkError>> = HashMap::new();
    let mut phase_started = false;
    // the keys once, then each chunk's rows by key
    let due = store.outbox_due_keys(opts.respect_backoff)?;
    for keys in due.chunks(CHUNK) {
        let rows = store.outbox_pending_rows(keys)?;
        let rows = without_held(rows, holds, report);
        if rows.is_empty() {
            continue;
        }
        if !phase_started {
            progress.phase("pushing results", None);
            phase_started = true;
        }
        // line items first, once per run each
        let wanted: Vec<LineItem> = line_items_of(&rows, allowed)
            .into_iter()
            .filter(|li| sink.needs_line_items() && !ensured.contains_key(&li.sourced_id))
            .collect();
        let li_results: Vec<(LineItem, Result<crate::connector::Written, SinkError>)> =
            futures::stream::iter(wanted)
                .map(|li| async move {
                    let r = sink.put_line_item(&li).await;
                    (li, r)
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
        let mut li_audit = Vec::new();
        for (li, r) in li_results {
            let mut e = base.clone();
            e.action = AuditAction::LineItemPut;
            e.record_kind = AuditKind::LineItem;
            e.record_id = li.sourced_id.clone();
            e.fields = "title,class,category,assignDate,dueDate,resultValueMax".into();
            match &r {
                Ok(w) => {
                    e.endpoint = w.endpoint.clone();
                    e.payload_sha256 = Some(w.payload_sha256.clone());
                    e.outcome = AuditOutcome::Ok;
                }
                Err(err) => {
                    e.endpoint = err.endpoint.clone();
                    e.payload_sha256 = err.payload_sha256.clone();
                    e.outcome = AuditOutcome::Failed;
                    e.detail = Some(err.message.clone());
                }
            }
            li_audit.push(e);
            report.line_items += r.is_ok() as usize;
            ensured.insert(li.sourced_id, r.map(|_| ()));
        }
        store.audit_append(&li_audit)?;
        // then the results
        let by_key: HashMap<String, &OutboxRow> = rows.iter().map(|r| (r.key.clone(), r)).collect();
        let ensured = &ensured;
        let stream = futures::stream::iter(rows.iter())
            .map(|row| async move {
                let mut gr = gradebook_result(row, allowed);
                // the state id is the ECK iD with privacy.use_eck_id
                let state_id = dir.audit_id(&gr.student_id);
                if state_id.starts_with("https://ketenid.nl/") {
                    gr.eckid = Some(state_id.to_string());
                }
                let res = match ensured.get(&gr.line_item_id) {
                    Some(Err(e)) => Err(SinkError {
                        message: format!(
                            "line item {} not accepted: {}",
                            gr.line_item_id, e.message
                        ),
                        payload_sha256: None,
                        ..e.clone()
                    }),
                    _ => sink.put_result(&gr).await,
                };
                let audit_id = dir.audit_id(&gr.student_id).to_string();
                outcome_of(row, gradebook_entry(row, &gr), res, base, &audit_id)
            })
            .buffer_unordered(concurrency);
        record_as_they_finish(
            stream,
            RESULTS_PER_COMMIT,
            progress,
            store,
            report,
            &by_key,
            give_up_before,
        )
        .await?;
        if report.interrupted {
            break;
        }
    }
    Ok(())
}
