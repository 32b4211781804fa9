//! Subject holds: persons under a restriction of processing, and erasure
//! tombstones that keep an erased person from being created again.
//!
//! A hold must recognise a returning SIS id without storing it, so it is
//! keyed by HMAC-SHA256 under the installation's *subject key*: 32 random
//! bytes in a file next to the state database (`<state.path>.key`, mode
//! 0600), created with the first hold. Without that file the hashes in the
//! database cannot be linked to student numbers, even by trying them all.
//! The database remembers a check value of the key, so a missing or wrong
//! key file is an error (erased persons must never come back because a key
//! was lost), not a silent miss. Holds made under schema 3 used an
//! unsalted hash (`keyed = 0`); they are still honoured.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use hmac::{Hmac, Mac};
use rusqlite::{OptionalExtension, params};
use sha2::Sha256;

use super::audit::{self, AuditEntry, id_hash_v1};
use super::{Store, now};

const CHECK_META: &str = "subject_key_check";

/// The installation's key for subject hashes.
#[derive(Clone)]
pub struct SubjectKey {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectKey(hidden)")
    }
}

impl SubjectKey {
    fn new(key: &[u8]) -> SubjectKey {
        SubjectKey {
            mac: Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length"),
        }
    }

    /// The keyed hash of a SIS id.
    pub fn of(&self, sis_id: &str) -> String {
        self.field_hash(sis_id).to_string()
    }

    /// The same as bytes (a BSN's change-detection hash).
    pub fn field_hash(&self, sis_id: &str) -> crate::model::field_hashes::FieldHash {
        let mut m = self.mac.clone();
        m.update(b"sisync-subject\x1f");
        m.update(sis_id.as_bytes());
        crate::model::field_hashes::FieldHash::from_bytes(&m.finalize().into_bytes())
    }

    fn check_value(&self) -> String {
        self.of("\x00sisync-subject-key-check")
    }
}

/// What `status` shows about holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HoldsStatus {
    pub restricted: usize,
    pub erased: usize,
    pub key_file: Option<PathBuf>,
    pub key_problem: Option<String>,
}

/// The holds in force, ready for lookups by SIS id.
#[derive(Debug, Clone, Default)]
pub struct Holds {
    key: Option<SubjectKey>,
    keyed: HashMap<String, String>,
    legacy: HashMap<String, String>,
}

impl Holds {
    pub fn is_empty(&self) -> bool {
        self.keyed.is_empty() && self.legacy.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keyed.len() + self.legacy.len()
    }

    /// `restricted` or `erased` when the person is held.
    pub fn kind_of(&self, sis_id: &str) -> Option<&str> {
        if let (Some(k), false) = (&self.key, self.keyed.is_empty()) {
            if let Some(kind) = self.keyed.get(&k.of(sis_id)) {
                return Some(kind);
            }
        }
        if self.legacy.is_empty() {
            return None;
        }
        self.legacy.get(&id_hash_v1(sis_id)).map(String::as_str)
    }
}

impl Store {
    fn subject_key_path(&self) -> Option<PathBuf> {
        if self.memory_key.is_some() {
            return None;
        }
        let mut p = self.path.clone().into_os_string();
        p.push(".key");
        Some(PathBuf::from(p))
    }

    /// The subject key; with `create`, made when there is none yet.
    /// `Ok(None)` only when no hold was ever keyed and `create` is false.
    pub(crate) fn subject_key(&self, create: bool) -> Result<Option<SubjectKey>> {
        let Some(path) = self.subject_key_path() else {
            return Ok(self.memory_key.as_deref().map(SubjectKey::new));
        };
        let check: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [CHECK_META], |r| {
                r.get(0)
            })
            .optional()?;
        let key = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim())
                    .ok()
                    .filter(|b| b.len() == 32)
                    .with_context(|| {
                        format!(
                            "subject key {} is not 64 hex digits; restore it from the backup of the state directory",
                            path.display()
                        )
                    })?;
                SubjectKey::new(&bytes)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if check.is_some() {
                    anyhow::bail!(
                        "subject key {} is missing, so restricted and erased persons cannot be recognised; restore it from the backup of the state directory (sisync refuses to sync without it)",
                        path.display()
                    );
                }
                if !create {
                    return Ok(None);
                }
                let bytes: [u8; 32] = {
                    let mut b = [0u8; 32];
                    getrandom::fill(&mut b).map_err(|e| {
                        anyhow::anyhow!("the operating system gave no random bytes: {e}")
                    })?;
                    b
                };
                match write_new_secret(&path, &hex::encode(bytes)) {
                    Ok(()) => {}
                    // another sisync made it a moment ago: use theirs
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return self.subject_key(false);
                    }
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!(
                                "cannot create subject key {}; check that the state directory is writable",
                                path.display()
                            )
                        });
                    }
                }
                super::owner::hand_to_state_owner(&path, &self.path).with_context(|| {
                    format!(
                        "cannot hand subject key {} to the state directory's owner",
                        path.display()
                    )
                })?;
                SubjectKey::new(&bytes)
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot read subject key {}; check its permissions (the sisync user must read it)",
                        path.display()
                    )
                });
            }
        };
        match check {
            Some(c) if c != key.check_value() => anyhow::bail!(
                "subject key {} does not belong to this state database; restore the key file that was backed up with it",
                path.display()
            ),
            Some(_) => {}
            None => {
                self.conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                    params![CHECK_META, key.check_value()],
                )?;
            }
        }
        Ok(Some(key))
    }

    /// The holds in force. Needs the subject key once any hold is keyed.
    pub fn holds(&self) -> Result<Holds> {
        let mut q = self
            .conn
            .prepare("SELECT id_hash, kind, keyed FROM subject_holds")?;
        let mut h = Holds::default();
        let rows = q.query_map([], |r| <(String, String, bool)>::try_from(r))?;
        for row in rows {
            let (hash, kind, keyed) = row?;
            if keyed {
                h.keyed.insert(hash, kind);
            } else {
                h.legacy.insert(hash, kind);
            }
        }
        if !h.keyed.is_empty() {
            h.key = self.subject_key(false)?;
        }
        Ok(h)
    }

    /// Holds by kind, and what is wrong with the subject key (for
    /// `status`): `None` when it is fine or not needed yet.
    pub fn holds_status(&self) -> Result<HoldsStatus> {
        let (restricted, erased): (i64, i64) = self.conn.query_row(
            "SELECT COALESCE(SUM(kind = 'restricted'), 0), COALESCE(SUM(kind = 'erased'), 0) FROM subject_holds",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (restricted, erased) = (restricted as usize, erased as usize);
        Ok(HoldsStatus {
            restricted,
            erased,
            key_file: self.subject_key_path(),
            key_problem: self.subject_key(false).err().map(|e| format!("{e:#}")),
        })
    }

    /// The hold on one SIS id, if any: (kind, since, actor).
    pub fn hold_of(&self, sis_id: &str) -> Result<Option<(String, String, String)>> {
        let mut hashes = vec![(id_hash_v1(sis_id), false)];
        if let Some(k) = self.subject_key(false)? {
            hashes.insert(0, (k.of(sis_id), true));
        }
        for (hash, keyed) in hashes {
            let found = self
                .conn
                .query_row(
                    "SELECT kind, since, actor FROM subject_holds WHERE id_hash = ?1 AND keyed = ?2",
                    params![hash, keyed],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Put a hold on a person (restrict), with its audit entry. An
    /// erasure tombstone stays a tombstone.
    pub fn restrict(&mut self, sis_id: &str, actor: &str, entry: &AuditEntry) -> Result<()> {
        let key = self.subject_key(true)?.context("no subject key")?;
        let tx = self.conn.transaction()?;
        let erased: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM subject_holds WHERE kind = 'erased' AND
                 ((keyed = 1 AND id_hash = ?1) OR (keyed = 0 AND id_hash = ?2)))",
            params![key.of(sis_id), id_hash_v1(sis_id)],
            |r| r.get(0),
        )?;
        if !erased {
            put_hold_in(&tx, &key, sis_id, "restricted", actor)?;
        }
        audit::append(&tx, entry)?;
        tx.commit()?;
        Ok(())
    }

    /// Lift a restriction or an erasure tombstone; false when there was none.
    pub fn unrestrict(&mut self, sis_id: &str, entry: &AuditEntry) -> Result<bool> {
        let key = self.subject_key(false)?;
        let tx = self.conn.transaction()?;
        let mut n = tx.execute(
            "DELETE FROM subject_holds WHERE keyed = 0 AND id_hash = ?1",
            [id_hash_v1(sis_id)],
        )?;
        if let Some(k) = key {
            n += tx.execute(
                "DELETE FROM subject_holds WHERE keyed = 1 AND id_hash = ?1",
                [k.of(sis_id)],
            )?;
        }
        if n > 0 {
            audit::append(&tx, entry)?;
        }
        tx.commit()?;
        Ok(n > 0)
    }
}

/// Record an erasure tombstone inside the caller's transaction.
pub(crate) fn tombstone_in(
    tx: &rusqlite::Transaction<'_>,
    key: &SubjectKey,
    sis_id: &str,
    actor: &str,
) -> Result<()> {
    put_hold_in(tx, key, sis_id, "erased", actor)
}

/// Set a keyed hold, replacing a schema-3 hold of the same person.
fn put_hold_in(
    tx: &rusqlite::Transaction<'_>,
    key: &SubjectKey,
    sis_id: &str,
    kind: &str,
    actor: &str,
) -> Result<()> {
    tx.execute(
        "DELETE FROM subject_holds WHERE keyed = 0 AND id_hash = ?1",
        [id_hash_v1(sis_id)],
    )?;
    tx.execute(
        "INSERT OR REPLACE INTO subject_holds (id_hash, kind, since, actor, keyed)
         VALUES (?1, ?2, ?3, ?4, 1)",
        params![key.of(sis_id), kind, now(), actor],
    )?;
    Ok(())
}

/// Write a new secret file readable by its owner only, complete or not at
/// all (written beside it, then linked into place); never overwrite.
fn write_new_secret(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    // a temporary file is created with mode 0600
    let mut f = tempfile::NamedTempFile::new_in(dir)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.as_file().sync_all()?;
    f.persist_noclobber(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> AuditEntry {
        AuditEntry::test_entry(id)
    }

    #[test]
    fn holds_are_keyed_and_survive_reopening() {
        let (dir, db, mut s) = crate::test_util::temp_store("state.db");
        assert!(s.holds().unwrap().is_empty());
        assert!(
            !dir.path().join("state.db.key").exists(),
            "no key before a hold"
        );
        s.restrict("stu-1001", "user:t", &entry("stu-1001"))
            .unwrap();
        let key_file = dir.path().join("state.db.key");
        assert!(key_file.exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // the stored hash is neither the id nor its unsalted hash
        let stored: String = crate::test_util::one(&s.conn, "SELECT id_hash FROM subject_holds");
        assert_ne!(stored, id_hash_v1("stu-1001"));
        assert!(!stored.contains("stu-"));
        drop(s);
        let s = Store::open(&db).unwrap();
        let h = s.holds().unwrap();
        assert_eq!(h.kind_of("stu-1001"), Some("restricted"));
        assert_eq!(h.kind_of("stu-1002"), None);
        assert_eq!(s.hold_of("stu-1001").unwrap().unwrap().0, "restricted");
    }

    #[test]
    fn a_missing_or_foreign_key_is_an_error_not_a_miss() {
        let (dir, _, mut s) = crate::test_util::temp_store("state.db");
        s.restrict("stu-1001", "user:t", &entry("stu-1001"))
            .unwrap();
        let key_file = dir.path().join("state.db.key");
        let saved = std::fs::read_to_string(&key_file).unwrap();
        std::fs::remove_file(&key_file).unwrap();
        let e = s.holds().unwrap_err().to_string();
        assert!(
            e.contains("state.db.key is missing") && e.contains("restore"),
            "{e}"
        );
        std::fs::write(&key_file, "ab".repeat(32)).unwrap();
        let e = s.holds().unwrap_err().to_string();
        assert!(e.contains("does not belong to this state database"), "{e}");
        std::fs::write(&key_file, saved).unwrap();
        assert_eq!(s.holds().unwrap().kind_of("stu-1001"), Some("restricted"));
    }

    #[test]
    fn schema_3_holds_are_honoured_and_rekeyed_when_touched() {
        let mut s = Store::in_memory().unwrap();
        s.conn
            .execute(
                "INSERT INTO subject_holds (id_hash, kind, since, actor) VALUES (?1, 'erased', 'then', 'user:old')",
                [id_hash_v1("stu-7")],
            )
            .unwrap();
        assert_eq!(s.holds().unwrap().kind_of("stu-7"), Some("erased"));
        // restricting an erased person keeps the tombstone
        s.restrict("stu-7", "user:t", &entry("stu-7")).unwrap();
        assert_eq!(s.holds().unwrap().kind_of("stu-7"), Some("erased"));
        assert!(s.unrestrict("stu-7", &entry("stu-7")).unwrap());
        assert!(s.holds().unwrap().is_empty());
        s.restrict("stu-7", "user:t", &entry("stu-7")).unwrap();
        let legacy: i64 = crate::test_util::one(
            &s.conn,
            "SELECT COUNT(*) FROM subject_holds WHERE keyed = 0",
        );
        assert_eq!(legacy, 0);
        assert_eq!(s.holds().unwrap().kind_of("stu-7"), Some("restricted"));
    }
}
