//! `sisync reconcile [--fix]`: the platform read back and compared with
//! what sisync sent.

use anyhow::Result;

use crate::sync::Progress as _;

use crate::cli::Cli;
use crate::config::Loaded;
use crate::exit;
use crate::sync::reconcile::{Finding, Report};

pub async fn run(cli: &Cli, loaded: &Loaded, fix: bool) -> Result<i32> {
    let bar = super::Bar::new(cli.json);
    let res = crate::sync::reconcile::run(loaded, fix, &super::actor(), &bar).await;
    bar.done();
    let (report, fixed) = match res {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(exit::FAILURE);
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
        }));
    } else {
        print(&report);
        if let Some(r) = &fixed {
            println!("--fix: sent again through a roster run:");
            super::print_roster(cli, r);
        }
    }
    let open =
        !report.missing.is_empty() || !report.drifted.is_empty() || !report.membership.is_empty();
    Ok(match &fixed {
        Some(r) if r.refused.is_some() => exit::REFUSED,
        Some(r) if r.failed() > 0 => exit::FAILURE,
        Some(_) => exit::OK,
        None if open => exit::FAILURE,
        None => exit::OK,
    })
}

fn print(r: &Report) {
    println!(
        "read {} users and {} groups from the platform",
        r.users_read, r.groups_read
    );
    if r.is_clean() {
        println!("no differences: the platform holds what sisync sent");
        return;
    }
    let mut t = super::table(&["finding", "kind", "id", "attributes"]);
    let mut add = |what: &str, list: &[Finding]| {
        for f in list {
            t.add_row(vec![what, f.kind, &f.id, &f.fields.join(",")]);
        }
    };
    add("missing", &r.missing);
    add("drifted", &r.drifted);
    add("orphan", &r.orphans);
    add("members", &r.membership);
    println!("{t}");
    println!(
        "{} missing, {} drifted, {} orphans (never deleted by sisync), {} classes with other members",
        r.missing.len(),
        r.drifted.len(),
        r.orphans.len(),
        r.membership.len()
    );
    if !(r.missing.is_empty() && r.drifted.is_empty() && r.membership.is_empty()) {
        println!(
            "`sisync reconcile --fix` sends missing and drifted records again (through the safety gate)"
        );
    }
}
