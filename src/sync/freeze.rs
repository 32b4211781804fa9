//! Freeze windows (`[[safety.freeze]]`): during an exam period nothing
//! that takes something away from a candidate is written. `adds-only`
//! defers deactivations, membership removals, class retirements,
//! accommodation reductions, registration withdrawals, sitting
//! cancellations and registrations that lose personal needs or extra
//! minutes (the rest of such an update goes through); `paused` defers everything. A deferred change
//! is not written and its state is not touched, so the first run after the
//! window plans it again (through the safety gate).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::config::{Freeze, FreezeMode};
use crate::model::{Id, RegistrationRole, TrackedField};
use crate::privacy::policy::hash_value;
use crate::sync::plan::exams::needs_of;
use crate::sync::plan::{Action, Plan, RegistrationChange, State, reduces};

/// What a freeze window held back in one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deferred {
    pub mode: String,
    pub reason: String,
    /// The last day of the window.
    pub until: String,
    pub users_deactivated: usize,
    pub memberships_removed: usize,
    pub classes_retired: usize,
    pub accommodations_reduced: usize,
    /// `paused`: every other change (creates, updates).
    pub other: usize,
}

impl Deferred {
    pub fn total(&self) -> usize {
        self.users_deactivated
            + self.memberships_removed
            + self.classes_retired
            + self.accommodations_reduced
            + self.other
    }
}

impl std::fmt::Display for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "freeze window ({}, until {}{}): deferred {} deactivations, {} membership removals, {} class retirements, {} accommodation reductions",
            self.mode,
            self.until,
            if self.reason.is_empty() {
                String::new()
            } else {
                format!(", {}", self.reason)
            },
            self.users_deactivated,
            self.memberships_removed,
            self.classes_retired,
            self.accommodations_reduced
        )?;
        if self.other > 0 {
            write!(f, ", {} other changes", self.other)?;
        }
        Ok(())
    }
}

/// Take out of `plan` what the window does not allow; returns what was
/// deferred.
pub fn defer(plan: &mut Plan, state: &State, w: &Freeze) -> Deferred {
    let mut d = Deferred {
        mode: w.mode.as_str().into(),
        reason: w.reason.clone(),
        until: w.until.to_string(),
        memberships_removed: plan.gate.memberships_removed,
        ..Deferred::default()
    };
    if w.mode == FreezeMode::Paused {
        d.users_deactivated = plan.count_users(Action::Deactivate);
        d.classes_retired = plan.count_groups(Action::Deactivate);
        d.accommodations_reduced = plan.gate.accommodations_lost;
        d.other = plan.users.len() + plan.groups.len()
            - d.users_deactivated
            - d.classes_retired
            - d.accommodations_reduced
            + plan.offerings.len()
            + plan.registrations.len();
        plan.users.clear();
        plan.groups.clear();
        plan.offerings.clear();
        plan.registrations.clear();
        plan.gate = Default::default();
        return d;
    }
    // a registration withdrawn is a candidate taken off a sitting, a
    // sitting canceled takes it away from all: both wait
    plan.registrations.retain_mut(|c| {
        if c.action == Action::Deactivate {
            d.memberships_removed += 1;
            return false;
        }
        if !loses_needs(c, state) {
            return true;
        }
        d.accommodations_reduced += 1;
        restore_registration_needs(c, state)
    });
    plan.offerings.retain(|c| {
        let keep = c.action != Action::Deactivate;
        if !keep {
            d.classes_retired += 1;
        }
        keep
    });
    let none = hash_value(&None::<crate::privacy::policy::ExamAccommodations>);
    plan.users.retain_mut(|c| {
        if c.action == Action::Deactivate {
            d.users_deactivated += 1;
            return false;
        }
        if !c.reduces_accommodations {
            return true;
        }
        d.accommodations_reduced += 1;
        let Some(old) = state.users.get(&c.external_id) else {
            return false;
        };
        let old_hash = old.field_hashes.get(&TrackedField::Accommodations).cloned();
        // keep the rest of the update, with the accommodations as they are
        // on the platform; unknown old values: the whole update waits
        if old.accommodations.is_none() && old_hash.as_ref() != Some(&none) {
            return false;
        }
        if let Some(u) = c.user.as_mut() {
            u.accommodations = old.accommodations.clone();
        }
        match old_hash {
            Some(h) => c.field_hashes.insert(TrackedField::Accommodations, h),
            None => c.field_hashes.remove(&TrackedField::Accommodations),
        };
        c.changed.retain(|f| *f != TrackedField::Accommodations);
        c.reduces_accommodations = false;
        !c.changed.is_empty()
    });
    let empty = BTreeSet::new();
    plan.groups.retain_mut(|c| {
        if c.action == Action::Deactivate {
            d.classes_retired += 1;
            return false;
        }
        let stored = state.members.get(&c.external_id).unwrap_or(&empty);
        if stored
            .iter()
            .all(|m| c.group.members.iter().any(|g| g == m.as_str()))
        {
            return true;
        }
        // additions go through, removals wait
        let members: BTreeSet<&str> = c
            .group
            .members
            .iter()
            .map(String::as_str)
            .chain(stored.iter().map(Id::as_str))
            .collect();
        c.group.members = members.into_iter().map(String::from).collect();
        let h = hash_value(&c.group.members);
        let unchanged = state
            .groups
            .get(&c.external_id)
            .and_then(|o| o.field_hashes.get(&TrackedField::Members))
            == Some(&h);
        c.field_hashes.insert(TrackedField::Members, h);
        if unchanged {
            c.changed.retain(|f| *f != TrackedField::Members);
        }
        !c.changed.is_empty()
    });
    plan.gate.memberships_removed = 0;
    plan.gate.groups_lost = 0;
    plan.gate.accommodations_lost = 0;
    // deferred withdrawals are not written: the gate does not weigh them
    plan.gate.registrations_withdrawn = 0;
    d
}

/// Whether an update of a registration takes personal needs or extra
/// minutes away from the candidate (against what the platform holds).
fn loses_needs(c: &RegistrationChange, state: &State) -> bool {
    if c.action != Action::Update {
        return false;
    }
    let (Some(old), Some(r)) = (state.registrations.get(&c.external_id), &c.registration) else {
        return false;
    };
    old.active
        && reduces(
            old.accommodations.as_ref(),
            old.accommodations.is_some(),
            needs_of(r).as_ref(),
        )
}

/// Keep the rest of a registration update with the needs and extra minutes
/// as they are on the platform; false when nothing else is left to send or
/// the old values are not known (the whole update waits).
fn restore_registration_needs(c: &mut RegistrationChange, state: &State) -> bool {
    let Some(old) = state.registrations.get(&c.external_id) else {
        return false;
    };
    let Some(acc) = old.accommodations.as_ref() else {
        return false;
    };
    let Some(r) = c.registration.as_mut() else {
        return false;
    };
    // needs are for candidates only: a role change that drops them waits
    if r.role != RegistrationRole::Candidate {
        return false;
    }
    r.extra_minutes = acc.extra_time_minutes;
    r.personal_needs = acc.personal_needs.clone();
    for f in [TrackedField::PersonalNeeds, TrackedField::ExtraMinutes] {
        match old.field_hashes.get(&f) {
            Some(h) => c.field_hashes.insert(f, *h),
            None => c.field_hashes.remove(&f),
        };
    }
    c.changed
        .retain(|f| *f != TrackedField::PersonalNeeds && *f != TrackedField::ExtraMinutes);
    !c.changed.is_empty()
}
