//! The result half of sisync: read results from the platform into the
//! outbox, then push what is pending to the SIS gradebook.
//!
//! Exactly once: a result is committed to the outbox (with its idempotency
//! key) before anything is pushed, and each push uses sourcedIds derived
//! from that key, so a push repeated after a crash or timeout overwrites
//! the same SIS record. A result is marked pushed, with its audit entry, in
//! one transaction after the SIS accepted it.
//!
//! Keys: `sha256("session" | session id | exam)` when the platform gives a
//! session id, else `sha256("result" | candidate | exam | date)`; values
//! are not part of the key, so a re-marked result is the same result with
//! new values (pushed again, audited as `result.update`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use futures::StreamExt;
use serde::Serialize;

use crate::config::results::{
    AfterRead, ClassRule, ResultSinkCfg, ResultSourceCfg, Results, pattern_matches,
};
use crate::config::{Loaded, ResultField};
use crate::connector::gradebook_csv::GradebookCsv;
use crate::connector::gradebook_rest::GradebookRest;
use crate::connector::qti_results::{self, QtiOptions};
use crate::connector::{GradebookResult, LineItem, PushError, ResultSink, csv_results};
use crate::http::{Auth, Http};
use crate::model::{ExamResult, SourceIssue};
use crate::store::audit::{AuditEntry, sha256_hex};
use crate::store::holds::Holds;
use crate::store::outbox::{Feed, Incoming, IngestCounts, OutboxRow, OutboxSummary, PushOutcome};
use crate::store::{RecordKind, Store};
use crate::sync::Progress;

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

/// Idempotency key of a result.
pub fn result_key(r: &ExamResult) -> String {
    let mut h = String::new();
    match &r.session_id {
        Some(s) => {
            h.push_str("session\0");
            h.push_str(s);
        }
        None => {
            h.push_str("result\0");
            h.push_str(&r.candidate);
            h.push('\0');
            h.push_str(r.taken_at.as_deref().unwrap_or(""));
        }
    }
    h.push('\0');
    h.push_str(&r.exam);
    sha256_hex(h.as_bytes())[..32].to_string()
}

/// Hash of the values pushed for a result.
pub fn value_hash(r: &ExamResult) -> String {
    let f = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    let s = format!(
        "{}\0{}\0{}\0{}\0{}",
        f(r.score),
        f(r.max_score),
        r.passed.map(|p| p.to_string()).unwrap_or_default(),
        r.grade.as_deref().unwrap_or(""),
        r.taken_at.as_deref().unwrap_or("")
    );
    sha256_hex(s.as_bytes())[..32].to_string()
}

/// sourcedId of the line item for an exam in a class.
pub fn line_item_id(exam: &str, class: &str) -> String {
    format!(
        "sisync-li-{}",
        &sha256_hex(format!("{exam}\0{class}").as_bytes())[..24]
    )
}

/// sourcedId of the SIS result for an outbox key.
pub fn result_sourced_id(key: &str) -> String {
    format!("sisync-r-{key}")
}

/// What the roster sync knows: who is who, and who is in which class.
#[derive(Default)]
pub struct Directory {
    /// State ids (the pseudonym when ids are pseudonymised).
    users: HashSet<String>,
    by_platform_id: HashMap<String, String>,
    classes: HashMap<String, Vec<String>>,
    /// pseudonym → SIS id, and back.
    sis_of: HashMap<String, String>,
    state_of: HashMap<String, String>,
}

impl Directory {
    pub fn load(store: &Store) -> Result<Directory> {
        let users = store.load_state(RecordKind::User)?;
        let mut d = Directory::default();
        for (id, st) in users {
            if let Some(p) = st.platform_id {
                d.by_platform_id.insert(p, id.clone());
            }
            d.users.insert(id);
        }
        for (group, members) in store.load_members()? {
            for m in members {
                d.classes.entry(m).or_default().push(group.clone());
            }
        }
        for v in d.classes.values_mut() {
            v.sort();
        }
        d.sis_of = store.pseudonym_map()?;
        d.state_of = d
            .sis_of
            .iter()
            .map(|(p, s)| (s.clone(), p.clone()))
            .collect();
        Ok(d)
    }

    /// The state id of a candidate id the platform gave: its externalId
    /// (pseudonym or SIS id), the platform's own id, or the SIS id.
    fn state_id(&self, candidate: &str) -> Option<&str> {
        if let Some(u) = self.users.get(candidate) {
            return Some(u);
        }
        if let Some(u) = self.by_platform_id.get(candidate) {
            return Some(u);
        }
        self.state_of
            .get(candidate)
            .filter(|p| self.users.contains(*p))
            .map(String::as_str)
    }

    /// The id the audit log uses for a SIS id (its pseudonym when ids are
    /// pseudonymised).
    pub fn audit_id<'a>(&'a self, sis_id: &'a str) -> &'a str {
        self.state_of
            .get(sis_id)
            .map(String::as_str)
            .unwrap_or(sis_id)
    }

    /// The SIS sourcedId of a candidate id the platform gave.
    pub fn person(&self, candidate: &str) -> Option<&str> {
        let state = self.state_id(candidate)?;
        Some(self.sis_of.get(state).map(String::as_str).unwrap_or(state))
    }

    /// Match a result to a person and class: `(person, class, parked reason)`.
    pub fn place(
        &self,
        cfg: &Results,
        candidate: &str,
        exam: &str,
    ) -> (Option<String>, Option<String>, Option<String>) {
        let (Some(state), Some(person)) = (self.state_id(candidate), self.person(candidate)) else {
            return (
                None,
                None,
                Some(
                    "candidate unknown to the roster sync; parked until a roster sync brings them"
                        .into(),
                ),
            );
        };
        let classes = self
            .classes
            .get(state)
            .map(Vec::as_slice)
            .unwrap_or_default();
        match choose_class(
            &cfg.class_rules,
            cfg.default_class.as_deref(),
            exam,
            classes,
        ) {
            Ok(c) => (Some(person.to_string()), Some(c), None),
            Err(why) => (Some(person.to_string()), None, Some(why)),
        }
    }
}

/// Which of a candidate's classes a result of `exam` belongs to.
pub fn choose_class(
    rules: &[ClassRule],
    default_class: Option<&str>,
    exam: &str,
    classes: &[String],
) -> Result<String, String> {
    let rules: Vec<&ClassRule> = rules
        .iter()
        .filter(|r| pattern_matches(&r.exam, exam))
        .collect();
    let (candidates, what): (Vec<&String>, String) = if rules.is_empty() {
        (classes.iter().collect(), "class".into())
    } else {
        (
            classes
                .iter()
                .filter(|c| rules.iter().any(|r| pattern_matches(&r.class, c)))
                .collect(),
            format!("class matching results.class_rules for exam {exam}"),
        )
    };
    match (candidates.as_slice(), default_class) {
        ([one], _) => Ok((*one).clone()),
        ([], Some(d)) => Ok(d.to_string()),
        ([], None) => Err(format!(
            "candidate is in no {what}; add a results.class_rules entry or set results.default_class"
        )),
        (many, _) => Err(format!(
            "candidate is in {} of which one cannot be chosen ({what}); add or narrow a results.class_rules entry for exam {exam}",
            many.len()
        )),
    }
}

fn incoming(cfg: &Results, dir: &Directory, r: ExamResult) -> Incoming {
    let (person_id, class_id, parked) = dir.place(cfg, &r.candidate, &r.exam);
    Incoming {
        key: result_key(&r),
        value_hash: value_hash(&r),
        person_id,
        class_id,
        parked,
        result: r,
    }
}

/// One results sync.
pub async fn results(
    loaded: &Loaded,
    opts: ResultsOptions,
    actor: &str,
    progress: &dyn Progress,
) -> Result<ResultsReport> {
    let Some(rcfg) = &loaded.config.results else {
        return Err(anyhow!(
            "{}: no [results] section; add one to sync results (see README, \"Results\")",
            loaded.file.display()
        ));
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
    let r = run(loaded, rcfg, opts, actor, progress, &mut store, &mut report).await;
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
            Err(e) => store.finish_run(id, "failed", &summary, Some(&format!("{e:#}")))?,
            Ok(()) => {
                let first = report.document_errors.first().cloned();
                store.finish_run(
                    id,
                    if report.interrupted {
                        "interrupted"
                    } else if report.partial() {
                        "partial"
                    } else {
                        "ok"
                    },
                    &summary,
                    first.as_deref(),
                )?
            }
        }
    }
    r.map(|()| report)
}

async fn run(
    loaded: &Loaded,
    rcfg: &Results,
    opts: ResultsOptions,
    actor: &str,
    progress: &dyn Progress,
    store: &mut Store,
    report: &mut ResultsReport,
) -> Result<()> {
    let dir = Directory::load(store)?;
    // parked results first: the roster may know them by now
    let parked = store.outbox_parked()?;
    if !parked.is_empty() {
        let updates: Vec<_> = parked
            .iter()
            .map(|p| {
                let (person, class, why) = dir.place(rcfg, &p.candidate, &p.line_item);
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
    read_documents(loaded, rcfg, opts, actor, progress, store, &dir, report).await?;
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
    let pushed = push(loaded, rcfg, opts, actor, progress, store, report, &dir).await;
    report.push_seconds = started.elapsed().as_secs_f64();
    pushed
}

/// A result document to read.
enum Doc {
    File(PathBuf),
    Url(String),
}

#[allow(clippy::too_many_arguments)]
async fn read_documents(
    loaded: &Loaded,
    rcfg: &Results,
    opts: ResultsOptions,
    actor: &str,
    progress: &dyn Progress,
    store: &mut Store,
    dir: &Directory,
    report: &mut ResultsReport,
) -> Result<()> {
    let (docs, after, http) = match &rcfg.source {
        ResultSourceCfg::QtiFolder(f) => (list_folder(&f.path, "xml")?, f.after, None),
        ResultSourceCfg::Csv(f) => (list_folder(&f.path, "csv")?, f.after, None),
        ResultSourceCfg::QtiHttp(h) => {
            let auth = match &h.auth {
                Some(a) => loaded.result_auth("results.source.auth", a, h.timeout)?,
                None => Auth::None,
            };
            let http = Http::new(h.timeout, auth, h.max_retries)?;
            let urls = qti_results::list_documents(&http, &h.list_url)
                .await
                .context("cannot list result documents; nothing was read")?;
            (
                urls.into_iter().map(Doc::Url).collect(),
                AfterRead::Keep,
                Some(http),
            )
        }
    };
    for doc in docs {
        let (origin, bytes) = match &doc {
            Doc::File(p) => (p.display().to_string(), None),
            Doc::Url(u) => {
                let http = http.as_ref().expect("URL documents come with a client");
                match http
                    .send(reqwest::Method::GET, u, None, "application/xml", false)
                    .await
                {
                    Ok(reply) => (u.clone(), Some(reply.body)),
                    Err(e) => {
                        report
                            .document_errors
                            .push(format!("{e}; tried again next run"));
                        continue;
                    }
                }
            }
        };
        let sha = match (&doc, &bytes) {
            (_, Some(b)) => sha256_hex(b),
            (Doc::File(p), None) => match file_sha256(p) {
                Ok(s) => s,
                Err(e) => {
                    report.document_errors.push(format!(
                        "{}: cannot read ({e}); check permissions",
                        p.display()
                    ));
                    continue;
                }
            },
            (Doc::Url(_), None) => unreachable!("URL documents are fetched"),
        };
        if store.document_seen(&origin, &sha)? {
            report.documents_skipped += 1;
            if let (Doc::File(p), AfterRead::Move, false) = (&doc, after, opts.dry_run) {
                move_to(p, "done")?; // read before a crash, not moved yet
            }
            continue;
        }
        let name = match &doc {
            Doc::File(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| origin.clone()),
            Doc::Url(u) => u.clone(),
        };
        let mut issues = Vec::new();
        let mut parse = |each: &mut dyn FnMut(Incoming) -> Result<()>| -> Result<()> {
            let input: Box<dyn Read> = match (&doc, &bytes) {
                (_, Some(b)) => Box::new(&b[..]),
                (Doc::File(p), None) => Box::new(
                    std::fs::File::open(p)
                        .with_context(|| format!("{}: cannot open", p.display()))?,
                ),
                (Doc::Url(_), None) => unreachable!("URL documents are fetched"),
            };
            let mut on_result = |r: ExamResult| {
                progress.rows(1);
                each(incoming(rcfg, dir, r))
            };
            match &rcfg.source {
                ResultSourceCfg::Csv(c) => {
                    let rep = csv_results::read(
                        input,
                        &name,
                        &c.columns,
                        c.delimiter.as_bytes()[0],
                        &mut on_result,
                    )?;
                    issues = rep.issues;
                }
                ResultSourceCfg::QtiFolder(f) => {
                    let o = QtiOptions {
                        grade_outcomes: f.grade_outcomes.clone(),
                    };
                    issues = qti_results::read(input, &name, &o, &mut on_result)?.issues;
                }
                ResultSourceCfg::QtiHttp(h) => {
                    let o = QtiOptions {
                        grade_outcomes: h.grade_outcomes.clone(),
                    };
                    issues = qti_results::read(input, &name, &o, &mut on_result)?.issues;
                }
            }
            Ok(())
        };
        let read = tokio::task::block_in_place(|| {
            if opts.dry_run {
                store.outbox_preview(&mut parse as Feed<'_>)
            } else {
                let entry = AuditEntry {
                    actor: actor.to_string(),
                    run_id: report.run_id,
                    direction: "in".into(),
                    endpoint: origin.clone(),
                    action: "results.read".into(),
                    record_kind: "document".into(),
                    record_id: String::new(),
                    fields: String::new(),
                    payload_sha256: Some(sha.clone()),
                    outcome: "ok".into(),
                    detail: None,
                };
                store.outbox_ingest((&origin, &sha), &entry, &mut parse as Feed<'_>)
            }
        });
        match read {
            Ok(counts) => {
                report.documents += 1;
                report.ingested.add(counts);
                report.issues.append(&mut issues);
                tracing::info!(
                    document = %origin,
                    new = counts.new,
                    changed = counts.changed,
                    unchanged = counts.unchanged,
                    parked = counts.parked,
                    "results read"
                );
                if let (Doc::File(p), AfterRead::Move, false) = (&doc, after, opts.dry_run) {
                    move_to(p, "done")?;
                }
            }
            Err(e) => {
                let mut line = format!("{e:#}");
                if let (Doc::File(p), AfterRead::Move, false) = (&doc, after, opts.dry_run) {
                    let to = move_to(p, "failed")?;
                    line.push_str(&format!(
                        "; nothing of it was stored, the file is now {} (fix it and move it back)",
                        to.display()
                    ));
                }
                tracing::error!("{line}");
                report.document_errors.push(line);
            }
        }
    }
    Ok(())
}

/// Files with extension `ext` directly in `dir`, sorted by name.
fn list_folder(dir: &Path, ext: &str) -> Result<Vec<Doc>> {
    let rd = std::fs::read_dir(dir).with_context(|| {
        format!(
            "cannot list results folder {}; check results.source.path",
            dir.display()
        )
    })?;
    let mut files = Vec::new();
    for e in rd {
        let e = e?;
        let p = e.path();
        let hidden = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden
            && e.file_type()?.is_file()
            && p.extension().is_some_and(|x| x.eq_ignore_ascii_case(ext))
        {
            files.push(p);
        }
    }
    files.sort();
    Ok(files.into_iter().map(Doc::File).collect())
}

fn file_sha256(p: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(p)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// Move a processed file into `sub/` next to it (never overwriting).
fn move_to(p: &Path, sub: &str) -> Result<PathBuf> {
    let dir = p.parent().unwrap_or(Path::new(".")).join(sub);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create {}; check permissions", dir.display()))?;
    let name = p.file_name().unwrap_or_default().to_string_lossy();
    let mut to = dir.join(&*name);
    let mut n = 1;
    while to.exists() {
        to = dir.join(format!("{name}.{n}"));
        n += 1;
    }
    std::fs::rename(p, &to).with_context(|| {
        format!(
            "cannot move {} to {}; check permissions",
            p.display(),
            to.display()
        )
    })?;
    Ok(to)
}

/// The date pushed with a result: its own, else the day it was read.
fn result_date(row: &OutboxRow) -> String {
    row.taken_at
        .as_deref()
        .unwrap_or(&row.first_seen)
        .chars()
        .take(10)
        .collect()
}

/// The result as the SIS gets it: only the values `privacy.result_fields`
/// allows.
fn gradebook_result(row: &OutboxRow, allowed: &[ResultField]) -> GradebookResult {
    let class = row.class_id.clone().unwrap_or_default();
    let ok = |f: ResultField| allowed.contains(&f);
    GradebookResult {
        sourced_id: result_sourced_id(&row.key),
        line_item_id: line_item_id(&row.line_item, &class),
        class_id: class,
        student_id: row.person_id.clone().unwrap_or_default(),
        score: row.score.filter(|_| ok(ResultField::Score)),
        max_score: row.max_score.filter(|_| ok(ResultField::MaxScore)),
        passed: row.passed.filter(|_| ok(ResultField::Passed)),
        grade: row.grade.clone().filter(|_| ok(ResultField::Grade)),
        date: result_date(row),
    }
}

fn sent_fields(r: &GradebookResult) -> String {
    let mut f = vec!["student", "lineItem", "scoreDate"];
    if r.score.is_some() {
        f.push("score");
    }
    if crate::connector::text_score(r).is_some() {
        f.push("textScore");
    }
    if r.passed.is_some() {
        f.push("passed");
    }
    if r.max_score.is_some() {
        f.push("maxScore");
    }
    f.join(",")
}

/// When to try a result again after `attempts` failed pushes: 1, 2, 4 …
/// minutes, at most an hour.
fn next_try(attempts: i64) -> String {
    let mins = 1u64 << attempts.clamp(0, 6);
    (chrono::Utc::now() + Duration::from_secs(60 * mins.min(60)))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// What happened to one result push, for the outbox and the audit log.
fn outcome_of(
    row: &OutboxRow,
    gr: &GradebookResult,
    res: Result<crate::connector::Written, PushError>,
    base: &AuditEntry,
    audit_id: &str,
) -> (String, PushOutcome, AuditEntry) {
    let update = row.pushed_hash.is_some();
    let mut e = base.clone();
    e.action = if update {
        "result.update"
    } else {
        "result.push"
    }
    .into();
    e.record_kind = "result".into();
    e.record_id = audit_id.to_string();
    e.fields = sent_fields(gr);
    let detail = format!("key={} lineItem={}", row.key, gr.line_item_id);
    let outcome = match res {
        Ok(w) => {
            e.endpoint = w.endpoint;
            e.payload_sha256 = Some(w.payload_sha256);
            e.outcome = "ok".into();
            e.detail = Some(detail);
            PushOutcome::Pushed {
                value_hash: row.value_hash.clone(),
            }
        }
        Err(err) => {
            e.endpoint = err.endpoint.clone();
            e.payload_sha256 = err.payload_sha256.clone();
            e.outcome = "failed".into();
            e.detail = Some(format!("{detail} {}", err.message));
            let mut reason = err.message.clone();
            if let Some(m) = &err.server_message {
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
    };
    (row.key.clone(), outcome, e)
}

fn count(
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
        }
    }
}

const CHUNK: usize = 5_000;

#[allow(clippy::too_many_arguments)]
async fn push(
    loaded: &Loaded,
    rcfg: &Results,
    opts: ResultsOptions,
    actor: &str,
    progress: &dyn Progress,
    store: &mut Store,
    report: &mut ResultsReport,
    dir: &Directory,
) -> Result<()> {
    // restricted (or erased) persons: their results stay in the outbox
    let holds = store.holds()?;
    let give_up_before = (chrono::Utc::now()
        - chrono::Duration::from_std(rcfg.give_up_after).unwrap_or(chrono::Duration::MAX))
    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
    .to_string();
    let base = AuditEntry {
        actor: actor.to_string(),
        run_id: report.run_id,
        direction: "out".into(),
        endpoint: String::new(),
        action: String::new(),
        record_kind: String::new(),
        record_id: String::new(),
        fields: String::new(),
        payload_sha256: None,
        outcome: String::new(),
        detail: None,
    };
    match &rcfg.sink {
        ResultSinkCfg::OnerosterCsv(c) => {
            let rows = store.outbox_due(opts.respect_backoff, "", usize::MAX)?;
            let rows = without_held(rows, &holds, report);
            if rows.is_empty() {
                return Ok(());
            }
            progress.phase("writing results", Some(rows.len() as u64));
            let sink = GradebookCsv::new(&c.path, &c.category, c.school.as_deref());
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
                    outcome_of(row, gr, res, &base, dir.audit_id(&gr.student_id))
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
        ResultSinkCfg::OnerosterRest(g) => {
            let auth = loaded.result_auth("results.sink.auth", &g.auth, g.timeout)?;
            let http = Http::new(g.timeout, auth, g.max_retries)?
                .with_rate_limit(g.rate_limit)
                .with_concurrency(g.concurrency);
            let sink = GradebookRest::new(&g.base_url, http, &g.category, g.school.as_deref());
            push_records(
                &sink,
                g.concurrency,
                opts,
                progress,
                store,
                report,
                (&base, &give_up_before),
                (dir, &holds),
                &loaded.config.privacy.result_fields,
            )
            .await?;
        }
    }
    Ok(())
}

/// Rows whose person is restricted or erased stay pending (counted).
fn without_held(rows: Vec<OutboxRow>, holds: &Holds, report: &mut ResultsReport) -> Vec<OutboxRow> {
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
        if let Some(m) = row.max_score.filter(|_| with_max) {
            li.max_score = Some(li.max_score.map_or(m, |x: f64| x.max(m)));
        }
        if date < li.date {
            li.date = date;
        }
    }
    out.into_values().collect()
}

#[allow(clippy::too_many_arguments)]
async fn push_records<S: ResultSink>(
    sink: &S,
    concurrency: usize,
    opts: ResultsOptions,
    progress: &dyn Progress,
    store: &mut Store,
    report: &mut ResultsReport,
    (base, give_up_before): (&AuditEntry, &str),
    (dir, holds): (&Directory, &Holds),
    allowed: &[ResultField],
) -> Result<()> {
    let mut ensured: HashMap<String, Result<(), PushError>> = HashMap::new();
    let mut after = String::new();
    let mut phase_started = false;
    loop {
        let rows = store.outbox_due(opts.respect_backoff, &after, CHUNK)?;
        let Some(last) = rows.last() else { break };
        after = last.key.clone();
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
            .filter(|li| !ensured.contains_key(&li.sourced_id))
            .collect();
        let li_results: Vec<(LineItem, Result<crate::connector::Written, PushError>)> =
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
            e.action = "lineitem.put".into();
            e.record_kind = "lineItem".into();
            e.record_id = li.sourced_id.clone();
            e.fields = "title,class,category,assignDate,dueDate,resultValueMax".into();
            match &r {
                Ok(w) => {
                    e.endpoint = w.endpoint.clone();
                    e.payload_sha256 = Some(w.payload_sha256.clone());
                    e.outcome = "ok".into();
                }
                Err(err) => {
                    e.endpoint = err.endpoint.clone();
                    e.payload_sha256 = err.payload_sha256.clone();
                    e.outcome = "failed".into();
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
        let mut stream = futures::stream::iter(rows.iter())
            .map(|row| async move {
                let gr = gradebook_result(row, allowed);
                let res = match ensured.get(&gr.line_item_id) {
                    Some(Err(e)) => Err(PushError {
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
                outcome_of(row, &gr, res, base, &audit_id)
            })
            .buffer_unordered(concurrency);
        let mut batch = Vec::with_capacity(256);
        while let Some(o) = stream.next().await {
            progress.tick();
            batch.push(o);
            if progress.stop_requested() {
                // pushes still in flight are dropped: their results stay
                // pending and go again (same ids) next run
                report.interrupted = true;
                break;
            }
            if batch.len() >= 256 {
                count(report, &by_key, &batch, give_up_before);
                store.outbox_record(&batch, give_up_before)?;
                batch.clear();
            }
        }
        drop(stream);
        count(report, &by_key, &batch, give_up_before);
        store.outbox_record(&batch, give_up_before)?;
        if report.interrupted {
            break;
        }
    }
    Ok(())
}

/// `check-config --connect` for the results endpoints.
pub async fn connect_checks(loaded: &Loaded) -> Vec<(String, Result<String>)> {
    let mut out = Vec::new();
    let Some(r) = &loaded.config.results else {
        return out;
    };
    if let ResultSourceCfg::QtiHttp(h) = &r.source {
        let res = async {
            let auth = match &h.auth {
                Some(a) => loaded.result_auth("results.source.auth", a, h.timeout)?,
                None => Auth::None,
            };
            let http = Http::new(h.timeout, auth, 0)?;
            let started = std::time::Instant::now();
            let docs = qti_results::list_documents(&http, &h.list_url).await?;
            Ok(format!(
                "GET {}: OK, {} documents listed, {} ms",
                h.list_url,
                docs.len(),
                started.elapsed().as_millis()
            ))
        }
        .await;
        out.push(("results in".to_string(), res));
    }
    if let ResultSinkCfg::OnerosterRest(g) = &r.sink {
        let res = async {
            let auth = loaded.result_auth("results.sink.auth", &g.auth, g.timeout)?;
            let http = Http::new(g.timeout, auth, 0)?;
            let sink = GradebookRest::new(&g.base_url, http, &g.category, g.school.as_deref());
            let started = std::time::Instant::now();
            let line = sink.ping().await?;
            Ok(format!(
                "{line}, authenticated, {} ms",
                started.elapsed().as_millis()
            ))
        }
        .await;
        out.push(("results out".to_string(), res));
    }
    out
}

/// One line for `check-config` about the results section.
pub fn describe(r: &Results) -> (String, String) {
    let source = match &r.source {
        ResultSourceCfg::QtiFolder(f) => format!(
            "qti-folder {} (QTI 2.1/3.0; files {} after reading)",
            f.path.display(),
            match f.after {
                AfterRead::Move => "move to done/ or failed/",
                AfterRead::Keep => "stay",
            }
        ),
        ResultSourceCfg::Csv(f) => {
            format!("csv {} (delimiter {:?})", f.path.display(), f.delimiter)
        }
        ResultSourceCfg::QtiHttp(h) => format!("qti-http {}", h.list_url),
    };
    let sink = match &r.sink {
        ResultSinkCfg::OnerosterRest(g) => format!(
            "oneroster-rest {}{} (gradebook 1.2, {} at once)",
            g.base_url,
            crate::connector::gradebook_rest::PATH,
            g.concurrency
        ),
        ResultSinkCfg::OnerosterCsv(c) => format!("oneroster-csv {}", c.path.display()),
    };
    (
        format!("{source} → {sink}"),
        format!(
            "{} class rules; give up after {}",
            r.class_rules.len(),
            humantime::format_duration(r.give_up_after)
        ),
    )
}
