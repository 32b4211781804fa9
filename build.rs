//! Build metadata: the git commit for `sisync_build_info{commit}` and
//! `sisync --version`-adjacent reporting. `SISYNC_BUILD_COMMIT` overrides
//! it (a package built from a tarball); outside a git checkout, "unknown".

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let o = Command::new("git").args(args).output().ok()?;
    if !o.status.success() {
        return None;
    }
    let s = String::from_utf8(o.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Only for files that exist: cargo reruns on every build for a missing one.
fn rerun_if_changed(path: &str) {
    if std::path::Path::new(path).exists() {
        println!("cargo:rerun-if-changed={path}");
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=SISYNC_BUILD_COMMIT");
    let commit = std::env::var("SISYNC_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // rebuild when HEAD moves (works in worktrees: paths come from git)
    for p in ["HEAD", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", p]) {
            rerun_if_changed(&path);
        }
    }
    if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(path) = git(&["rev-parse", "--git-path", &r]) {
            rerun_if_changed(&path);
        }
    }
    println!("cargo:rustc-env=SISYNC_COMMIT={commit}");
}
