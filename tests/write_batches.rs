//! Group commits on the SCIM write path, against the in-process fake SCIM
//! server on 127.0.0.1: outcomes commit in groups (by count or after
//! 200 ms), a SIGKILL between a write and its commit leaves an audit entry
//! `unknown` (never none) and no duplicate on the platform.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::fake_scim::FakeScim;
use common::*;
use sisync::config::Loaded;
use sisync::store::{AuditRow, Store};

/// The usual SCIM bed (`scim_bed`) with every platform write answered
/// after `delay_ms`.
async fn slow_bed(delay_ms: u64, extra: &str) -> (FakeScim, tempfile::TempDir, Loaded) {
    let (server, dir, _, loaded) = scim_bed(extra).await;
    delay_writes(&server, delay_ms);
    (server, dir, loaded)
}

fn delay_writes(server: &FakeScim, ms: u64) {
    server
        .write_delay_ms
        .store(ms, std::sync::atomic::Ordering::SeqCst);
}

fn user_writes(rows: &[AuditRow]) -> Vec<&AuditRow> {
    rows.iter()
        .filter(|r| r.direction == "out" && r.record_kind == "user")
        .collect()
}

/// A child `sisync sync roster` is killed with SIGKILL while users are
/// being created; every user the platform took has an audit entry of that
/// run, and the next run creates nobody twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_provisioning_leaves_an_audit_entry_for_every_write() {
    let (server, dir, loaded) = slow_bed(100, "concurrency = 4").await;
    kill_sync_under_way(dir.path(), "roster", || server.users().len() >= 8).await;
    let sent: BTreeSet<String> = server
        .users()
        .iter()
        .map(|u| u["externalId"].as_str().unwrap().to_string())
        .collect();
    assert!(
        sent.len() < 42,
        "the kill came after the users ({})",
        sent.len()
    );

    // the next run starts: the killed run's writes are all in the log
    delay_writes(&server, 0);
    let r = sync(&loaded, sisync::sync::RosterOptions::default()).await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!(o.failed(), 0, "{:?}", o.failures);
    let store = Store::open(&dir.path().join("state.db")).unwrap();
    assert_eq!(store.open_intents().unwrap(), 0);
    let rows = store.audit_list(&Default::default()).unwrap();
    let writes = user_writes(&rows);
    let killed_run = writes.iter().filter_map(|r| r.run_id).min().unwrap();
    let of_killed: Vec<&&AuditRow> = writes
        .iter()
        .filter(|r| r.run_id == Some(killed_run))
        .collect();
    for id in &sent {
        assert!(
            of_killed
                .iter()
                .any(|r| r.record_id.as_deref() == Some(id.as_str())
                    && matches!(r.outcome.as_str(), "ok" | "unknown")),
            "{id} reached the platform but has no audit entry of run {killed_run}"
        );
    }
    // what was announced but never recorded says so
    let unknown: Vec<_> = of_killed
        .iter()
        .filter(|r| r.outcome == "unknown")
        .collect();
    assert!(!unknown.is_empty());
    assert!(unknown.iter().all(|r| {
        r.action == "user.create"
            && r.payload_sha256.is_none()
            && r.detail.as_deref().unwrap().contains("may have happened")
    }));
    assert!(store.audit_verify().unwrap().ok());

    // nobody twice on the platform, everybody there
    let users = server.users();
    let ext: BTreeSet<&str> = users
        .iter()
        .map(|u| u["externalId"].as_str().unwrap())
        .collect();
    assert_eq!((users.len(), ext.len()), (42, 42));
    assert_eq!(server.groups().len(), 6);
}

/// Against a slow platform the outcomes do not wait for a full group of
/// 1,024: each is committed within about 200 ms of its answer, while the run
/// goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_commit_within_the_batch_wait_on_a_slow_platform() {
    let (server, dir, loaded) = slow_bed(250, "concurrency = 1").await;
    // the first answer comes at ~250 ms; by the third write (~750 ms) it
    // has been committed, though the run is far from done
    let watch = async {
        let started = std::time::Instant::now();
        while server.users().len() < 3 {
            assert!(started.elapsed() < Duration::from_secs(30));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        let rows = store.audit_list(&Default::default()).unwrap();
        // the announced writes are the whole first group
        (user_writes(&rows).len(), store.open_intents().unwrap())
    };
    let (r, (early, announced)) =
        tokio::join!(sync(&loaded, sisync::sync::RosterOptions::default()), watch);
    assert!(early >= 1, "nothing committed while the run went on");
    assert!(early < 42, "{early}");
    assert!(announced > 0);
    let o = r.outcome.as_ref().unwrap();
    assert_eq!((o.users.created, o.groups.created, o.failed()), (42, 6, 0));
    let store = Store::open(&dir.path().join("state.db")).unwrap();
    assert_eq!(store.open_intents().unwrap(), 0);
    let rows = store.audit_list(&Default::default()).unwrap();
    assert_eq!(user_writes(&rows).len(), 42);
    assert!(store.audit_verify().unwrap().ok());
}
