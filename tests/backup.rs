//! `sisync backup` and `sisync restore` as child processes: a backup taken
//! while a roster sync writes restores to a state whose audit chain
//! verifies (with its subject key); restore is refused while a sync or a
//! daemon holds the state, and for a copy whose chain is broken.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::fake_scim::TOKEN;
use common::*;
use sisync::sync::RosterOptions;

fn audit_count(db: &Path) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
        .unwrap_or(0)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_during_a_sync_restores_to_a_verifying_state_with_its_key() {
    let (fake, dir, export, loaded) = scim_bed("").await;
    let cfg = loaded.file.clone();
    let first = sync(&loaded, RosterOptions::default()).await;
    assert_eq!(first.failed(), 0);
    // a hold makes the subject key, which must travel with the database
    let o = sisync(&cfg, &["privacy", "restrict", "--person", "stu-1001"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let db = dir.path().join("state.db");
    let before = audit_count(&db);

    fake.write_delay_ms
        .store(40, std::sync::atomic::Ordering::SeqCst);
    let dest = dir.path().join("backups").join("monday");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    // a full run sends every record again: a long run of commits
    let sync = sync(
        &loaded,
        RosterOptions {
            full: true,
            ..Default::default()
        },
    );
    let take_backup = async {
        // wait until the sync has committed some of its writes
        for _ in 0..200 {
            if audit_count(&db) > before + 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let cfg = cfg.clone();
        let dest = dest.clone();
        tokio::task::spawn_blocking(move || sisync(&cfg, &["backup", dest.to_str().unwrap()]))
            .await
            .unwrap()
    };
    let (report, o) = tokio::join!(sync, take_backup);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("chain intact"), "{out}");
    assert_eq!(report.failed(), 0);
    let final_count = audit_count(&db);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dest.join("backup.json")).unwrap()).unwrap();
    let copied = manifest["audit_entries"].as_i64().unwrap();
    assert!(
        copied > before && copied < final_count,
        "the backup was taken mid-sync: {before} < {copied} < {final_count}"
    );
    assert_eq!(mode(&dest), 0o700);
    for f in ["state.db", "state.db.key", "backup.json"] {
        assert_eq!(mode(&dest.join(f)), 0o600, "{f}");
    }
    assert!(!dest.join("state.db-wal").exists());

    // restore on a new machine (another state path)
    let dir2 = tempfile::tempdir().unwrap();
    let loaded2 = scim_config(dir2.path(), &export, &fake.base, TOKEN, "");
    let o = sisync(&loaded2.file, &["restore", dest.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = sisync(&loaded2.file, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(audit_count(&dir2.path().join("state.db")), copied);
    assert_eq!(
        std::fs::read(dir2.path().join("state.db.key")).unwrap(),
        std::fs::read(dir.path().join("state.db.key")).unwrap()
    );
    assert_eq!(mode(&dir2.path().join("state.db.key")), 0o600);
    // the hold survived with its key: stu-1001 is still restricted
    let o = sisync(&loaded2.file, &["status"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("1 restricted"), "{out}");

    // restoring over an existing state keeps the old one beside it
    let o = sisync(&cfg, &["restore", dest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("state.db.before-restore-"))
        .collect();
    assert_eq!(kept.len(), 2, "database and key kept: {kept:?}");
    assert_eq!(audit_count(&db), copied);

    // a backup into a folder that is not empty is refused
    let o = sisync(&cfg, &["backup", dest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not empty"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_is_refused_while_the_state_is_in_use_or_the_copy_is_broken() {
    let (_, dir, _, loaded) = scim_bed("").await;
    let cfg = loaded.file.clone();
    let report = sync(&loaded, RosterOptions::default()).await;
    assert_eq!(report.failed(), 0);
    let db = dir.path().join("state.db");
    let dest = dir.path().join("bk");
    let o = sisync(&cfg, &["backup", dest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let src = dest.to_str().unwrap();
    let entries = audit_count(&db);

    // a sync holds the run lock
    let lock = sisync::sync::lock::RunLock::acquire(&db).unwrap();
    let o = sisync(&cfg, &["restore", src]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("restore refused") && err.contains("already running"),
        "{err}"
    );
    drop(lock);

    // a daemon is up (idle between runs: only its presence lock)
    let daemon = sisync::daemon::presence::PresenceLock::acquire(&db).unwrap();
    let o = sisync(&cfg, &["restore", src]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("restore refused") && err.contains("daemon") && err.contains("stop it first"),
        "{err}"
    );
    drop(daemon);

    // a copy whose audit log was edited is refused, the state untouched
    {
        let c = rusqlite::Connection::open(dest.join("state.db")).unwrap();
        c.execute("UPDATE audit SET outcome = 'failed' WHERE seq = 2", [])
            .unwrap();
    }
    let o = sisync(&cfg, &["restore", src]);
    assert_eq!(o.status.code(), Some(4), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("nothing was changed") && err.contains("broken at entry 2"),
        "{err}"
    );
    assert_eq!(audit_count(&db), entries);
    assert!(!dir.path().join("state.db.restoring").exists());
    let o = sisync(&cfg, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tar_backup_is_one_0600_file_that_restores() {
    let (fake, dir, export, loaded) = scim_bed("").await;
    let report = sync(&loaded, RosterOptions::default()).await;
    assert_eq!(report.failed(), 0);
    let o = sisync(
        &loaded.file,
        &["privacy", "restrict", "--person", "stu-1002"],
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let tar = dir.path().join("sisync-2026-12-01.tar");
    let o = sisync(&loaded.file, &["backup", tar.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(mode(&tar), 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // again to the same name: refused, the first one kept
    let o = sisync(&loaded.file, &["backup", tar.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));

    let dir2 = tempfile::tempdir().unwrap();
    let loaded2 = scim_config(dir2.path(), &export, &fake.base, TOKEN, "");
    let o = sisync(&loaded2.file, &["restore", tar.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = sisync(&loaded2.file, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let o = sisync(&loaded2.file, &["status"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 restricted"));
    // the unpacked copy is gone
    let left: Vec<_> = std::fs::read_dir(dir2.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("restore"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // not a tar: refused, nothing changed
    let bogus = dir.path().join("bogus.tar");
    std::fs::write(&bogus, "not a tar").unwrap();
    let o = sisync(&loaded2.file, &["restore", bogus.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("nothing was changed"),
        "{o:?}"
    );
}
