//! Reconcile: what the platform holds against what sisync believes it
//! sent. Missing records (sisync sent them, the platform has them not),
//! drifted attributes (the platform's value no longer hashes to what was
//! last sent), orphans (active platform users sisync never sent or has
//! deactivated) and membership drift. `--fix` forgets the stored hashes of
//! what is missing or drifted, so the next roster run (through the planner
//! and the safety gate) sends them again; orphans are listed, never
//! deleted.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use anyhow::Result;

use crate::config::Loaded;
use crate::connector::PlatformSnapshot;
use crate::connector::platform::platform_sink;
use crate::model::{Id, TrackedField};
use crate::privacy::policy::hash_value;
use crate::store::{FieldHash, RecordKind, RecordState, RunOutcome, Store};
use crate::sync::{Progress, RosterReport};

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `user` or `group`.
    pub kind: &'static str,
    /// The SIS id (externalId); for orphans, the platform's externalId or
    /// id.
    pub id: String,
    /// Drifted attributes (empty for missing records and orphans).
    pub fields: Vec<TrackedField>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub users_read: usize,
    pub groups_read: usize,
    pub missing: Vec<Finding>,
    pub drifted: Vec<Finding>,
    pub orphans: Vec<Finding>,
    pub membership: Vec<Finding>,
}

impl Report {
    /// Counts for the run's summary (no ids: the summary is shown on the
    /// status page and read by the metrics).
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "users_read": self.users_read,
            "groups_read": self.groups_read,
            "missing": self.missing.len(),
            "drifted": self.drifted.len(),
            "orphans": self.orphans.len(),
            "membership": self.membership.len(),
        })
    }

    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.drifted.is_empty()
            && self.orphans.is_empty()
            && self.membership.is_empty()
    }
}

/// What the state says.
pub struct Known<'a> {
    pub users: &'a HashMap<String, RecordState>,
    pub groups: &'a HashMap<String, RecordState>,
    pub members: &'a HashMap<String, BTreeSet<Id>>,
    /// The tussenvoegsel is sent inside familyName: names cannot be
    /// compared field by field.
    pub names_joined: bool,
}

/// Where the known `kind` record `id` is in the snapshot: by its platform
/// id, else by its external id (the maps to the snapshot's index). None
/// when it is not there: missing, if the state holds it active.
fn locate(
    r: &mut Report,
    kind: &'static str,
    id: &str,
    st: &RecordState,
    (by_pid, by_ext): (&HashMap<&str, usize>, &HashMap<&str, usize>),
) -> Option<usize> {
    let found = st
        .platform_id
        .as_deref()
        .and_then(|p| by_pid.get(p))
        .or_else(|| by_ext.get(id))
        .copied();
    if found.is_none() && st.active {
        r.missing.push(finding(kind, id, Vec::new()));
    }
    found
}

/// Where each record of a snapshot list is, by the key `key` gives it
/// (records without one are left out).
fn index<T>(items: &[T], key: impl Fn(&T) -> Option<&str>) -> HashMap<&str, usize> {
    items
        .iter()
        .enumerate()
        .filter_map(|(i, x)| Some((key(x)?, i)))
        .collect()
}

/// The known records in id order, so findings come out the same each run.
fn by_id(known: &HashMap<String, RecordState>) -> Vec<(&String, &RecordState)> {
    let mut all: Vec<_> = known.iter().collect();
    all.sort_by(|a, b| a.0.cmp(b.0));
    all
}

/// Compare a platform snapshot with the state.
pub fn compare(snap: &PlatformSnapshot, known: &Known<'_>) -> Report {
    let mut r = Report {
        users_read: snap.users.len(),
        groups_read: snap.groups.len(),
        ..Report::default()
    };
    let by_ext = index(&snap.users, |u| {
        Some(u.user.external_id.as_str()).filter(|e| !e.is_empty())
    });
    let by_pid = index(&snap.users, |u| Some(u.id.as_str()));
    for (id, st) in by_id(known.users) {
        let Some(i) = locate(&mut r, "user", id, st, (&by_pid, &by_ext)) else {
            continue;
        };
        let found = &snap.users[i];
        let u = &found.user;
        let name = (&u.given_name, &u.middle_name, &u.family_name);
        let mut drift = Vec::new();
        let mut check = |field: TrackedField, candidates: &[FieldHash]| {
            if let Some(h) = st.field_hashes.get(&field) {
                if !candidates.iter().any(|c| c == h) {
                    drift.push(field);
                }
            }
        };
        check(TrackedField::UserName, &[hash_value(&u.user_name)]);
        if !known.names_joined {
            check(TrackedField::Name, &[hash_value(&name)]);
        }
        check(TrackedField::Email, &[hash_value(&u.email)]);
        check(TrackedField::Role, &[hash_value(&u.role)]);
        check(TrackedField::Org, &[hash_value(&u.org)]);
        check(
            TrackedField::Accommodations,
            &[hash_value(&u.accommodations)],
        );
        check(TrackedField::Active, &[hash_value(&u.active)]);
        if !drift.is_empty() {
            r.drifted.push(finding("user", id, drift));
        }
    }
    // orphans: active on the platform, unknown or deactivated in state
    for u in &snap.users {
        if !u.user.active {
            continue;
        }
        let ext = &u.user.external_id;
        match known.users.get(ext) {
            Some(st) if st.active => {}
            _ => r.orphans.push(finding(
                "user",
                if ext.is_empty() { &u.id } else { ext },
                Vec::new(),
            )),
        }
    }
    // groups and their members
    let pid_to_sis: HashMap<&str, &str> = known
        .users
        .iter()
        .filter_map(|(id, st)| Some((st.platform_id.as_deref()?, id.as_str())))
        .collect();
    let groups_by_ext = index(&snap.groups, |g| g.external_id.as_deref());
    let groups_by_pid = index(&snap.groups, |g| Some(g.id.as_str()));
    let none = BTreeSet::new();
    for (id, st) in by_id(known.groups) {
        let Some(i) = locate(&mut r, "group", id, st, (&groups_by_pid, &groups_by_ext)) else {
            continue;
        };
        let g = &snap.groups[i];
        if let Some(h) = st.field_hashes.get(&TrackedField::DisplayName) {
            let sent_as_id = g.display_name.as_deref() == Some(id.as_str());
            if *h != hash_value(&g.display_name)
                && !(sent_as_id && *h == hash_value(&None::<String>))
            {
                r.drifted
                    .push(finding("group", id, vec![TrackedField::DisplayName]));
            }
        }
        let want = known.members.get(id).unwrap_or(&none);
        let have: BTreeSet<String> = g
            .members
            .iter()
            .map(|p| {
                pid_to_sis
                    .get(p.as_str())
                    .map_or_else(|| p.clone(), |s| s.to_string())
            })
            .collect();
        if !want
            .iter()
            .map(Id::as_str)
            .eq(have.iter().map(String::as_str))
        {
            r.membership
                .push(finding("group", id, vec![TrackedField::Members]));
        }
    }
    r
}

fn finding(kind: &'static str, id: &str, fields: Vec<TrackedField>) -> Finding {
    Finding {
        kind,
        id: id.to_string(),
        fields,
    }
}

/// What `--fix` makes the next run send again: per record, the fields
/// whose stored hashes are forgotten (empty = all of them).
pub fn to_resend(r: &Report) -> Vec<(RecordKind, String, Vec<TrackedField>)> {
    let kind = |k: &str| {
        if k == "user" {
            RecordKind::User
        } else {
            RecordKind::Group
        }
    };
    r.missing
        .iter()
        .chain(&r.drifted)
        .chain(&r.membership)
        .map(|f| (kind(f.kind), f.id.clone(), f.fields.clone()))
        .collect()
}

/// `sisync reconcile [--fix]`: read the platform, compare, and with `fix`
/// forget what is missing or drifted and run a roster sync that sends it
/// again (the safety gate applies).
pub async fn run(
    loaded: &Loaded,
    fix: bool,
    actor: &str,
    progress: &dyn Progress,
) -> Result<(Report, Option<RosterReport>), super::RunError> {
    let cfg = &loaded.config;
    let sink = platform_sink(&cfg.platform).reconciler(loaded).await?;
    // under the run lock: no sync changes the state while it is compared,
    // and the run is recorded (status, metrics, the status page)
    let lock = super::lock::RunLock::acquire(&cfg.state.path)?;
    let mut store = Store::open(&cfg.state.path)?;
    let run_id = store.begin_run("reconcile", actor, false)?;
    progress.phase("reading the platform", None);
    let read = sink.read_back().await.map_err(|e| anyhow::anyhow!("{e}"));
    let snap = match read {
        Ok(s) => s,
        Err(e) => {
            store.fail_run(run_id, &e)?;
            return Err(e.into());
        }
    };
    let users = store.load_state(RecordKind::User)?;
    let groups = store.load_state(RecordKind::Group)?;
    let members = store.load_members()?;
    let report = compare(
        &snap,
        &Known {
            users: &users,
            groups: &groups,
            members: &members,
            names_joined: sink.names_joined(),
        },
    );
    progress.done();
    store.finish_run(
        run_id,
        if report.is_clean() {
            RunOutcome::Ok
        } else {
            RunOutcome::Drift
        },
        &report.summary(),
        None,
    )?;
    if !fix || to_resend(&report).is_empty() {
        return Ok((report, None));
    }
    for (kind, id, fields) in to_resend(&report) {
        store.forget_fields(kind, &id, &fields)?;
        if kind == RecordKind::User && fields.is_empty() {
            store.resend_groups_of(&id)?;
        }
    }
    drop(store);
    drop(lock); // the roster run takes it itself
    // a sync that took the lock in between: the fix failed, not skipped
    let fixed = super::roster(loaded, super::RosterOptions::default(), actor, progress)
        .await
        .map_err(super::RunError::into_anyhow)?;
    Ok((report, Some(fixed)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::{StoredGroup, StoredUser};
    use crate::privacy::policy::PlatformUser;

    fn user(ext: &str, family: &str, active: bool) -> PlatformUser {
        PlatformUser {
            active,
            given_name: Some("A".into()),
            family_name: Some(family.into()),
            ..crate::test_util::platform_user(ext)
        }
    }

    fn state(u: &PlatformUser, pid: &str) -> RecordState {
        let fh = u.field_hashes();
        RecordState {
            hash: crate::privacy::policy::record_hash(&fh),
            field_hashes: fh,
            platform_id: Some(pid.into()),
            active: u.active,
            accommodations: None,
        }
    }

    #[test]
    fn finds_missing_drifted_orphans_and_members() {
        let a = user("a", "Berg", true);
        let b = user("b", "Vos", true);
        let users: HashMap<String, RecordState> =
            [("a".into(), state(&a, "p1")), ("b".into(), state(&b, "p2"))].into();
        let g = crate::privacy::policy::PlatformGroup {
            external_id: "g".into(),
            display_name: Some("H3A".into()),
            org: None,
            members: vec!["a".into(), "b".into()],
            active: true,
            partial: false,
        };
        let gfh = g.field_hashes();
        let groups: HashMap<String, RecordState> = [(
            "g".into(),
            RecordState {
                hash: Default::default(),
                field_hashes: gfh,
                platform_id: Some("pg".into()),
                active: true,
                accommodations: None,
            },
        )]
        .into();
        let members: HashMap<String, BTreeSet<Id>> =
            [("g".into(), [Id::from("a"), Id::from("b")].into())].into();
        let snap = PlatformSnapshot {
            users: vec![
                StoredUser {
                    id: "p1".into(),
                    user: user("a", "Brouwer", true),
                },
                StoredUser {
                    id: "p9".into(),
                    user: user("x", "Stranger", true),
                },
            ],
            groups: vec![StoredGroup {
                id: "pg".into(),
                external_id: Some("g".into()),
                display_name: Some("H3A".into()),
                members: vec!["p1".into()],
            }],
        };
        let r = compare(
            &snap,
            &Known {
                users: &users,
                groups: &groups,
                members: &members,
                names_joined: false,
            },
        );
        assert_eq!(r.missing, vec![finding("user", "b", vec![])]);
        assert_eq!(
            r.drifted,
            vec![finding("user", "a", vec![TrackedField::Name])]
        );
        assert_eq!(r.orphans, vec![finding("user", "x", vec![])]);
        assert_eq!(
            r.membership,
            vec![finding("group", "g", vec![TrackedField::Members])]
        );
        assert_eq!(to_resend(&r).len(), 3);
    }
}
