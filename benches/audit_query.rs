//! Breach-support benchmark (issue 6): `sisync audit list --endpoint E
//! --since T --until U` on a 1,000,000-entry audit log.
//!
//! Builds a state file with 1M chained entries (50,000 persons, 20
//! endpoints), spreads their times over a year (this breaks the chain, which
//! the query does not look at), then runs the real binary as a child
//! process: one endpoint over one week, and one endpoint over the whole
//! year. Run with `cargo bench --bench audit_query`.

mod common;
use common::{Source, TestConfig};

use std::time::Instant;

use sisync::store::{
    AuditAction, AuditEntry, AuditKind, AuditOutcome, Direction, RecordKind, RecordWrite, Store,
};

const ENTRIES: usize = 1_000_000;
const ENDPOINTS: usize = 20;
const PERSONS: usize = 50_000;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let started = Instant::now();
    {
        let mut store = Store::open(&db).unwrap();
        let mut batch = store.batch().unwrap();
        for i in 0..ENTRIES {
            let e = AuditEntry {
                actor: "daemon".into(),
                run_id: Some((i / 50_000) as i64),
                direction: Direction::Out,
                endpoint: format!("https://platform{}.example/scim/v2/Users", i % ENDPOINTS),
                action: AuditAction::Record(RecordKind::User, RecordWrite::Update),
                record_kind: AuditKind::User,
                record_id: format!("stu-{}", i % PERSONS),
                fields: "name,role".into(),
                payload_sha256: Some(format!("{i:064x}")),
                outcome: AuditOutcome::Ok,
                detail: None,
            };
            batch.add(None, &e).unwrap();
        }
        batch.commit().unwrap();
    }
    let built = started.elapsed();
    // spread over 2026: entry i at day i*365/ENTRIES
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        &format!(
            "UPDATE audit SET at = strftime('%Y-%m-%dT%H:%M:%fZ', '2026-01-01', '+' || (seq * 31536 / {}) || ' seconds')",
            ENTRIES / 1000
        ),
        [],
    )
    .unwrap();
    drop(conn);
    let cfg = TestConfig::new(dir.path())
        .institution("Bench", "99AA")
        .source(Source::OneRosterCsv("x".into()))
        .write();
    println!(
        "audit_query: {ENTRIES} entries, {ENDPOINTS} endpoints, {PERSONS} persons (built in {:.1} s, {} MB)",
        built.as_secs_f64(),
        std::fs::metadata(&db).unwrap().len() / 1_000_000
    );
    for (what, since, until) in [
        ("one endpoint, one week", "2026-03-02", "2026-03-09"),
        ("one endpoint, whole year", "2026-01-01", "2027-01-01"),
    ] {
        let mut best = f64::MAX;
        let mut summary = String::new();
        for _ in 0..3 {
            let t = Instant::now();
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_sisync"))
                .args([
                    "--config",
                    &cfg.display().to_string(),
                    "audit",
                    "list",
                    "--endpoint",
                    "https://platform7.example",
                    "--since",
                    since,
                    "--until",
                    until,
                    "--csv",
                ])
                .output()
                .unwrap();
            best = best.min(t.elapsed().as_secs_f64());
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            summary = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if summary.is_empty() {
                summary = format!(
                    "{} CSV lines",
                    out.stdout.iter().filter(|b| **b == b'\n').count()
                );
            }
        }
        println!("  {what}: {:.3} s end to end (best of 3; {summary})", best);
    }
}
