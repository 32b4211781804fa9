//! The planner: pure. (minimised roster, stored state) → Plan.
//!
//! Change detection compares per-field content hashes with what was last
//! pushed, so the same input twice yields an empty plan.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

// sets of record ids looked up once per user or membership: Fx, not
// SipHash (ids come from the school's own export, not from strangers)
use rustc_hash::FxHashSet;

use serde::{Deserialize, Serialize};

use crate::model::{Completeness, Id, SourceIssue, TrackedField};
use crate::privacy::policy::{
    ExamAccommodations, Minimised, PlatformGroup, PlatformUser, hash_value, record_hash,
};
use crate::store::{FieldHashes, RecordKind, RecordState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Deactivate,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Deactivate => "deactivate",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserChange {
    pub action: Action,
    pub external_id: String,
    /// The platform's id when known (updates, deactivations).
    #[serde(skip)]
    pub platform_id: Option<String>,
    /// The record to send; for deactivations only the id matters.
    #[serde(skip)]
    pub user: Option<PlatformUser>,
    /// Names of the fields that differ from what was last pushed.
    pub changed: Vec<TrackedField>,
    #[serde(skip)]
    pub field_hashes: FieldHashes,
    /// The update removes or reduces the user's exam accommodations.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reduces_accommodations: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupChange {
    /// Deactivate = retire: all members removed, the group kept.
    pub action: Action,
    pub external_id: String,
    #[serde(skip)]
    pub platform_id: Option<String>,
    #[serde(skip)]
    pub group: PlatformGroup,
    pub changed: Vec<TrackedField>,
    #[serde(skip)]
    pub field_hashes: FieldHashes,
}

/// The accessors every planned change has alike: its fields of the same
/// names (`action`, `external_id`, `changed`, `platform_id`,
/// `field_hashes`).
macro_rules! change_fields {
    () => {
        fn action(&self) -> Action {
            self.action
        }
        fn external_id(&self) -> &str {
            &self.external_id
        }
        fn changed(&self) -> &[TrackedField] {
            &self.changed
        }
        fn platform_id(&self) -> Option<&String> {
            self.platform_id.as_ref()
        }
        fn field_hashes(&self) -> &FieldHashes {
            &self.field_hashes
        }
    };
}

/// What the applier needs of any planned change.
pub trait Change {
    const KIND: RecordKind;
    /// What the change sends: a user, group, sitting or registration.
    type Record;
    /// The record to send (none for most deactivations).
    fn record(&self) -> Option<&Self::Record>;
    fn action(&self) -> Action;
    fn external_id(&self) -> &str;
    fn changed(&self) -> &[TrackedField];
    fn platform_id(&self) -> Option<&String>;
    fn field_hashes(&self) -> &FieldHashes;
    /// For groups: the member ids the platform will hold.
    fn members(&self) -> Option<Vec<String>> {
        None
    }
    /// For users: the accommodations the platform will hold.
    fn accommodations(&self) -> Option<ExamAccommodations> {
        None
    }
    /// For registrations: the exam sitting.
    fn parent(&self) -> Option<String> {
        None
    }

    /// The state to store once the platform accepted the change.
    fn new_state(&self, platform_id: Option<String>) -> RecordState {
        RecordState {
            hash: record_hash(self.field_hashes()),
            field_hashes: self.field_hashes().clone(),
            platform_id,
            active: self.action() != Action::Deactivate,
            accommodations: self.accommodations(),
        }
    }
}

impl Change for UserChange {
    const KIND: RecordKind = RecordKind::User;
    type Record = PlatformUser;
    fn record(&self) -> Option<&PlatformUser> {
        self.user.as_ref()
    }
    change_fields!();
    fn accommodations(&self) -> Option<ExamAccommodations> {
        self.user.as_ref().and_then(|u| u.accommodations.clone())
    }
}

impl Change for GroupChange {
    const KIND: RecordKind = RecordKind::Group;
    type Record = PlatformGroup;
    fn record(&self) -> Option<&PlatformGroup> {
        Some(&self.group)
    }
    change_fields!();
    fn members(&self) -> Option<Vec<String>> {
        Some(self.group.members.clone())
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub users: Vec<UserChange>,
    pub groups: Vec<GroupChange>,
    pub unchanged_users: usize,
    pub unchanged_groups: usize,
    /// Records left as they are because their source row was malformed.
    pub held_users: usize,
    pub held_groups: usize,
    /// Active users in state before this plan (the safety gate's base).
    pub known_active_users: usize,
    pub known_active_groups: usize,
    /// Users the source delivered (in scope, active).
    pub source_users: usize,
    pub users_completeness: Completeness,
    pub groups_completeness: Completeness,
    pub memberships_completeness: Completeness,
    /// What the safety gate counts, per kind of change.
    pub gate: GateCounts,
    /// Exam sittings and registrations (OKE).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub offerings: Vec<OfferingChange>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub registrations: Vec<RegistrationChange>,
    pub unchanged_offerings: usize,
    pub unchanged_registrations: usize,
    pub held_registrations: usize,
    pub exams_completeness: Completeness,
    #[serde(skip)]
    pub issues: Vec<SourceIssue>,
}

/// Per kind of mass change: how many the plan makes and the base it is
/// measured against (what sisync knows it has pushed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateCounts {
    /// Users updated with a real change (a `--full` resend does not count).
    pub users_updated: usize,
    /// Memberships of active groups in state, and how many the plan removes.
    pub memberships_known: usize,
    pub memberships_removed: usize,
    /// Groups retired, or emptied while they had members.
    pub groups_lost: usize,
    /// Active users with accommodations, and how many lose or get fewer.
    pub accommodations_known: usize,
    pub accommodations_lost: usize,
    /// What the source delivered (for the empty-bulk check).
    pub source_groups: usize,
    pub source_memberships: usize,
    /// Active registrations in state, how many the plan withdraws, and
    /// how many the source delivered.
    #[serde(default)]
    pub registrations_known: usize,
    #[serde(default)]
    pub registrations_withdrawn: usize,
    #[serde(default)]
    pub source_registrations: usize,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
            && self.groups.is_empty()
            && self.offerings.is_empty()
            && self.registrations.is_empty()
    }

    pub fn count_users(&self, a: Action) -> usize {
        self.users.iter().filter(|c| c.action == a).count()
    }

    pub fn count_groups(&self, a: Action) -> usize {
        self.groups.iter().filter(|c| c.action == a).count()
    }
}

/// Everything the planner reads from the store.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub users: HashMap<String, RecordState>,
    pub groups: HashMap<String, RecordState>,
    pub members: HashMap<String, BTreeSet<Id>>,
    pub offerings: HashMap<String, RecordState>,
    pub registrations: HashMap<String, RecordState>,
    /// The exam sitting of each stored registration.
    pub registration_offering: HashMap<String, String>,
}

impl State {
    /// Everything the planner needs, from the store.
    pub fn load(store: &crate::store::Store) -> anyhow::Result<State> {
        Ok(State {
            users: store.load_state(RecordKind::User)?,
            groups: store.load_state(RecordKind::Group)?,
            members: store.load_members()?,
            offerings: store.load_state(RecordKind::Offering)?,
            registrations: store.load_state(RecordKind::Registration)?,
            registration_offering: store.load_parents(RecordKind::Registration)?,
        })
    }
}

/// Build the plan. With `full`, every active record is sent again.
pub fn plan(mut m: Minimised, state: &State, full: bool) -> Plan {
    let mut p = Plan {
        users_completeness: m.users_completeness,
        known_active_users: state.users.values().filter(|s| s.active).count(),
        known_active_groups: state.groups.values().filter(|s| s.active).count(),
        source_users: m.users.len(),
        groups_completeness: m.groups_completeness,
        memberships_completeness: m.memberships_completeness,
        issues: m.issues.clone(),
        ..Plan::default()
    };
    let none = hash_value(&None::<ExamAccommodations>);
    p.gate.accommodations_known = state
        .users
        .values()
        .filter(|s| {
            s.active
                && s.field_hashes
                    .get(&TrackedField::Accommodations)
                    .is_some_and(|h| *h != none)
        })
        .count();
    p.gate.memberships_known = state
        .members
        .iter()
        .filter(|(g, _)| state.groups.get(*g).is_some_and(|s| s.active))
        .map(|(_, m)| m.len())
        .sum();
    p.gate.source_groups = m.groups.len();
    p.gate.source_memberships = m.members.values().map(BTreeSet::len).sum();
    let users = std::mem::take(&mut m.users);
    plan_users(users, &m, state, full, &mut p);
    plan_groups(&m, state, full, &mut p);
    count_group_losses(state, &mut p);
    exams::plan_exams(&m.exams, state, full, &mut p);
    p
}

/// Whether `new` gives a candidate less than `old`: any accommodation gone
/// or lowered. An old value sisync did not keep (state from before it kept
/// them) counts as reduced when the hash changed: the gate errs on the
/// side of holding.
pub fn reduces(
    old: Option<&ExamAccommodations>,
    had_any: bool,
    new: Option<&ExamAccommodations>,
) -> bool {
    let Some(old) = old else {
        return had_any;
    };
    let Some(new) = new else {
        return true;
    };
    let lower = |o: Option<f64>, n: Option<f64>| match (o, n) {
        (Some(o), Some(n)) => n < o,
        (Some(_), None) => true,
        _ => false,
    };
    let needs_lost = old.personal_needs.as_ref().is_some_and(|o| {
        let n = new.personal_needs.as_deref().unwrap_or_default();
        o.iter().any(|c| !n.contains(c))
    });
    lower(
        old.extra_time_percent.map(f64::from),
        new.extra_time_percent.map(f64::from),
    ) || lower(old.font_scale, new.font_scale)
        || lower(
            old.extra_time_minutes.map(f64::from),
            new.extra_time_minutes.map(f64::from),
        )
        || needs_lost
        || (old.screen_reader == Some(true) && new.screen_reader != Some(true))
}

/// Memberships removed and groups emptied or retired, against state.
fn count_group_losses(state: &State, p: &mut Plan) {
    let empty = BTreeSet::new();
    for c in &p.groups {
        let before = state.members.get(&c.external_id).unwrap_or(&empty);
        p.gate.memberships_removed += removed(before, &c.group.members);
        let was_active = state.groups.get(&c.external_id).is_some_and(|s| s.active);
        if was_active
            && (c.action == Action::Deactivate
                || (c.group.members.is_empty() && !before.is_empty()))
        {
            p.gate.groups_lost += 1;
        }
    }
}

/// How many of `before` are not in `after`: a walk of both in order when
/// `after` is sorted (as planned groups are), else by lookup.
fn removed(before: &BTreeSet<Id>, after: &[String]) -> usize {
    if !after.is_sorted() {
        let after: HashSet<&str> = after.iter().map(String::as_str).collect();
        return before
            .iter()
            .filter(|m| !after.contains(m.as_str()))
            .count();
    }
    let mut after = after.iter().peekable();
    let mut n = 0;
    for m in before {
        while after.next_if(|a| a.as_str() < m.as_str()).is_some() {}
        if after.next_if(|a| *a == m).is_none() {
            n += 1;
        }
    }
    n
}

/// What a record sends against its stored state: every field with `full`,
/// else the fields whose hash changed; None when nothing changed at all
/// (no field, and the record hash is the stored one).
fn changes(old: &RecordState, fh: &FieldHashes, full: bool) -> Option<Vec<TrackedField>> {
    let changed = if full {
        fh.keys().copied().collect()
    } else {
        changed_fields(&old.field_hashes, fh)
    };
    (!changed.is_empty() || old.hash != record_hash(fh)).then_some(changed)
}

fn changed_fields(old: &FieldHashes, new: &FieldHashes) -> Vec<TrackedField> {
    let mut changed: Vec<TrackedField> = new
        .iter()
        .filter(|(k, v)| old.get(k) != Some(*v))
        .map(|(k, _)| *k)
        .collect();
    // a BSN sent before but no longer allowed (or an acceptance platform
    // now): removed from the platform
    if old.contains_key(&TrackedField::Bsn) && !new.contains_key(&TrackedField::Bsn) {
        changed.push(TrackedField::Bsn);
    }
    changed
}

fn plan_users(users: Vec<PlatformUser>, m: &Minimised, state: &State, full: bool, p: &mut Plan) {
    let mut desired: FxHashSet<String> =
        FxHashSet::with_capacity_and_hasher(users.len(), Default::default());
    for u in users {
        desired.insert(u.external_id.clone());
        if m.held_users.contains(&u.external_id) {
            p.held_users += 1;
            continue;
        }
        let mut fh = u.field_hashes();
        match state.users.get(&u.external_id) {
            None if !u.unknown.is_empty() => {
                p.held_users += 1;
                p.issues.push(SourceIssue {
                    location: "users".into(),
                    record_id: Some(u.external_id.clone()),
                    reason: format!(
                        "new user whose {} the export does not give (roles.csv, orgs.csv); fix it in the SIS",
                        TrackedField::join(&u.unknown, " and ")
                    ),
                });
            }
            None => p.users.push(UserChange {
                action: Action::Create,
                external_id: u.external_id.clone(),
                platform_id: None,
                // what goes out: an empty or never-allowed field is no
                // attribute of the create (nor of its audit entry)
                changed: fh.keys().copied().filter(|k| u.carries(*k)).collect(),
                user: Some(u),
                field_hashes: fh,
                reduces_accommodations: false,
            }),
            Some(old) => {
                for f in &u.unknown {
                    if let Some(h) = old.field_hashes.get(f) {
                        fh.insert(*f, *h);
                    }
                }
                let really = changed_fields(&old.field_hashes, &fh);
                let changed = if full {
                    // everything again: a value, or a removal where the
                    // platform drifted
                    fh.keys()
                        .filter(|k| !u.unknown.contains(k))
                        .cloned()
                        .collect()
                } else {
                    really.clone()
                };
                if changed.is_empty() && old.hash == record_hash(&fh) {
                    p.unchanged_users += 1;
                } else {
                    // a field sisync starts or stops tracking (bsn added
                    // to or dropped from privacy.fields) is a config
                    // change, not a source one
                    if really
                        .iter()
                        .any(|f| old.field_hashes.contains_key(f) && fh.contains_key(f))
                    {
                        p.gate.users_updated += 1;
                    }
                    let none = hash_value(&None::<ExamAccommodations>);
                    let reduces_accommodations = old.active
                        && really.contains(&TrackedField::Accommodations)
                        && reduces(
                            old.accommodations.as_ref(),
                            old.field_hashes
                                .get(&TrackedField::Accommodations)
                                .is_some_and(|h| *h != none),
                            u.accommodations.as_ref(),
                        );
                    if reduces_accommodations {
                        p.gate.accommodations_lost += 1;
                    }
                    p.users.push(UserChange {
                        action: Action::Update,
                        external_id: u.external_id.clone(),
                        platform_id: old.platform_id.clone(),
                        user: Some(u),
                        changed,
                        field_hashes: fh,
                        reduces_accommodations,
                    });
                }
            }
        }
    }
    let deactivate = |id: &str, old: &RecordState, p: &mut Plan| {
        let mut fh = old.field_hashes.clone();
        fh.insert(TrackedField::Active, hash_value(&false));
        p.users.push(UserChange {
            action: Action::Deactivate,
            external_id: id.to_string(),
            platform_id: old.platform_id.clone(),
            user: None,
            changed: vec![TrackedField::Active],
            field_hashes: fh,
            reduces_accommodations: false,
        });
    };
    let mut leaving: FxHashSet<&str> = FxHashSet::default();
    for id in &m.leaving {
        if !leaving.insert(id.as_str()) || desired.contains(id.as_str()) {
            continue;
        }
        if let Some(old) = state.users.get(id) {
            if old.active {
                deactivate(id, old, p);
            }
        }
    }
    if m.users_completeness == Completeness::Bulk {
        let kept = |id: &String| {
            desired.contains(id.as_str())
                || leaving.contains(id.as_str())
                || m.held_users.contains(id)
        };
        for (id, old) in gone(&state.users, kept) {
            deactivate(id, old, p);
        }
    }
    p.held_users += m
        .held_users
        .iter()
        .filter(|id| !desired.contains(id.as_str()))
        .count();
}

/// The records still active in the state that a complete (bulk) read no
/// longer `kept` (carried, leaving on its own, or held), in id order: the
/// ones to deactivate.
fn gone(
    stored: &HashMap<String, RecordState>,
    kept: impl Fn(&String) -> bool,
) -> Vec<(&String, &RecordState)> {
    let mut gone: Vec<(&String, &RecordState)> = stored
        .iter()
        .filter(|(id, s)| s.active && !kept(id))
        .collect();
    gone.sort_by(|a, b| a.0.cmp(b.0));
    gone
}

fn plan_groups(m: &Minimised, state: &State, full: bool, p: &mut Plan) {
    if m.groups_completeness == Completeness::Absent
        && m.memberships_completeness == Completeness::Absent
    {
        return;
    }
    // Who will be an active user on the platform after this plan.
    let will_be_active: FxHashSet<&str> = {
        let mut s: FxHashSet<&str> = state
            .users
            .iter()
            .filter(|(_, st)| st.active)
            .map(|(id, _)| id.as_str())
            .collect();
        for c in &p.users {
            match c.action {
                Action::Deactivate => {
                    s.remove(c.external_id.as_str());
                }
                _ => {
                    s.insert(c.external_id.as_str());
                }
            }
        }
        s
    };
    let empty = BTreeSet::new();
    let records: BTreeMap<&str, &PlatformGroup> = m
        .groups
        .iter()
        .map(|g| (g.external_id.as_str(), g))
        .collect();
    let leaving: FxHashSet<&str> = m.groups_leaving.iter().map(String::as_str).collect();
    // Which groups to look at.
    let mut ids: BTreeSet<&str> = records.keys().copied().collect();
    match m.memberships_completeness {
        Completeness::Bulk => {
            ids.extend(m.members.keys().map(String::as_str));
            ids.extend(
                state
                    .groups
                    .iter()
                    .filter(|(_, s)| s.active)
                    .map(|(id, _)| id.as_str()),
            );
        }
        Completeness::Delta => ids.extend(m.member_deltas.keys().map(String::as_str)),
        Completeness::Absent => {}
    }
    for id in ids {
        if leaving.contains(id) {
            continue;
        }
        if m.held_groups.contains(id) {
            p.held_groups += 1;
            continue;
        }
        let old = state.groups.get(id);
        let record = records.get(id).copied();
        if record.is_none() {
            match old {
                // Absent from a bulk classes file: retired below.
                Some(o) if o.active && m.groups_completeness == Completeness::Bulk => continue,
                Some(o) if o.active => {}
                Some(_) => continue,
                None => {
                    p.issues.push(SourceIssue {
                        location: "enrollments".into(),
                        record_id: Some(id.to_string()),
                        reason: "enrolments for a class that sisync does not know; it is in no classes file".into(),
                    });
                    continue;
                }
            }
        }
        let stored = state.members.get(id).unwrap_or(&empty);
        // The members as borrowed ids: they are hashed first and copied
        // only into a group that changed (a rerun copies none).
        let active = |u: &&str| will_be_active.contains(*u);
        let source = || m.members.get(id).into_iter().flatten().map(Id::as_str);
        let delta: BTreeSet<Id>;
        let members: Vec<&str> = match m.memberships_completeness {
            Completeness::Bulk if m.held_users.is_empty() => source().filter(active).collect(),
            Completeness::Delta => {
                let mut s = stored.clone();
                if let Some(d) = m.member_deltas.get(id) {
                    for r in &d.remove {
                        s.remove(r.as_str());
                    }
                    for a in &d.add {
                        if will_be_active.contains(a.as_str()) {
                            s.insert(Id::from(a.as_str()));
                        } else {
                            p.issues.push(SourceIssue {
                                location: "enrollments".into(),
                                record_id: Some(a.clone()),
                                reason: format!("enrolment in {id} for a user sisync does not know or who is not active"),
                            });
                        }
                    }
                }
                delta = s;
                delta.iter().map(Id::as_str).filter(active).collect()
            }
            Completeness::Bulk => {
                let mut s: BTreeSet<&str> = source().collect();
                // keep held users where they were
                s.extend(
                    stored
                        .iter()
                        .map(Id::as_str)
                        .filter(|u| m.held_users.contains(*u)),
                );
                s.into_iter().filter(active).collect()
            }
            Completeness::Absent => stored.iter().map(Id::as_str).filter(active).collect(),
        };
        let mut group = match record {
            Some(g) => PlatformGroup {
                members: Vec::new(),
                ..g.clone()
            },
            None => PlatformGroup {
                external_id: id.to_string(),
                display_name: None,
                org: None,
                members: Vec::new(),
                active: true,
                partial: true,
            },
        };
        let mut fh = group.field_hashes_for(&members);
        if group.partial {
            if let Some(o) = old {
                for (k, v) in &o.field_hashes {
                    if !fh.contains_key(k) {
                        fh.insert(*k, *v);
                    }
                }
            }
        }
        let owned = |members: &[&str]| members.iter().map(|u| u.to_string()).collect();
        match old {
            None => p.groups.push(GroupChange {
                action: Action::Create,
                external_id: id.to_string(),
                platform_id: None,
                changed: fh.keys().cloned().collect(),
                group: PlatformGroup {
                    members: owned(&members),
                    ..group
                },
                field_hashes: fh,
            }),
            Some(o) => match changes(o, &fh, full) {
                None => p.unchanged_groups += 1,
                Some(changed) => {
                    group.members = owned(&members);
                    p.groups.push(GroupChange {
                        action: Action::Update,
                        external_id: id.to_string(),
                        platform_id: o.platform_id.clone(),
                        changed,
                        group,
                        field_hashes: fh,
                    });
                }
            },
        }
    }
    // Retire groups that left: members emptied, group kept.
    let mut retire: Vec<&str> = m.groups_leaving.iter().map(String::as_str).collect();
    if m.groups_completeness == Completeness::Bulk {
        retire.extend(
            state
                .groups
                .keys()
                .map(String::as_str)
                .filter(|id| !records.contains_key(id) && !m.held_groups.contains(*id)),
        );
    }
    retire.sort_unstable();
    retire.dedup();
    for id in retire {
        let Some(old) = state.groups.get(id) else {
            continue;
        };
        if !old.active {
            continue;
        }
        let group = PlatformGroup {
            external_id: id.to_string(),
            display_name: None,
            org: None,
            members: Vec::new(),
            active: false,
            partial: true,
        };
        let mut fh = old.field_hashes.clone();
        fh.extend(group.field_hashes());
        fh.insert(TrackedField::Active, hash_value(&false));
        p.groups.push(GroupChange {
            action: Action::Deactivate,
            external_id: id.to_string(),
            platform_id: old.platform_id.clone(),
            changed: vec![TrackedField::Members],
            group,
            field_hashes: fh,
        });
    }
}

pub(crate) mod exams;
pub use exams::{OfferingChange, RegistrationChange};

#[cfg(test)]
mod tests;
