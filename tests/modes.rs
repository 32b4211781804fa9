//! Files sisync writes are private whatever the umask: the state database,
//! its directory and run lock, and the delivered drop folders (0700/0600,
//! or group-readable 0750/0640 when configured). Under root's usual umask
//! 022 they used to be world-readable.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use common::*;

/// Run `sisync --config <config> <args>` under umask 022 (a default
/// account's shell); it must exit 0.
fn sisync_umask_022(config: &Path, args: &[&str]) {
    let mut c = sisync_cmd(config);
    c.args(args);
    // SAFETY: umask is async-signal-safe and touches only this child
    unsafe {
        c.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
}

/// A temporary directory with `setup`'s config (`extra` keys), synced
/// once under umask 022.
fn synced(extra: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), extra);
    sisync_umask_022(&cfg, &["sync", "roster"]);
    (dir, cfg)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn setup(dir: &Path, extra: &str) -> std::path::PathBuf {
    let export = copy_fixture("oneroster-1.2", dir);
    TestConfig::new(dir)
        .state(Some("state/sisync.db"))
        .source(Source::OneRosterCsv(export))
        .extra(extra)
        .write()
}

fn drops(dir: &Path) -> Vec<std::path::PathBuf> {
    entries(&dir.join("drop"))
}

#[test]
fn state_and_drop_folders_are_private_under_umask_022() {
    let (dir, cfg) = synced("");
    let state = dir.path().join("state");
    assert_eq!(mode(&state), 0o700, "state directory");
    for f in ["sisync.db", "sisync.db.lock"] {
        assert_eq!(mode(&state.join(f)), 0o600, "{f}");
    }
    for f in ["sisync.db-wal", "sisync.db-shm"] {
        let p = state.join(f);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{f}");
        }
    }
    let d = drops(dir.path());
    assert_eq!(d.len(), 1);
    assert_eq!(mode(&d[0]), 0o700, "drop folder");
    assert_eq!(mode(&d[0].join("users.csv")), 0o600, "users.csv");

    // a database an older sisync left world-readable is tightened
    std::fs::set_permissions(
        state.join("sisync.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    sisync_umask_022(&cfg, &["status"]);
    assert_eq!(mode(&state.join("sisync.db")), 0o600);
}

#[test]
fn group_readable_drops_when_configured() {
    let (dir, _) = synced("group_readable = true\n");
    let d = drops(dir.path());
    assert_eq!(mode(&d[0]), 0o750);
    assert_eq!(mode(&d[0].join("users.csv")), 0o640);
    // the state stays private
    assert_eq!(mode(&dir.path().join("state/sisync.db")), 0o600);
}

#[test]
fn a_reset_state_run_again_at_once_delivers_a_second_folder() {
    let (dir, cfg) = synced("");
    // state deleted: run numbers start at 1 again, in the same second
    std::fs::remove_dir_all(dir.path().join("state")).unwrap();
    sisync_umask_022(&cfg, &["sync", "roster"]);
    let d = drops(dir.path());
    assert_eq!(d.len(), 2, "{d:?}");
    for f in &d {
        assert_eq!(
            std::fs::read_to_string(f.join("users.csv"))
                .unwrap()
                .lines()
                .count(),
            43
        );
    }
}
