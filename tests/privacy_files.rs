//! What sisync wrote to disk follows the person's rights: an erasure
//! removes them from kept drop folders, gradebook CSV folders, processed
//! result files and leftover temporary folders; the purge removes
//! deliveries older than `privacy.keep_deliveries`; restrict waits for a
//! running sync (the run lock) before it says "restricted".

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// csv-drop roster, QTI inbox, gradebook CSV folder.
fn setup(dir: &Path, privacy: &str) -> PathBuf {
    let export = copy_fixture("oneroster-1.2", dir);
    TestConfig::new(dir)
        .state(Some("state/sisync.db"))
        .source(Source::OneRosterCsv(export.clone()))
        .extra(&format!(
            r#"[privacy]
{privacy}
[results]
class_rules = [{{ exam = "EX-NED-*", class = "cls-ne-*" }}]
[results.source]
kind = "qti-folder"
path = "inbox"
[results.sink]
kind = "oneroster-csv"
path = "gradebook"
"#
        ))
        .write()
}

fn qti(dir: &Path, name: &str, cands: &[&str]) {
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let mut doc = String::from("<results>\n");
    for (i, c) in cands.iter().enumerate() {
        doc.push_str(&format!(
            r#"<assessmentResult xmlns="http://www.imsglobal.org/xsd/imsqti_result_v3p0"><context sourcedId="{c}"><sessionIdentifier sourceID="x" identifier="S{i}"/></context><testResult identifier="EX-NED-1" datestamp="2026-06-02T10:00:00Z"><outcomeVariable identifier="SCORE" cardinality="single" baseType="float"><value>6{i}</value></outcomeVariable></testResult></assessmentResult>
"#
        ));
    }
    doc.push_str("</results>\n");
    std::fs::write(inbox.join(name), doc).unwrap();
}

/// A temporary directory with `setup`'s config (`privacy` keys), synced
/// once.
fn synced(privacy: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), privacy);
    sisync_ok(&cfg, &["sync", "roster"]);
    (dir, cfg)
}

/// Every file under `dir` whose text holds `needle`.
fn files_with(dir: &Path, needle: &str) -> Vec<PathBuf> {
    common::files_under(dir)
        .into_iter()
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains(needle)))
        .collect()
}

#[test]
fn erasure_removes_the_person_from_every_file_sisync_kept() {
    let (dir, cfg) = synced("");
    let d = dir.path();
    qti(d, "ned.xml", &["stu-1001", "stu-1002"]);
    qti(d, "ned-only-1001.xml", &["stu-1001"]);
    sisync_ok(&cfg, &["sync", "results"]);
    // a failed delivery left its temporary folder behind
    let tmp = d.join("drop/.sisync-20260101T000000Z-run9.tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("users.csv"), "externalId\nstu-1001\n").unwrap();
    for place in ["drop", "gradebook", "inbox/done"] {
        assert!(
            !files_with(&d.join(place), "stu-1001").is_empty(),
            "{place}"
        );
    }

    // a dry run says what would go where and changes nothing
    let before: Vec<PathBuf> = ["drop", "gradebook", "inbox/done"]
        .iter()
        .flat_map(|p| files_with(&d.join(p), "stu-1001"))
        .collect();
    let o = sisync_ok(
        &cfg,
        &["privacy", "erase", "--person", "stu-1001", "--dry-run"],
    );
    let out = text(&o);
    assert!(out.contains("dry run: nothing was changed"), "{out}");
    assert!(out.contains("an erasures.csv drop folder"), "{out}");
    assert!(out.contains("would rewrite (1 row removed): "), "{out}");
    assert_has(&out, &[&format!("would remove: {}", tmp.display())]);
    let after: Vec<PathBuf> = ["drop", "gradebook", "inbox/done"]
        .iter()
        .flat_map(|p| files_with(&d.join(p), "stu-1001"))
        .collect();
    assert_eq!(before, after);
    assert!(tmp.exists());
    let o = sisync(&cfg, &["status"]);
    assert!(!text(&o).contains("1 erased"), "{}", text(&o));

    let o = sisync_ok(&cfg, &["privacy", "erase", "--person", "stu-1001"]);
    let out = text(&o);
    // each file touched is listed
    assert_has(&out, &[&format!("removed: {}", tmp.display())]);
    assert_has(&out, &["rewrote (1 row removed): ", "users.csv"]);
    assert_has(&out, &["memberships.csv", "results.csv"]);
    assert!(out.contains("ned.xml"), "{out}");

    // only the erasure delivery still names them
    for place in ["gradebook", "inbox"] {
        assert_eq!(
            files_with(&d.join(place), "stu-1001"),
            Vec::<PathBuf>::new()
        );
    }
    let left = files_with(&d.join("drop"), "stu-1001");
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].ends_with("erasures.csv"), "{left:?}");
    assert!(!tmp.exists());
    // the others are still there
    for place in ["drop", "gradebook", "inbox/done"] {
        assert!(
            !files_with(&d.join(place), "stu-1002").is_empty(),
            "{place}"
        );
    }
    // a QTI file that held only them is gone
    assert!(!d.join("inbox/done/ned-only-1001.xml").exists());
    let ned = std::fs::read_to_string(d.join("inbox/done/ned.xml")).unwrap();
    assert!(
        ned.contains("stu-1002") && ned.starts_with("<results>\n<assessmentResult"),
        "{ned}"
    );
}

#[test]
fn purge_removes_deliveries_older_than_keep_deliveries() {
    let (dir, cfg) = synced("keep_deliveries = 7");
    let d = dir.path();
    let old = d.join("drop/sisync-20200101T000000Z-run1");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("users.csv"), "externalId\nstu-1001\n").unwrap();
    let old_gb = d.join("gradebook/sisync-results-20200101T000000Z-run2");
    std::fs::create_dir_all(&old_gb).unwrap();
    let tmp = d.join("drop/.sisync-20260101T000000Z-run9.tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let o = sisync_ok(&cfg, &["privacy", "purge"]);
    let out = text(&o);
    assert_has(&out, &["older than 7 days (privacy.keep_deliveries)"]);
    for p in [&old, &old_gb, &tmp] {
        assert!(!p.exists(), "{}", p.display());
        assert!(out.contains(&format!("removed: {}", p.display())), "{out}");
    }
    // this run's delivery is kept
    assert_eq!(std::fs::read_dir(d.join("drop")).unwrap().count(), 1);
}

#[test]
fn restrict_waits_for_a_running_sync_and_gives_up_cleanly() {
    let (dir, cfg) = synced("");
    let state = dir.path().join("state/sisync.db");
    let restricted = || {
        sisync::store::Store::open(&state)
            .unwrap()
            .holds_status()
            .unwrap()
            .restricted
    };

    // a sync holds the run lock: restrict gives up after --wait
    let lock = sisync::sync::lock::RunLock::acquire(&state).unwrap();
    let o = sisync(
        &cfg,
        &[
            "privacy", "restrict", "--person", "stu-1001", "--wait", "300ms",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("gave up after 300ms, nothing was changed"),
        "{}",
        text(&o)
    );
    assert_eq!(restricted(), 0);

    // ... or waits until the sync is done, and only then restricts
    let mut child = Command::new(env!("CARGO_BIN_EXE_sisync"))
        .arg("--config")
        .arg(&cfg)
        .args(["privacy", "restrict", "--person", "stu-1001"])
        .env_remove("SISYNC_CONFIG")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(child.try_wait().unwrap().is_none(), "restrict must wait");
    assert_eq!(restricted(), 0, "nothing restricted while the sync runs");
    drop(lock);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("waiting up to 2m"), "{}", text(&o));
    assert!(text(&o).contains("stu-1001: restricted"), "{}", text(&o));
    assert_eq!(restricted(), 1);
}
