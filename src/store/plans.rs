//! Held plans: what the safety gate refused, kept until an admin approves
//! it (`sisync plan approve`) or a newer source read supersedes it.

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{Store, now};

/// One held (or formerly held) plan.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HeldPlan {
    pub id: i64,
    pub created_at: String,
    pub actor: String,
    pub run_id: Option<i64>,
    pub reason: String,
    pub source_fingerprint: String,
    pub state_version: String,
    /// `held`, `approved` or `superseded`.
    pub status: String,
    /// Per-kind counts (what `plan list` shows).
    pub summary: serde_json::Value,
    /// The full plan (JSON); None once approved or superseded.
    #[serde(skip)]
    pub plan: Option<String>,
    pub decided_at: Option<String>,
    pub decided_by: Option<String>,
    pub applied_run: Option<i64>,
    pub superseded_by_run: Option<i64>,
}

/// A plan to hold.
pub struct NewHeld<'a> {
    pub actor: &'a str,
    pub run_id: Option<i64>,
    pub reason: &'a str,
    pub source_fingerprint: &'a str,
    pub state_version: &'a str,
    pub summary: &'a serde_json::Value,
    pub plan: &'a str,
}

/// `summary` last: [`row`] reads it apart, after the columns it maps in order.
const COLUMNS: &str =
    "id, created_at, actor, run_id, reason, source_fingerprint, state_version, status,
    plan, decided_at, decided_by, applied_run, superseded_by_run, summary";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HeldPlan> {
    let summary: String = r.get(13)?;
    Ok(super::from_row!(r => HeldPlan {
        id, created_at, actor, run_id, reason, source_fingerprint, state_version, status,
        plan, decided_at, decided_by, applied_run, superseded_by_run;
        summary: serde_json::from_str(&summary).unwrap_or(serde_json::Value::Null),
    }))
}

impl Store {
    /// A digest of the roster state (records and memberships): a held plan
    /// may only be applied to the state it was planned against.
    pub fn state_version(&self) -> Result<String> {
        let mut h = Sha256::new();
        let mut stmt = self.conn.prepare(
            "SELECT kind, sourced_id, hash, COALESCE(platform_id, ''), active FROM records ORDER BY kind, sourced_id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            for i in 0..4 {
                h.update(r.get::<_, String>(i)?.as_bytes());
                h.update(b"\x1f");
            }
            h.update(if r.get::<_, bool>(4)? { b"1\n" } else { b"0\n" });
        }
        h.update(b"members\n");
        super::for_each_member_list(&self.conn, |group, members| {
            for person in members {
                h.update(group.as_bytes());
                h.update(b"\x1f");
                h.update(person.as_bytes());
                h.update(b"\n");
            }
        })?;
        Ok(hex::encode(h.finalize()))
    }

    /// Hold a plan; every older held plan is superseded. A plan identical
    /// to the one already held (same source, same state: a scheduled run
    /// reading the same export again) keeps its id. Returns the id.
    pub fn hold_plan(&mut self, p: &NewHeld<'_>) -> Result<i64> {
        let tx = self.conn.transaction()?;
        let same: Option<i64> = tx
            .query_row(
                "SELECT id FROM held_plans WHERE status = 'held' AND plan = ?1
                 AND source_fingerprint = ?2 AND state_version = ?3 ORDER BY id DESC LIMIT 1",
                params![p.plan, p.source_fingerprint, p.state_version],
                |r| r.get(0),
            )
            .optional()?;
        let id = match same {
            Some(id) => id,
            None => {
                tx.execute(
                    "INSERT INTO held_plans (created_at, actor, run_id, reason, source_fingerprint,
                        state_version, status, summary, plan)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'held', ?7, ?8)",
                    params![
                        now(),
                        p.actor,
                        p.run_id,
                        p.reason,
                        p.source_fingerprint,
                        p.state_version,
                        p.summary.to_string(),
                        p.plan
                    ],
                )?;
                tx.last_insert_rowid()
            }
        };
        tx.execute(
            "UPDATE held_plans SET status = 'superseded', plan = NULL, decided_at = ?2,
                superseded_by_run = ?3 WHERE status = 'held' AND id != ?1",
            params![id, now(), p.run_id],
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// A newer source read that the gate let through: held plans expire.
    pub fn supersede_held_plans(&self, run_id: i64) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE held_plans SET status = 'superseded', plan = NULL, decided_at = ?1,
                superseded_by_run = ?2 WHERE status = 'held'",
            params![now(), run_id],
        )?)
    }

    /// Every plan, newest first.
    pub fn held_plans(&self) -> Result<Vec<HeldPlan>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM held_plans ORDER BY id DESC"
        ))?;
        let rows = stmt.query_map([], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn held_plan(&self, id: i64) -> Result<Option<HeldPlan>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM held_plans WHERE id = ?1"),
                [id],
                row,
            )
            .optional()?)
    }

    /// The plan was applied by `run_id`; its body goes.
    pub fn mark_plan_approved(&self, id: i64, by: &str, run_id: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE held_plans SET status = 'approved', plan = NULL, decided_at = ?2,
                decided_by = ?3, applied_run = ?4 WHERE id = ?1",
            params![id, now(), by, run_id],
        )?;
        Ok(())
    }
}

/// The plans held now (id, since), on any connection (the daemon's status
/// page and `/readyz` read through their own).
pub fn held_now(conn: &Connection) -> Result<Vec<(i64, String)>> {
    let mut stmt = conn
        .prepare("SELECT id, created_at FROM held_plans WHERE status = 'held' ORDER BY id DESC")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
