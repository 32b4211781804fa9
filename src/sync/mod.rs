//! The sync engine: source → policy → planner → safety gate → applier.
//! It knows no wire format: connectors are built here from the config and
//! used through their traits.

pub mod apply;
pub mod apply_exams;
pub mod exams;
pub mod freeze;
pub mod held;
pub mod lock;
pub mod plan;
pub mod reconcile;
pub mod results;
pub mod safety;

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::config::Loaded;
use crate::connector::platform::Writer;
use crate::model::{Roster, SourceIssue};
use crate::privacy::policy::Policy;
use crate::store::{RunOutcome, Store};
use apply::{Context, Outcome};
use plan::{Plan, State};
use safety::Refusal;

#[derive(Debug, Clone, Copy, Default)]
pub struct RosterOptions {
    pub dry_run: bool,
    pub full: bool,
    pub allow_mass_changes: bool,
}

/// Why a run gave no report: it did not start because another run holds
/// the run lock (the daemon skips the tick), or it failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Always [`lock::LockError::Busy`].
    #[error(transparent)]
    Busy(lock::LockError),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<lock::LockError> for RunError {
    fn from(e: lock::LockError) -> RunError {
        match e {
            busy @ lock::LockError::Busy { .. } => RunError::Busy(busy),
            other => RunError::Failed(other.into()),
        }
    }
}

impl RunError {
    /// As a plain error, for callers that do not tell the two apart.
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            RunError::Busy(e) => e.into(),
            RunError::Failed(e) => e,
        }
    }
}

/// Callbacks for progress display (a bar on a terminal, nothing otherwise).
pub trait Progress: Sync {
    fn phase(&self, name: &str, total: Option<u64>);
    fn tick(&self);
    fn rows(&self, n: u64);
    fn done(&self);
    /// True once the run should stop after the records in flight (the
    /// daemon got SIGTERM); what was done is committed, the rest waits for
    /// the next run.
    fn stop_requested(&self) -> bool {
        false
    }
}

/// Progress that shows nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn phase(&self, _: &str, _: Option<u64>) {}
    fn tick(&self) {}
    fn rows(&self, _: u64) {}
    fn done(&self) {}
}

/// What one roster sync did (or would do).
#[derive(Debug, Clone, Serialize)]
pub struct RosterReport {
    pub run_id: Option<i64>,
    /// `--full` (or the daemon's daily full run) was asked for.
    pub full: bool,
    pub source_format: String,
    pub dry_run: bool,
    pub plan: Plan,
    pub outcome: Option<Outcome>,
    #[serde(serialize_with = "refusal_text")]
    pub refused: Option<Refusal>,
    pub issues: Vec<SourceIssue>,
    pub ignored: usize,
    pub out_of_scope: usize,
    pub delivered: Option<PathBuf>,
    /// Stopped before every planned record was sent (see
    /// [`Progress::stop_requested`]).
    pub interrupted: bool,
    /// The id of the held plan, when the gate refused.
    pub held_plan: Option<i64>,
    /// What a freeze window held back.
    pub deferred: Option<freeze::Deferred>,
}

fn refusal_text<S: serde::Serializer>(r: &Option<Refusal>, s: S) -> Result<S::Ok, S::Error> {
    match r {
        Some(r) => s.serialize_some(&r.to_string()),
        None => s.serialize_none(),
    }
}

impl RosterReport {
    pub fn failed(&self) -> usize {
        self.outcome.as_ref().map(Outcome::failed).unwrap_or(0)
    }
}

/// `check-config --connect`: one authenticated request to every network
/// endpoint of the config, with its latency.
pub async fn connect_checks(loaded: &Loaded) -> Vec<(String, Result<String>)> {
    let mut out = Vec::new();
    let source = crate::connector::source::roster_source(&loaded.config.source);
    out.extend(source.test_connection(loaded).await);
    let platform = crate::connector::platform::platform_sink(&loaded.config.platform);
    out.extend(platform.test_connection(loaded).await);
    out.extend(results::connect_checks(loaded).await);
    out
}

pub use crate::http::block_on;

/// `since` (RFC 3339) asks an incremental source for changes only; file
/// sources always read everything.
pub fn read_source(
    loaded: &Loaded,
    progress: &dyn Progress,
    since: Option<&str>,
) -> Result<Roster> {
    crate::connector::source::roster_source(&loaded.config.source)
        .read(loaded, since, &|n| progress.rows(n))
}

/// One roster sync.
pub async fn roster(
    loaded: &Loaded,
    opts: RosterOptions,
    actor: &str,
    progress: &dyn Progress,
) -> Result<RosterReport, RunError> {
    let cfg = &loaded.config;
    // One run at a time per state file (a dry run writes nothing).
    let _lock = if opts.dry_run {
        None
    } else {
        Some(lock::RunLock::acquire(&cfg.state.path)?)
    };
    let mut store = if opts.dry_run {
        Store::open_for_dry_run(&cfg.state.path)?
    } else {
        Store::open(&cfg.state.path)?
    };
    // Incremental sources pull only changes, unless --full or it is time
    // for the periodic full pull.
    let since = match crate::connector::source::roster_source(&cfg.source).full_every() {
        // edexml-drop writes the whole roster: always a full pull
        Some(_)
            if crate::connector::platform::platform_sink(&cfg.platform).wants_whole_roster() =>
        {
            None
        }
        Some(every) if !opts.full => store.incremental_since(every)?,
        Some(_) | None => None,
    };
    // Every real run is recorded, also one that fails before planning.
    let run_id = if opts.dry_run {
        None
    } else {
        Some(store.begin_run("roster", actor, since.is_none())?)
    };
    let result = roster_run(loaded, opts, actor, progress, &mut store, run_id, since).await;
    if let (Err(e), Some(id)) = (&result, run_id) {
        store.fail_run(id, e)?;
    }
    if run_id.is_some() {
        crate::store::anchor::record(&store, cfg.audit.anchor_file.as_deref())?;
    }
    Ok(result?)
}

async fn roster_run(
    loaded: &Loaded,
    opts: RosterOptions,
    actor: &str,
    progress: &dyn Progress,
    store: &mut Store,
    run_id: Option<i64>,
    since: Option<String>,
) -> Result<RosterReport> {
    let cfg = &loaded.config;
    progress.phase("reading source", None);
    let mut roster = {
        let loaded = loaded.clone();
        tokio::task::block_in_place(move || read_source(&loaded, progress, since.as_deref()))?
    };
    if roster.orgs.is_empty() {
        roster.orgs = store.load_orgs()?;
    } else if !opts.dry_run {
        store.save_orgs(&roster.orgs)?;
    }
    for issue in &roster.issues {
        tracing::warn!("skipped: {issue}");
    }

    let policy = policy_for(loaded, store)?;
    let mut minimised = policy.apply(&roster);
    if !opts.dry_run && !minimised.pseudonyms.is_empty() {
        store.save_pseudonyms(&minimised.pseudonyms)?;
    }
    minimised.pseudonyms = Vec::new();
    if minimised.on_hold > 0 {
        tracing::info!(
            persons = minimised.on_hold,
            "not processed: restricted or erased (sisync privacy unrestrict)"
        );
    }
    let out_of_scope = minimised.out_of_scope;
    let mut issues = std::mem::take(&mut roster.issues);
    let source_format = std::mem::take(&mut roster.format);
    let ignored = roster.ignored;
    drop(roster); // free the source rows before the state is loaded
    // Stored membership: merged with delta exports, and counted by the
    // safety gate (memberships removed).
    let state = State::load(store)?;
    exams::shape_for_platform(&cfg.platform, &mut minimised);
    // edexml-drop writes the whole roster, not only what changed
    let snapshot = crate::connector::platform::platform_sink(&cfg.platform)
        .wants_whole_roster()
        .then(|| crate::connector::platform::edexml_drop::Snapshot::of(&minimised));
    let plan = plan::plan(minimised, &state, opts.full);
    issues.extend(plan.issues.iter().cloned());
    let mut report = RosterReport {
        run_id,
        source_format,
        dry_run: opts.dry_run,
        full: opts.full,
        plan,
        outcome: None,
        refused: None,
        issues,
        ignored,
        out_of_scope,
        delivered: None,
        interrupted: false,
        held_plan: None,
        deferred: None,
    };
    if let Some(w) = cfg.safety.freeze_on(today()) {
        let d = freeze::defer(&mut report.plan, &state, w);
        tracing::info!(
            mode = w.mode.as_str(),
            deferred = d.total(),
            "freeze window in force"
        );
        report.deferred = Some(d);
    }

    if !opts.allow_mass_changes {
        if let Err(refusal) = safety::check(&report.plan, &cfg.safety) {
            if let Some(id) = run_id {
                let reason = refusal.to_string();
                let body = held::to_json(&report.plan, &state)?;
                let held_id = store.hold_plan(&crate::store::plans::NewHeld {
                    actor,
                    run_id: Some(id),
                    reason: &reason,
                    source_fingerprint: &held::source_fingerprint(loaded, &body)?,
                    state_version: &store.state_version()?,
                    summary: &held::summary(&report.plan),
                    plan: &body,
                })?;
                report.held_plan = Some(held_id);
                let mut summary = summary_json(&report);
                summary["held_plan"] = held_id.into();
                store.finish_run(
                    id,
                    RunOutcome::Refused,
                    &summary,
                    Some(&format!(
                        "{reason} (held as plan {held_id}: sisync plan approve {held_id})"
                    )),
                )?;
            }
            report.refused = Some(refusal);
            return Ok(report);
        }
    }
    let Some(run_id) = run_id else {
        return Ok(report); // dry run
    };
    // a newer source read went through: older held plans expire
    store.supersede_held_plans(run_id)?;
    execute(
        loaded, report, &state, store, run_id, actor, progress, snapshot,
    )
    .await
}

/// Apply a held plan that `sisync plan approve` checked, as run `run_id`.
pub(crate) async fn apply_held(
    loaded: &Loaded,
    plan: Plan,
    state: &State,
    store: &mut Store,
    run_id: i64,
    actor: &str,
    progress: &dyn Progress,
) -> Result<RosterReport> {
    let report = RosterReport {
        run_id: Some(run_id),
        source_format: "held plan".into(),
        dry_run: false,
        full: false,
        plan,
        outcome: None,
        refused: None,
        issues: Vec::new(),
        ignored: 0,
        out_of_scope: 0,
        delivered: None,
        interrupted: false,
        held_plan: None,
        deferred: None,
    };
    execute(loaded, report, state, store, run_id, actor, progress, None).await
}

/// Send a plan that passed the gate and record the run's end.
#[allow(clippy::too_many_arguments)]
async fn execute(
    loaded: &Loaded,
    mut report: RosterReport,
    state: &State,
    store: &mut Store,
    run_id: i64,
    actor: &str,
    progress: &dyn Progress,
    snapshot: Option<Result<crate::connector::platform::edexml_drop::Snapshot, String>>,
) -> Result<RosterReport> {
    if !report.plan.is_empty() {
        store.ensure_room(loaded.config.state.min_free_mb)?;
    }
    let total = (report.plan.users.len()
        + report.plan.groups.len()
        + report.plan.offerings.len()
        + report.plan.registrations.len()) as u64;
    progress.phase("applying", Some(total));
    let tick = || progress.tick();
    let stop = || progress.stop_requested();
    let ctx = Context {
        run_id,
        actor,
        tick: &tick,
        stop: &stop,
        seal_user_payloads: if loaded
            .config
            .privacy
            .fields
            .contains(&crate::config::Field::Bsn)
        {
            store.subject_key(true)?
        } else {
            None
        },
    };
    let applied = apply_plan(loaded, &report.plan, state, store, &ctx, snapshot).await;
    progress.done();
    let (outcome, delivered) = applied?;
    report.delivered = delivered;
    let settled = |t: &apply::Tally| t.created + t.updated + t.deactivated + t.failed;
    let settled_all = |o: &Outcome| {
        settled(&o.users) + settled(&o.groups) + settled(&o.offerings) + settled(&o.registrations)
    };
    report.interrupted = settled_all(&outcome) < total as usize;
    report.outcome = Some(outcome);
    // An interrupted run does not count as a complete (full) pull.
    let stopped = report.outcome.as_ref().and_then(|o| o.stopped.clone());
    if let Some(line) = &stopped {
        tracing::error!("{line}");
    }
    // a run that deferred changes is no complete pull (an incremental
    // source reads them again after the window)
    let deferred = report.deferred.as_ref().filter(|d| d.total() > 0);
    let result = if stopped.is_some() {
        RunOutcome::Failed
    } else if report.interrupted {
        RunOutcome::Interrupted
    } else if report.failed() > 0 {
        RunOutcome::Partial
    } else if deferred.is_some() {
        RunOutcome::Deferred
    } else {
        RunOutcome::Ok
    };
    let err = if stopped.is_some() {
        stopped
    } else if report.interrupted {
        Some(format!(
            "stopped on request after {} of {total} planned records; the next run sends the rest",
            report.outcome.as_ref().map(settled_all).unwrap_or(0)
        ))
    } else {
        report
            .outcome
            .as_ref()
            .and_then(|o| o.failures.first().cloned())
            .or_else(|| deferred.map(ToString::to_string))
    };
    store.finish_run(run_id, result, &summary_json(&report), err.as_deref())?;
    Ok(report)
}

async fn apply_plan(
    loaded: &Loaded,
    plan: &Plan,
    state: &State,
    store: &mut Store,
    ctx: &Context<'_>,
    snapshot: Option<Result<crate::connector::platform::edexml_drop::Snapshot, String>>,
) -> Result<(Outcome, Option<PathBuf>)> {
    if plan.is_empty() {
        return Ok((Outcome::from_plan(plan), None));
    }
    let platform = crate::connector::platform::platform_sink(&loaded.config.platform);
    match platform.writer(loaded, snapshot).await? {
        Writer::Files(sink) => apply::apply_files(&*sink, plan, store, ctx),
        Writer::Records {
            sink,
            concurrency,
            max_consecutive_failures,
        } => {
            let out = apply::apply_records(
                &*sink,
                plan,
                state,
                store,
                ctx,
                concurrency,
                max_consecutive_failures,
            )
            .await?;
            Ok((out, None))
        }
        Writer::Exams {
            sink,
            max_consecutive_failures,
        } => {
            let mut out = Outcome::from_plan(plan);
            apply_exams::apply_exams(&*sink, plan, store, ctx, max_consecutive_failures, &mut out)
                .await?;
            Ok((out, None))
        }
    }
}

/// The privacy policy of a config: allow-list and scope, pseudonyms,
/// synthetic identities for acceptance, and the subject holds in `store`.
pub fn policy_for(loaded: &Loaded, store: &Store) -> Result<Policy> {
    let cfg = &loaded.config;
    let (user_name, suffix) = crate::connector::platform::platform_sink(&cfg.platform).user_name();
    let pseudonyms = if cfg.privacy.pseudonymize_ids {
        Some(crate::privacy::pseudonym::Pseudonymizer::new(
            &loaded.pseudonym_key()?,
        ))
    } else {
        None
    };
    Ok(Policy::new(&cfg.privacy, user_name, suffix)
        .with_pseudonyms(pseudonyms)
        .with_holds(store.holds()?)
        .with_bsn_key(if cfg.privacy.fields.contains(&crate::config::Field::Bsn) {
            store.subject_key(true)?
        } else {
            None
        })
        .with_synthetic_identities(
            cfg.institution.environment == crate::config::Environment::Acceptance,
        ))
}

pub use crate::clock::today;

/// The run summary stored with the run.
pub fn summary_json(r: &RosterReport) -> serde_json::Value {
    serde_json::json!({
        "source": r.source_format,
        "users": r.outcome.as_ref().map(|o| o.users),
        "groups": r.outcome.as_ref().map(|o| o.groups),
        "planned_users": r.plan.users.len(),
        "planned_groups": r.plan.groups.len(),
        "source_issues": r.issues.len(),
        "ignored": r.ignored,
        "out_of_scope": r.out_of_scope,
        "deferred": r.deferred,
        "full_requested": r.full,
    })
}
