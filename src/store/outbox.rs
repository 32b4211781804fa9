//! The results outbox: every result read from the platform is stored here
//! before anything is pushed, so a crash, an outage or a re-read neither
//! loses nor duplicates one.
//!
//! States: `pending` (to push), `pushed` (the SIS accepted the current
//! values), `failed` (refused by the SIS, or undeliverable for longer than
//! `results.give_up_after`: needs `sync results --retry-failed`), `parked`
//! (the candidate or their class is not known yet: tried again on every
//! results run, so after the next roster sync).

use anyhow::Result;
use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;

use super::audit::{self, AuditEntry};
use super::{Store, now};
use crate::model::{ExamResult, ResultValue};

/// A result with its idempotency key and what it was matched to.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub key: String,
    /// The key schema 4 gave the same result; a row stored under it is this
    /// result only when it names the same candidate.
    pub legacy_key: String,
    pub value_hash: String,
    pub result: ExamResult,
    /// The SIS sourcedId of the candidate, when known.
    pub person_id: Option<String>,
    pub class_id: Option<String>,
    /// Why it cannot be pushed yet (then it is parked).
    pub parked: Option<String>,
}

/// What storing a document's results did.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct IngestCounts {
    pub new: usize,
    /// Known key, new values (a re-marking): pushed again as an update.
    pub changed: usize,
    pub unchanged: usize,
    pub parked: usize,
}

impl IngestCounts {
    pub fn add(&mut self, o: IngestCounts) {
        self.new += o.new;
        self.changed += o.changed;
        self.unchanged += o.unchanged;
        self.parked += o.parked;
    }
}

/// One stored result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxRow {
    pub key: String,
    pub candidate: String,
    pub person_id: Option<String>,
    pub line_item: String,
    pub class_id: Option<String>,
    pub session_id: Option<String>,
    /// Serialised in line, as the columns it is stored in.
    #[serde(flatten)]
    pub value: ResultValue,
    pub taken_at: Option<String>,
    pub origin: String,
    pub state: String,
    pub reason: Option<String>,
    pub value_hash: String,
    pub pushed_hash: Option<String>,
    pub attempts: i64,
    pub first_seen: String,
    /// OKE details read from an exam platform (JSON of `model::OkeResult`).
    pub oke: Option<String>,
    /// The SIS registration (OKE association id) it goes to, once known.
    pub oke_association: Option<String>,
}

const ROW_COLUMNS: &str = "key, candidate, person_id, line_item, class_id, session_id, score, max_score, passed, grade, taken_at, origin, state, reason, value_hash, pushed_hash, attempts, first_seen, oke, oke_association";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        key: r.get(0)?,
        candidate: r.get(1)?,
        person_id: r.get(2)?,
        line_item: r.get(3)?,
        class_id: r.get(4)?,
        session_id: r.get(5)?,
        value: ResultValue {
            score: r.get(6)?,
            max_score: r.get(7)?,
            passed: r.get(8)?,
            grade: r.get(9)?,
        },
        taken_at: r.get(10)?,
        origin: r.get(11)?,
        state: r.get(12)?,
        reason: r.get(13)?,
        value_hash: r.get(14)?,
        pushed_hash: r.get(15)?,
        attempts: r.get(16)?,
        first_seen: r.get(17)?,
        oke: r.get(18)?,
        oke_association: r.get(19)?,
    })
}

/// Outbox counts for `status` and metrics.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct OutboxSummary {
    pub pending: i64,
    pub pushed: i64,
    pub failed: i64,
    pub parked: i64,
    /// `first_seen` of the oldest pending result.
    pub oldest_pending: Option<String>,
    /// Reasons of parked and failed results, with counts, most common first.
    pub reasons: Vec<(String, String, i64)>,
}

/// A new match for a parked result: key, person, class, reason it stays
/// parked (none: now pending).
pub type Rematch = (String, Option<String>, Option<String>, Option<String>);

/// Hands each result of a document to the callback it is given.
pub type Feed<'f> = &'f mut dyn FnMut(&mut dyn FnMut(Incoming) -> Result<()>) -> Result<()>;

/// How a push ended, to record.
#[derive(Debug, Clone)]
pub enum PushOutcome {
    /// The SIS holds the values with this hash.
    Pushed { value_hash: String },
    /// Try again later (not before `next_try_at`), or give up when the
    /// result is older than the cut-off.
    Retry { reason: String, next_try_at: String },
    /// Refused: needs a person.
    Failed { reason: String },
    /// Cannot be matched to where it goes yet (an OKE result sink found no
    /// registration for it): parked with the reason, tried again next run.
    Parked { reason: String },
}

impl Store {
    /// Whether this exact document (origin + content hash) was read before.
    pub fn document_seen(&self, origin: &str, sha256: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM result_documents WHERE origin = ?1 AND sha256 = ?2",
                params![origin, sha256],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// The SHA-256 a document had when it was moved to (or left in)
    /// `failed/` at `path`: the same bytes are not read again.
    pub fn failed_document(&self, path: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT sha256 FROM failed_documents WHERE path = ?1",
                [path],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Remember that the document at `path` with these bytes failed;
    /// `None`: forget it (it was read after all).
    pub fn set_failed_document(&self, path: &str, sha256: Option<&str>) -> Result<()> {
        match sha256 {
            Some(h) => self.conn.execute(
                "INSERT OR REPLACE INTO failed_documents (path, sha256, failed_at) VALUES (?1, ?2, ?3)",
                params![path, h, now()],
            )?,
            None => self
                .conn
                .execute("DELETE FROM failed_documents WHERE path = ?1", [path])?,
        };
        Ok(())
    }

    /// Whether any result is stored under a key of schema 4 or older
    /// (`key_scheme = 1`). Asked once per run: when none is, a result is
    /// looked up by its own key only, not by its legacy key as well.
    pub fn outbox_has_legacy_keys(&self) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM results WHERE key_scheme = 1)",
            [],
            |r| r.get(0),
        )?)
    }

    /// Classify results without storing anything (dry runs). `feed` hands
    /// each result to the callback it gets; `legacy`: see
    /// [`Store::outbox_has_legacy_keys`].
    pub fn outbox_preview(&self, legacy: bool, feed: Feed<'_>) -> Result<IngestCounts> {
        let mut c = IngestCounts::default();
        feed(&mut |it: Incoming| {
            match stored(&self.conn, &it, legacy)? {
                None => c.new += 1,
                Some((_, h)) if h == it.value_hash => c.unchanged += 1,
                Some(_) => c.changed += 1,
            }
            if it.parked.is_some() {
                c.parked += 1;
            }
            Ok(())
        })?;
        Ok(c)
    }

    /// Store one document's results as `feed` hands them over (streaming:
    /// nothing is collected), remember the document and audit the read, all
    /// in one transaction: when `feed` fails, nothing of the document lands.
    /// `legacy`: rows under legacy keys may exist
    /// ([`Store::outbox_has_legacy_keys`]).
    pub fn outbox_ingest(
        &mut self,
        document: (&str, &str),
        audit_entry: &AuditEntry,
        legacy: bool,
        feed: Feed<'_>,
    ) -> Result<IngestCounts> {
        let tx = self.conn.transaction()?;
        let mut counts = IngestCounts::default();
        let t = now();
        let mut n = 0i64;
        feed(&mut |it: Incoming| {
            n += 1;
            ingest_one(&tx, &it, &t, legacy, &mut counts)
        })?;
        tx.execute(
            "INSERT OR REPLACE INTO result_documents (origin, sha256, read_at, results) VALUES (?1, ?2, ?3, ?4)",
            params![document.0, document.1, t, n],
        )?;
        let mut entry = audit_entry.clone();
        entry.detail = Some(format!(
            "new={} changed={} unchanged={} parked={}",
            counts.new, counts.changed, counts.unchanged, counts.parked
        ));
        audit::append(&tx, &entry)?;
        tx.commit()?;
        Ok(counts)
    }

    /// Parked results, to match again.
    pub fn outbox_parked(&self) -> Result<Vec<OutboxRow>> {
        self.rows("state = 'parked'", params![])
    }

    /// Record new matches for parked results (pending when matched).
    pub fn outbox_rematch(&mut self, updates: &[Rematch]) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let mut n = 0;
        {
            let mut q = tx.prepare_cached(
                "UPDATE results SET person_id = ?2, class_id = ?3, reason = ?4,
                     state = CASE WHEN ?4 IS NULL THEN 'pending' ELSE 'parked' END,
                     updated_at = ?5
                 WHERE key = ?1 AND state = 'parked'",
            )?;
            let t = now();
            for (key, person, class, reason) in updates {
                q.execute(params![key, person, class, reason, t])?;
                if reason.is_none() {
                    n += 1;
                }
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// Failed results back to pending (`sync results --retry-failed`).
    pub fn outbox_retry_failed(&mut self) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE results SET state = 'pending', attempts = 0, next_try_at = NULL, first_seen = ?1, updated_at = ?1
             WHERE state = 'failed'",
            [now()],
        )?)
    }

    /// Up to `limit` pending results with keys after `after_key`, in key
    /// order; with `respect_backoff` only those whose next try is due.
    pub fn outbox_due(
        &self,
        respect_backoff: bool,
        after_key: &str,
        limit: usize,
    ) -> Result<Vec<OutboxRow>> {
        let backoff = if respect_backoff {
            "AND (next_try_at IS NULL OR next_try_at <= ?3)"
        } else {
            "AND ?3 IS NOT NULL"
        };
        self.rows(
            &format!("state = 'pending' AND key > ?1 {backoff} ORDER BY key LIMIT ?2"),
            params![after_key, limit as i64, now()],
        )
    }

    /// The keys of the pending results, in key order; with
    /// `respect_backoff` only those whose next try is due. One pass over
    /// the `state` index: a push in chunks then reads each row once by its
    /// key ([`Store::outbox_pending_rows`]), where [`Store::outbox_due`]
    /// per chunk would read and sort every pending row again each time.
    pub fn outbox_due_keys(&self, respect_backoff: bool) -> Result<Vec<String>> {
        let backoff = if respect_backoff {
            "AND (next_try_at IS NULL OR next_try_at <= ?1)"
        } else {
            "AND ?1 IS NOT NULL"
        };
        let mut q = self.conn.prepare(&format!(
            "SELECT key FROM results WHERE state = 'pending' {backoff} ORDER BY key"
        ))?;
        let keys = q
            .query_map([now()], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(keys)
    }

    /// The rows of `keys` that are still pending, in the order of `keys`.
    ///
    /// Keys in ascending order without repeats (a chunk of
    /// [`Store::outbox_due_keys`]) are read in one pass along the primary
    /// key from the first to the last, keeping the rows asked for: 5,000
    /// lookups by key took about 5 µs each, and the push waits for them
    /// between its chunks. Other keys are looked up one by one.
    pub fn outbox_pending_rows(&self, keys: &[String]) -> Result<Vec<OutboxRow>> {
        let mut rows = Vec::with_capacity(keys.len());
        let (Some(first), Some(last)) = (keys.first(), keys.last()) else {
            return Ok(rows);
        };
        let mut wanted = keys.iter().peekable();
        if keys.windows(2).all(|w| w[0] < w[1]) {
            // `+state`: the range of the primary key, not the `state` index
            // (which would read every pending row)
            let mut q = self.conn.prepare_cached(&format!(
                "SELECT {ROW_COLUMNS} FROM results
                 WHERE key BETWEEN ?1 AND ?2 AND +state = 'pending' ORDER BY key"
            ))?;
            // A range mostly of other rows (a few new results among many
            // pending for months) is left for the lookups below once it
            // has cost as many rows as were asked for.
            let mut others = 0usize;
            for r in q.query_map([first, last], row)? {
                let r = r?;
                // keys before this row are no longer pending (or gone)
                while wanted.next_if(|k| k.as_str() < r.key.as_str()).is_some() {}
                if wanted.next_if(|k| **k == r.key).is_some() {
                    rows.push(r);
                } else {
                    others += 1;
                    if others > keys.len() {
                        break;
                    }
                }
            }
        }
        let mut q = self.conn.prepare_cached(&format!(
            "SELECT {ROW_COLUMNS} FROM results WHERE key = ?1 AND state = 'pending'"
        ))?;
        for k in wanted {
            if let Some(r) = q.query_row([k], row).optional()? {
                rows.push(r);
            }
        }
        Ok(rows)
    }

    /// All results of one person (subject access).
    pub fn outbox_of_person(&self, person_id: &str) -> Result<Vec<OutboxRow>> {
        self.rows(
            "person_id = ?1 OR candidate = ?1 ORDER BY first_seen, key",
            params![person_id],
        )
    }

    fn rows(&self, filter: &str, p: impl rusqlite::Params) -> Result<Vec<OutboxRow>> {
        let mut q = self
            .conn
            .prepare(&format!("SELECT {ROW_COLUMNS} FROM results WHERE {filter}"))?;
        let rows = q.query_map(p, row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Record push outcomes and their audit entries in one transaction.
    /// A `Retry` for a result first seen before `give_up_before` becomes
    /// `failed`.
    pub fn outbox_record(
        &mut self,
        outcomes: &[(String, PushOutcome, AuditEntry)],
        give_up_before: &str,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        let mut chain = audit::Chain::open(&tx)?;
        let t = now();
        for (key, outcome, entry) in outcomes {
            match outcome {
                PushOutcome::Pushed { value_hash } => {
                    // a re-marking that arrived during the push stays pending
                    tx.prepare_cached(
                        "UPDATE results SET
                            state = CASE WHEN value_hash = ?2 THEN 'pushed' ELSE 'pending' END,
                            pushed_hash = ?2, pushed_at = ?3, updated_at = ?3,
                            attempts = attempts + 1, reason = NULL, next_try_at = NULL
                         WHERE key = ?1",
                    )?
                    .execute(params![key, value_hash, t])?;
                }
                PushOutcome::Retry {
                    reason,
                    next_try_at,
                } => {
                    tx.prepare_cached(
                        "UPDATE results SET
                            state = CASE WHEN first_seen < ?4 THEN 'failed' ELSE 'pending' END,
                            reason = CASE WHEN first_seen < ?4
                                THEN ?2 || ' (gave up: undeliverable for longer than results.give_up_after)'
                                ELSE ?2 END,
                            next_try_at = ?3, attempts = attempts + 1, updated_at = ?5
                         WHERE key = ?1",
                    )?
                    .execute(params![key, reason, next_try_at, give_up_before, t])?;
                }
                PushOutcome::Failed { reason } => {
                    tx.prepare_cached(
                        "UPDATE results SET state = 'failed', reason = ?2, attempts = attempts + 1, updated_at = ?3
                         WHERE key = ?1",
                    )?
                    .execute(params![key, reason, t])?;
                }
                PushOutcome::Parked { reason } => {
                    tx.prepare_cached(
                        "UPDATE results SET state = 'parked', reason = ?2, updated_at = ?3
                         WHERE key = ?1",
                    )?
                    .execute(params![key, reason, t])?;
                }
            }
            chain.append(&tx, entry)?;
        }
        chain.close(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// Remember the SIS registration (OKE association) a result was matched
    /// to, so a re-marking goes to the same one.
    pub fn outbox_set_oke_association(&mut self, key: &str, association: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE results SET oke_association = ?2 WHERE key = ?1",
            params![key, association],
        )?;
        Ok(())
    }

    /// Counts by state, the oldest pending result, and the reasons.
    pub fn outbox_summary(&self) -> Result<OutboxSummary> {
        let mut s = OutboxSummary::default();
        let mut q = self
            .conn
            .prepare("SELECT state, count(*), min(first_seen) FROM results GROUP BY state")?;
        let rows = q.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?;
        for r in rows {
            let (state, n, oldest) = r?;
            match state.as_str() {
                "pending" => {
                    s.pending = n;
                    s.oldest_pending = oldest;
                }
                "pushed" => s.pushed = n,
                "failed" => s.failed = n,
                "parked" => s.parked = n,
                _ => {}
            }
        }
        let mut q = self.conn.prepare(
            "SELECT state, coalesce(reason, ''), count(*) FROM results
             WHERE state IN ('parked', 'failed') GROUP BY state, reason ORDER BY count(*) DESC LIMIT 10",
        )?;
        s.reasons = q
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(s)
    }
}

/// The stored row (key, value hash) a result belongs to: its own key, else a
/// row stored before schema 5 under its legacy key that names the same
/// candidate. A row of another candidate is never this result, so a shared
/// session id cannot overwrite someone else's grade. Without `legacy` rows
/// in the table the second lookup is left out.
fn stored(
    conn: &rusqlite::Connection,
    it: &Incoming,
    legacy: bool,
) -> Result<Option<(String, String)>> {
    let own = conn
        .prepare_cached("SELECT key, value_hash FROM results WHERE key = ?1 AND candidate = ?2")?
        .query_row(params![it.key, it.result.candidate], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    if own.is_some() || !legacy || it.legacy_key == it.key {
        return Ok(own);
    }
    Ok(conn
        .prepare_cached(
            "SELECT key, value_hash FROM results WHERE key = ?1 AND key_scheme = 1 AND candidate = ?2",
        )?
        .query_row(params![it.legacy_key, it.result.candidate], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?)
}

fn ingest_one(
    tx: &Transaction<'_>,
    it: &Incoming,
    t: &str,
    legacy: bool,
    c: &mut IngestCounts,
) -> Result<()> {
    let r = &it.result;
    let state = if it.parked.is_some() {
        "parked"
    } else {
        "pending"
    };
    let known = stored(tx, it, legacy)?;
    let key = known.as_ref().map_or(&it.key, |(k, _)| k);
    let oke_json = match &r.oke {
        Some(o) => Some(serde_json::to_string(o)?),
        None => None,
    };
    let p = params![
        key,
        r.candidate,
        it.person_id,
        r.exam,
        it.class_id,
        r.session_id,
        r.value.score,
        r.value.max_score,
        r.value.passed,
        r.value.grade,
        r.taken_at,
        r.origin,
        state,
        it.parked,
        it.value_hash,
        t,
        r.session_source,
        oke_json,
        r.oke.as_ref().map(|o| o.association_id.as_str()),
    ];
    match known {
        None => {
            tx.prepare_cached(
                "INSERT INTO results (key, candidate, person_id, line_item, class_id, session_id, score, max_score,
                                      passed, grade, taken_at, origin, state, reason, value_hash, first_seen, updated_at,
                                      session_source, key_scheme, oke, oke_association)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16, ?17, 2, ?18, ?19)",
            )?
            .execute(p)?;
            c.new += 1;
        }
        Some((_, h)) if h == it.value_hash => {
            c.unchanged += 1;
            return Ok(());
        }
        Some(_) => {
            // a re-marking of the same candidate's result: new values,
            // pushed again (as an update when the SIS already has the old
            // ones)
            tx.prepare_cached(
                "UPDATE results SET person_id = ?3, line_item = ?4, class_id = ?5,
                     session_id = ?6, score = ?7, max_score = ?8, passed = ?9, grade = ?10, taken_at = ?11,
                     origin = ?12, state = ?13, reason = ?14, value_hash = ?15, attempts = 0,
                     next_try_at = NULL, first_seen = ?16, updated_at = ?16,
                     session_source = coalesce(?17, session_source),
                     oke = ?18, oke_association = coalesce(?19, oke_association)
                 WHERE key = ?1 AND candidate = ?2",
            )?
            .execute(p)?;
            c.changed += 1;
        }
    }
    if it.parked.is_some() {
        c.parked += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `privacy export` shows stored results as JSON: the shared
    /// `ResultValue` keeps its keys between `session_id` and `taken_at`.
    #[test]
    fn outbox_row_json_keeps_the_value_in_column_order() {
        let row = OutboxRow {
            key: "k".into(),
            candidate: "c".into(),
            person_id: None,
            line_item: "EX".into(),
            class_id: None,
            session_id: Some("s".into()),
            value: ResultValue {
                score: Some(7.5),
                max_score: Some(10.0),
                passed: Some(true),
                grade: Some("7,5".into()),
            },
            taken_at: None,
            origin: "f.xml:1".into(),
            state: "pending".into(),
            reason: None,
            value_hash: "h".into(),
            pushed_hash: None,
            attempts: 0,
            first_seen: "2026-06-01T00:00:00Z".into(),
            oke: None,
            oke_association: None,
        };
        let json = serde_json::to_string(&row).unwrap();
        assert!(
            json.contains(r#""session_id":"s","score":7.5,"max_score":10.0,"passed":true,"grade":"7,5","taken_at":null,"origin""#),
            "{json}"
        );
    }

    /// Sorted keys are read in one pass along the key range, unsorted ones
    /// one by one: both give the pending rows asked for, in the order
    /// asked, and leave out rows not asked for or no longer pending.
    #[test]
    fn pending_rows_by_range_and_by_key_agree() {
        let store = Store::in_memory().unwrap();
        for (key, state) in [
            ("k1", "pending"),
            ("k2", "pushed"),
            ("k3", "pending"),
            ("k4", "pending"),
            ("k5", "pending"),
        ] {
            store
                .conn
                .execute(
                    "INSERT INTO results (key, candidate, line_item, origin, state, value_hash, first_seen, updated_at)
                     VALUES (?1, 'c', 'EX', 'f.xml:1', ?2, 'h', '2026-06-01T00:00:00Z', '2026-06-01T00:00:00Z')",
                    params![key, state],
                )
                .unwrap();
        }
        let keys = |r: Vec<OutboxRow>| r.into_iter().map(|r| r.key).collect::<Vec<_>>();
        let ask = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // sorted: k2 is pushed, k4 not asked for, k9 does not exist
        let sorted = ask(&["k0", "k1", "k2", "k3", "k5", "k9"]);
        let got = keys(store.outbox_pending_rows(&sorted).unwrap());
        assert_eq!(got, ["k1", "k3", "k5"]);
        // a range mostly of rows not asked for: the scan gives up and the
        // rest are looked up one by one, with the same answer
        for i in 0..20 {
            store
                .conn
                .execute(
                    "INSERT INTO results (key, candidate, line_item, origin, state, value_hash, first_seen, updated_at)
                     VALUES (?1, 'c', 'EX', 'f.xml:1', 'pending', 'h', '2026-06-01T00:00:00Z', '2026-06-01T00:00:00Z')",
                    params![format!("k10{i:02}")],
                )
                .unwrap();
        }
        let sparse = ask(&["k1", "k1000", "k3", "k5"]);
        let got = keys(store.outbox_pending_rows(&sparse).unwrap());
        assert_eq!(got, ["k1", "k1000", "k3", "k5"]);
        let unsorted = ask(&["k5", "k2", "k1", "k3"]);
        let got = keys(store.outbox_pending_rows(&unsorted).unwrap());
        assert_eq!(got, ["k5", "k1", "k3"]);
        assert!(store.outbox_pending_rows(&[]).unwrap().is_empty());
    }
}
