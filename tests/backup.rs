//! `sisync backup` and `sisync restore` as child processes: a backup taken
//! while a roster sync writes restores to a state whose audit chain
//! verifies (with its subject key); restore is refused while a sync or a
//! daemon holds the state, and for a copy whose chain is broken.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::fake_scim::{FakeScim, TOKEN};
use common::*;
use sisync::config::Loaded;
use sisync::sync::RosterOptions;

fn audit_count(db: &Path) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
        .unwrap_or(0)
}

/// Run `sisync <args>`, which must exit with `code`; its stderr.
#[track_caller]
fn exits_with(cfg: &Path, args: &[&str], code: i32) -> String {
    let o = sisync(cfg, args);
    assert_eq!(o.status.code(), Some(code), "{o:?}");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Restore `backup` on a new machine (another state directory, the same
/// export and platform): the restored audit chain verifies. The new
/// directory and config.
fn restore_elsewhere(backup: &Path, export: &Path, fake: &FakeScim) -> (tempfile::TempDir, Loaded) {
    let dir2 = tempfile::tempdir().unwrap();
    let loaded2 = scim_config(dir2.path(), export, &fake.base, TOKEN, "");
    sisync_ok(&loaded2.file, &["restore", backup.to_str().unwrap()]);
    sisync_ok(&loaded2.file, &["audit", "verify"]);
    (dir2, loaded2)
}

/// The names of the entries of `dir` that `keep` says yes to.
fn names_with(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| keep(n))
        .collect()
}

/// The usual SCIM bed (`scim_bed`), synced once without failures.
async fn synced() -> (FakeScim, tempfile::TempDir, PathBuf, Loaded) {
    let (fake, dir, export, loaded) = scim_bed("").await;
    let first = sync(&loaded, RosterOptions::default()).await;
    assert_eq!(first.failed(), 0);
    (fake, dir, export, loaded)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_during_a_sync_restores_to_a_verifying_state_with_its_key() {
    let (fake, dir, export, loaded) = synced().await;
    let cfg = loaded.file.clone();
    // a hold makes the subject key, which must travel with the database
    sisync_ok(&cfg, &["privacy", "restrict", "--person", "stu-1001"]);
    let db = dir.path().join("state.db");
    let before = audit_count(&db);

    fake.write_delay_ms
        .store(40, std::sync::atomic::Ordering::SeqCst);
    let dest = dir.path().join("backups").join("monday");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    // a full run sends every record again: a long run of commits
    let sync = sync(&loaded, full());
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
    let (dir2, loaded2) = restore_elsewhere(&dest, &export, &fake);
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
    sisync_ok(&cfg, &["restore", dest.to_str().unwrap()]);
    let kept: Vec<_> = names_with(dir.path(), |n| n.starts_with("state.db.before-restore-"));
    assert_eq!(kept.len(), 2, "database and key kept: {kept:?}");
    assert_eq!(audit_count(&db), copied);

    // a backup into a folder that is not empty is refused
    let err = exits_with(&cfg, &["backup", dest.to_str().unwrap()], 1);
    assert!(err.contains("not empty"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_is_refused_while_the_state_is_in_use_or_the_copy_is_broken() {
    let (_, dir, _, loaded) = synced().await;
    let cfg = loaded.file.clone();
    let db = dir.path().join("state.db");
    let dest = dir.path().join("bk");
    sisync_ok(&cfg, &["backup", dest.to_str().unwrap()]);
    let src = dest.to_str().unwrap();
    let entries = audit_count(&db);

    // a sync holds the run lock
    let lock = sisync::sync::lock::RunLock::acquire(&db).unwrap();
    let err = exits_with(&cfg, &["restore", src], 1);
    assert_has(&err, &["restore refused", "already running"]);
    drop(lock);

    // a daemon is up (idle between runs: only its presence lock)
    let daemon = sisync::daemon::presence::PresenceLock::acquire(&db).unwrap();
    let err = exits_with(&cfg, &["restore", src], 1);
    assert_has(&err, &["restore refused", "daemon", "stop it first"]);
    drop(daemon);

    // a copy whose audit log was edited is refused, the state untouched
    {
        let c = rusqlite::Connection::open(dest.join("state.db")).unwrap();
        c.execute("UPDATE audit SET outcome = 'failed' WHERE seq = 2", [])
            .unwrap();
    }
    let err = exits_with(&cfg, &["restore", src], 4);
    assert_has(&err, &["nothing was changed", "broken at entry 2"]);
    assert_eq!(audit_count(&db), entries);
    assert!(!dir.path().join("state.db.restoring").exists());
    sisync_ok(&cfg, &["audit", "verify"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tar_backup_is_one_0600_file_that_restores() {
    let (fake, dir, export, loaded) = synced().await;
    sisync_ok(
        &loaded.file,
        &["privacy", "restrict", "--person", "stu-1002"],
    );
    let tar = dir.path().join("sisync-2026-12-01.tar");
    sisync_ok(&loaded.file, &["backup", tar.to_str().unwrap()]);
    assert_eq!(mode(&tar), 0o600);
    let leftovers: Vec<_> = names_with(dir.path(), |n| n.contains("partial"));
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // again to the same name: refused, the first one kept
    let o = sisync(&loaded.file, &["backup", tar.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));

    let (dir2, loaded2) = restore_elsewhere(&tar, &export, &fake);
    let o = sisync(&loaded2.file, &["status"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 restricted"));
    // the unpacked copy is gone
    let left: Vec<_> = names_with(dir2.path(), |n| n.contains("restore"));
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
