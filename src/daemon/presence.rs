//! The daemon's presence lock: `sisync run` holds an `flock` on
//! `<state file>.daemon` for as long as it lives (the run lock is held
//! only during a run). `sisync restore` takes it to know that no daemon
//! has the state database open, and a second daemon on the same state is
//! refused. The kernel drops the lock when the process ends.

use std::path::{Path, PathBuf};

use crate::sync::lock::LockFile;

/// A daemon holds the presence lock of this state database.
#[derive(Debug, thiserror::Error)]
#[error(
    "a sisync daemon ({}) uses the state database {}; stop it first (systemctl stop sisync, or sisync@NAME for an instance)",
    .pid.map(|p| format!("pid {p}")).unwrap_or_else(|| "pid unknown".into()),
    .state.display()
)]
pub struct DaemonRunning {
    pub pid: Option<u32>,
    pub state: PathBuf,
}

/// The held presence lock; released when dropped.
#[derive(Debug)]
pub struct PresenceLock {
    _held: LockFile,
}

impl PresenceLock {
    pub fn path_for(state_path: &Path) -> PathBuf {
        let mut name = state_path.as_os_str().to_owned();
        name.push(".daemon");
        PathBuf::from(name)
    }

    /// Take the lock without waiting; `DaemonRunning` when a daemon has it.
    pub fn acquire(state_path: &Path) -> anyhow::Result<PresenceLock> {
        let path = Self::path_for(state_path);
        let ctx = || {
            format!(
                "cannot open the daemon lock {}; check that the state directory is writable",
                path.display()
            )
        };
        use anyhow::Context as _;
        match crate::sync::lock::lock_file(&path, state_path).with_context(ctx)? {
            Ok(held) => Ok(PresenceLock { _held: held }),
            Err(pid) => Err(DaemonRunning {
                pid,
                state: state_path.to_path_buf(),
            }
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_learns_the_pid_until_released() {
        let (_dir, state) = crate::test_util::temp_path("sisync.db");
        let held = PresenceLock::acquire(&state).unwrap();
        let e = PresenceLock::acquire(&state).unwrap_err();
        let msg = e.to_string();
        crate::test_util::assert_names_our_pid(&msg);
        assert!(msg.contains("stop it first"), "{msg}");
        drop(held);
        PresenceLock::acquire(&state).unwrap();
    }
}
