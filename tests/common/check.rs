//! Shared assertions and look-ups of the integration tests: each fails
//! naming what it looked for and showing what it found, so a test that
//! uses them still says what went wrong.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::Output;

use sisync::store::{AuditFilter, AuditRow, Store};

/// Every one of `needles` is in `text`.
#[track_caller]
pub fn assert_has(text: &str, needles: &[&str]) {
    for n in needles {
        assert!(text.contains(n), "{n:?} missing in:\n{text}");
    }
}

/// None of `needles` is in `text`; `what` says where the text went.
#[track_caller]
pub fn assert_lacks(text: &str, needles: &[&str], what: &str) {
    for n in needles {
        assert!(!text.contains(n), "{n:?} in {what}:\n{text}");
    }
}

/// Some line of `lines` (issues, reasons, failures) holds `needle`.
#[track_caller]
pub fn assert_any_has<S: AsRef<str> + Debug>(lines: &[S], needle: &str) {
    assert!(
        lines.iter().any(|l| l.as_ref().contains(needle)),
        "no line holds {needle:?}: {lines:?}"
    );
}

/// A tool (`xmllint`, `promtool`, a peer's setup) ended well; `what` names
/// it in the failure, with its stdout and stderr.
#[track_caller]
pub fn assert_success(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: {}\n{}",
        o.status,
        super::text(o)
    );
}

/// The state database and its write-ahead log hold no trace of `id`
/// (deleted rows are overwritten, the log is emptied); `why` says why not.
#[track_caller]
pub fn assert_state_lacks(state: &Path, id: &str, why: &str) {
    for ext in ["", "-wal"] {
        let mut p = state.to_path_buf().into_os_string();
        p.push(ext);
        if let Ok(bytes) = std::fs::read(&p) {
            assert!(
                !bytes.windows(id.len()).any(|w| w == id.as_bytes()),
                "{p:?} {why}: {id}"
            );
        }
    }
}

/// The entries of `dir` (not below), sorted.
pub fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// The audit entries of one action (`user.create`, `result.push`, ...).
pub fn audit_of(store: &Store, action: &str) -> Vec<AuditRow> {
    audit(store, Some(action), None)
}

/// The audit entries that name person `id`.
pub fn audit_about(store: &Store, id: &str) -> Vec<AuditRow> {
    audit(store, None, Some(id))
}

fn audit(store: &Store, kind: Option<&str>, person: Option<&str>) -> Vec<AuditRow> {
    let filter = AuditFilter {
        kind: kind.map(str::to_string),
        person: person.map(str::to_string),
        ..Default::default()
    };
    store.audit_list(&filter).unwrap()
}
