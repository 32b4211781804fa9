//! The safety gate: holds plans that look like a broken source rather
//! than real change, one limit per kind of change (`[safety]`), unless the
//! admin approves the held plan or passes `--allow-mass-changes`.

use serde::Serialize;

use crate::config::Safety;
use crate::model::Completeness;
use crate::sync::plan::{Action, Plan};

/// One kind of change above its limit.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Breach {
    /// A bulk export without any record of a kind sisync has pushed.
    EmptyBulk { what: &'static str, known: usize },
    /// More changes of one kind than its share allows.
    Share {
        /// The config key under `[safety]`.
        key: &'static str,
        /// "remove", "deactivate", ...
        verb: &'static str,
        what: &'static str,
        count: usize,
        known: usize,
        limit: f64,
    },
}

impl std::fmt::Display for Breach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Breach::EmptyBulk { what, known } => write!(
                f,
                "the source yielded 0 {what} while sisync knows {} on the platform (empty or broken export?)",
                thousands(*known)
            ),
            Breach::Share {
                verb,
                what,
                count,
                known,
                limit,
                ..
            } => write!(
                f,
                "would {verb} {} of {} {what} ({:.1} %, limit {} %)",
                thousands(*count),
                thousands(*known),
                *count as f64 * 100.0 / *known as f64,
                percent(*limit)
            ),
        }
    }
}

/// Why a plan was held; shown to the admin as one line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refusal {
    pub breaches: Vec<Breach>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.breaches.iter().map(Breach::to_string).collect();
        write!(
            f,
            "{}. Check that the export is complete; if the change is real, approve the held plan or rerun with --allow-mass-changes",
            parts.join("; ")
        )
    }
}

impl std::error::Error for Refusal {}

/// 1011 → "1,011".
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// 0.1 → "10", 0.025 → "2.5".
fn percent(share: f64) -> String {
    let p = format!("{:.1}", share * 100.0);
    p.strip_suffix(".0").map(str::to_string).unwrap_or(p)
}

/// Check a plan against the configured limits; every breach is named.
pub fn check(plan: &Plan, limits: &Safety) -> Result<(), Refusal> {
    let g = &plan.gate;
    let mut breaches = Vec::new();
    let mut empty = |complete: Completeness, source: usize, known: usize, what| {
        if complete == Completeness::Bulk && source == 0 && known > 0 {
            breaches.push(Breach::EmptyBulk { what, known });
        }
    };
    empty(
        plan.users_completeness,
        plan.source_users,
        plan.known_active_users,
        "users",
    );
    empty(
        plan.groups_completeness,
        g.source_groups,
        plan.known_active_groups,
        "classes",
    );
    empty(
        plan.memberships_completeness,
        g.source_memberships,
        g.memberships_known,
        "enrolments",
    );
    empty(
        plan.exams_completeness,
        g.source_registrations,
        g.registrations_known,
        "exam registrations",
    );
    let mut share = |key, verb, what, count: usize, known: usize, limit: f64, floor: usize| {
        if count == 0 || known == 0 {
            return;
        }
        if count > floor && count as f64 / known as f64 > limit {
            breaches.push(Breach::Share {
                key,
                verb,
                what,
                count,
                known,
                limit,
            });
        }
    };
    share(
        "max_deactivate_share",
        "deactivate",
        "users",
        plan.count_users(Action::Deactivate),
        plan.known_active_users,
        limits.max_deactivate_share,
        0,
    );
    share(
        "max_update_share",
        "update",
        "users",
        g.users_updated,
        plan.known_active_users,
        limits.max_update_share,
        0,
    );
    share(
        "max_membership_removal_share",
        "remove",
        "memberships",
        g.memberships_removed,
        g.memberships_known,
        limits.max_membership_removal_share,
        0,
    );
    share(
        "max_group_loss_share",
        "empty or retire",
        "classes",
        g.groups_lost,
        plan.known_active_groups,
        limits.max_group_loss_share,
        0,
    );
    // removing one candidate's extra time on purpose is normal
    share(
        "max_accommodation_loss_share",
        "remove or reduce the accommodations of",
        "persons who have them",
        g.accommodations_lost,
        g.accommodations_known,
        limits.max_accommodation_loss_share,
        1,
    );
    share(
        "max_registration_withdrawal_share",
        "withdraw",
        "exam registrations",
        g.registrations_withdrawn,
        g.registrations_known,
        limits.max_registration_withdrawal_share,
        0,
    );
    if breaches.is_empty() {
        Ok(())
    } else {
        Err(Refusal { breaches })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TrackedField;

    #[test]
    fn registrations_withdrawn_above_the_share_and_an_empty_bulk_are_refused() {
        let mut p = Plan {
            exams_completeness: Completeness::Bulk,
            ..Plan::default()
        };
        p.gate.registrations_known = 100;
        p.gate.source_registrations = 85;
        p.gate.registrations_withdrawn = 15;
        let e = check(&p, &Safety::default()).unwrap_err();
        assert_eq!(e.breaches.len(), 1);
        assert!(
            e.to_string()
                .contains("would withdraw 15 of 100 exam registrations (15.0 %, limit 10 %)"),
            "{e}"
        );
        p.gate.registrations_withdrawn = 10;
        assert!(check(&p, &Safety::default()).is_ok());
        p.gate.source_registrations = 0;
        let e = check(&p, &Safety::default()).unwrap_err();
        assert!(
            e.to_string()
                .contains("0 exam registrations while sisync knows 100"),
            "{e}"
        );
        // a source without exam planning is no empty bulk
        p.exams_completeness = Completeness::Absent;
        assert!(check(&p, &Safety::default()).is_ok());
    }
    use crate::sync::plan::UserChange;

    fn plan_with(deactivations: usize, known: usize, source: usize) -> Plan {
        Plan {
            users: (0..deactivations)
                .map(|i| UserChange {
                    action: Action::Deactivate,
                    external_id: format!("u{i}"),
                    platform_id: None,
                    user: None,
                    changed: vec![TrackedField::Active],
                    field_hashes: Default::default(),
                    reduces_accommodations: false,
                })
                .collect(),
            known_active_users: known,
            source_users: source,
            users_completeness: Completeness::Bulk,
            groups_completeness: Completeness::Absent,
            memberships_completeness: Completeness::Absent,
            ..Plan::default()
        }
    }

    fn limits() -> Safety {
        Safety::default()
    }

    #[test]
    fn within_share_passes() {
        assert_eq!(check(&plan_with(5, 100, 95), &limits()), Ok(()));
    }

    #[test]
    fn above_share_is_refused() {
        let e = check(&plan_with(6, 100, 94), &limits()).unwrap_err();
        assert!(matches!(
            e.breaches[..],
            [Breach::Share {
                key: "max_deactivate_share",
                count: 6,
                known: 100,
                ..
            }]
        ));
        assert!(e.to_string().contains("--allow-mass-changes"));
    }

    #[test]
    fn empty_source_is_refused_even_below_share() {
        let mut l = limits();
        l.max_deactivate_share = 1.0;
        let e = check(&plan_with(0, 10, 0), &l).unwrap_err();
        assert_eq!(
            e.breaches,
            vec![Breach::EmptyBulk {
                what: "users",
                known: 10
            }]
        );
    }

    #[test]
    fn empty_delta_is_fine() {
        let mut p = plan_with(0, 10, 0);
        p.users_completeness = Completeness::Delta;
        assert_eq!(check(&p, &limits()), Ok(()));
    }

    #[test]
    fn first_run_has_no_base() {
        assert_eq!(check(&plan_with(0, 0, 50), &limits()), Ok(()));
    }

    #[test]
    fn message_names_the_kind_with_counts_and_limit() {
        let mut p = plan_with(0, 100, 100);
        p.memberships_completeness = Completeness::Delta;
        p.gate.memberships_known = 1011;
        p.gate.memberships_removed = 412;
        let e = check(&p, &limits()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("would remove 412 of 1,011 memberships (40.8 %, limit 10 %)"),
            "{e}"
        );
    }

    #[test]
    fn what_counts_as_an_accommodation_reduction() {
        use crate::privacy::policy::ExamAccommodations as A;
        use crate::sync::plan::reduces;
        let a = |t: Option<u32>, f: Option<f64>, r: Option<bool>| A {
            extra_time_percent: t,
            font_scale: f,
            screen_reader: r,
            ..A::default()
        };
        let old = a(Some(30), Some(1.5), Some(true));
        assert!(reduces(Some(&old), true, None), "removed");
        assert!(reduces(
            Some(&old),
            true,
            Some(&a(Some(15), Some(1.5), Some(true)))
        ));
        assert!(reduces(
            Some(&old),
            true,
            Some(&a(Some(30), None, Some(true)))
        ));
        assert!(reduces(
            Some(&old),
            true,
            Some(&a(Some(30), Some(1.5), Some(false)))
        ));
        assert!(
            !reduces(Some(&old), true, Some(&a(Some(50), Some(2.0), Some(true)))),
            "a raise"
        );
        assert!(!reduces(None, false, Some(&old)), "new accommodations");
        assert!(
            reduces(None, true, Some(&old)),
            "value not kept: held to be safe"
        );
    }

    #[test]
    fn one_accommodation_loss_is_always_allowed_two_of_ten_are_not() {
        let mut p = plan_with(0, 100, 100);
        p.gate.accommodations_known = 10;
        p.gate.accommodations_lost = 1;
        assert_eq!(check(&p, &limits()), Ok(()));
        p.gate.accommodations_lost = 2;
        let e = check(&p, &limits()).unwrap_err();
        assert!(matches!(
            e.breaches[..],
            [Breach::Share {
                key: "max_accommodation_loss_share",
                ..
            }]
        ));
    }
}
