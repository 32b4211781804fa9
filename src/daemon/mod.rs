//! `sisync run`: the daemon. A scheduler that starts roster (and, once it
//! exists, results) syncs on their intervals, one run at a time; signals
//! (SIGTERM/SIGINT stop after the current batch, SIGHUP reloads the
//! config); systemd notifications; the admin HTTP endpoint.
//!
//! A run is a [`Job`] executed by a [`JobFn`] from [`Runners`]: the
//! scheduler knows nothing about what a run does.

pub mod admin;
pub mod metrics;
pub mod notify;
pub mod presence;
pub mod status_page;

use std::collections::VecDeque;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Local, NaiveTime, TimeZone, Utc};
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;

use crate::config::{Loaded, Secret};
use crate::exit::Exit;
use crate::store::{RunOutcome, Store};
use crate::sync::lock::RunLock;
use crate::sync::{self, Progress, RosterOptions, RunError};

/// What the scheduler can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// A roster sync; `full` as `sisync sync roster --full`.
    Roster { full: bool },
    /// A results sync.
    Results,
    /// `sisync reconcile` without `--fix`: read the platform back, report.
    Reconcile,
}

impl Job {
    /// The `runs.kind` and metrics label.
    pub fn kind(self) -> &'static str {
        match self {
            Job::Roster { .. } => "roster",
            Job::Results => "results",
            Job::Reconcile => "reconcile",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Job::Roster { full: false } => "roster",
            Job::Roster { full: true } => "full roster",
            Job::Results => "results",
            Job::Reconcile => "reconcile",
        }
    }
}

/// What a job gets.
pub struct JobInput {
    /// The config in force when the run started.
    pub loaded: Arc<Loaded>,
    pub full: bool,
    /// Progress display and the stop request (SIGTERM).
    pub progress: Arc<Tracker>,
}

/// What a finished job reports.
#[derive(Debug, Clone)]
pub struct JobReport {
    pub outcome: RunOutcome,
    /// (record kind, action, count) for `sisync_records_total`.
    pub records: Vec<(&'static str, &'static str, u64)>,
    /// One line for the log and the status page (no personal data).
    pub note: Option<String>,
}

impl JobReport {
    pub fn new(outcome: RunOutcome) -> JobReport {
        JobReport {
            outcome,
            records: Vec::new(),
            note: None,
        }
    }
}

/// A job's future. It need not be `Send`: each run gets a thread of its own
/// that drives it on the daemon's runtime (`Handle::block_on`, where the
/// sync's blocking source reads may use `block_in_place`).
pub type JobFuture = Pin<Box<dyn Future<Output = Result<JobReport, RunError>>>>;
pub type JobFn = Arc<dyn Fn(JobInput) -> JobFuture + Send + Sync>;

/// The jobs the daemon can run.
#[derive(Clone)]
pub struct Runners {
    pub roster: JobFn,
    /// None: results are not scheduled.
    pub results: Option<JobFn>,
    /// None: reconcile is not scheduled (`schedule.reconcile_every`).
    pub reconcile: Option<JobFn>,
}

impl Runners {
    /// The real jobs.
    pub fn standard() -> Runners {
        Runners {
            roster: Arc::new(|input| Box::pin(roster_job(input))),
            results: results_runner(),
            reconcile: Some(Arc::new(|input| Box::pin(reconcile_job(input)))),
        }
    }
}

/// A scheduled reconcile: report only; a person decides on `--fix`.
async fn reconcile_job(input: JobInput) -> Result<JobReport, RunError> {
    let (report, _) =
        sync::reconcile::run(&input.loaded, false, "daemon", &*input.progress).await?;
    let mut out = JobReport::new(if report.is_clean() {
        RunOutcome::Ok
    } else {
        RunOutcome::Drift
    });
    if !report.is_clean() {
        out.note = Some(format!(
            "the platform differs from what sisync sent: {} missing, {} drifted, {} orphans, {} classes with other members (`sisync reconcile`, `sisync reconcile --fix`)",
            report.missing.len(),
            report.drifted.len(),
            report.orphans.len(),
            report.membership.len()
        ));
    }
    Ok(out)
}

/// The retention purge, at most once a day, after a roster run (which
/// has just told who left). Errors are logged, never fatal.
fn daily_purge(loaded: &Loaded) {
    let run = || -> Result<bool> {
        let _lock = RunLock::acquire(&loaded.config.state.path)?;
        let mut store = Store::open(&loaded.config.state.path)?;
        let due = match store.last_purge()? {
            None => true,
            Some(t) => chrono::DateTime::parse_from_rfc3339(&t)
                .map(|t| Utc::now().signed_duration_since(t) > chrono::Duration::hours(24))
                .unwrap_or(true),
        };
        if due {
            let p = &loaded.config.privacy;
            let r = store.purge(p.retention_days, p.audit_retention_days, "daemon")?;
            crate::store::anchor::record(&store, loaded.config.audit.anchor_file.as_deref())?;
            let files = crate::privacy::files::expire(
                &loaded.config,
                p.keep_deliveries,
                std::time::SystemTime::now(),
            )?;
            if !files.is_empty() {
                tracing::info!(
                    removed = files.len(),
                    keep_deliveries = p.keep_deliveries,
                    "delivered folders and processed result files past privacy.keep_deliveries removed"
                );
            }
            tracing::info!(
                persons = r.persons,
                results = r.removed.results + r.old_results,
                unsent_results = r.expired_unsent,
                "retention purge done"
            );
            if r.expired_unsent > 0 {
                tracing::warn!(
                    unsent_results = r.expired_unsent,
                    retention_days = p.retention_days,
                    "retention purge deleted parked or pending results that never reached the SIS; resolve parked results sooner (sisync status)"
                );
            }
        }
        Ok(due)
    };
    if let Err(e) = run() {
        tracing::warn!("retention purge skipped: {e:#}");
    }
}

/// The results job; scheduled only when the config has a `[results]`
/// section.
fn results_runner() -> Option<JobFn> {
    Some(Arc::new(|input| Box::pin(results_job(input))))
}

/// The results job: one `sync results` as the daemon. Unlike a manual run
/// it leaves results whose next try is not due yet (backoff).
async fn results_job(input: JobInput) -> Result<JobReport, RunError> {
    let opts = crate::sync::results::ResultsOptions {
        dry_run: false,
        retry_failed: false,
        respect_backoff: true,
    };
    let report =
        crate::sync::results::results(&input.loaded, opts, "daemon", &*input.progress).await?;
    let mut out = JobReport::new(RunOutcome::Ok);
    out.records.push(("result", "pushed", report.pushed as u64));
    out.records
        .push(("result", "updated", report.updated as u64));
    out.records
        .push(("result", "retrying", report.retrying as u64));
    out.records.push(("result", "failed", report.failed as u64));
    out.outcome = if report.interrupted {
        out.note = Some("stopped for shutdown; the next run pushes the rest".into());
        RunOutcome::Interrupted
    } else if report.partial() {
        out.note = Some(format!(
            "{} documents unreadable, {} results retrying, {} failed (`sisync status`)",
            report.document_errors.len(),
            report.retrying,
            report.failed
        ));
        RunOutcome::Partial
    } else {
        RunOutcome::Ok
    };
    Ok(out)
}

/// The roster job: one `sync roster` as the daemon.
async fn roster_job(input: JobInput) -> Result<JobReport, RunError> {
    let opts = RosterOptions {
        dry_run: false,
        full: input.full,
        allow_mass_changes: false,
    };
    let report = sync::roster(&input.loaded, opts, "daemon", &*input.progress).await?;
    daily_purge(&input.loaded);
    let mut out = JobReport::new(RunOutcome::Ok);
    if let Some(refusal) = &report.refused {
        out.outcome = RunOutcome::Refused;
        out.note = Some(format!(
            "refused by the safety gate, nothing was written: {refusal}{}",
            report
                .held_plan
                .map(|id| format!(
                    " (held as plan {id}: `sisync plan show {id}`, `sisync plan approve {id}`)"
                ))
                .unwrap_or_default()
        ));
        return Ok(out);
    }
    if let Some(o) = &report.outcome {
        for (kind, t) in [("user", o.users), ("group", o.groups)] {
            out.records.push((kind, "created", t.created as u64));
            out.records.push((kind, "updated", t.updated as u64));
            out.records
                .push((kind, "deactivated", t.deactivated as u64));
            out.records.push((kind, "failed", t.failed as u64));
        }
    }
    out.outcome = if report.interrupted {
        out.note = Some("stopped for shutdown; the next run sends the rest".into());
        RunOutcome::Interrupted
    } else if report.failed() > 0 {
        out.note = Some(format!(
            "{} records failed; they are retried on the next run (`sisync audit list --since 1h`)",
            report.failed()
        ));
        RunOutcome::Partial
    } else if let Some(d) = report.deferred.as_ref().filter(|d| d.total() > 0) {
        out.note = Some(d.to_string());
        RunOutcome::Deferred
    } else {
        RunOutcome::Ok
    };
    metrics::set_freeze(metrics::global(), report.deferred.as_ref());
    Ok(out)
}

/// Progress of the current run, shared by the job (which updates it), the
/// status page and systemd STATUS= lines; also carries the stop request.
pub struct Tracker {
    label: &'static str,
    phase: Mutex<String>,
    done: AtomicU64,
    total: AtomicU64,
    stop: AtomicBool,
    last_status: Mutex<Option<std::time::Instant>>,
}

impl Tracker {
    fn new(label: &'static str) -> Tracker {
        Tracker {
            label,
            phase: Mutex::new("starting".into()),
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            last_status: Mutex::new(None),
        }
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// "syncing roster 1200/5000", "syncing roster: reading source (3000 rows)".
    pub fn line(&self) -> String {
        let phase = self.phase.lock().map(|p| p.clone()).unwrap_or_default();
        let done = self.done.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed);
        if phase == "applying" {
            format!("syncing {} {done}/{total}", self.label)
        } else if done > 0 {
            format!("syncing {}: {phase} ({done} rows)", self.label)
        } else {
            format!("syncing {}: {phase}", self.label)
        }
    }

    /// Send STATUS= at most once a second.
    fn publish(&self, force: bool) {
        let mut last = match self.last_status.lock() {
            Ok(l) => l,
            Err(_) => return,
        };
        let now = std::time::Instant::now();
        if force || last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
            *last = Some(now);
            notify::status(&self.line());
        }
    }
}

impl Progress for Tracker {
    fn phase(&self, name: &str, total: Option<u64>) {
        if let Ok(mut p) = self.phase.lock() {
            *p = name.to_string();
        }
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total.unwrap_or(0), Ordering::Relaxed);
        self.publish(true);
    }
    fn tick(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
        self.publish(false);
    }
    fn rows(&self, n: u64) {
        self.done.store(n, Ordering::Relaxed);
        self.publish(false);
    }
    fn done(&self) {}
    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// One error for the status page; never personal data.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecentError {
    pub at: String,
    pub what: String,
    pub message: String,
}

/// The run in progress: what, since when, how far.
pub type RunNow = (Job, DateTime<Utc>, Arc<Tracker>);

/// What the admin endpoint reads from the running daemon.
pub struct Shared {
    pub config: RwLock<Arc<Loaded>>,
    pub admin_token: RwLock<Option<Secret>>,
    pub started_at: DateTime<Utc>,
    pub current: Mutex<Option<RunNow>>,
    /// (label, when), soonest first.
    pub next: Mutex<Vec<(&'static str, DateTime<Local>)>>,
    pub errors: Mutex<VecDeque<RecentError>>,
}

impl Shared {
    pub fn loaded(&self) -> Arc<Loaded> {
        self.config
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    pub fn state_path(&self) -> PathBuf {
        self.loaded().config.state.path.clone()
    }

    fn error(&self, what: &str, message: String) {
        if let Ok(mut errs) = self.errors.lock() {
            if errs.len() >= 20 {
                errs.pop_front();
            }
            errs.push_back(RecentError {
                at: crate::store::now(),
                what: what.to_string(),
                message,
            });
        }
    }
}

/// Runs waiting for the one in progress: at most one per kind (a second
/// trigger while one waits is coalesced; a full roster run absorbs a
/// normal one).
#[derive(Debug, Default)]
pub struct Queue(VecDeque<Job>);

impl Queue {
    pub fn push(&mut self, job: Job) {
        for j in self.0.iter_mut() {
            match (j, job) {
                (Job::Roster { full }, Job::Roster { full: f }) => {
                    *full |= f;
                    return;
                }
                (Job::Results, Job::Results) | (Job::Reconcile, Job::Reconcile) => return,
                _ => {}
            }
        }
        self.0.push_back(job);
    }

    pub fn pop(&mut self) -> Option<Job> {
        self.0.pop_front()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The next time the local clock shows `at` after `now` (the earlier one
/// when a DST change makes it ambiguous; skipped hours move to the next
/// valid time).
pub fn next_daily(now: DateTime<Local>, at: NaiveTime) -> DateTime<Local> {
    let mut day = now.date_naive();
    for _ in 0..3 {
        let naive = day.and_time(at);
        let candidate = Local.from_local_datetime(&naive).earliest().or_else(|| {
            Local
                .from_local_datetime(&(naive + chrono::Duration::hours(1)))
                .earliest()
        });
        if let Some(c) = candidate.filter(|c| *c > now) {
            return c;
        }
        day = day.succ_opt().unwrap_or(day);
    }
    now + chrono::Duration::days(1)
}

fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    Duration::from_millis(fastrand::u64(
        0..=max.as_millis().min(u64::MAX as u128) as u64,
    ))
}

/// Convert a scheduler instant to wall-clock time for display.
fn wall(at: Instant) -> DateTime<Local> {
    let now = Instant::now();
    let local = Local::now();
    if at >= now {
        local + chrono::Duration::from_std(at - now).unwrap_or_default()
    } else {
        local - chrono::Duration::from_std(now - at).unwrap_or_default()
    }
}

fn until(at: DateTime<Local>) -> Instant {
    Instant::now() + (at - Local::now()).to_std().unwrap_or_default()
}

/// The scheduler's clock: when each kind of run is next due.
struct Plan {
    roster: Instant,
    results: Option<Instant>,
    full: Option<Instant>,
    reconcile: Option<Instant>,
}

impl Plan {
    /// Right after start (or a reload): the next run of each kind is due
    /// one interval after the last one recorded in the state file, so a
    /// restart does not trigger a run; never in the past.
    fn new(loaded: &Loaded, last: &LastRuns, results: bool) -> Plan {
        let s = &loaded.config.schedule;
        let due = |last: Option<DateTime<Utc>>, every: Duration| {
            let since = last
                .map(|t| (Utc::now() - t).to_std().unwrap_or_default())
                .unwrap_or(every);
            Instant::now() + every.saturating_sub(since) + jitter(s.jitter)
        };
        let roster = due(last.roster, s.roster_every);
        Plan {
            roster,
            // at the very first start the roster goes first: results read
            // before any roster would all be parked until the next run
            results: results.then(|| {
                let r = due(last.results, s.results_every);
                if last.roster.is_none() {
                    r.max(roster + Duration::from_secs(1))
                } else {
                    r
                }
            }),
            full: s
                .full_at_time()
                .map(|t| until(next_daily(Local::now(), t)) + jitter(s.jitter)),
            reconcile: s
                .reconcile_every
                .filter(|_| {
                    crate::connector::platform::platform_sink(&loaded.config.platform).reconciles()
                })
                .map(|every| due(last.reconcile, every)),
        }
    }

    fn shown(&self, loaded: &Loaded) -> Vec<(&'static str, DateTime<Local>)> {
        let mut v = vec![("roster", wall(self.roster))];
        if let Some(r) = self.results {
            v.push(("results", wall(r)));
        }
        if let Some(f) = self.full {
            v.push(("full roster", wall(f)));
        }
        if let Some(r) = self.reconcile {
            v.push(("reconcile", wall(r)));
        }
        v.sort_by_key(|(_, t)| *t);
        let _ = loaded;
        v
    }
}

/// When the last run of each kind started (from the state file).
#[derive(Default)]
struct LastRuns {
    roster: Option<DateTime<Utc>>,
    results: Option<DateTime<Utc>>,
    reconcile: Option<DateTime<Utc>>,
}

fn last_runs(store: &Store) -> Result<LastRuns> {
    let mut out = LastRuns::default();
    for r in store.recent_runs(50)? {
        let t = DateTime::parse_from_rfc3339(&r.started_at)
            .ok()
            .map(|t| t.with_timezone(&Utc));
        match r.kind.as_str() {
            "roster" if out.roster.is_none() => out.roster = t,
            "results" if out.results.is_none() => out.results = t,
            "reconcile" if out.reconcile.is_none() => out.reconcile = t,
            _ => {}
        }
    }
    Ok(out)
}

/// Runs left `running` by a process that is gone (a crash, or a run cut
/// off at shutdown) are marked `interrupted`: only when nobody holds the
/// run lock, so a run in progress elsewhere is never touched.
fn close_stale_runs(state: &Path, why: &str) -> Result<usize> {
    let Ok(_lock) = RunLock::acquire(state) else {
        return Ok(0);
    };
    let store = Store::open(state)?;
    store.close_stale_runs(why)
}

fn idle_line(plan: &[(&'static str, DateTime<Local>)], fine: bool) -> String {
    let fmt = if fine { "%H:%M:%S" } else { "%H:%M" };
    let parts: Vec<String> = plan
        .iter()
        .map(|(l, t)| format!("next {l} sync {}", t.format(fmt)))
        .collect();
    format!("idle, {}", parts.join(", "))
}

/// `sisync run`. Returns the exit code: 0 after a clean shutdown.
pub async fn run(config_path: PathBuf, loaded: Loaded, runners: Runners) -> Result<Exit> {
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut sighup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let m = metrics::global();

    let state = loaded.config.state.path.clone();
    // held for the daemon's life: `sisync restore` and a second daemon
    // on the same state are refused while it runs
    let _presence = presence::PresenceLock::acquire(&state)?;
    let closed = close_stale_runs(&state, "the process running it ended before it finished")
        .with_context(|| format!("cannot open the state database {}", state.display()))?;
    if closed > 0 {
        tracing::warn!(
            runs = closed,
            "marked runs left unfinished by an earlier process as interrupted"
        );
    }
    metrics::expose_endpoints(&loaded);
    let last = last_runs(&Store::open(&state)?)?;
    let admin_token = loaded.admin_token()?;
    let shared = Arc::new(Shared {
        config: RwLock::new(Arc::new(loaded)),
        admin_token: RwLock::new(admin_token),
        started_at: Utc::now(),
        current: Mutex::new(None),
        next: Mutex::new(Vec::new()),
        errors: Mutex::new(VecDeque::new()),
    });
    let loaded = shared.loaded();
    let admin_stop = tokio_util::sync::CancellationToken::new();
    let listen = loaded.config.admin.listen.clone();
    let server = match loaded.config.admin.listen_addr() {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
                format!(
                    "cannot listen on {addr} (admin.listen in {}); pick a free port or set admin.listen = \"off\"",
                    config_path.display()
                )
            })?;
            tracing::info!(%addr, "admin endpoint listening (/healthz, /readyz, /metrics, /)");
            Some(tokio::spawn(admin::serve(
                listener,
                shared.clone(),
                admin_stop.clone(),
            )))
        }
        None => None,
    };

    let mut plan = Plan::new(
        &loaded,
        &last,
        runners.results.is_some() && loaded.config.results.is_some(),
    );
    let fine = |l: &Loaded| l.config.schedule.roster_every < Duration::from_secs(120);
    let publish_idle = |plan: &Plan, shared: &Shared| -> String {
        let l = shared.loaded();
        let shown = plan.shown(&l);
        if let Ok(mut n) = shared.next.lock() {
            *n = shown.clone();
        }
        idle_line(&shown, fine(&l))
    };
    let line = publish_idle(&plan, &shared);
    notify::ready(&line);
    tracing::info!(config = %config_path.display(), "sisync daemon ready: {line}");

    let watchdog_every = notify::watchdog_interval();
    let mut watchdog = tokio::time::interval(watchdog_every.unwrap_or(Duration::from_secs(3600)));
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    // alert conditions that arise without a run (results waiting too
    // long, the daily digest, the daily audit check); first tick at once
    let mut alert_tick = tokio::time::interval(Duration::from_secs(300));
    alert_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let mut queue = Queue::default();
    let mut current: Option<Current> = None;

    let code = loop {
        let far = Instant::now() + Duration::from_secs(365 * 86_400);
        tokio::select! {
            _ = tokio::time::sleep_until(plan.roster) => {
                queue.push(Job::Roster { full: false });
                let s = &shared.loaded().config.schedule;
                plan.roster = Instant::now() + s.roster_every + jitter(s.jitter);
            }
            _ = tokio::time::sleep_until(plan.results.unwrap_or(far)), if plan.results.is_some() => {
                queue.push(Job::Results);
                let s = &shared.loaded().config.schedule;
                plan.results = Some(Instant::now() + s.results_every + jitter(s.jitter));
            }
            _ = tokio::time::sleep_until(plan.reconcile.unwrap_or(far)), if plan.reconcile.is_some() => {
                queue.push(Job::Reconcile);
                let s = &shared.loaded().config.schedule;
                plan.reconcile = s.reconcile_every.map(|e| Instant::now() + e + jitter(s.jitter));
            }
            _ = tokio::time::sleep_until(plan.full.unwrap_or(far)), if plan.full.is_some() => {
                queue.push(Job::Roster { full: true });
                let s = &shared.loaded().config.schedule;
                plan.full = s.full_at_time().map(|t| {
                    until(next_daily(Local::now() + chrono::Duration::minutes(1), t)) + jitter(s.jitter)
                });
            }
            res = async { (&mut current.as_mut().expect("guarded").3).await }, if current.is_some() => {
                let (job, started, _, _) = current.take().expect("guarded");
                finished(&shared, job, started.elapsed(), flatten(res));
            }
            _ = watchdog.tick(), if watchdog_every.is_some() => notify::watchdog(),
            _ = alert_tick.tick() => check_alerts(&shared),
            _ = sighup.recv() => {
                reload(&config_path, &shared, &listen);
                let s = shared.loaded();
                let last = Store::open(&s.config.state.path).and_then(|st| last_runs(&st)).unwrap_or_default();
                plan = Plan::new(
                    &s,
                    &last,
                    runners.results.is_some() && s.config.results.is_some(),
                );
            }
            _ = sigterm.recv() => break shutdown(&shared, current.take(), "SIGTERM", &mut sigterm, &mut sigint).await,
            _ = sigint.recv() => break shutdown(&shared, current.take(), "SIGINT", &mut sigterm, &mut sigint).await,
        }
        if current.is_none() {
            if let Some(job) = queue.pop() {
                let runner = match job {
                    Job::Roster { .. } => Some(runners.roster.clone()),
                    Job::Results => runners.results.clone(),
                    Job::Reconcile => runners.reconcile.clone(),
                };
                if let Some(runner) = runner {
                    let tracker = Arc::new(Tracker::new(job.label()));
                    let input = JobInput {
                        loaded: shared.loaded(),
                        full: matches!(job, Job::Roster { full: true }),
                        progress: tracker.clone(),
                    };
                    tracing::info!(job = job.label(), "run starting");
                    m.running.set(1);
                    tracker.publish(true);
                    if let Ok(mut c) = shared.current.lock() {
                        *c = Some((job, Utc::now(), tracker.clone()));
                    }
                    match start(runner, input) {
                        Ok(rx) => current = Some((job, std::time::Instant::now(), tracker, rx)),
                        Err(e) => finished(&shared, job, Duration::ZERO, Err(e.into())),
                    }
                }
            }
        }
        if current.is_none() {
            notify::status(&publish_idle(&plan, &shared));
        } else {
            publish_idle(&plan, &shared);
        }
    };
    admin_stop.cancel();
    if let Some(server) = server {
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    }
    tracing::info!("sisync daemon stopped");
    Ok(code)
}

/// Run a job on a thread of its own; its report arrives on the channel.
fn start(
    runner: JobFn,
    input: JobInput,
) -> Result<tokio::sync::oneshot::Receiver<Result<JobReport, RunError>>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let handle = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("sisync-run".into())
        .spawn(move || {
            let report = handle.block_on(runner(input));
            let _ = tx.send(report);
        })
        .context("cannot start a thread for the run")?;
    Ok(rx)
}

fn flatten(
    r: Result<Result<JobReport, RunError>, tokio::sync::oneshot::error::RecvError>,
) -> Result<JobReport, RunError> {
    r.unwrap_or_else(|_| {
        Err(anyhow::anyhow!(
            "the run ended without a report (it panicked: a bug; please report it with the log)"
        )
        .into())
    })
}

/// Send the alerts that are due, in the background (`[alerts]`).
fn check_alerts(shared: &Shared) {
    let l = shared.loaded();
    if l.config.alerts.is_some() {
        tokio::spawn(async move {
            crate::alerts::check(&l).await;
        });
    }
}

/// Log, count and show one finished run, then check the alerts. The
/// daemon carries on whatever happened: a failed run is retried at the
/// next tick.
fn finished(shared: &Shared, job: Job, took: Duration, res: Result<JobReport, RunError>) {
    finished_run(shared, job, took, res);
    check_alerts(shared);
}

fn finished_run(shared: &Shared, job: Job, took: Duration, res: Result<JobReport, RunError>) {
    let m = metrics::global();
    m.running.set(0);
    if let Ok(mut c) = shared.current.lock() {
        *c = None;
    }
    let secs = took.as_secs_f64();
    match res {
        Ok(r) => {
            for (kind, action, n) in &r.records {
                m.records_written(kind, action, *n);
            }
            m.run_finished(job.kind(), r.outcome.as_str(), secs);
            match (r.outcome, &r.note) {
                (RunOutcome::Ok, _) => {
                    tracing::info!(job = job.label(), outcome = %r.outcome, seconds = secs, "run finished")
                }
                (_, note) => {
                    let note = note.clone().unwrap_or_default();
                    tracing::warn!(job = job.label(), outcome = %r.outcome, seconds = secs, "run finished: {note}");
                    if r.outcome != RunOutcome::Interrupted {
                        shared.error(job.label(), format!("{}: {note}", r.outcome));
                    }
                }
            }
        }
        Err(RunError::Busy(busy)) => {
            m.run_finished(job.kind(), "busy", secs);
            tracing::warn!(job = job.label(), "run skipped: {busy}");
        }
        Err(RunError::Failed(e)) => {
            m.run_finished(job.kind(), RunOutcome::Failed.as_str(), secs);
            let msg = format!("{e:#}");
            tracing::error!(
                job = job.label(),
                seconds = secs,
                "run failed, retried at the next tick: {msg}"
            );
            shared.error(job.label(), msg);
        }
    }
}

/// SIGHUP: read and check the config file again; keep the old one if the
/// new one is bad.
fn reload(path: &Path, shared: &Shared, listen: &str) {
    let m = metrics::global();
    let outcome = crate::connector::load(path).and_then(|l| Ok((l.admin_token()?, l)));
    match outcome {
        Ok((token, new)) => {
            if new.config.admin.listen != listen {
                tracing::warn!(
                    "admin.listen changed to {}; the endpoint stays on {listen} until a restart",
                    new.config.admin.listen
                );
            }
            if let Ok(mut c) = shared.config.write() {
                *c = Arc::new(new);
            }
            if let Ok(mut t) = shared.admin_token.write() {
                *t = token;
            }
            m.reloads
                .get_or_create(&metrics::OutcomeLabels {
                    outcome: "ok".into(),
                })
                .inc();
            tracing::info!(config = %path.display(), "config reloaded");
        }
        Err(e) => {
            m.reloads
                .get_or_create(&metrics::OutcomeLabels {
                    outcome: "failed".into(),
                })
                .inc();
            tracing::error!("config reload failed, keeping the previous config: {e}");
            shared.error(
                "config reload",
                format!("{e}; the previous config stays in force"),
            );
        }
    }
}

type Current = (
    Job,
    std::time::Instant,
    Arc<Tracker>,
    tokio::sync::oneshot::Receiver<Result<JobReport, RunError>>,
);

/// SIGTERM/SIGINT: let the current run finish the records in flight and
/// commit (at most `schedule.shutdown_timeout`), then exit 0. A second
/// signal stops at once.
async fn shutdown(
    shared: &Shared,
    current: Option<Current>,
    signal_name: &str,
    sigterm: &mut tokio::signal::unix::Signal,
    sigint: &mut tokio::signal::unix::Signal,
) -> Exit {
    let Some((job, started, tracker, mut handle)) = current else {
        notify::stopping("stopping");
        tracing::info!("{signal_name}: stopping (no run in progress)");
        return Exit::Ok;
    };
    let timeout = shared.loaded().config.schedule.shutdown_timeout;
    let line = format!("stopping: finishing the {} run", job.label());
    notify::stopping(&line);
    tracing::info!(
        "{signal_name}: {line} (at most {})",
        humantime::format_duration(timeout)
    );
    tracker.request_stop();
    let res = tokio::select! {
        r = &mut handle => Some(r),
        _ = tokio::time::sleep(timeout) => None,
        _ = sigterm.recv() => None,
        _ = sigint.recv() => None,
    };
    match res {
        Some(r) => finished(shared, job, started.elapsed(), flatten(r)),
        None => {
            // The run's thread ends with the process: every record
            // committed so far stays (each commit is one SQLite
            // transaction), an open transaction is rolled back by SQLite,
            // and the next start marks the run `interrupted`.
            tracing::warn!(
                "the {} run did not finish its batch in time; exiting without it. What was committed stays; the next run does the rest",
                job.label()
            );
            metrics::global().run_finished(
                job.kind(),
                RunOutcome::Interrupted.as_str(),
                started.elapsed().as_secs_f64(),
            );
        }
    }
    Exit::Ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_while_waiting_are_coalesced() {
        let mut q = Queue::default();
        q.push(Job::Roster { full: false });
        q.push(Job::Results);
        q.push(Job::Roster { full: false });
        q.push(Job::Results);
        assert_eq!(q.len(), 2);
        q.push(Job::Roster { full: true });
        assert_eq!(
            q.pop(),
            Some(Job::Roster { full: true }),
            "full absorbs normal"
        );
        assert_eq!(q.pop(), Some(Job::Results));
        assert!(q.is_empty());
    }

    #[test]
    fn daily_full_run_is_the_next_occurrence() {
        let at = NaiveTime::from_hms_opt(3, 0, 0).unwrap();
        let before = Local.with_ymd_and_hms(2026, 11, 20, 2, 0, 0).unwrap();
        assert_eq!(
            next_daily(before, at),
            Local.with_ymd_and_hms(2026, 11, 20, 3, 0, 0).unwrap()
        );
        let after = Local.with_ymd_and_hms(2026, 11, 20, 3, 0, 0).unwrap();
        assert_eq!(
            next_daily(after, at),
            Local.with_ymd_and_hms(2026, 11, 21, 3, 0, 0).unwrap()
        );
    }

    #[test]
    fn jitter_stays_within_bounds() {
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
        for _ in 0..100 {
            assert!(jitter(Duration::from_secs(2)) <= Duration::from_secs(2));
        }
    }

    #[test]
    fn idle_status_line_names_the_next_runs() {
        let t = Local.with_ymd_and_hms(2026, 11, 20, 14, 0, 0).unwrap();
        assert_eq!(
            idle_line(&[("roster", t)], false),
            "idle, next roster sync 14:00"
        );
        assert_eq!(
            idle_line(
                &[("roster", t), ("results", t + chrono::Duration::seconds(5))],
                true
            ),
            "idle, next roster sync 14:00:00, next results sync 14:00:05"
        );
    }

    #[test]
    fn tracker_lines_follow_the_phases() {
        let t = Tracker::new("roster");
        t.phase("reading source", None);
        t.rows(3000);
        assert_eq!(t.line(), "syncing roster: reading source (3000 rows)");
        t.phase("applying", Some(5000));
        for _ in 0..1200 {
            t.tick();
        }
        assert_eq!(t.line(), "syncing roster 1200/5000");
        assert!(!t.stop_requested());
        t.request_stop();
        assert!(t.stop_requested());
    }
}
