//! `sisync reconcile [--fix]`: the platform read back and compared with
//! what sisync sent.

use crate::sync::Progress as _;

use super::out::outln;
use crate::cli::Cli;
use crate::config::Loaded;
use crate::exit::{CliError, CliResult, Exit};
use crate::model::TrackedField;
use crate::sync::reconcile::{Finding, Report};

pub async fn run(cli: &Cli, loaded: &Loaded, fix: bool) -> CliResult {
    let bar = super::Bar::new(cli.json);
    let res = crate::sync::reconcile::run(loaded, fix, &super::actor(), &bar).await;
    bar.done();
    let (report, fixed) = match res {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(Exit::Failure);
        }
    };
    if cli.json {
        super::print_json(&serde_json::json!({
            "reconcile": report,
            "fix_run": fixed.as_ref().map(|r| serde_json::json!({
                "run_id": r.run_id,
                "refused": r.refused.as_ref().map(|x| x.to_string()),
                "failed": r.failed(),
            })),
        }))?;
    } else {
        print(&report)?;
        if let Some(r) = &fixed {
            outln!("--fix: sent again through a roster run:")?;
            super::print_roster(cli, r)?;
        }
    }
    let open =
        !report.missing.is_empty() || !report.drifted.is_empty() || !report.membership.is_empty();
    Ok(match &fixed {
        Some(r) if r.refused.is_some() => Exit::Refused,
        Some(r) if r.failed() > 0 => Exit::Failure,
        Some(_) => Exit::Ok,
        None if open => Exit::Failure,
        None => Exit::Ok,
    })
}

fn print(r: &Report) -> Result<(), CliError> {
    outln!(
        "read {} users and {} groups from the platform",
        r.users_read,
        r.groups_read
    )?;
    if r.is_clean() {
        outln!("no differences: the platform holds what sisync sent")?;
        return Ok(());
    }
    let mut t = super::table(&["finding", "kind", "id", "attributes"]);
    let mut add = |what: &str, list: &[Finding]| {
        for f in list {
            t.add_row(vec![
                what,
                f.kind,
                &f.id,
                &TrackedField::join(&f.fields, ","),
            ]);
        }
    };
    add("missing", &r.missing);
    add("drifted", &r.drifted);
    add("orphan", &r.orphans);
    add("members", &r.membership);
    outln!("{t}")?;
    outln!(
        "{} missing, {} drifted, {} orphans (never deleted by sisync), {} classes with other members",
        r.missing.len(),
        r.drifted.len(),
        r.orphans.len(),
        r.membership.len()
    )?;
    if !(r.missing.is_empty() && r.drifted.is_empty() && r.membership.is_empty()) {
        outln!(
            "`sisync reconcile --fix` sends missing and drifted records again (through the safety gate)"
        )?;
    }
    Ok(())
}
