//! Source `uwlr`: sisync against a fake LAS over real HTTP(S) on
//! 127.0.0.1 (two schools, all-in-one and staged, geenwijzigingen,
//! geengegevens, SOAP faults, a wrong key, a lost connection, mutual TLS
//! and a gateway header). Every request sisync sends and every answer the
//! fake gives is validated against the official UWLR 2.2 XSDs with
//! `xmllint --schema`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::fake_las_roster::*;
use common::fake_scim::{FakeScim, TOKEN};
use common::test_pki::pki;
use common::*;
use serde_json::Value;
use sisync::config::Loaded;
use sisync::sync::{self, Quiet, RosterOptions};

/// A config reading the fake LAS into the fake SCIM platform.
fn config(dir: &Path, las: &FakeLas, scim: &str, extra_source: &str) -> Loaded {
    std::fs::write(dir.join("key-aa"), "sleutel-aa\n").unwrap();
    std::fs::write(dir.join("key-bb"), "sleutel-bb\n").unwrap();
    let source = format!(
        r#"kind = "uwlr"
url = "{}"
klantcode = "SISYNC"
klantnaam = "sisync toetsplatform"
schooljaar = "{YEAR}"
max_retries = 0
timeout = "5s"
{extra_source}
[[source.schools]]
brincode = "99AA"
dependancecode = "00"
key = "file:key-aa"
name = "Basisschool De Voorbeeld"

[[source.schools]]
brincode = "99BB"
key = "file:key-bb"
"#,
        las.url
    );
    scim_config_with_source(dir, &source, scim, TOKEN, "")
}

/// The platform's users and groups by externalId.
#[allow(clippy::type_complexity)]
fn platform(
    s: &FakeScim,
) -> (
    BTreeMap<String, Value>,
    BTreeMap<String, (String, BTreeSet<String>)>,
) {
    (s.users_by_external_id(), s.groups_by_external_id())
}

async fn run(cfg: &Loaded, opts: RosterOptions) -> anyhow::Result<sync::RosterReport> {
    sync::roster(cfg, opts, "user:test", &Quiet)
        .await
        .map_err(sync::RunError::into_anyhow)
}

/// The fake LAS with the fixture's two schools, the fake SCIM platform and
/// the config reading one into the other with `extra_source` keys; keep
/// the directory bound while the config is used.
async fn bed(extra_source: &str) -> (FakeLas, FakeScim, tempfile::TempDir, Loaded) {
    let las = FakeLas::start(fixture_schools()).await;
    let scim = FakeScim::start(true).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &las, &scim.base, extra_source);
    (las, scim, dir, cfg)
}

/// The one line a run that must fail ends with.
async fn fails(cfg: &Loaded, opts: RosterOptions) -> String {
    let e = run(cfg, opts).await.unwrap_err();
    format!("{e:#}")
}

/// After a first run: a run with nothing changed at either school (asked
/// with laatstontvangengegevens, answered geenwijzigingen) writes nothing;
/// then 99AA00 changed and 99BB00 did not: 99BB00 is read again in full,
/// so nobody leaves. The exchanges of those two runs.
async fn rerun_unchanged_then_99aa_changed(
    las: &FakeLas,
    scim: &FakeScim,
    cfg: &Loaded,
) -> (Vec<Exchange>, Vec<Exchange>) {
    let before = platform(scim);
    las.clear();
    scim.clear_requests();

    las.school("99AA00", |s| s.changed = false);
    las.school("99BB00", |s| s.changed = false);
    let r = run(cfg, RosterOptions::default()).await.unwrap();
    assert_has(&r.source_format, &["geenwijzigingen"]);
    assert!(
        r.plan.users.is_empty() && r.plan.groups.is_empty(),
        "{:?}",
        r.plan.users
    );
    assert!(scim.writes().is_empty(), "nothing sent to the platform");
    assert_eq!(platform(scim), before);
    let unchanged = las.exchanges();
    for e in &unchanged {
        assert_has(&e.request_text(), &["<laatstontvangengegevens>"]);
        assert!(e.response_text().contains("<geenwijzigingen/>"));
    }
    assert_eq!(validate_exchanges(las), 2);
    las.clear();

    las.school("99AA00", |s| s.changed = true);
    let r = run(cfg, RosterOptions::default()).await.unwrap();
    assert_eq!(r.outcome.as_ref().unwrap().failed(), 0);
    assert_eq!(platform(scim), before, "the same roster: nobody left");
    (unchanged, las.exchanges())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_reads_two_schools_and_every_message_validates() {
    let (las, scim, _dir, cfg) = bed("").await;
    let r = run(&cfg, RosterOptions::default()).await.unwrap();
    assert_eq!(r.outcome.as_ref().unwrap().failed(), 0, "{:?}", r.issues);
    assert!(r.issues.is_empty(), "{:?}", r.issues);
    assert_has(&r.source_format, &["2 school(s)"]);

    let (users, groups) = platform(&scim);
    // 11 + 4 leerlingen, 3 + 1 leerkrachten
    assert_eq!(users.len(), 19);
    assert_eq!(groups.len(), 7, "5 groepen at 99AA00, 2 at 99BB00");
    let jesse = &users["L1001"];
    assert_eq!(jesse["name"]["givenName"], "Jesse", "roepnaam first");
    let n = &jesse["name"];
    assert!(
        (n["middleName"] == "de" && n["familyName"] == "Vries") || n["familyName"] == "de Vries",
        "voorvoegsel as the tussenvoegsel: {n}"
    );
    // no roepnaam: voornamen
    assert_eq!(users["L1004"]["name"]["givenName"], "Lotte Maria");
    // the leerling in no group is a user without classes
    assert!(users.contains_key("L1011"));
    let plus = &groups["SG-PLUS"];
    assert_eq!(plus.0, "Plusklas");
    assert_eq!(
        plus.1,
        ["L1001", "L1003", "L1008", "T2001"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    assert!(groups["B6A"].1.contains("T4001"));

    // one HaalLeerlinggegevens per school, with that school's key
    let ex = las.exchanges();
    assert_eq!(ex.len(), 2);
    for e in &ex {
        assert_eq!(e.op, "leerlinggegevens_verzoek");
        assert_eq!(e.soap_action, "\"HaalLeerlinggegevens\"");
        assert_eq!(e.status, 200);
        let body = e.request_text();
        assert_has(
            &body,
            &[
                "<schooljaar>2024-2025</schooljaar>",
                "<xsdversie>2.2</xsdversie>",
            ],
        );
        assert!(!e.asks_since(), "a first run reads in full");
    }
    assert_eq!(validate_exchanges(&las), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_gives_the_same_platform_state_in_batches() {
    let (las, one, _d1, cfg) = bed("").await;
    run(&cfg, RosterOptions::default()).await.unwrap();
    las.clear();

    let staged = FakeScim::start(true).await;
    let d2 = tempfile::tempdir().unwrap();
    let staged_keys = "mode = \"staged\"\nbatch_groups = 2\ngegevenssetid = \"LVS\"\n";
    let cfg = config(d2.path(), &las, &staged.base, staged_keys);
    let r = run(&cfg, RosterOptions::default()).await.unwrap();
    assert_eq!(r.outcome.as_ref().unwrap().failed(), 0);
    assert!(r.issues.is_empty(), "{:?}", r.issues);
    assert_eq!(platform(&staged), platform(&one));

    let ex = las.exchanges();
    let count = |school: &str, op: &str| {
        ex.iter()
            .filter(|e| e.school == school && e.op == op)
            .count()
    };
    // 99AA00: 5 groepen in batches of 2 = 3 batches; 99BB00: 1 batch
    assert_eq!(count("99AA00", "structuur_verzoek"), 1);
    assert_eq!(count("99AA00", "leerlingen_verzoek"), 3);
    assert_eq!(count("99AA00", "leerkrachten_verzoek"), 3);
    assert_eq!(count("99BB00", "leerlingen_verzoek"), 1);
    let first = ex
        .iter()
        .find(|e| e.op == "leerlingen_verzoek")
        .map(Exchange::request_text)
        .unwrap();
    assert_has(
        &first,
        &["<gegevenssetid>LVS</gegevenssetid>", "<groep key=\"G7A\"/>"],
    );
    assert_eq!(validate_exchanges(&las), (1 + 2 * 3) + (1 + 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geenwijzigingen_changes_nothing_and_deactivates_nobody() {
    let (las, scim, _dir, cfg) = bed("").await;
    run(&cfg, RosterOptions::default()).await.unwrap();
    let (_, after) = rerun_unchanged_then_99aa_changed(&las, &scim, &cfg).await;
    let bb: Vec<_> = after.iter().filter(|e| e.school == "99BB00").collect();
    assert_eq!(bb.len(), 2, "asked for changes, then in full");
    assert!(!bb[1].asks_since());
    assert_eq!(validate_exchanges(&las), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geengegevens_is_refused_and_nothing_is_written() {
    let (las, scim, _dir, cfg) = bed("").await;
    run(&cfg, RosterOptions::default()).await.unwrap();
    let before = platform(&scim);
    scim.clear_requests();

    las.school("99BB00", |s| s.no_data = true);
    let line = fails(&cfg, full()).await;
    assert_has(
        &line,
        &["geengegevens", "99BB00", "nothing was sent to the platform"],
    );
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(scim.writes().is_empty());
    assert_eq!(platform(&scim), before, "nobody deactivated");
    validate_exchanges(&las);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soap_fault_is_one_line_with_the_faultstring() {
    let (las, scim, _dir, cfg) = bed("").await;
    las.state.lock().unwrap().fault_next =
        Some("Interne fout in het LAS, probeer het later opnieuw".into());
    let line = fails(&cfg, RosterOptions::default()).await;
    let fault = "SOAP fault soap:Server: Interne fout in het LAS, probeer het later opnieuw";
    assert_has(&line, &[fault, "school 99AA00", &las.url]);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(scim.users().is_empty(), "nothing written");
    validate_exchanges(&las);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_refused_with_what_to_check() {
    let (las, scim, dir, cfg) = bed("").await;
    std::fs::write(dir.path().join("key-bb"), "oude-sleutel\n").unwrap();
    let cfg = sisync::connector::load(&cfg.file).unwrap();
    let line = fails(&cfg, RosterOptions::default()).await;
    assert_has(
        &line,
        &[
            "ongeldige autorisatiesleutel",
            "check the autorisatiesleutel of school 99BB00 (source.schools key)",
        ],
    );
    assert!(
        !line.contains("oude-sleutel"),
        "the key is never shown: {line}"
    );
    assert!(
        scim.users().is_empty(),
        "99AA00 was fine, but nothing is written"
    );

    let checks = sync::connect_checks(&cfg).await;
    let lines: BTreeMap<_, _> = checks.iter().map(|(n, r)| (n.clone(), r)).collect();
    let aa = lines["source 99AA00"].as_ref().unwrap();
    assert_has(
        aa,
        &[
            "OK, authorised",
            "schooljaar 2024-2025",
            "11 leerlingen, 5 groepen",
        ],
    );
    let bb = lines["source 99BB00"].as_ref().unwrap_err().to_string();
    assert!(bb.contains("ongeldige autorisatiesleutel"), "{bb}");
    validate_exchanges(&las);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_fails_the_whole_read_before_anything_is_written() {
    let (las, scim, _dir, cfg) = bed("").await;
    las.school("99BB00", |s| s.hang_up = true);
    let line = fails(&cfg, RosterOptions::default()).await;
    assert_has(
        &line,
        &["school 99BB00", "POST", "nothing was sent to the platform"],
    );
    assert!(
        scim.users().is_empty(),
        "99AA00 was read, but nothing is written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_breaks_off_fails_the_read() {
    let (las, scim, _dir, cfg) = bed("").await;
    las.school("99BB00", |s| s.cut_off = true);
    let line = fails(&cfg, RosterOptions::default()).await;
    assert_has(&line, &["school 99BB00", "broke off"]);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(scim.users().is_empty(), "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_client_certificate_and_a_gateway_header() {
    let p = pki();
    let las = FakeLas::start_tls(fixture_schools(), &p).await;
    las.state.lock().unwrap().require_header =
        Some(("Ocp-Apim-Subscription-Key".into(), "abonnement-123".into()));
    let scim = FakeScim::start(true).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &p.ca_pem).unwrap();
    std::fs::write(dir.path().join("client.pem"), &p.client_cert_pem).unwrap();
    std::fs::write(dir.path().join("client.key"), &p.client_key_pem).unwrap();
    std::fs::write(dir.path().join("subscription"), "abonnement-123\n").unwrap();
    let tls = "ca_file = \"ca.pem\"\nclient_cert_file = \"client.pem\"\nclient_key_file = \"client.key\"\nheaders = { \"Ocp-Apim-Subscription-Key\" = \"file:subscription\" }\n";
    let cfg = config(dir.path(), &las, &scim.base, tls);
    let checks = sync::connect_checks(&cfg).await;
    assert_eq!(checks.len(), 3, "two schools and the platform");
    for (name, r) in &checks[..2] {
        let line = r.as_ref().unwrap();
        assert!(name.starts_with("source 99"), "{name}");
        assert_has(line, &["OK, authorised", "schooljaar 2024-2025"]);
    }
    let r = run(&cfg, RosterOptions::default()).await.unwrap();
    assert_eq!(r.outcome.as_ref().unwrap().failed(), 0);
    assert_eq!(scim.users().len(), 19);
    for e in las.exchanges() {
        assert_eq!(e.headers["ocp-apim-subscription-key"], "abonnement-123");
    }

    // without the client certificate the handshake fails: nothing read
    let n = las.exchanges().len();
    let no_cert = "ca_file = \"ca.pem\"\nheaders = { \"Ocp-Apim-Subscription-Key\" = \"file:subscription\" }\n";
    let cfg = config(dir.path(), &las, &scim.base, no_cert);
    let line = fails(&cfg, full()).await;
    assert!(line.contains("school 99AA00"), "{line}");
    assert_eq!(las.exchanges().len(), n, "no request got through");

    // without the gateway header the gateway answers 401
    let no_header = tls.lines().take(3).collect::<Vec<_>>().join("\n");
    let cfg = config(dir.path(), &las, &scim.base, &no_header);
    let line = fails(&cfg, full()).await;
    assert_has(&line, &["HTTP 401", "autorisatiesleutel"]);
    validate_exchanges(&las);
}

#[test]
fn config_errors_name_the_school_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = |school: &str| {
        TestConfig::new(dir.path()).state(None).source(Source::Toml(format!(
            "kind = \"uwlr\"\nurl = \"https://las.example/uwlr\"\nklantcode = \"K\"\nklantnaam = \"N\"\n\n[[source.schools]]\nbrincode = \"99AA\"\nkey = \"file:k0\"\n\n[[source.schools]]\n{school}\n"
        )))
    };
    let text = |school: &str| config(school).text();
    let f = dir.path().join("sisync.toml");
    std::fs::write(dir.path().join("k0"), "sleutel\n").unwrap();
    std::fs::write(&f, text("brincode = \"99bb\"\nkey = \"file:k\"\n")).unwrap();
    let e = sisync::connector::load(&f).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("source.schools[1].brincode"), "{e}");
    let second = config("brincode = \"99bb\"\nkey = \"file:k\"\n");
    assert_eq!(e.line, Some(second.line_of("brincode = \"99bb\"")), "{e}");
    std::fs::write(&f, text("brincode = \"99BB\"\nkey = \"inline-secret\"\n")).unwrap();
    let e = sisync::connector::load(&f).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("source.schools[1].key"), "{e}");
    assert!(e.message.contains("inline secrets are not allowed"), "{e}");
    assert!(!e.to_string().contains("inline-secret\""), "{e}");
    // a key file that is not there: loading does not read it (read-only
    // commands work without it); check-config reports it, a run stops
    std::fs::write(&f, text("brincode = \"99BB\"\nkey = \"file:missing\"\n")).unwrap();
    let l = sisync::connector::load(&f).expect("loading reads no key");
    let problems = l.secret_problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    let e = &problems[0];
    assert_eq!(e.key.as_deref(), Some("source.schools[1].key"), "{e}");
    assert!(e.message.contains("cannot read"), "{e}");
    let missing = config("brincode = \"99BB\"\nkey = \"file:missing\"\n");
    assert_eq!(e.line, Some(missing.line_of("file:missing")), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_asks_for_changes_in_haalstructuur_and_batches_in_full() {
    let (las, scim, _dir, cfg) = bed("mode = \"staged\"\nbatch_groups = 2\n").await;
    run(&cfg, RosterOptions::default()).await.unwrap();
    // a first run reads in full
    assert!(las.exchanges().iter().all(|e| !e.asks_since()));

    // nothing changed at either school: one HaalStructuur each, carrying
    // laatstontvangengegevens, answered geenwijzigingen; nothing written.
    // 99AA00 changed: its batches are asked in full; 99BB00 said
    // geenwijzigingen and is read again in full; nobody leaves
    let (unchanged, ex) = rerun_unchanged_then_99aa_changed(&las, &scim, &cfg).await;
    assert_eq!(unchanged.len(), 2, "only HaalStructuur");
    assert!(unchanged.iter().all(|e| e.op == "structuur_verzoek"));
    let aa: Vec<_> = ex.iter().filter(|e| e.school == "99AA00").collect();
    assert_eq!(aa[0].op, "structuur_verzoek");
    assert!(aa[0].asks_since());
    assert_eq!(aa.len(), 1 + 2 * 3);
    assert!(aa[1..].iter().all(|e| !e.asks_since()), "batches in full");
    let bb: Vec<_> = ex.iter().filter(|e| e.school == "99BB00").collect();
    assert!(bb[0].asks_since() && bb[0].op == "structuur_verzoek");
    assert!(bb[1..].iter().all(|e| !e.asks_since()));
    assert_eq!(bb.len(), 1 + (1 + 2));
    assert_eq!(validate_exchanges(&las), ex.len());
}
