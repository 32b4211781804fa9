//! `sisync plan list|show|approve`: plans held by the safety gate.

use super::out::outln;
use super::{Bar, print_json, print_plan_table, table};
use crate::cli::{Cli, PlanCmd};
use crate::config::Loaded;
use crate::exit::{CliResult, Exit};
use crate::store::Store;
use crate::store::audit::actor;
use crate::sync::held::{self, Approval};

pub async fn run(cli: &Cli, l: &Loaded, cmd: &PlanCmd) -> CliResult {
    if !super::has_state(l) {
        return Ok(Exit::Failure);
    }
    let path = &l.config.state.path;
    match cmd {
        PlanCmd::List => list(cli, &Store::open(path)?),
        PlanCmd::Show { id } => show(cli, &Store::open(path)?, *id),
        PlanCmd::Approve { id } => approve(cli, l, *id).await,
    }
}

fn counts(v: &serde_json::Value) -> String {
    let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    format!(
        "users +{} ~{} -{}; classes +{} ~{} retired {}; memberships -{}; accommodations lost {}",
        n("users_create"),
        n("users_update"),
        n("users_deactivate"),
        n("groups_create"),
        n("groups_update"),
        n("groups_retire"),
        n("memberships_removed"),
        n("accommodations_lost")
    )
}

fn list(cli: &Cli, store: &Store) -> CliResult {
    let plans = store.held_plans()?;
    if cli.json {
        print_json(&plans)?;
        return Ok(Exit::Ok);
    }
    if plans.is_empty() {
        outln!("no plans: the safety gate has held nothing")?;
        return Ok(Exit::Ok);
    }
    let mut t = table(&["plan", "made (UTC)", "by", "status", "changes"]);
    for p in &plans {
        let status = match (p.status.as_str(), p.applied_run, p.superseded_by_run) {
            ("approved", Some(r), _) => format!("approved (run {r})"),
            ("superseded", _, Some(r)) => format!("superseded (run {r})"),
            (s, _, _) => s.to_string(),
        };
        t.add_row(vec![
            p.id.to_string(),
            p.created_at.clone(),
            p.actor.clone(),
            status,
            counts(&p.summary),
        ]);
    }
    outln!("{t}")?;
    if let Some(p) = plans.iter().find(|p| p.status == "held") {
        outln!(
            "plan {} is held: review it with `sisync plan show {}`, apply it with `sisync plan approve {}`",
            p.id,
            p.id,
            p.id
        )?;
    }
    Ok(Exit::Ok)
}

fn show(cli: &Cli, store: &Store, id: i64) -> CliResult {
    let Some(p) = store.held_plan(id)? else {
        eprintln!("error: no plan {id}; see `sisync plan list`");
        return Ok(Exit::Failure);
    };
    let plan = p.plan.as_deref().map(held::from_json).transpose()?;
    if cli.json {
        print_json(&serde_json::json!({ "held": p, "plan": plan }))?;
        return Ok(Exit::Ok);
    }
    outln!(
        "plan {id}: {} (made {} by {}, run {})",
        p.status,
        p.created_at,
        p.actor,
        p.run_id.map(|r| r.to_string()).unwrap_or_default()
    )?;
    outln!("why: {}", p.reason)?;
    outln!("source: {}", p.source_fingerprint)?;
    outln!("state version: {}", p.state_version)?;
    outln!("changes: {}", counts(&p.summary))?;
    match plan {
        Some(plan) => {
            print_plan_table(&plan)?;
            outln!("apply exactly this plan with `sisync plan approve {id}`")?;
        }
        None => outln!("(the plan itself is gone: it was {})", p.status)?,
    }
    Ok(Exit::Ok)
}

async fn approve(cli: &Cli, l: &Loaded, id: i64) -> CliResult {
    let bar = Bar::new(cli.json);
    let r = held::approve(l, id, &actor(), &bar).await;
    crate::sync::Progress::done(&bar);
    match r? {
        Approval::AlreadyApproved { run } => {
            outln!(
                "plan {id} was already approved and applied{}; nothing to do",
                run.map(|r| format!(" (run {r})")).unwrap_or_default()
            )?;
            Ok(Exit::Ok)
        }
        Approval::Moved(why) => {
            eprintln!("error: {why}");
            Ok(Exit::StateMoved)
        }
        Approval::Applied(report) => {
            if cli.json {
                print_json(&report)?;
            } else {
                let o = report.outcome.clone().unwrap_or_default();
                outln!(
                    "plan {id} applied as run {}: users {} created, {} updated, {} deactivated; classes {} created, {} updated, {} retired; {} failed",
                    report.run_id.unwrap_or_default(),
                    o.users.created,
                    o.users.updated,
                    o.users.deactivated,
                    o.groups.created,
                    o.groups.updated,
                    o.groups.deactivated,
                    o.failed()
                )?;
                for f in o.failures.iter().take(20) {
                    outln!("  {f}")?;
                }
            }
            Ok(if report.failed() > 0 {
                Exit::Failure
            } else {
                Exit::Ok
            })
        }
    }
}
