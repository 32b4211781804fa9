//! The safety gate: refuses plans that look like a broken source rather
//! than real change, unless the admin passes `--allow-mass-changes`.

use crate::model::Completeness;
use crate::sync::plan::{Action, Plan};

/// Why a plan was refused; shown to the admin as one line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the source yielded 0 users while {known} are active on the platform; this looks like an empty or broken export. Check the source, or rerun with --allow-mass-changes if everyone really left"
    )]
    EmptySource { known: usize },
    #[error(
        "the plan deactivates {count} of {known} known {what} ({pct:.1} %), above safety.max_deactivate_share ({max:.1} %). Check the export is complete; if the change is real, rerun with --allow-mass-changes"
    )]
    TooManyDeactivations {
        what: &'static str,
        count: usize,
        known: usize,
        pct: f64,
        max: f64,
    },
}

/// Check a plan against the configured share. `known` is what state had.
pub fn check(plan: &Plan, max_share: f64) -> Result<(), Refusal> {
    if plan.users_completeness == Completeness::Bulk
        && plan.source_users == 0
        && plan.known_active_users > 0
    {
        return Err(Refusal::EmptySource {
            known: plan.known_active_users,
        });
    }
    share(
        "users",
        plan.count_users(Action::Deactivate),
        plan.known_active_users,
        max_share,
    )?;
    share(
        "classes",
        plan.count_groups(Action::Deactivate),
        plan.known_active_groups,
        max_share,
    )
}

fn share(what: &'static str, count: usize, known: usize, max: f64) -> Result<(), Refusal> {
    if count == 0 || known == 0 {
        return Ok(());
    }
    let s = count as f64 / known as f64;
    if s > max {
        return Err(Refusal::TooManyDeactivations {
            what,
            count,
            known,
            pct: s * 100.0,
            max: max * 100.0,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::plan::UserChange;

    fn plan_with(deactivations: usize, known: usize, source: usize) -> Plan {
        Plan {
            users: (0..deactivations)
                .map(|i| UserChange {
                    action: Action::Deactivate,
                    external_id: format!("u{i}"),
                    platform_id: None,
                    user: None,
                    changed: vec!["active"],
                    field_hashes: Default::default(),
                })
                .collect(),
            known_active_users: known,
            source_users: source,
            users_completeness: Completeness::Bulk,
            ..Plan::default()
        }
    }

    #[test]
    fn within_share_passes() {
        assert_eq!(check(&plan_with(5, 100, 95), 0.05), Ok(()));
    }

    #[test]
    fn above_share_is_refused() {
        let e = check(&plan_with(6, 100, 94), 0.05).unwrap_err();
        assert!(matches!(
            e,
            Refusal::TooManyDeactivations {
                count: 6,
                known: 100,
                ..
            }
        ));
        assert!(e.to_string().contains("--allow-mass-changes"));
    }

    #[test]
    fn empty_source_is_refused_even_below_share() {
        let e = check(&plan_with(0, 10, 0), 1.0).unwrap_err();
        assert_eq!(e, Refusal::EmptySource { known: 10 });
    }

    #[test]
    fn empty_delta_is_fine() {
        let mut p = plan_with(0, 10, 0);
        p.users_completeness = Completeness::Delta;
        assert_eq!(check(&p, 0.05), Ok(()));
    }

    #[test]
    fn first_run_has_no_base() {
        assert_eq!(check(&plan_with(0, 0, 50), 0.05), Ok(()));
    }
}
