//! The tamper-evident audit log: an append-only table in which every entry
//! carries the SHA-256 of the previous one.
//!
//! The subject is hashed into the chain through `record_id_hash`, not the
//! id itself, so a retention purge can blank `record_id` without breaking
//! verification. The hash is salted with a random per-entry nonce
//! (`id_nonce`, not covered by the chain): a purge blanks the id *and* the
//! nonce, after which the hash can no longer be linked to anybody, not even
//! by trying every student number. Entries written before schema 4 have no
//! nonce and an unsalted hash (`id_hash_v1`); they still verify. Names,
//! e-mail addresses and result values are never written here: only ids,
//! field names and payload hashes.

use anyhow::Result;
use rusqlite::{Connection, Transaction, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::RecordKind;
use crate::model::{by_name, vocabulary};

vocabulary! {
    /// Which way the data went.
    pub enum Direction ("direction") {
        /// sisync → platform or SIS.
        Out = "out",
        /// Read from a source.
        In = "in",
        /// Changed only in sisync's own state.
        Local = "local",
    }
}

vocabulary! {
    /// How the action ended.
    pub enum AuditOutcome ("outcome") {
        Ok = "ok",
        Failed = "failed",
        /// A result that matched no person or class yet.
        Parked = "parked",
        /// Sent, but the answer was lost (recorded at the next start).
        Unknown = "unknown",
    }
}

vocabulary! {
    /// What an entry is about.
    pub enum AuditKind ("record kind") {
        User = "user",
        Group = "group",
        Offering = "offering",
        Registration = "registration",
        Result = "result",
        LineItem = "lineItem",
        Document = "document",
        Plan = "plan",
        State = "state",
    }
}

impl From<RecordKind> for AuditKind {
    fn from(k: RecordKind) -> AuditKind {
        match k {
            RecordKind::User => AuditKind::User,
            RecordKind::Group => AuditKind::Group,
            RecordKind::Offering => AuditKind::Offering,
            RecordKind::Registration => AuditKind::Registration,
        }
    }
}

/// What a write did to a record on the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordWrite {
    Create,
    Update,
    /// Deactivate a user, retire a class, cancel a sitting, withdraw a
    /// registration.
    Deactivate,
    /// Sent again whole: the platform had lost it.
    Recreate,
}

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// A record written to the platform.
    Record(RecordKind, RecordWrite),
    /// A result sent to the SIS for the first time.
    ResultPush,
    /// A re-marked result sent again.
    ResultUpdate,
    /// A result that could not be matched (parked or failed).
    ResultMatch,
    /// A gradebook line item created or updated.
    LineItemPut,
    /// A result document read.
    ResultsRead,
    PlanApprove,
    /// The retention purge.
    PrivacyPurge,
    SubjectRestrict,
    SubjectUnrestrict,
    SubjectExport,
    SubjectErase,
}

impl AuditAction {
    pub const ALL: &[AuditAction] = &{
        use AuditAction::*;
        use RecordKind::{Group, Offering, Registration, User};
        use RecordWrite::{Create, Deactivate, Recreate, Update};
        [
            Record(User, Create),
            Record(User, Update),
            Record(User, Deactivate),
            Record(User, Recreate),
            Record(Group, Create),
            Record(Group, Update),
            Record(Group, Deactivate),
            Record(Group, Recreate),
            Record(Offering, Create),
            Record(Offering, Update),
            Record(Offering, Deactivate),
            Record(Offering, Recreate),
            Record(Registration, Create),
            Record(Registration, Update),
            Record(Registration, Deactivate),
            Record(Registration, Recreate),
            ResultPush,
            ResultUpdate,
            ResultMatch,
            LineItemPut,
            ResultsRead,
            PlanApprove,
            PrivacyPurge,
            SubjectRestrict,
            SubjectUnrestrict,
            SubjectExport,
            SubjectErase,
        ]
    };

    /// The stored name (`user.create`, `group.retire`, ...).
    pub const fn as_str(self) -> &'static str {
        use RecordKind::{Group, Offering, Registration, User};
        use RecordWrite::{Create, Deactivate, Recreate, Update};
        match self {
            AuditAction::Record(User, Create) => "user.create",
            AuditAction::Record(User, Update) => "user.update",
            AuditAction::Record(User, Deactivate) => "user.deactivate",
            AuditAction::Record(User, Recreate) => "user.recreate",
            AuditAction::Record(Group, Create) => "group.create",
            AuditAction::Record(Group, Update) => "group.update",
            AuditAction::Record(Group, Deactivate) => "group.retire",
            AuditAction::Record(Group, Recreate) => "group.recreate",
            AuditAction::Record(Offering, Create) => "offering.create",
            AuditAction::Record(Offering, Update) => "offering.update",
            AuditAction::Record(Offering, Deactivate) => "offering.cancel",
            AuditAction::Record(Offering, Recreate) => "offering.recreate",
            AuditAction::Record(Registration, Create) => "registration.create",
            AuditAction::Record(Registration, Update) => "registration.update",
            AuditAction::Record(Registration, Deactivate) => "registration.withdraw",
            AuditAction::Record(Registration, Recreate) => "registration.recreate",
            AuditAction::ResultPush => "result.push",
            AuditAction::ResultUpdate => "result.update",
            AuditAction::ResultMatch => "result.match",
            AuditAction::LineItemPut => "lineitem.put",
            AuditAction::ResultsRead => "results.read",
            AuditAction::PlanApprove => "plan.approve",
            AuditAction::PrivacyPurge => "privacy.purge",
            AuditAction::SubjectRestrict => "subject.restrict",
            AuditAction::SubjectUnrestrict => "subject.unrestrict",
            AuditAction::SubjectExport => "subject.export",
            AuditAction::SubjectErase => "subject.erase",
        }
    }

    pub fn parse(s: &str) -> Option<AuditAction> {
        AuditAction::ALL.iter().copied().find(|a| a.as_str() == s)
    }
}

by_name!(AuditAction, "audit action");

/// Stored by name in the write intents (and read back from them).
macro_rules! sql_by_name {
    ($($t:ty),*) => {
        $(impl rusqlite::ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl rusqlite::types::FromSql for $t {
            fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                let s = v.as_str()?;
                <$t>::parse(s).ok_or_else(|| {
                    rusqlite::types::FromSqlError::Other(format!("unknown name `{s}`").into())
                })
            }
        })*
    };
}
sql_by_name!(AuditAction, AuditKind);

/// One transfer or administrative action, before it is chained. The
/// vocabularies are stored by name ([`AuditRow`] holds them as read).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    pub actor: String,
    pub run_id: Option<i64>,
    pub direction: Direction,
    pub endpoint: String,
    pub action: AuditAction,
    pub record_kind: AuditKind,
    pub record_id: String,
    /// Names of the fields sent or changed, comma-separated; no values.
    pub fields: String,
    pub payload_sha256: Option<String>,
    pub outcome: AuditOutcome,
    /// Error status and class for failures; never personal data.
    pub detail: Option<String>,
}

impl AuditEntry {
    #[cfg(test)]
    pub fn test_entry(id: &str) -> AuditEntry {
        AuditEntry {
            actor: "user:test".into(),
            run_id: None,
            direction: Direction::Out,
            endpoint: "http://127.0.0.1/Users".into(),
            action: AuditAction::Record(RecordKind::User, RecordWrite::Create),
            record_kind: AuditKind::User,
            record_id: id.into(),
            fields: "name,role".into(),
            payload_sha256: Some(sha256_hex(b"{}")),
            outcome: AuditOutcome::Ok,
            detail: None,
        }
    }
}

/// A stored, chained audit entry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub run_id: Option<i64>,
    pub direction: String,
    pub endpoint: String,
    pub action: String,
    pub record_kind: String,
    pub record_id: Option<String>,
    pub record_id_hash: String,
    /// Random salt of `record_id_hash` (hex); blanked with `record_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_nonce: Option<String>,
    pub fields: String,
    pub payload_sha256: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
    pub prev_hash: String,
    pub entry_hash: String,
}

pub use crate::digest::sha256_hex;

/// The unsalted subject hash of entries written before schema 4 (and the
/// key of subject holds made then).
pub fn id_hash_v1(record_id: &str) -> String {
    sha256_hex(format!("sisync-audit-subject\x1f{record_id}").as_bytes())
}

/// The salted subject hash the chain covers.
fn id_hash(nonce: &str, record_id: &str) -> String {
    sha256_hex(format!("sisync-audit-subject-v2\x1f{nonce}\x1f{record_id}").as_bytes())
}

/// The hash an existing row's id must match: salted when it has a nonce.
fn row_id_hash(nonce: Option<&str>, record_id: &str) -> String {
    match nonce {
        Some(n) => id_hash(n, record_id),
        None => id_hash_v1(record_id),
    }
}

/// The chained hash of an entry: every column but `record_id` (covered by
/// `record_id_hash`) and `entry_hash` itself, unit-separated.
fn entry_hash(r: &AuditRow) -> String {
    let run = r.run_id.map(|v| v.to_string()).unwrap_or_default();
    let parts: [&str; 14] = [
        &r.seq.to_string(),
        &r.at,
        &r.actor,
        &run,
        &r.direction,
        &r.endpoint,
        &r.action,
        &r.record_kind,
        &r.record_id_hash,
        &r.fields,
        r.payload_sha256.as_deref().unwrap_or(""),
        &r.outcome,
        r.detail.as_deref().unwrap_or(""),
        &r.prev_hash,
    ];
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0x1f]);
    }
    hex::encode(h.finalize())
}

/// Append one entry inside the caller's transaction.
pub(crate) fn append(tx: &Transaction<'_>, e: &AuditEntry) -> Result<i64> {
    let mut chain = Chain::open(tx)?;
    let seq = chain.append(tx, e)?;
    chain.close(tx)?;
    Ok(seq)
}

/// The chain's head held in memory while many entries are appended in one
/// transaction: the head row is read once and written once
/// ([`Chain::close`]), not once per entry, and the salts come from one
/// buffer of random bytes. Entries and hashes are the same as one
/// [`append`] each.
pub(crate) struct Chain {
    last_seq: i64,
    last_hash: String,
    random: Vec<u8>,
    appended: usize,
}

impl Chain {
    pub(crate) fn open(tx: &Transaction<'_>) -> Result<Chain> {
        let (last_seq, last_hash) = tx
            .prepare_cached("SELECT last_seq, last_hash FROM audit_head WHERE id = 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => anyhow::anyhow!(
                    "the audit head (table audit_head) is missing: the audit log was tampered with; nothing was written; run `sisync audit verify` and restore the state database from a backup"
                ),
                e => e.into(),
            })?;
        Ok(Chain {
            last_seq,
            last_hash,
            random: Vec::new(),
            appended: 0,
        })
    }

    /// 128 random bits from the operating system, hex: the first salt of
    /// a chain alone (most appends are one entry), then 256 at a time.
    fn nonce(&mut self) -> Result<String> {
        if self.random.len() < 16 {
            let salts = if self.appended == 0 { 1 } else { 256 };
            self.random.resize(16 * salts, 0);
            getrandom::fill(&mut self.random)
                .map_err(|e| anyhow::anyhow!("the operating system gave no random bytes: {e}"))?;
        }
        let at = self.random.len() - 16;
        let nonce = hex::encode(&self.random[at..]);
        // each salt is taken off the buffer: never handed out twice
        self.random.truncate(at);
        Ok(nonce)
    }

    pub(crate) fn append(&mut self, tx: &Transaction<'_>, e: &AuditEntry) -> Result<i64> {
        let nonce = self.nonce()?;
        let mut row = AuditRow {
            seq: self.last_seq + 1,
            at: super::now(),
            actor: e.actor.clone(),
            run_id: e.run_id,
            direction: e.direction.to_string(),
            endpoint: e.endpoint.clone(),
            action: e.action.to_string(),
            record_kind: e.record_kind.to_string(),
            record_id: Some(e.record_id.clone()),
            record_id_hash: id_hash(&nonce, &e.record_id),
            id_nonce: Some(nonce),
            fields: e.fields.clone(),
            payload_sha256: e.payload_sha256.clone(),
            outcome: e.outcome.to_string(),
            detail: e.detail.clone(),
            prev_hash: std::mem::take(&mut self.last_hash),
            entry_hash: String::new(),
        };
        row.entry_hash = entry_hash(&row);
        tx.prepare_cached(
            "INSERT INTO audit (seq, at, actor, run_id, direction, endpoint, action, record_kind, record_id,
                                record_id_hash, fields, payload_sha256, outcome, detail, prev_hash, entry_hash,
                                id_nonce)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        )?
        .execute(params![
                row.seq,
                row.at,
                row.actor,
                row.run_id,
                row.direction,
                row.endpoint,
                row.action,
                row.record_kind,
                row.record_id,
                row.record_id_hash,
                row.fields,
                row.payload_sha256,
                row.outcome,
                row.detail,
                row.prev_hash,
                row.entry_hash,
                row.id_nonce,
        ])?;
        self.last_seq = row.seq;
        self.last_hash = row.entry_hash;
        self.appended += 1;
        Ok(row.seq)
    }

    /// Write the head: the last entry appended. Must run before the
    /// transaction commits (a head behind its entries fails `verify`).
    pub(crate) fn close(self, tx: &Transaction<'_>) -> Result<()> {
        tx.prepare_cached("UPDATE audit_head SET last_seq = ?1, last_hash = ?2 WHERE id = 1")?
            .execute(params![self.last_seq, self.last_hash])?;
        Ok(())
    }
}

/// Filters of `sisync audit list`. Times are RFC 3339 UTC strings.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub since: Option<String>,
    pub until: Option<String>,
    pub person: Option<String>,
    /// Matches `record_kind` (`user`) or `action` (`user.create`).
    pub kind: Option<String>,
    /// Entries whose endpoint starts with this (a host, a URL, a folder).
    pub endpoint: Option<String>,
    pub limit: Option<usize>,
}

const COLUMNS: &str = "seq, at, actor, run_id, direction, endpoint, action, record_kind, record_id,
    record_id_hash, fields, payload_sha256, outcome, detail, prev_hash, entry_hash, id_nonce";

fn map_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(super::from_row!(r => AuditRow {
        seq, at, actor, run_id, direction, endpoint, action, record_kind, record_id,
        record_id_hash, fields, payload_sha256, outcome, detail, prev_hash, entry_hash, id_nonce,
    }))
}

pub fn list(conn: &Connection, f: &AuditFilter) -> Result<Vec<AuditRow>> {
    let mut sql = format!("SELECT {COLUMNS} FROM audit WHERE 1=1");
    let mut args: Vec<String> = Vec::new();
    if let Some(s) = &f.since {
        args.push(s.clone());
        sql.push_str(&format!(" AND at >= ?{}", args.len()));
    }
    if let Some(u) = &f.until {
        args.push(u.clone());
        sql.push_str(&format!(" AND at < ?{}", args.len()));
    }
    if let Some(p) = &f.person {
        args.push(p.clone());
        sql.push_str(&format!(" AND record_id = ?{}", args.len()));
    }
    if let Some(k) = &f.kind {
        args.push(k.clone());
        let n = args.len();
        sql.push_str(&format!(" AND (record_kind = ?{n} OR action = ?{n})"));
    }
    if let Some(e) = &f.endpoint {
        // a prefix range, so the (endpoint, at) index serves it
        args.push(e.clone());
        let n = args.len();
        args.push(format!("{e}\u{10ffff}"));
        sql.push_str(&format!(" AND endpoint >= ?{n} AND endpoint < ?{}", n + 1));
    }
    sql.push_str(" ORDER BY seq");
    if let Some(l) = f.limit {
        sql.push_str(&format!(" LIMIT {l}"));
    }
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), map_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn get(conn: &Connection, seq: i64) -> Result<Option<AuditRow>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM audit WHERE seq = ?1"))?;
    let mut rows = stmt.query_map([seq], map_row)?;
    Ok(rows.next().transpose()?)
}

/// The `prev_hash` of entry 1: every chain starts here.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Result of `audit verify`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VerifyReport {
    pub entries: u64,
    pub last_seq: i64,
    pub head_hash: String,
    /// The first entry that does not check out, and why.
    pub first_broken: Option<(i64, String)>,
    /// What the check against the anchor file found (or why it was
    /// skipped).
    pub anchors: String,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// Walk the chain from genesis (entry 1) to its head, without anchors.
pub fn verify(conn: &Connection) -> Result<VerifyReport> {
    verify_anchored(conn, None)
}

/// Walk the chain from genesis to its head and check it against the heads
/// recorded outside the database (`None`: no anchor file to check).
pub fn verify_anchored(
    conn: &Connection,
    anchors: Option<&[super::anchor::Anchor]>,
) -> Result<VerifyReport> {
    use rusqlite::OptionalExtension;
    let head: Option<(i64, String, i64, String)> = conn
        .query_row(
            "SELECT first_seq, first_prev_hash, last_seq, last_hash FROM audit_head WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let mut by_seq: std::collections::BTreeMap<i64, Vec<&super::anchor::Anchor>> =
        Default::default();
    for a in anchors.unwrap_or_default() {
        by_seq.entry(a.seq).or_default().push(a);
    }
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM audit ORDER BY seq"))?;
    let mut rows = stmt.query([])?;
    // retention only blanks ids, it never deletes entries: the chain
    // always starts at entry 1, whatever audit_head says
    let mut expected_seq = 1;
    let mut prev = GENESIS.to_string();
    let mut entries = 0u64;
    let mut broken = None;
    while let Some(r) = rows.next()? {
        let row = map_row(r)?;
        entries += 1;
        if row.seq != expected_seq {
            broken = Some((
                expected_seq,
                if row.seq > expected_seq {
                    format!(
                        "entries {expected_seq}..{} are missing (removed)",
                        row.seq - 1
                    )
                } else {
                    format!("entry {} is out of order", row.seq)
                },
            ));
            break;
        }
        if row.prev_hash != prev {
            broken = Some((row.seq, "link to the previous entry does not match".into()));
            break;
        }
        if let Some(id) = &row.record_id {
            if row_id_hash(row.id_nonce.as_deref(), id) != row.record_id_hash {
                broken = Some((row.seq, "record id was altered".into()));
                break;
            }
        }
        if entry_hash(&row) != row.entry_hash {
            broken = Some((row.seq, "entry content was altered".into()));
            break;
        }
        if let Some(a) = by_seq
            .get(&row.seq)
            .and_then(|v| v.iter().find(|a| a.hash != row.entry_hash))
        {
            broken = Some((
                row.seq,
                format!(
                    "entry {} differs from the head recorded in {}: the log was rewritten or replaced",
                    row.seq,
                    a.place()
                ),
            ));
            break;
        }
        prev = row.entry_hash;
        expected_seq += 1;
    }
    let end = expected_seq - 1;
    let (last_seq, last_hash) = match &head {
        Some((_, _, s, h)) => (*s, h.clone()),
        None => (end, prev.clone()),
    };
    if broken.is_none() {
        broken = match &head {
            None => Some((
                expected_seq,
                "the audit head (table audit_head) is missing: it was deleted".into(),
            )),
            Some((first_seq, first_prev, _, _)) if *first_seq != 1 || first_prev != GENESIS => {
                Some((
                    1,
                    format!(
                        "the audit head says the log starts at entry {first_seq}, but it always starts at entry 1: audit_head was edited"
                    ),
                ))
            }
            Some(_) if end != last_seq || prev != last_hash => Some((
                expected_seq,
                format!(
                    "the log ends at entry {end} but its head says {last_seq}: entries were removed from the end"
                ),
            )),
            Some(_) => None,
        };
    }
    if broken.is_none() {
        if let Some(a) = by_seq
            .values()
            .flatten()
            .filter(|a| a.seq > end)
            .max_by_key(|a| a.seq)
        {
            broken = Some((
                end + 1,
                format!(
                    "the log ends at entry {end} but {} recorded entry {}: entries were removed from the end (or the whole log)",
                    a.place(),
                    a.seq
                ),
            ));
        }
    }
    let anchors = match anchors {
        None => "skipped: no audit.anchor_file configured".to_string(),
        Some([]) => "none recorded yet".to_string(),
        Some(a) => format!("{} checked", a.len()),
    };
    Ok(VerifyReport {
        entries,
        last_seq,
        head_hash: last_hash,
        first_broken: broken,
        anchors,
    })
}

/// Who runs this command, for the audit log: the OS user (and who sudo'ed).
pub fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(os_user_name);
    match std::env::var("SUDO_USER") {
        Ok(s) if s != user => format!("user:{user} (sudo by {s})"),
        _ => format!("user:{user}"),
    }
}

/// The login name of the real uid from the password database, or `uid:N`.
fn os_user_name() -> String {
    // SAFETY: getuid has no preconditions; getpwuid_r writes only into the
    // buffers we pass and we read pw_name only when it reported success.
    unsafe {
        let uid = libc::getuid();
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc == 0 && !result.is_null() && !pwd.pw_name.is_null() {
            return std::ffi::CStr::from_ptr(pwd.pw_name)
                .to_string_lossy()
                .into_owned();
        }
        format!("uid:{uid}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn a_batch_chains_like_single_appends_with_fresh_salts() {
        let mut s = Store::in_memory().unwrap();
        s.audit_append(&[AuditEntry::test_entry("first")]).unwrap();
        // more entries than one buffer of salts holds
        let mut batch = s.batch().unwrap();
        for i in 0..300 {
            batch
                .add(None, &AuditEntry::test_entry(&format!("u{i}")))
                .unwrap();
        }
        batch.commit().unwrap();
        s.audit_append(&[AuditEntry::test_entry("last")]).unwrap();
        let r = s.audit_verify().unwrap();
        assert!(r.ok(), "{r:?}");
        assert_eq!((r.entries, r.last_seq), (302, 302));
        assert_eq!(s.audit_head().unwrap().unwrap().0, 302);
        let nonces: std::collections::HashSet<String> = s
            .conn()
            .prepare("SELECT id_nonce FROM audit")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(nonces.len(), 302);
    }

    #[test]
    fn stored_vocabularies_keep_their_names() {
        fn names<T: Copy>(all: &[T], f: fn(T) -> &'static str) -> Vec<&'static str> {
            all.iter().map(|v| f(*v)).collect()
        }
        assert_eq!(
            names(Direction::ALL, Direction::as_str),
            ["out", "in", "local"]
        );
        assert_eq!(
            names(AuditOutcome::ALL, AuditOutcome::as_str),
            ["ok", "failed", "parked", "unknown"]
        );
        assert_eq!(
            names(AuditKind::ALL, AuditKind::as_str),
            [
                "user",
                "group",
                "offering",
                "registration",
                "result",
                "lineItem",
                "document",
                "plan",
                "state"
            ]
        );
        assert_eq!(
            names(
                crate::store::RunOutcome::ALL,
                crate::store::RunOutcome::as_str
            ),
            [
                "running",
                "ok",
                "partial",
                "failed",
                "refused",
                "interrupted",
                "deferred",
                "drift"
            ]
        );
        for o in crate::store::RunOutcome::ALL {
            assert_eq!(crate::store::RunOutcome::parse(o.as_str()), Some(*o));
        }
    }

    #[test]
    fn audit_vocabulary_round_trips_by_name() {
        let names: std::collections::HashSet<&str> =
            AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(names.len(), AuditAction::ALL.len(), "one name each");
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(*a));
        }
        assert_eq!(
            AuditAction::Record(RecordKind::Group, RecordWrite::Deactivate).as_str(),
            "group.retire"
        );
        assert_eq!(
            AuditKind::from(RecordKind::Registration).as_str(),
            "registration"
        );
        // parked entries (JSON lines) keep the stored names
        let e = AuditEntry::test_entry("stu-1");
        let line = serde_json::to_string(&e).unwrap();
        assert!(
            line.contains(r#""direction":"out""#)
                && line.contains(r#""action":"user.create""#)
                && line.contains(r#""record_kind":"user""#)
                && line.contains(r#""outcome":"ok""#),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<AuditEntry>(&line).unwrap(), e);
    }

    fn store_with(n: usize) -> Store {
        let mut s = Store::in_memory().unwrap();
        for i in 0..n {
            s.commit(&[(None, AuditEntry::test_entry(&format!("stu-{i}")))])
                .unwrap();
        }
        s
    }

    #[test]
    fn intact_chain_verifies() {
        let s = store_with(5);
        let r = verify(s.conn()).unwrap();
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.entries, 5);
        assert_eq!(r.last_seq, 5);
    }

    #[test]
    fn edited_row_is_found() {
        let s = store_with(5);
        s.conn()
            .execute("UPDATE audit SET outcome = 'failed' WHERE seq = 3", [])
            .unwrap();
        let r = verify(s.conn()).unwrap();
        assert_eq!(r.first_broken.unwrap().0, 3);
    }

    #[test]
    fn edited_subject_is_found() {
        let s = store_with(5);
        s.conn()
            .execute("UPDATE audit SET record_id = 'stu-99' WHERE seq = 2", [])
            .unwrap();
        let r = verify(s.conn()).unwrap();
        assert_eq!(r.first_broken.unwrap(), (2, "record id was altered".into()));
    }

    #[test]
    fn redacted_subject_still_verifies() {
        let s = store_with(3);
        s.conn()
            .execute("UPDATE audit SET record_id = NULL WHERE seq = 2", [])
            .unwrap();
        assert!(verify(s.conn()).unwrap().ok());
    }

    #[test]
    fn subject_hashes_are_salted_and_unlinkable_once_purged() {
        let mut s = store_with(0);
        for _ in 0..2 {
            s.commit(&[(None, AuditEntry::test_entry("stu-1001"))])
                .unwrap();
        }
        let rows = list(s.conn(), &AuditFilter::default()).unwrap();
        // the same person gets a different hash in every entry
        assert_ne!(rows[0].record_id_hash, rows[1].record_id_hash);
        assert!(
            rows.iter()
                .all(|r| r.id_nonce.as_ref().is_some_and(|n| n.len() == 32))
        );
        // a changed nonce with the id still present is found
        s.conn()
            .execute("UPDATE audit SET id_nonce = '00' WHERE seq = 2", [])
            .unwrap();
        assert_eq!(
            verify(s.conn()).unwrap().first_broken.unwrap(),
            (2, "record id was altered".into())
        );
        s.conn()
            .execute(
                "UPDATE audit SET id_nonce = ?1 WHERE seq = 2",
                [&rows[1].id_nonce],
            )
            .unwrap();
        // erase: id and nonce go, the chain still verifies
        let f = s.forget("stu-1001", "stu-1001", None, None).unwrap();
        assert_eq!(f.audit_entries_anonymised, 2);
        assert!(verify(s.conn()).unwrap().ok());
        let after = list(s.conn(), &AuditFilter::default()).unwrap();
        for r in &after {
            assert_eq!(
                (r.record_id.as_deref(), r.id_nonce.as_deref()),
                (None, None)
            );
            // trying the student number no longer finds the entry
            assert_ne!(r.record_id_hash, id_hash_v1("stu-1001"));
            assert_ne!(r.record_id_hash, id_hash("", "stu-1001"));
        }
    }

    #[test]
    fn schema_3_entries_without_a_nonce_still_verify() {
        let s = store_with(2);
        // an entry as schema 3 wrote it: unsalted hash, no nonce
        let row = get(s.conn(), 2).unwrap().unwrap();
        let mut old = row.clone();
        old.record_id_hash = id_hash_v1(old.record_id.as_deref().unwrap());
        old.id_nonce = None;
        old.entry_hash = entry_hash(&old);
        s.conn()
            .execute(
                "UPDATE audit SET record_id_hash = ?1, id_nonce = NULL, entry_hash = ?2 WHERE seq = 2",
                params![old.record_id_hash, old.entry_hash],
            )
            .unwrap();
        s.conn()
            .execute(
                "UPDATE audit_head SET last_hash = ?1 WHERE id = 1",
                [&old.entry_hash],
            )
            .unwrap();
        assert!(verify(s.conn()).unwrap().ok());
        s.conn()
            .execute("UPDATE audit SET record_id = 'stu-99' WHERE seq = 2", [])
            .unwrap();
        assert_eq!(verify(s.conn()).unwrap().first_broken.unwrap().0, 2);
    }

    #[test]
    fn deleted_middle_row_is_found() {
        let s = store_with(5);
        s.conn()
            .execute("DELETE FROM audit WHERE seq = 2", [])
            .unwrap();
        let r = verify(s.conn()).unwrap();
        let (seq, why) = r.first_broken.unwrap();
        assert_eq!(seq, 2);
        assert!(why.contains("missing"), "{why}");
    }

    #[test]
    fn deleted_last_row_is_found() {
        let s = store_with(5);
        s.conn()
            .execute("DELETE FROM audit WHERE seq = 5", [])
            .unwrap();
        let r = verify(s.conn()).unwrap();
        assert_eq!(r.first_broken.unwrap().0, 5);
    }

    #[test]
    fn filters_select_by_person_kind_and_time() {
        let s = store_with(4);
        let rows = list(
            s.conn(),
            &AuditFilter {
                person: Some("stu-2".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].seq, 3);
        let all = list(
            s.conn(),
            &AuditFilter {
                kind: Some("user.create".into()),
                since: Some("2000-01-01T00:00:00Z".into()),
                until: Some("2999-01-01T00:00:00Z".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(all.len(), 4);
        let none = list(
            s.conn(),
            &AuditFilter {
                kind: Some("group".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(none.is_empty());
        assert_eq!(
            get(s.conn(), 4).unwrap().unwrap().record_id.as_deref(),
            Some("stu-3")
        );
        assert!(get(s.conn(), 40).unwrap().is_none());
    }
}
