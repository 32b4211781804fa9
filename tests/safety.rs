//! The safety gate per kind of change: each broken export is refused with
//! its own message, nothing reaches the platform, the refusal is recorded
//! as a run, and `--allow-mass-changes` lets it through.

mod common;

use common::fake_scim::FakeScim;
use common::*;
use sisync::config::Loaded;
use sisync::store::Store;
use sisync::sync::{RosterOptions, RosterReport};

fn allow() -> RosterOptions {
    RosterOptions {
        allow_mass_changes: true,
        ..RosterOptions::default()
    }
}

/// Sync the 1.2 fixture once, break the export with `breakage`, and check
/// that the next run is refused naming `expected`, writes nothing, is
/// recorded, and passes with `--allow-mass-changes`.
async fn refused_then_allowed(
    breakage: impl Fn(&std::path::Path),
    expected: &[&str],
) -> (FakeScim, Loaded, RosterReport) {
    let (server, dir, export, cfg) = scim_bed("").await;
    let first = sync(&cfg, RosterOptions::default()).await;
    assert!(first.refused.is_none());
    breakage(&export);
    server.clear_requests();

    let r = sync(&cfg, RosterOptions::default()).await;
    let refusal = r.refused.as_ref().expect("refused").to_string();
    for e in expected {
        assert!(refusal.contains(e), "`{e}` not in: {refusal}");
    }
    assert!(refusal.contains("--allow-mass-changes"));
    assert_eq!(server.requests().len(), 0, "nothing reaches the platform");
    let store = Store::open(&cfg.config.state.path).unwrap();
    let run = &store.recent_runs(1).unwrap()[0];
    assert_eq!(run.outcome, "refused");
    let error = run.error.as_deref().unwrap();
    assert!(error.starts_with(&refusal), "{error}");
    let id = r.held_plan.expect("the refused plan is held");
    assert!(error.ends_with(&format!("(held as plan {id}: sisync plan approve {id})")));
    drop(store);

    let passed = sync(&cfg, allow()).await;
    assert!(passed.refused.is_none());
    assert_eq!(passed.failed(), 0);
    assert!(!server.writes().is_empty());
    // keep the tempdir alive with the config
    std::mem::forget(dir);
    (server, cfg, passed)
}

fn header_only(export: &std::path::Path, file: &str) {
    edit(export, file, |l| {
        l.trim_start_matches('\u{feff}')
            .starts_with("sourcedId")
            .then(|| l.to_string())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_enrolments_file_is_refused() {
    let (server, _, r) = refused_then_allowed(
        |e| header_only(e, "enrollments.csv"),
        &[
            "the source yielded 0 enrolments while sisync knows 80",
            "would remove 80 of 80 memberships (100.0 %, limit 10 %)",
            "would empty or retire 6 of 6 classes",
        ],
    )
    .await;
    assert_eq!(r.outcome.unwrap().groups.updated, 6);
    assert!(
        server
            .groups()
            .iter()
            .all(|g| g["members"].as_array().is_none_or(Vec::is_empty))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_percent_of_memberships_gone_is_refused() {
    // drop 48 of the 80 enrolment rows (every row but two of each five)
    refused_then_allowed(
        |e| {
            let n = std::cell::Cell::new(0);
            edit(e, "enrollments.csv", |l| {
                let i = n.get();
                n.set(i + 1);
                (i == 0 || l.is_empty() || i % 5 < 2).then(|| l.to_string())
            })
        },
        &["would remove 48 of 80 memberships (60.0 %, limit 10 %)"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everyone_renamed_is_refused() {
    let (_, _, r) = refused_then_allowed(
        |e| {
            edit(e, "users.csv", |l| {
                // familyName is the 8th column; only data rows change
                if l.trim_start_matches('\u{feff}').starts_with("sourcedId") || l.is_empty() {
                    return Some(l.to_string());
                }
                let mut cols: Vec<&str> = l.split(',').collect();
                let renamed = format!("{}-X", cols[7]);
                cols[7] = &renamed;
                Some(cols.join(","))
            })
        },
        &["would update 42 of 42 users (100.0 %, limit 25 %)"],
    )
    .await;
    assert_eq!(r.outcome.unwrap().users.updated, 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_accommodation_columns_are_refused() {
    let (_, _, r) = refused_then_allowed(
        |e| {
            // the three metadata.* columns are the last ones
            edit(e, "users.csv", |l| {
                Some(l.rsplitn(4, ',').last().unwrap_or(l).to_string())
            })
        },
        &["would remove or reduce the accommodations of 5 of 5 persons who have them (100.0 %, limit 2 %)"],
    )
    .await;
    assert_eq!(r.outcome.unwrap().users.updated, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_without_classes_is_refused() {
    let (_, _, r) = refused_then_allowed(
        |e| header_only(e, "classes.csv"),
        &[
            "the source yielded 0 classes while sisync knows 6",
            "would empty or retire 6 of 6 classes (100.0 %, limit 5 %)",
        ],
    )
    .await;
    assert_eq!(r.outcome.unwrap().groups.deactivated, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_candidate_losing_extra_time_passes() {
    let (_, _dir, export, cfg) = scim_bed("").await;
    sync(&cfg, RosterOptions::default()).await;
    edit(&export, "users.csv", |l| {
        if l.starts_with("stu-1003,") {
            Some(l.rsplitn(4, ',').last().unwrap().to_string() + ",,,")
        } else {
            Some(l.to_string())
        }
    });
    let r = sync(&cfg, RosterOptions::default()).await;
    assert!(r.refused.is_none(), "{:?}", r.refused);
    assert_eq!(r.outcome.unwrap().users.updated, 1);
}

/// (action, kind, id, fields) of every planned change.
fn planned(users: &serde_json::Value, groups: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for (kind, list) in [("user", users), ("group", groups)] {
        for c in list.as_array().unwrap() {
            out.push(format!(
                "{} {kind} {} {}",
                c["action"].as_str().unwrap(),
                c["external_id"].as_str().unwrap(),
                c["changed"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_plan_is_shown_and_approved_exactly_once() {
    let (server, _dir, export, cfg) = scim_bed("").await;
    sync(&cfg, RosterOptions::default()).await;
    // half the enrolments gone and one pupil renamed
    let n = std::cell::Cell::new(0);
    edit(&export, "enrollments.csv", |l| {
        let i = n.get();
        n.set(i + 1);
        (i == 0 || l.is_empty() || i % 2 == 0).then(|| l.to_string())
    });
    edit(&export, "users.csv", |l| {
        if !l.starts_with("stu-1009,") {
            return Some(l.to_string());
        }
        let mut cols: Vec<String> = l.split(',').map(String::from).collect();
        cols[7].push_str("-Bakker");
        Some(cols.join(","))
    });
    let dry = sync(&cfg, dry_run()).await;
    let dry = serde_json::to_value(&dry.plan).unwrap();
    let expected = planned(&dry["users"], &dry["groups"]);
    assert!(expected.len() > 3, "{expected:?}");
    server.clear_requests();

    let r = sync(&cfg, RosterOptions::default()).await;
    assert!(r.refused.is_some());
    let id = r.held_plan.expect("held");
    assert_eq!(server.requests().len(), 0);
    // a scheduled run reading the same export keeps the same plan
    let again = sync(&cfg, RosterOptions::default()).await;
    assert_eq!(again.held_plan, Some(id));

    let (code, out, err) = cli(&cfg.file, &["plan", "list"]);
    assert_eq!(code, 0, "{err}");
    assert_has(&out, &["held", &format!("sisync plan approve {id}")]);
    let (code, out, err) = cli(&cfg.file, &["plan", "show", &id.to_string(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        planned(&shown["plan"]["users"], &shown["plan"]["groups"]),
        expected
    );
    assert!(
        shown["held"]["reason"]
            .as_str()
            .unwrap()
            .contains("memberships")
    );
    assert!(
        shown["held"]["source_fingerprint"]
            .as_str()
            .unwrap()
            .contains("enrollments.csv:sha256:")
    );
    let (code, out, _) = cli(&cfg.file, &["plan", "show", &id.to_string()]);
    assert_eq!(code, 0);
    assert_has(&out, &["cls-", "memberships -"]);

    // approve: exactly the planned writes, audited under the OS user
    let (code, out, err) = cli(&cfg.file, &["plan", "approve", &id.to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(server.writes().len(), expected.len(), "{out}");
    let store = Store::open(&cfg.config.state.path).unwrap();
    let run = store.recent_runs(1).unwrap().remove(0);
    assert_eq!(
        (run.kind.as_str(), run.outcome.as_str()),
        ("plan-approve", "ok")
    );
    assert!(run.actor.starts_with("user:"));
    let entries = store
        .audit_list(&sisync::store::AuditFilter::default())
        .unwrap();
    let mut sent: Vec<String> = entries
        .iter()
        .filter(|a| a.run_id == Some(run.id) && a.direction == "out")
        .map(|a| {
            let action = a
                .action
                .split('.')
                .nth(1)
                .unwrap()
                .replace("retire", "deactivate");
            format!(
                "{action} {} {} {}",
                a.record_kind,
                a.record_id.as_deref().unwrap(),
                a.fields
            )
        })
        .collect();
    sent.sort();
    assert_eq!(sent, expected);
    assert!(
        entries
            .iter()
            .any(|a| a.action == "plan.approve" && a.actor.starts_with("user:"))
    );
    drop(store);
    // the platform now matches the export: the next run has nothing to do
    server.clear_requests();
    let next = sync(&cfg, RosterOptions::default()).await;
    assert!(
        next.refused.is_none() && next.plan.is_empty(),
        "{:?}",
        next.plan.users
    );

    // a second approve does nothing
    let (code, out, _) = cli(&cfg.file, &["plan", "approve", &id.to_string()]);
    assert_eq!(code, 0);
    assert!(out.contains("already approved"), "{out}");
    assert_eq!(server.writes().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_refuses_with_exit_5_when_the_state_moved() {
    let (server, _dir, export, cfg) = scim_bed("").await;
    sync(&cfg, RosterOptions::default()).await;
    header_only(&export, "enrollments.csv");
    let id = sync(&cfg, RosterOptions::default())
        .await
        .held_plan
        .unwrap();
    // the state changes under the plan (another process's run)
    let conn = rusqlite::Connection::open(&cfg.config.state.path).unwrap();
    conn.execute(
        "UPDATE records SET hash = 'moved' WHERE sourced_id = 'stu-1001'",
        [],
    )
    .unwrap();
    let other = Store::open(&cfg.config.state.path)
        .unwrap()
        .begin_run("roster", "user:colleague", false)
        .unwrap();
    conn.execute(
        "UPDATE runs SET outcome = 'ok', finished_at = started_at WHERE id = ?1",
        [other],
    )
    .unwrap();
    drop(conn);
    server.clear_requests();
    let (code, _, err) = cli(&cfg.file, &["plan", "approve", &id.to_string()]);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains(&format!("the state changed since plan {id} was made"))
            && err.contains(&format!("run {other} (roster ok")),
        "{err}"
    );
    assert_eq!(server.writes().len(), 0);

    // a newer source read supersedes the plan
    let newer = sync(&cfg, allow()).await;
    assert!(newer.refused.is_none());
    let (code, _, err) = cli(&cfg.file, &["plan", "approve", &id.to_string()]);
    assert_eq!(code, 5);
    assert!(err.contains("superseded"), "{err}");
    let (_, out, _) = cli(&cfg.file, &["plan", "list"]);
    assert!(out.contains("superseded"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_removes_a_held_plan_naming_the_person() {
    let (_, _dir, export, cfg) = scim_bed("").await;
    sync(&cfg, RosterOptions::default()).await;
    // every user renamed: the plan holds every user record
    edit(&export, "users.csv", |l| {
        if l.trim_start_matches('\u{feff}').starts_with("sourcedId") || l.is_empty() {
            return Some(l.to_string());
        }
        let mut cols: Vec<String> = l.split(',').map(String::from).collect();
        cols[7].push_str("-X");
        Some(cols.join(","))
    });
    let id = sync(&cfg, RosterOptions::default())
        .await
        .held_plan
        .unwrap();
    let (code, out, err) = cli(&cfg.file, &["privacy", "erase", "--person", "stu-1002"]);
    assert_eq!(code, 0, "{out}{err}");
    let store = Store::open(&cfg.config.state.path).unwrap();
    let p = store.held_plan(id).unwrap().unwrap();
    assert_eq!((p.status.as_str(), p.plan), ("superseded", None));
    drop(store);
    assert_state_lacks(
        &cfg.config.state.path,
        "stu-1002",
        "holds the superseded plan's erased id",
    );
}
