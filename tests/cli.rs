//! The `sisync` binary end to end: exit codes, one-line errors, dry runs,
//! csv-drop delivery, status and the audit commands.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// A csv-drop config over a copy of the 1.2 fixture.
fn setup(dir: &Path) -> std::path::PathBuf {
    test_config(dir).write()
}

/// "Test College" from a copy of the 1.2 fixture into csv-drop.
fn test_config(dir: &Path) -> TestConfig {
    let export = copy_fixture("oneroster-1.2", dir);
    TestConfig::new(dir)
        .institution("Test College", "99AA")
        .state(Some("state/sisync.db"))
        .source(Source::OneRosterCsv(export))
}

#[test]
fn example_config_is_valid() {
    let o = sisync_ok(
        &repo().join("config/sisync.example.toml"),
        &["check-config"],
    );
    assert!(text(&o).contains("OneRoster 1.2 CSV, folder"));
}

#[test]
fn bad_config_exits_2_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path()).institution_keys("colour = \"blue\"");
    let cfg = config.write();
    let o = sisync(&cfg, &["sync", "roster"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert_has(
        &err,
        &[
            &format!("sisync.toml:{}", config.line_of("colour")),
            "unknown field `colour`",
        ],
    );
    let o = sisync(&dir.path().join("missing.toml"), &["status"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("cannot read config"));
}

#[test]
fn unusable_source_is_reported_by_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    std::fs::remove_file(dir.path().join("export/users.csv")).unwrap();
    std::fs::remove_file(dir.path().join("export/manifest.csv")).unwrap();
    let o = sisync(&cfg, &["check-config"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no users.csv"));
}

#[test]
fn dry_run_changes_nothing_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    let o = sisync_ok(&cfg, &["sync", "roster", "--dry-run"]);
    assert!(text(&o).contains("Dry run"));
    assert!(text(&o).contains("stu-1001"));
    assert!(!dir.path().join("state").exists(), "no state created");
    assert!(!dir.path().join("drop").exists(), "nothing delivered");
}

#[test]
fn sync_delivers_once_then_status_and_audit_tell_the_story() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    let o = sisync_ok(&cfg, &["sync", "roster"]);
    let out = text(&o);
    assert!(out.contains("users") && out.contains("42"), "{out}");
    let drops: Vec<_> = std::fs::read_dir(dir.path().join("drop"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(drops.len(), 1);
    let users = std::fs::read_to_string(drops[0].path().join("users.csv")).unwrap();
    assert_eq!(users.lines().count(), 43);
    assert!(!users.contains("@leerling"), "e-mail is opt-in");

    // a second run delivers nothing
    sisync_ok(&cfg, &["sync", "roster"]);
    assert_eq!(
        std::fs::read_dir(dir.path().join("drop")).unwrap().count(),
        1
    );

    let o = sisync(&cfg, &["--json", "status"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["runs"].as_array().unwrap().len(), 2);
    assert_eq!(v["audit"]["entries"], 48);

    let o = sisync_ok(&cfg, &["audit", "list", "--person", "stu-1003", "--csv"]);
    let csv = String::from_utf8_lossy(&o.stdout);
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.contains("user.create") && csv.contains("stu-1003"));
    assert!(!csv.contains("Zoë"), "no names in the audit log");

    let o = sisync(
        &cfg,
        &[
            "--json", "audit", "list", "--kind", "group", "--since", "1h",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 6);
    let o = sisync(&cfg, &["audit", "list", "--until", "2000-01-01"]);
    assert!(text(&o).contains("0 entries about 0 persons"));
    let o = sisync(&cfg, &["audit", "list", "--since", "last tuesday"]);
    assert_eq!(o.status.code(), Some(2));

    // which persons' data went to this endpoint (a prefix of the drop folder)
    let drop = dir.path().join("drop").display().to_string();
    let o = sisync(&cfg, &["audit", "list", "--endpoint", &drop]);
    assert!(
        text(&o).contains("48 entries about 42 persons"),
        "{}",
        text(&o)
    );
    let o = sisync(
        &cfg,
        &["audit", "list", "--endpoint", "https://elsewhere.example"],
    );
    assert!(
        text(&o).contains("0 entries about 0 persons"),
        "{}",
        text(&o)
    );

    let o = sisync_ok(&cfg, &["audit", "show", "1"]);
    assert!(text(&o).contains("entry_hash"));

    let o = sisync_ok(&cfg, &["audit", "verify"]);
    assert!(text(&o).contains("audit log OK: 48 entries"));
}

/// A temporary directory with `setup`'s config, synced once.
fn synced() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    sisync_ok(&cfg, &["sync", "roster"]);
    (dir, cfg)
}

/// `audit verify` exits 4 and names the first broken entry.
#[track_caller]
fn assert_verify_broken_at(cfg: &Path, seq: u64) {
    let o = sisync(cfg, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(4));
    let want = format!("BROKEN at entry {seq}");
    assert!(text(&o).contains(&want), "{}", text(&o));
}

fn tamper(dir: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(dir.join("state/sisync.db")).unwrap();
    conn.execute_batch(sql).unwrap();
}

#[test]
fn audit_verify_finds_an_edited_row() {
    let (dir, cfg) = synced();
    tamper(
        dir.path(),
        "UPDATE audit SET endpoint = 'elsewhere' WHERE seq = 17",
    );
    assert_verify_broken_at(&cfg, 17);
}

#[test]
fn audit_verify_finds_a_deleted_row() {
    let (dir, cfg) = synced();
    tamper(dir.path(), "DELETE FROM audit WHERE seq = 30");
    assert_verify_broken_at(&cfg, 30);
}

#[test]
fn mass_deactivation_exits_3() {
    let (dir, cfg) = synced();
    edit(&dir.path().join("export"), "users.csv", |l| {
        (!l.starts_with("stu-101")).then(|| l.to_string())
    });
    let o = sisync(&cfg, &["sync", "roster"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("nothing was written"));
    assert_eq!(
        std::fs::read_dir(dir.path().join("drop")).unwrap().count(),
        1
    );
    sisync_ok(&cfg, &["sync", "roster", "--allow-mass-changes"]);
    assert_eq!(
        std::fs::read_dir(dir.path().join("drop")).unwrap().count(),
        2
    );
}

#[test]
fn bad_rows_are_listed_with_file_and_line_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    edit(&dir.path().join("export"), "enrollments.csv", |l| {
        Some(l.replace(",stu-1005,", ",stu-9999,"))
    });
    let o = sisync_ok(&cfg, &["sync", "roster"]);
    let out = text(&o);
    assert_has(
        &out,
        &[
            "enrollments.csv:",
            "userSourcedId stu-9999 is not in users.csv",
        ],
    );
    assert!(out.contains("source rows skipped"));
}

#[test]
fn a_run_that_fails_is_recorded_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    std::fs::remove_file(dir.path().join("export/users.csv")).unwrap();
    let o = sisync(&cfg, &["sync", "roster"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_has(
        &err,
        &["users.csv is missing but manifest.csv declares file.users = bulk"],
    );
    let o = sisync(&cfg, &["status"]);
    let out = text(&o);
    assert_has(&out, &["failed", "last error (run 1)"]);
}

#[test]
fn generate_writes_man_pages_and_completions_without_a_config() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such.toml");
    let man = dir.path().join("man");
    sisync_ok(&missing, &["generate", "man", man.to_str().unwrap()]);
    let page = std::fs::read_to_string(man.join("sisync-run.1")).unwrap();
    assert!(page.contains("SIGHUP reloads the config"), "{page}");
    let main = std::fs::read_to_string(man.join("sisync.1")).unwrap();
    for section in [
        ".SH \"EXIT STATUS\"",
        ".SH ENVIRONMENT",
        ".SH FILES",
        ".SH EXAMPLES",
    ] {
        assert!(main.contains(section), "{section} in sisync.1");
    }
    let o = sisync_ok(&missing, &["generate", "completions", "bash"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("_sisync()"));
}

#[test]
fn every_json_invocation_prints_one_document_with_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let mut text_cfg = std::fs::read_to_string(&cfg).unwrap();
    text_cfg.push_str(
        "\n[results]\ndefault_class = \"cls-ne-h3a\"\n[results.source]\nkind = \"qti-folder\"\npath = \"inbox\"\n[results.sink]\nkind = \"oneroster-csv\"\npath = \"sis\"\n",
    );
    std::fs::write(&cfg, text_cfg).unwrap();
    let one = |args: &[&str]| -> serde_json::Value {
        let o = sisync(&cfg, args);
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not one JSON document ({e}): {}", text(&o)))
    };
    let v = one(&["--json", "sync", "all"]);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["roster"].is_object() && v["results"].is_object(), "{v}");
    let v = one(&["--json", "privacy", "restrict", "--person", "stu-1001"]);
    assert_eq!(v["restricted"], true);
    let v = one(&["--json", "privacy", "unrestrict", "--person", "stu-1001"]);
    assert_eq!(v["lifted"], true);
    let v = one(&["--json", "check-config"]);
    assert_eq!(v["settings"]["institution"]["brin"], "99AA");
    assert_eq!(v["settings"]["platform"]["kind"], "csv-drop");
    assert_eq!(v["settings"]["safety"]["max_deactivate_share"], 0.05);
    let o = sisync(&cfg, &["--json", "audit", "list", "--csv"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--json and --csv"), "{}", text(&o));
}

#[test]
fn a_closed_stdout_ends_quietly_with_exit_0() {
    use std::io::Read as _;
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    // more output than a pipe holds (64 KiB)
    for _ in 0..3 {
        assert_eq!(
            sisync(&cfg, &["sync", "roster", "--full"]).status.code(),
            Some(0)
        );
    }
    let all = sisync(&cfg, &["--json", "audit", "list", "--limit", "100000"]);
    assert!(
        all.stdout.len() > 96 * 1024,
        "{} bytes: {}",
        all.stdout.len(),
        text(&all)
    );
    for _ in 0..3 {
        // `sisync --json audit list | head -c 10`
        let mut child = Command::new(env!("CARGO_BIN_EXE_sisync"))
            .arg("--config")
            .arg(&cfg)
            .args(["--json", "audit", "list", "--limit", "100000"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut head = [0u8; 10];
        out.read_exact(&mut head).unwrap();
        drop(out);
        let o = child.wait_with_output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
    }
}

/// Read-only commands need no connector secret (`sudo sisync audit verify`
/// on a server, where the token is a systemd credential of the service);
/// check-config reports a missing one, and a run stops at it with the key,
/// file:line and what to do.
#[test]
fn read_only_commands_work_without_the_connector_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path())
        .extra("[privacy]\npseudonymize_ids = true\npseudonym_key_file = \"pseudonym-key\"\n");
    let cfg = config.write();
    let key = dir.path().join("pseudonym-key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
    sisync_ok(&cfg, &["sync", "roster"]);
    // the service's secrets are not here: no key, no token
    std::fs::remove_file(&key).unwrap();
    let config = config.platform(Platform::Toml(
        "kind = \"scim\"\nbase_url = \"https://platform.example/scim/v2\"\n\n[platform.auth]\nkind = \"bearer\"\ntoken_file = \"missing-token\"\n".into(),
    ));
    config.write();
    let token_at = format!(
        ":{}: platform.auth.token_file: cannot read",
        config.line_of("token_file = \"missing-token\"")
    );
    let key_at = format!(
        ":{}: privacy.pseudonym_key_file: cannot read",
        config.line_of("pseudonym_key_file")
    );
    for args in [
        &["status"][..],
        &["audit", "list"],
        &["audit", "show", "1"],
        &["audit", "verify"],
        &["privacy", "register"],
        &["privacy", "export", "--person", "stu-1001"],
        &["report", "results", "--exam", "EX-1"],
        &["plan", "list"],
    ] {
        let o = sisync(&cfg, args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
    }

    let o = sisync_ok(&cfg, &["check-config"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let missing = format!(
        "warning: {}:{}: platform.auth.token_file: cannot read {}",
        cfg.display(),
        config.line_of("token_file = \"missing-token\""),
        dir.path().join("missing-token").display()
    );
    assert!(stderr.contains(&missing), "{stderr}");
    assert!(stderr.contains(&key_at), "{stderr}");
    let o = sisync(&cfg, &["--json", "check-config"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let warnings = v["checks"]["warning"].as_str().unwrap_or_default();
    assert!(
        warnings.contains("platform.auth.token_file") && warnings.contains("pseudonym_key_file"),
        "every warning in the JSON too: {warnings}"
    );
    let o = sisync(&cfg, &["check-config", "--connect"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // the daemon reads them all at start and does not start without them
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_sisync"))
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .env_remove("SISYNC_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = daemon.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > std::time::Duration::from_secs(20) {
            daemon.kill().unwrap();
            panic!("sisync run started without its secrets");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(2));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut daemon.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_has(&stderr, &[&token_at, &key_at]);

    let o = sisync(&cfg, &["sync", "roster"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with(&format!("config error: {}:", cfg.display()))
            && (stderr.contains(&key_at) || stderr.contains(&token_at)),
        "{stderr}"
    );
}

/// A stdout whose reader is already gone: every write fails with EPIPE.
fn closed_stdout() -> std::process::Stdio {
    use std::os::fd::FromRawFd as _;
    let mut fds = [0; 2];
    // SAFETY: pipe() fills the two descriptors; we close the read end and
    // hand the write end, which nothing else owns, to the child.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        libc::close(fds[0]);
        std::process::Stdio::from(std::os::fd::OwnedFd::from_raw_fd(fds[1]))
    }
}

#[test]
fn every_command_with_output_ends_quietly_on_a_closed_stdout() {
    let (_dir, cfg) = synced();
    let commands: &[&[&str]] = &[
        &["check-config"],
        &["--json", "check-config"],
        &["status"],
        &["--json", "status"],
        &["audit", "list"],
        &["--json", "audit", "list"],
        &["audit", "list", "--csv"],
        &["audit", "show", "1"],
        &["audit", "verify"],
        &["sync", "roster"],
        &["sync", "roster", "--dry-run"],
        &["plan", "list"],
        &["privacy", "export", "--person", "stu-1001"],
        &[
            "privacy", "export", "--person", "stu-1001", "--format", "json",
        ],
        &["privacy", "register"],
        &["generate", "completions", "bash"],
    ];
    for args in commands {
        // each command still has output when run normally
        let o = sisync(&cfg, args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
        assert!(!o.stdout.is_empty(), "{args:?} prints something");
        for round in 0..20 {
            let o = Command::new(env!("CARGO_BIN_EXE_sisync"))
                .arg("--config")
                .arg(&cfg)
                .args(*args)
                .env_remove("SISYNC_CONFIG")
                .env("RUST_LOG", "warn")
                .stdout(closed_stdout())
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(0), "{args:?} round {round}: {err}");
            assert!(
                !err.contains("panicked") && !err.contains("Broken pipe"),
                "{args:?} round {round}: {err}"
            );
        }
    }
}

/// Every exit code the README documents, from the binary.
#[test]
fn every_documented_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    let code = |args: &[&str]| {
        let o = sisync(&cfg, args);
        (o.status.code(), text(&o))
    };
    // 1: a failure (no state yet for the audit log)
    let (c, out) = code(&["audit", "list"]);
    assert_eq!(c, Some(1), "{out}");
    assert!(out.starts_with("error: no state database at"), "{out}");
    // 0: ok
    assert_eq!(code(&["sync", "roster"]).0, Some(0));
    // 1: one line on stderr
    let (c, out) = code(&["audit", "show", "9999"]);
    assert_eq!(c, Some(1), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    // 2: bad usage and bad config
    assert_eq!(code(&["audit", "list", "--since", "soon"]).0, Some(2));
    assert_eq!(code(&["no-such-command"]).0, Some(2));
    let missing = dir.path().join("missing.toml");
    let o = sisync(&missing, &["status"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).starts_with("config error: "), "{}", text(&o));
    // 3: the safety gate holds a mass deactivation
    edit(&dir.path().join("export"), "users.csv", |l| {
        (!l.starts_with("stu-101")).then(|| l.to_string())
    });
    let (c, out) = code(&["sync", "roster"]);
    assert_eq!(c, Some(3), "{out}");
    let held: i64 = out
        .split("held as plan ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no held plan in: {out}"));
    // 5: the held plan went stale (a newer run changed the state)
    assert_eq!(code(&["sync", "roster", "--allow-mass-changes"]).0, Some(0));
    let (c, out) = code(&["plan", "approve", &held.to_string()]);
    assert_eq!(c, Some(5), "{out}");
    // 4: the audit chain does not verify
    tamper(dir.path(), "UPDATE audit SET fields = 'x' WHERE seq = 3");
    let (c, out) = code(&["audit", "verify"]);
    assert_eq!(c, Some(4), "{out}");
}
