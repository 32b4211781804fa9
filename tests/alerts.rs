//! `[alerts]` end to end: a webhook receiver (axum) and an SMTP sink (a
//! few lines of the protocol, tokio) on 127.0.0.1 in this process, and
//! sisync as a child process. Each trigger (safety refusal, runs failing
//! too long, results stuck, broken audit chain, daily digest) reaches
//! them, retried after a failed delivery, at most once per repeat_after,
//! and no message carries a name or e-mail address of the fixtures.

mod common;

use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use common::fake_scim::{FakeScim, TOKEN};
use common::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Clone, Default)]
struct Hook {
    bodies: Arc<Mutex<Vec<Value>>>,
    attempts: Arc<Mutex<u32>>,
    fail_first: Arc<Mutex<u32>>,
}

impl Hook {
    async fn start() -> (Hook, String) {
        let hook = Hook::default();
        async fn receive(State(h): State<Hook>, body: String) -> StatusCode {
            *h.attempts.lock().unwrap() += 1;
            {
                let mut f = h.fail_first.lock().unwrap();
                if *f > 0 {
                    *f -= 1;
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
            }
            h.bodies
                .lock()
                .unwrap()
                .push(serde_json::from_str(&body).unwrap());
            StatusCode::OK
        }
        let app = Router::new()
            .route("/hook/secret-part", post(receive))
            .with_state(hook.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook/secret-part", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        (hook, url)
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

/// What an alert test runs against: a fake SCIM platform, the webhook
/// receiver at `url`, the SMTP sink on port `smtp` and the fixture export
/// in a temporary directory.
struct Bed {
    fake: FakeScim,
    hook: Hook,
    url: String,
    mails: Arc<Mutex<Vec<String>>>,
    smtp: u16,
    dir: tempfile::TempDir,
    export: std::path::PathBuf,
}

impl Bed {
    /// An `[alerts]` section for the webhook and the SMTP sink, with
    /// `extra` keys.
    fn alerts(&self, extra: &str) -> String {
        alerts_section(self.dir.path(), &self.url, self.smtp, extra)
    }

    /// The config syncing the export into the fake with `extra` keys.
    fn config(&self, extra: &str) -> sisync::config::Loaded {
        scim_config(self.dir.path(), &self.export, &self.fake.base, TOKEN, extra)
    }

    async fn start() -> Bed {
        let fake = FakeScim::start(true).await;
        let (hook, url) = Hook::start().await;
        let (mails, smtp) = smtp_sink().await;
        let dir = tempfile::tempdir().unwrap();
        let export = copy_fixture("oneroster-1.2", dir.path());
        Bed {
            fake,
            hook,
            url,
            mails,
            smtp,
            dir,
            export,
        }
    }
}

/// An SMTP server that accepts every message (no TLS: `tls = "none"`).
async fn smtp_sink() -> (Arc<Mutex<Vec<String>>>, u16) {
    let mails = Arc::new(Mutex::new(Vec::new()));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let m = mails.clone();
    tokio::spawn(async move {
        loop {
            let (sock, _) = l.accept().await.unwrap();
            let m = m.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") {
                        b"250-sink\r\n250 8BITMIME\r\n"
                    } else if cmd.starts_with("DATA") {
                        w.write_all(b"354 go on\r\n").await.unwrap();
                        let mut msg = String::new();
                        loop {
                            line.clear();
                            r.read_line(&mut line).await.unwrap();
                            if line == ".\r\n" {
                                break;
                            }
                            msg.push_str(&line);
                        }
                        m.lock().unwrap().push(msg);
                        b"250 queued\r\n"
                    } else if cmd.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    w.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (mails, port)
}

fn alerts_section(dir: &Path, hook_url: &str, smtp_port: u16, extra: &str) -> String {
    std::fs::write(dir.join("hook-url"), format!("{hook_url}\n")).unwrap();
    format!(
        r#"
[alerts]
webhook_url_file = "hook-url"
{extra}

[alerts.email]
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
tls = "none"
from = "sisync@school.example"
to = ["ict@school.example"]
"#
    )
}

async fn sisync_async(cfg: &Path, args: &[&str]) -> Output {
    let cfg = cfg.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        sisync(&cfg, &a)
    })
    .await
    .unwrap()
}

/// Names, usernames and e-mail addresses of the fixture's persons.
fn personal_data() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("fixtures/oneroster-1.2/users.csv")).unwrap();
    let mut rdr = csv::Reader::from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let h = rdr.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|c| c == n).unwrap();
    let cols = [
        col("givenName"),
        col("familyName"),
        col("email"),
        col("username"),
    ];
    let mut out = Vec::new();
    for r in rdr.records() {
        let r = r.unwrap();
        for c in cols {
            let v = r.get(c).unwrap_or("").trim();
            if v.len() >= 4 {
                out.push(v.to_string());
            }
        }
    }
    assert!(out.len() > 50);
    out
}

fn assert_no_personal_data(texts: &[String]) {
    let pd = personal_data();
    for t in texts {
        for p in &pd {
            assert!(!t.contains(p.as_str()), "`{p}` in an alert: {t}");
        }
        assert!(!t.contains("secret-part"), "webhook URL leaked: {t}");
    }
}

/// Keep two of the 45 users: the safety gate refuses the run.
fn shrink_export(export: &Path) {
    let n = std::cell::Cell::new(0);
    edit(export, "users.csv", |l| {
        n.set(n.get() + 1);
        (n.get() <= 3 || l.is_empty()).then(|| l.to_string())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_reaches_webhook_and_mail_once_retried_without_personal_data() {
    let bed = Bed::start().await;
    let extra = bed.alerts("repeat_after = \"1h\"");
    let loaded = bed.config(&extra);
    let cfg = loaded.file.clone();

    let o = sisync_async(&cfg, &["sync", "roster"]).await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        bed.hook.bodies().is_empty(),
        "nothing to say after a good run"
    );

    shrink_export(&bed.export);
    *bed.hook.fail_first.lock().unwrap() = 1; // the receiver hiccups once
    let o = sisync_async(&cfg, &["sync", "roster"]).await;
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let bodies = bed.hook.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(
        *bed.hook.attempts.lock().unwrap(),
        2,
        "retried after the 503"
    );
    let b = &bodies[0];
    assert_eq!(b["alert"], "refused.roster");
    assert_eq!(b["severity"], "critical");
    assert_eq!(b["source"], "sisync");
    assert!(b["text"].as_str().unwrap().contains("wrote nothing"), "{b}");
    let m = bed.mails.lock().unwrap().clone();
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(
        m[0].contains("Subject: sisync Test College: roster run refused"),
        "{}",
        m[0]
    );
    assert!(m[0].contains("To: ict@school.example"), "{}", m[0]);

    // refused again within repeat_after: no second message
    let o = sisync_async(&cfg, &["sync", "roster"]).await;
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(bed.hook.bodies().len(), 1);
    assert_eq!(bed.mails.lock().unwrap().len(), 1);

    // `alerts test` goes through both channels
    let o = sisync_async(&cfg, &["alerts", "test"]).await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(bed.hook.bodies().len(), 2);
    assert_eq!(bed.mails.lock().unwrap().len(), 2);

    let mut texts: Vec<String> = bed.hook.bodies().iter().map(|b| b.to_string()).collect();
    texts.extend(bed.mails.lock().unwrap().iter().cloned());
    texts.push(String::from_utf8_lossy(&o.stderr).into_owned());
    assert_no_personal_data(&texts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_runs_stuck_results_broken_audit_and_the_digest_in_teams_format() {
    let bed = Bed::start().await;
    let extra = bed.alerts(
        "format = \"teams\"\nfailing_after = \"1s\"\nresults_stuck_after = \"1h\"\ndigest_at = \"00:00\"",
    );
    let loaded = bed.config(&extra);
    let cfg = loaded.file.clone();
    let o = sisync_async(&cfg, &["sync", "roster"]).await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let title = |b: &Value| {
        b["attachments"][0]["content"]["body"][0]["text"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // the first check sends the digest (past 00:00, not sent today)
    let first = bed.hook.bodies();
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0]["type"], "message");
    assert_eq!(
        first[0]["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert!(title(&first[0]).contains("daily digest"), "{first:?}");
    let facts = first[0]["attachments"][0]["content"]["body"][2]["facts"].to_string();
    assert_has(&facts, &["roster runs ok", "chain intact"]);

    // the SIS bed.export disappears: runs fail; after failing_after, an alert
    std::fs::rename(&bed.export, bed.dir.path().join("gone")).unwrap();
    let o = sisync_async(&cfg, &["sync", "roster"]).await;
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert_eq!(bed.hook.bodies().len(), 1, "failing for less than 1s");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let o = sisync_async(&cfg, &["sync", "roster"]).await;
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let b = bed.hook.bodies();
    assert_eq!(b.len(), 2, "{b:?}");
    assert!(title(&b[1]).contains("roster runs failing for"), "{b:?}");

    // results parked for two hours
    {
        let c = rusqlite::Connection::open(bed.dir.path().join("state.db")).unwrap();
        let old = (chrono::Utc::now() - chrono::Duration::hours(2)).to_rfc3339();
        for (key, state) in [("sess-1:exam-1", "parked"), ("sess-2:exam-1", "failed")] {
            c.execute(
                "INSERT INTO results (key, candidate, person_id, line_item, origin, state, value_hash, first_seen, updated_at, score)
                 VALUES (?1, 'cand-9', 'stu-1001', 'exam-1', 'test', ?2, 'h', ?3, ?3, 77.25)",
                rusqlite::params![key, state, old],
            )
            .unwrap();
        }
    }
    let o = sisync_async(&cfg, &["alerts", "check"]).await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "sent: results.stuck"
    );
    let b = bed.hook.bodies();
    assert!(title(&b[2]).contains("2 results not delivered"), "{b:?}");
    let card = b[2].to_string();
    assert!(
        card.contains("sess-1:exam-1") && !card.contains("77.25"),
        "{card}"
    );

    // someone edits the audit log; the daily verification finds it
    {
        let c = rusqlite::Connection::open(bed.dir.path().join("state.db")).unwrap();
        c.execute("UPDATE audit SET outcome = 'failed' WHERE seq = 3", [])
            .unwrap();
        // as if the last verification was a day ago
        c.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'alert.audit_checked_at'",
            [(chrono::Utc::now() - chrono::Duration::hours(25)).to_rfc3339()],
        )
        .unwrap();
    }
    let o = sisync_async(&cfg, &["--json", "alerts", "check"]).await;
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["sent"], serde_json::json!(["audit.broken"]), "{v}");
    let b = bed.hook.bodies();
    assert!(title(&b[3]).contains("audit log verification failed"));
    assert!(b[3].to_string().contains("entry 3"), "{}", b[3]);

    // nothing new: nothing sent (the digest went out once today)
    let o = sisync_async(&cfg, &["alerts", "check"]).await;
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "no alert due");
    assert_eq!(bed.hook.bodies().len(), 4);
    assert_eq!(bed.mails.lock().unwrap().len(), 4);

    let mut texts: Vec<String> = bed.hook.bodies().iter().map(|b| b.to_string()).collect();
    texts.extend(bed.mails.lock().unwrap().iter().cloned());
    assert_no_personal_data(&texts);
    // no person id of the stuck results either, only result keys
    assert!(!texts.iter().any(|t| t.contains("stu-1001")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_alerts_after_a_refused_run_in_slack_format() {
    let bed = Bed::start().await;
    let port = free_port();
    let extra = format!(
        "{}\n[schedule]\nroster_every = \"1s\"\njitter = \"0s\"\n\n[admin]\nlisten = \"127.0.0.1:{port}\"\n",
        bed.alerts("format = \"slack\"")
    );
    let loaded = bed.config(&extra);
    let o = sisync_async(&loaded.file, &["sync", "roster"]).await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    shrink_export(&bed.export);
    let mut child = spawn_daemon(&loaded.file);
    let deadline = Instant::now() + Duration::from_secs(30);
    let slack = loop {
        if let Some(b) = bed
            .hook
            .bodies()
            .into_iter()
            .find(|b| b["text"].as_str().unwrap_or("").contains("refused"))
        {
            break b;
        }
        assert!(
            Instant::now() < deadline,
            "no alert: {:?}",
            bed.hook.bodies()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // SAFETY: the child is ours
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let text = slack["text"].as_str().unwrap();
    assert!(
        text.starts_with(":rotating_light: *sisync Test College: roster run refused"),
        "{text}"
    );
    assert_no_personal_data(&[slack.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_is_required_never_a_plaintext_fallback() {
    let (mails, smtp) = smtp_sink().await; // offers no STARTTLS
    let dir = tempfile::tempdir().unwrap();
    let export = copy_fixture("oneroster-1.2", dir.path());
    let extra = format!(
        "[alerts]\nattempts = 1\n[alerts.email]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {smtp}\nfrom = \"sisync@school.example\"\nto = [\"ict@school.example\"]\n"
    );
    let loaded = scim_config(
        dir.path(),
        &export,
        "https://p.invalid/scim/v2",
        TOKEN,
        &extra,
    );
    let o = sisync_async(&loaded.file, &["alerts", "test"]).await;
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_has(&err, &["alert e-mail not delivered", "127.0.0.1"]);
    assert!(mails.lock().unwrap().is_empty(), "sent in plain text");
}
