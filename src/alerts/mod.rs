//! Alerts that reach a person (`[alerts]`): a safety refusal, runs failing
//! for longer than `failing_after`, results failed or parked for longer
//! than `results_stuck_after`, a broken audit chain, and a daily digest;
//! to a webhook and/or by e-mail ([`send`]).
//!
//! The conditions are read from the state database ([`evaluate`]), so the
//! daemon (after each run and every few minutes) and one-shot runs find
//! the same ones. When an alert was sent is kept in the `meta` table
//! (`alert.sent.<key>`), so the same alert goes out at most once per
//! `repeat_after`, whoever checks. Messages carry counts, run numbers and
//! record ids, never names, e-mail addresses or grades.

pub mod send;

use anyhow::Result;
use chrono::{DateTime, Local, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::config::Loaded;
use crate::config::alerts::Alerts;
use crate::store::{Store, audit};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

/// One notification.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// What it is about (`refused.roster`, `failing.results`,
    /// `results.stuck`, `audit.broken`, `digest`, `test`): the rate limit
    /// is per key.
    pub key: String,
    pub severity: Severity,
    pub title: String,
    pub text: String,
    pub facts: Vec<(String, String)>,
}

const AUDIT_CHECKED: &str = "alert.audit_checked_at";
const DIGEST_DATE: &str = "alert.digest_date";

fn meta_get(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

fn meta_set(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
        params![key, value],
    )?;
    Ok(())
}

fn parse_utc(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn ago(d: chrono::Duration) -> String {
    humantime::format_duration(std::time::Duration::from_secs(d.num_seconds().max(0) as u64))
        .to_string()
}

/// At most this much of an error message goes into an alert.
fn clip(s: &str) -> String {
    const MAX: usize = 300;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

struct Run {
    id: i64,
    started_at: String,
    finished_at: Option<String>,
    outcome: String,
    error: Option<String>,
}

fn last_run(conn: &Connection, kind: &str) -> Result<Option<Run>> {
    Ok(conn
        .query_row(
            "SELECT id, started_at, finished_at, outcome, error FROM runs
             WHERE kind = ?1 AND outcome != 'running' ORDER BY id DESC LIMIT 1",
            [kind],
            |r| {
                Ok(crate::store::from_row!(r => Run { id, started_at, finished_at, outcome, error }))
            },
        )
        .optional()?)
}

/// Every alert whose condition holds now (before the rate limit). The
/// audit chain is walked when `verify_audit`; the digest is included when
/// `digest`.
pub fn evaluate(
    l: &Loaded,
    a: &Alerts,
    store: &Store,
    now: DateTime<Utc>,
    verify_audit: bool,
    digest: bool,
) -> Result<Vec<Alert>> {
    let conn = store.conn();
    let inst = &l.config.institution.name;
    let mut out = Vec::new();
    for kind in ["roster", "results"] {
        let Some(run) = last_run(conn, kind)? else {
            continue;
        };
        if run.outcome == "refused" {
            out.push(Alert {
                key: format!("refused.{kind}"),
                severity: Severity::Critical,
                title: format!("sisync {inst}: {kind} run refused by the safety gate"),
                text: format!(
                    "Run {} wrote nothing: {}. Check the SIS export; if the change is real, run `sisync sync roster --allow-mass-changes`.",
                    run.id,
                    clip(run.error.as_deref().unwrap_or("no reason recorded"))
                ),
                facts: vec![
                    ("run".into(), run.id.to_string()),
                    (
                        "at".into(),
                        run.finished_at.clone().unwrap_or_else(|| run.started_at.clone()),
                    ),
                ],
            });
        }
        if run.outcome == "failed" {
            // the first failure since the last run that was not a failure
            let (first_id, first_at, n): (i64, String, i64) = conn.query_row(
                "SELECT MIN(id), MIN(started_at), COUNT(*) FROM runs
                 WHERE kind = ?1 AND outcome = 'failed' AND id > COALESCE(
                   (SELECT MAX(id) FROM runs WHERE kind = ?1 AND outcome NOT IN ('failed', 'running')), 0)",
                [kind],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let since = parse_utc(&first_at).unwrap_or(now);
            let failing = now - since;
            if failing.to_std().unwrap_or_default() >= a.failing_after {
                out.push(Alert {
                    key: format!("failing.{kind}"),
                    severity: Severity::Critical,
                    title: format!("sisync {inst}: {kind} runs failing for {}", ago(failing)),
                    text: format!(
                        "{n} {kind} runs in a row failed (runs {first_id}..{}). Last error: {}",
                        run.id,
                        clip(run.error.as_deref().unwrap_or("none recorded"))
                    ),
                    facts: vec![
                        ("failing since".into(), first_at),
                        ("failed runs".into(), n.to_string()),
                        ("last run".into(), run.id.to_string()),
                    ],
                });
            }
        }
    }
    let cutoff =
        now - chrono::Duration::from_std(a.results_stuck_after).unwrap_or(chrono::Duration::MAX);
    let cutoff = cutoff.to_rfc3339();
    let mut stuck: Vec<(String, i64)> = Vec::new();
    {
        let mut q = conn.prepare(
            "SELECT state, COUNT(*) FROM results
             WHERE state IN ('failed', 'parked') AND updated_at < ?1 GROUP BY state ORDER BY state",
        )?;
        let rows = q.query_map([&cutoff], |r| Ok((r.get(0)?, r.get(1)?)))?;
        for r in rows {
            stuck.push(r?);
        }
    }
    if !stuck.is_empty() {
        let keys: Vec<String> = conn
            .prepare(
                "SELECT key FROM results WHERE state IN ('failed', 'parked') AND updated_at < ?1
                 ORDER BY updated_at LIMIT 10",
            )?
            .query_map([&cutoff], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let total: i64 = stuck.iter().map(|(_, n)| n).sum();
        let counts: Vec<String> = stuck.iter().map(|(s, n)| format!("{n} {s}")).collect();
        out.push(Alert {
            key: "results.stuck".into(),
            severity: Severity::Warning,
            title: format!(
                "sisync {inst}: {total} results not delivered for over {}",
                humantime::format_duration(a.results_stuck_after)
            ),
            text: format!(
                "{} for longer than {}. `sisync status` gives the reasons; fix them, then `sisync sync results --retry-failed`. Oldest result keys: {}",
                counts.join(", "),
                humantime::format_duration(a.results_stuck_after),
                keys.join(", ")
            ),
            facts: stuck
                .iter()
                .map(|(s, n)| (s.clone(), n.to_string()))
                .collect(),
        });
    }
    if verify_audit {
        let r = audit::verify(conn)?;
        if let Some((seq, why)) = &r.first_broken {
            out.push(Alert {
                key: "audit.broken".into(),
                severity: Severity::Critical,
                title: format!("sisync {inst}: audit log verification failed"),
                text: format!(
                    "The audit chain is broken at entry {seq}: {why}. Keep a copy of the state database for investigation and run `sisync audit verify`."
                ),
                facts: vec![("first broken entry".into(), seq.to_string())],
            });
        }
    }
    if digest {
        out.push(daily_digest(l, store, now)?);
    }
    Ok(out)
}

/// Counts of the last 24 hours and the state now.
fn daily_digest(l: &Loaded, store: &Store, now: DateTime<Utc>) -> Result<Alert> {
    let conn = store.conn();
    let since = (now - chrono::Duration::hours(24)).to_rfc3339();
    let mut facts = Vec::new();
    let mut q = conn.prepare(
        "SELECT kind, outcome, COUNT(*) FROM runs WHERE started_at >= ?1
         GROUP BY kind, outcome ORDER BY kind, outcome",
    )?;
    let rows = q.query_map([&since], |r| <(String, String, i64)>::try_from(r))?;
    for r in rows {
        let (kind, outcome, n) = r?;
        facts.push((format!("{kind} runs {outcome}"), n.to_string()));
    }
    let writes: i64 = conn.query_row(
        "SELECT COUNT(*) FROM audit WHERE at >= ?1 AND direction = 'out'",
        [&since],
        |r| r.get(0),
    )?;
    facts.push(("records sent".into(), writes.to_string()));
    let o = crate::store::glance::outbox(conn)?;
    for (state, n) in &o.by_state {
        facts.push((format!("results {state}"), n.to_string()));
    }
    let holds = store.holds().map(|h| h.len()).unwrap_or(0);
    facts.push(("privacy holds".into(), holds.to_string()));
    let v = audit::verify(conn)?;
    facts.push((
        "audit log".into(),
        format!(
            "{} entries, {}",
            v.entries,
            if v.ok() {
                "chain intact"
            } else {
                "CHAIN BROKEN"
            }
        ),
    ));
    Ok(Alert {
        key: "digest".into(),
        severity: Severity::Info,
        title: format!(
            "sisync {}: daily digest {}",
            l.config.institution.name,
            now.with_timezone(&Local).format("%Y-%m-%d")
        ),
        text: "The last 24 hours and the state now (counts only).".into(),
        facts,
    })
}

/// Whether the digest is due now: past `digest_at` today (local time)
/// and not sent today.
fn digest_due(a: &Alerts, conn: &Connection, now: DateTime<Utc>) -> Result<bool> {
    let Some(at) = a
        .digest_at
        .as_deref()
        .and_then(|t| chrono::NaiveTime::parse_from_str(t.trim(), "%H:%M").ok())
    else {
        return Ok(false);
    };
    let local = now.with_timezone(&Local);
    if local.time() < at {
        return Ok(false);
    }
    let today = local.format("%Y-%m-%d").to_string();
    Ok(meta_get(conn, DIGEST_DATE)?.as_deref() != Some(today.as_str()))
}

/// Serialises checks in this process: a check after a run and the timer
/// must not send the same alert twice.
static CHECKING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Evaluate, rate-limit, send and record. Returns the keys sent. Errors
/// (state database unreadable, every channel failing) are logged, never
/// fatal for the caller.
pub async fn check(l: &Loaded) -> Vec<String> {
    let Some(a) = l.config.alerts.clone() else {
        return Vec::new();
    };
    let _one = CHECKING.lock().await;
    let now = Utc::now();
    let path = l.config.state.path.clone();
    if !path.exists() {
        return Vec::new();
    }
    let l2 = l.clone();
    let a2 = a.clone();
    let due = tokio::task::spawn_blocking(move || -> Result<Vec<Alert>> {
        let store = Store::open(&path)?;
        let conn = store.conn();
        let verify = match meta_get(conn, AUDIT_CHECKED)?.and_then(|t| parse_utc(&t)) {
            Some(t) => now - t >= chrono::Duration::hours(24),
            None => true,
        };
        let digest = digest_due(&a2, conn, now)?;
        let all = evaluate(&l2, &a2, &store, now, verify, digest)?;
        if verify {
            meta_set(conn, AUDIT_CHECKED, &now.to_rfc3339())?;
        }
        let repeat = chrono::Duration::from_std(a2.repeat_after).unwrap_or(chrono::Duration::MAX);
        let mut due = Vec::new();
        for alert in all {
            let last =
                meta_get(conn, &format!("alert.sent.{}", alert.key))?.and_then(|t| parse_utc(&t));
            if alert.key == "digest" || last.is_none_or(|t| now - t >= repeat) {
                due.push(alert);
            }
        }
        Ok(due)
    })
    .await;
    let due = match due {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => {
            tracing::warn!("alerts: cannot read the state database: {e:#}");
            return Vec::new();
        }
        Err(e) => {
            tracing::warn!("alerts: check failed: {e}");
            return Vec::new();
        }
    };
    let mut sent = Vec::new();
    for alert in due {
        if send::deliver(l, &a, &alert).await {
            sent.push(alert.key.clone());
        }
    }
    if !sent.is_empty() {
        let path = l.config.state.path.clone();
        let keys = sent.clone();
        let local_today = now.with_timezone(&Local).format("%Y-%m-%d").to_string();
        let rec = tokio::task::spawn_blocking(move || -> Result<()> {
            let store = Store::open(&path)?;
            for k in &keys {
                meta_set(store.conn(), &format!("alert.sent.{k}"), &now.to_rfc3339())?;
                if k == "digest" {
                    meta_set(store.conn(), DIGEST_DATE, &local_today)?;
                }
            }
            Ok(())
        })
        .await;
        if let Ok(Err(e)) | Err(e) = rec.map_err(anyhow::Error::from) {
            tracing::warn!("alerts: sent, but cannot record it (it may be sent again): {e:#}");
        }
    }
    sent
}

/// `sisync alerts test`: one test message through every channel.
pub async fn send_test(l: &Loaded) -> bool {
    let Some(a) = &l.config.alerts else {
        return false;
    };
    let alert = Alert {
        key: "test".into(),
        severity: Severity::Info,
        title: format!("sisync {}: test alert", l.config.institution.name),
        text: "This channel receives sisync alerts. Nothing to do.".into(),
        facts: vec![("sent by".into(), crate::store::audit::actor())],
    };
    send::deliver(l, a, &alert).await
}
