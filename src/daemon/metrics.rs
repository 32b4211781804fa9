//! Prometheus metrics (the `prometheus-client` crate, OpenMetrics text).
//!
//! Counters live for the process (as Prometheus expects; they restart at
//! zero with the daemon). Gauges that describe the state file (outbox
//! depth, last success) are read from SQLite when `/metrics` is scraped, so
//! they are right after a restart and also count one-shot runs.

use std::path::Path;
use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rusqlite::{Connection, OptionalExtension};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub kind: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RecordLabels {
    pub kind: String,
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub endpoint: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;
type DurationHistogram = Family<KindLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    pub runs: Family<RunLabels, Counter>,
    pub records: Family<RecordLabels, Counter>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_retries: Family<EndpointLabels, Counter>,
    pub run_seconds: DurationHistogram,
    pub reloads: Family<OutcomeLabels, Counter>,
    pub running: Gauge,
    outbox: Family<StateLabels, Gauge>,
    outbox_oldest: FloatGauge,
    last_success: Family<KindLabels, FloatGauge>,
    last_run: Family<KindLabels, FloatGauge>,
    plans_held: Gauge,
    freeze_active: Family<StateLabels, Gauge>,
    deferred: Family<KindLabels, Gauge>,
}

fn run_histogram() -> Histogram {
    // 1 s .. ~4.5 h
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        1.0, 3.0, 10,
    ))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sisync");
        let m = Metrics {
            runs: Family::default(),
            records: Family::default(),
            http_requests: Family::default(),
            http_retries: Family::default(),
            run_seconds: Family::new_with_constructor(run_histogram),
            reloads: Family::default(),
            running: Gauge::default(),
            outbox: Family::default(),
            outbox_oldest: FloatGauge::default(),
            last_success: Family::default(),
            last_run: Family::default(),
            plans_held: Gauge::default(),
            freeze_active: Family::default(),
            deferred: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "runs",
            "Sync runs by kind (roster, results) and outcome (ok, partial, deferred, failed, refused, interrupted, busy)",
            m.runs.clone(),
        );
        registry.register(
            "records",
            "Records written by kind (user, group) and action (created, updated, deactivated, failed)",
            m.records.clone(),
        );
        registry.register(
            "http_requests",
            "Outbound HTTP requests by endpoint host and status (error: no response)",
            m.http_requests.clone(),
        );
        registry.register(
            "http_retries",
            "Outbound HTTP requests retried, by endpoint host",
            m.http_retries.clone(),
        );
        registry.register(
            "run_duration_seconds",
            "Duration of sync runs by kind",
            m.run_seconds.clone(),
        );
        registry.register(
            "config_reloads",
            "Config reloads (SIGHUP) by outcome (ok, failed)",
            m.reloads.clone(),
        );
        registry.register(
            "run_in_progress",
            "1 while a sync run is in progress",
            m.running.clone(),
        );
        registry.register(
            "outbox_results",
            "Results in the outbox by state (pending, pushed, failed, parked)",
            m.outbox.clone(),
        );
        registry.register(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest pending or failed result in the outbox (0 when none)",
            m.outbox_oldest.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time at which the last successful (ok or partial) run of a kind finished",
            m.last_success.clone(),
        );
        registry.register(
            "last_run_timestamp_seconds",
            "Unix time at which the last run of a kind finished, whatever its outcome",
            m.last_run.clone(),
        );
        registry.register(
            "plans_held",
            "Plans the safety gate holds for an admin (sisync plan approve ID)",
            m.plans_held.clone(),
        );
        registry.register(
            "freeze_active",
            "1 while a [[safety.freeze]] window is in force (label state = its mode), as of the last roster run",
            m.freeze_active.clone(),
        );
        registry.register(
            "deferred_changes",
            "Changes a freeze window held back in the last roster run, by kind",
            m.deferred.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Fresh metrics, not the process-wide ones.
    #[cfg(test)]
    pub fn new_for_test() -> Metrics {
        Metrics::new()
    }

    /// The freeze window of the last roster run and what it deferred.
    pub fn set_freeze(&self, d: Option<&crate::sync::freeze::Deferred>) {
        for mode in ["adds-only", "paused"] {
            let on = d.is_some_and(|d| d.mode == mode);
            self.freeze_active
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
            self.deferred
                .get_or_create(&KindLabels { kind: kind.into() })
                .set(n as i64);
        }
    }

    /// Count one finished run.
    pub fn run_finished(&self, kind: &str, outcome: &str, seconds: f64) {
        self.runs
            .get_or_create(&RunLabels {
                kind: kind.into(),
                outcome: outcome.into(),
            })
            .inc();
        self.run_seconds
            .get_or_create(&KindLabels { kind: kind.into() })
            .observe(seconds);
    }

    pub fn records_written(&self, kind: &str, action: &str, n: u64) {
        if n > 0 {
            self.records
                .get_or_create(&RecordLabels {
                    kind: kind.into(),
                    action: action.into(),
                })
                .inc_by(n);
        }
    }

    /// The text exposition, with the state-file gauges read now.
    pub fn render(&self, state_db: &Path) -> String {
        if let Err(e) = self.refresh_from_db(state_db) {
            tracing::warn!("metrics: cannot read the state database: {e:#}");
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    fn refresh_from_db(&self, state_db: &Path) -> anyhow::Result<()> {
        let conn = open_read_only(state_db)?;
        let o = outbox(&conn)?;
        for (state, n) in &o.by_state {
            self.outbox
                .get_or_create(&StateLabels {
                    state: state.clone(),
                })
                .set(*n);
        }
        self.outbox_oldest.set(o.oldest_age_seconds.unwrap_or(0.0));
        self.plans_held.set(
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
                self.last_success
                    .get_or_create(&KindLabels { kind: kind.into() })
                    .set(t);
            }
            if let Some(t) = ts("'ok', 'partial', 'failed', 'refused', 'interrupted', 'deferred'")?
            {
                self.last_run
                    .get_or_create(&KindLabels { kind: kind.into() })
                    .set(t);
            }
        }
        Ok(())
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}

/// The label for an endpoint: `host[:port]` of the URL, never its path or
/// query (which may hold ids).
pub fn endpoint_label(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => "unknown".into(),
        },
        Err(_) => "unknown".into(),
    }
}

/// Count one outbound HTTP exchange (src/http.rs calls this).
pub fn http_request(url: &str, status: Option<u16>) {
    global()
        .http_requests
        .get_or_create(&HttpLabels {
            endpoint: endpoint_label(url),
            status: status.map_or_else(|| "error".to_string(), |s| s.to_string()),
        })
        .inc();
}

/// Count one retry of an outbound request (src/http.rs calls this).
pub fn http_retry(url: &str) {
    global()
        .http_retries
        .get_or_create(&EndpointLabels {
            endpoint: endpoint_label(url),
        })
        .inc();
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_labels_keep_host_and_port_only() {
        assert_eq!(
            endpoint_label("https://sis.example/ims/oneroster/users?filter=x"),
            "sis.example"
        );
        assert_eq!(
            endpoint_label("http://127.0.0.1:8080/scim/v2/Users/stu-1"),
            "127.0.0.1:8080"
        );
        assert_eq!(endpoint_label("not a url"), "unknown");
    }

    #[test]
    fn outbox_counts_and_oldest_age_come_from_the_results_table() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
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

        let text = global().render(&db);
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
