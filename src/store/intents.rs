//! Write intents: the group commit's promise that no write leaves sisync
//! without an audit entry.
//!
//! Platform writes commit in batches (see `sync::apply`), so a crash can
//! come between a write the platform took and the commit of its outcome.
//! Before a batch of records is sent, one transaction records an intent
//! row per record (what is about to be sent, where, which fields; ids and
//! field names only), committed with `synchronous = FULL` so it survives a
//! power cut. The commit of each outcome deletes its intent in the same
//! transaction. Intents left over belong to a run that ended without
//! recording them: when the next run starts (under the run lock, after
//! the old run was marked interrupted) they become audit entries with
//! outcome `unknown` saying the write may have happened. A record written
//! then is found again by its externalId on the next run, never created
//! twice.
//!
//! The table is created with `CREATE TABLE IF NOT EXISTS` rather than a
//! numbered migration: it holds nothing between runs, so older sisync
//! versions reading the file are not affected.

use anyhow::Result;
use rusqlite::params;

use super::{AuditAction, AuditEntry, AuditKind, AuditOutcome, Direction, Store, audit, now};

/// Migration 9 (see `MIGRATIONS` in the store).
pub(super) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS write_intents (
    run_id     INTEGER,
    kind       TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    actor      TEXT NOT NULL,
    endpoint   TEXT NOT NULL,
    action     TEXT NOT NULL,
    fields     TEXT NOT NULL,
    at         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS write_intents_key ON write_intents (run_id, kind, record_id);";

/// What the detail of a leftover intent's audit entry says.
pub const UNRECORDED: &str = "sisync stopped before the platform's answer was recorded: the write may have happened; the next run looks the record up by externalId";

/// One write about to be sent.
#[derive(Debug, Clone)]
pub struct Intent {
    pub run_id: Option<i64>,
    pub actor: String,
    pub endpoint: String,
    pub action: AuditAction,
    pub kind: AuditKind,
    pub record_id: String,
    pub fields: String,
}

impl Store {
    /// Record writes about to be sent, durably (fsync) before any of them
    /// leaves.
    pub fn record_intents(&mut self, intents: &[Intent]) -> Result<()> {
        if intents.is_empty() {
            return Ok(());
        }
        // this commit must reach the disk before the writes follow it (the
        // level cannot change inside a transaction)
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        let recorded = self.insert_intents(intents);
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        recorded
    }

    fn insert_intents(&mut self, intents: &[Intent]) -> Result<()> {
        let t = now();
        let tx = self.conn.transaction()?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO write_intents (run_id, kind, record_id, actor, endpoint, action, fields, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for i in intents {
                ins.execute(params![
                    i.run_id,
                    i.kind,
                    i.record_id,
                    i.actor,
                    i.endpoint,
                    i.action,
                    i.fields,
                    t
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Forget intents of writes that were never started (a run that
    /// stopped early).
    pub fn drop_intents(&mut self, run_id: Option<i64>, keys: &[(&str, &str)]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut del = tx.prepare_cached(
                "DELETE FROM write_intents WHERE run_id IS ?1 AND kind = ?2 AND record_id = ?3",
            )?;
            for (kind, id) in keys {
                del.execute(params![run_id, kind, id])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Intents not yet settled (tests, status).
    pub fn open_intents(&self) -> Result<usize> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM write_intents", [], |r| {
                r.get::<_, i64>(0)
            })? as usize)
    }

    /// Turn the intents of runs no longer running into audit entries
    /// (outcome `unknown`). Call only under the run lock, after stale runs
    /// were closed. Returns how many.
    pub(super) fn settle_leftover_intents(&self) -> Result<usize> {
        let tx = self.conn.unchecked_transaction()?;
        let rows: Vec<AuditEntry> = {
            let mut q = tx.prepare(
                "SELECT actor, run_id, endpoint, action, kind, record_id, fields FROM write_intents
                 WHERE run_id IS NULL OR run_id NOT IN (SELECT id FROM runs WHERE outcome = 'running')
                 ORDER BY rowid",
            )?;
            q.query_map([], |r| {
                Ok(super::from_row!(r => AuditEntry {
                    actor, run_id, endpoint, action, record_kind, record_id, fields;
                    direction: Direction::Out,
                    payload_sha256: None,
                    outcome: AuditOutcome::Unknown,
                    detail: Some(UNRECORDED.into()),
                }))
            })?
            .collect::<rusqlite::Result<_>>()?
        };
        if rows.is_empty() {
            return Ok(0);
        }
        for e in &rows {
            audit::append(&tx, e)?;
        }
        tx.execute(
            "DELETE FROM write_intents
             WHERE run_id IS NULL OR run_id NOT IN (SELECT id FROM runs WHERE outcome = 'running')",
            [],
        )?;
        tx.commit()?;
        tracing::warn!(
            entries = rows.len(),
            "writes of an earlier run that ended before recording their outcome were added to the audit log as 'unknown'"
        );
        Ok(rows.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{RecordKind, RecordWrite};

    fn intent(run: i64, id: &str) -> Intent {
        Intent {
            run_id: Some(run),
            actor: "user:test".into(),
            endpoint: "http://127.0.0.1/scim/v2".into(),
            action: AuditAction::Record(RecordKind::User, RecordWrite::Create),
            kind: AuditKind::User,
            record_id: id.into(),
            fields: "userName,name".into(),
        }
    }

    #[test]
    fn leftover_intents_of_a_dead_run_become_unknown_audit_entries() {
        let (_dir, db, mut s) = crate::test_util::temp_store("state.db");
        let run = s.begin_run("roster", "user:test", true).unwrap();
        s.record_intents(&[
            intent(run, "stu-1"),
            intent(run, "stu-2"),
            intent(run, "stu-3"),
        ])
        .unwrap();
        // stu-1 was answered and recorded; stu-3 was never started
        let mut e = AuditEntry::test_entry("stu-1");
        e.run_id = Some(run);
        s.commit_written(&[(None, e)]).unwrap();
        s.drop_intents(Some(run), &[("user", "stu-3")]).unwrap();
        assert_eq!(s.open_intents().unwrap(), 1);
        // while the run is running, nobody else turns its intents into entries
        assert_eq!(s.settle_leftover_intents().unwrap(), 0);
        drop(s); // the process dies

        let s = Store::open(&db).unwrap();
        let before = s.audit_list(&Default::default()).unwrap().len();
        s.begin_run("roster", "user:test", true).unwrap();
        assert_eq!(s.open_intents().unwrap(), 0);
        let rows = s.audit_list(&Default::default()).unwrap();
        assert_eq!(rows.len(), before + 1);
        let last = rows.last().unwrap();
        assert_eq!(last.record_id.as_deref(), Some("stu-2"));
        assert_eq!(last.outcome, "unknown");
        assert_eq!(last.action, "user.create");
        assert_eq!(last.run_id, Some(run));
        assert!(
            last.detail
                .as_deref()
                .unwrap()
                .contains("may have happened")
        );
        assert!(s.audit_verify().unwrap().ok());
    }
}
