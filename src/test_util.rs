//! Helpers shared by the unit tests (compiled for tests only).

use std::path::PathBuf;

/// A fresh temporary directory and the path of `name` in it (nothing is
/// created there); the directory goes when the returned guard is dropped.
pub(crate) fn temp_path(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    (dir, path)
}

/// A lock refusal names this process's pid.
pub(crate) fn assert_names_our_pid(msg: &str) {
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
}

/// A store opened at `name` in a fresh temporary directory: the guard, the
/// state file's path and the store.
pub(crate) fn temp_store(name: &str) -> (tempfile::TempDir, PathBuf, crate::store::Store) {
    let (dir, path) = temp_path(name);
    let store = crate::store::Store::open(&path).unwrap();
    (dir, path, store)
}

/// The one value a query without parameters selects (a test's look into
/// the state file).
pub(crate) fn one<T: rusqlite::types::FromSql>(conn: &rusqlite::Connection, sql: &str) -> T {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// An active platform user keyed `id` (externalId and userName) with no
/// other field: tests add theirs with `..platform_user(id)`.
pub(crate) fn platform_user(id: &str) -> crate::model::platform::PlatformUser {
    crate::model::platform::PlatformUser {
        external_id: id.into(),
        user_name: id.into(),
        active: true,
        given_name: None,
        middle_name: None,
        family_name: None,
        email: None,
        role: None,
        org: None,
        accommodations: None,
        bsn: None,
        bsn_hash: None,
        unknown: Vec::new(),
    }
}

/// Owned strings in any collection (a `Vec`, a `BTreeSet`).
pub(crate) fn strings<C: FromIterator<String>>(v: &[&str]) -> C {
    v.iter().map(|s| s.to_string()).collect()
}
