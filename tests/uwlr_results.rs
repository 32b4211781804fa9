//! Results to the LAS over UWLR 2.2 `BrengLeerresultaten`: a fake LAS on
//! 127.0.0.1 (tests/common/fake_las.rs) validates every request against
//! the official UWLR 2.2 XSDs with xmllint and stores results per
//! `resultaat@key`. Exactly once under injected faults (500, 503, SOAP
//! Server fault, stored-then-timeout) and a SIGKILL mid-push; re-marking
//! overwrites the same key; a SOAP Client fault fails the result with the
//! fault string kept in the outbox; mutual TLS with a client certificate.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::fake_las::{self, FakeLas, Fault};
use common::{Platform, Source, TestConfig, audit_of, kill_sync_under_way};
use sisync::config::Loaded;
use sisync::store::Store;
use sisync::sync::results::{ResultsOptions, ResultsReport, results};
use sisync::sync::{Quiet, RosterOptions};

/// student, exam, session, score
type Row = (String, String, String, u32);

fn write_qti(dir: &Path, name: &str, rows: &[Row]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut doc = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<results>\n");
    for (student, exam, session, score) in rows {
        doc.push_str(&format!(
            r#"<assessmentResult xmlns="http://www.imsglobal.org/xsd/imsqti_result_v2p1">
  <context sourcedId="{student}"><sessionIdentifier sourceID="https://toets.example" identifier="{session}"/></context>
  <testResult identifier="{exam}" datestamp="2026-06-02T09:45:00Z">
    <outcomeVariable identifier="SCORE" cardinality="single" baseType="float"><value>{score}</value></outcomeVariable>
  </testResult>
</assessmentResult>
"#
        ));
    }
    doc.push_str("</results>\n");
    std::fs::write(dir.join(name), doc).unwrap();
}

fn row(student: &str, exam: &str, session: &str, score: u32) -> Row {
    (student.into(), exam.into(), session.into(), score)
}

/// 20 students × `exams` exams, whole-number scores.
fn many(exams: usize) -> Vec<Row> {
    let mut out = Vec::new();
    for e in 1..=exams {
        for s in 1..=20 {
            out.push(row(
                &format!("stu-{}", 1000 + s),
                &format!("EX-NED-{e}"),
                &format!("S-{e}-{s}"),
                (s * e) as u32,
            ));
        }
    }
    out
}

/// The fixture roster into a csv-drop platform; results from
/// `dir/inbox` to the UWLR sink at `url` (`extra` lines in
/// `[results.sink]`). No class rules: a UWLR result needs no class.
fn config(dir: &Path, url: &str, extra: &str) -> Loaded {
    std::fs::write(dir.join("las.key"), format!("{}\n", fake_las::KEY)).unwrap();
    std::fs::write(dir.join("gw.key"), fake_las::GATEWAY_KEY).unwrap();
    let roster = common::repo().join("fixtures/oneroster-1.2");
    let text = format!(
        r#"[results.source]
kind = "qti-folder"
path = "inbox"
settle = "0s"

[results.sink]
kind = "uwlr"
url = "{url}"
autorisatiesleutel_file = "las.key"
klantcode = "{code}"
klantnaam = "{name}"
headers = {{ "Ocp-Apim-Subscription-Key" = "file:gw.key" }}
timeout = "1s"
{retries}
{extra}
"#,
        retries = if extra.contains("max_retries") {
            ""
        } else {
            "max_retries = 3"
        },
        code = fake_las::KLANTCODE,
        name = fake_las::KLANTNAAM,
    );
    TestConfig::new(dir)
        .institution("Test College", "99AA")
        .source(Source::OneRosterCsv(roster))
        .platform(Platform::CsvDrop("platform".into()))
        .extra(&text)
        .load()
}

async fn roster(loaded: &Loaded) {
    let r = common::sync(loaded, RosterOptions::default()).await;
    assert_eq!(r.failed(), 0);
}

async fn run(loaded: &Loaded, opts: ResultsOptions) -> ResultsReport {
    results(loaded, opts, "user:test", &Quiet).await.unwrap()
}

fn store(loaded: &Loaded) -> Store {
    Store::open(&loaded.config.state.path).unwrap()
}

fn assert_all_valid(las: &FakeLas) {
    let invalid = las.with(|g| g.invalid.clone());
    assert!(
        invalid.is_empty(),
        "requests not valid UWLR 2.2: {invalid:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_result_arrives_exactly_once_despite_faults() {
    let dir = tempfile::tempdir().unwrap();
    let las = FakeLas::start().await;
    las.with(|g| {
        g.faults.percent = 30;
        g.faults.kinds = vec![
            Fault::Status500,
            Fault::SlowAfterStore,
            Fault::Status503,
            Fault::SoapServer,
        ];
        g.slow = Duration::from_millis(1500);
    });
    let loaded = config(dir.path(), &las.url, "");
    roster(&loaded).await;
    let rows = many(5);
    write_qti(&dir.path().join("inbox"), "batch.xml", &rows);

    let mut runs = 0;
    let last = loop {
        let r = run(&loaded, ResultsOptions::default()).await;
        runs += 1;
        if r.outbox.pending == 0 || runs == 8 {
            break r;
        }
    };
    assert_eq!(
        (last.outbox.pending, last.outbox.pushed, last.outbox.failed),
        (0, 100, 0),
        "{last:?}"
    );
    let faults = las.with(|g| g.faults.injected);
    assert!(faults >= 15, "only {faults} faults were injected");
    assert_all_valid(&las);
    // the LAS holds each result once, under a sisync key, with its score
    let stored = las.with(|g| g.results.clone());
    assert_eq!(stored.len(), 100);
    let pairs: BTreeSet<(String, String)> = stored
        .values()
        .map(|s| (s.leerlingid.clone(), s.toetscode.clone()))
        .collect();
    assert_eq!(pairs.len(), 100);
    for (key, s) in &stored {
        let hex = key.strip_prefix("sisync-r-").expect("a sisync key");
        assert!(hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(s.afnamedatum, "2026-06-02");
        assert_eq!(s.schooljaar, "2025-2026", "the year the test was taken in");
    }
    assert!(
        stored
            .values()
            .any(|s| s.leerlingid == "stu-1020" && s.toetscode == "EX-NED-5" && s.score == "100")
    );
    // a stored-then-timed-out write was sent again under the same key
    let rewritten = las.with(|g| g.writes.values().filter(|n| **n > 1).count());
    assert!(
        rewritten > 0,
        "no write was repeated: the fault mix is too mild"
    );
    // every accepted push audited once, the SOAP body hashed
    let s = store(&loaded);
    let ok: Vec<_> = audit_of(&s, "result.push")
        .into_iter()
        .filter(|e| e.outcome == "ok")
        .collect();
    assert_eq!(ok.len(), 100);
    assert!(
        ok.iter()
            .all(|e| e.endpoint == las.url && e.payload_sha256.is_some())
    );
    // no line items: the test is named in each request
    assert_eq!(audit_of(&s, "lineitem.put").len(), 0);
    assert!(s.audit_verify().unwrap().ok());
    drop(s);
    // a re-run sends nothing
    las.with(|g| g.faults.percent = 0);
    let before = las.with(|g| g.requests);
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.pushed, r.updated), (0, 0));
    assert_eq!(las.with(|g| g.requests), before);
    // the gateway header and SOAPAction went with every request
    let h = las.with(|g| g.last_headers.clone());
    assert_eq!(
        h.get("soapaction").map(String::as_str),
        Some("\"BrengLeerresultaten\"")
    );
    assert!(h.get("content-type").unwrap().starts_with("text/xml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remarked_result_overwrites_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let las = FakeLas::start().await;
    let loaded = config(dir.path(), &las.url, "");
    roster(&loaded).await;
    let inbox = dir.path().join("inbox");
    write_qti(
        &inbox,
        "a.xml",
        &[
            row("stu-1001", "EX-NED-1", "S-1", 40),
            row("stu-1002", "EX-NED-1", "S-2", 50),
        ],
    );
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!(r.pushed, 2);
    let key = las.with(|g| {
        g.results
            .iter()
            .find(|(_, s)| s.leerlingid == "stu-1001")
            .map(|(k, _)| k.clone())
            .unwrap()
    });
    write_qti(&inbox, "b.xml", &[row("stu-1001", "EX-NED-1", "S-1", 45)]);
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.ingested.changed, r.updated, r.pushed), (1, 1, 0));
    las.with(|g| {
        assert_eq!(g.results.len(), 2);
        assert_eq!(g.results[&key].score, "45");
        assert_eq!(g.writes[&key], 2);
    });
    assert_all_valid(&las);
    let s = store(&loaded);
    let updates = audit_of(&s, "result.update");
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].record_id.as_deref(), Some("stu-1001"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soap_client_fault_fails_the_result_with_the_fault_string() {
    let dir = tempfile::tempdir().unwrap();
    let las = FakeLas::start().await;
    las.with(|g| g.reject_student = Some("stu-1003".into()));
    let loaded = config(dir.path(), &las.url, "max_retries = 0");
    roster(&loaded).await;
    write_qti(
        &dir.path().join("inbox"),
        "a.xml",
        &[
            row("stu-1001", "EX-NED-1", "S-1", 40),
            row("stu-1003", "EX-NED-1", "S-3", 50),
        ],
    );
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.pushed, r.failed, r.retrying), (1, 1, 0), "{r:?}");
    // the audit log has the failure, not the LAS's words
    let says = "SIS says: leerling stu-1003 is niet bekend op deze school";
    let fault = ("SOAP fault Client", says);
    common::assert_refused_by_the_sis(&r.outbox.reasons, &loaded, fault, "niet bekend");
    // a plain re-run leaves it failed; --retry-failed sends it once fixed
    las.with(|g| g.reject_student = None);
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.pushed, r.outbox.failed), (0, 1));
    let r = run(&loaded, common::retry_failed()).await;
    assert_eq!((r.pushed, r.outbox.failed, r.outbox.pushed), (1, 0, 2));
    assert_eq!(las.with(|g| g.results.len()), 2);
    assert_all_valid(&las);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_or_a_score_uwlr_cannot_carry_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let las = FakeLas::start().await;
    let loaded = config(dir.path(), &las.url, "");
    std::fs::write(dir.path().join("las.key"), "wrong-key").unwrap();
    roster(&loaded).await;
    // a connect check names the authorisation
    let checks = sisync::sync::results::connect_checks(&loaded).await;
    let (name, res) = &checks[0];
    assert_eq!(name, "results out");
    let e = format!("{:#}", res.as_ref().unwrap_err());
    assert!(e.contains("refused the autorisatie"), "{e}");
    assert!(!e.contains("wrong-key"), "{e}");

    write_qti(
        &dir.path().join("inbox"),
        "a.xml",
        &[row("stu-1001", "EX-NED-1", "S-1", 40)],
    );
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.pushed, r.failed), (0, 1), "{r:?}");
    assert!(
        r.outbox.reasons[0]
            .1
            .contains("autorisatiesleutel onbekend")
    );
    assert_eq!(las.with(|g| g.results.len()), 0);

    // the right key: the check passes, the retried result arrives
    std::fs::write(dir.path().join("las.key"), fake_las::KEY).unwrap();
    let checks = sisync::sync::results::connect_checks(&loaded).await;
    let line = checks[0].1.as_ref().unwrap();
    assert!(line.contains("autorisatie accepted"), "{line}");
    let r = run(&loaded, common::retry_failed()).await;
    assert_eq!(r.pushed, 1);

    // a fractional score: failed locally, nothing sent
    let before = las.with(|g| g.requests);
    let qti = r#"<?xml version="1.0" encoding="UTF-8"?>
<assessmentResult xmlns="http://www.imsglobal.org/xsd/imsqti_result_v2p1"><context sourcedId="stu-1002"><sessionIdentifier sourceID="https://toets.example" identifier="S-9"/></context><testResult identifier="EX-NED-1" datestamp="2026-06-02T09:45:00Z"><outcomeVariable identifier="SCORE" cardinality="single" baseType="float"><value>7.5</value></outcomeVariable></testResult></assessmentResult>
"#;
    std::fs::write(dir.path().join("inbox/frac.xml"), qti).unwrap();
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.pushed, r.failed), (0, 1), "{r:?}");
    assert!(
        r.outbox
            .reasons
            .iter()
            .any(|x| x.1.contains("not a whole number")),
        "{:?}",
        r.outbox.reasons
    );
    assert_eq!(las.with(|g| g.requests), before);
    assert_all_valid(&las);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_a_client_certificate() {
    let (las, pki) = FakeLas::start_mtls().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("ca.pem"), &pki.ca_pem).unwrap();
    std::fs::write(d.join("client.pem"), &pki.client_cert_pem).unwrap();
    std::fs::write(d.join("client.key"), &pki.client_key_pem).unwrap();
    // without a client certificate the handshake fails: nothing arrives
    let loaded = config(d, &las.url, "ca_file = \"ca.pem\"\nmax_retries = 0");
    roster(&loaded).await;
    write_qti(
        &d.join("inbox"),
        "a.xml",
        &[row("stu-1001", "EX-NED-1", "S-1", 40)],
    );
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.pushed, r.retrying), (0, 1), "{r:?}");
    assert_eq!(las.with(|g| g.requests), 0);
    // with it, the result goes through
    let loaded = config(
        d,
        &las.url,
        "ca_file = \"ca.pem\"\nclient_cert_file = \"client.pem\"\nclient_key_file = \"client.key\"",
    );
    let checks = sisync::sync::results::connect_checks(&loaded).await;
    assert!(checks[0].1.is_ok(), "{:?}", checks[0].1);
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.pushed, r.outbox.pending), (1, 0), "{r:?}");
    assert_eq!(las.with(|g| g.results.len()), 1);
    assert_all_valid(&las);
}

/// A child `sisync sync results` is killed with SIGKILL in the middle of
/// its pushes; after a restart the LAS holds every result once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_push_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let las = FakeLas::start().await;
    las.with(|g| g.delay = Duration::from_millis(25));
    let loaded = config(dir.path(), &las.url, "concurrency = 4");
    roster(&loaded).await;
    write_qti(&dir.path().join("inbox"), "a.xml", &many(10));
    kill_sync_under_way(dir.path(), "results", || {
        las.with(|g| g.results.len()) >= 60
    })
    .await;
    let held = las.with(|g| g.results.len());
    assert!(held < 200, "the kill came after the pushes ({held})");
    las.with(|g| g.delay = Duration::ZERO);
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!(
        (r.outbox.pending, r.outbox.pushed, r.outbox.failed),
        (0, 200, 0),
        "{r:?}"
    );
    let stored = las.with(|g| g.results.clone());
    assert_eq!(stored.len(), 200);
    let pairs: BTreeSet<(String, String)> = stored
        .values()
        .map(|s| (s.leerlingid.clone(), s.toetscode.clone()))
        .collect();
    assert_eq!(pairs.len(), 200, "one result per student and test");
    assert_all_valid(&las);
    assert!(store(&loaded).audit_verify().unwrap().ok());
}

/// The fake LAS's schema check is real: a request that breaks UWLR 2.2
/// (a resultaat naming a test the toetsen block lacks) is refused and
/// recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_las_refuses_what_uwlr_2_2_refuses() {
    let las = FakeLas::start().await;
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:a="http://www.edustandaard.nl/leerresultaten/2/autorisatie" xmlns:lr="http://www.edustandaard.nl/leerresultaten/2/leerresultaten"><s:Header><a:autorisatie><a:autorisatiesleutel>{}</a:autorisatiesleutel><a:klantcode>{}</a:klantcode><a:klantnaam>x</a:klantnaam></a:autorisatie></s:Header><s:Body><lr:leerresultaten_verzoek><lr:school><lr:schooljaar>2025-2026</lr:schooljaar><lr:brincode>99AA</lr:brincode><lr:aanmaakdatum>2026-06-02T10:00:00Z</lr:aanmaakdatum><lr:xsdversie>2.2</lr:xsdversie></lr:school><lr:toetsafnames><lr:toetsafname><lr:leerlingid>stu-1</lr:leerlingid><lr:resultaten><lr:resultaat key="k1"><lr:afnamedatum>2026-06-02</lr:afnamedatum><lr:toetscode>EX-1</lr:toetscode><lr:score>4</lr:score></lr:resultaat></lr:resultaten></lr:toetsafname></lr:toetsafnames><lr:toetsen><lr:toets><lr:toetscode>EX-2</lr:toetscode></lr:toets></lr:toetsen></lr:leerresultaten_verzoek></s:Body></s:Envelope>"#,
        fake_las::KEY,
        fake_las::KLANTCODE
    );
    let r = reqwest::Client::new()
        .post(&las.url)
        .header("SOAPAction", "\"BrengLeerresultaten\"")
        .header(fake_las::GATEWAY_HEADER, fake_las::GATEWAY_KEY)
        .header("content-type", "text/xml; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
    let text = r.text().await.unwrap();
    assert!(text.contains("faultcode>soap:Client"), "{text}");
    let invalid = las.with(|g| g.invalid.clone());
    assert_eq!(invalid.len(), 1);
    assert!(invalid[0].contains("krAfnameToets"), "{invalid:?}");
    assert_eq!(las.with(|g| g.results.len()), 0);
}

/// With `privacy.use_eck_id` the platform knows students by their ECK iD:
/// the LAS gets its own leerling key as `leerlingid` and the ECK iD as
/// `eckid`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eck_id_goes_along_where_known() {
    const ECK: &str = "https://ketenid.nl/201703/50c416ea9a8b8b4f41df46566df802c86cccbb65a1b55c8b326df55df1cf05b68320ee77bf55a629325e96bc00b3eaae318458fd4cb3c2501b5b2e864c69746a";
    let dir = tempfile::tempdir().unwrap();
    let las = FakeLas::start().await;
    let loaded = config(dir.path(), &las.url, "\n[privacy]\nuse_eck_id = true");
    roster(&loaded).await;
    write_qti(
        &dir.path().join("inbox"),
        "a.xml",
        &[row(ECK, "EX-NED-1", "S-1", 40)],
    );
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!(r.pushed, 1, "{r:?}");
    let stored: Vec<_> = las.with(|g| g.results.values().cloned().collect());
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].leerlingid, "stu-1001");
    assert_eq!(stored[0].eckid.as_deref(), Some(ECK));
    assert_all_valid(&las);
}

/// A 200 that is no UWLR answer (a proxy's login page) leaves the result
/// pending, never pushed or failed; the next run sends it (same key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_confirmation_is_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let las = FakeLas::start().await;
    las.with(|g| {
        g.faults.percent = 100;
        g.faults.kinds = vec![Fault::HtmlOk];
    });
    let loaded = config(dir.path(), &las.url, "max_retries = 0");
    roster(&loaded).await;
    write_qti(
        &dir.path().join("inbox"),
        "a.xml",
        &[row("stu-1001", "EX-NED-1", "S-1", 40)],
    );
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.pushed, r.failed, r.retrying), (0, 0, 1), "{r:?}");
    // the reason waits with the result in the outbox
    let s = store(&loaded);
    let pending = s.outbox_due(false, "", 10).unwrap();
    assert_eq!(pending.len(), 1);
    let reason = pending[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("not a SOAP envelope"), "{reason}");
    drop(s);
    las.with(|g| g.faults.percent = 0);
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.pushed, r.outbox.pending), (1, 0), "{r:?}");
    assert_eq!(las.with(|g| g.results.len()), 1);
}

/// One QTI result with free outcome lines (`SCORE`, `GRADE`…).
fn write_qti_outcomes(dir: &Path, name: &str, student: &str, session: &str, outcomes: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let doc = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<assessmentResult xmlns="http://www.imsglobal.org/xsd/imsqti_result_v2p1"><context sourcedId="{student}"><sessionIdentifier sourceID="https://toets.example" identifier="{session}"/></context><testResult identifier="EX-NED-1" datestamp="2026-06-02T09:45:00Z">{outcomes}</testResult></assessmentResult>
"#
    );
    std::fs::write(dir.join(name), doc).unwrap();
}

fn outcome(id: &str, base: &str, v: &str) -> String {
    format!(
        r#"<outcomeVariable identifier="{id}" cardinality="single" baseType="{base}"><value>{v}</value></outcomeVariable>"#
    )
}

const TEST_NS: &str = "urn:sisync:test:las-resultaat";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grades_and_fractional_scores_go_as_the_configured_anderresultaat() {
    let las = FakeLas::start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let loaded = config(
        d,
        &las.url,
        &format!(
            "anderresultaat_type = \"t:Cijfer\"\nanderresultaat_namespace = \"{TEST_NS}\"\nanderresultaat_element = \"cijfer\""
        ),
    );
    roster(&loaded).await;
    let inbox = d.join("inbox");
    // a grade (with a whole score too: the grade wins), a fractional score,
    // a whole score alone
    write_qti_outcomes(
        &inbox,
        "a.xml",
        "stu-1001",
        "S-A",
        &(outcome("SCORE", "float", "31") + &outcome("GRADE", "string", "7,5")),
    );
    write_qti_outcomes(
        &inbox,
        "b.xml",
        "stu-1002",
        "S-B",
        &outcome("SCORE", "float", "6.25"),
    );
    write_qti_outcomes(
        &inbox,
        "c.xml",
        "stu-1003",
        "S-C",
        &outcome("SCORE", "float", "12"),
    );
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.pushed, r.failed), (3, 0), "{:?}", r.outbox.reasons);
    assert_all_valid(&las);
    let by_student = |s: &str| {
        las.with(|g| {
            g.results
                .values()
                .find(|x| x.leerlingid == s)
                .cloned()
                .unwrap_or_else(|| panic!("nothing stored for {s}"))
        })
    };
    let typ = format!("{{{TEST_NS}}}Cijfer");
    let el = format!("{{{TEST_NS}}}cijfer");
    let a = by_student("stu-1001");
    assert_eq!(a.ander, Some((typ.clone(), el.clone(), "7,5".into())));
    assert_eq!(a.score, "");
    let b = by_student("stu-1002");
    assert_eq!(b.ander, Some((typ.clone(), el.clone(), "6.25".into())));
    let c = by_student("stu-1003");
    assert_eq!((c.score.as_str(), c.ander.clone()), ("12", None));

    // a LAS type that adds nothing: the value in the base andere_score;
    // grades only, so a fractional score is refused with one line
    let dir2 = tempfile::tempdir().unwrap();
    let d2 = dir2.path();
    let loaded = config(
        d2,
        &las.url,
        &format!(
            "anderresultaat_type = \"las:Anders\"\nanderresultaat_namespace = \"{TEST_NS}\"\nanderresultaat_value = \"grade\""
        ),
    );
    roster(&loaded).await;
    let inbox = d2.join("inbox");
    write_qti_outcomes(
        &inbox,
        "d.xml",
        "stu-1004",
        "S-D",
        &outcome("GRADE", "string", "goed"),
    );
    write_qti_outcomes(
        &inbox,
        "e.xml",
        "stu-1005",
        "S-E",
        &outcome("SCORE", "float", "4.5"),
    );
    let before = las.with(|g| g.requests);
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.pushed, r.failed), (1, 1), "{:?}", r.outbox.reasons);
    assert!(
        r.outbox.reasons.iter().any(|x| x
            .1
            .contains("anderresultaat_value = \"grade\" sends grades only")),
        "{:?}",
        r.outbox.reasons
    );
    assert_eq!(las.with(|g| g.requests), before + 1);
    let dd = by_student("stu-1004");
    assert_eq!(
        dd.ander,
        Some((
            format!("{{{TEST_NS}}}Anders"),
            "{http://www.edustandaard.nl/leerresultaten/2/leerresultaten}andere_score".into(),
            "goed".into()
        ))
    );
    assert_all_valid(&las);

    // a type the LAS does not define: the LAS refuses it (SOAP Client
    // fault from schema validation), the result fails and is kept
    let dir3 = tempfile::tempdir().unwrap();
    let d3 = dir3.path();
    let loaded = config(
        d3,
        &las.url,
        &format!("anderresultaat_type = \"t:Onbekend\"\nanderresultaat_namespace = \"{TEST_NS}\""),
    );
    roster(&loaded).await;
    write_qti_outcomes(
        &d3.join("inbox"),
        "f.xml",
        "stu-1006",
        "S-F",
        &outcome("GRADE", "string", "8"),
    );
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.pushed, r.failed), (0, 1), "{:?}", r.outbox.reasons);
    // (the fault comes with HTTP 500, which the HTTP layer retries)
    let invalid = las.with(|g| g.invalid.clone());
    assert!(
        !invalid.is_empty() && invalid.iter().all(|m| m.contains("anderresultaat")),
        "{invalid:?}"
    );
    assert!(las.with(|g| g.results.values().all(|x| x.leerlingid != "stu-1006")));
}

#[test]
fn anderresultaat_settings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, key) in [
        (
            "anderresultaat_type = \"t:Cijfer\"",
            "anderresultaat_namespace",
        ),
        (
            "anderresultaat_namespace = \"urn:x\"",
            "anderresultaat_type",
        ),
        (
            "anderresultaat_type = \"Cijfer\"\nanderresultaat_namespace = \"urn:x\"",
            "anderresultaat_type",
        ),
        (
            "anderresultaat_type = \"lr:Cijfer\"\nanderresultaat_namespace = \"urn:x\"",
            "anderresultaat_type",
        ),
        (
            "anderresultaat_type = \"t:Cijfer\"\nanderresultaat_namespace = \"urn:x\"\nanderresultaat_element = \"1x\"",
            "anderresultaat_element",
        ),
        (
            "anderresultaat_type = \"t:Cijfer\"\nanderresultaat_namespace = \"http://www.edustandaard.nl/leerresultaten/2/leerresultaten\"",
            "anderresultaat_namespace",
        ),
    ] {
        let file = dir.path().join("sisync.toml");
        std::fs::write(dir.path().join("las.key"), "k").unwrap();
        TestConfig::new(dir.path())
            .source(Source::OneRosterCsv("r".into()))
            .platform(Platform::CsvDrop("p".into()))
            .extra(&format!("[results.source]\nkind = \"qti-folder\"\npath = \"inbox\"\n[results.sink]\nkind = \"uwlr\"\nurl = \"http://127.0.0.1:1/x\"\nautorisatiesleutel_file = \"las.key\"\nklantcode = \"c\"\nklantnaam = \"n\"\n{extra}\n"))
            .write();
        let err = match sisync::connector::load(&file) {
            Ok(_) => panic!("accepted: {extra}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(key), "{extra}: {err}");
    }
}
