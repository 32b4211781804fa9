//! The metrics the daemon reads from its config and state file at scrape
//! time (the registry itself is the leaf [`crate::telemetry`]).

use std::path::Path;

use rusqlite::OptionalExtension;

pub use crate::store::glance::{open_read_only, outbox};
pub use crate::telemetry::*;

/// The freeze window of the last roster run and what it deferred.
pub fn set_freeze(m: &Metrics, d: Option<&crate::sync::freeze::Deferred>) {
    for mode in ["adds-only", "paused"] {
        let on = d.is_some_and(|d| d.mode == mode);
        m.freeze_active
            .get_or_create(&StateLabels { state: mode.into() })
            .set(on as i64);
    }
    let d = d.cloned().unwrap_or_default();
    for (kind, n) in [
        ("user_deactivate", d.users_deactivated),
        ("membership_remove", d.memberships_removed),
        ("group_retire", d.classes_retired),
        ("accommodation_reduce", d.accommodations_reduced),
        ("other", d.other),
    ] {
        m.deferred
            .get_or_create(&KindLabels { kind: kind.into() })
            .set(n as i64);
    }
}

/// The OpenMetrics text exposition, with the state-file gauges and the
/// process metrics read now.
pub fn render(m: &Metrics, state_db: &Path) -> String {
    if let Err(e) = refresh_from_db(m, state_db) {
        tracing::warn!("metrics: cannot read the state database: {e:#}");
    }
    m.refresh_process();
    m.encode()
}

fn refresh_from_db(m: &Metrics, state_db: &Path) -> anyhow::Result<()> {
    let conn = open_read_only(state_db)?;
    let o = outbox(&conn)?;
    for (state, n) in &o.by_state {
        m.outbox
            .get_or_create(&StateLabels {
                state: state.clone(),
            })
            .set(*n);
    }
    m.outbox_oldest.set(o.oldest_age_seconds.unwrap_or(0.0));
    let last_reconcile: Option<String> = conn
        .query_row(
            "SELECT summary FROM runs WHERE kind = 'reconcile' AND summary IS NOT NULL ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(v) = last_reconcile.and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
    {
        for finding in ["missing", "drifted", "orphans", "membership"] {
            m.reconcile
                .get_or_create(&FindingLabels {
                    finding: finding.into(),
                })
                .set(v.get(finding).and_then(|x| x.as_i64()).unwrap_or(0));
        }
    }
    m.plans_held.set(
        crate::store::plans::held_now(&conn)
            .map(|h| h.len() as i64)
            .unwrap_or(0),
    );
    for kind in ["roster", "results"] {
        let ts = |outcomes: &str| -> anyhow::Result<Option<f64>> {
            let at: Option<String> = conn
                .query_row(
                    &format!(
                        "SELECT finished_at FROM runs WHERE kind = ?1 AND outcome IN ({outcomes})
                         AND finished_at IS NOT NULL ORDER BY id DESC LIMIT 1"
                    ),
                    [kind],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(at
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.timestamp_millis() as f64 / 1000.0))
        };
        if let Some(t) = ts("'ok', 'partial'")? {
            m.last_success
                .get_or_create(&KindLabels { kind: kind.into() })
                .set(t);
        }
        if let Some(t) = ts("'ok', 'partial', 'failed', 'refused', 'interrupted', 'deferred'")? {
            m.last_run
                .get_or_create(&KindLabels { kind: kind.into() })
                .set(t);
        }
    }
    Ok(())
}

/// Create the HTTP series of every network endpoint in the config (at 0),
/// so the HTTP families are exposed from start-up too. A config without
/// network endpoints (CSV in, CSV out) has no HTTP series.
pub fn expose_endpoints(l: &crate::config::Loaded) {
    let urls: Vec<&str> = l
        .endpoints()
        .into_iter()
        .map(|(_, e)| e.base_url.as_str())
        .collect();
    let m = global();
    for url in urls {
        let endpoint = endpoint_label(url);
        let _ = m.http_requests.get_or_create(&HttpLabels {
            endpoint: endpoint.clone(),
            status: "error".into(),
        });
        let _ = m.http_retries.get_or_create(&EndpointLabels { endpoint });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn outbox_counts_and_oldest_age_come_from_the_results_table() {
        let (_dir, db) = crate::test_util::temp_path("s.db");
        drop(crate::store::Store::open(&db).unwrap());
        let conn = Connection::open(&db).unwrap();
        let old = (chrono::Utc::now() - chrono::Duration::hours(2)).to_rfc3339();
        let new = chrono::Utc::now().to_rfc3339();
        for (key, state, first_seen) in [
            ("a", "pending", &old),
            ("b", "pending", &new),
            ("c", "pushed", &old),
            ("d", "parked", &new),
        ] {
            conn.execute(
                "INSERT INTO results (key, candidate, line_item, origin, state, value_hash, first_seen, updated_at)
                 VALUES (?1, 'cand', 'li', 'test', ?2, 'h', ?3, ?3)",
                rusqlite::params![key, state, first_seen],
            )
            .unwrap();
        }
        let o = outbox(&open_read_only(&db).unwrap()).unwrap();
        let n = |s: &str| o.by_state.iter().find(|(k, _)| k == s).unwrap().1;
        assert_eq!(
            (n("pending"), n("pushed"), n("failed"), n("parked")),
            (2, 1, 0, 1)
        );
        let age = o.oldest_age_seconds.unwrap();
        assert!((7190.0..7300.0).contains(&age), "{age}");

        let text = render(global(), &db);
        assert!(
            text.contains("sisync_outbox_results{state=\"pending\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("sisync_outbox_oldest_pending_age_seconds 7"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
