//! The privacy policy for exam planning: which exam sittings and
//! registrations reach the platform (only with `"registrations"` in
//! `privacy.fields`) and whether their personal needs and extra minutes go
//! along (`"personal_needs"`). Registrations follow their person: a person
//! who is restricted, erased or held keeps their registrations as they are;
//! a person out of scope has none.

use std::collections::{HashMap, HashSet};

use crate::config::Field;
pub use crate::model::platform::{MinimisedExams, PlatformOffering, PlatformRegistration};
use crate::model::{
    Completeness, Id, RegistrationRole, RegistrationState, Roster, Status, TrackedField,
};
use crate::privacy::policy::{Policy, hash_value};
use crate::store::FieldHashes;

impl PlatformOffering {
    pub fn field_hashes(&self) -> FieldHashes {
        let d = &self.details;
        [
            (TrackedField::Code, hash_value(&d.code)),
            (TrackedField::Name, hash_value(&d.title)),
            (TrackedField::Tests, hash_value(&d.tests)),
            (TrackedField::Start, hash_value(&d.start)),
            (TrackedField::End, hash_value(&d.end)),
            (TrackedField::Location, hash_value(&d.location)),
            (TrackedField::Active, hash_value(&self.active)),
        ]
        .into_iter()
        .collect()
    }
}

impl PlatformRegistration {
    pub fn field_hashes(&self) -> FieldHashes {
        let person = (
            &self.person,
            self.person_record
                .as_ref()
                .map(|u| crate::privacy::policy::record_hash(&u.field_hashes())),
        );
        [
            (TrackedField::Person, hash_value(&person)),
            (TrackedField::Offering, hash_value(&self.offering)),
            (TrackedField::Role, hash_value(&self.role)),
            (TrackedField::State, hash_value(&self.state)),
            (
                TrackedField::PersonalNeeds,
                hash_value(&self.personal_needs),
            ),
            (TrackedField::ExtraMinutes, hash_value(&self.extra_minutes)),
            (TrackedField::Attempt, hash_value(&self.attempt)),
            (TrackedField::Active, hash_value(&true)),
        ]
        .into_iter()
        .collect()
    }
}

/// Apply the policy to the roster's exam planning. `state_ids` maps SIS
/// ids to platform ids where they differ; `in_scope` holds the SIS ids of
/// persons that pass; `held_persons` the platform ids of persons left as
/// they are.
pub fn minimise(
    policy: &Policy,
    roster: &Roster,
    state_ids: &rustc_hash::FxHashMap<&str, crate::model::Id>,
    in_scope: &rustc_hash::FxHashSet<&str>,
    held_persons: &HashSet<String>,
) -> MinimisedExams {
    let ex = &roster.exams;
    let mut out = MinimisedExams {
        completeness: Completeness::Absent,
        ..MinimisedExams::default()
    };
    if !policy.allows(Field::Registrations) || ex.completeness == Completeness::Absent {
        return out;
    }
    out.completeness = ex.completeness;
    out.held = ex.held.clone();
    out.covered = ex.covered.clone();
    for o in &ex.offerings {
        if o.status == Status::ToBeDeleted {
            out.offerings_leaving.push(o.id.clone());
            continue;
        }
        out.offerings.push(PlatformOffering {
            external_id: o.id.clone(),
            details: o.details.clone(),
            active: true,
        });
    }
    let needs = policy.allows(Field::PersonalNeeds);
    for r in &ex.registrations {
        let person = state_ids
            .get(r.person.as_str())
            .map_or_else(|| policy.person_id(&r.person), |p| p.to_string());
        if held_persons.contains(&person) {
            out.held.insert(r.id.clone());
            continue;
        }
        if r.state == RegistrationState::Canceled {
            out.registrations_leaving.push(r.id.clone());
            out.withdrawn.push((r.offering.clone(), person));
            continue;
        }
        if !in_scope.contains(r.person.as_str()) {
            out.out_of_scope += 1;
            continue;
        }
        let mut codes = r.personal_needs.clone();
        codes.sort();
        codes.dedup();
        out.registrations.push(PlatformRegistration {
            external_id: r.id.clone(),
            person,
            offering: r.offering.clone(),
            role: r.role,
            state: r.state,
            personal_needs: needs.then_some(codes),
            extra_minutes: if needs { r.extra_minutes } else { None },
            attempt: r.attempt,
            person_record: None,
        });
    }
    out
}

/// Fold the exam planning into users and groups, for a platform that
/// knows no exam sittings (SCIM, csv-drop without exam files): every
/// sitting becomes a group whose members are its registered persons, and
/// the personal needs and extra minutes of a candidate's registrations
/// join their accommodations (the most minutes, all needs).
pub fn fold_into_groups(m: &mut crate::privacy::policy::Minimised) {
    let exams = std::mem::take(&mut m.exams);
    if exams.completeness == Completeness::Absent {
        return;
    }
    let mut members: std::collections::BTreeMap<String, std::collections::BTreeSet<Id>> =
        Default::default();
    let mut needs: HashMap<String, (Option<u32>, Vec<String>)> = HashMap::new();
    for r in &exams.registrations {
        if r.state != RegistrationState::Associated {
            continue;
        }
        members
            .entry(r.offering.clone())
            .or_default()
            .insert(Id::from(r.person.as_str()));
        if r.role == RegistrationRole::Candidate {
            let e = needs.entry(r.person.clone()).or_default();
            e.0 = e.0.max(r.extra_minutes);
            if let Some(n) = &r.personal_needs {
                e.1.extend(n.iter().cloned());
            }
        }
    }
    for u in &mut m.users {
        let Some((minutes, codes)) = needs.remove(&u.external_id) else {
            continue;
        };
        let a = u.accommodations.get_or_insert_with(Default::default);
        a.extra_time_minutes = a.extra_time_minutes.max(minutes);
        let mut all = a.personal_needs.take().unwrap_or_default();
        all.extend(codes);
        all.sort();
        all.dedup();
        a.personal_needs = (!all.is_empty()).then_some(all);
    }
    // Without class context the sittings' members are changes (a sitting
    // outside the planning window keeps its members); with class
    // memberships in bulk they join that bulk.
    let delta = m.memberships_completeness != Completeness::Bulk;
    if delta {
        m.memberships_completeness = Completeness::Delta;
        for (offering, person) in &exams.withdrawn {
            m.member_deltas
                .entry(offering.clone())
                .or_default()
                .remove
                .insert(person.clone());
        }
    }
    for o in exams.offerings {
        let ids = members.remove(&o.external_id).unwrap_or_default();
        if delta {
            let d = m.member_deltas.entry(o.external_id.clone()).or_default();
            for id in &ids {
                d.remove.remove(id.as_str());
            }
            d.add.extend(ids.iter().map(Id::to_string));
        } else {
            m.members.insert(o.external_id.clone(), ids);
        }
        m.groups.push(crate::privacy::policy::PlatformGroup {
            external_id: o.external_id,
            display_name: Some(o.details.title),
            org: None,
            members: Vec::new(),
            active: true,
            partial: false,
        });
    }
    m.groups_leaving.extend(exams.offerings_leaving);
    m.held_groups.extend(
        exams
            .registrations
            .iter()
            .filter(|r| exams.held.contains(&r.external_id))
            .map(|r| r.offering.clone()),
    );
    if m.groups_completeness == Completeness::Absent {
        m.groups_completeness = Completeness::Delta;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Privacy, UserNameFrom};
    use crate::model::{ExamPlanning, Person, Registration, Role};

    fn roster() -> Roster {
        let person = Person {
            sourced_id: "p1".into(),
            status: Status::Active,
            role: Some(Role::Student),
            username: None,
            identifier: None,
            given_name: "A".into(),
            middle_name: None,
            family_name: "B".into(),
            email: None,
            eck_id: None,
            bsn: None,
            orgs: vec![],
            accommodations: Default::default(),
        };
        let reg = |id: &str, state| Registration {
            id: id.into(),
            person: "p1".into(),
            offering: "o1".into(),
            role: RegistrationRole::Candidate,
            state,
            personal_needs: vec!["spoken".into(), "extraTime".into()],
            extra_minutes: Some(30),
            attempt: None,
        };
        Roster {
            persons: vec![person],
            exams: ExamPlanning {
                registrations: vec![
                    reg("a1", RegistrationState::Associated),
                    reg("a2", RegistrationState::Canceled),
                ],
                completeness: Completeness::Bulk,
                ..ExamPlanning::default()
            },
            ..Roster::default()
        }
    }

    fn with(fields: &[Field]) -> crate::privacy::policy::Minimised {
        let pv = Privacy {
            fields: fields.to_vec(),
            ..Privacy::default()
        };
        Policy::new(&pv, UserNameFrom::SourcedId, None).apply(&roster())
    }

    #[test]
    fn registrations_and_personal_needs_are_off_unless_listed() {
        let m = with(&[Field::Name]);
        assert_eq!(m.exams.completeness, Completeness::Absent);
        assert!(m.exams.registrations.is_empty());
        let m = with(&[Field::Name, Field::Registrations]);
        assert_eq!(m.exams.registrations.len(), 1);
        assert_eq!(m.exams.registrations_leaving, vec!["a2".to_string()]);
        assert_eq!(m.exams.registrations[0].personal_needs, None);
        assert_eq!(m.exams.registrations[0].extra_minutes, None);
        let m = with(&[Field::Name, Field::Registrations, Field::PersonalNeeds]);
        let r = &m.exams.registrations[0];
        assert_eq!(
            r.personal_needs.as_deref(),
            Some(&["extraTime".to_string(), "spoken".to_string()][..])
        );
        assert_eq!(r.extra_minutes, Some(30));
    }

    /// Held plans store offerings as JSON and read them back after an
    /// upgrade: the shared `SittingDetails` keeps the keys where they were.
    #[test]
    fn platform_offering_json_keeps_its_keys_in_place() {
        let o = PlatformOffering {
            external_id: "o1".into(),
            details: crate::model::SittingDetails {
                code: Some("C".into()),
                title: "T".into(),
                tests: vec!["t1".into()],
                start: Some("2026-06-01T09:00:00+02:00".into()),
                end: None,
                location: None,
            },
            active: true,
        };
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(
            json,
            r#"{"external_id":"o1","code":"C","title":"T","tests":["t1"],"start":"2026-06-01T09:00:00+02:00","end":null,"location":null,"active":true}"#
        );
        assert_eq!(serde_json::from_str::<PlatformOffering>(&json).unwrap(), o);
    }
}
