//! Delivering the outbox to an OKE SIS (flow 5): each result is matched to
//! its registration (read from the platform with the result, found at the
//! SIS for QTI/CSV results, remembered once found), then written; outcomes
//! and audit entries are committed in batches, so a crash or a kill leaves
//! at most the writes in flight to be repeated, and a repeated write lands
//! on the same association.

use std::collections::HashMap;

use anyhow::Result;
use futures::StreamExt;

use super::ResultsReport;
use super::push::{
    CHUNK, Pushing, allowed_value, count, failed, field_list, outcome_of, record_as_they_finish,
    result_date, without_held,
};
use crate::config::ResultField;
use crate::connector::results::sink::oke::{Delivery, NO_REGISTRATION, OkeSink};
use crate::model::{OkeResult, ResultValue};
use crate::store::Store;
use crate::store::audit::{AuditAction, AuditKind, AuditOutcome};
use crate::store::outbox::{OutboxRow, PushOutcome};

/// What flow 5 sends for a row, with only the values
/// `privacy.result_fields` allows.
fn delivery(row: &OutboxRow, association: &str, allowed: &[ResultField]) -> Delivery {
    let ok = |f: ResultField| allowed.contains(&f);
    let oke: Option<OkeResult> = row
        .oke
        .as_deref()
        .and_then(|j| serde_json::from_str(j).ok());
    let integral = |v: Option<f64>| v.filter(|x| x.fract() == 0.0).map(|x| x as i64);
    let date = result_date(row);
    match oke {
        // read from an OKE platform: its values, passed on
        Some(o) => Delivery {
            association_id: association.to_string(),
            attempt: o.attempt.max(1),
            state: o.state,
            attendance: o.attendance,
            pass: o.pass.filter(|_| ok(ResultField::Passed)),
            value: ResultValue {
                grade: o.score.filter(|_| ok(ResultField::Grade)),
                ..Default::default()
            },
            final_result: o.final_result,
            raw_score: o.raw_score.filter(|_| ok(ResultField::Score)),
            max_raw_score: o.max_raw_score.filter(|_| ok(ResultField::MaxScore)),
            result_date: o
                .result_date
                .filter(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok())
                .unwrap_or(date),
            test_date: o.test_date.filter(|t| is_date_time(t)),
        },
        // QTI or CSV: a finished test, present
        None => {
            let v = allowed_value(&row.value, allowed);
            Delivery {
                association_id: association.to_string(),
                attempt: 1,
                state: "completed".into(),
                attendance: "present".into(),
                pass: None,
                final_result: false,
                raw_score: integral(v.score),
                max_raw_score: integral(v.max_score),
                result_date: date,
                test_date: row.taken_at.clone().filter(|t| is_date_time(t)),
                value: v,
            }
        }
    }
}

fn is_date_time(t: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(t).is_ok()
}

fn sent_fields(d: &Delivery) -> String {
    field_list(
        "result.state,resultDate,attendance,final",
        &[
            (d.pass.is_some() || d.value.passed.is_some(), "pass"),
            (d.value.grade.is_some() || d.value.score.is_some(), "score"),
            (d.raw_score.is_some(), "rawScore"),
            (d.max_raw_score.is_some(), "maxRawScore"),
            (d.test_date.is_some(), "testDate"),
        ],
    )
}

/// What a flow 5 delivery's audit entry says: the fields sent, and the
/// outbox key with the association and attempt.
fn oke_entry(row: &OutboxRow, d: &Delivery) -> (String, String) {
    (
        sent_fields(d),
        format!(
            "key={} association={} attempt={}",
            row.key, d.association_id, d.attempt
        ),
    )
}

pub(super) async fn push_oke(
    p: &Pushing<'_>,
    (mut sink, concurrency): (Box<OkeSink>, usize),
    store: &mut Store,
    report: &mut ResultsReport,
) -> Result<()> {
    let (progress, base, dir, allowed) = (p.progress, p.base, p.dir, p.allowed);
    let give_up_before = p.give_up_before;
    // results parked for want of a registration are looked for again
    let mut rows: Vec<OutboxRow> = store
        .outbox_parked()?
        .into_iter()
        .filter(|r| {
            r.reason
                .as_deref()
                .is_some_and(|x| x.starts_with(NO_REGISTRATION))
        })
        .collect();
    for keys in store.outbox_due_keys(p.opts.respect_backoff)?.chunks(CHUNK) {
        rows.extend(store.outbox_pending_rows(keys)?);
    }
    let rows = without_held(rows, p.holds, report);
    if rows.is_empty() {
        return Ok(());
    }
    progress.phase("delivering results (OKE flow 5)", Some(rows.len() as u64));
    let by_key: HashMap<String, &OutboxRow> = rows.iter().map(|r| (r.key.clone(), r)).collect();
    // 1. the registration of each result
    let mut ready: Vec<(&OutboxRow, String)> = Vec::new();
    let mut early = Vec::new();
    // the audit entry of a match that did not come about
    let match_entry = |row: &OutboxRow| {
        let mut e = base.clone();
        e.action = AuditAction::ResultMatch;
        e.record_kind = AuditKind::Result;
        e.record_id = dir
            .audit_id(row.person_id.as_deref().unwrap_or(&row.candidate))
            .to_string();
        e
    };
    for row in &rows {
        if progress.stop_requested() {
            report.interrupted = true;
            break;
        }
        if let Some(a) = row.oke_association.clone() {
            ready.push((row, a));
            continue;
        }
        let date = result_date(row);
        let mut who: Vec<&str> = vec![&row.candidate];
        if let Some(p) = row.person_id.as_deref().filter(|p| *p != row.candidate) {
            who.push(p);
        }
        match sink.find_registration(&who, &row.line_item, &date).await {
            Ok(Ok(a)) => {
                store.outbox_set_oke_association(&row.key, &a)?;
                ready.push((row, a));
            }
            Ok(Err(no)) => {
                // parked for the same reason as before: nothing new to
                // record (no audit entry per run and parked result)
                if row.state == "parked" && row.reason.as_deref() == Some(no.0.as_str()) {
                    continue;
                }
                let mut e = match_entry(row);
                e.outcome = AuditOutcome::Parked;
                e.detail = Some(format!("key={} {}", row.key, no.0));
                early.push((row.key.clone(), PushOutcome::Parked { reason: no.0 }, e));
            }
            Err(err) => {
                let mut e = match_entry(row);
                e.endpoint = err.endpoint.clone();
                e.outcome = AuditOutcome::Failed;
                e.detail = Some(format!("key={} {}", row.key, err.message));
                early.push((row.key.clone(), failed(row, &err), e));
            }
        }
    }
    count(report, &by_key, &early, give_up_before);
    store.outbox_record(&early, give_up_before)?;
    if report.interrupted {
        return Ok(());
    }
    // 2. the writes
    let sink = &sink;
    let stream = futures::stream::iter(ready)
        .map(|(row, association)| async move {
            let d = delivery(row, &association, allowed);
            let res = sink.deliver(&d).await;
            let who = row.person_id.as_deref().unwrap_or(&row.candidate);
            outcome_of(row, oke_entry(row, &d), res, base, dir.audit_id(who))
        })
        .buffer_unordered(concurrency);
    record_as_they_finish(stream, 16, progress, store, report, &by_key, give_up_before).await
}
