//! Room on the state volume for the audit log. A write that left sisync
//! must have its audit entry committed; a full disk between the platform's
//! answer and the commit would lose it. So a run that sends data starts
//! only with free space to spare, and keeps a reserve file beside the
//! database that is given up to commit the last entries when the volume
//! fills up anyway.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use fs4::FileExt as _;

use super::{AuditEntry, Store};

/// Size of the reserve file: room for thousands of audit entries.
const RESERVE_BYTES: u64 = 4 << 20;

fn reserve_path(db: &Path) -> PathBuf {
    beside(db, ".reserve")
}

fn beside(db: &Path, suffix: &str) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// Audit entries of writes that left sisync while the database could not
/// take them: kept as JSON lines beside it, added to the audit log at the
/// next start.
fn unrecorded_path(db: &Path) -> PathBuf {
    beside(db, ".unrecorded")
}

impl Store {
    /// Before a run that sends data: at least `min_free_mb` free on the
    /// state volume, and the reserve file in place.
    pub fn ensure_room(&self, min_free_mb: u64) -> Result<()> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let free = fs4::available_space(&dir)
            .with_context(|| format!("cannot tell the free space of {}", dir.display()))?;
        let reserve = reserve_path(&self.path);
        let have_reserve = std::fs::metadata(&reserve).is_ok_and(|m| m.len() >= RESERVE_BYTES);
        let needed = (min_free_mb << 20) + if have_reserve { 0 } else { RESERVE_BYTES };
        if free < needed {
            bail!(
                "the state volume {} has {} MiB free, sisync needs {} MiB to record what it sends (state.min_free_mb); free space there, nothing was sent",
                dir.display(),
                free >> 20,
                needed.div_ceil(1 << 20)
            );
        }
        if !have_reserve {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&reserve)
                .and_then(|f| f.allocate(RESERVE_BYTES).map(|_| f))
                .with_context(|| format!("cannot create {}", reserve.display()))?;
            drop(f);
            let _ = super::owner::hand_to_state_owner(&reserve, &self.path);
        }
        Ok(())
    }

    /// Keep the audit entries of writes that could not be committed, for
    /// the next start. Last resort: when even this fails, the error says
    /// so and names the records.
    pub fn park_unrecorded(&self, entries: &[AuditEntry]) -> Result<()> {
        use std::io::Write as _;
        let path = unrecorded_path(&self.path);
        let mut o = std::fs::OpenOptions::new();
        o.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let mut f = o
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        for e in entries {
            let mut line = serde_json::to_vec(e)?;
            line.push(b'\n');
            f.write_all(&line)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        f.sync_all()?;
        Ok(())
    }

    /// Add parked audit entries (see [`Store::park_unrecorded`]) to the
    /// log, marked as recorded late.
    pub(super) fn import_unrecorded(&mut self) -> Result<usize> {
        let path = unrecorded_path(&self.path);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(0);
        };
        let mut n = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(mut e) = serde_json::from_str::<AuditEntry>(line) else {
                tracing::warn!(file = %path.display(), "an unreadable parked audit entry was skipped");
                continue;
            };
            e.detail = Some(match e.detail {
                Some(d) => format!("{d}; recorded late: the state volume was full"),
                None => "recorded late: the state volume was full".to_string(),
            });
            self.commit(&[(None, e)])?;
            n += 1;
        }
        std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        if n > 0 {
            tracing::warn!(
                entries = n,
                "audit entries of writes made while the state volume was full were recorded now"
            );
        }
        Ok(n)
    }

    /// Give up the reserve so that the last audit entries fit.
    pub fn release_reserve(&self) {
        let reserve = reserve_path(&self.path);
        if std::fs::remove_file(&reserve).is_ok() {
            tracing::warn!(file = %reserve.display(), "state volume full: reserve given up to record the last writes");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AuditAction, AuditKind, AuditOutcome, Direction, RecordKind, RecordWrite};

    #[test]
    fn refuses_when_the_volume_is_short_and_keeps_a_reserve() {
        let (_dir, db, s) = crate::test_util::temp_store("state.db");
        let e = s.ensure_room(u64::MAX >> 21).unwrap_err().to_string();
        assert!(e.contains("nothing was sent"), "{e}");
        s.ensure_room(1).unwrap();
        assert_eq!(
            std::fs::metadata(reserve_path(&db)).unwrap().len(),
            RESERVE_BYTES
        );
        s.release_reserve();
        assert!(!reserve_path(&db).exists());
    }

    #[test]
    fn parked_entries_are_recorded_at_the_next_start() {
        let (_dir, db, s) = crate::test_util::temp_store("state.db");
        let e = AuditEntry {
            actor: "user:test".into(),
            run_id: Some(1),
            direction: Direction::Out,
            endpoint: "https://platform.example/scim/v2/Users".into(),
            action: AuditAction::Record(RecordKind::User, RecordWrite::Create),
            record_kind: AuditKind::User,
            record_id: "stu-1".into(),
            fields: "name".into(),
            payload_sha256: Some("ab".into()),
            outcome: AuditOutcome::Ok,
            detail: None,
        };
        s.park_unrecorded(std::slice::from_ref(&e)).unwrap();
        drop(s);
        let s = Store::open(&db).unwrap();
        assert!(!unrecorded_path(&db).exists());
        let rows = s.audit_list(&Default::default()).unwrap();
        let last = rows.last().unwrap();
        assert_eq!(last.action, "user.create");
        assert!(last.detail.as_deref().unwrap().contains("recorded late"));
        assert!(s.audit_verify().unwrap().ok());
    }

    #[test]
    fn a_full_database_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("state.db")).unwrap();
        s.conn
            .pragma_update(None, "max_page_count", 1)
            .unwrap_or(());
        let e = s
            .conn
            .execute_batch(
                "CREATE TABLE filler (x BLOB); INSERT INTO filler VALUES (zeroblob(100000));",
            )
            .map_err(anyhow::Error::from)
            .unwrap_err();
        use crate::store::Fault;
        assert_eq!(Fault::of(&e), Some(Fault::DiskFull), "{e:#}");
    }
}
