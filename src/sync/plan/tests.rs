//! Planner tests: idempotence, change detection, deactivation rules,
//! membership merging. The applier is simulated by writing each change's
//! new state back, as the store does after a successful write.

use std::path::Path;

use super::*;
use crate::config::{Privacy, UserNameFrom};
use crate::connector::source::oneroster::config::OneRosterCsvSource;
use crate::connector::source::oneroster::csv::OneRosterCsv;
use crate::model::Roster;
use crate::privacy::policy::Policy;

fn fixture(name: &str) -> Roster {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    OneRosterCsv::new(&OneRosterCsvSource {
        path,
        role_map: Default::default(),
        accommodations: Default::default(),
    })
    .read(&|_| {})
    .unwrap()
}

fn minimise(r: &Roster) -> Minimised {
    Policy::new(&Privacy::default(), UserNameFrom::SourcedId, None).apply(r)
}

/// The state a write stores: the platform's id, or a made-up one
/// (`{prefix}-{external id}`) for a create.
fn written<C: Change>(c: &C, prefix: &str) -> (String, RecordState) {
    let id = c.external_id().to_string();
    let pid = c
        .platform_id()
        .cloned()
        .unwrap_or_else(|| format!("{prefix}-{id}"));
    let state = c.new_state(Some(pid));
    (id, state)
}

/// What the applier does after every successful write.
fn apply(plan: &Plan, state: &mut State) {
    state
        .users
        .extend(plan.users.iter().map(|c| written(c, "p")));
    for c in &plan.groups {
        let (id, s) = written(c, "g");
        state.groups.insert(id, s);
        state.members.insert(
            c.external_id.clone(),
            c.group
                .members
                .iter()
                .map(|m| Id::from(m.as_str()))
                .collect(),
        );
    }
}

fn synced_state() -> (Roster, State) {
    let r = fixture("oneroster-1.2");
    let mut state = State::default();
    let p = plan(minimise(&r), &state, false);
    apply(&p, &mut state);
    (r, state)
}

/// The export without this person and the person's memberships.
fn without_person(r: &mut Roster, id: &str) {
    r.persons.retain(|p| p.sourced_id != id);
    r.memberships.retain(|m| m.person != id);
}

#[test]
fn first_run_creates_everything() {
    let r = fixture("oneroster-1.2");
    let p = plan(minimise(&r), &State::default(), false);
    assert_eq!(p.count_users(Action::Create), 42);
    assert_eq!(p.count_groups(Action::Create), 6);
    assert_eq!(p.users.len() + p.groups.len(), 48);
    let members: usize = p.groups.iter().map(|g| g.group.members.len()).sum();
    assert_eq!(members, 80);
}

#[test]
fn same_input_twice_gives_an_empty_plan() {
    let (r, state) = synced_state();
    let p = plan(minimise(&r), &state, false);
    assert!(p.is_empty(), "{:?}", p.users.first());
    assert_eq!(p.unchanged_users, 42);
    assert_eq!(p.unchanged_groups, 6);
}

#[test]
fn full_resends_every_record() {
    let (r, state) = synced_state();
    let p = plan(minimise(&r), &state, true);
    assert_eq!(p.count_users(Action::Update), 42);
    assert_eq!(p.count_groups(Action::Update), 6);
    let mut state2 = state.clone();
    apply(&p, &mut state2);
    assert!(plan(minimise(&r), &state2, false).is_empty());
}

#[test]
fn rename_is_one_update_of_name_only() {
    let (mut r, state) = synced_state();
    let s = r
        .persons
        .iter_mut()
        .find(|p| p.sourced_id == "stu-1009")
        .unwrap();
    s.family_name = "Brouwer".into();
    let p = plan(minimise(&r), &state, false);
    assert_eq!(p.users.len(), 1);
    assert!(p.groups.is_empty());
    assert_eq!(p.users[0].action, Action::Update);
    assert_eq!(p.users[0].changed, vec![TrackedField::Name]);
    assert_eq!(p.users[0].platform_id.as_deref(), Some("p-stu-1009"));
}

#[test]
fn absent_from_bulk_is_deactivated_and_leaves_its_classes() {
    let (mut r, state) = synced_state();
    without_person(&mut r, "stu-1014");
    let p = plan(minimise(&r), &state, false);
    let [gone] = &p.users[..] else {
        panic!("one user change: {:?}", p.users)
    };
    assert_eq!(gone.action, Action::Deactivate);
    assert_eq!(gone.external_id, "stu-1014");
    assert!(
        p.groups
            .iter()
            .all(|g| g.changed == vec![TrackedField::Members])
    );
    assert_eq!(p.groups.len(), 3, "stu-1014 was in three classes");
    let mut state = state;
    apply(&p, &mut state);
    assert!(!state.users["stu-1014"].active);
    // and it stays quiet afterwards
    assert!(plan(minimise(&r), &state, false).is_empty());
}

#[test]
fn returning_user_is_reactivated() {
    let (r, mut state) = synced_state();
    let mut gone = r.clone();
    without_person(&mut gone, "stu-1001");
    let p = plan(minimise(&gone), &state, false);
    apply(&p, &mut state);
    let p = plan(minimise(&r), &state, false);
    let back = p
        .users
        .iter()
        .find(|c| c.external_id == "stu-1001")
        .unwrap();
    assert_eq!(back.action, Action::Update);
    assert_eq!(back.changed, vec![TrackedField::Active]);
    assert!(back.user.as_ref().unwrap().active);
}

#[test]
fn held_rows_are_never_deactivated() {
    let (mut r, state) = synced_state();
    r.persons.retain(|p| p.sourced_id != "stu-1020");
    r.held_persons.insert("stu-1020".into());
    let p = plan(minimise(&r), &state, false);
    assert!(p.users.is_empty(), "{:?}", p.users);
    assert_eq!(p.held_users, 1);
    // and stays in its classes
    assert!(p.groups.is_empty(), "{:?}", p.groups);
}

#[test]
fn delta_applies_rename_leaver_newcomer_and_memberships() {
    let (bulk, mut state) = synced_state();
    let mut d = fixture("oneroster-1.2-delta");
    // the store keeps the orgs of the last bulk export (orgs.csv is absent)
    d.orgs = bulk.orgs;
    let p = plan(minimise(&d), &state, false);
    let by = |id: &str| p.users.iter().find(|c| c.external_id == id).unwrap();
    assert_eq!(p.users.len(), 3, "{:?}", p.users);
    assert_eq!(by("stu-1009").action, Action::Update);
    assert_eq!(by("stu-1009").changed, vec![TrackedField::Name]);
    assert_eq!(by("stu-1014").action, Action::Deactivate);
    assert_eq!(by("stu-1037").action, Action::Create);
    // nobody else is touched: a delta says nothing about absent users
    assert_eq!(p.count_users(Action::Deactivate), 1);
    let h3a = p
        .groups
        .iter()
        .find(|g| g.external_id == "cls-ne-h3a")
        .unwrap();
    assert!(h3a.group.members.contains(&"stu-1037".to_string()));
    assert!(!h3a.group.members.contains(&"stu-1014".to_string()));
    assert_eq!(h3a.changed, vec![TrackedField::Members]);
    apply(&p, &mut state);
    let again = plan(minimise(&d), &state, false);
    assert!(again.is_empty(), "{:?} {:?}", again.users, again.groups);
    // the role the delta did not repeat is kept, not cleared
    assert!(
        state.users["stu-1009"]
            .field_hashes
            .contains_key(&TrackedField::Role)
    );
}

#[test]
fn class_absent_from_bulk_is_retired() {
    let (mut r, state) = synced_state();
    r.groups.retain(|g| g.sourced_id != "cls-mentor-m2b");
    r.memberships.retain(|m| m.group != "cls-mentor-m2b");
    let p = plan(minimise(&r), &state, false);
    let [retired] = &p.groups[..] else {
        panic!("one group change: {:?}", p.groups)
    };
    assert_eq!(retired.action, Action::Deactivate);
    assert!(retired.group.members.is_empty());
    assert!(p.users.is_empty());
}

#[test]
fn new_user_without_role_in_delta_is_held() {
    let mut d = fixture("oneroster-1.2-delta");
    for p in d.persons.iter_mut() {
        p.role = None;
    }
    let p = plan(minimise(&d), &State::default(), false);
    assert!(p.users.iter().all(|c| c.action != Action::Create));
    assert!(
        p.issues
            .iter()
            .any(|i| i.record_id.as_deref() == Some("stu-1037"))
    );
}

#[test]
fn removed_members_counted_by_walk_and_by_lookup_alike() {
    let before: BTreeSet<Id> = ["a", "c", "d", "f"].map(Id::from).into();
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // sorted: walked in order
    assert_eq!(removed(&before, &ids(&["b", "c", "f", "g"])), 2);
    assert_eq!(removed(&before, &ids(&[])), 4);
    assert_eq!(removed(&before, &ids(&["a", "c", "d", "f"])), 0);
    // not sorted: looked up
    assert_eq!(removed(&before, &ids(&["f", "c", "b"])), 2);
    assert_eq!(removed(&BTreeSet::new(), &ids(&["x"])), 0);
}
