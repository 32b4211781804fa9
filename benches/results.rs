//! Results benchmark (issue 3): 100,000 results in 20 QTI 2.1 files for
//! 10,000 students (10 exams each), read into the outbox and pushed to a
//! minimal OneRoster gradebook service on loopback with the default
//! concurrency (8).
//!
//! `sisync sync results` runs as a child process, so its CPU time and peak
//! RSS are its own (the fake service runs in this process). Reports:
//! ingest rate (results/s into the outbox), push rate, CPU time per pushed
//! result, and peak RSS. Run with `cargo bench --bench results`.
//!
//! `SISYNC_BENCH_RESULTS_EXPORT=DIR` only writes the roster export
//! (`DIR/roster`) and the QTI files (`DIR/inbox`) and exits
//! (`bench/compare.sh`).

mod common;
use common::{Platform, Source, TestConfig};

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use sisync::sync::{self, Quiet, RosterOptions};

const STUDENTS: usize = 10_000;
const CLASSES: usize = 400;
const EXAMS: usize = 10;
const FILES: usize = 20;

fn generate_roster(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let w = |n: &str| File::create(dir.join(n)).map(|f| BufWriter::with_capacity(1 << 20, f));
    let mut m = w("manifest.csv")?;
    writeln!(
        m,
        "propertyName,value\nmanifest.version,1.0\noneroster.version,1.2"
    )?;
    for f in ["orgs", "classes", "users", "roles", "enrollments"] {
        writeln!(m, "file.{f},bulk")?;
    }
    let mut o = w("orgs.csv")?;
    writeln!(
        o,
        "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId"
    )?;
    writeln!(o, "org-1,,,Bench College,school,99AA00,")?;
    let mut c = w("classes.csv")?;
    writeln!(
        c,
        "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,termSourcedIds"
    )?;
    for i in 0..CLASSES {
        writeln!(c, "cls-{i},,,Class {i},,crs-1,c{i},scheduled,,org-1,")?;
    }
    let mut u = w("users.csv")?;
    writeln!(
        u,
        "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,userMasterIdentifier,resourceSourcedIds,preferredGivenName,preferredMiddleName,preferredFamilyName,primaryOrgSourcedId,pronouns"
    )?;
    let mut r = w("roles.csv")?;
    writeln!(
        r,
        "sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,userProfileSourcedId"
    )?;
    let mut e = w("enrollments.csv")?;
    writeln!(
        e,
        "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate"
    )?;
    for s in 0..STUDENTS {
        writeln!(
            u,
            "stu-{s},,,true,u{s},,Given{s},Family{s},,{s},,,,,,,,,,,,org-1,"
        )?;
        writeln!(r, "r-{s},,,stu-{s},primary,student,,,org-1,")?;
        writeln!(
            e,
            "enr-{s},,,cls-{},org-1,stu-{s},student,false,,",
            s % CLASSES
        )?;
    }
    Ok(())
}

fn generate_results(dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let total = STUDENTS * EXAMS;
    let per_file = total / FILES;
    let mut n = 0;
    for f in 0..FILES {
        let mut w = BufWriter::with_capacity(
            1 << 20,
            File::create(dir.join(format!("batch-{f:02}.xml")))?,
        );
        writeln!(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<results>")?;
        for _ in 0..per_file {
            let (s, x) = (n % STUDENTS, n / STUDENTS);
            writeln!(
                w,
                r#"<assessmentResult xmlns="http://www.imsglobal.org/xsd/imsqti_result_v2p1"><context sourcedId="stu-{s}"><sessionIdentifier sourceID="https://bench" identifier="S-{n}"/></context><testResult identifier="EX-{x}" datestamp="2026-06-02T09:45:00Z"><outcomeVariable identifier="SCORE" cardinality="single" baseType="float"><value>{}</value></outcomeVariable><outcomeVariable identifier="MAXSCORE" cardinality="single" baseType="float"><value>100</value></outcomeVariable><outcomeVariable identifier="PASSED" cardinality="single" baseType="boolean"><value>true</value></outcomeVariable></testResult></assessmentResult>"#,
                n % 101
            )?;
            n += 1;
        }
        writeln!(w, "</results>")?;
    }
    Ok(n)
}

/// A gradebook that accepts every PUT with a bearer token and counts them.
async fn serve(count: Arc<AtomicUsize>) -> String {
    let app = axum::Router::new().route(
        "/ims/oneroster/gradebook/v1p2/:collection/:id",
        axum::routing::put(move |h: axum::http::HeaderMap, body: axum::body::Bytes| {
            let count = count.clone();
            async move {
                if h.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer bench") {
                    return StatusCode::UNAUTHORIZED;
                }
                if serde_json::from_slice::<serde_json::Value>(&body).is_err() {
                    return StatusCode::BAD_REQUEST;
                }
                count.fetch_add(1, Ordering::Relaxed);
                StatusCode::CREATED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn main() {
    if let Ok(dir) = std::env::var("SISYNC_BENCH_RESULTS_EXPORT") {
        let dir = Path::new(&dir);
        generate_roster(&dir.join("roster")).unwrap();
        let n = generate_results(&dir.join("inbox")).unwrap();
        println!("{n} results in {FILES} QTI files under {}", dir.display());
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    generate_roster(&dir.path().join("roster")).unwrap();
    let n = generate_results(&dir.path().join("inbox")).unwrap();
    let puts = Arc::new(AtomicUsize::new(0));
    let base = rt.block_on(serve(puts.clone()));
    std::fs::write(dir.path().join("token"), "bench").unwrap();
    let cfg = TestConfig::new(dir.path())
        .institution("Bench", "99AA")
        .source(Source::Toml(
            "kind = \"oneroster-csv\"\npath = \"roster\"\n".into(),
        ))
        .platform(Platform::CsvDrop("platform".into()))
        .extra(&format!(
            r#"[results]
[results.source]
kind = "qti-folder"
path = "inbox"
settle = "0s"
[results.sink]
kind = "oneroster-rest"
base_url = "{base}"
[results.sink.auth]
kind = "bearer"
token_file = "token"
"#
        ))
        .write();
    let loaded = sisync::connector::load(&cfg).unwrap();
    let roster = rt
        .block_on(sync::roster(
            &loaded,
            RosterOptions::default(),
            "bench",
            &Quiet,
        ))
        .unwrap();
    assert_eq!(
        roster.issues.len(),
        0,
        "{:?}",
        &roster.issues[..roster.issues.len().min(3)]
    );
    assert_eq!(roster.failed(), 0);

    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sisync"))
        .args([
            "--config",
            &cfg.display().to_string(),
            "--json",
            "sync",
            "results",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let wall = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (cpu, rss) = common::children_usage();
    let pushed = report["pushed"].as_u64().unwrap() as usize;
    assert_eq!(pushed, n, "{report}");
    let read = report["read_seconds"].as_f64().unwrap();
    let push = report["push_seconds"].as_f64().unwrap();
    println!("results: {n} results in {FILES} QTI files, {EXAMS} exams x {STUDENTS} students");
    println!(
        "  ingest into the outbox: {read:.2} s = {:.0} results/s",
        n as f64 / read
    );
    println!(
        "  push to the gradebook:  {push:.2} s = {:.0} results/s ({} PUTs incl. {} line items, concurrency 8)",
        n as f64 / push,
        puts.load(Ordering::Relaxed),
        report["line_items"]
    );
    println!(
        "  sisync CPU: {cpu:.2} s in all = {:.1} µs per result; wall {wall:.2} s; peak RSS {rss:.0} MB",
        cpu * 1e6 / n as f64
    );
}
