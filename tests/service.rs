//! The shipped service files: the systemd units (single and per-instance
//! template) verify and stay hardened (`systemd-analyze`, when installed),
//! the production config template keeps the SIS export out of the state
//! directory, and a credential folder loaded whole by `LoadCredential=`
//! is found by the file names the config uses.

mod common;

use std::path::Path;
use std::process::Command;

use common::{assert_success, repo, sisync_cmd};

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A root for `systemd-analyze --root` with the units in
/// /etc/systemd/system, the binary at /usr/bin/sisync and the host's
/// system units (targets) beside them.
fn unit_root(units: &[(&str, &Path)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for d in ["usr/bin", "bin", "etc/systemd/system", "usr/lib/systemd"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::copy(env!("CARGO_BIN_EXE_sisync"), r.join("usr/bin/sisync")).unwrap();
    std::fs::copy("/bin/kill", r.join("bin/kill")).unwrap();
    std::os::unix::fs::symlink("/lib/systemd/system", r.join("usr/lib/systemd/system")).unwrap();
    for (name, src) in units {
        let dest = r.join("etc/systemd/system").join(name);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(src, dest).unwrap();
    }
    root
}

fn verify(root: &Path, unit: &str) {
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", root.display()))
        .arg(unit)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    // parse problems are warnings with exit 0: any line is a failure
    assert!(o.status.success() && err.trim().is_empty(), "{unit}: {err}");
}

fn exposure(unit_file: &Path) -> f64 {
    let o = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(unit_file)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure line: {out} {o:?}"));
    line.rsplit(':')
        .next()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}

#[test]
fn units_verify_and_stay_hardened() {
    if !have("systemd-analyze") || !Path::new("/lib/systemd/system/sysinit.target").exists() {
        eprintln!("systemd-analyze not installed: checked by .ci/run, skipped here");
        return;
    }
    let deploy = repo().join("deploy");
    let template = deploy.join("sisync@.service");
    let dropin = deploy.join("sisync@.service.d/paths.conf.example");
    let root = unit_root(&[
        ("sisync.service", &deploy.join("sisync.service")),
        (
            "sisync-resync.service",
            &deploy.join("sisync-resync.service"),
        ),
        ("sisync@.service", &template),
    ]);
    verify(root.path(), "sisync.service");
    verify(root.path(), "sisync-resync.service");
    verify(root.path(), "sisync@school-a.service");
    // with the ReadWritePaths= drop-in example in place
    let d = root.path().join("etc/systemd/system/sisync@.service.d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(&dropin, d.join("paths.conf")).unwrap();
    verify(root.path(), "sisync@school-a.service");

    for f in [&template, &deploy.join("sisync.service")] {
        let e = exposure(f);
        assert!(e <= 1.5, "{}: exposure {e} above 1.5", f.display());
    }
    let t = std::fs::read_to_string(&template).unwrap();
    for want in [
        "--config /etc/sisync/%i.toml run",
        "StateDirectory=sisync/%i",
        "LoadCredential=sisync:/etc/sisync/credentials/%i",
    ] {
        assert!(t.contains(want), "{want}");
    }
}

#[test]
fn production_template_keeps_the_sis_export_out_of_the_state_directory() {
    let text = std::fs::read_to_string(repo().join("deploy/sisync.toml")).unwrap();
    let v: toml::Value = toml::from_str(&text).unwrap();
    let state = Path::new(v["state"]["path"].as_str().unwrap());
    let source = Path::new(v["source"]["path"].as_str().unwrap());
    let state_dir = state.parent().unwrap();
    assert!(
        !source.starts_with(state_dir),
        "{} lies in the 0700 state directory {}",
        source.display(),
        state_dir.display()
    );
}

#[test]
fn credential_folder_files_are_found_by_their_own_names() {
    let dir = tempfile::tempdir().unwrap();
    let export = common::copy_fixture("oneroster-1.2", dir.path());
    let loaded = common::scim_config(
        dir.path(),
        &export,
        "https://platform.invalid/scim/v2",
        "unused",
        "",
    );
    // the token is only in the credentials folder, named as systemd names
    // the files of `LoadCredential=sisync:/etc/sisync/credentials/NAME`
    std::fs::remove_file(dir.path().join("token")).unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    let run = || {
        sisync_cmd(&loaded.file)
            .arg("check-config")
            .env("CREDENTIALS_DIRECTORY", &creds)
            .output()
            .unwrap()
    };
    // check-config reads the secrets and reports one it cannot read
    let o = run();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        stderr.contains("platform.token_file: cannot read"),
        "no token anywhere: {stderr}"
    );
    std::fs::write(creds.join("sisync_token"), "tok-123\n").unwrap();
    let o = run();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("cannot read"), "found: {stderr}");
}

/// Every `sisync_*` / `process_*` name in a text, as written.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let rest = &text[i..];
        let starts_word = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if starts_word && (rest.starts_with("sisync_") || rest.starts_with("process_")) {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.insert(rest[..end].to_string());
            i += end;
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn alert_rules_and_dashboard_use_metrics_that_exist() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    drop(sisync::store::Store::open(&db).unwrap());
    // a daemon with a SCIM platform, at start-up
    let export = common::copy_fixture("oneroster-1.2", dir.path());
    let loaded = common::scim_config(dir.path(), &export, "https://p.example/scim/v2", "t", "");
    sisync::daemon::metrics::expose_endpoints(&loaded);
    let exposed = sisync::daemon::metrics::to_classic_text(&sisync::daemon::metrics::render(
        sisync::daemon::metrics::global(),
        &db,
    ));
    // samples, and families declared before their first sample (HTTP)
    let series: std::collections::BTreeSet<String> = exposed
        .lines()
        .filter_map(|l| match l.strip_prefix("# TYPE ") {
            Some(t) => t.split(' ').next(),
            None if l.starts_with('#') => None,
            None => l.split(['{', ' ']).next(),
        })
        .map(str::to_string)
        .collect();
    let rules = repo().join("deploy/prometheus/sisync-alerts.yml");
    let dashboard = repo().join("deploy/grafana/sisync-dashboard.json");
    let dash_text = std::fs::read_to_string(&dashboard).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&dash_text).unwrap();
    let mut exprs = String::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            exprs.push_str(t["expr"].as_str().unwrap());
            exprs.push('\n');
        }
    }
    for (what, text) in [
        ("rules", std::fs::read_to_string(&rules).unwrap()),
        ("dashboard", exprs),
    ] {
        let names = metric_names(&text);
        assert!(names.len() >= 5, "{what}: {names:?}");
        for n in names {
            assert!(
                series.contains(&n),
                "{what} uses {n}, which /metrics does not expose"
            );
        }
    }
    if have("promtool") {
        let o = Command::new("promtool")
            .args(["check", "rules"])
            .arg(&rules)
            .output()
            .unwrap();
        assert_success(&o, "promtool check rules");
    } else {
        eprintln!("promtool not installed (.ci/run installs it): rule syntax check skipped");
    }
}
