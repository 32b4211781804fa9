//! Planning exam sittings and registrations: create / update / withdraw,
//! like users. Withdrawal is never a delete: a registration is cancelled
//! (OKE `state: canceled`), a sitting gets `offeringState: canceled`.
//!
//! A bulk read covers a planning window: a registration absent from it is
//! withdrawn only when its sitting was read (`covered`); sittings outside
//! the window, and their registrations, stay as they are.

use std::collections::HashSet;

use serde::Serialize;

use super::{Action, Change, Plan, State, changes};
use crate::model::{Completeness, RegistrationRole, TrackedField};
use crate::privacy::exams::{MinimisedExams, PlatformOffering, PlatformRegistration};
use crate::privacy::policy::ExamAccommodations;
use crate::privacy::policy::hash_value;
use crate::store::{FieldHashes, RecordKind, RecordState};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OfferingChange {
    /// Deactivate = cancel the sitting.
    pub action: Action,
    pub external_id: String,
    #[serde(skip)]
    pub platform_id: Option<String>,
    /// None for a cancellation.
    #[serde(skip)]
    pub offering: Option<PlatformOffering>,
    pub changed: Vec<TrackedField>,
    #[serde(skip)]
    pub field_hashes: FieldHashes,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegistrationChange {
    /// Deactivate = withdraw (cancel) the registration.
    pub action: Action,
    pub external_id: String,
    #[serde(skip)]
    pub platform_id: Option<String>,
    /// None for a withdrawal.
    #[serde(skip)]
    pub registration: Option<PlatformRegistration>,
    /// The exam sitting.
    pub offering: Option<String>,
    pub changed: Vec<TrackedField>,
    #[serde(skip)]
    pub field_hashes: FieldHashes,
}

impl Change for OfferingChange {
    const KIND: RecordKind = RecordKind::Offering;
    type Record = PlatformOffering;
    fn record(&self) -> Option<&PlatformOffering> {
        self.offering.as_ref()
    }
    change_fields!();
}

impl Change for RegistrationChange {
    const KIND: RecordKind = RecordKind::Registration;
    type Record = PlatformRegistration;
    fn record(&self) -> Option<&PlatformRegistration> {
        self.registration.as_ref()
    }
    change_fields!();
    fn parent(&self) -> Option<String> {
        self.offering.clone()
    }
    fn accommodations(&self) -> Option<ExamAccommodations> {
        self.registration.as_ref().and_then(needs_of)
    }
}

/// A candidate's extra minutes and personal needs of one registration, as
/// accommodations (kept in the state so that a reduction is seen).
pub(crate) fn needs_of(r: &PlatformRegistration) -> Option<ExamAccommodations> {
    let needs = r.personal_needs.clone().filter(|n| !n.is_empty());
    (r.role == RegistrationRole::Candidate && (r.extra_minutes.is_some() || needs.is_some())).then(
        || ExamAccommodations {
            extra_time_minutes: r.extra_minutes,
            personal_needs: needs,
            ..ExamAccommodations::default()
        },
    )
}

fn withdrawn_hashes(old: &RecordState) -> FieldHashes {
    let mut fh = old.field_hashes.clone();
    fh.insert(TrackedField::Active, hash_value(&false));
    fh
}

pub(super) fn plan_exams(m: &MinimisedExams, state: &State, full: bool, p: &mut Plan) {
    p.exams_completeness = m.completeness;
    p.gate.registrations_known = state.registrations.values().filter(|s| s.active).count();
    // a candidate's needs per registration join the accommodations gate
    p.gate.accommodations_known += state
        .registrations
        .values()
        .filter(|s| s.active && s.accommodations.is_some())
        .count();
    if m.completeness == Completeness::Absent {
        return;
    }
    p.gate.source_registrations = m.registrations.len();
    // sittings first: a registration refers to one
    let mut seen: HashSet<&str> = HashSet::new();
    for o in &m.offerings {
        if !seen.insert(o.external_id.as_str()) {
            continue;
        }
        let fh = o.field_hashes();
        match state.offerings.get(&o.external_id) {
            None => p.offerings.push(OfferingChange {
                action: Action::Create,
                external_id: o.external_id.clone(),
                platform_id: None,
                offering: Some(o.clone()),
                changed: fh.keys().copied().collect(),
                field_hashes: fh,
            }),
            Some(old) => match changes(old, &fh, full) {
                None => p.unchanged_offerings += 1,
                Some(changed) => {
                    p.offerings.push(OfferingChange {
                        action: Action::Update,
                        external_id: o.external_id.clone(),
                        platform_id: old.platform_id.clone(),
                        offering: Some(o.clone()),
                        changed,
                        field_hashes: fh,
                    });
                }
            },
        }
    }
    for id in &m.offerings_leaving {
        if seen.contains(id.as_str()) || !seen.insert(id.as_str()) {
            continue;
        }
        if let Some(old) = state.offerings.get(id).filter(|s| s.active) {
            p.offerings.push(OfferingChange {
                action: Action::Deactivate,
                external_id: id.clone(),
                platform_id: old.platform_id.clone(),
                offering: None,
                changed: vec![TrackedField::Active],
                field_hashes: withdrawn_hashes(old),
            });
        }
    }

    let mut desired: HashSet<&str> = HashSet::new();
    for r in &m.registrations {
        if !desired.insert(r.external_id.as_str()) {
            continue;
        }
        if m.held.contains(&r.external_id) {
            p.held_registrations += 1;
            continue;
        }
        let fh = r.field_hashes();
        match state.registrations.get(&r.external_id) {
            None => p.registrations.push(RegistrationChange {
                action: Action::Create,
                external_id: r.external_id.clone(),
                platform_id: None,
                offering: Some(r.offering.clone()),
                registration: Some(r.clone()),
                changed: fh.keys().copied().collect(),
                field_hashes: fh,
            }),
            Some(old) => match changes(old, &fh, full) {
                None => p.unchanged_registrations += 1,
                Some(changed) => {
                    // a registration withdrawn before and back again is
                    // sent whole (and re-associated)
                    let changed = if old.active {
                        changed
                    } else {
                        fh.keys().copied().collect()
                    };
                    if old.active
                        && super::reduces(
                            old.accommodations.as_ref(),
                            old.accommodations.is_some(),
                            needs_of(r).as_ref(),
                        )
                    {
                        p.gate.accommodations_lost += 1;
                    }
                    p.registrations.push(RegistrationChange {
                        action: Action::Update,
                        external_id: r.external_id.clone(),
                        platform_id: old.platform_id.clone(),
                        offering: Some(r.offering.clone()),
                        registration: Some(r.clone()),
                        changed,
                        field_hashes: fh,
                    });
                }
            },
        }
    }
    let withdraw = |id: &str, old: &RecordState, p: &mut Plan| {
        p.gate.registrations_withdrawn += 1;
        p.registrations.push(RegistrationChange {
            action: Action::Deactivate,
            external_id: id.to_string(),
            platform_id: old.platform_id.clone(),
            registration: None,
            offering: state.registration_offering.get(id).cloned(),
            changed: vec![TrackedField::State],
            field_hashes: withdrawn_hashes(old),
        });
    };
    let mut leaving: HashSet<&str> = HashSet::new();
    for id in &m.registrations_leaving {
        if desired.contains(id.as_str()) || m.held.contains(id) || !leaving.insert(id.as_str()) {
            continue;
        }
        if let Some(old) = state.registrations.get(id).filter(|s| s.active) {
            withdraw(id, old, p);
        }
    }
    if m.completeness == Completeness::Bulk {
        // only sittings the read covered: a registration of another
        // sitting was not asked for
        let kept = |id: &String| {
            desired.contains(id.as_str())
                || leaving.contains(id.as_str())
                || m.held.contains(id)
                || !state
                    .registration_offering
                    .get(id)
                    .is_some_and(|o| m.covered.contains(o))
        };
        for (id, old) in super::gone(&state.registrations, kept) {
            withdraw(id, old, p);
        }
    }
    p.held_registrations += m
        .held
        .iter()
        .filter(|id| !desired.contains(id.as_str()))
        .count();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RegistrationRole, RegistrationState};

    fn reg(id: &str, offering: &str, minutes: Option<u32>) -> PlatformRegistration {
        PlatformRegistration {
            external_id: id.into(),
            person: format!("p-{id}"),
            offering: offering.into(),
            role: RegistrationRole::Candidate,
            state: RegistrationState::Associated,
            personal_needs: Some(vec!["extraTime".into()]),
            extra_minutes: minutes,
            attempt: Some(1),
            person_record: None,
        }
    }

    fn stored(c: &RegistrationChange) -> RecordState {
        c.new_state(None)
    }

    #[test]
    fn create_unchanged_update_and_withdraw_only_within_covered_sittings() {
        let mut m = MinimisedExams {
            completeness: Completeness::Bulk,
            registrations: vec![
                reg("a1", "o1", Some(30)),
                reg("a2", "o1", None),
                reg("a3", "o2", None),
            ],
            covered: ["o1".to_string(), "o2".to_string()].into(),
            ..MinimisedExams::default()
        };
        let mut p = Plan::default();
        plan_exams(&m, &State::default(), false, &mut p);
        assert_eq!(p.registrations.len(), 3);
        assert!(p.registrations.iter().all(|c| c.action == Action::Create));
        let mut state = State::default();
        for c in &p.registrations {
            state.registrations.insert(c.external_id.clone(), stored(c));
            state
                .registration_offering
                .insert(c.external_id.clone(), c.offering.clone().unwrap());
        }
        // same input: nothing
        let mut p = Plan::default();
        plan_exams(&m, &state, false, &mut p);
        assert!(p.registrations.is_empty());
        assert_eq!(p.unchanged_registrations, 3);
        // more minutes for a1, a2 gone, o2 outside the window now
        m.registrations = vec![reg("a1", "o1", Some(45))];
        m.covered = ["o1".to_string()].into();
        let mut p = Plan::default();
        plan_exams(&m, &state, false, &mut p);
        let acts: Vec<(&str, Action)> = p
            .registrations
            .iter()
            .map(|c| (c.external_id.as_str(), c.action))
            .collect();
        assert_eq!(
            acts,
            vec![("a1", Action::Update), ("a2", Action::Deactivate)]
        );
        assert_eq!(p.registrations[0].changed, vec![TrackedField::ExtraMinutes]);
        assert_eq!(p.gate.registrations_withdrawn, 1);
        assert_eq!(p.gate.registrations_known, 3);
        // a withdrawal is stored inactive, never removed
        assert!(!p.registrations[1].new_state(None).active);
        assert_eq!(p.gate.accommodations_lost, 0, "more minutes is no loss");
        // fewer minutes for a1 counts for the accommodations gate
        let mut state2 = state.clone();
        state2
            .registrations
            .insert("a1".into(), stored(&p.registrations[0]));
        m.registrations = vec![reg("a1", "o1", Some(15)), reg("a2", "o1", None)];
        let mut p = Plan::default();
        plan_exams(&m, &state2, false, &mut p);
        assert_eq!(p.gate.accommodations_known, 3);
        assert_eq!(p.gate.accommodations_lost, 1);
    }
}
