//! The applier: executes a plan against a sink with bounded concurrency and
//! records each outcome. A record's new state and its audit entry commit in
//! one SQLite transaction, after the platform accepted the write; for
//! record-at-a-time sinks these commits are grouped (`OUTCOMES_PER_COMMIT`
//! records or `BATCH_WAIT`), and the writes are announced first, `BATCH`
//! at a time, by intents committed before they are sent (see
//! `store::intents`), so a crash in between leaves an audit entry
//! `unknown`, never none.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use futures::StreamExt;
use serde::Serialize;

use crate::connector::platform::scim::SENT_GROUP_FIELDS;
use crate::connector::{ChangeSet, FileSink, RecordSink, SinkError, Written};
use crate::model::TrackedField;
use crate::privacy::policy::hash_value;
use crate::store::{
    AuditAction, AuditEntry, AuditOutcome, Batch, Direction, Fault, Intent, RecordChange,
    RecordKind, RecordWrite, Store,
};
use crate::sync::plan::{Action, Change, GroupChange, Plan, State, UserChange};

/// Counts for one record kind, as shown in the summary table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub created: usize,
    pub updated: usize,
    pub deactivated: usize,
    pub unchanged: usize,
    pub skipped: usize,
    pub failed: usize,
}

impl Tally {
    /// What the plan knows before anything is written: the records
    /// unchanged and those held (skipped).
    fn planned(unchanged: usize, skipped: usize) -> Tally {
        Tally {
            unchanged,
            skipped,
            ..Tally::default()
        }
    }

    fn count(&mut self, a: Action) {
        match a {
            Action::Create => self.created += 1,
            Action::Update => self.updated += 1,
            Action::Deactivate => self.deactivated += 1,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub users: Tally,
    pub groups: Tally,
    /// Exam sittings and registrations (OKE).
    pub offerings: Tally,
    pub registrations: Tally,
    /// One line per failed record: what, where, why.
    pub failures: Vec<String>,
    /// Records the platform had lost (404 on an update) and that were
    /// created again.
    pub recreated: usize,
    /// Why the run stopped before its end (a platform that stopped
    /// answering, a full state volume): one line for the admin.
    pub stopped: Option<String>,
}

impl Outcome {
    pub fn from_plan(plan: &Plan) -> Outcome {
        Outcome {
            users: Tally::planned(plan.unchanged_users, plan.held_users),
            groups: Tally::planned(plan.unchanged_groups, plan.held_groups),
            offerings: Tally::planned(plan.unchanged_offerings, 0),
            registrations: Tally::planned(plan.unchanged_registrations, plan.held_registrations),
            failures: Vec::new(),
            recreated: 0,
            stopped: None,
        }
    }

    pub fn failed(&self) -> usize {
        self.users.failed + self.groups.failed + self.offerings.failed + self.registrations.failed
    }
}

impl Outcome {
    fn tally(&mut self, kind: RecordKind) -> &mut Tally {
        match kind {
            RecordKind::User => &mut self.users,
            RecordKind::Group => &mut self.groups,
            RecordKind::Offering => &mut self.offerings,
            RecordKind::Registration => &mut self.registrations,
        }
    }
}

/// The platform id after a successful write: the one it returned, or the
/// one already known.
fn w_pid<C: Change>(res: &Result<Written, SinkError>, c: &C) -> Option<String> {
    match res {
        Ok(w) => w.platform_id.clone().or_else(|| c.platform_id().cloned()),
        Err(_) => None,
    }
}

/// Turn one sink result into what to commit (state change and audit entry)
/// and count it.
pub(crate) fn settle<C: Change>(
    ctx: &Context<'_>,
    endpoint: &str,
    c: &C,
    res: &Result<Written, SinkError>,
    recreated: bool,
    out: &mut Outcome,
) -> (Option<RecordChange>, AuditEntry) {
    let all: Vec<TrackedField>;
    let (action, changed) = if recreated {
        // gone from the platform (restored, reset): sent again whole
        all = c.field_hashes().keys().copied().collect();
        (
            AuditAction::Record(C::KIND, RecordWrite::Recreate),
            all.as_slice(),
        )
    } else {
        (action_name(C::KIND, c.action()), c.changed())
    };
    let mut audit = entry(
        ctx,
        C::KIND,
        c.action(),
        c.external_id(),
        changed,
        res,
        endpoint,
    );
    audit.action = action;
    if recreated {
        out.recreated += 1;
        tracing::info!(record = %c.external_id(), "not on the platform any more (404); created again");
    }
    match res {
        Ok(_) => {
            out.tally(C::KIND).count(c.action());
            let change = RecordChange {
                kind: C::KIND,
                sourced_id: c.external_id().to_string(),
                state: c.new_state(w_pid(res, c)),
                members: c.members(),
                parent: c.parent(),
            };
            (Some(change), audit)
        }
        Err(e) => {
            let line = failure_line(C::KIND, c.external_id(), c.action(), e);
            tracing::warn!(record = %c.external_id(), "{line}");
            // the platform's own words help the admin, but may echo the
            // record: shown and kept with the run, never logged
            out.failures.push(match &e.detail {
                Some(d) => format!("{line} (the platform says: {d})"),
                None => line,
            });
            out.tally(C::KIND).failed += 1;
            (None, audit)
        }
    }
}

/// Who acts and in which run, for the audit log.
pub struct Context<'a> {
    pub run_id: i64,
    pub actor: &'a str,
    pub tick: &'a (dyn Fn() + Sync),
    /// True once no new record should be started (shutdown); records in
    /// flight finish and are committed.
    pub stop: &'a (dyn Fn() -> bool + Sync),
    /// When BSNs are sent: user payload hashes go into the audit log keyed
    /// with the subject key. A plain SHA-256 of a body that differs only
    /// in a nine-digit number would give the number away.
    pub seal_user_payloads: Option<crate::store::holds::SubjectKey>,
}

fn action_name(kind: RecordKind, a: Action) -> AuditAction {
    AuditAction::Record(
        kind,
        match a {
            Action::Create => RecordWrite::Create,
            Action::Update => RecordWrite::Update,
            Action::Deactivate => RecordWrite::Deactivate,
        },
    )
}

fn entry(
    ctx: &Context<'_>,
    kind: RecordKind,
    action: Action,
    id: &str,
    changed: &[TrackedField],
    res: &Result<Written, SinkError>,
    fallback_endpoint: &str,
) -> AuditEntry {
    let (endpoint, sha, outcome, detail) = match res {
        Ok(w) => (
            w.endpoint.clone(),
            Some(w.payload_sha256.clone()),
            AuditOutcome::Ok,
            None,
        ),
        Err(e) => (
            e.endpoint.clone(),
            e.payload_sha256.clone(),
            AuditOutcome::Failed,
            Some(match (e.status, scim_type(&e.message)) {
                (Some(s), Some(t)) => format!("HTTP {s} scimType {t}"),
                (Some(s), None) => format!("HTTP {s}"),
                (None, _) => "not delivered".to_string(),
            }),
        ),
    };
    AuditEntry {
        actor: ctx.actor.to_string(),
        run_id: Some(ctx.run_id),
        direction: Direction::Out,
        endpoint: if endpoint.is_empty() {
            fallback_endpoint.to_string()
        } else {
            endpoint
        },
        action: action_name(kind, action),
        record_kind: kind.into(),
        record_id: id.to_string(),
        fields: TrackedField::join(changed, ","),
        payload_sha256: sha.filter(|s| !s.is_empty()).map(|s| {
            match (&ctx.seal_user_payloads, kind) {
                (Some(k), RecordKind::User) => format!("hmac-sha256:{}", k.of(&s)),
                _ => s,
            }
        }),
        outcome,
        detail,
    }
}

/// The SCIM `scimType` keyword the HTTP layer put in an error (already
/// checked to be a short keyword there, so it carries no personal data).
fn scim_type(message: &str) -> Option<&str> {
    let rest = message.split_once("(scimType ")?.1;
    let t = rest.split_once(')')?.0;
    (!t.is_empty() && t.len() <= 40 && t.chars().all(|c| c.is_ascii_alphanumeric())).then_some(t)
}

fn failure_line(kind: RecordKind, id: &str, action: Action, e: &SinkError) -> String {
    format!(
        "{} {id}: {} failed: {}",
        kind.as_str(),
        action.as_str(),
        e.message
    )
}

/// What one platform write did; `recreated` when an update found the
/// record gone (404) and created it again.
type Op<'a, C> = (&'a C, Result<Written, SinkError>, bool);

fn gone(res: &Result<Written, SinkError>) -> bool {
    matches!(res, Err(e) if e.status == Some(404))
}

/// A deactivation of a record the platform no longer has: nothing to do.
fn already_gone(e: &SinkError) -> Result<Written, SinkError> {
    Ok(Written {
        platform_id: None,
        endpoint: e.endpoint.clone(),
        payload_sha256: String::new(),
    })
}

async fn user_op<'a, S: RecordSink + ?Sized>(sink: &S, c: &'a UserChange) -> Op<'a, UserChange> {
    let res = match (c.action, &c.platform_id, &c.user) {
        (Action::Deactivate, Some(id), _) => match sink.deactivate_user(id, &c.external_id).await {
            Err(e) if e.status == Some(404) => already_gone(&e),
            r => r,
        },
        // never reached the platform: nothing to deactivate there
        (Action::Deactivate, None, _) => Ok(Written {
            platform_id: None,
            endpoint: String::new(),
            payload_sha256: String::new(),
        }),
        (Action::Update, Some(id), Some(u)) => {
            let res = sink.update_user(id, u, &c.changed).await;
            if gone(&res) {
                // lost on the platform (a restore, a vendor reset): found
                // again by externalId or created anew
                return (c, sink.create_user(u).await, true);
            }
            res
        }
        (_, _, Some(u)) => sink.create_user(u).await,
        (_, _, None) => Err(SinkError {
            endpoint: sink.endpoint(),
            status: None,
            message: "internal: planned change without a record".into(),
            payload_sha256: None,
            detail: None,
            refused: false,
        }),
    };
    (c, res, false)
}

async fn group_op<'a, S: RecordSink + ?Sized>(
    sink: &S,
    c: &'a GroupChange,
    pids: &[String],
) -> Op<'a, GroupChange> {
    let res = match (&c.action, &c.platform_id) {
        (Action::Create, _) | (_, None) => sink.create_group(&c.group, pids).await,
        (action, Some(id)) => {
            let res = sink.update_group(id, &c.group, pids, &c.changed).await;
            match res {
                Err(e) if e.status == Some(404) && *action == Action::Deactivate => {
                    already_gone(&e)
                }
                Err(e) if e.status == Some(404) => {
                    return (c, sink.create_group(&c.group, pids).await, true);
                }
                r => r,
            }
        }
    };
    (c, res, false)
}

/// Stops a run against a platform that stopped answering: after `limit`
/// writes in a row failed without an answer, no new write starts.
struct Breaker {
    limit: usize,
    in_a_row: AtomicUsize,
    open: AtomicBool,
}

impl Breaker {
    fn new(limit: usize) -> Breaker {
        Breaker {
            limit: limit.max(1),
            in_a_row: AtomicUsize::new(0),
            open: AtomicBool::new(false),
        }
    }

    fn record(&self, res: &Result<Written, SinkError>) {
        let transport = matches!(res, Err(e) if e.status.is_none_or(|s| s == 429 || s >= 500));
        if !transport {
            self.in_a_row.store(0, Ordering::Relaxed);
        } else if self.in_a_row.fetch_add(1, Ordering::Relaxed) + 1 >= self.limit {
            self.open.store(true, Ordering::Relaxed);
        }
    }

    fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }
}

/// The writes of a record-at-a-time sink are announced (their intents
/// fsynced) `BATCH` records at a time.
pub(crate) const BATCH: usize = 256;
/// Outcomes of platform writes commit in groups: every `OUTCOMES_PER_COMMIT`
/// records or `BATCH_WAIT` after the first uncommitted one, whichever comes
/// first. A commit rewrites every page it touched (the records' and the
/// audit log's indexes at random places) and ends with SQLite's page cache
/// bookkeeping, so larger groups rewrite fewer pages per record (the
/// results push commits as many).
pub(crate) const OUTCOMES_PER_COMMIT: usize = 1024;
pub(crate) const BATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// When a group of writes is due to commit: after `every` of them, or
/// `BATCH_WAIT` after the first one not yet committed, whichever comes
/// first (a slow peer never leaves answered writes uncommitted for long).
/// One clock for the platform writes and the results push.
pub(crate) struct CommitClock {
    every: usize,
    deadline: Option<tokio::time::Instant>,
}

/// What [`CommitClock::next`] gave.
pub(crate) enum Tick<T> {
    Item(T),
    /// The deadline passed while waiting: commit what is pending.
    Due,
    End,
}

impl CommitClock {
    pub(crate) fn new(every: usize) -> CommitClock {
        CommitClock {
            every,
            deadline: None,
        }
    }

    /// The stream's next item, or `Due` when the wait for it reached the
    /// deadline (the wait is dropped, which loses no item).
    pub(crate) async fn next<S: futures::Stream + Unpin>(&mut self, s: &mut S) -> Tick<S::Item> {
        let next = match self.deadline {
            Some(at) => match tokio::time::timeout_at(at, s.next()).await {
                Ok(next) => next,
                Err(_) => {
                    self.deadline = None;
                    return Tick::Due;
                }
            },
            None => s.next().await,
        };
        next.map_or(Tick::End, Tick::Item)
    }

    /// An item joined the pending group, now `pending` long: true when the
    /// group is due now (it is full); else the clock starts with its first.
    pub(crate) fn added(&mut self, pending: usize) -> bool {
        if pending >= self.every {
            self.deadline = None;
            return true;
        }
        self.deadline
            .get_or_insert_with(|| tokio::time::Instant::now() + BATCH_WAIT);
        false
    }
}

/// Commit one write's state and audit entry. When the state volume is full
/// the reserve file is given up and the commit tried again: the write
/// already left sisync, so its audit entry must be kept. The run then
/// stops (`Ok(false)`).
pub(crate) fn commit_one(
    store: &mut Store,
    item: (Option<RecordChange>, AuditEntry),
) -> anyhow::Result<bool> {
    commit_items(store, &[item], Store::commit)
}

/// Commit a group of writes announced by intents (see `store::intents`),
/// with the same full-disk handling as [`commit_one`].
pub(crate) fn commit_written(
    store: &mut Store,
    items: &[(Option<RecordChange>, AuditEntry)],
) -> anyhow::Result<bool> {
    if items.is_empty() {
        return Ok(true);
    }
    commit_items(store, items, Store::commit_written)
}

type CommitFn = fn(&mut Store, &[(Option<RecordChange>, AuditEntry)]) -> anyhow::Result<()>;

fn commit_items(
    store: &mut Store,
    items: &[(Option<RecordChange>, AuditEntry)],
    commit: CommitFn,
) -> anyhow::Result<bool> {
    match commit(store, items) {
        Ok(()) => Ok(true),
        Err(e) if Fault::of(&e) == Some(Fault::DiskFull) => {
            store.release_reserve();
            if let Err(e2) = commit(store, items) {
                // last resort: beside the database, recorded at next start
                let entries: Vec<AuditEntry> = items.iter().map(|(_, e)| e.clone()).collect();
                let parked = store.park_unrecorded(&entries);
                anyhow::bail!(
                    "{e2:#}: the state volume of {} is full and the audit entries of {} writes to the platform could not be committed ({}); free space there now",
                    store.path().display(),
                    items.len(),
                    match parked {
                        Ok(()) =>
                            "kept beside the database, recorded at the next start".to_string(),
                        Err(p) => format!("and could not be kept either: {p:#}"),
                    }
                );
            }
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

pub(crate) fn disk_full_line(store: &Store) -> String {
    format!(
        "the state volume of {} is full: stopped after the last recorded write; free space there, the next run sends the rest",
        store.path().display()
    )
}

/// The intent of a write about to be sent: what its audit entry will say,
/// without the platform's answer.
fn intent_of<C: Change>(ctx: &Context<'_>, endpoint: &str, c: &C) -> Intent {
    Intent {
        run_id: Some(ctx.run_id),
        actor: ctx.actor.to_string(),
        endpoint: endpoint.to_string(),
        action: action_name(C::KIND, c.action()),
        kind: C::KIND.into(),
        record_id: c.external_id().to_string(),
        fields: TrackedField::join(c.changed(), ","),
    }
}

fn itself<C>(c: &C) -> &C {
    c
}

fn first<A, B>(t: &(A, B)) -> &A {
    &t.0
}

/// Commit what is pending; users recreated on the platform get their
/// classes sent again once their new id is recorded.
fn flush(
    store: &mut Store,
    pending: &[(Option<RecordChange>, AuditEntry)],
    recreated: &[String],
) -> anyhow::Result<bool> {
    let ok = commit_written(store, pending)?;
    if ok {
        for id in recreated {
            // its classes still list the old platform id: sent again
            // below when planned, else by the next run
            store.resend_groups_of(id)?;
        }
    }
    Ok(ok)
}

/// What the writes in flight ask of the state file, done in order on the
/// committer thread so that no request waits for a commit or an fsync.
enum StoreJob {
    /// Record the intents of a group (fsynced) and say when they are.
    Announce(Vec<Intent>, SyncSender<anyhow::Result<()>>),
    /// Commit a group of outcomes; the users recreated among them.
    Commit(Vec<(Option<RecordChange>, AuditEntry)>, Vec<String>),
}

/// The state file on a blocking thread of its own, working off jobs while
/// the requests go on. `Store` is one SQLite connection: it moves there
/// and back ([`Committer::give_back`]), the caller holding an empty
/// in-memory one meanwhile.
pub(crate) struct Committer<R> {
    handle: tokio::task::JoinHandle<(Store, anyhow::Result<R>)>,
}

pub(crate) fn committer<R: Send + 'static>(
    store: &mut Store,
    work: impl FnOnce(&mut Store) -> anyhow::Result<R> + Send + 'static,
) -> anyhow::Result<Committer<R>> {
    let mut own = std::mem::replace(store, Store::in_memory()?);
    Ok(Committer {
        handle: tokio::task::spawn_blocking(move || {
            let r = work(&mut own);
            (own, r)
        }),
    })
}

impl<R> Committer<R> {
    /// Wait for the work to end (its jobs' sender dropped) and put the
    /// store back.
    pub(crate) async fn give_back(self, store: &mut Store) -> anyhow::Result<R> {
        match self.handle.await {
            Ok((own, r)) => {
                *store = own;
                r
            }
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(anyhow::anyhow!("the state file's committer stopped: {e}")),
        }
    }
}

/// The committer's work: `Ok(false)` when the state volume is full (it
/// stops there; the writes in flight then stop too).
fn commit_jobs(store: &mut Store, jobs: Receiver<StoreJob>) -> anyhow::Result<bool> {
    for job in jobs {
        match job {
            StoreJob::Announce(intents, done) => {
                // the sender stops at an error and says it
                let _ = done.send(store.record_intents(&intents));
            }
            StoreJob::Commit(pending, recreated) => {
                if !flush(store, &pending, &recreated)? {
                    return Ok(false);
                }
            }
        }
    }
    Ok(true)
}

/// One kind of record to send, as [`run_phase`] and its sending side
/// [`send_phase`] take it (with the operation that sends one).
struct Phase<'p, 'a, T, C> {
    endpoint: &'p str,
    items: &'a [T],
    change_of: fn(&T) -> &C,
    concurrency: usize,
    go_on: &'p (dyn Fn() -> bool + Sync),
    breaker: &'p Breaker,
    /// Platform ids learnt from the answers (users, for the groups after).
    ids: Option<&'p mut HashMap<String, String>>,
}

/// Send one kind of record with bounded concurrency and group commits.
/// The intents of each `BATCH` of records are committed (fsynced) before
/// the first of them is sent, and those of the next batch while this one
/// is in flight; outcomes commit in groups. The state file is written on
/// its own thread meanwhile. `Ok(false)` when the state volume is full.
async fn run_phase<'a, T, C, F, Fut>(
    store: &mut Store,
    ctx: &Context<'_>,
    phase: Phase<'_, 'a, T, C>,
    op: F,
    out: &mut Outcome,
) -> anyhow::Result<bool>
where
    C: Change + 'a,
    F: FnMut(&'a T) -> Fut,
    Fut: std::future::Future<Output = Op<'a, C>>,
{
    let (jobs, queue) = sync_channel::<StoreJob>(4);
    let committer = committer(store, move |s| commit_jobs(s, queue))?;
    // items started, intents asked for up to, and the failure that
    // stopped the announcing
    let (items, change_of) = (phase.items, phase.change_of);
    let (started, asked, failed) = send_phase(ctx, phase, op, out, &jobs).await;
    drop(jobs);
    let mut full = !committer.give_back(store).await?;
    if started < asked {
        // announced (or asked for) but never started: nothing left
        let keys: Vec<(&str, &str)> = items[started..asked]
            .iter()
            .map(|t| (C::KIND.as_str(), change_of(t).external_id()))
            .collect();
        store.drop_intents(Some(ctx.run_id), &keys)?;
    }
    if let Some(e) = failed {
        if Fault::of(&e) == Some(Fault::DiskFull) {
            full = true;
        } else {
            return Err(e.context(format!(
                "cannot record the writes about to be sent in {}; nothing more was sent",
                store.path().display()
            )));
        }
    }
    Ok(!full)
}

/// The sending side of [`run_phase`]: items started, intents asked for
/// up to, and why announcing failed.
async fn send_phase<'a, T, C, F, Fut>(
    ctx: &Context<'_>,
    phase: Phase<'_, 'a, T, C>,
    op: F,
    out: &mut Outcome,
    jobs: &SyncSender<StoreJob>,
) -> (usize, usize, Option<anyhow::Error>)
where
    C: Change + 'a,
    F: FnMut(&'a T) -> Fut,
    Fut: std::future::Future<Output = Op<'a, C>>,
{
    let Phase {
        endpoint,
        items,
        change_of,
        concurrency,
        go_on,
        breaker,
        mut ids,
    } = phase;
    let started = Cell::new(0usize);
    // intents on disk up to here; asked for up to `asked`, the answer of
    // the group asked for ahead in `ahead`
    let announced = Cell::new(0usize);
    let asked = Cell::new(0usize);
    let ahead: Cell<Option<(usize, Receiver<anyhow::Result<()>>)>> = Cell::new(None);
    let failed: Cell<Option<anyhow::Error>> = Cell::new(None);
    let committer_gone = Cell::new(false);
    let ask = |from: usize| {
        let end = (from + BATCH).min(items.len());
        let intents: Vec<Intent> = items[from..end]
            .iter()
            .map(|t| intent_of(ctx, endpoint, change_of(t)))
            .collect();
        let (done, answer) = sync_channel(1);
        asked.set(end);
        jobs.send(StoreJob::Announce(intents, done))
            .ok()
            .map(|()| (end, answer))
    };
    let mut stream = futures::stream::iter(items.iter().take_while(|_| {
        if !go_on() || committer_gone.get() {
            return false;
        }
        let i = started.get();
        if i == announced.get() {
            let Some((end, answer)) = ahead.take().or_else(|| ask(i)) else {
                committer_gone.set(true);
                return false;
            };
            // asked for one group ahead: on disk by now as a rule
            match answer.recv() {
                Ok(Ok(())) => announced.set(end),
                Ok(Err(e)) => {
                    failed.set(Some(e));
                    return false;
                }
                Err(_) => {
                    committer_gone.set(true);
                    return false;
                }
            }
            if end < items.len() {
                ahead.set(ask(end));
            }
        }
        started.set(i + 1);
        true
    }))
    .map(op)
    .buffer_unordered(concurrency.max(1));
    let mut pending = Vec::with_capacity(OUTCOMES_PER_COMMIT);
    let mut recreated_users = Vec::new();
    let mut clock = CommitClock::new(OUTCOMES_PER_COMMIT);
    let commit = |pending: &mut Vec<_>, recreated: &mut Vec<String>| {
        let job = StoreJob::Commit(
            std::mem::replace(pending, Vec::with_capacity(OUTCOMES_PER_COMMIT)),
            std::mem::take(recreated),
        );
        // a committer that stopped (full volume, error) says why itself
        jobs.send(job).is_ok()
    };
    loop {
        let (c, res, recreated) = match clock.next(&mut stream).await {
            Tick::Item(next) => next,
            Tick::Due => {
                if !commit(&mut pending, &mut recreated_users) {
                    break;
                }
                continue;
            }
            Tick::End => break,
        };
        breaker.record(&res);
        if let (Some(ids), Some(p)) = (ids.as_deref_mut(), w_pid(&res, c)) {
            ids.insert(c.external_id().to_string(), p);
        }
        let item = settle(ctx, endpoint, c, &res, recreated, out);
        pending.push(item);
        if recreated && res.is_ok() && C::KIND == RecordKind::User {
            recreated_users.push(c.external_id().to_string());
        }
        (ctx.tick)();
        if clock.added(pending.len()) && !commit(&mut pending, &mut recreated_users) {
            break;
        }
    }
    // writes still in flight (a full volume) are cut off: their intents
    // stay and are recorded as `unknown` at the next start
    drop(stream);
    if !pending.is_empty() {
        commit(&mut pending, &mut recreated_users);
    }
    // an answer still owed for the group asked ahead: wait for it, so
    // that its intents are on disk (or failed) before they are dropped
    if let Some((_, answer)) = ahead.take() {
        let _ = answer.recv();
    }
    (started.get(), asked.get(), failed.take())
}

/// Apply a plan to a record-at-a-time sink (SCIM).
pub async fn apply_records<S: RecordSink + ?Sized>(
    sink: &S,
    plan: &Plan,
    state: &State,
    store: &mut Store,
    ctx: &Context<'_>,
    concurrency: usize,
    max_consecutive_failures: usize,
) -> anyhow::Result<Outcome> {
    let mut out = Outcome::from_plan(plan);
    let endpoint = sink.endpoint();
    let creates = |actions: &mut dyn Iterator<Item = Action>| {
        actions.filter(|a| *a == Action::Create).count()
    };
    sink.expect_creates(
        creates(&mut plan.users.iter().map(|c| c.action)),
        creates(&mut plan.groups.iter().map(|c| c.action)),
    );
    let mut ids: HashMap<String, String> = state
        .users
        .iter()
        .filter_map(|(k, v)| v.platform_id.clone().map(|p| (k.clone(), p)))
        .collect();

    let breaker = Breaker::new(max_consecutive_failures);
    let go_on = || !(ctx.stop)() && !breaker.is_open();
    let users = Phase {
        endpoint: &endpoint,
        items: &plan.users,
        change_of: itself,
        concurrency,
        go_on: &go_on,
        breaker: &breaker,
        ids: Some(&mut ids),
    };
    let mut full = !run_phase(store, ctx, users, |c| user_op(sink, c), &mut out).await?;

    // Groups after users, so that members have platform ids.
    let prepared: Vec<(GroupChange, Vec<String>)> = plan
        .groups
        .iter()
        .map(|c| {
            let mut c = c.clone();
            let (sent, pids): (Vec<String>, Vec<String>) = c
                .group
                .members
                .iter()
                .filter_map(|m| ids.get(m).map(|p| (m.clone(), p.clone())))
                .unzip();
            // a SCIM Group carries displayName and members only: the audit
            // lists what was sent, not org or active
            c.changed.retain(|f| SENT_GROUP_FIELDS.contains(f));
            if c.changed.is_empty() {
                c.changed.push(TrackedField::Members);
            }
            if sent.len() != c.group.members.len() {
                // members whose user failed are left out; the stored hash
                // says so, and the next run adds them.
                c.group.members = sent;
                c.field_hashes
                    .insert(TrackedField::Members, hash_value(&c.group.members));
            }
            (c, pids)
        })
        .collect();
    if !full {
        let groups = Phase {
            endpoint: &endpoint,
            items: &prepared,
            change_of: first,
            concurrency,
            go_on: &go_on,
            breaker: &breaker,
            ids: None,
        };
        full = !run_phase(
            store,
            ctx,
            groups,
            |(c, pids)| group_op(sink, c, pids),
            &mut out,
        )
        .await?;
    }
    if full {
        out.stopped = Some(disk_full_line(store));
    } else if breaker.is_open() {
        out.stopped = Some(format!(
            "the platform at {endpoint} stopped answering: {} writes in a row failed ({}); stopped, the next run sends the rest",
            breaker.limit,
            out.failures
                .last()
                .map(String::as_str)
                .unwrap_or("no answer"),
        ));
    }
    Ok(out)
}

/// The deactivations among `changes` (retired, canceled, withdrawn).
fn deactivations<C: Change>(changes: &[C]) -> impl Iterator<Item = &C> {
    changes.iter().filter(|c| c.action() == Action::Deactivate)
}

/// The external ids of the changes that deactivate.
fn deactivated<C: Change>(changes: &[C]) -> Vec<&str> {
    deactivations(changes).map(Change::external_id).collect()
}

/// The records changes of one kind send (a file delivery's rows).
fn sent<C: Change>(changes: &[C]) -> Vec<&C::Record> {
    changes.iter().filter_map(C::record).collect()
}

/// The changes of one file delivery settled against the file each went
/// to, into one batch (one transaction for the whole delivery).
struct Recorder<'r, 's> {
    batch: Batch<'s>,
    ctx: &'r Context<'r>,
    endpoint: &'r str,
    result_for: &'r dyn Fn(&str, &str) -> Result<Written, SinkError>,
    out: &'r mut Outcome,
}

impl Recorder<'_, '_> {
    fn add<C: Change>(
        &mut self,
        changes: &[C],
        file_of: impl Fn(&C) -> &str,
    ) -> anyhow::Result<()> {
        for c in changes {
            let res = (self.result_for)(file_of(c), c.external_id());
            let (change, entry) = settle(self.ctx, self.endpoint, c, &res, false, self.out);
            self.batch.add(change.as_ref(), &entry)?;
            (self.ctx.tick)();
        }
        Ok(())
    }
}

/// Apply a plan to a file sink (csv-drop): one delivery, one transaction.
pub fn apply_files<S: FileSink + ?Sized>(
    sink: &S,
    plan: &Plan,
    store: &mut Store,
    ctx: &Context<'_>,
) -> anyhow::Result<(Outcome, Option<std::path::PathBuf>)> {
    let mut out = Outcome::from_plan(plan);
    if plan.is_empty() {
        return Ok((out, None));
    }
    let changes = ChangeSet {
        users: sent(&plan.users),
        deactivated_users: deactivated(&plan.users),
        groups: plan
            .groups
            .iter()
            .map(|c| (&c.group, c.action != Action::Deactivate))
            .collect(),
        offerings: sent(&plan.offerings),
        canceled_offerings: deactivated(&plan.offerings),
        registrations: sent(&plan.registrations),
        withdrawn_registrations: deactivations(&plan.registrations)
            .map(|c| (c.external_id.as_str(), c.offering.as_deref()))
            .collect(),
    };
    let delivered = sink.deliver(ctx.run_id, &changes);
    drop(changes);
    let result_for = |file: &str, id: &str| -> Result<Written, SinkError> {
        let d = delivered.as_ref().map_err(SinkError::clone)?;
        let key = (file.to_string(), id.to_string());
        let endpoint = d.folder.join(file).display().to_string();
        match d.refused.get(&key) {
            Some(message) => Err(SinkError {
                endpoint,
                message: message.clone(),
                ..SinkError::default()
            }),
            None => Ok(Written {
                platform_id: None,
                endpoint,
                payload_sha256: d.row_hashes.get(&key).cloned().unwrap_or_default(),
            }),
        }
    };
    // one transaction for the whole delivery, filled as we go
    let endpoint = sink.endpoint();
    let record = |store: &mut Store, out: &mut Outcome| -> anyhow::Result<()> {
        let mut r = Recorder {
            batch: store.batch()?,
            ctx,
            endpoint: &endpoint,
            result_for: &result_for,
            out,
        };
        let deactivate = |a: Action| a == Action::Deactivate;
        r.add(&plan.users, |c| {
            sink.record_file(false, deactivate(c.action))
        })?;
        r.add(&plan.groups, |c| {
            sink.record_file(true, deactivate(c.action))
        })?;
        r.add(&plan.offerings, |_| "exams.csv")?;
        r.add(&plan.registrations, |_| "registrations.csv")?;
        r.batch.commit()
    };
    let fresh = out.clone();
    let mut recorded = record(store, &mut out);
    if recorded
        .as_ref()
        .is_err_and(|e| Fault::of(e) == Some(Fault::DiskFull))
    {
        store.release_reserve();
        out = fresh;
        recorded = record(store, &mut out);
        if recorded.is_ok() {
            out.stopped = Some(disk_full_line(store));
        }
    }
    if let Err(e) = recorded {
        // Nothing may be out there without its audit entry: take the
        // delivery back before the platform picks it up.
        if let Ok(d) = &delivered {
            let _ = std::fs::remove_dir_all(&d.folder);
        }
        return Err(e.context(format!(
            "the delivery could not be recorded in {} and was withdrawn; free space on the state volume and run again",
            store.path().display()
        )));
    }
    match delivered {
        Ok(d) => Ok((out, Some(d.folder))),
        Err(e) => {
            // one cause, not one line per record
            out.failures = vec![format!("delivery failed: {}", e.message)];
            Ok((out, None))
        }
    }
}
