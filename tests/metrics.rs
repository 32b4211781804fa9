//! `/metrics` of a running daemon (child process): build info, process
//! metrics, every fixed series from start-up, and content negotiation
//! (OpenMetrics when asked for, the classic text format otherwise, which
//! `promtool check metrics` accepts when it is installed).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::fake_scim::{FakeScim, TOKEN};
use common::*;

async fn scrape(url: &str, accept: Option<&str>) -> (String, String) {
    let mut req = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5));
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    (ct, r.text().await.unwrap())
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_build_and_process_info_every_series_and_both_formats() {
    let fake = FakeScim::start(true).await;
    let dir = tempfile::tempdir().unwrap();
    let export = copy_fixture("oneroster-1.2", dir.path());
    let port = free_port();
    let extra = format!(
        "[schedule]\nroster_every = \"1h\"\njitter = \"0s\"\n\n[admin]\nlisten = \"127.0.0.1:{port}\"\n"
    );
    let loaded = scim_config(dir.path(), &export, &fake.base, TOKEN, &extra);
    let mut child = spawn_daemon(&loaded.file);
    let url = format!("http://127.0.0.1:{port}/metrics");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(&url).await.is_err() {
        assert!(Instant::now() < deadline, "daemon did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // what Prometheus sends: OpenMetrics
    let (ct, om) = scrape(
        &url,
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
    )
    .await;
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# HELP sisync_runs Sync runs"), "{om}");

    // anything else: classic text, HELP on the counters' own names
    let (ct, text) = scrape(&url, None).await;
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    assert!(!text.contains("# EOF"));
    assert_has(&text, &["# HELP sisync_runs_total Sync runs"]);
    assert!(text.contains("# TYPE sisync_runs_total counter"), "{text}");

    let commit = text
        .lines()
        .find(|l| l.starts_with("sisync_build_info{"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        commit.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION")))
            && commit.contains("commit=\"")
            && !commit.contains("commit=\"\"")
            && commit.ends_with(" 1"),
        "{commit}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let start = sample(&text, "process_start_time_seconds").unwrap();
    assert!(
        (now - 120.0..=now + 5.0).contains(&start),
        "{start} vs {now}"
    );
    assert!(sample(&text, "process_resident_memory_bytes").unwrap() > 1e6);
    assert!(sample(&text, "process_open_fds").unwrap() >= 3.0);
    assert!(sample(&text, "process_max_fds").unwrap() >= 64.0);
    // series that exist before anything happened, at zero: no absent()
    for series in [
        r#"sisync_runs_total{kind="results",outcome="refused"}"#,
        r#"sisync_runs_total{kind="roster",outcome="failed"}"#,
        r#"sisync_records_total{record="result",action="failed"}"#,
        r#"sisync_config_reloads_total{outcome="failed"}"#,
        r#"sisync_outbox_results{state="parked"}"#,
        r#"sisync_last_success_timestamp_seconds{kind="results"}"#,
        r#"sisync_run_duration_seconds_count{kind="results"}"#,
    ] {
        assert_eq!(sample(&text, series), Some(0.0), "{series} in\n{text}");
    }
    // one meaning per label name: `kind` is the run kind only
    assert!(!text.contains("sisync_records_total{kind="), "{text}");

    if Command::new("promtool").arg("--version").output().is_ok() {
        let mut p = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        p.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let o = p.wait_with_output().unwrap();
        assert_success(&o, "promtool check metrics");
    } else {
        eprintln!("promtool not installed (.ci/run installs it): format check skipped");
    }
    // SAFETY: the child is ours
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}
