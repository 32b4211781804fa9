//! Hold, never lose (roster side): a bad export row holds the person or
//! class it names, a platform that lost records gets them back, a dead
//! platform stops the run, and nothing is sent without room to audit it.
//! Real HTTP to the in-process fake SCIM server.

mod common;

use common::fake_scim::FakeScim;
use common::*;
use sisync::store::Store;
use sisync::sync::{self, Quiet, RosterOptions};

fn run() -> RosterOptions {
    RosterOptions::default()
}

/// Rewrite users.csv with one row's name in Latin-1 (what a SIS export in
/// the wrong encoding gives).
fn latin1_name(export: &std::path::Path, id: &str) {
    let p = export.join("users.csv");
    let text = std::fs::read_to_string(&p).unwrap();
    let mut out = Vec::new();
    for line in text.split_inclusive('\n') {
        if line.starts_with(&format!("{id},")) {
            for ch in line.chars() {
                let c = ch as u32;
                assert!(c < 256);
                out.push(c as u8);
            }
        } else {
            out.extend_from_slice(line.as_bytes());
        }
    }
    std::fs::write(&p, out).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_is_not_utf8_holds_the_student() {
    let (server, dir, export, cfg) = scim_bed("").await;
    let r = sync(&cfg, run()).await;
    assert_eq!(r.outcome.as_ref().unwrap().users.created, 42);
    // a SCIM group carries its name and members, and the audit says so
    let store = Store::open(&dir.path().join("state.db")).unwrap();
    let groups = audit_of(&store, "group.create");
    assert_eq!(groups.len(), 6);
    assert!(
        groups.iter().all(|g| g.fields == "displayName,members"),
        "{:?}",
        groups[0].fields
    );
    drop(store);

    latin1_name(&export, "stu-1003"); // Zoë
    server.clear_requests();
    let r = sync(&cfg, run()).await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!(o.users.deactivated, 0, "held, not deactivated");
    assert_eq!(o.users.skipped, 1, "reported as skipped");
    assert!(
        r.issues
            .iter()
            .any(|i| i.record_id.as_deref() == Some("stu-1003") && i.reason.contains("UTF-8")),
        "{:?}",
        r.issues
    );
    assert_eq!(server.writes().len(), 0, "{:?}", server.writes());
    assert_eq!(
        server.user_by_external_id("stu-1003").unwrap()["active"],
        true
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_enrolment_row_keeps_the_membership() {
    let (server, _dir, export, cfg) = scim_bed("").await;
    sync(&cfg, run()).await;
    let members = |server: &FakeScim| {
        server
            .groups()
            .iter()
            .find(|g| g["externalId"] == "cls-ne-h3a")
            .unwrap()["members"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = members(&server);

    // a row cut short: without the hold this student leaves the class
    edit(&export, "enrollments.csv", |l| {
        Some(if l.starts_with("enr-ne-h3a-stu-1003,") {
            "enr-ne-h3a-stu-1003,,,cls-ne-h3a,org-99AA00,stu-1003".to_string()
        } else {
            l.to_string()
        })
    });
    server.clear_requests();
    let r = sync(&cfg, run()).await;
    assert_eq!(r.outcome.as_ref().unwrap().failed(), 0);
    assert!(
        server.writes().iter().all(|w| !w.body.contains("members")),
        "{:?}",
        server.writes()
    );
    assert_eq!(members(&server), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_lost_on_the_platform_are_created_again() {
    let (server, dir, export, cfg) = scim_bed("").await;
    sync(&cfg, run()).await;

    // the vendor restored an empty platform
    {
        let mut inner = server.inner.lock().unwrap();
        inner.users.clear();
        inner.groups.clear();
    }
    // a normal run with one rename: that user comes back
    edit_user(&export, "stu-1009", ",Lotte,Jansen,", ",Lotte,Brouwer,");
    let r = sync(&cfg, run()).await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!((o.failed(), o.recreated), (0, 1), "{:?}", o.failures);
    let lotte = server.user_by_external_id("stu-1009").unwrap();
    assert_eq!(lotte["name"]["familyName"], "Brouwer");
    assert_eq!(lotte["active"], true);

    // --full repairs the rest
    let r = sync(
        &cfg,
        RosterOptions {
            full: true,
            ..run()
        },
    )
    .await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!(o.failed(), 0, "{:?}", o.failures);
    assert_eq!(o.recreated, 41 + 6);
    assert_eq!(server.users().len(), 42);
    assert_eq!(server.groups().len(), 6);
    let members = server.member_count();
    assert_eq!(members, 80);
    // audited as re-created
    let store = Store::open(&dir.path().join("state.db")).unwrap();
    let entries = audit_of(&store, "user.recreate");
    assert_eq!(entries.len(), 42);
    assert!(store.audit_verify().unwrap().ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_that_stops_answering_stops_the_run() {
    let (server, dir, _, cfg) =
        scim_bed("max_retries = 0\nmax_consecutive_failures = 5\nconcurrency = 2\n").await;
    server
        .inner
        .lock()
        .unwrap()
        .fail_writes
        .extend(std::iter::repeat_n((503, None), 1000));
    let r = sync(&cfg, run()).await;
    let o = r.outcome.as_ref().unwrap();
    let line = o.stopped.as_deref().expect("stopped");
    assert_has(line, &["stopped answering: 5 writes in a row failed"]);
    assert!(line.contains("the next run sends the rest"), "{line}");
    // stopped right away: five failures and what was in flight, not 48
    let writes = server.writes().len();
    assert!((5..=7).contains(&writes), "{writes} writes");
    let store = Store::open(&dir.path().join("state.db")).unwrap();
    let runs = store.recent_runs(1).unwrap();
    assert_eq!(runs[0].outcome, "failed");

    // the platform is back: the next run sends everything
    server.inner.lock().unwrap().fail_writes.clear();
    let r = sync(&cfg, run()).await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!((o.users.created, o.groups.created), (42, 6));
    assert!(o.stopped.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_sent_without_room_to_audit_it() {
    let (server, dir, _, mut cfg) = scim_bed("").await;
    cfg.config.state.min_free_mb = u64::MAX >> 21;
    let e = sync::roster(&cfg, run(), "user:test", &Quiet)
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("nothing was sent"), "{e:#}");
    assert!(server.writes().is_empty());
    // with room, the reserve file is laid beside the database
    cfg.config.state.min_free_mb = 1;
    sync(&cfg, run()).await;
    assert!(dir.path().join("state.db.reserve").exists());
}
