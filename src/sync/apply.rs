//! The applier: executes a plan against a sink with bounded concurrency and
//! records each outcome. A record's new state and its audit entry commit in
//! one SQLite transaction, after the platform accepted the write.

use std::collections::HashMap;

use futures::StreamExt;
use serde::Serialize;

use crate::connector::{ChangeSet, FileSink, RecordSink, SinkError, Written};
use crate::privacy::policy::hash_value;
use crate::store::{AuditEntry, RecordChange, RecordKind, Store};
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
    /// One line per failed record: what, where, why.
    pub failures: Vec<String>,
}

impl Outcome {
    pub fn from_plan(plan: &Plan) -> Outcome {
        Outcome {
            users: Tally {
                unchanged: plan.unchanged_users,
                skipped: plan.held_users,
                ..Tally::default()
            },
            groups: Tally {
                unchanged: plan.unchanged_groups,
                skipped: plan.held_groups,
                ..Tally::default()
            },
            failures: Vec::new(),
        }
    }

    pub fn failed(&self) -> usize {
        self.users.failed + self.groups.failed
    }
}

impl Outcome {
    fn tally(&mut self, kind: RecordKind) -> &mut Tally {
        match kind {
            RecordKind::User => &mut self.users,
            RecordKind::Group => &mut self.groups,
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
fn settle<C: Change>(
    ctx: &Context<'_>,
    endpoint: &str,
    c: &C,
    res: &Result<Written, SinkError>,
    out: &mut Outcome,
) -> (Option<RecordChange>, AuditEntry) {
    let audit = entry(
        ctx,
        C::KIND,
        c.action(),
        c.external_id(),
        c.changed(),
        res,
        endpoint,
    );
    match res {
        Ok(_) => {
            out.tally(C::KIND).count(c.action());
            let change = RecordChange {
                kind: C::KIND,
                sourced_id: c.external_id().to_string(),
                state: c.new_state(w_pid(res, c)),
                members: c.members(),
            };
            (Some(change), audit)
        }
        Err(e) => {
            let line = failure_line(C::KIND, c.external_id(), c.action(), e);
            tracing::warn!(record = %c.external_id(), "{line}");
            out.failures.push(line);
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

fn action_name(kind: RecordKind, a: Action) -> String {
    let verb = match (kind, a) {
        (RecordKind::Group, Action::Deactivate) => "retire",
        (_, a) => a.as_str(),
    };
    format!("{}.{verb}", kind.as_str())
}

fn entry(
    ctx: &Context<'_>,
    kind: RecordKind,
    action: Action,
    id: &str,
    changed: &[&str],
    res: &Result<Written, SinkError>,
    fallback_endpoint: &str,
) -> AuditEntry {
    let (endpoint, sha, outcome, detail) = match res {
        Ok(w) => (
            w.endpoint.clone(),
            Some(w.payload_sha256.clone()),
            "ok",
            None,
        ),
        Err(e) => (
            e.endpoint.clone(),
            e.payload_sha256.clone(),
            "failed",
            Some(match e.status {
                Some(s) => format!("HTTP {s}"),
                None => "not delivered".to_string(),
            }),
        ),
    };
    AuditEntry {
        actor: ctx.actor.to_string(),
        run_id: Some(ctx.run_id),
        direction: "out".into(),
        endpoint: if endpoint.is_empty() {
            fallback_endpoint.to_string()
        } else {
            endpoint
        },
        action: action_name(kind, action),
        record_kind: kind.as_str().into(),
        record_id: id.to_string(),
        fields: changed.join(","),
        payload_sha256: sha.filter(|s| !s.is_empty()).map(|s| {
            match (&ctx.seal_user_payloads, kind) {
                (Some(k), RecordKind::User) => format!("hmac-sha256:{}", k.of(&s)),
                _ => s,
            }
        }),
        outcome: outcome.into(),
        detail,
    }
}

fn failure_line(kind: RecordKind, id: &str, action: Action, e: &SinkError) -> String {
    format!(
        "{} {id}: {} failed: {}",
        kind.as_str(),
        action.as_str(),
        e.message
    )
}

async fn user_op<'a, S: RecordSink>(
    sink: &S,
    c: &'a UserChange,
) -> (&'a UserChange, Result<Written, SinkError>) {
    let res = match (c.action, &c.platform_id, &c.user) {
        (Action::Deactivate, Some(id), _) => sink.deactivate_user(id, &c.external_id).await,
        // never reached the platform: nothing to deactivate there
        (Action::Deactivate, None, _) => Ok(Written {
            platform_id: None,
            endpoint: String::new(),
            payload_sha256: String::new(),
        }),
        (Action::Update, Some(id), Some(u)) => sink.update_user(id, u, &c.changed).await,
        (_, _, Some(u)) => sink.create_user(u).await,
        (_, _, None) => Err(SinkError {
            endpoint: sink.endpoint(),
            status: None,
            message: "internal: planned change without a record".into(),
            payload_sha256: None,
        }),
    };
    (c, res)
}

async fn group_op<'a, S: RecordSink>(
    sink: &S,
    c: &'a GroupChange,
    pids: &[String],
) -> (&'a GroupChange, Result<Written, SinkError>) {
    let res = match (&c.action, &c.platform_id) {
        (Action::Create, _) | (_, None) => sink.create_group(&c.group, pids).await,
        (_, Some(id)) => sink.update_group(id, &c.group, pids, &c.changed).await,
    };
    (c, res)
}

/// Apply a plan to a record-at-a-time sink (SCIM).
pub async fn apply_records<S: RecordSink>(
    sink: &S,
    plan: &Plan,
    state: &State,
    store: &mut Store,
    ctx: &Context<'_>,
    concurrency: usize,
) -> anyhow::Result<Outcome> {
    let mut out = Outcome::from_plan(plan);
    let endpoint = sink.endpoint();
    let mut ids: HashMap<String, String> = state
        .users
        .iter()
        .filter_map(|(k, v)| v.platform_id.clone().map(|p| (k.clone(), p)))
        .collect();

    let mut stream = futures::stream::iter(
        plan.users
            .iter()
            .take_while(|_| !(ctx.stop)())
            .map(|c| user_op(sink, c)),
    )
    .buffer_unordered(concurrency);
    while let Some((c, res)) = stream.next().await {
        if let Some(p) = w_pid(&res, c) {
            ids.insert(c.external_id.clone(), p);
        }
        let item = settle(ctx, &endpoint, c, &res, &mut out);
        store.commit(&[item])?;
        (ctx.tick)();
    }
    drop(stream);

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
            if sent.len() != c.group.members.len() {
                // members whose user failed are left out; the stored hash
                // says so, and the next run adds them.
                c.group.members = sent;
                c.field_hashes
                    .insert("members", hash_value(&c.group.members));
            }
            (c, pids)
        })
        .collect();
    let mut stream = futures::stream::iter(
        prepared
            .iter()
            .take_while(|_| !(ctx.stop)())
            .map(|(c, pids)| group_op(sink, c, pids)),
    )
    .buffer_unordered(concurrency);
    while let Some((c, res)) = stream.next().await {
        let item = settle(ctx, &endpoint, c, &res, &mut out);
        store.commit(&[item])?;
        (ctx.tick)();
    }
    Ok(out)
}

/// Apply a plan to a file sink (csv-drop): one delivery, one transaction.
pub fn apply_files<S: FileSink>(
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
        users: plan.users.iter().filter_map(|c| c.user.as_ref()).collect(),
        deactivated_users: plan
            .users
            .iter()
            .filter(|c| c.action == Action::Deactivate)
            .map(|c| c.external_id.as_str())
            .collect(),
        groups: plan
            .groups
            .iter()
            .map(|c| (&c.group, c.action != Action::Deactivate))
            .collect(),
    };
    let delivered = sink.deliver(ctx.run_id, &changes);
    drop(changes);
    let result_for = |file: &str, id: &str| -> Result<Written, SinkError> {
        match &delivered {
            Ok(d) => Ok(Written {
                platform_id: None,
                endpoint: d.folder.join(file).display().to_string(),
                payload_sha256: d
                    .row_hashes
                    .get(&(file.to_string(), id.to_string()))
                    .cloned()
                    .unwrap_or_default(),
            }),
            Err(e) => Err(e.clone()),
        }
    };
    // one transaction for the whole delivery, filled as we go
    let endpoint = sink.endpoint();
    let mut batch = store.batch()?;
    for c in &plan.users {
        let res = result_for("users.csv", &c.external_id);
        let (change, entry) = settle(ctx, &endpoint, c, &res, &mut out);
        batch.add(change.as_ref(), &entry)?;
        (ctx.tick)();
    }
    for c in &plan.groups {
        let res = result_for("groups.csv", &c.external_id);
        let (change, entry) = settle(ctx, &endpoint, c, &res, &mut out);
        batch.add(change.as_ref(), &entry)?;
        (ctx.tick)();
    }
    batch.commit()?;
    match delivered {
        Ok(d) => Ok((out, Some(d.folder))),
        Err(e) => {
            // one cause, not one line per record
            out.failures = vec![format!("delivery failed: {}", e.message)];
            Ok((out, None))
        }
    }
}
