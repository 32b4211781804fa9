//! The built `sisync` binary, run the way an admin runs it: one helper for
//! every test that checks exit codes and what reaches stdout and stderr.

use std::path::Path;
use std::process::{Command, Output};

/// `sisync --config <cfg>`, with no `SISYNC_CONFIG` inherited from the
/// environment and `RUST_LOG=warn`; add arguments and variables to taste.
pub fn sisync_cmd(cfg: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sisync"));
    c.arg("--config")
        .arg(cfg)
        .env_remove("SISYNC_CONFIG")
        .env("RUST_LOG", "warn");
    c
}

/// `sisync --config <cfg> run` started as the daemon, outside systemd
/// (no `NOTIFY_SOCKET`), its stderr discarded.
pub fn spawn_daemon(cfg: &Path) -> std::process::Child {
    sisync_cmd(cfg)
        .arg("run")
        .env_remove("NOTIFY_SOCKET")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Run `sisync --config <cfg> <args>` to the end.
pub fn sisync(cfg: &Path, args: &[&str]) -> Output {
    sisync_cmd(cfg).args(args).output().unwrap()
}

/// Run `sisync --config <cfg> <args>`, which must exit 0.
#[track_caller]
pub fn sisync_ok(cfg: &Path, args: &[&str]) -> Output {
    exited_0(sisync(cfg, args), args)
}

/// `o`, which must have exited 0; `args` name the command in the failure.
#[track_caller]
pub fn exited_0(o: Output, args: &[&str]) -> Output {
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
    o
}

/// Run `sisync --config <cfg> <args>`: (exit code, stdout, stderr), the
/// code -1 when a signal ended it.
pub fn cli(cfg: &Path, args: &[&str]) -> (i32, String, String) {
    parts(sisync(cfg, args))
}

/// (exit code, stdout, stderr) of a finished run.
pub fn parts(out: Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Stdout and stderr of a run, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Run `sisync --config <cfg> <args>` (output discarded) until
/// `under_way()` says its work has started, then SIGKILL it and check that
/// the kill ended it, not the work: what a crash in mid-run leaves. Fails
/// with `what` when the work did not start `within` that time.
pub async fn kill_under_way(
    cfg: &Path,
    args: &[&str],
    within: std::time::Duration,
    what: &str,
    under_way: impl Fn() -> bool,
) {
    use std::os::unix::process::ExitStatusExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sisync"))
        .arg("--config")
        .arg(cfg)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !under_way() {
        assert!(started.elapsed() < within, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    assert_eq!(status.signal(), Some(9), "killed, not finished: {status:?}");
}

/// `sisync sync <what>` (`roster`, `results`) of the `sisync.toml` in
/// `dir`, killed by [`kill_under_way`] once `under_way()`, which must
/// happen within a minute.
pub async fn kill_sync_under_way(dir: &Path, what: &str, under_way: impl Fn() -> bool) {
    let late = format!("sync {what} did not get under way");
    let within = std::time::Duration::from_secs(60);
    kill_under_way(
        &dir.join("sisync.toml"),
        &["sync", what],
        within,
        &late,
        under_way,
    )
    .await;
}
