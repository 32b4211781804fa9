//! Files sisync creates next to the state database belong to whoever owns
//! the state directory. An admin who runs `sudo sisync privacy erase …` on
//! a server where the daemon runs as its own user must not leave files
//! behind that the daemon cannot open (SQLite does the same for its WAL and
//! shared-memory files when it runs as root).

use std::path::Path;

/// When running as root, give `file` to the owner of `state_path`'s
/// directory. Does nothing otherwise, or when the owner is already right.
pub(crate) fn hand_to_state_owner(file: &Path, state_path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions and cannot fail
        if unsafe { libc::geteuid() } != 0 {
            return Ok(());
        }
        let dir = match state_path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let want = std::fs::metadata(dir)?;
        let have = std::fs::metadata(file)?;
        if (have.uid(), have.gid()) != (want.uid(), want.gid()) {
            std::os::unix::fs::chown(file, Some(want.uid()), Some(want.gid()))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (file, state_path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn files_made_by_root_go_to_the_state_directorys_owner() {
        let (dir, state) = crate::test_util::temp_path("state.db");
        // SAFETY: geteuid has no preconditions
        let root = unsafe { libc::geteuid() } == 0;
        if root {
            // the daemon's user owns the state directory
            std::os::unix::fs::chown(dir.path(), Some(4321), Some(4321)).unwrap();
        }
        let want = std::fs::metadata(dir.path()).unwrap().uid();
        let f = dir.path().join("made-by-admin");
        std::fs::write(&f, "x").unwrap();
        hand_to_state_owner(&f, &state).unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().uid(), want);
        if root {
            assert_eq!(want, 4321);
        }
        // the database, its WAL files, the run lock and the subject key too
        let mut store = crate::store::Store::open(&state).unwrap();
        store
            .restrict(
                "stu-1",
                "user:t",
                &crate::store::AuditEntry::test_entry("stu-1"),
            )
            .unwrap();
        let _lock = crate::sync::lock::RunLock::acquire(&state).unwrap();
        for name in [
            "state.db",
            "state.db-wal",
            "state.db-shm",
            "state.db.key",
            "state.db.lock",
        ] {
            let m = std::fs::metadata(dir.path().join(name)).unwrap();
            assert_eq!(m.uid(), want, "{name}");
        }
    }
}
