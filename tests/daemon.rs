//! `sisync run` as a child process against the fake SCIM platform on
//! 127.0.0.1 (and a csv-drop folder): scheduled runs, systemd
//! notifications on a socket of the test's own, the admin endpoint,
//! SIGHUP with a broken config, SIGTERM in the middle of a run, the run
//! lock against a one-shot sync, the status page in headless Chromium, and
//! the log formats.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::fake_scim::{FakeScim, TOKEN};
use common::*;

const ADMIN_TOKEN: &str = "admin-token-for-tests-42";

/// The admin token the configs name (`env:SISYNC_TEST_ADMIN_TOKEN`): the
/// test process validates the config too.
fn admin_env() {
    // SAFETY: every test sets the same value; nothing reads it concurrently
    // in a way that could observe a torn write.
    unsafe { std::env::set_var("SISYNC_TEST_ADMIN_TOKEN", ADMIN_TOKEN) };
}

/// The admin token set (`admin_env`), a fake SCIM platform, the fixture
/// export in a temporary directory and a free port for the admin server.
async fn daemon_bed() -> (FakeScim, tempfile::TempDir, PathBuf, u16) {
    admin_env();
    let fake = FakeScim::start(true).await;
    let dir = tempfile::tempdir().unwrap();
    let export = copy_fixture("oneroster-1.2", dir.path());
    (fake, dir, export, free_port())
}

/// Each series of the metrics text `m` has its value.
#[track_caller]
fn assert_samples(m: &str, expected: &[(&str, f64)]) {
    for (series, value) in expected {
        assert_eq!(sample(m, series), *value, "{series} in\n{m}");
    }
}

struct Daemon {
    child: Child,
    admin: String,
    notify: UnixDatagram,
    log: PathBuf,
    messages: Vec<String>,
}

impl Daemon {
    fn start(dir: &Path, cfg: &Path, port: u16, envs: &[(&str, &str)]) -> Daemon {
        let sock = dir.join("notify.sock");
        let _ = std::fs::remove_file(&sock);
        let notify = UnixDatagram::bind(&sock).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let log = dir.join("daemon.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sisync"));
        cmd.arg("--config")
            .arg(cfg)
            .arg("run")
            .env_remove("SISYNC_CONFIG")
            .env_remove("SISYNC_LOG_FORMAT")
            .env_remove("JOURNAL_STREAM")
            .env("NOTIFY_SOCKET", &sock)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        Daemon {
            child: cmd.spawn().unwrap(),
            admin: format!("http://127.0.0.1:{port}"),
            notify,
            log,
            messages: Vec::new(),
        }
    }

    /// [`Daemon::start`] with the admin token of `admin_env`.
    fn with_admin_token(dir: &Path, cfg: &Path, port: u16) -> Daemon {
        Daemon::start(dir, cfg, port, &[("SISYNC_TEST_ADMIN_TOKEN", ADMIN_TOKEN)])
    }

    /// Collect notifications until one satisfies `f`.
    fn wait_notify(&mut self, what: &str, f: impl Fn(&str) -> bool, within: Duration) -> String {
        let deadline = Instant::now() + within;
        if let Some(m) = self.messages.iter().find(|m| f(m)) {
            return m.clone();
        }
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.notify.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).to_string();
                self.messages.push(m.clone());
                if f(&m) {
                    return m;
                }
            }
        }
        panic!(
            "no notification {what} within {within:?}; got {:?}; log:\n{}",
            self.messages,
            self.log_text()
        );
    }

    fn drain_notify(&mut self) {
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.notify.recv(&mut buf) {
            self.messages
                .push(String::from_utf8_lossy(&buf[..n]).to_string());
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill with a pid we spawned and a valid signal number.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0);
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn wait_exit(&mut self, within: Duration) -> i32 {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "daemon still running after {within:?}; log:\n{}",
            self.log_text()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn get(url: &str, bearer: Option<&str>) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut req = client.get(url).timeout(Duration::from_secs(5));
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

/// The value of one sample line in the metrics text, 0 when absent.
fn sample(metrics: &str, line_start: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(line_start) && l[line_start.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn metrics(d: &Daemon) -> String {
    let (status, body) = get(&format!("{}/metrics", d.admin), Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Poll /metrics until `f` holds.
async fn wait_metrics(
    d: &mut Daemon,
    what: &str,
    f: impl Fn(&str) -> bool,
    within: Duration,
) -> String {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        let (status, body) = get(&format!("{}/metrics", d.admin), Some(ADMIN_TOKEN)).await;
        if status == 200 {
            if f(&body) {
                return body;
            }
            last = body;
        }
        assert!(d.alive(), "daemon died; log:\n{}", d.log_text());
        // keep the notify socket's queue from filling up (systemd reads
        // every message; a full queue would block the daemon's sends)
        d.drain_notify();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{what} not reached within {within:?}; metrics:\n{last}\nlog:\n{}",
        d.log_text()
    );
}

fn daemon_extra(port: u16, roster_every: &str) -> String {
    daemon_sections(port, &format!("roster_every = \"{roster_every}\""))
}

/// `[schedule]` with `schedule` keys, and `[admin]` on `port`.
fn daemon_sections(port: u16, schedule: &str) -> String {
    format!(
        r#"
[schedule]
{schedule}
jitter = "0s"
shutdown_timeout = "20s"

[admin]
listen = "127.0.0.1:{port}"
token = "env:SISYNC_TEST_ADMIN_TOKEN"
"#
    )
}

const RUNS_OK: &str = r#"sisync_runs_total{kind="roster",outcome="ok"}"#;

fn oneshot(cfg: &Path, args: &[&str]) -> Output {
    sisync_cmd(cfg)
        .args(args)
        .env("SISYNC_TEST_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap()
}

/// [`oneshot`], which must exit 0.
#[track_caller]
fn oneshot_ok(cfg: &Path, args: &[&str]) -> Output {
    exited_0(oneshot(cfg, args), args)
}

fn state_db(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("state.db")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_runs_metrics_readiness_notify_and_a_bad_reload() {
    let (fake, dir, export, port) = daemon_bed().await;
    // the config with runs every `roster_every`
    let config = |roster_every: &str| {
        scim_test_config(
            dir.path(),
            Source::OneRosterCsv(export.clone()),
            &fake.base,
            TOKEN,
        )
        .extra(&daemon_extra(port, roster_every))
        .write()
    };
    let cfg = config("700ms");
    let loaded = sisync::connector::load(&cfg).unwrap();
    let mut d = Daemon::with_admin_token(dir.path(), &cfg, port);

    let started = Instant::now();
    let ready = d.wait_notify(
        "READY=1",
        |m| m.lines().any(|l| l == "READY=1"),
        Duration::from_secs(10),
    );
    assert!(ready.contains("STATUS=idle, next roster sync "), "{ready}");
    eprintln!("READY after {:?}", started.elapsed());

    // two scheduled runs
    let m = wait_metrics(
        &mut d,
        "two ok roster runs",
        |m| sample(m, RUNS_OK) >= 2.0,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(fake.users().len(), 42);
    assert_eq!(fake.groups().len(), 6);

    // a one-shot sync holds the run lock: the scheduled run is skipped
    // (counted as busy, not failed) and the daemon carries on
    let failed = r#"sisync_runs_total{kind="roster",outcome="failed"}"#;
    let failed_before = sample(&m, failed);
    let lock = sisync::sync::lock::RunLock::acquire(&loaded.config.state.path).unwrap();
    let busy = wait_metrics(
        &mut d,
        "a busy roster tick",
        |m| sample(m, r#"sisync_runs_total{kind="roster",outcome="busy"}"#) >= 1.0,
        Duration::from_secs(10),
    )
    .await;
    drop(lock);
    assert_eq!(sample(&busy, failed), failed_before, "{busy}");
    assert!(
        d.log_text()
            .contains("run skipped: another sisync sync is already running"),
        "{}",
        d.log_text()
    );
    assert_samples(
        &m,
        &[
            (
                r#"sisync_records_total{record="user",action="created"}"#,
                42.0,
            ),
            (
                r#"sisync_records_total{record="group",action="created"}"#,
                6.0,
            ),
        ],
    );
    let host = fake
        .base
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(
        sample(
            &m,
            &format!(r#"sisync_http_requests_total{{endpoint="{host}",status="201"}}"#)
        ) >= 42.0,
        "{m}"
    );
    assert!(
        sample(
            &m,
            r#"sisync_last_success_timestamp_seconds{kind="roster"}"#
        ) > 1.7e9,
        "{m}"
    );
    assert!(
        m.contains(r#"sisync_outbox_results{state="pending"} 0"#),
        "{m}"
    );
    // runs are in the state file too, one at a time, all by the daemon
    let conn = state_db(dir.path());
    let (runs, actors): (i64, String) = conn
        .query_row(
            "SELECT COUNT(*), GROUP_CONCAT(DISTINCT actor) FROM runs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(runs >= 2);
    assert_eq!(actors, "daemon");

    // systemd saw progress and idle lines
    d.drain_notify();
    assert_any_has(&d.messages, "STATUS=syncing roster");

    // health and readiness; metrics and the page need the token
    assert_eq!(
        get(&format!("{}/healthz", d.admin), None).await,
        (200, "ok\n".into())
    );
    assert_eq!(
        get(&format!("{}/readyz", d.admin), None).await,
        (200, "ready\n".into())
    );
    assert_eq!(get(&format!("{}/metrics", d.admin), None).await.0, 401);
    assert_eq!(
        get(&format!("{}/metrics", d.admin), Some("wrong")).await.0,
        401
    );
    let page = reqwest::Client::new()
        .get(format!("{}/", d.admin))
        .basic_auth("admin", Some(ADMIN_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);

    // SIGHUP with a broken config: logged, counted, the old config stays
    config("soon");
    d.signal(libc::SIGHUP);
    let m = wait_metrics(
        &mut d,
        "a failed reload",
        |m| sample(m, r#"sisync_config_reloads_total{outcome="failed"}"#) == 1.0,
        Duration::from_secs(10),
    )
    .await;
    let before = sample(&m, RUNS_OK);
    wait_metrics(
        &mut d,
        "more runs after the bad reload",
        |m| sample(m, RUNS_OK) >= before + 2.0,
        Duration::from_secs(20),
    )
    .await;
    assert!(d.alive());
    let log = d.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("config reload failed, keeping the previous config"))
        .unwrap_or_else(|| panic!("no reload error in the log:\n{log}"));
    assert_has(line, &["sisync.toml:", "not a duration"]);

    // a good reload applies: a long interval, so the runs stop
    config("1h");
    d.signal(libc::SIGHUP);
    wait_metrics(
        &mut d,
        "a good reload",
        |m| sample(m, r#"sisync_config_reloads_total{outcome="ok"}"#) == 1.0,
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n = sample(&metrics(&d).await, RUNS_OK);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        sample(&metrics(&d).await, RUNS_OK),
        n,
        "no runs on the 1h schedule"
    );

    // SIGTERM while idle: STOPPING=1 and exit 0
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(10)), 0, "{}", d.log_text());
    d.wait_notify(
        "STOPPING=1",
        |m| m.lines().any(|l| l == "STOPPING=1"),
        Duration::from_secs(1),
    );
    // every line of the log is JSON (stderr is a file, not a terminal)
    for l in d.log_text().lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v.get("timestamp").is_some(), "{l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_run_exits_0_with_whole_state_and_a_oneshot_is_refused_meanwhile() {
    let fake = FakeScim::start(true).await;
    fake.write_delay_ms
        .store(120, std::sync::atomic::Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let export = copy_fixture("oneroster-1.2", dir.path());
    let port = free_port();
    let extra = format!("concurrency = 2\n{}", daemon_extra(port, "1h"));
    let loaded = scim_config(dir.path(), &export, &fake.base, TOKEN, &extra);
    let cfg = loaded.file.clone();
    let mut d = Daemon::with_admin_token(dir.path(), &cfg, port);
    d.wait_notify(
        "READY=1",
        |m| m.lines().any(|l| l == "READY=1"),
        Duration::from_secs(10),
    );

    // the first run starts at once (no earlier run in the state file)
    let deadline = Instant::now() + Duration::from_secs(15);
    while fake.writes().len() < 6 {
        assert!(
            Instant::now() < deadline,
            "the run did not start; log:\n{}",
            d.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = d.wait_notify(
        "progress",
        |m| m.contains("STATUS=syncing roster ") && m.contains("/48"),
        Duration::from_secs(5),
    );
    assert!(status.contains("STATUS=syncing roster "), "{status}");

    // a one-shot sync meanwhile is refused, clearly, with exit 1
    let o = oneshot(&cfg, &["sync", "roster"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "another sisync sync is already running (pid {}",
            d.child.id()
        )) && err.contains("state.db.lock")
            && err.contains("wait for it or stop the daemon"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // a dry run needs no lock
    oneshot_ok(&cfg, &["sync", "roster", "--dry-run"]);

    d.signal(libc::SIGTERM);
    let code = d.wait_exit(Duration::from_secs(15));
    assert_eq!(code, 0, "{}", d.log_text());
    assert!(
        d.log_text().contains("stopping: finishing the roster run"),
        "{}",
        d.log_text()
    );

    // whole state: the run is marked interrupted, every user on the
    // platform has its state row and audit entry, and nothing else does
    let conn = state_db(dir.path());
    let (outcome, error): (String, Option<String>) = conn
        .query_row(
            "SELECT outcome, error FROM runs ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(outcome, "interrupted", "{error:?}");
    assert!(
        error
            .unwrap_or_default()
            .contains("stopped on request after")
    );
    let on_platform = fake.users().len() as i64;
    assert!(
        on_platform > 0 && on_platform < 42,
        "stopped mid-run: {on_platform} users"
    );
    let stored: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM records WHERE kind = 'user' AND platform_id IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, on_platform, "state matches the platform");
    let audited: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM audit WHERE action = 'user.create' AND outcome = 'ok'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(audited, on_platform);
    oneshot_ok(&cfg, &["audit", "verify"]);

    // the next run sends the rest, without duplicates
    fake.write_delay_ms
        .store(0, std::sync::atomic::Ordering::SeqCst);
    oneshot_ok(&cfg, &["sync", "roster"]);
    let users = fake.users();
    let ids: std::collections::BTreeSet<String> =
        users.iter().map(|u| u["externalId"].to_string()).collect();
    assert_eq!((users.len(), ids.len()), (42, 42));
    assert_eq!(fake.groups().len(), 6);
}

fn chromium() -> PathBuf {
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "chromium is not installed: `apt-get install -y --no-install-recommends chromium` (.ci/run does this)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_in_headless_chromium_shows_runs_and_draws_the_chart() {
    let browser = chromium();
    let dir = tempfile::tempdir().unwrap();
    let export = copy_fixture("oneroster-1.2", dir.path());
    let port = free_port();
    let cfg = TestConfig::new(dir.path())
        .institution("Browser College", "99AA")
        .source(Source::OneRosterCsv(export.clone()))
        .extra(&format!(
            r#"
[schedule]
roster_every = "500ms"
jitter = "0s"

[admin]
listen = "127.0.0.1:{port}"
"#
        ))
        .write();
    let mut d = Daemon::start(dir.path(), &cfg, port, &[]);
    d.wait_notify(
        "READY=1",
        |m| m.lines().any(|l| l == "READY=1"),
        Duration::from_secs(10),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, m) = get(&format!("{}/metrics", d.admin), None).await;
        if sample(&m, RUNS_OK) >= 2.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no two runs; log:\n{}",
            d.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let url = format!("{}/", d.admin);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--virtual-time-budget=5000",
                "--dump-dom",
                &url,
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_has(&dom, &["<title>sisync · Browser College</title>"]);

    // the runs table holds the daemon's runs
    let rows = dom.matches(r#"<tr class="run""#).count();
    let ok_rows = dom.matches(r#"data-outcome="ok""#).count();
    assert!(
        rows >= 2 && ok_rows >= 2,
        "{rows} rows, {ok_rows} ok:\n{dom}"
    );
    assert!(dom.contains("<td>daemon</td>"), "{dom}");
    // a scheduled CSV roster run is a plain run, not "(full)"
    assert!(dom.contains("<td>roster</td>"), "{dom}");
    assert!(!dom.contains("roster (full)"), "{dom}");

    // the chart was drawn by the page's script: 42 users + 6 classes
    // delivered in the first run, all in the current hour
    assert!(dom.contains(r#"<svg id="transfers-chart""#), "{dom}");
    assert!(dom.contains(r#"data-total="48""#), "{dom}");
    let bars: Vec<u64> = dom
        .split(r#"class="bar ok""#)
        .skip(1)
        .filter_map(|s| {
            s.split("data-count=\"")
                .nth(1)?
                .split('"')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(bars.iter().sum::<u64>(), 48, "{bars:?}");
    assert!(dom.contains("48 transfers in the last 7 days"), "{dom}");
    assert!(!dom.contains("the chart needs JavaScript"));

    // records and outbox, and nothing personal
    assert!(dom.contains("users<b>42</b>"), "{dom}");
    for personal in ["Jesse", "Vries", "1001@leerling", "stu-1001", "j.devries"] {
        assert!(!dom.contains(personal), "{personal} on the page");
    }
}

/// The log format follows the environment: JSON when stderr is not a
/// terminal, human without timestamps when stderr is the journal stream
/// systemd describes in JOURNAL_STREAM.
#[test]
fn log_format_follows_journal_stream() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = TestConfig::new(dir.path())
        .source(Source::OneRosterCsv(repo().join("fixtures/oneroster-1.2")))
        .extra("[schedule]\nroster_every = \"1h\"\njitter = \"0s\"\n[admin]\nlisten = \"off\"\n")
        .write();
    let run = |journal: Option<&str>, matching: bool| -> String {
        let sock = dir.path().join("n.sock");
        let _ = std::fs::remove_file(&sock);
        let notify = UnixDatagram::bind(&sock).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let log = dir.path().join("log.txt");
        let file = std::fs::File::create(&log).unwrap();
        let meta = file.metadata().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sisync"));
        cmd.arg("--config")
            .arg(&cfg)
            .arg("run")
            .env_remove("SISYNC_LOG_FORMAT")
            .env_remove("JOURNAL_STREAM")
            .env("RUST_LOG", "info")
            .env("NOTIFY_SOCKET", &sock)
            .stderr(file);
        match (journal, matching) {
            (Some(_), true) => {
                cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
            }
            (Some(v), false) => {
                cmd.env("JOURNAL_STREAM", v);
            }
            _ => {}
        }
        let mut child = cmd.spawn().unwrap();
        let mut buf = [0u8; 1024];
        let n = notify.recv(&mut buf).expect("READY");
        assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
        // SAFETY: our child's pid and a valid signal.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        assert_eq!(child.wait().unwrap().code(), Some(0));
        std::fs::read_to_string(&log).unwrap()
    };
    let journal = run(Some("x"), true);
    let ready = journal
        .lines()
        .find(|l| l.contains("sisync daemon ready"))
        .unwrap_or_else(|| panic!("{journal}"));
    assert!(
        ready.starts_with("<6>") && ready[3..].trim_start().starts_with("INFO"),
        "syslog priority, no timestamp under journald: {ready}"
    );
    // every line carries its priority, so `journalctl -p warning` works
    assert!(
        journal
            .lines()
            .filter(|l| !l.is_empty())
            .all(|l| l.starts_with('<')),
        "{journal}"
    );
    assert!(!ready.contains('\u{1b}'), "no colours: {ready}");
    for text in [run(None, false), run(Some("8:1234"), false)] {
        let line = text
            .lines()
            .find(|l| l.contains("sisync daemon ready"))
            .unwrap_or_else(|| panic!("{text}"));
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["timestamp"].is_string(), "{line}");
    }
}

/// With a `[results]` section the daemon also runs results syncs on
/// `schedule.results_every`: the fixture results reach the gradebook CSV
/// folder, the unknown candidate stays parked, metrics report it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_syncs_are_scheduled_when_configured() {
    admin_env();
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    for e in std::fs::read_dir(repo().join("fixtures/results/inbox"))
        .unwrap()
        .flatten()
    {
        std::fs::copy(e.path(), inbox.join(e.file_name())).unwrap();
    }
    let port = free_port();
    let cfg = TestConfig::new(dir.path())
        .source(Source::OneRosterCsv(repo().join("fixtures/oneroster-1.2")))
        .extra(&format!(r#"[schedule]
roster_every = "1h"
results_every = "300ms"
jitter = "0s"
[admin]
listen = "127.0.0.1:{port}"
token = "env:SISYNC_TEST_ADMIN_TOKEN"
[results]
class_rules = [{{ exam = "EX-NED-*", class = "cls-ne-*" }}, {{ exam = "EX-WIS-*", class = "cls-wi-*" }}]
[results.source]
kind = "qti-folder"
path = "inbox"
grade_outcomes = ["GRADE", "CIJFER"]
[results.sink]
kind = "oneroster-csv"
path = "sis"
"#))
        .write();
    let mut d = Daemon::with_admin_token(dir.path(), &cfg, port);
    let m = wait_metrics(
        &mut d,
        "two ok results runs after the roster run",
        |m| {
            sample(m, r#"sisync_runs_total{kind="results",outcome="ok"}"#) >= 2.0
                && sample(m, RUNS_OK) >= 1.0
        },
        Duration::from_secs(30),
    )
    .await;
    assert_samples(
        &m,
        &[
            (r#"sisync_outbox_results{state="pushed"}"#, 5.0),
            (r#"sisync_outbox_results{state="parked"}"#, 1.0),
            (
                r#"sisync_records_total{record="result",action="pushed"}"#,
                5.0,
            ),
        ],
    );
    // one delivery; the files moved to done/
    assert_eq!(
        std::fs::read_dir(dir.path().join("sis")).unwrap().count(),
        1
    );
    assert_eq!(std::fs::read_dir(inbox.join("done")).unwrap().count(), 4);
    // at the first start the roster ran before any results run
    let first: String = state_db(dir.path())
        .query_row("SELECT kind FROM runs ORDER BY id LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(first, "roster");
    d.drain_notify();
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(20)), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_reconcile_reports_what_the_platform_lost() {
    let (fake, dir, export, port) = daemon_bed().await;
    let extra = daemon_sections(port, "roster_every = \"1h\"\nreconcile_every = \"400ms\"");
    let loaded = scim_config(dir.path(), &export, &fake.base, TOKEN, &extra);
    let cfg = loaded.file.clone();
    let mut d = Daemon::with_admin_token(dir.path(), &cfg, port);
    wait_metrics(
        &mut d,
        "a clean reconcile after the first roster run",
        |m| {
            sample(m, RUNS_OK) >= 1.0
                && sample(m, r#"sisync_runs_total{kind="reconcile",outcome="ok"}"#) >= 1.0
        },
        Duration::from_secs(30),
    )
    .await;
    // the vendor loses a student
    {
        let mut inner = fake.inner.lock().unwrap();
        let id = inner
            .users
            .iter()
            .find(|(_, u)| u["externalId"] == "stu-1005")
            .map(|(k, _)| k.clone())
            .unwrap();
        inner.users.remove(&id);
    }
    let m = wait_metrics(
        &mut d,
        "a reconcile that finds the missing student",
        |m| sample(m, r#"sisync_reconcile_findings{finding="missing"}"#) >= 1.0,
        Duration::from_secs(30),
    )
    .await;
    assert_samples(
        &m,
        &[(r#"sisync_reconcile_findings{finding="orphans"}"#, 0.0)],
    );
    // report only: the daemon never repairs on its own
    assert!(fake.user_by_external_id("stu-1005").is_none());
    let out = oneshot(&cfg, &["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("reconcile drift"), "{text}");
    assert!(text.contains("1 missing"), "{text}");

    // the status page says the same, and when the platform last answered
    let (code, page) = get(&format!("{}/", d.admin), Some(ADMIN_TOKEN)).await;
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains(r#"id="reconcile" data-outcome="drift""#)
            && page.contains("1 missing, 0 drifted, 0 orphans"),
        "{page}"
    );
    let origin = fake.base.trim_end_matches("/scim/v2").to_string();
    let row = page
        .split(r#"<tr class="endpoint""#)
        .find(|r| r.contains(&format!("<td>{origin}</td>")))
        .unwrap_or_else(|| panic!("no row for {origin}:\n{page}"));
    assert!(row.contains(r#"data-down="false""#), "{row}");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert!(row.contains(&format!("<td>{today} ")), "{row}");
    assert!(row.contains(r#"<td class="n">200</td>"#), "{row}");
    // only the origin: no path, no record id
    assert!(!page.contains("/scim/v2/Users"), "{page}");
}
