//! Read-only looks at the state file for the admin endpoint, metrics and
//! alerts (they must not wait on, or block, a running sync).

use std::path::Path;

use rusqlite::Connection;

/// A read-only connection to the state database, for the admin endpoint.
pub fn open_read_only(path: &Path) -> anyhow::Result<Connection> {
    use rusqlite::OpenFlags;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(2))?;
    Ok(conn)
}

/// The results outbox at a glance.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Outbox {
    /// Count per state; every state is present (0 when empty).
    pub by_state: Vec<(String, i64)>,
    /// Age of the oldest result still to push (pending or failed).
    pub oldest_age_seconds: Option<f64>,
}

/// Read the outbox (table `results`, migration 2) from the state database.
pub fn outbox(conn: &Connection) -> anyhow::Result<Outbox> {
    let mut by_state: Vec<(String, i64)> = ["pending", "pushed", "failed", "parked"]
        .iter()
        .map(|s| (s.to_string(), 0))
        .collect();
    let mut stmt = conn.prepare("SELECT state, COUNT(*) FROM results GROUP BY state")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (state, n) = row?;
        match by_state.iter_mut().find(|(s, _)| *s == state) {
            Some(slot) => slot.1 = n,
            None => by_state.push((state, n)),
        }
    }
    let oldest: Option<String> = conn.query_row(
        "SELECT MIN(first_seen) FROM results WHERE state IN ('pending', 'failed')",
        [],
        |r| r.get(0),
    )?;
    let oldest_age_seconds = oldest
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| {
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0
        })
        .map(|s| s.max(0.0));
    Ok(Outbox {
        by_state,
        oldest_age_seconds,
    })
}
