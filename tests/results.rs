//! Results back to the SIS: QTI files in, the outbox, the OneRoster
//! gradebook (a fake REST service on 127.0.0.1 with injected faults) and
//! the CSV writer out; exactly once across faults, re-runs and a SIGKILL.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::fake_gradebook::{CLIENT_SECRET, FakeGradebook, Fault};
use common::faults::FLAKY_HTTP;
use common::{Platform, Source, TestConfig, assert_has, audit_of, kill_sync_under_way};
use sisync::config::Loaded;
use sisync::store::Store;
use sisync::sync::results::{ResultsOptions, ResultsReport, results};
use sisync::sync::{Quiet, RosterOptions};

/// One result to write into a QTI file: student, exam, session, score.
type Row<'a> = (&'a str, &'a str, &'a str, f64);

fn write_qti(dir: &Path, name: &str, rows: &[Row<'_>]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut doc = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<results>\n");
    for (student, exam, session, score) in rows {
        doc.push_str(&format!(
            r#"<assessmentResult xmlns="http://www.imsglobal.org/xsd/imsqti_result_v2p1">
  <context sourcedId="{student}"><sessionIdentifier sourceID="https://toets.example" identifier="{session}"/></context>
  <testResult identifier="{exam}" datestamp="2026-06-02T09:45:00Z">
    <outcomeVariable identifier="SCORE" cardinality="single" baseType="float"><value>{score}</value></outcomeVariable>
    <outcomeVariable identifier="MAXSCORE" cardinality="single" baseType="float"><value>100</value></outcomeVariable>
  </testResult>
</assessmentResult>
"#
        ));
    }
    doc.push_str("</results>\n");
    std::fs::write(dir.join(name), doc).unwrap();
}

/// 20 students of class cls-ne-h3a × `exams` Dutch exams.
fn many(exams: usize) -> Vec<(String, String, String, f64)> {
    let mut out = Vec::new();
    for e in 1..=exams {
        for s in 1..=20 {
            out.push((
                format!("stu-{}", 1000 + s),
                format!("EX-NED-{e}"),
                format!("S-{e}-{s}"),
                (s * e) as f64 / 2.0,
            ));
        }
    }
    out
}

fn as_rows(v: &[(String, String, String, f64)]) -> Vec<Row<'_>> {
    v.iter()
        .map(|(a, b, c, d)| (a.as_str(), b.as_str(), c.as_str(), *d))
        .collect()
}

/// A config in `dir`: the fixture roster into a csv-drop platform, results
/// from `dir/inbox` into `sink` (the body of `[results.sink]`).
fn config(dir: &Path, roster: &Path, sink: &str) -> Loaded {
    results_config(dir, roster, QTI_FOLDER, "", sink).load()
}

/// The `[results.source]` of [`config`].
const QTI_FOLDER: &str = "kind = \"qti-folder\"\npath = \"inbox\"\nsettle = \"0s\"";

/// The config of [`config`] with any `[results.source]` body, more
/// `[results]` keys and more sections (`rest`).
fn results_config(
    dir: &Path,
    roster: &Path,
    source: &str,
    results: &str,
    sink: &str,
) -> TestConfig {
    std::fs::write(dir.join("gb-secret"), CLIENT_SECRET).unwrap();
    let text = format!(
        r#"[results]
class_rules = [{{ exam = "EX-NED-*", class = "cls-ne-*" }}, {{ exam = "EX-WIS-*", class = "cls-wi-*" }}]
{results}
[results.source]
{source}

[results.sink]
{sink}
"#,
    );
    TestConfig::new(dir)
        .institution("Test College", "99AA")
        .source(Source::OneRosterCsv(roster.to_path_buf()))
        .platform(Platform::CsvDrop("platform".into()))
        .extra(&text)
}

fn rest_sink(gb: &FakeGradebook, extra: &str) -> String {
    format!(
        r#"kind = "oneroster-rest"
base_url = "{}"
# generous: no test here waits for a timeout, and under a loaded CI
# machine a 1 s limit failed a first OAuth2 token request
timeout = "10s"
max_retries = 3
{extra}
{}"#,
        gb.base,
        gb.sink_auth()
    )
}

fn fixture_roster() -> PathBuf {
    common::repo().join("fixtures/oneroster-1.2")
}

async fn roster(loaded: &Loaded) {
    let r = common::sync(loaded, RosterOptions::default()).await;
    assert_eq!(r.failed(), 0);
}

async fn run(loaded: &Loaded, opts: ResultsOptions) -> ResultsReport {
    results(loaded, opts, "user:test", &Quiet).await.unwrap()
}

/// The fake gradebook and a config (in a temporary directory) reading the
/// QTI inbox into it, the roster synced: (directory, gradebook, config).
async fn rest_bed() -> (tempfile::TempDir, FakeGradebook, Loaded) {
    let dir = tempfile::tempdir().unwrap();
    let gb = FakeGradebook::start().await;
    let loaded = config(dir.path(), &fixture_roster(), &rest_sink(&gb, ""));
    roster(&loaded).await;
    (dir, gb, loaded)
}

fn store(loaded: &Loaded) -> Store {
    Store::open(&loaded.config.state.path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_result_arrives_exactly_once_despite_30_percent_faults() {
    let dir = tempfile::tempdir().unwrap();
    let gb = FakeGradebook::start().await;
    gb.with(|g| {
        g.faults.percent = 30;
        // and one stored, then cut off mid-answer
        g.faults.kinds = [&FLAKY_HTTP[..], &[Fault::DropAfterStore]].concat();
        g.slow = Duration::from_millis(1500);
    });
    let loaded = config(dir.path(), &fixture_roster(), &rest_sink(&gb, ""));
    roster(&loaded).await;
    let rows = many(5);
    write_qti(&dir.path().join("inbox"), "batch.xml", &as_rows(&rows));

    let mut runs = 0;
    let mut last = loop {
        let r = run(&loaded, ResultsOptions::default()).await;
        runs += 1;
        if r.outbox.pending == 0 || runs == 6 {
            break r;
        }
    };
    assert_eq!(last.outbox.pending, 0, "{last:?}");
    assert_eq!(
        (last.outbox.pushed, last.outbox.failed),
        (100, 0),
        "{last:?}"
    );
    let faults = gb.with(|g| g.faults.injected);
    assert!(faults >= 15, "only {faults} faults were injected");
    // the SIS holds each result once, with the right score
    let pairs = gb.result_pairs();
    assert_eq!(pairs.len(), 100);
    assert_eq!(pairs.iter().collect::<BTreeSet<_>>().len(), 100);
    let scores: BTreeSet<String> = gb.with(|g| {
        g.results
            .values()
            .map(|r| {
                format!(
                    "{}={}",
                    r["student"]["sourcedId"].as_str().unwrap(),
                    r["score"]
                )
            })
            .collect()
    });
    assert!(scores.contains("stu-1020=50.0"), "{scores:?}");
    // the file moved to done/
    assert!(dir.path().join("inbox/done/batch.xml").exists());
    assert!(!dir.path().join("inbox/batch.xml").exists());
    // every accepted push is audited once, without score values
    let s = store(&loaded);
    let ok = audit_of(&s, "result.push")
        .into_iter()
        .filter(|e| e.outcome == "ok")
        .count();
    assert_eq!(ok, 100);
    assert!(s.audit_verify().unwrap().ok());
    // a re-run pushes nothing
    gb.with(|g| g.faults.percent = 0);
    let writes = gb.with(|g| g.writes.len());
    last = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((last.pushed, last.updated, last.documents), (0, 0, 0));
    assert_eq!(gb.with(|g| g.writes.len()), writes);
    // the same file read again adds nothing
    write_qti(
        &dir.path().join("inbox"),
        "batch-again.xml",
        &as_rows(&rows),
    );
    last = run(&loaded, ResultsOptions::default()).await;
    assert_eq!(last.ingested.unchanged, 100);
    assert_eq!((last.ingested.new, last.pushed), (0, 0));
    assert_eq!(gb.with(|g| g.writes.len()), writes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remarked_result_is_pushed_again_as_an_update() {
    let (dir, gb, loaded) = rest_bed().await;
    let inbox = dir.path().join("inbox");
    write_qti(
        &inbox,
        "a.xml",
        &[
            ("stu-1001", "EX-NED-1", "S-1", 40.0),
            ("stu-1002", "EX-NED-1", "S-2", 50.0),
        ],
    );
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.pushed, r.line_items), (2, 1));
    write_qti(&inbox, "b.xml", &[("stu-1001", "EX-NED-1", "S-1", 45.0)]);
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.ingested.changed, r.updated, r.pushed), (1, 1, 0));
    let (score, writes) = gb.with(|g| {
        let s = g
            .results
            .values()
            .find(|r| r["student"]["sourcedId"] == "stu-1001")
            .map(|r| r["score"].clone());
        (s, g.writes.iter().filter(|w| w.0 == "results").count())
    });
    assert_eq!(score, Some(serde_json::json!(45.0)));
    assert_eq!(writes, 3);
    assert_eq!(gb.result_pairs().len(), 2);
    let s = store(&loaded);
    let updates = audit_of(&s, "result.update");
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].record_id.as_deref(), Some("stu-1001"));
    assert!(updates[0].payload_sha256.is_some());
    // no score in the audit log: the detail holds the key and line item
    // only, the fields only names
    let detail = updates[0].detail.as_deref().unwrap();
    let (key, li) = detail.split_once(' ').unwrap();
    assert!(
        key.strip_prefix("key=")
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_hexdigit()),
        "{detail}"
    );
    assert!(li.starts_with("lineItem=sisync-li-"), "{detail}");
    assert_eq!(
        updates[0].fields,
        "student,lineItem,scoreDate,score,maxScore"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_result_fails_with_the_sis_message_until_retry_failed() {
    let dir = tempfile::tempdir().unwrap();
    let gb = FakeGradebook::start().await;
    gb.with(|g| g.reject_student = Some("stu-1003".into()));
    let loaded = config(dir.path(), &fixture_roster(), &rest_sink(&gb, ""));
    roster(&loaded).await;
    write_qti(
        &dir.path().join("inbox"),
        "a.xml",
        &[
            ("stu-1001", "EX-NED-1", "S-1", 40.0),
            ("stu-1003", "EX-NED-1", "S-3", 50.0),
        ],
    );
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.pushed, r.failed, r.retrying), (1, 1, 0));
    assert!(r.partial());
    // one try only: a 422 is not retried blindly
    assert_eq!(gb.result_writes(), 2);
    assert_eq!(r.outbox.failed, 1);
    // the audit log has the failure, not the SIS's words
    let says = "SIS says: student stu-1003 is not enrolled";
    common::assert_refused_by_the_sis(&r.outbox.reasons, &loaded, ("HTTP 422", says), "enrolled");
    // a plain re-run leaves it failed
    gb.with(|g| g.reject_student = None);
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.pushed, r.outbox.failed), (0, 1));
    // --retry-failed pushes it
    let r = run(&loaded, common::retry_failed()).await;
    assert_eq!(
        (r.retried_failed, r.pushed, r.outbox.failed, r.outbox.pushed),
        (1, 1, 0, 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_candidates_are_parked_until_the_roster_brings_them() {
    let dir = tempfile::tempdir().unwrap();
    let gb = FakeGradebook::start().await;
    let export = common::copy_fixture("oneroster-1.2", dir.path());
    common::edit(&export, "users.csv", |l| {
        (!l.starts_with("stu-1020,")).then(|| l.to_string())
    });
    common::edit(&export, "enrollments.csv", |l| {
        (!l.contains(",stu-1020,")).then(|| l.to_string())
    });
    let loaded = config(dir.path(), &export, &rest_sink(&gb, ""));
    roster(&loaded).await;
    write_qti(
        &dir.path().join("inbox"),
        "a.xml",
        &[
            ("stu-1019", "EX-NED-1", "S-19", 40.0),
            ("stu-1020", "EX-NED-1", "S-20", 50.0),
        ],
    );
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.pushed, r.ingested.parked, r.outbox.parked), (1, 1, 1));
    assert!(r.outbox.reasons[0].1.contains("unknown to the roster"));
    // status shows it
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sisync"))
        .args([
            "--config",
            &dir.path().join("sisync.toml").display().to_string(),
            "status",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 pending") || text.contains("1 parked"),
        "{text}"
    );
    assert_has(&text, &["parked: candidate unknown to the roster sync"]);
    // the student arrives in the SIS export; the next results run pushes
    for f in ["users.csv", "enrollments.csv"] {
        std::fs::copy(fixture_roster().join(f), export.join(f)).unwrap();
    }
    roster(&loaded).await;
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!(
        (r.unparked, r.pushed, r.outbox.parked, r.outbox.pushed),
        (1, 1, 0, 2)
    );
    assert_eq!(gb.result_pairs().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_in_several_matching_classes_is_parked_with_the_fix() {
    let (dir, _gb, loaded) = rest_bed().await;
    // no rule for EX-ENG: stu-1001 is in several classes
    write_qti(
        &dir.path().join("inbox"),
        "a.xml",
        &[("stu-1001", "EX-ENG-1", "S-1", 40.0)],
    );
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.pushed, r.outbox.parked), (0, 1));
    assert!(
        r.outbox.reasons[0]
            .1
            .contains("add or narrow a results.class_rules entry for exam EX-ENG-1"),
        "{:?}",
        r.outbox.reasons
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_reads_but_changes_nothing() {
    let (dir, gb, loaded) = rest_bed().await;
    write_qti(&dir.path().join("inbox"), "a.xml", &as_rows(&many(1)));
    let r = run(
        &loaded,
        ResultsOptions {
            dry_run: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!((r.ingested.new, r.would_push, r.run_id), (20, 20, None));
    assert!(dir.path().join("inbox/a.xml").exists());
    assert_eq!(gb.with(|g| g.writes.len()), 0);
    assert_eq!(store(&loaded).outbox_summary().unwrap().pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_writer_delivers_once_and_bad_files_move_to_failed() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = config(
        dir.path(),
        &fixture_roster(),
        "kind = \"oneroster-csv\"\npath = \"sis\"\nschool = \"org-99AA00\"\n",
    );
    roster(&loaded).await;
    let inbox = dir.path().join("inbox");
    write_qti(&inbox, "a.xml", &as_rows(&many(2)));
    std::fs::copy(
        common::repo().join("fixtures/results/bad/truncated.xml"),
        inbox.join("b.xml"),
    )
    .unwrap();
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.pushed, r.documents, r.document_errors.len()), (40, 1, 1));
    assert!(
        r.document_errors[0].starts_with("b.xml:"),
        "{:?}",
        r.document_errors
    );
    assert!(
        r.document_errors[0].contains("failed/b.xml"),
        "{:?}",
        r.document_errors
    );
    assert!(inbox.join("failed/b.xml").exists() && inbox.join("done/a.xml").exists());
    let folder = r.delivered.clone().unwrap();
    let results_csv = std::fs::read_to_string(folder.join("results.csv")).unwrap();
    assert_eq!(results_csv.lines().count(), 41);
    let li = std::fs::read_to_string(folder.join("lineItems.csv")).unwrap();
    assert_eq!(li.lines().count(), 3, "two exams for one class: {li}");
    assert!(li.contains(",cls-ne-h3a,exam,,0,100,org-99AA00"), "{li}");
    // nothing new: no new folder
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.pushed, r.delivered), (0, None));
    assert_eq!(
        std::fs::read_dir(dir.path().join("sis")).unwrap().count(),
        1
    );
}

/// A child `sisync sync results` is killed with SIGKILL in the middle of
/// its push batch; after a restart the SIS holds every result once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_push_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let gb = FakeGradebook::start().await;
    gb.with(|g| g.delay = Duration::from_millis(25));
    let loaded = config(
        dir.path(),
        &fixture_roster(),
        &rest_sink(&gb, "concurrency = 4"),
    );
    roster(&loaded).await;
    write_qti(&dir.path().join("inbox"), "a.xml", &as_rows(&many(10)));
    // wait until the push is well under way, then kill
    kill_sync_under_way(dir.path(), "results", || gb.result_pairs().len() >= 60).await;
    let held = gb.result_pairs().len();
    assert!(held < 200, "the kill came after the batch ({held})");
    // restart
    gb.with(|g| g.delay = Duration::ZERO);
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!(
        (r.outbox.pending, r.outbox.pushed, r.outbox.failed),
        (0, 200, 0),
        "{r:?}"
    );
    let pairs = gb.result_pairs();
    assert_eq!(pairs.len(), 200);
    assert_eq!(pairs.iter().collect::<BTreeSet<_>>().len(), 200);
    assert!(store(&loaded).audit_verify().unwrap().ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_results_with_mapped_columns() {
    let (dir, gb, _) = rest_bed().await;
    let loaded = results_config(
        dir.path(),
        &fixture_roster(),
        "kind = \"csv\"\npath = \"inbox\"\nsettle = \"0s\"\ndelimiter = \";\"\n[results.source.columns]\ncandidate = \"leerling\"\nexam = \"toets\"\nsession = \"sessie\"\ngrade = \"cijfer\"",
        "",
        &rest_sink(&gb, ""),
    )
    .load();
    std::fs::create_dir_all(dir.path().join("inbox")).unwrap();
    std::fs::write(
        dir.path().join("inbox/export.csv"),
        "leerling;toets;sessie;cijfer\nstu-1001;EX-WIS-1;X1;7,5\nstu-1002;EX-WIS-1;X2;5,4\n",
    )
    .unwrap();
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!(r.pushed, 2, "{r:?}");
    let grades: BTreeSet<String> = gb.with(|g| {
        g.results
            .values()
            .map(|r| {
                format!(
                    "{} {}",
                    r["student"]["sourcedId"].as_str().unwrap(),
                    r["textScore"]
                )
            })
            .collect()
    });
    assert!(grades.contains("stu-1001 \"7,5\""), "{grades:?}");
    let classes: BTreeSet<String> = gb.with(|g| {
        g.line_items
            .values()
            .map(|l| l["class"]["sourcedId"].as_str().unwrap().to_string())
            .collect()
    });
    assert_eq!(classes, BTreeSet::from(["cls-wi-h3a".to_string()]));
}

/// QTI documents listed by an HTTP endpoint (bearer token), read once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qti_documents_listed_over_http_are_read_once() {
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    let docs = common::repo().join("fixtures/results/inbox");
    let app = axum::Router::new()
        .route(
            "/api/results",
            axum::routing::get(|h: HeaderMap| async move {
                if h.get("authorization").and_then(|v| v.to_str().ok())
                    != Some("Bearer platform-token")
                {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                axum::Json(serde_json::json!({"documents": [
                    {"href": "docs/session-batch-1.xml"},
                    "docs/session-S-2001.xml",
                    "docs/missing.xml"
                ]}))
                .into_response()
            }),
        )
        .route(
            "/api/docs/:name",
            axum::routing::get(
                move |axum::extract::Path(name): axum::extract::Path<String>| {
                    let docs = docs.clone();
                    async move {
                        match std::fs::read(docs.join(name)) {
                            Ok(b) => b.into_response(),
                            Err(_) => StatusCode::NOT_FOUND.into_response(),
                        }
                    }
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (dir, gb, _) = rest_bed().await;
    std::fs::write(dir.path().join("platform-token"), "platform-token").unwrap();
    let loaded = results_config(
        dir.path(),
        &fixture_roster(),
        &format!(
            "kind = \"qti-http\"\nlist_url = \"http://{addr}/api/results\"\ngrade_outcomes = [\"GRADE\", \"CIJFER\"]\nmax_retries = 0\n[results.source.auth]\nkind = \"bearer\"\ntoken_file = \"platform-token\""
        ),
        "",
        &rest_sink(&gb, ""),
    )
    .load();
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.documents, r.ingested.new, r.pushed), (2, 4, 4), "{r:?}");
    assert_eq!(r.document_errors.len(), 1);
    assert!(
        r.document_errors[0].contains("missing.xml") && r.document_errors[0].contains("404"),
        "{:?}",
        r.document_errors
    );
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.documents, r.documents_skipped, r.pushed), (0, 2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_connect_reaches_the_gradebook_with_oauth2() {
    let dir = tempfile::tempdir().unwrap();
    let gb = FakeGradebook::start().await;
    config(dir.path(), &fixture_roster(), &rest_sink(&gb, ""));
    let cfg = dir.path().join("sisync.toml").display().to_string();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sisync"))
        .args(["--config", &cfg, "check-config", "--connect"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_has(
        &text,
        &["/ims/oneroster/gradebook/v1p2/lineItems?limit=1: HTTP 200, authenticated"],
    );
    assert_eq!(gb.with(|g| g.token_requests), 1);
    // a wrong secret: one clear line, exit 2 (config), no secret in it
    std::fs::write(dir.path().join("gb-secret"), "wrong-secret-value").unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sisync"))
        .args(["--config", &cfg, "check-config", "--connect"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert_has(&text, &["results out", "FAILED"]);
    assert!(!text.contains("wrong-secret-value"), "{text}");
}

/// `privacy.result_fields`: only the allowed values reach the SIS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_result_values_reach_the_sis() {
    let dir = tempfile::tempdir().unwrap();
    let gb = FakeGradebook::start().await;
    let with_fields = |fields: &str| {
        results_config(
            dir.path(),
            &fixture_roster(),
            QTI_FOLDER,
            "",
            &rest_sink(&gb, ""),
        )
        .extra(&format!("[privacy]\nresult_fields = [{fields}]\n"))
        .write()
    };
    let loaded = sisync::connector::load(&with_fields("\"passed\"")).unwrap();
    roster(&loaded).await;
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::copy(
        common::repo().join("fixtures/results/inbox/session-batch-1.xml"),
        inbox.join("a.xml"),
    )
    .unwrap();
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!(r.pushed, 3, "{r:?}");
    gb.with(|g| {
        for res in g.results.values() {
            assert!(res.get("score").is_none(), "{res}");
            assert!(res["metadata"].get("maxScore").is_none(), "{res}");
            let t = res["textScore"].as_str().unwrap();
            assert!(t == "pass" || t == "fail", "{res}");
        }
        for li in g.line_items.values() {
            assert!(li.get("resultValueMax").is_none(), "{li}");
        }
    });
    // nothing allowed that carries a result: refused
    let e = sisync::connector::load(&with_fields("\"max_score\"")).unwrap_err();
    assert!(e.to_string().contains("privacy.result_fields"), "{e}");
}

/// A result the SIS keeps refusing with transient errors waits for the
/// next run, and once older than `results.give_up_after` it is failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_results_wait_then_give_up_after_the_configured_age() {
    let dir = tempfile::tempdir().unwrap();
    let gb = FakeGradebook::start().await;
    gb.with(|g| {
        g.faults.percent = 100;
        g.faults.kinds = vec![Fault::Status503];
    });
    let loaded = config(dir.path(), &fixture_roster(), &rest_sink(&gb, ""));
    roster(&loaded).await;
    write_qti(
        &dir.path().join("inbox"),
        "a.xml",
        &[("stu-1001", "EX-NED-1", "S-1", 40.0)],
    );
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!(
        (r.pushed, r.retrying, r.failed, r.outbox.pending),
        (0, 1, 0, 1)
    );
    assert!(r.partial());
    // the daemon's backoff: not due again yet
    let r = run(
        &loaded,
        ResultsOptions {
            respect_backoff: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        (r.retrying, r.outbox.pending),
        (0, 1),
        "not retried before its time"
    );
    // give up after 1 s
    let loaded = results_config(
        dir.path(),
        &fixture_roster(),
        QTI_FOLDER,
        "give_up_after = \"1s\"",
        &rest_sink(&gb, ""),
    )
    .load();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.failed, r.outbox.failed, r.outbox.pending), (1, 1, 0));
    assert!(
        r.outbox.reasons[0].1.contains("gave up"),
        "{:?}",
        r.outbox.reasons
    );
    assert!(
        r.outbox.reasons[0].1.contains("HTTP 503"),
        "{:?}",
        r.outbox.reasons
    );
}

#[path = "results/safety.rs"]
mod safety;
