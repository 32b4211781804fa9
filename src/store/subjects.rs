//! What the store does for data subjects and retention: holds
//! (restriction, erasure tombstones), the pseudonym mapping, forgetting a
//! person, the retention purge, and the subject access export.
//!
//! Forgetting never deletes audit entries (that would break the chain): it
//! blanks their `record_id`; the chain covers `record_id_hash`, so
//! `audit verify` stays green.

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;

use super::audit::{self, AuditAction, AuditEntry, AuditKind, AuditOutcome, AuditRow, Direction};
use super::holds::{SubjectKey, tombstone_in};
use super::outbox::OutboxRow;
use super::{Store, now};

/// (class, score, passed) of one result.
pub type ExamScore = (Option<String>, f64, Option<bool>);

/// What forgetting one person removed.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Forgotten {
    pub records: usize,
    pub memberships: usize,
    pub results: usize,
    pub audit_entries_anonymised: usize,
}

/// What a retention purge did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PurgeReport {
    pub persons: usize,
    pub removed: Forgotten,
    pub old_results: usize,
    /// Parked or pending results first seen longer ago than the retention
    /// period: they never reached the SIS and now never will.
    pub expired_unsent: usize,
    pub old_audit_entries_anonymised: usize,
}

/// Everything the state holds about one person.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SubjectData {
    pub sis_id: String,
    /// The id the platform knows (the pseudonym when ids are pseudonymised).
    pub platform_external_id: String,
    pub platform_id: Option<String>,
    pub active: Option<bool>,
    pub updated_at: Option<String>,
    pub deactivated_at: Option<String>,
    /// Field names with a stored hash (values are never stored).
    pub fields_hashed: Vec<String>,
    pub classes: Vec<String>,
    /// `restricted` or `erased`, since when, by whom.
    pub hold: Option<(String, String, String)>,
    pub results: Vec<OutboxRow>,
    pub audit: Vec<AuditRow>,
}

impl Store {
    /// Remember pseudonym → SIS id pairs (results need the way back).
    pub fn save_pseudonyms(&mut self, pairs: &[(String, String)]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut q = tx.prepare_cached(
                "INSERT INTO pseudonyms (pseudonym, sourced_id) VALUES (?1, ?2)
                 ON CONFLICT (pseudonym) DO UPDATE SET sourced_id = excluded.sourced_id",
            )?;
            for (p, s) in pairs {
                q.execute(params![p, s])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The platform id (pseudonym or ECK iD) recorded for a SIS id.
    pub fn mapped_id(&self, sis_id: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT pseudonym FROM pseudonyms WHERE sourced_id = ?1",
                [sis_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// pseudonym → SIS id.
    pub fn pseudonym_map(&self) -> Result<HashMap<String, String>> {
        let mut q = self
            .conn
            .prepare("SELECT pseudonym, sourced_id FROM pseudonyms")?;
        let rows = q
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<HashMap<String, String>>>()?;
        Ok(rows)
    }

    /// Forget a person: state, class membership, pseudonym mapping and
    /// outbox results go; audit entries about them lose the id. `state_id`
    /// is the id the state keys them by (the pseudonym, or the SIS id).
    /// `entry` (the erasure or purge itself) is appended first and
    /// anonymised with the rest. With `tombstone`, a hold of kind `erased`
    /// keeps the next roster sync from creating them again.
    pub fn forget(
        &mut self,
        sis_id: &str,
        state_id: &str,
        entry: Option<&AuditEntry>,
        tombstone: Option<&str>,
    ) -> Result<Forgotten> {
        let key = match tombstone {
            Some(_) => self.subject_key(true)?,
            None => None,
        };
        let tx = self.conn.transaction()?;
        let f = forget_in(&tx, sis_id, state_id, entry, tombstone.zip(key.as_ref()))?;
        tx.commit()?;
        self.checkpoint_wal()?;
        Ok(f)
    }

    /// Purge persons absent from the SIS (deactivated) for longer than
    /// `retention_days`, pushed or failed results older than that, parked
    /// or pending results first seen longer ago than that, and the
    /// subject ids of audit entries older than `audit_retention_days`. One
    /// transaction; the purge itself is audited.
    pub fn purge(
        &mut self,
        retention_days: u32,
        audit_retention_days: u32,
        actor: &str,
    ) -> Result<PurgeReport> {
        let cutoff = |days: u32| {
            (chrono::Utc::now() - chrono::Duration::days(days as i64))
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string()
        };
        let (state_cut, audit_cut) = (cutoff(retention_days), cutoff(audit_retention_days));
        let pseudo = self.pseudonym_map()?;
        let tx = self.conn.transaction()?;
        let gone: Vec<String> = {
            let mut q = tx.prepare(
                "SELECT sourced_id FROM records WHERE kind = 'user' AND active = 0 AND deactivated_at < ?1",
            )?;
            q.query_map([&state_cut], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?
        };
        let mut report = PurgeReport {
            persons: gone.len(),
            ..Default::default()
        };
        for state_id in &gone {
            let sis = pseudo
                .get(state_id)
                .cloned()
                .unwrap_or_else(|| state_id.clone());
            let f = forget_in(&tx, &sis, state_id, None, None)?;
            report.removed.records += f.records;
            report.removed.memberships += f.memberships;
            report.removed.results += f.results;
            report.removed.audit_entries_anonymised += f.audit_entries_anonymised;
        }
        // retired classes past the period
        tx.execute(
            "DELETE FROM records WHERE kind = 'group' AND active = 0 AND deactivated_at < ?1",
            [&state_cut],
        )?;
        report.old_results = tx.execute(
            "DELETE FROM results WHERE state IN ('pushed', 'failed') AND updated_at < ?1",
            [&state_cut],
        )?;
        report.expired_unsent = tx.execute(
            "DELETE FROM results WHERE state IN ('parked', 'pending') AND first_seen < ?1",
            [&state_cut],
        )?;
        report.old_audit_entries_anonymised = tx.execute(
            "UPDATE audit SET record_id = NULL, id_nonce = NULL
             WHERE at < ?1 AND record_id IS NOT NULL AND record_id <> ''",
            [&audit_cut],
        )?;
        // entries without a subject lose their (meaningless) nonce too
        tx.execute(
            "UPDATE audit SET id_nonce = NULL WHERE at < ?1 AND id_nonce IS NOT NULL",
            [&audit_cut],
        )?;
        audit::append(
            &tx,
            &AuditEntry {
                actor: actor.to_string(),
                run_id: None,
                direction: Direction::Local,
                endpoint: "state".into(),
                action: AuditAction::PrivacyPurge,
                record_kind: AuditKind::State,
                record_id: String::new(),
                fields: String::new(),
                payload_sha256: None,
                outcome: AuditOutcome::Ok,
                detail: Some(format!(
                    "persons={} results={} unsent_results={} audit_anonymised={} retention_days={retention_days} audit_retention_days={audit_retention_days}",
                    report.persons,
                    report.removed.results + report.old_results,
                    report.expired_unsent,
                    report.removed.audit_entries_anonymised + report.old_audit_entries_anonymised
                )),
            },
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_purge', ?1)",
            [now()],
        )?;
        tx.commit()?;
        self.checkpoint_wal()?;
        Ok(report)
    }

    /// When the last purge ran.
    pub fn last_purge(&self) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'last_purge'", [], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Everything about one person (subject access / portability).
    pub fn subject_data(&self, sis_id: &str, state_id: &str) -> Result<SubjectData> {
        let mut d = SubjectData {
            sis_id: sis_id.to_string(),
            platform_external_id: state_id.to_string(),
            hold: self.hold_of(sis_id)?,
            ..Default::default()
        };
        if let Some((platform_id, active, updated, deact, fh)) = self
            .conn
            .query_row(
                "SELECT platform_id, active, updated_at, deactivated_at, field_hashes FROM records
                 WHERE kind = 'user' AND sourced_id = ?1",
                [state_id],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, bool>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                },
            )
            .optional()?
        {
            d.platform_id = platform_id;
            d.active = Some(active);
            d.updated_at = Some(updated);
            d.deactivated_at = deact;
            let mut names: Vec<String> = serde_json::from_str::<HashMap<String, String>>(&fh)
                .unwrap_or_default()
                .into_keys()
                .collect();
            names.sort();
            d.fields_hashed = names;
        }
        d.classes = super::groups_with_member(&self.conn, state_id)?;
        let mut results = self.outbox_of_person(sis_id)?;
        if state_id != sis_id {
            let seen: HashSet<String> = results.iter().map(|r| r.key.clone()).collect();
            results.extend(
                self.outbox_of_person(state_id)?
                    .into_iter()
                    .filter(|r| !seen.contains(&r.key)),
            );
        }
        d.results = results;
        let mut audit = audit::list(
            &self.conn,
            &audit::AuditFilter {
                person: Some(sis_id.to_string()),
                ..Default::default()
            },
        )?;
        if state_id != sis_id {
            audit.extend(audit::list(
                &self.conn,
                &audit::AuditFilter {
                    person: Some(state_id.to_string()),
                    ..Default::default()
                },
            )?);
            audit.sort_by_key(|a| a.seq);
        }
        d.audit = audit;
        Ok(d)
    }
}

impl Store {
    /// (class, score, passed) of every result of an exam that has a score.
    pub fn exam_scores(&self, exam: &str) -> Result<Vec<ExamScore>> {
        let mut q = self.conn.prepare(
            "SELECT class_id, score, passed FROM results WHERE line_item = ?1 AND score IS NOT NULL",
        )?;
        let rows = q
            .query_map([exam], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

fn forget_in(
    tx: &Transaction<'_>,
    sis_id: &str,
    state_id: &str,
    entry: Option<&AuditEntry>,
    tombstone: Option<(&str, &SubjectKey)>,
) -> Result<Forgotten> {
    let mut f = Forgotten::default();
    if let Some(e) = entry {
        audit::append(tx, e)?;
    }
    f.records = tx.execute(
        "DELETE FROM records WHERE kind = 'user' AND sourced_id = ?1",
        [state_id],
    )?;
    f.memberships = super::remove_member(tx, state_id)?;
    f.results = tx.execute(
        "DELETE FROM results WHERE person_id = ?1 OR candidate = ?1 OR candidate = ?2",
        params![sis_id, state_id],
    )?;
    tx.execute("DELETE FROM pseudonyms WHERE sourced_id = ?1", [sis_id])?;
    // a held plan naming them goes (it could no longer be approved anyway:
    // the state it was planned against changed)
    tx.execute(
        "UPDATE held_plans SET status = 'superseded', plan = NULL, decided_at = ?3
         WHERE plan IS NOT NULL AND (instr(plan, ?1) > 0 OR instr(plan, ?2) > 0)",
        params![
            format!("\"{sis_id}\""),
            format!("\"{state_id}\""),
            super::now()
        ],
    )?;
    // the id and the nonce that salts its hash go together: what is left
    // cannot be linked to the person
    f.audit_entries_anonymised = tx.execute(
        "UPDATE audit SET record_id = NULL, id_nonce = NULL WHERE record_id IN (?1, ?2)",
        params![sis_id, state_id],
    )?;
    if let Some((actor, key)) = tombstone {
        tombstone_in(tx, key, sis_id, actor)?;
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result_row(s: &Store, key: &str, state: &str, first_seen: &str) {
        s.conn
            .execute(
                "INSERT INTO results (key, candidate, person_id, line_item, origin, state, value_hash,
                                      first_seen, updated_at)
                 VALUES (?1, 'stu-1', 'stu-1', 'EX-1', 'test', ?2, 'h', ?3, ?3)",
                params![key, state, first_seen],
            )
            .unwrap();
    }

    #[test]
    fn purge_expires_results_that_waited_past_the_retention_period() {
        let mut s = Store::in_memory().unwrap();
        let old = "2020-01-01T00:00:00.000Z";
        result_row(&s, "parked-old", "parked", old);
        result_row(&s, "pending-old", "pending", old);
        result_row(&s, "pushed-old", "pushed", old);
        result_row(&s, "parked-new", "parked", &now());
        result_row(&s, "pending-new", "pending", &now());
        let r = s.purge(30, 365, "user:t").unwrap();
        assert_eq!((r.expired_unsent, r.old_results), (2, 1));
        let left: Vec<String> = s
            .conn
            .prepare("SELECT key FROM results ORDER BY key")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(left, ["parked-new", "pending-new"]);
        let purge = s
            .audit_list(&audit::AuditFilter {
                kind: Some("privacy.purge".into()),
                ..Default::default()
            })
            .unwrap();
        assert!(
            purge[0]
                .detail
                .as_deref()
                .unwrap()
                .contains("unsent_results=2"),
            "{purge:?}"
        );
    }
}
