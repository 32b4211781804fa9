//! The advisory run lock: one sync (roster or results, daemon or one-shot)
//! at a time per state database.
//!
//! SQLite's own locking keeps each transaction whole; this lock keeps two
//! whole runs apart, so a one-shot `sisync sync` started while the daemon
//! syncs says so instead of planning against state that is changing under
//! it. The lock is an `flock` on `<state file>.lock` next to the state
//! database, holding the pid of its owner for the message. The kernel
//! drops it when the process ends, however it ends; the file itself stays.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use fs4::FileExt;

/// Another process holds the run lock (or it cannot be taken).
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another sisync sync is already running ({}, lock {}); wait for it or stop the daemon",
        .pid.map(|p| format!("pid {p}")).unwrap_or_else(|| "pid unknown".into()),
        .path.display()
    )]
    Busy { pid: Option<u32>, path: PathBuf },
    #[error("cannot open the run lock {}: {source}; check that the state directory is writable", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The held lock; released when dropped.
#[derive(Debug)]
pub struct RunLock {
    _held: LockFile,
    path: PathBuf,
}

/// A held lock file: the `flock` goes when it is dropped (and with the
/// process, however it ends).
#[derive(Debug)]
pub(crate) struct LockFile(File);

impl Drop for LockFile {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.0);
    }
}

impl RunLock {
    /// The lock file that belongs to a state database.
    pub fn path_for(state_path: &Path) -> PathBuf {
        let mut name = state_path.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Take the lock of `state_path` without waiting.
    pub fn acquire(state_path: &Path) -> Result<RunLock, LockError> {
        let path = Self::path_for(state_path);
        match lock_file(&path, state_path) {
            Ok(Ok(held)) => Ok(RunLock { _held: held, path }),
            Ok(Err(pid)) => Err(LockError::Busy { pid, path }),
            Err(source) => Err(LockError::Io { path, source }),
        }
    }

    /// Take the lock, waiting at most `wait` for a run that holds it;
    /// `waiting` is told once, when the wait begins.
    pub async fn acquire_within(
        state_path: &Path,
        wait: std::time::Duration,
        waiting: impl FnOnce(&LockError),
    ) -> Result<RunLock, LockError> {
        let until = std::time::Instant::now() + wait;
        let mut waiting = Some(waiting);
        loop {
            match Self::acquire(state_path) {
                Err(e @ LockError::Busy { .. }) if std::time::Instant::now() < until => {
                    if let Some(f) = waiting.take() {
                        f(&e);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Take an `flock` on the lock file `path` of the state database
/// `state_path` without waiting (the file 0600 and its folder 0700 when
/// made, owned like the state), and write our pid into it for the message
/// of the next one; `Ok(Err(pid))` when another process holds it (its pid
/// when it wrote one). The run lock and the daemon's presence lock.
pub(crate) fn lock_file(
    path: &Path,
    state_path: &Path,
) -> std::io::Result<Result<LockFile, Option<u32>>> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::store::private_dir_all(dir)?;
    }
    let mut o = OpenOptions::new();
    o.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut file = o.open(path)?;
    crate::store::owner::hand_to_state_owner(path, state_path)?;
    match FileExt::try_lock(&file) {
        Ok(()) => {}
        Err(fs4::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Ok(Err(text.trim().parse().ok()));
        }
        Err(fs4::TryLockError::Error(e)) => return Err(e),
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    file.flush()?;
    Ok(Ok(LockFile(file)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_pid_and_path_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state").join("sisync.db");
        let lock = RunLock::acquire(&state).unwrap();
        assert_eq!(lock.path(), dir.path().join("state/sisync.db.lock"));
        // flock is per open file: a second open in this process conflicts
        let e = RunLock::acquire(&state).unwrap_err();
        let msg = e.to_string();
        crate::test_util::assert_names_our_pid(&msg);
        assert!(msg.contains("sisync.db.lock"), "{msg}");
        assert!(msg.contains("already running"), "{msg}");
        drop(lock);
        let again = RunLock::acquire(&state).unwrap();
        drop(again);
    }

    #[tokio::test]
    async fn waiting_takes_the_lock_once_it_is_released_or_gives_up() {
        let (_dir, state) = crate::test_util::temp_path("sisync.db");
        let held = RunLock::acquire(&state).unwrap();
        let short = std::time::Duration::from_millis(300);
        let mut told = false;
        let e = RunLock::acquire_within(&state, short, |_| told = true)
            .await
            .unwrap_err();
        assert!(told);
        assert!(matches!(e, LockError::Busy { .. }), "{e}");
        let release = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            drop(held);
        });
        RunLock::acquire_within(&state, std::time::Duration::from_secs(5), |_| {})
            .await
            .unwrap();
        release.await.unwrap();
    }
}
