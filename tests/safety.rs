//! The safety gate per kind of change: each broken export is refused with
//! its own message, nothing reaches the platform, the refusal is recorded
//! as a run, and `--allow-mass-changes` lets it through.

mod common;

use common::fake_scim::{FakeScim, TOKEN};
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
    let server = FakeScim::start(true).await;
    let dir = tempfile::tempdir().unwrap();
    let export = copy_fixture("oneroster-1.2", dir.path());
    let cfg = scim_config(dir.path(), &export, &server.base, TOKEN, "");
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
    assert_eq!(run.error.as_deref(), Some(refusal.as_str()));
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
    let server = FakeScim::start(true).await;
    let dir = tempfile::tempdir().unwrap();
    let export = copy_fixture("oneroster-1.2", dir.path());
    let cfg = scim_config(dir.path(), &export, &server.base, TOKEN, "");
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
