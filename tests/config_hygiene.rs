//! Settings that parse but are unsafe or useless are refused (exit 2, one
//! line with file, line and key) or warned about; a damaged state
//! database is one line naming the file and what to do.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;

/// A SCIM config with `platform` keys and any extra sections.
fn config(dir: &Path, platform: &str, extra: &str) -> PathBuf {
    let export = copy_fixture("oneroster-1.2", dir);
    std::fs::write(dir.join("token"), "t0ken\n").unwrap();
    std::fs::set_permissions(dir.join("token"), std::fs::Permissions::from_mode(0o600)).unwrap();
    TestConfig::new(dir)
        .state(Some("state/sisync.db"))
        .source(Source::OneRosterCsv(export.clone()))
        .platform(Platform::Toml(format!(
            "kind = \"scim\"\ntoken_file = \"token\"\n{platform}\n{extra}\n"
        )))
        .write()
}

fn refused(cfg: &Path, key: &str, says: &str) {
    let o = sisync(cfg, &["check-config"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("sisync.toml:") && err.contains(key), "{err}");
    assert!(err.contains(says), "{err}");
}

#[test]
fn credentials_in_a_url_are_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "base_url = \"https://admin:hunter2@platform.example/scim/v2\"",
        "",
    );
    refused(&cfg, "platform.base_url", "user name or password");
    let o = sisync(&cfg, &["check-config"]);
    assert!(!text(&o).contains("hunter2"), "{}", text(&o));
    let cfg = config(
        dir.path(),
        "base_url = \"https://platform.example/scim/v2?access_token=abc\"",
        "",
    );
    refused(&cfg, "platform.base_url", "access_token");
}

#[test]
fn a_zero_timeout_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "base_url = \"https://platform.example/scim/v2\"\ntimeout = \"0s\"",
        "",
    );
    refused(&cfg, "platform.timeout", "0s");
}

#[test]
fn plain_http_to_another_machine_needs_an_explicit_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "base_url = \"http://platform.school.example/scim/v2\"",
        "",
    );
    refused(&cfg, "platform.base_url", "unencrypted");
    let cfg = config(
        dir.path(),
        "base_url = \"http://platform.school.example/scim/v2\"\nallow_insecure_http = true",
        "",
    );
    sisync_ok(&cfg, &["check-config"]);
    // this machine is fine without it (test peers, a local proxy)
    let cfg = config(
        dir.path(),
        "base_url = \"http://127.0.0.1:8080/scim/v2\"",
        "",
    );
    sisync_ok(&cfg, &["check-config"]);
}

#[test]
fn a_public_admin_endpoint_needs_a_token_or_an_explicit_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let base = "base_url = \"https://platform.example/scim/v2\"";
    let cfg = config(dir.path(), base, "[admin]\nlisten = \"0.0.0.0:9187\"\n");
    refused(&cfg, "admin.listen", "without a token");
    let cfg = config(
        dir.path(),
        base,
        "[admin]\nlisten = \"0.0.0.0:9187\"\nallow_unauthenticated = true\n",
    );
    sisync_ok(&cfg, &["check-config"]);
    let cfg = config(
        dir.path(),
        base,
        "[admin]\nlisten = \"0.0.0.0:9187\"\ntoken_file = \"token\"\n",
    );
    sisync_ok(&cfg, &["check-config"]);
    // loopback without a token stays fine
    let cfg = config(dir.path(), base, "[admin]\nlisten = \"127.0.0.1:9187\"\n");
    sisync_ok(&cfg, &["check-config"]);
}

#[test]
fn a_world_readable_secret_file_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "base_url = \"https://platform.example/scim/v2\"",
        "",
    );
    let o = sisync(&cfg, &["check-config"]);
    assert!(!text(&o).contains("readable by every user"), "{}", text(&o));
    std::fs::set_permissions(
        dir.path().join("token"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let o = sisync(&cfg, &["check-config"]);
    assert_eq!(o.status.code(), Some(0), "a warning: {}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_has(
        &err,
        &[
            "warning:",
            "platform.token_file",
            "readable by every user",
            "chmod 600",
        ],
    );
}

fn csv_drop(dir: &Path) -> PathBuf {
    let export = copy_fixture("oneroster-1.2", dir);
    let cfg = TestConfig::new(dir)
        .state(Some("state/sisync.db"))
        .source(Source::OneRosterCsv(export.clone()))
        .write();
    sisync_ok(&cfg, &["sync", "roster"]);
    cfg
}

fn damage(state: &Path, offset: u64, len: usize) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(state).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&vec![0xA5; len]).unwrap();
}

#[test]
fn a_damaged_state_database_is_one_line_with_the_file_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = csv_drop(dir.path());
    let state = dir.path().join("state/sisync.db");
    // a damaged page of the audit table (not a free page, which no check
    // reads): quick_check finds it before verify
    let size = std::fs::metadata(&state).unwrap().len();
    assert!(size > 8 * 4096, "{size}");
    let (root, page): (i64, i64) = {
        let c = rusqlite::Connection::open(&state).unwrap();
        let root = c
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'audit'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let page = c
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap();
        (root, page)
    };
    assert!(root > 1, "{root}");
    damage(&state, ((root - 1) * page) as u64, page as usize);
    let o = sisync(&cfg, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&state.display().to_string())
            && err.contains("is damaged")
            && err.contains("restore the state database from a backup"),
        "{err}"
    );
    // a file that is no database at all
    damage(&state, 0, 100);
    let o = sisync(&cfg, &["status"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&state.display().to_string()) && err.contains("from a backup"),
        "{err}"
    );
}
