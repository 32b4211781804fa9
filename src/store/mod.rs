//! The local SQLite state: schema migrations, runs, per-record hashes and
//! platform id mappings. The audit log lives in [`audit`].
//!
//! Every change to a record's state is committed in the same transaction
//! as its audit entry ([`Store::commit`]), after the remote call succeeded.

/// A struct from a SQLite row `r`: the listed fields from the columns in
/// order (0, 1, …, as the query selects them), then the fields after `;`
/// as given. `?` passes a column's error on.
macro_rules! from_row {
    ($r:ident => $($t:ident)::+ { $($f:ident),* $(,)? $(; $($g:ident: $e:expr),* $(,)?)? }) => {
        $crate::store::from_row!(@ $r, [$($t)::+], 0usize, [$($($g: $e,)*)?] $($f)*)
    };
    (@ $r:ident, $t:tt, $i:expr, [$($done:tt)*] $f:ident $($rest:ident)*) => {
        $crate::store::from_row!(@ $r, $t, $i + 1, [$($done)* $f: $r.get($i)?,] $($rest)*)
    };
    (@ $r:ident, [$($t:ident)::+], $i:expr, [$($done:tt)*]) => {
        $($t)::+ { $($done)* }
    };
}
pub(crate) use from_row;

pub mod anchor;
pub mod audit;
mod forget;
pub mod glance;
pub mod holds;
mod intents;
pub mod outbox;
pub(crate) mod owner;
pub mod plans;
mod reserve;
pub mod subjects;

pub use crate::model::field_hashes::{FieldHash, FieldHashes, RecordHash};
pub use intents::Intent;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::model::{Id, SharedIds, vocabulary};
use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

pub use audit::{
    AuditAction, AuditEntry, AuditFilter, AuditKind, AuditOutcome, AuditRow, Direction,
    RecordWrite, VerifyReport,
};

/// Pages the WAL may grow to before it is checkpointed (32 MiB at
/// SQLite's 4 KiB pages; see `Store::init`).
const WAL_CHECKPOINT_PAGES: i64 = 8192;

/// Schema migrations, applied in order; `PRAGMA user_version` holds how
/// many have run. Never edit a shipped migration: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: runs, record state, audit log with hash chain.
    r#"
    CREATE TABLE runs (
        id          INTEGER PRIMARY KEY,
        kind        TEXT NOT NULL,
        actor       TEXT NOT NULL,
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        outcome     TEXT NOT NULL DEFAULT 'running',
        full        INTEGER NOT NULL DEFAULT 0,
        summary     TEXT,
        error       TEXT
    );
    CREATE TABLE records (
        kind           TEXT NOT NULL,
        sourced_id     TEXT NOT NULL,
        hash           TEXT NOT NULL,
        field_hashes   TEXT NOT NULL,
        platform_id    TEXT,
        active         INTEGER NOT NULL,
        updated_at     TEXT NOT NULL,
        deactivated_at TEXT,
        PRIMARY KEY (kind, sourced_id)
    ) WITHOUT ROWID;
    CREATE TABLE orgs (
        sourced_id TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        identifier TEXT,
        kind       TEXT NOT NULL,
        parent     TEXT
    );
    CREATE TABLE group_members (
        group_id  TEXT NOT NULL,
        person_id TEXT NOT NULL,
        PRIMARY KEY (group_id, person_id)
    ) WITHOUT ROWID;
    CREATE INDEX group_members_person ON group_members (person_id);
    CREATE TABLE audit (
        seq            INTEGER PRIMARY KEY,
        at             TEXT NOT NULL,
        actor          TEXT NOT NULL,
        run_id         INTEGER,
        direction      TEXT NOT NULL,
        endpoint       TEXT NOT NULL,
        action         TEXT NOT NULL,
        record_kind    TEXT NOT NULL,
        record_id      TEXT,
        record_id_hash TEXT NOT NULL,
        fields         TEXT NOT NULL,
        payload_sha256 TEXT,
        outcome        TEXT NOT NULL,
        detail         TEXT,
        prev_hash      TEXT NOT NULL,
        entry_hash     TEXT NOT NULL
    );
    CREATE INDEX audit_at ON audit (at);
    CREATE INDEX audit_record ON audit (record_id);
    CREATE INDEX audit_endpoint_at ON audit (endpoint, at);
    CREATE TABLE audit_head (
        id              INTEGER PRIMARY KEY CHECK (id = 1),
        first_seq       INTEGER NOT NULL,
        first_prev_hash TEXT NOT NULL,
        last_seq        INTEGER NOT NULL,
        last_hash       TEXT NOT NULL
    );
    INSERT INTO audit_head VALUES (1, 1, '0000000000000000000000000000000000000000000000000000000000000000', 0,
                                   '0000000000000000000000000000000000000000000000000000000000000000');
    "#,
    // 2: the results outbox. A result is stored here before anything is
    // pushed; `key` is its idempotency key (platform session id + test
    // identifier, or a hash of the normalised result when the platform
    // gives no session id). Score values are kept here (they must be
    // pushed) but never in the audit log.
    r#"
    CREATE TABLE results (
        key          TEXT PRIMARY KEY,
        candidate    TEXT NOT NULL,
        person_id    TEXT,
        line_item    TEXT NOT NULL,
        class_id     TEXT,
        session_id   TEXT,
        score        REAL,
        max_score    REAL,
        passed       INTEGER,
        grade        TEXT,
        taken_at     TEXT,
        origin       TEXT NOT NULL,
        state        TEXT NOT NULL CHECK (state IN ('pending', 'pushed', 'failed', 'parked')),
        reason       TEXT,
        value_hash   TEXT NOT NULL,
        pushed_hash  TEXT,
        attempts     INTEGER NOT NULL DEFAULT 0,
        first_seen   TEXT NOT NULL,
        updated_at   TEXT NOT NULL,
        next_try_at  TEXT,
        pushed_at    TEXT
    ) WITHOUT ROWID;
    CREATE INDEX results_state ON results (state, first_seen);
    CREATE INDEX results_person ON results (person_id);
    CREATE INDEX results_line_item ON results (line_item);
    -- result documents already read (file or URL + SHA-256 of its bytes),
    -- so an unchanged document is not parsed again
    CREATE TABLE result_documents (
        origin  TEXT NOT NULL,
        sha256  TEXT NOT NULL,
        read_at TEXT NOT NULL,
        results INTEGER NOT NULL,
        PRIMARY KEY (origin, sha256)
    ) WITHOUT ROWID;
    "#,
    // 3: privacy. Subject holds (restricted or erased persons, keyed by the
    // audit log's hash of their SIS id, never the id), the pseudonym
    // mapping, and small key/value state (last purge).
    r#"
    CREATE TABLE subject_holds (
        id_hash TEXT PRIMARY KEY,
        kind    TEXT NOT NULL CHECK (kind IN ('restricted', 'erased')),
        since   TEXT NOT NULL,
        actor   TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE pseudonyms (
        pseudonym  TEXT PRIMARY KEY,
        sourced_id TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX pseudonyms_sourced ON pseudonyms (sourced_id);
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 4: unlinkable subject hashes. Audit entries get a random nonce that
    // salts `record_id_hash` (blanked with `record_id` by a purge); holds
    // made from now on are keyed with the installation's subject key (a
    // file outside the database) instead of an unsalted hash; `keyed`
    // tells them apart from holds made under schema 3.
    r#"
    ALTER TABLE audit ADD COLUMN id_nonce TEXT;
    ALTER TABLE subject_holds ADD COLUMN keyed INTEGER NOT NULL DEFAULT 0;
    "#,
    // 5: result keys name the candidate and the session's issuer
    // (`session_source`). Rows stored before keep their key (`key_scheme`
    // 1: the SIS record sourcedId is derived from it) and are found again
    // by it for the same candidate only. Documents moved to `failed/` are
    // remembered by content, so one that changes there is read again.
    r#"
    ALTER TABLE results ADD COLUMN key_scheme INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE results ADD COLUMN session_source TEXT;
    CREATE TABLE failed_documents (
        path      TEXT PRIMARY KEY,
        sha256    TEXT NOT NULL,
        failed_at TEXT NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 6: safety. The accommodations last
    // pushed per user (JSON; a hash cannot tell a reduction from a raise),
    // kept while the user is inactive and deleted with the record.
    // Held plans: a plan the safety gate refused, kept for review and
    // `sisync plan approve`. `plan` (the full plan as JSON, never a BSN) is
    // blanked once the plan is approved or superseded; `summary` stays.
    r#"
    ALTER TABLE records ADD COLUMN accommodations TEXT;
    CREATE TABLE held_plans (
        id                 INTEGER PRIMARY KEY,
        created_at         TEXT NOT NULL,
        actor              TEXT NOT NULL,
        run_id             INTEGER,
        reason             TEXT NOT NULL,
        source_fingerprint TEXT NOT NULL,
        state_version      TEXT NOT NULL,
        status             TEXT NOT NULL CHECK (status IN ('held', 'approved', 'superseded')),
        summary            TEXT NOT NULL,
        plan               TEXT,
        decided_at         TEXT,
        decided_by         TEXT,
        applied_run        INTEGER,
        superseded_by_run  INTEGER
    );
    CREATE INDEX held_plans_status ON held_plans (status);
    "#,
    // 7: OKE results. `oke` holds the OKE details of a result read from an
    // exam platform (JSON of `model::OkeResult`); `oke_association` the SIS
    // registration (association id) a result is delivered to, kept so a
    // re-marking goes to the same one.
    r#"
    ALTER TABLE results ADD COLUMN oke TEXT;
    ALTER TABLE results ADD COLUMN oke_association TEXT;
    "#,
    // 8: exam planning (OKE). A registration record names the exam sitting
    // it belongs to, so that a bulk read withdraws only registrations of
    // sittings it covered (a sitting outside the planning window keeps its
    // registrations).
    r#"
    ALTER TABLE records ADD COLUMN parent TEXT;
    "#,
    // 9: intents of platform writes about to be sent (group commit): empty
    // between runs; a row left over becomes an audit entry `unknown`.
    intents::SCHEMA,
    // 10: group members as one row per group (the sorted member ids as a
    // JSON array) instead of one row per membership: a school's 400,000
    // memberships were 800,000 B-tree inserts on a first sync and as many
    // rows read on every run. Lookups by person scan the lists; they serve
    // only privacy commands.
    r#"
    CREATE TABLE group_member_lists (
        group_id TEXT PRIMARY KEY,
        members  TEXT NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO group_member_lists (group_id, members)
        SELECT group_id, json_group_array(person_id)
        FROM (SELECT group_id, person_id FROM group_members ORDER BY group_id, person_id)
        GROUP BY group_id;
    DROP TABLE group_members;
    "#,
    // 11: the member lists as an ordinary (rowid) table. A list is one to
    // a few KiB; a WITHOUT ROWID table keeps only about 1 KiB of a row in
    // its B-tree and the rest in overflow pages of their own, so two
    // thirds of the table's pages were empty (36 of 56 MB at 200,000
    // students), read and written on every run.
    r#"
    CREATE TABLE group_member_lists_11 (
        group_id TEXT PRIMARY KEY,
        members  TEXT NOT NULL
    );
    INSERT INTO group_member_lists_11 (group_id, members)
        SELECT group_id, members FROM group_member_lists ORDER BY group_id;
    DROP TABLE group_member_lists;
    ALTER TABLE group_member_lists_11 RENAME TO group_member_lists;
    "#,
];

/// What the store knows about one record on the platform.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordState {
    pub hash: RecordHash,
    /// Per-field hashes, so that changed field names can be named without
    /// keeping the values.
    pub field_hashes: FieldHashes,
    pub platform_id: Option<String>,
    pub active: bool,
    /// Users: the accommodations last pushed (None: none, or not known).
    pub accommodations: Option<crate::model::platform::ExamAccommodations>,
}

vocabulary! {
    /// How a run ended, as stored in `runs.outcome`.
    pub enum RunOutcome ("run outcome") {
        /// Not finished yet (or the process ended during it).
        Running = "running",
        Ok = "ok",
        /// Some records or results were not delivered.
        Partial = "partial",
        Failed = "failed",
        /// Held by the safety gate: nothing was written.
        Refused = "refused",
        /// Stopped on request (SIGTERM) or by the end of the process.
        Interrupted = "interrupted",
        /// A freeze window deferred changes.
        Deferred = "deferred",
        /// Reconcile found differences.
        Drift = "drift",
    }
}

crate::model::names! {
    /// The kinds of record the roster sync keeps state for (`records.kind`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum RecordKind {
        User = "user",
        Group = "group",
        /// An exam sitting (OKE offering).
        Offering = "offering",
        /// A registration for an exam sitting (OKE association).
        Registration = "registration",
    }
}

/// A state change to commit together with its audit entry.
#[derive(Debug, Clone)]
pub struct RecordChange {
    pub kind: RecordKind,
    pub sourced_id: String,
    pub state: RecordState,
    /// For groups: the member sourcedIds now on the platform.
    pub members: Option<Vec<String>>,
    /// For registrations: the exam sitting (kept when None).
    pub parent: Option<String>,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// The subject key of an in-memory store (a file key otherwise).
    memory_key: Option<Vec<u8>>,
}

impl Store {
    /// Open (creating if needed) the state database and migrate it.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                private_dir_all(dir).with_context(|| {
                    format!(
                        "cannot create state directory {}; check state.path and permissions",
                        dir.display()
                    )
                })?;
            }
        }
        if !path.exists() {
            // an empty file is a new database; made here so that it (and
            // with it SQLite's WAL files) belongs to the state directory's
            // owner even when an admin runs sisync as root
            // 0600 whatever the umask: it holds who is in which class and
            // results waiting for the SIS; SQLite gives its WAL and
            // shared-memory files the mode of the database
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
            o.open(path)
                .and_then(|_| owner::hand_to_state_owner(path, path))
                .with_context(|| {
                    format!(
                        "cannot create state database {}; check state.path and permissions",
                        path.display()
                    )
                })?;
        }
        tighten_modes(path);
        let conn = Connection::open(path).with_context(|| {
            format!(
                "cannot open state database {}; check state.path",
                path.display()
            )
        })?;
        let mut store = Self::init(conn, path)?;
        store.import_unrecorded()?;
        Ok(store)
    }

    /// An empty, migrated in-memory store (dry runs against a fresh machine,
    /// tests).
    pub fn in_memory() -> Result<Store> {
        Self::init(Connection::open_in_memory()?, Path::new(":memory:"))
    }

    /// Open the state database for a dry run: never creates it on disk.
    pub fn open_for_dry_run(path: &Path) -> Result<Store> {
        if path.exists() {
            Self::open(path)
        } else {
            Self::in_memory()
        }
    }

    fn init(conn: Connection, path: &Path) -> Result<Store> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // the hot paths (record upserts, audit appends, outbox updates)
        // run on cached prepared statements
        conn.set_prepared_statement_cache_capacity(64);
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // WAL + NORMAL: a commit survives the process being killed at any
        // point; a power cut may roll back the last commits, never corrupt
        // the file. Writes to platforms are announced by a FULL (fsynced)
        // commit of their intents first (see `intents`), so whatever a
        // power cut rolls back of their outcomes comes back as an audit
        // entry `unknown` at the next start.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        // a page cache of up to 32 MiB (SQLite's default is 2 MiB): the
        // first sync of a large roster writes hundreds of thousands of rows
        // in one transaction, and with the small cache every B-tree insert
        // past a few thousand rows re-reads and spills pages, so the cost
        // grew faster than the roster. Memory is taken only as pages are
        // used.
        conn.pragma_update(None, "cache_size", -32768)?;
        // the WAL is copied back into the file every WAL_CHECKPOINT_PAGES
        // pages (SQLite's default is 1,000): index pages that a push or a
        // provisioning run dirties again and again are copied once per
        // checkpoint, so fewer checkpoints copy fewer pages. Durability is
        // the WAL's either way; the last connection to close checkpoints.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
        // deleted rows are overwritten with zeros, so an erased or purged
        // person leaves no bytes behind in free pages
        conn.pragma_update(None, "secure_delete", true)?;
        let memory_key = if path == Path::new(":memory:") {
            let mut k = vec![0u8; 32];
            getrandom::fill(&mut k)
                .map_err(|e| anyhow::anyhow!("the operating system gave no random bytes: {e}"))?;
            Some(k)
        } else {
            None
        };
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            memory_key,
        };
        store
            .migrate()
            .with_context(|| format!("cannot migrate state database {}", path.display()))?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<()> {
        let version: usize = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))?
            as usize;
        if version > MIGRATIONS.len() {
            anyhow::bail!(
                "state database schema version {version} is newer than this sisync knows ({}); upgrade sisync",
                MIGRATIONS.len()
            );
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Copy the write-ahead log into the database and empty it, so rows
    /// just deleted for privacy leave no old copies in `<state>-wal`.
    pub(crate) fn checkpoint_wal(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// All known records of one kind, by sourcedId.
    pub fn load_state(&self, kind: RecordKind) -> Result<HashMap<String, RecordState>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT sourced_id, hash, field_hashes, platform_id, active, accommodations FROM records WHERE kind = ?1",
        )?;
        let rows = stmt.query_map([kind.as_str()], |r| {
            let fh = r.get_ref(2)?.as_str()?;
            Ok((
                r.get::<_, String>(0)?,
                RecordState {
                    hash: FieldHash::from_stored(r.get_ref(1)?.as_str()?),
                    field_hashes: FieldHashes::from_stored(fh),
                    platform_id: r.get(3)?,
                    active: r.get(4)?,
                    accommodations: r
                        .get::<_, Option<String>>(5)?
                        .and_then(|a| serde_json::from_str(&a).ok()),
                },
            ))
        })?;
        let mut out = HashMap::with_capacity(self.count_records(kind)?);
        for row in rows {
            let (id, st) = row?;
            out.insert(id, st);
        }
        Ok(out)
    }

    fn count_records(&self, kind: RecordKind) -> Result<usize> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM records WHERE kind = ?1",
            [kind.as_str()],
            |r| r.get(0),
        )?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// The parent (exam sitting) of each record of a kind that has one.
    pub fn load_parents(&self, kind: RecordKind) -> Result<HashMap<String, String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT sourced_id, parent FROM records WHERE kind = ?1 AND parent IS NOT NULL",
        )?;
        let rows = stmt.query_map([kind.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stored group membership (sourcedIds), by group. A person in
    /// several groups is one shared id: a large state holds millions of
    /// memberships of a few hundred thousand people.
    pub fn load_members(&self) -> Result<HashMap<String, BTreeSet<Id>>> {
        let mut out = HashMap::new();
        let mut ids = SharedIds::default();
        for_each_member_list(&self.conn, |group, members| {
            let shared = members.iter().map(|m| ids.get(m)).collect();
            out.insert(group.to_string(), shared);
        })?;
        Ok(out)
    }

    /// Orgs of the last bulk export; delta exports often omit orgs.csv.
    pub fn load_orgs(&self) -> Result<Vec<crate::model::Org>> {
        let mut stmt = self
            .conn
            .prepare("SELECT sourced_id, name, identifier, kind, parent FROM orgs")?;
        let rows = stmt.query_map([], |r| {
            Ok(from_row!(r => crate::model::Org { sourced_id, name, identifier, kind, parent }))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Replace the stored orgs with those of a bulk export.
    pub fn save_orgs(&mut self, orgs: &[crate::model::Org]) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM orgs", [])?;
        {
            let mut ins = tx.prepare(
                "INSERT OR REPLACE INTO orgs (sourced_id, name, identifier, kind, parent) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for o in orgs {
                ins.execute(params![
                    o.sourced_id,
                    o.name,
                    o.identifier,
                    o.kind,
                    o.parent
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Where an incremental roster pull starts: five minutes before the
    /// start of the last successful run (an overlap against clock skew
    /// between this host and the SIS; records fetched twice plan as
    /// unchanged), or None (pull everything) when no full pull was
    /// completed within `full_every`.
    ///
    /// A full run counts when its pull was complete: outcome `ok`, or
    /// `partial` (some platform writes failed). Otherwise one record the
    /// platform keeps refusing would make every run a full pull. The
    /// starting point is the last `ok` run, so a record that failed in an
    /// incremental run is fetched again, but never before the last counted
    /// full run, which fetched everything; what failed in a full run is
    /// retried by the next full pull.
    pub fn incremental_since(&self, full_every: std::time::Duration) -> Result<Option<String>> {
        let last = |full_only: bool,
                    outcomes: &str|
         -> Result<Option<chrono::DateTime<chrono::Utc>>> {
            let at: Option<String> = self
                .conn
                .query_row(
                    &format!(
                        "SELECT started_at FROM runs WHERE kind = 'roster' AND outcome IN ({outcomes})
                         AND (full = 1 OR ?1 = 0) ORDER BY id DESC LIMIT 1"
                    ),
                    [full_only],
                    |r| r.get(0),
                )
                .optional()?;
            at.map(|t| Ok(chrono::DateTime::parse_from_rfc3339(&t)?.with_timezone(&chrono::Utc)))
                .transpose()
        };
        let Some(last_full) = last(true, "'ok', 'partial'")? else {
            return Ok(None);
        };
        let age = chrono::Utc::now().signed_duration_since(last_full);
        if age.to_std().unwrap_or_default() >= full_every {
            return Ok(None);
        }
        let since = match last(false, "'ok'")? {
            Some(ok) => ok.max(last_full),
            None => last_full,
        } - chrono::Duration::minutes(5);
        Ok(Some(since.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()))
    }

    /// Start a run; returns its id. Called only under the run lock, so a
    /// run still `running` belongs to a process that is gone (killed with
    /// SIGKILL, a power cut): it is marked `interrupted` first.
    pub fn begin_run(&self, kind: &str, actor: &str, full: bool) -> Result<i64> {
        let closed = self.close_stale_runs("the process running it ended before it finished")?;
        if closed > 0 {
            tracing::warn!(
                runs = closed,
                "marked runs left unfinished by an earlier process as interrupted"
            );
        }
        self.conn.execute(
            "INSERT INTO runs (kind, actor, started_at, full) VALUES (?1, ?2, ?3, ?4)",
            params![kind, actor, now(), full],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn finish_run(
        &self,
        run_id: i64,
        outcome: RunOutcome,
        summary: &serde_json::Value,
        error: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET finished_at = ?2, outcome = ?3, summary = ?4, error = ?5 WHERE id = ?1",
            params![run_id, now(), outcome.as_str(), summary.to_string(), error],
        )?;
        self.save_endpoints()
    }

    /// Record a run that failed before it had a summary: the error's whole
    /// chain is the run's error line.
    pub fn fail_run(&self, run_id: i64, e: &anyhow::Error) -> Result<()> {
        self.finish_run(
            run_id,
            RunOutcome::Failed,
            &serde_json::json!({}),
            Some(&format!("{e:#}")),
        )
    }

    /// Keep what the endpoints did during this run (see `crate::endpoints`)
    /// for the status page: `meta` rows `endpoint:<scheme://host:port>`.
    fn save_endpoints(&self) -> Result<()> {
        for (label, seen) in crate::endpoints::take() {
            let key = format!("endpoint:{label}");
            let before: Option<String> = self
                .conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [&key], |r| {
                    r.get(0)
                })
                .optional()?;
            let merged = before
                .and_then(|b| serde_json::from_str::<crate::endpoints::Seen>(&b).ok())
                .unwrap_or_default()
                .merge(&seen);
            self.conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![key, serde_json::to_string(&merged)?],
            )?;
        }
        Ok(())
    }

    /// Mark runs still `running` as `interrupted`: their process is gone
    /// (call only while holding the run lock). Returns how many.
    /// Writes such a run had announced but not recorded become audit
    /// entries (see `intents`).
    pub fn close_stale_runs(&self, why: &str) -> Result<usize> {
        let closed = self.conn.execute(
            "UPDATE runs SET outcome = ?3, finished_at = ?1, error = COALESCE(error, ?2)
             WHERE outcome = ?4",
            params![
                now(),
                why,
                RunOutcome::Interrupted.as_str(),
                RunOutcome::Running.as_str()
            ],
        )?;
        self.settle_leftover_intents()?;
        Ok(closed)
    }

    /// The most recent runs, newest first.
    pub fn recent_runs(&self, limit: usize) -> Result<Vec<RunRow>> {
        recent_runs(&self.conn, limit)
    }

    /// Counts of known records by kind and active flag.
    pub fn record_counts(&self) -> Result<Vec<(String, bool, i64)>> {
        record_counts(&self.conn)
    }

    /// Commit record state changes and their audit entries in one
    /// transaction: either all of them land, or none.
    pub fn commit(&mut self, items: &[(Option<RecordChange>, AuditEntry)]) -> Result<()> {
        let mut batch = self.batch()?;
        for (change, entry) in items {
            batch.add(change.as_ref(), entry)?;
        }
        batch.commit()
    }

    /// Like [`Store::commit`], for writes announced with
    /// [`Store::record_intents`]: each entry's intent is settled in the
    /// same transaction.
    pub fn commit_written(&mut self, items: &[(Option<RecordChange>, AuditEntry)]) -> Result<()> {
        let mut batch = self.batch()?;
        for (change, entry) in items {
            batch.add(change.as_ref(), entry)?;
            batch
                .tx
                .prepare_cached(
                    "DELETE FROM write_intents WHERE run_id IS ?1 AND kind = ?2 AND record_id = ?3",
                )?
                .execute(params![entry.run_id, entry.record_kind, entry.record_id])?;
        }
        batch.commit()
    }

    /// Audit entries matching a filter, oldest first.
    pub fn audit_list(&self, f: &AuditFilter) -> Result<Vec<AuditRow>> {
        audit::list(&self.conn, f)
    }

    /// Check the audit hash chain.
    pub fn audit_verify(&self) -> Result<VerifyReport> {
        audit::verify(&self.conn)
    }

    /// `PRAGMA quick_check`: a damaged page becomes one line naming the
    /// file and what to do, instead of passing unnoticed.
    pub fn quick_check(&self) -> Result<()> {
        let mut stmt = self.conn.prepare("PRAGMA quick_check")?;
        let problems: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?;
        if problems.len() == 1 && problems[0] == "ok" {
            return Ok(());
        }
        anyhow::bail!(
            "{}",
            damaged_line(
                &self.path,
                &format!(
                    "{}{}",
                    problems.first().map(String::as_str).unwrap_or("no answer"),
                    if problems.len() > 1 {
                        format!(" and {} more problems", problems.len() - 1)
                    } else {
                        String::new()
                    }
                )
            )
        )
    }

    /// The audit log's head (last entry number and hash), None when the
    /// head row is missing.
    pub fn audit_head(&self) -> Result<Option<(i64, String)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT last_seq, last_hash FROM audit_head WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Append audit entries (no record state) in one transaction.
    pub fn audit_append(&mut self, entries: &[AuditEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        for e in entries {
            audit::append(&tx, e)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Start a transaction that collects many changes without holding them
    /// all in memory; nothing lands unless [`Batch::commit`] is called.
    pub fn batch(&mut self) -> Result<Batch<'_>> {
        let tx = self.conn.transaction()?;
        let chain = audit::Chain::open(&tx)?;
        Ok(Batch { tx, chain })
    }
}

/// An open transaction of record changes and audit entries.
pub struct Batch<'a> {
    tx: Transaction<'a>,
    chain: audit::Chain,
}

impl Batch<'_> {
    pub fn add(&mut self, change: Option<&RecordChange>, entry: &AuditEntry) -> Result<()> {
        if let Some(change) = change {
            upsert_record(&self.tx, change)?;
        }
        self.chain.append(&self.tx, entry)?;
        Ok(())
    }

    pub fn commit(self) -> Result<()> {
        self.chain.close(&self.tx)?;
        self.tx.commit()?;
        Ok(())
    }
}

fn upsert_record(tx: &Transaction<'_>, c: &RecordChange) -> Result<()> {
    let now = now();
    let deactivated_at = if c.state.active {
        None
    } else {
        // an inactive record keeps the original moment it left: the old
        // row is read only then
        let previous: Option<(bool, Option<String>)> = tx
            .prepare_cached(
                "SELECT active, deactivated_at FROM records WHERE kind = ?1 AND sourced_id = ?2",
            )?
            .query_row(params![c.kind.as_str(), c.sourced_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        match previous {
            Some((false, at)) => at.or(Some(now.clone())),
            _ => Some(now.clone()),
        }
    };
    tx.prepare_cached(
        "INSERT INTO records (kind, sourced_id, hash, field_hashes, platform_id, active, updated_at, deactivated_at, accommodations)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (kind, sourced_id) DO UPDATE SET
            hash = excluded.hash, field_hashes = excluded.field_hashes,
            platform_id = excluded.platform_id, active = excluded.active,
            updated_at = excluded.updated_at, deactivated_at = excluded.deactivated_at,
            accommodations = CASE WHEN excluded.active = 0 THEN records.accommodations
                                  ELSE excluded.accommodations END",
    )?
    .execute(params![
            c.kind.as_str(),
            c.sourced_id,
            c.state.hash.hex().as_str(),
            serde_json::to_string(&c.state.field_hashes)?,
            c.state.platform_id,
            c.state.active,
            now,
            deactivated_at,
            c.state
                .accommodations
                .as_ref()
                .map(serde_json::to_string)
                .transpose()?,
    ])?;
    if let Some(parent) = &c.parent {
        tx.prepare_cached("UPDATE records SET parent = ?3 WHERE kind = ?1 AND sourced_id = ?2")?
            .execute(params![c.kind.as_str(), c.sourced_id, parent])?;
    }
    if let Some(members) = &c.members {
        save_member_list(tx, &c.sourced_id, members)?;
    }
    Ok(())
}

/// Store a group's members (any order, duplicates kept once); a group
/// without members has no row.
fn save_member_list(tx: &Transaction<'_>, group: &str, members: &[String]) -> Result<()> {
    let mut sorted: Vec<&str> = members.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.is_empty() {
        tx.prepare_cached("DELETE FROM group_member_lists WHERE group_id = ?1")?
            .execute([group])?;
    } else {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO group_member_lists (group_id, members) VALUES (?1, ?2)",
        )?
        .execute(params![group, serde_json::to_string(&sorted)?])?;
    }
    Ok(())
}

/// Every stored member list, by group id in order, each list sorted. A
/// list that does not read as a JSON array of ids is a damaged state file.
pub(crate) fn for_each_member_list(
    conn: &Connection,
    mut each: impl FnMut(&str, Vec<String>),
) -> Result<()> {
    let mut stmt =
        conn.prepare_cached("SELECT group_id, members FROM group_member_lists ORDER BY group_id")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let group = r.get_ref(0)?.as_str()?;
        let mut members = parse_member_list(group, r.get_ref(1)?.as_str()?)?;
        members.sort_unstable();
        each(group, members);
    }
    Ok(())
}

/// A stored member list; one that does not read as a JSON array of ids is
/// a damaged state file.
fn parse_member_list(group: &str, text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "the state file's member list of group {group} is damaged ({e}); restore the state file from a backup (`sisync restore`)"
        )
    })
}

/// The groups whose stored members include `person_id`, in order.
pub(crate) fn groups_with_member(conn: &Connection, person_id: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT group_id FROM group_member_lists
         WHERE EXISTS (SELECT 1 FROM json_each(members) WHERE value = ?1)
         ORDER BY group_id",
    )?;
    let rows = stmt.query_map([person_id], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
}

/// Take `person_id` out of every stored member list; returns how many
/// lists held it (its memberships).
pub(crate) fn remove_member(tx: &Transaction<'_>, person_id: &str) -> Result<usize> {
    // the lists that hold the person, read once with the same filter as
    // groups_with_member, then written back without it
    let lists: Vec<(String, String)> = tx
        .prepare_cached(
            "SELECT group_id, members FROM group_member_lists
             WHERE EXISTS (SELECT 1 FROM json_each(members) WHERE value = ?1)",
        )?
        .query_map([person_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (group, text) in &lists {
        let mut members = parse_member_list(group, text)?;
        members.retain(|m| m != person_id);
        save_member_list(tx, group, &members)?;
    }
    Ok(lists.len())
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRow {
    pub id: i64,
    pub kind: String,
    pub actor: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub outcome: String,
    pub full: bool,
    pub summary: serde_json::Value,
    pub error: Option<String>,
}

/// The most recent runs, newest first, on any connection to a state file
/// (the status page reads through a read-only one).
/// What each remote endpoint last did, by `scheme://host:port`.
pub fn endpoint_answers(conn: &Connection) -> Result<Vec<(String, crate::endpoints::Seen)>> {
    let mut stmt =
        conn.prepare("SELECT key, value FROM meta WHERE key LIKE 'endpoint:%' ORDER BY key")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (key, value) = row?;
        if let Ok(seen) = serde_json::from_str(&value) {
            out.push((key["endpoint:".len()..].to_string(), seen));
        }
    }
    Ok(out)
}

pub fn recent_runs(conn: &Connection, limit: usize) -> Result<Vec<RunRow>> {
    runs_where(conn, "1", limit)
}

/// The last finished run of one kind (`reconcile`, `roster`, …).
pub fn last_finished_run(conn: &Connection, kind: &str) -> Result<Option<RunRow>> {
    // `kind` is one of our own constants, never user input; still bound
    let mut stmt = conn.prepare(
        "SELECT id FROM runs WHERE kind = ?1 AND finished_at IS NOT NULL ORDER BY id DESC LIMIT 1",
    )?;
    let id: Option<i64> = stmt.query_row([kind], |r| r.get(0)).optional()?;
    Ok(match id {
        Some(id) => runs_where(conn, &format!("id = {id}"), 1)?
            .into_iter()
            .next(),
        None => None,
    })
}

fn runs_where(conn: &Connection, filter: &str, limit: usize) -> Result<Vec<RunRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT id, kind, actor, started_at, finished_at, outcome, full, error, summary
         FROM runs WHERE {filter} ORDER BY id DESC LIMIT ?1"
    ))?;
    let rows = stmt.query_map([limit as i64], |r| {
        let summary: Option<String> = r.get(8)?;
        Ok(from_row!(r => RunRow {
            id, kind, actor, started_at, finished_at, outcome, full, error;
            summary: summary
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or(serde_json::Value::Null),
        }))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Counts of known records by kind and active flag, on any connection.
pub fn record_counts(conn: &Connection) -> Result<Vec<(String, bool, i64)>> {
    let mut stmt = conn.prepare(
        "SELECT kind, active, COUNT(*) FROM records GROUP BY kind, active ORDER BY kind, active DESC",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The count of `kind` records with that active flag in [`record_counts`]
/// (0 when there are none).
pub fn count_of(counts: &[(String, bool, i64)], kind: &str, active: bool) -> i64 {
    counts
        .iter()
        .find(|(k, a, _)| k == kind && *a == active)
        .map_or(0, |x| x.2)
}

/// Create `dir` and its missing parents 0700 (the umask may only take
/// more away).
pub(crate) fn private_dir_all(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// A state database (and its WAL files) made readable for others by an
/// older sisync or a copy is made 0600 again. Best effort: a file that
/// belongs to another user stays as it is (the open tells what is wrong).
fn tighten_modes(path: &Path) {
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        use std::os::unix::fs::PermissionsExt;
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let p = PathBuf::from(p);
        if let Ok(m) = std::fs::metadata(&p) {
            if m.permissions().mode() & 0o077 != 0
                && std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).is_ok()
            {
                tracing::info!(file = %p.display(), "made readable for its owner only (0600)");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// The one line for a damaged state database.
pub fn damaged_line(path: &Path, what: &str) -> String {
    // SQLite's quick_check answers may span lines ("*** in database main
    // ***\nTree 22 page 22: …"): one line for the admin
    let what = what
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "the state database {} is damaged ({what}); stop sisync, keep the file for investigation and restore the state database from a backup",
        path.display()
    )
}

/// What a failed store operation says about the state volume, for the
/// callers that act on it (the rest just report the error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The file is damaged or not a database: restore it from a backup.
    Damaged,
    /// The volume is full (SQLite or the OS said so): give up the reserve.
    DiskFull,
}

impl Fault {
    /// The fault behind `e`, if any: the SQLite and OS errors sisync's
    /// errors wrap are looked up once here, so callers `match` a `Fault`.
    pub fn of(e: &anyhow::Error) -> Option<Fault> {
        use rusqlite::ErrorCode;
        e.chain().find_map(|c| {
            if let Some(code) = c
                .downcast_ref::<rusqlite::Error>()
                .and_then(|e| e.sqlite_error_code())
            {
                return match code {
                    ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => Some(Fault::Damaged),
                    ErrorCode::DiskFull => Some(Fault::DiskFull),
                    _ => None,
                };
            }
            c.downcast_ref::<std::io::Error>()
                .filter(|io| io.raw_os_error() == Some(libc::ENOSPC))
                .map(|_| Fault::DiskFull)
        })
    }
}

/// Current UTC time as sortable RFC 3339 with milliseconds.
pub fn now() -> String {
    // the same text as `%Y-%m-%dT%H:%M:%S%.3fZ`, without parsing a format
    // string per call (one per record and audit entry)
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored times are UTC with milliseconds and `Z`: they compare as
    /// text (`audit list --since`), so the shape must never change.
    #[test]
    fn now_is_rfc3339_utc_with_milliseconds() {
        let t = now();
        let shape: String = t
            .chars()
            .map(|c| if c.is_ascii_digit() { '9' } else { c })
            .collect();
        assert_eq!(shape, "9999-99-99T99:99:99.999Z", "{t}");
    }

    #[test]
    fn migrations_are_idempotent_and_versioned() {
        let (_dir, p, s) = crate::test_util::temp_store("s.db");
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        drop(s);
        let s = Store::open(&p).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let mode: String = s
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    /// A state file at schema `version`, with rows written by `seed`.
    fn at_schema(p: &Path, version: usize, seed: impl FnOnce(&Transaction<'_>)) {
        let mut c = Connection::open(p).unwrap();
        let tx = c.transaction().unwrap();
        for sql in &MIGRATIONS[..version] {
            tx.execute_batch(sql).unwrap();
        }
        tx.pragma_update(None, "user_version", version as i64)
            .unwrap();
        seed(&tx);
        tx.commit().unwrap();
    }

    #[test]
    fn schema_5_keeps_the_keys_of_stored_results() {
        let (_dir, p) = crate::test_util::temp_path("s.db");
        at_schema(&p, 4, |tx| {
            tx.execute(
                "INSERT INTO results (key, candidate, line_item, session_id, origin, state, value_hash,
                                      pushed_hash, first_seen, updated_at)
                 VALUES ('k-old', 'stu-1', 'EX-1', '1', 'a.xml:2', 'pushed', 'h', 'h', 't', 't')",
                [],
            )
            .unwrap();
        });
        let s = Store::open(&p).unwrap();
        let (key, scheme, state): (String, i64, String) = s
            .conn
            .query_row("SELECT key, key_scheme, state FROM results", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(
            (key.as_str(), scheme, state.as_str()),
            ("k-old", 1, "pushed")
        );
    }

    #[test]
    fn schema_10_moves_memberships_into_one_list_per_group() {
        let (_dir, p) = crate::test_util::temp_path("s.db");
        at_schema(&p, 9, |tx| {
            for (g, m) in [("c2", "s9"), ("c1", "s2"), ("c1", "s10"), ("c2", "s2")] {
                tx.execute(
                    "INSERT INTO group_members (group_id, person_id) VALUES (?1, ?2)",
                    [g, m],
                )
                .unwrap();
            }
        });
        let before = {
            // the held-plan fingerprint of the old layout, by hand
            let mut h = <sha2::Sha256 as sha2::Digest>::new();
            sha2::Digest::update(&mut h, b"members\n");
            for (g, m) in [("c1", "s10"), ("c1", "s2"), ("c2", "s2"), ("c2", "s9")] {
                sha2::Digest::update(&mut h, format!("{g}\x1f{m}\n").as_bytes());
            }
            hex::encode(sha2::Digest::finalize(h))
        };
        let mut s = Store::open(&p).unwrap();
        let members = s.load_members().unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members["c1"].iter().collect::<Vec<_>>(), ["s10", "s2"]);
        assert_eq!(members["c2"].iter().collect::<Vec<_>>(), ["s2", "s9"]);
        assert_eq!(groups_with_member(&s.conn, "s2").unwrap(), ["c1", "c2"]);
        assert_eq!(
            groups_with_member(&s.conn, "s1").unwrap(),
            Vec::<String>::new()
        );
        // the fingerprint reads the lists as it read the rows
        let mut h = <sha2::Sha256 as sha2::Digest>::new();
        sha2::Digest::update(&mut h, b"members\n");
        for_each_member_list(&s.conn, |g, ms| {
            for m in ms {
                sha2::Digest::update(&mut h, format!("{g}\x1f{m}\n").as_bytes());
            }
        })
        .unwrap();
        assert_eq!(hex::encode(sha2::Digest::finalize(h)), before);
        // erasing a person takes it out of every list; an emptied list goes
        let tx = s.conn.transaction().unwrap();
        assert_eq!(remove_member(&tx, "s2").unwrap(), 2);
        assert_eq!(remove_member(&tx, "s10").unwrap(), 1);
        tx.commit().unwrap();
        let members = s.load_members().unwrap();
        assert_eq!(members.len(), 1, "c1 lost its last member: {members:?}");
        assert_eq!(members["c2"].iter().collect::<Vec<_>>(), ["s9"]);
    }

    #[test]
    fn schema_11_keeps_every_member_list_in_a_rowid_table() {
        let (_dir, p) = crate::test_util::temp_path("s.db");
        let long: Vec<String> = (0..400).map(|i| format!("stu-{i}")).collect();
        let long_json = serde_json::to_string(&long).unwrap();
        at_schema(&p, 10, |tx| {
            for (g, m) in [("c2", r#"["s9"]"#), ("c1", long_json.as_str())] {
                tx.execute(
                    "INSERT INTO group_member_lists (group_id, members) VALUES (?1, ?2)",
                    [g, m],
                )
                .unwrap();
            }
        });
        let mut s = Store::open(&p).unwrap();
        let sql: String = s
            .conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE name = 'group_member_lists'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!sql.contains("WITHOUT ROWID"), "{sql}");
        let members = s.load_members().unwrap();
        let mut want = long.clone();
        want.sort();
        let got: Vec<&str> = members["c1"].iter().map(|m| m.as_str()).collect();
        assert_eq!(got, want);
        assert_eq!(members["c2"].iter().collect::<Vec<_>>(), ["s9"]);
        // replaced whole by its key, as before
        let tx = s.conn.transaction().unwrap();
        save_member_list(&tx, "c2", &["s1".to_string()]).unwrap();
        tx.commit().unwrap();
        assert_eq!(
            s.load_members().unwrap()["c2"].iter().collect::<Vec<_>>(),
            ["s1"]
        );
        assert_eq!(groups_with_member(&s.conn, "stu-399").unwrap(), ["c1"]);
    }

    #[test]
    fn a_member_list_is_stored_sorted_once_and_replaced_whole() {
        let mut s = Store::in_memory().unwrap();
        let ids = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let tx = s.conn.transaction().unwrap();
        save_member_list(&tx, "g", &ids(&["b", "a", "b"])).unwrap();
        tx.commit().unwrap();
        let raw: String = crate::test_util::one(&s.conn, "SELECT members FROM group_member_lists");
        assert_eq!(raw, r#"["a","b"]"#);
        let tx = s.conn.transaction().unwrap();
        save_member_list(&tx, "g", &ids(&["c"])).unwrap();
        tx.commit().unwrap();
        assert_eq!(
            s.load_members().unwrap()["g"].iter().collect::<Vec<_>>(),
            ["c"]
        );
        let tx = s.conn.transaction().unwrap();
        save_member_list(&tx, "g", &[]).unwrap();
        tx.commit().unwrap();
        assert!(s.load_members().unwrap().is_empty());
        s.conn
            .execute(
                "INSERT INTO group_member_lists (group_id, members) VALUES ('g', 'x')",
                [],
            )
            .unwrap();
        let e = s.load_members().unwrap_err().to_string();
        assert!(e.contains("member list of group g is damaged"), "{e}");
    }

    #[test]
    fn incremental_pulls_start_after_the_last_good_run() {
        let s = Store::in_memory().unwrap();
        let day = std::time::Duration::from_secs(86_400);
        // a finished run of the roster, full or not, by its id
        let run = |full: bool, outcome: RunOutcome| {
            let id = s.begin_run("roster", "t", full).unwrap();
            s.finish_run(id, outcome, &serde_json::json!({}), None)
                .unwrap();
            id
        };
        // the next incremental pull starts 5 minutes before run `id` did
        let starts_before = |id: i64, why: &str| {
            let started: String = s
                .conn
                .query_row("SELECT started_at FROM runs WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .unwrap();
            let since = s.incremental_since(day).unwrap().unwrap();
            let gap = chrono::DateTime::parse_from_rfc3339(&started).unwrap()
                - chrono::DateTime::parse_from_rfc3339(&since).unwrap();
            assert_eq!(gap, chrono::Duration::minutes(5), "{why}");
        };
        assert_eq!(s.incremental_since(day).unwrap(), None, "first run: full");
        run(true, RunOutcome::Ok);
        let inc = run(false, RunOutcome::Ok);
        run(false, RunOutcome::Partial);
        starts_before(inc, "from the last ok run, with overlap");
        assert_eq!(
            s.incremental_since(std::time::Duration::ZERO).unwrap(),
            None,
            "full_every elapsed: full pull"
        );

        // a full pull whose platform writes partly failed still counts as
        // a full pull, and incremental pulls start from it
        std::thread::sleep(std::time::Duration::from_millis(5));
        let partial_full = run(true, RunOutcome::Partial);
        run(true, RunOutcome::Failed);
        starts_before(partial_full, "from the partial full run");
    }

    #[test]
    fn newer_schema_is_refused() {
        let (_dir, p, s) = crate::test_util::temp_store("s.db");
        s.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        let e = Store::open(&p).err().unwrap();
        assert!(format!("{e:#}").contains("newer than this sisync knows"));
    }

    #[test]
    fn deactivation_time_is_kept_across_updates() {
        let mut s = Store::in_memory().unwrap();
        let change = |active| RecordChange {
            parent: None,
            kind: RecordKind::User,
            sourced_id: "stu-1".into(),
            state: RecordState {
                hash: RecordHash::default(),
                field_hashes: Default::default(),
                platform_id: Some("p1".into()),
                active,
                accommodations: None,
            },
            members: None,
        };
        let entry = AuditEntry::test_entry("stu-1");
        s.commit(&[(Some(change(false)), entry.clone())]).unwrap();
        let first: String = crate::test_util::one(&s.conn, "SELECT deactivated_at FROM records");
        std::thread::sleep(std::time::Duration::from_millis(5));
        s.commit(&[(Some(change(false)), entry.clone())]).unwrap();
        let second: String = crate::test_util::one(&s.conn, "SELECT deactivated_at FROM records");
        assert_eq!(first, second);
        s.commit(&[(Some(change(true)), entry)]).unwrap();
        let third: Option<String> =
            crate::test_util::one(&s.conn, "SELECT deactivated_at FROM records");
        assert_eq!(third, None);
    }
}
