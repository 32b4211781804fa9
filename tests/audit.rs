//! Audit log tampering that the chain alone cannot see: entries cut off
//! the front or the end (or the whole log) with `audit_head` rewritten to
//! match. The chain starts at entry 1 and is checked against the heads
//! recorded in `audit.anchor_file`; `sisync audit verify` exits 4.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

fn sisync(config: &Path, args: &[&str], log: &str) -> Output {
    sisync_cmd(config)
        .args(args)
        .env("RUST_LOG", log)
        .output()
        .unwrap()
}

/// The csv-drop config of [`synced`] with `audit` sections.
fn audit_config(dir: &Path, export: PathBuf, audit: &str) -> PathBuf {
    TestConfig::new(dir)
        .state(Some("state/sisync.db"))
        .source(Source::OneRosterCsv(export))
        .extra(audit)
        .write()
}

/// A csv-drop config in a temporary directory, optionally with an anchor
/// file outside the state directory; one roster sync done (48 audit
/// entries: users and classes). (The directory, the config, the state.)
fn synced(anchored: bool) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let export = copy_fixture("oneroster-1.2", dir);
    let audit = if anchored {
        "[audit]\nanchor_file = \"anchors/audit.anchor\"\n"
    } else {
        ""
    };
    std::fs::create_dir_all(dir.join("anchors")).unwrap();
    let cfg = audit_config(dir, export, audit);
    let o = sisync(&cfg, &["sync", "roster"], "info");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // the head goes to the journal at the end of the run
    let log = String::from_utf8_lossy(&o.stderr);
    assert_has(&log, &["audit head", "audit_seq"]);
    let state = dir.join("state/sisync.db");
    (tmp, cfg, state)
}

fn db(state: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(state).unwrap()
}

/// `audit verify`, which must exit with `code`; its output.
#[track_caller]
fn verify(cfg: &Path, code: i32) -> String {
    let o = sisync(cfg, &["audit", "verify"], "warn");
    let out = text(&o);
    assert_eq!(o.status.code(), Some(code), "{out}");
    out
}

/// `column` (`entry_hash`, `prev_hash`) of audit entry `seq`.
fn hash(c: &rusqlite::Connection, column: &str, seq: i64) -> String {
    let sql = format!("SELECT {column} FROM audit WHERE seq = {seq}");
    c.query_row(&sql, [], |r| r.get(0)).unwrap()
}

/// Cut the log after entry `last` and make the head end there, as someone
/// hiding the tail would.
fn cut_tail(state: &Path, last: i64) {
    let c = db(state);
    let last_hash = hash(&c, "entry_hash", last);
    c.execute("DELETE FROM audit WHERE seq > ?1", [last])
        .unwrap();
    c.execute(
        "UPDATE audit_head SET last_seq = ?1, last_hash = ?2",
        rusqlite::params![last, last_hash],
    )
    .unwrap();
}

#[test]
fn anchored_log_verifies_and_says_so() {
    let (dir, cfg, _) = synced(true);
    let anchors = std::fs::read_to_string(dir.path().join("anchors/audit.anchor")).unwrap();
    assert_eq!(anchors.lines().count(), 1, "{anchors}");
    assert!(anchors.contains(" seq=48 hash="), "{anchors}");
    let out = verify(&cfg, 0);
    assert!(out.contains("anchors: 1 checked"), "{out}");
}

#[test]
fn deleting_the_oldest_entries_and_moving_first_seq_is_found() {
    let (_dir, cfg, state) = synced(false);
    let c = db(&state);
    let prev6 = hash(&c, "prev_hash", 6);
    c.execute("DELETE FROM audit WHERE seq <= 5", []).unwrap();
    c.execute(
        "UPDATE audit_head SET first_seq = 6, first_prev_hash = ?1",
        [&prev6],
    )
    .unwrap();
    drop(c);
    let out = verify(&cfg, 4);
    assert_has(&out, &["BROKEN at entry 1: entries 1..5 are missing"]);
}

#[test]
fn moving_first_seq_alone_is_found() {
    let (_dir, cfg, state) = synced(false);
    db(&state)
        .execute("UPDATE audit_head SET first_seq = 6", [])
        .unwrap();
    let out = verify(&cfg, 4);
    assert!(out.contains("audit_head was edited"), "{out}");
}

#[test]
fn cutting_the_tail_and_updating_the_head_is_found_by_the_anchor() {
    let (_dir, cfg, state) = synced(true);
    cut_tail(&state, 10);
    let out = verify(&cfg, 4);
    assert_has(
        &out,
        &[
            "BROKEN at entry 11: the log ends at entry 10",
            "audit.anchor:1",
            "recorded entry 48",
        ],
    );
}

#[test]
fn deleting_the_whole_log_and_its_head_is_found_by_the_anchor() {
    let (dir, cfg, state) = synced(true);
    let c = db(&state);
    c.execute("DELETE FROM audit", []).unwrap();
    c.execute(
        "UPDATE audit_head SET last_seq = 0, last_hash = ?1",
        [sisync::store::audit::GENESIS],
    )
    .unwrap();
    drop(c);
    let out = verify(&cfg, 4);
    assert!(out.contains("the log ends at entry 0"), "{out}");

    // a database replaced by a fresh one with a few entries: entry 48 is
    // gone, and the entries that exist differ from the recorded ones
    std::fs::remove_dir_all(dir.path().join("state")).unwrap();
    std::fs::remove_dir_all(dir.path().join("drop")).unwrap();
    let o = sisync(&cfg, &["sync", "roster"], "warn");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    cut_tail(&state, 41);
    verify(&cfg, 4);
}

#[test]
fn deleting_the_head_row_exits_4() {
    let (_dir, cfg, state) = synced(false);
    db(&state).execute("DELETE FROM audit_head", []).unwrap();
    let out = verify(&cfg, 4);
    assert!(out.contains("audit_head) is missing"), "{out}");
    // and a run refuses to append to a log without a head, in one line
    let o = sisync(
        &cfg,
        &["privacy", "restrict", "--person", "stu-1001"],
        "warn",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("audit head (table audit_head) is missing"));
}

#[test]
fn without_an_anchor_file_genesis_is_checked_and_the_anchor_check_skipped() {
    let (_dir, cfg, _) = synced(false);
    let out = verify(&cfg, 0);
    assert_has(
        &out,
        &[
            "chain intact from entry 1",
            "skipped: no audit.anchor_file configured",
        ],
    );
}

#[test]
fn an_anchor_file_in_the_state_directory_is_a_config_error() {
    let (dir, cfg, _) = synced(true);
    let export = dir.path().join("export");
    audit_config(
        dir.path(),
        export,
        "[audit]\nanchor_file = \"state/audit.anchor\"\n",
    );
    let o = sisync(&cfg, &["audit", "verify"], "warn");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("audit.anchor_file"), "{}", text(&o));
}

/// The audit log of sisync 0.1 before its vocabularies had types, written
/// by [`every_kind_of_entry`] with that version (regenerate only with a
/// version that writes the same strings).
const VOCABULARY_FIXTURE: &str = "fixtures/audit/before-typed-vocabulary.db";

/// Run every operation of a csv-drop setup that writes audit entries: a
/// roster sync with results (read, match, push), an update, a held mass
/// deactivation approved as a plan, the privacy commands and the purge.
/// Returns the state database.
fn every_kind_of_entry(dir: &Path) -> PathBuf {
    let export = copy_fixture("oneroster-1.2", dir);
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    for f in std::fs::read_dir(repo().join("fixtures/results/inbox")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, inbox.join(f.file_name().unwrap())).unwrap();
    }
    let cfg = TestConfig::new(dir)
        .state(Some("state/sisync.db"))
        .source(Source::OneRosterCsv(export.clone()))
        .platform(Platform::Toml(
            "kind = \"csv-drop\"\npath = \"drop\"\n".into(),
        ))
        .extra(
            r#"[results]
default_class = "cls-ne-h3a"
[results.source]
kind = "qti-folder"
path = "inbox"
settle = "0s"
[results.sink]
kind = "oneroster-csv"
path = "sis"
"#,
        )
        .write();
    let run = |args: &[&str], want: i32| {
        let o = sisync(&cfg, args, "warn");
        assert_eq!(o.status.code(), Some(want), "{args:?}: {}", text(&o));
        text(&o)
    };
    run(&["sync", "all"], 0);
    edit(&export, "users.csv", |l| Some(l.replace("Zoë", "Zoé")));
    run(&["sync", "roster"], 0);
    edit(&export, "users.csv", |l| {
        (!l.starts_with("stu-101")).then(|| l.to_string())
    });
    let out = run(&["sync", "roster"], 3);
    let plan = out
        .split("held as plan ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .unwrap_or_else(|| panic!("no held plan: {out}"))
        .to_string();
    run(&["plan", "approve", &plan], 0);
    run(&["privacy", "restrict", "--person", "stu-1001"], 0);
    run(&["privacy", "unrestrict", "--person", "stu-1001"], 0);
    run(&["privacy", "export", "--person", "stu-1001"], 0);
    run(&["privacy", "erase", "--person", "stu-1002", "--yes"], 0);
    run(&["privacy", "purge"], 0);
    dir.join("state/sisync.db")
}

/// The distinct vocabulary of a log: direction, action, record kind,
/// outcome and the field lists, as stored.
fn vocabulary(state: &Path) -> std::collections::BTreeSet<String> {
    let c = db(state);
    let mut stmt = c
        .prepare("SELECT direction, action, record_kind, outcome, fields FROM audit")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((0..5)
            .map(|i| r.get::<_, String>(i))
            .collect::<Result<Vec<_>, _>>()?
            .join(" | "))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[test]
fn a_log_written_before_the_typed_vocabulary_verifies_and_new_entries_match_it() {
    let fixture = repo().join(VOCABULARY_FIXTURE);
    if std::env::var_os("SISYNC_WRITE_AUDIT_FIXTURE").is_some() {
        let dir = tempfile::tempdir().unwrap();
        let state = every_kind_of_entry(dir.path());
        std::fs::create_dir_all(fixture.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&fixture);
        db(&state)
            .execute("VACUUM INTO ?1", [fixture.to_str().unwrap()])
            .unwrap();
        return;
    }
    // the old log verifies, entry by entry, with today's code
    let (_dir, cfg, state) = synced(false);
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", state.display()));
    }
    std::fs::copy(&fixture, &state).unwrap();
    let out = verify(&cfg, 0);
    assert!(out.contains("audit log OK"), "{out}");
    // the same operations today write the same strings
    let dir = tempfile::tempdir().unwrap();
    let today = vocabulary(&every_kind_of_entry(dir.path()));
    let before = vocabulary(&fixture);
    assert!(before.len() > 15, "{before:#?}");
    assert_eq!(today, before);
}
