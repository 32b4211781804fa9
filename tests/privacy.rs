//! Privacy by design: pseudonyms, allow-list and BSN, acceptance
//! environments, restriction, erasure, retention purge, subject export,
//! the processing register and anonymous statistics, against the fake SCIM
//! platform and the fake gradebook on 127.0.0.1.

mod common;

use std::path::{Path, PathBuf};

use common::fake_gradebook::{CLIENT_SECRET, FakeGradebook};
use common::fake_scim::{FakeScim, TOKEN};
use common::*;
use sisync::config::Loaded;
use sisync::store::{AuditFilter, Store};
use sisync::sync::RosterOptions;
use sisync::sync::results::{ResultsOptions, results};

const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// A fake SCIM platform and the fixture export in a temporary directory.
struct Bed {
    dir: tempfile::TempDir,
    scim: FakeScim,
    export: PathBuf,
}

impl Bed {
    async fn start() -> Bed {
        let dir = tempfile::tempdir().unwrap();
        let scim = FakeScim::start(true).await;
        let export = copy_fixture("oneroster-1.2", dir.path());
        Bed { dir, scim, export }
    }

    /// The bed and the fake gradebook results go to.
    async fn with_gradebook() -> (Bed, FakeGradebook) {
        (Bed::start().await, FakeGradebook::start().await)
    }
}

/// A SCIM config with `privacy` keys, results into the fake gradebook.
fn config(bed: &Bed, gb: Option<&FakeGradebook>, privacy: &str) -> Loaded {
    test_config(bed, gb, privacy).load()
}

/// The config of [`config`], to vary.
fn test_config(bed: &Bed, gb: Option<&FakeGradebook>, privacy: &str) -> TestConfig {
    let Bed { dir, scim, export } = bed;
    let dir = dir.path();
    std::fs::write(dir.join("pseudonym.key"), KEY).unwrap();
    std::fs::write(dir.join("gb-secret"), CLIENT_SECRET).unwrap();
    let results = match gb {
        Some(gb) => format!(
            r#"
[results]
class_rules = [{{ exam = "EX-NED-*", class = "cls-ne-*" }}, {{ exam = "EX-WIS-*", class = "cls-wi-*" }}]
[results.source]
kind = "qti-folder"
path = "inbox"
[results.sink]
kind = "oneroster-rest"
base_url = "{}"
timeout = "2s"
{}"#,
            gb.base,
            gb.sink_auth()
        ),
        None => String::new(),
    };
    scim_test_config(dir, Source::OneRosterCsv(export.into()), &scim.base, TOKEN)
        .extra(&format!("[privacy]\n{privacy}\n{results}"))
}

fn qti(dir: &Path, name: &str, rows: &[(&str, &str, &str, f64)]) {
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let mut doc = String::from("<results>\n");
    for (cand, exam, session, score) in rows {
        doc.push_str(&format!(
            r#"<assessmentResult xmlns="http://www.imsglobal.org/xsd/imsqti_result_v3p0"><context sourcedId="{cand}"><sessionIdentifier sourceID="x" identifier="{session}"/></context><testResult identifier="{exam}" datestamp="2026-06-02T10:00:00Z"><outcomeVariable identifier="SCORE" cardinality="single" baseType="float"><value>{score}</value></outcomeVariable><outcomeVariable identifier="PASSED" cardinality="single" baseType="boolean"><value>{}</value></outcomeVariable></testResult></assessmentResult>
"#,
            *score >= 50.0
        ));
    }
    doc.push_str("</results>\n");
    std::fs::write(inbox.join(name), doc).unwrap();
}

/// A results run that must not fail.
async fn results_run(loaded: &Loaded) -> sisync::sync::results::ResultsReport {
    results(
        loaded,
        ResultsOptions::default(),
        "user:test",
        &sisync::sync::Quiet,
    )
    .await
    .unwrap()
}

fn bodies(scim: &FakeScim) -> String {
    scim.requests()
        .iter()
        .map(|r| format!("{} {} {}\n", r.method, r.path, r.body))
        .collect()
}

fn pseudonym(sis: &str) -> String {
    let key = sisync::config::Secret::new(KEY);
    sisync::privacy::pseudonym::Pseudonymizer::new(&key).id(sis)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pseudonyms_reach_the_platform_and_results_find_the_way_back() {
    let (bed, gb) = Bed::with_gradebook().await;
    let Bed { dir, scim, .. } = &bed;
    let loaded = config(
        &bed,
        Some(&gb),
        "pseudonymize_ids = true\npseudonym_key_file = \"pseudonym.key\"\nfields = [\"name\", \"role\", \"groups\"]",
    );
    let r = sync(&loaded, RosterOptions::default()).await;
    assert_eq!(r.failed(), 0);
    let users = scim.users();
    assert_eq!(users.len(), 42);
    assert!(
        users
            .iter()
            .all(|u| u["externalId"].as_str().unwrap().starts_with("p-"))
    );
    assert!(
        users
            .iter()
            .any(|u| u["externalId"] == pseudonym("stu-1001").as_str())
    );
    let sent = bodies(scim);
    let ids = ["stu-1001", "tch-2001", "1001@leerling"];
    assert_lacks(&sent, &ids, "what reached the platform");
    // nor the school's e-mail domain
    let domain = "leerling.voorbeeld.nl";
    assert_lacks(&sent, &[domain], "what reached the platform");
    // the platform reports results under the id it knows
    qti(
        dir.path(),
        "a.xml",
        &[(&pseudonym("stu-1001"), "EX-NED-1", "S1", 61.0)],
    );
    let rep = results_run(&loaded).await;
    assert_eq!(rep.pushed, 1, "{rep:?}");
    assert_eq!(
        gb.result_pairs()[0].0,
        "stu-1001",
        "the SIS gets its own id"
    );
    // the audit log names the pseudonym, not the student number
    let store = Store::open(&loaded.config.state.path).unwrap();
    let pushes = audit_of(&store, "result.push");
    assert_eq!(
        pushes[0].record_id.as_deref(),
        Some(pseudonym("stu-1001").as_str())
    );
    // user_name = identifier would leak the student number
    test_config(&bed, Some(&gb),
        "pseudonymize_ids = true\npseudonym_key_file = \"pseudonym.key\"\nfields = [\"name\", \"role\", \"groups\"]",
    )
    .platform_keys("user_name = \"identifier\"")
    .write();
    let (code, _, err) = cli(&loaded.file, &["check-config"]);
    assert_eq!(code, 2, "{err}");
    assert_has(&err, &["platform.user_name", "pseudonymize_ids"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_outside_the_allow_list_and_bsn_never_leave_or_stay() {
    let bed = Bed::start().await;
    let Bed { scim, export, .. } = &bed;
    // the SIS export carries a BSN column
    edit(export, "users.csv", |l| {
        Some(if l.starts_with('\u{feff}') || l.starts_with("sourcedId") {
            format!("{l},metadata.bsn")
        } else if l.is_empty() {
            l.to_string()
        } else {
            format!("{l},999990019")
        })
    });
    let loaded = config(&bed, None, "fields = [\"role\", \"groups\"]");
    let r = sync(&loaded, RosterOptions::default()).await;
    assert_eq!(r.failed(), 0, "{:?}", r.issues);
    assert_eq!(scim.users().len(), 42);
    let sent = bodies(scim);
    for v in [
        "999990019",
        "Jesse",
        "Vries",
        "Özdemir",
        "@leerling.voorbeeld.nl",
        "extraTime",
    ] {
        assert!(!sent.contains(v), "{v} reached the platform");
    }
    let db = std::fs::read(&loaded.config.state.path).unwrap();
    let db = String::from_utf8_lossy(&db);
    for v in ["999990019", "Jesse", "Özdemir", "@leerling.voorbeeld.nl"] {
        assert!(!db.contains(v), "{v} is in the state file");
    }
    // allow_bsn warns in check-config
    let privacy = |fields: &str| {
        test_config(&bed, None, fields).write();
    };
    privacy("allow_bsn = true\nfields = [\"role\", \"groups\"]");
    let (code, out, err) = cli(&loaded.file, &["check-config"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_has(&err, &["warning:", "privacy.allow_bsn"]);
    // allowed and listed: the BSN reaches the platform in the exam
    // extension, and still never the state file (a keyed hash only)
    privacy("allow_bsn = true\nfields = [\"role\", \"groups\", \"bsn\"]");
    let (code, out, err) = cli(&loaded.file, &["sync", "roster"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("999990019") && !err.contains("999990019"));
    let with_bsn = scim
        .users()
        .iter()
        .filter(|u| u["urn:sisync:schemas:extension:exam:1.0:User"]["bsn"] == "999990019")
        .count();
    assert_eq!(with_bsn, 42);
    for ext in ["", "-wal"] {
        let mut p = loaded.config.state.path.clone().into_os_string();
        p.push(ext);
        if let Ok(bytes) = std::fs::read(&p) {
            assert!(
                !String::from_utf8_lossy(&bytes).contains("999990019"),
                "{p:?}"
            );
        }
    }
    let (code, out, _) = cli(&loaded.file, &["audit", "list", "--kind", "user.update"]);
    assert_eq!(code, 0);
    assert!(out.contains("bsn") && !out.contains("999990019"), "{out}");
    // the payload hashes of writes that carried a BSN are keyed: a plain
    // SHA-256 of a body that differs only in the BSN could be reversed
    let store = Store::open(&loaded.config.state.path).unwrap();
    let updates = audit_of(&store, "user.update");
    let sealed = updates
        .iter()
        .filter(|a| a.fields.contains("bsn"))
        .map(|a| a.payload_sha256.clone().unwrap_or_default())
        .collect::<Vec<_>>();
    assert_eq!(sealed.len(), 42);
    assert!(
        sealed.iter().all(|h| h.starts_with("hmac-sha256:")),
        "{sealed:?}"
    );
    drop(store);
    // a second run sends nothing: the keyed hash is stable
    let before = scim.requests().len();
    let (code, out, err) = cli(&loaded.file, &["sync", "roster"]);
    assert_eq!(code, 0, "{out}{err}");
    let writes = scim.requests()[before..]
        .iter()
        .filter(|r| r.method != "GET")
        .count();
    assert_eq!(writes, 0);
    // no longer allowed: the BSNs are removed from the platform
    privacy("allow_bsn = true\nfields = [\"role\", \"groups\"]");
    let (code, out, err) = cli(&loaded.file, &["sync", "roster"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        scim.users()
            .iter()
            .all(|u| u["urn:sisync:schemas:extension:exam:1.0:User"]["bsn"].is_null()),
        "BSNs left on the platform"
    );
    let before = scim.requests().len();
    let (code, ..) = cli(&loaded.file, &["sync", "roster"]);
    assert_eq!(code, 0);
    assert_eq!(
        scim.requests()[before..]
            .iter()
            .filter(|r| r.method != "GET")
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptance_gets_synthetic_names_and_a_risky_config_is_refused() {
    let bed = Bed::start().await;
    let Bed { scim, .. } = &bed;
    let acceptance = test_config(&bed, None, "fields = [\"name\", \"email\", \"role\"]")
        .platform_keys("environment = \"acceptance\"");
    // an acceptance platform with production data: refused
    let file = acceptance.write();
    let (code, _, err) = cli(&file, &["check-config"]);
    assert_eq!(code, 2);
    assert_has(
        &err,
        &[
            "platform.environment",
            "institution.environment = \"acceptance\"",
        ],
    );
    let (code, _, _) = cli(&file, &["sync", "roster"]);
    assert_eq!(code, 2, "a sync with that config is refused too");
    assert!(scim.requests().is_empty());
    // as an acceptance installation: synthetic names and e-mail
    let loaded = acceptance
        .institution_keys("environment = \"acceptance\"")
        .load();
    sync(&loaded, RosterOptions::default()).await;
    let sent = bodies(scim);
    assert!(sent.contains("Kandidaat") && sent.contains("@example.invalid"));
    for v in ["Jesse", "Özdemir", "Zoë", "@leerling.voorbeeld.nl"] {
        assert!(!sent.contains(v), "{v} reached the acceptance platform");
    }
    // deterministic: a rerun sends nothing
    let (before, writes) = (scim.requests().len(), scim.writes().len());
    sync(&loaded, RosterOptions::default()).await;
    assert_eq!(scim.writes().len(), writes);
    assert!(scim.requests()[before..].iter().all(|r| r.method == "GET"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restriction_freezes_updates_and_keeps_results_in_the_outbox() {
    let (bed, gb) = Bed::with_gradebook().await;
    let Bed { dir, scim, export } = &bed;
    let loaded = config(&bed, Some(&gb), "");
    sync(&loaded, RosterOptions::default()).await;
    let (code, out, err) = cli(
        &loaded.file,
        &["privacy", "restrict", "--person", "stu-1001"],
    );
    assert_eq!(code, 0, "{out}{err}");
    // the SIS renames them: no update goes out while restricted
    edit(export, "users.csv", |l| {
        Some(l.replace(",Jesse,Vries,", ",Jessy,Vries,"))
    });
    let before = scim.writes().len();
    sync(&loaded, RosterOptions::default()).await;
    assert_eq!(
        scim.writes().len(),
        before,
        "no write for a restricted person"
    );
    qti(
        dir.path(),
        "a.xml",
        &[
            ("stu-1001", "EX-NED-1", "S1", 70.0),
            ("stu-1002", "EX-NED-1", "S2", 40.0),
        ],
    );
    let rep = results_run(&loaded).await;
    assert_eq!((rep.pushed, rep.held, rep.outbox.pending), (1, 1, 1));
    assert_eq!(
        gb.result_pairs(),
        vec![("stu-1002".to_string(), gb.result_pairs()[0].1.clone())]
    );
    // lifted: the update and the result go
    let (code, _, _) = cli(
        &loaded.file,
        &["privacy", "unrestrict", "--person", "stu-1001"],
    );
    assert_eq!(code, 0);
    sync(&loaded, RosterOptions::default()).await;
    assert!(
        scim.users()
            .iter()
            .any(|u| u["name"]["givenName"] == "Jessy")
    );
    let rep = results_run(&loaded).await;
    assert_eq!((rep.pushed, rep.outbox.pending), (1, 0));
    // both administrative actions are audited with the OS user
    let store = Store::open(&loaded.config.state.path).unwrap();
    let acts: Vec<String> = audit_about(&store, "stu-1001")
        .into_iter()
        .filter(|a| a.action.starts_with("subject."))
        .map(|a| format!("{} {}", a.action, a.actor.starts_with("user:")))
        .collect();
    assert_eq!(
        acts,
        vec!["subject.restrict true", "subject.unrestrict true"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_deletes_on_the_platform_and_is_not_undone_by_the_next_sync() {
    let (bed, gb) = Bed::with_gradebook().await;
    let Bed { dir, scim, .. } = &bed;
    let loaded = config(&bed, Some(&gb), "");
    sync(&loaded, RosterOptions::default()).await;
    qti(dir.path(), "a.xml", &[("stu-1002", "EX-NED-1", "S2", 40.0)]);
    results_run(&loaded).await;
    let (code, out, err) = cli(&loaded.file, &["privacy", "erase", "--person", "stu-1002"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("deleted on the platform"), "{out}");
    assert!(scim.requests().iter().any(|r| r.method == "DELETE"));
    // no trace of the id is left in the database files either (deleted
    // rows are overwritten, the write-ahead log is emptied)
    assert_state_lacks(
        &loaded.config.state.path,
        "stu-1002",
        "still holds the erased id",
    );
    assert!(!scim.users().iter().any(|u| u["externalId"] == "stu-1002"));
    let store = Store::open(&loaded.config.state.path).unwrap();
    assert!(
        store.audit_verify().unwrap().ok(),
        "erasure keeps the chain valid"
    );
    assert!(
        audit_about(&store, "stu-1002").is_empty(),
        "no audit entry names them any more"
    );
    let all = store.audit_list(&AuditFilter::default()).unwrap();
    let erase = all.iter().find(|a| a.action == "subject.erase").unwrap();
    assert_eq!(erase.record_id, None);
    assert!(erase.actor.starts_with("user:"));
    assert_eq!(
        store.outbox_summary().unwrap().pushed,
        0,
        "their results are gone"
    );
    drop(store);
    // the SIS still has them: the next sync does not create them again
    sync(&loaded, RosterOptions::default()).await;
    assert!(!scim.users().iter().any(|u| u["externalId"] == "stu-1002"));
    // nothing left in the database can be linked to the student number by
    // trying it: audit hashes were salted (salt gone with the id), and the
    // tombstone is keyed with the subject key kept outside the database
    let conn = rusqlite::Connection::open(&loaded.config.state.path).unwrap();
    let unsalted = sisync::store::audit::id_hash_v1("stu-1002");
    let hashes: Vec<String> = conn
        .prepare("SELECT record_id_hash FROM audit UNION ALL SELECT id_hash FROM subject_holds")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert!(hashes.len() > 5 && !hashes.contains(&unsalted));
    drop(conn);
    // without the subject key sisync refuses to sync (an erased person must
    // not come back because a key file was lost)
    let key = dir.path().join("state.db.key");
    let saved = std::fs::read(&key).expect("the subject key sits next to the database");
    std::fs::remove_file(&key).unwrap();
    let (code, out, err) = cli(&loaded.file, &["sync", "roster"]);
    assert_ne!(code, 0, "{out}");
    assert_has(&err, &["state.db.key is missing", "restore"]);
    let (code, out, _) = cli(&loaded.file, &["status"]);
    assert_eq!(code, 0);
    assert!(out.contains("privacy  0 restricted, 1 erased"), "{out}");
    assert!(out.contains("SUBJECT KEY: subject key"), "{out}");
    let (code, out, err) = cli(&loaded.file, &["check-config"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("state.db.key is missing"), "{out}{err}");
    std::fs::write(&key, saved).unwrap();
    let (code, out, err) = cli(&loaded.file, &["check-config"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 restricted, 1 erased"), "{out}");
    // the export of an erased person shows only the tombstone
    let (code, out, _) = cli(&loaded.file, &["privacy", "export", "--person", "stu-1002"]);
    assert_eq!(code, 0);
    assert!(out.contains("person,,hold,erased since"), "{out}");
    assert!(!out.contains("result,"), "{out}");
    // unrestrict lifts the tombstone: created again
    cli(
        &loaded.file,
        &["privacy", "unrestrict", "--person", "stu-1002"],
    );
    sync(&loaded, RosterOptions::default()).await;
    assert!(scim.users().iter().any(|u| u["externalId"] == "stu-1002"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_who_left_long_ago_and_keeps_the_chain_verifiable() {
    let bed = Bed::start().await;
    let Bed { export, .. } = &bed;
    let loaded = config(
        &bed,
        None,
        "retention_days = 30\naudit_retention_days = 365",
    );
    sync(&loaded, RosterOptions::default()).await;
    remove_person(export, "stu-1003");
    sync(&loaded, RosterOptions::default()).await;
    // gone 40 days ago
    let conn = rusqlite::Connection::open(&loaded.config.state.path).unwrap();
    conn.execute(
        "UPDATE records SET deactivated_at = '2020-01-01T00:00:00.000Z' WHERE sourced_id = 'stu-1003'",
        [],
    )
    .unwrap();
    drop(conn);
    let (code, out, err) = cli(&loaded.file, &["privacy", "purge"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("purged 1 persons"), "{out}");
    let (code, out, _) = cli(&loaded.file, &["audit", "verify"]);
    assert_eq!(code, 0, "{out}");
    let store = Store::open(&loaded.config.state.path).unwrap();
    assert!(audit_about(&store, "stu-1003").is_empty());
    assert!(
        store
            .subject_data("stu-1003", "stu-1003")
            .unwrap()
            .active
            .is_none()
    );
    // others are untouched
    assert_eq!(
        store.subject_data("stu-1004", "stu-1004").unwrap().active,
        Some(true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_register_and_anonymous_report() {
    let (bed, gb) = Bed::with_gradebook().await;
    let Bed { dir, .. } = &bed;
    let loaded = config(&bed, Some(&gb), "min_group_size = 10");
    sync(&loaded, RosterOptions::default()).await;
    // 20 results in cls-ne-h3a, 3 in cls-wi-h3a
    let mut rows: Vec<(String, String, String, f64)> = (1..=20)
        .map(|i| {
            (
                format!("stu-{}", 1000 + i),
                "EX-NED-9".to_string(),
                format!("N{i}"),
                (i * 5) as f64,
            )
        })
        .collect();
    rows.extend((1..=3).map(|i| {
        (
            format!("stu-{}", 1000 + i),
            "EX-WIS-9".to_string(),
            format!("W{i}"),
            50.0,
        )
    }));
    let refs: Vec<(&str, &str, &str, f64)> = rows
        .iter()
        .map(|(a, b, c, d)| (a.as_str(), b.as_str(), c.as_str(), *d))
        .collect();
    qti(dir.path(), "a.xml", &refs);
    results_run(&loaded).await;

    let (code, out, _) = cli(&loaded.file, &["privacy", "export", "--person", "stu-1001"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("category,item,field,value\n"), "{out}");
    assert!(out.contains("person,,sis_id,stu-1001"), "{out}");
    assert!(out.contains("class,cls-ne-h3a,member,true"), "{out}");
    assert_has(&out, &[",exam,EX-NED-9", ",score,5"]);
    assert_has(&out, &["audit,", ",action,user.create"]);
    let (code, out, _) = cli(
        &loaded.file,
        &[
            "privacy", "export", "--person", "stu-1001", "--format", "json",
        ],
    );
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), 2);
    assert_eq!(v["classes"].as_array().unwrap().len(), 3);
    // the export itself is audited
    let store = Store::open(&loaded.config.state.path).unwrap();
    assert!(
        store
            .audit_list(&AuditFilter::default())
            .unwrap()
            .iter()
            .any(|a| a.action == "subject.export")
    );

    let (code, out, _) = cli(&loaded.file, &["privacy", "register"]);
    assert_eq!(code, 0);
    for s in [
        "Test College (BRIN 99AA)",
        "class membership",
        "exam results",
        "730 days",
        "SIS ids as-is",
    ] {
        assert!(out.contains(s), "{s} missing:\n{out}");
    }

    let (code, out, _) = cli(
        &loaded.file,
        &["--json", "report", "results", "--exam", "EX-NED-9"],
    );
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["groups"][0]["group"], "cls-ne-h3a");
    assert_eq!(v["groups"][0]["candidates"], 20);
    assert_eq!(v["groups"][0]["mean"], 52.5);
    let (code, out, _) = cli(&loaded.file, &["report", "results", "--exam", "EX-WIS-9"]);
    assert_eq!(code, 0);
    assert!(out.contains("no group is large enough"), "{out}");
    assert_has(&out, &["3 candidates in classes below 10 are not shown"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eck_ids_from_the_sis_pass_through_as_is() {
    let (bed, gb) = Bed::with_gradebook().await;
    let Bed { dir, scim, .. } = &bed;
    let loaded = config(&bed, Some(&gb), "use_eck_id = true");
    let r = sync(&loaded, RosterOptions::default()).await;
    assert_eq!(r.failed(), 0);
    let eck = "https://ketenid.nl/201703/50c416ea9a8b8b4f41df46566df802c86cccbb65a1b55c8b326df55df1cf05b68320ee77bf55a629325e96bc00b3eaae318458fd4cb3c2501b5b2e864c69746a";
    let users = scim.users();
    assert!(
        users.iter().any(|u| u["externalId"] == eck),
        "stu-1001's ECK iD"
    );
    assert!(!users.iter().any(|u| u["externalId"] == "stu-1001"));
    // the platform reports the result under the ECK iD; the SIS gets its id
    qti(dir.path(), "a.xml", &[(eck, "EX-NED-1", "S1", 61.0)]);
    let rep = results_run(&loaded).await;
    assert_eq!(rep.pushed, 1, "{rep:?}");
    assert_eq!(gb.result_pairs()[0].0, "stu-1001");
    // erase by SIS id finds the ECK-keyed state
    let (code, out, err) = cli(&loaded.file, &["privacy", "erase", "--person", "stu-1001"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!scim.users().iter().any(|u| u["externalId"] == eck));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_on_a_csv_drop_platform_delivers_an_erasure_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TestConfig::new(dir.path())
        .source(Source::OneRosterCsv(repo().join("fixtures/oneroster-1.2")))
        .write();
    let loaded = sisync::connector::load(&cfg).unwrap();
    sync(&loaded, RosterOptions::default()).await;
    let (code, out, err) = cli(&cfg, &["privacy", "erase", "--person", "stu-1004"]);
    assert_eq!(code, 0, "{out}{err}");
    let erase_dir = std::fs::read_dir(dir.path().join("drop"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with("-erase"))
        .expect("an erasure folder");
    let text = std::fs::read_to_string(erase_dir.path().join("erasures.csv")).unwrap();
    assert_eq!(text, "externalId,action\nstu-1004,delete\n");
    // the next sync does not deliver them again (their classes lose them)
    sync(&loaded, RosterOptions::default()).await;
    let mut drops: Vec<_> = std::fs::read_dir(dir.path().join("drop"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.to_string_lossy().ends_with("-erase"))
        .collect();
    drops.sort();
    assert_eq!(drops.len(), 2);
    let users = std::fs::read_to_string(drops[1].join("users.csv")).unwrap();
    assert!(!users.contains("stu-1004"), "{users}");
    let members = std::fs::read_to_string(drops[1].join("memberships.csv")).unwrap();
    assert!(
        !members.contains("stu-1004") && members.contains("stu-1001"),
        "{members}"
    );
}
