//! Prometheus metrics (the `prometheus-client` crate, OpenMetrics text).
//!
//! Counters live for the process (as Prometheus expects; they restart at
//! zero with the daemon). Gauges that describe the state file (outbox
//! depth, last success) are read from SQLite when `/metrics` is scraped, so
//! they are right after a restart and also count one-shot runs.
//!
//! Every family with a fixed set of labels has all its series from start-up
//! (at zero), so alert rules need no `absent()`. `/metrics` answers
//! OpenMetrics to scrapers that ask for it and the classic text format
//! (0.0.4, counters' HELP on their `_total` name) to everything else
//! ([`to_classic_text`]). Process metrics (`process_*`) come from
//! `/proc/self` at each scrape.

use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub kind: String,
    pub outcome: String,
}

/// `record` (user, group, result): one meaning per label name, and
/// `kind` already names the run kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RecordLabels {
    pub record: String,
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
    pub commit: String,
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
    pub(crate) outbox: Family<StateLabels, Gauge>,
    pub(crate) outbox_oldest: FloatGauge,
    pub(crate) last_success: Family<KindLabels, FloatGauge>,
    pub(crate) last_run: Family<KindLabels, FloatGauge>,
    pub(crate) plans_held: Gauge,
    pub(crate) freeze_active: Family<StateLabels, Gauge>,
    pub(crate) deferred: Family<KindLabels, Gauge>,
    pub(crate) reconcile: Family<FindingLabels, Gauge>,
    process: ProcessGauges,
}

#[derive(Default)]
struct ProcessGauges {
    start_time: FloatGauge,
    resident: Gauge,
    virtual_mem: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
}

/// The run kinds, run outcomes and record actions the daemon reports.
pub const RUN_KINDS: &[&str] = &["roster", "results"];
pub const RUN_OUTCOMES: &[&str] = &["ok", "partial", "failed", "refused", "interrupted", "busy"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FindingLabels {
    pub finding: String,
}
const RECORD_ACTIONS: &[(&str, &[&str])] = &[
    ("user", &["created", "updated", "deactivated", "failed"]),
    ("group", &["created", "updated", "deactivated", "failed"]),
    ("result", &["pushed", "updated", "retrying", "failed"]),
];

fn run_histogram() -> Histogram {
    // 1 s .. ~4.5 h
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        1.0, 3.0, 10,
    ))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::default();
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
            reconcile: Family::default(),
            process: ProcessGauges::default(),
            registry: Registry::default(),
        };
        let p = &m.process;
        registry.register(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            p.start_time.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            p.resident.clone(),
        );
        registry.register(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            p.virtual_mem.clone(),
        );
        registry.register(
            "process_open_fds",
            "Number of open file descriptors",
            p.open_fds.clone(),
        );
        registry.register(
            "process_max_fds",
            "Maximum number of open file descriptors",
            p.max_fds.clone(),
        );
        let sis = registry.sub_registry_with_prefix("sisync");
        let build: Family<BuildLabels, Gauge> = Family::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
                commit: env!("SISYNC_COMMIT").into(),
            })
            .set(1);
        sis.register(
            "build_info",
            "Always 1; the version and git commit of the running binary",
            build,
        );
        sis.register(
            "runs",
            "Sync runs by kind (roster, results) and outcome (ok, partial, deferred, failed, refused, interrupted, busy)",
            m.runs.clone(),
        );
        sis.register(
            "records",
            "Records written by record (user, group, result) and action (created, updated, deactivated, pushed, retrying, failed)",
            m.records.clone(),
        );
        sis.register(
            "http_requests",
            "Outbound HTTP requests by endpoint host and status (error: no response)",
            m.http_requests.clone(),
        );
        sis.register(
            "http_retries",
            "Outbound HTTP requests retried, by endpoint host",
            m.http_retries.clone(),
        );
        sis.register(
            "run_duration_seconds",
            "Duration of sync runs by kind",
            m.run_seconds.clone(),
        );
        sis.register(
            "config_reloads",
            "Config reloads (SIGHUP) by outcome (ok, failed)",
            m.reloads.clone(),
        );
        sis.register(
            "run_in_progress",
            "1 while a sync run is in progress",
            m.running.clone(),
        );
        sis.register(
            "outbox_results",
            "Results in the outbox by state (pending, pushed, failed, parked)",
            m.outbox.clone(),
        );
        sis.register(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest pending or failed result in the outbox (0 when none)",
            m.outbox_oldest.clone(),
        );
        sis.register(
            "last_success_timestamp_seconds",
            "Unix time at which the last successful (ok or partial) run of a kind finished (0: never)",
            m.last_success.clone(),
        );
        sis.register(
            "last_run_timestamp_seconds",
            "Unix time at which the last run of a kind finished, whatever its outcome (0: never)",
            m.last_run.clone(),
        );
        sis.register(
            "plans_held",
            "Plans the safety gate holds for an admin (sisync plan approve ID)",
            m.plans_held.clone(),
        );
        sis.register(
            "freeze_active",
            "1 while a [[safety.freeze]] window is in force (label state = its mode), as of the last roster run",
            m.freeze_active.clone(),
        );
        sis.register(
            "reconcile_findings",
            "What the last reconcile found on the platform, by finding (missing, drifted, orphans, membership); 0 before the first",
            m.reconcile.clone(),
        );
        for finding in ["missing", "drifted", "orphans", "membership"] {
            let _ = m.reconcile.get_or_create(&FindingLabels {
                finding: finding.into(),
            });
        }
        sis.register(
            "deferred_changes",
            "Changes a freeze window held back in the last roster run, by kind",
            m.deferred.clone(),
        );
        // every fixed series from start-up, at zero
        for kind in RUN_KINDS {
            for outcome in RUN_OUTCOMES {
                let _ = m.runs.get_or_create(&RunLabels {
                    kind: (*kind).into(),
                    outcome: (*outcome).into(),
                });
            }
            let k = KindLabels {
                kind: (*kind).into(),
            };
            let _ = m.run_seconds.get_or_create(&k);
            let _ = m.last_success.get_or_create(&k);
            let _ = m.last_run.get_or_create(&k);
        }
        for (record, actions) in RECORD_ACTIONS {
            for action in *actions {
                let _ = m.records.get_or_create(&RecordLabels {
                    record: (*record).into(),
                    action: (*action).into(),
                });
            }
        }
        for outcome in ["ok", "failed"] {
            let _ = m.reloads.get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            });
        }
        for state in ["pending", "pushed", "failed", "parked"] {
            let _ = m.outbox.get_or_create(&StateLabels {
                state: state.into(),
            });
        }
        Metrics { registry, ..m }
    }

    /// Fresh metrics, not the process-wide ones.
    #[cfg(test)]
    pub fn new_for_test() -> Metrics {
        Metrics::new()
    }

    /// The OpenMetrics text exposition of what is registered now.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
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

    pub fn records_written(&self, record: &str, action: &str, n: u64) {
        if n > 0 {
            self.records
                .get_or_create(&RecordLabels {
                    record: record.into(),
                    action: action.into(),
                })
                .inc_by(n);
        }
    }

    pub(crate) fn refresh_process(&self) {
        let p = process_stats();
        let p_ = &self.process;
        if let Some(t) = p.start_time {
            p_.start_time.set(t);
        }
        if let Some(v) = p.resident {
            p_.resident.set(v);
        }
        if let Some(v) = p.virtual_mem {
            p_.virtual_mem.set(v);
        }
        if let Some(v) = p.open_fds {
            p_.open_fds.set(v);
        }
        if let Some(v) = p.max_fds {
            p_.max_fds.set(v);
        }
    }
}

/// What `/proc/self` says about this process (None where unreadable).
#[derive(Debug, Default)]
pub struct ProcessStats {
    pub start_time: Option<f64>,
    pub resident: Option<i64>,
    pub virtual_mem: Option<i64>,
    pub open_fds: Option<i64>,
    pub max_fds: Option<i64>,
}

pub fn process_stats() -> ProcessStats {
    // SAFETY: sysconf has no preconditions
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let mut out = ProcessStats::default();
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // fields after the command name, which is in parentheses and may
        // hold spaces: state is field 3, vsize 23, rss 24, starttime 22
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<i64>().ok());
            out.virtual_mem = field(23);
            out.resident = field(24).map(|p| p * page);
            let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("btime "))
                    .and_then(|v| v.trim().parse::<f64>().ok())
            });
            if let (Some(start), Some(boot)) = (field(22), boot) {
                if ticks > 0 {
                    out.start_time = Some(boot + start as f64 / ticks as f64);
                }
            }
        }
    }
    out.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as i64);
    out.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
        });
    out
}

/// The OpenMetrics text as the classic Prometheus text format (0.0.4):
/// a counter's HELP and TYPE name its `_total` series (OpenMetrics names
/// the family without the suffix, so classic parsers find no HELP for
/// the samples), no `# UNIT` and no `# EOF`.
pub fn to_classic_text(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len() + 256);
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (*p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    out.push_str(&format!("{prefix}{name}_total {tail}"));
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// True when the scraper accepts OpenMetrics (Prometheus sends it first in
/// its Accept header); others get the classic text format.
pub fn wants_open_metrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}

/// The label for an endpoint: `host[:port]` of the URL, never its path or
/// query (which may hold ids).
pub fn endpoint_label(url: &str) -> String {
    endpoint_label_of(url::Url::parse(url).ok().as_ref())
}

/// [`endpoint_label`] of a parsed URL (None: one that did not parse).
fn endpoint_label_of(url: Option<&url::Url>) -> String {
    match url.map(|u| (u.host_str(), u.port())) {
        Some((Some(h), Some(p))) => format!("{h}:{p}"),
        Some((Some(h), None)) => h.to_string(),
        _ => "unknown".into(),
    }
}

/// Count one outbound HTTP exchange (src/http.rs calls this with the URL
/// it parsed once for the request; None: it did not parse).
pub fn http_request(url: Option<&url::Url>, status: Option<u16>) {
    global()
        .http_requests
        .get_or_create(&HttpLabels {
            endpoint: endpoint_label_of(url),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_counter_help_by_the_total_series() {
        let om = "# HELP sisync_runs Sync runs.\n# TYPE sisync_runs counter\nsisync_runs_total{kind=\"roster\"} 1\n# HELP sisync_x_seconds X.\n# TYPE sisync_x_seconds gauge\n# UNIT sisync_x_seconds seconds\nsisync_x_seconds 2\n# EOF\n";
        assert_eq!(
            to_classic_text(om),
            "# HELP sisync_runs_total Sync runs.\n# TYPE sisync_runs_total counter\nsisync_runs_total{kind=\"roster\"} 1\n# HELP sisync_x_seconds X.\n# TYPE sisync_x_seconds gauge\nsisync_x_seconds 2\n"
        );
        assert!(wants_open_metrics(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
        )));
        assert!(!wants_open_metrics(Some("text/plain")));
        assert!(!wants_open_metrics(None));
    }

    #[test]
    fn process_stats_come_from_proc_self() {
        let p = process_stats();
        assert!(p.resident.unwrap() > 0);
        assert!(p.open_fds.unwrap() >= 3);
        let now = chrono::Utc::now().timestamp() as f64;
        let start = p.start_time.unwrap();
        assert!(start <= now + 1.0 && start > now - 3600.0, "{start} {now}");
    }

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
}
