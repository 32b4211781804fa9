//! OKE MBO-toetsafname 1.0.1 end to end over real HTTP on 127.0.0.1: a
//! fake OKE SIS (flow 1) → sisync → a fake OKE exam platform (flow 2), or
//! a SCIM platform. Every request sisync sends and every answer the fakes
//! give is validated against the OKE OpenAPI document
//! (../shared/specs/oke-1.0.1/specification/ooapiv5_MBO.yaml) by openapi-core.

mod common;

use common::fake_oke::{CLIENT_ID, CLIENT_SECRET, FakeOke};
use common::fake_scim::{FakeScim, TOKEN};
use common::*;
use serde_json::{Value, json};
use sisync::config::Loaded;
use sisync::store::{AuditFilter, Store};
use sisync::sync::RosterOptions;

const SIS_SCOPE: &str = "nl-test-admin-flow-1-5";
const PLATFORM_SCOPE: &str = "nl-test-admin-flow-2-3-4";

/// A deterministic UUID for test record `n` of kind `k`.
fn uid(k: u8, n: usize) -> String {
    format!("{k:08x}-0000-4000-8000-{n:012x}")
}

/// The SIS: `sittings` exam sittings, `per` candidates in each (each a
/// person of their own), a surveillant in the first, personal needs and
/// extra minutes for every third candidate, an ECK iD for every person.
fn fill_sis(sis: &FakeOke, sittings: usize, per: usize) {
    let mut g = sis.inner.lock().unwrap();
    for s in 0..sittings {
        let oid = uid(1, s);
        let mut offering = school::oke_offering(
            &oid,
            &format!("REK3F-{s}"),
            &format!("Rekenen 3F zitting {s}"),
            "Rekenen 3F",
            &uid(9, s),
        );
        offering["consumers"][0]["locationCode"] = json!(format!("A-{s}"));
        g.offerings.insert(oid.clone(), offering);
        for c in 0..per {
            let n = s * 1000 + c;
            let pid = uid(2, n);
            let aid = uid(3, n);
            let mut consumer = json!({"consumerKey": "nl-test-admin", "attempt": 1});
            if c % 3 == 0 {
                consumer["additionalTimeInMin"] = json!(30);
                consumer["personalNeeds"] = json!(["extraTime", "spoken"]);
            }
            g.associations.insert(
                aid.clone(),
                json!({
                    "associationId": aid,
                    "associationType": "componentOfferingAssociation",
                    "role": "student",
                    "state": "associated",
                    "consumers": [consumer],
                    "person": pid,
                    "offering": oid,
                }),
            );
            g.persons.insert(pid.clone(), person(&pid, n, "student"));
        }
        if s == 0 {
            let pid = uid(4, 0);
            let aid = uid(5, 0);
            g.associations.insert(
                aid.clone(),
                json!({
                    "associationId": aid,
                    "associationType": "componentOfferingAssociation",
                    "role": "invigilator",
                    "state": "associated",
                    "consumers": [{"consumerKey": "nl-test-admin"}],
                    "person": pid,
                    "offering": oid,
                }),
            );
            g.persons
                .insert(pid.clone(), person(&pid, 99_999, "employee"));
        }
    }
}

fn person(pid: &str, n: usize, affiliation: &str) -> Value {
    json!({
        "personId": pid,
        "primaryCode": {"codeType": "studentNumber", "code": format!("{}", 100_000 + n)},
        "givenName": format!("Kandidaat{n}"),
        "surnamePrefix": "van",
        "surname": format!("Toets{n}"),
        "displayName": format!("Kandidaat{n} van Toets{n}"),
        "activeEnrollment": true,
        "affiliations": [affiliation],
        "mail": format!("k{n}@student.example.invalid"),
        "otherCodes": [{"codeType": "eckid", "code": format!("https://ketenid.nl/201703/{n:08}")}],
        "consumers": [{"consumerKey": "nl-test-admin", "preferredName": format!("K{n}")}]
    })
}

fn source_block(sis: &FakeOke) -> String {
    format!(
        r#"kind = "oke"
base_url = "{}"
token_url = "{}"
client_id = "{CLIENT_ID}"
client_secret_file = "oke-secret"
page_size = 10
timeout = "5s"
max_retries = 1
"#,
        sis.base, sis.token_url
    )
}

fn write_config(
    dir: &std::path::Path,
    source: &str,
    platform: &str,
    fields: &str,
    extra: &str,
) -> Loaded {
    std::fs::write(dir.join("oke-secret"), CLIENT_SECRET).unwrap();
    TestConfig::new(dir)
        .institution("Test ROC", "99XX")
        .source(Source::Toml(source.into()))
        .platform(Platform::Toml(platform.into()))
        .extra(&format!("{extra}\n[privacy]\nfields = [{fields}]\n"))
        .load()
}

fn oke_config(dir: &std::path::Path, sis: &FakeOke, platform: &FakeOke, extra: &str) -> Loaded {
    let p = format!(
        r#"kind = "oke"
base_url = "{}"
token_url = "{}"
client_id = "{CLIENT_ID}"
client_secret_file = "oke-secret"
timeout = "5s"
max_retries = 1
"#,
        platform.base, platform.token_url
    );
    write_config(
        dir,
        &source_block(sis),
        &p,
        r#""name", "email", "role", "registrations", "personal_needs""#,
        extra,
    )
}

/// The fake OKE SIS with `sittings` of `per` candidates (`fill_sis`), the
/// fake OKE platform and the config syncing one into the other, in a
/// temporary directory.
async fn bed(sittings: usize, per: usize) -> (FakeOke, FakeOke, tempfile::TempDir, Loaded) {
    let sis = FakeOke::start(SIS_SCOPE).await;
    let platform = FakeOke::start(PLATFORM_SCOPE).await;
    fill_sis(&sis, sittings, per);
    let dir = tempfile::tempdir().unwrap();
    let cfg = oke_config(dir.path(), &sis, &platform, "");
    (sis, platform, dir, cfg)
}

fn writes(f: &FakeOke) -> Vec<Value> {
    f.exchanges()
        .into_iter()
        .filter(|e| e["method"] != "GET")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sis_to_exam_platform_end_to_end_validated_against_the_spec() {
    let sis = FakeOke::start(SIS_SCOPE).await;
    let platform = FakeOke::start(PLATFORM_SCOPE).await;
    fill_sis(&sis, 3, 12);
    // one registration canceled in the SIS before the first run
    let gone = uid(3, 1005);
    sis.inner
        .lock()
        .unwrap()
        .associations
        .get_mut(&gone)
        .unwrap()["state"] = json!("canceled");
    let dir = tempfile::tempdir().unwrap();
    let cfg = oke_config(dir.path(), &sis, &platform, "");

    // 1. first run: every sitting and registration arrives
    let r = sync(&cfg, RosterOptions::default()).await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!(o.failed(), 0, "{:?}", o.failures);
    assert_eq!((o.offerings.created, o.registrations.created), (3, 36));
    {
        let g = platform.inner.lock().unwrap();
        assert_eq!(g.offerings.len(), 3);
        let off = &g.offerings[&uid(1, 0)];
        assert_eq!(off["consumers"][0]["offeringState"], "active");
        assert_eq!(off["consumers"][0]["locationCode"], "A-0");
        assert_eq!(
            off["consumers"][0]["testsToBeUsed"][0]["componentId"],
            uid(9, 0)
        );
        assert_eq!(off["name"][0]["value"], "Rekenen 3F zitting 0");
        // 3 × 12 candidates, one canceled, plus the surveillant
        assert_eq!(g.associations.len(), 36);
        assert!(!g.associations.contains_key(&gone));
        let a = &g.associations[&uid(3, 3)];
        assert_eq!(a["offering"], uid(1, 0));
        assert_eq!(a["role"], "student");
        assert_eq!(a["state"], "associated");
        assert_eq!(a["consumers"][0]["additionalTimeInMin"], 30);
        assert_eq!(
            a["consumers"][0]["personalNeeds"],
            json!(["extraTime", "spoken"])
        );
        assert_eq!(a["person"]["givenName"], "Kandidaat3");
        assert_eq!(a["person"]["surnamePrefix"], "van");
        assert_eq!(a["person"]["mail"], "k3@student.example.invalid");
        let none = &g.associations[&uid(3, 4)];
        assert!(none["consumers"][0].get("additionalTimeInMin").is_none());
        let s = &g.associations[&uid(5, 0)];
        assert_eq!(s["role"], "invigilator");
        assert!(s["consumers"][0].get("personalNeeds").is_none());
    }
    // the SIS saw paging, the consumer parameter and the window
    let sx = sis.exchanges();
    let offering_pages: Vec<&Value> = sx.iter().filter(|e| e["path"] == "/offerings").collect();
    assert_eq!(offering_pages.len(), 1);
    let q = offering_pages[0]["query"].as_str().unwrap();
    for k in [
        "offeringType=component",
        "component.componentType=test",
        "consumer=nl-test-admin",
        "since=",
        "until=",
        "pageSize=10",
        "pageNumber=1",
    ] {
        assert!(q.contains(k), "{q} lacks {k}");
    }
    let first_assoc = format!("/offerings/{}/associations", uid(1, 0));
    assert_eq!(
        sx.iter()
            .filter(|e| e["path"] == first_assoc.as_str())
            .count(),
        2,
        "13 associations in pages of 10"
    );
    // both sides' exchanges are valid OKE
    sis.validate(dir.path(), "sis-run1");
    platform.validate(dir.path(), "platform-run1");

    // 2. the same input: nothing written
    platform.clear_exchanges();
    let r = sync(&cfg, RosterOptions::default()).await;
    assert!(r.plan.is_empty(), "{:?}", r.plan);
    assert!(writes(&platform).is_empty());

    // 3. more time for one, one withdrawn: PATCH state canceled, never deleted
    {
        let mut g = sis.inner.lock().unwrap();
        let a = g.associations.get_mut(&uid(3, 2001)).unwrap();
        a["consumers"][0]["additionalTimeInMin"] = json!(45);
        g.associations.get_mut(&uid(3, 2002)).unwrap()["state"] = json!("canceled");
    }
    let r = sync(&cfg, RosterOptions::default()).await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!(
        (
            o.registrations.updated,
            o.registrations.deactivated,
            o.failed()
        ),
        (1, 1, 0)
    );
    let w = writes(&platform);
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w.iter().all(|e| e["method"] != "DELETE"));
    let patch = w.iter().find(|e| e["method"] == "PATCH").unwrap();
    assert_eq!(patch["path"], format!("/associations/{}", uid(3, 2002)));
    assert_eq!(
        patch["headers"]["content-type"],
        "application/merge-patch+json"
    );
    {
        let g = platform.inner.lock().unwrap();
        assert_eq!(g.associations[&uid(3, 2002)]["state"], "canceled");
        assert_eq!(
            g.associations[&uid(3, 2001)]["consumers"][0]["additionalTimeInMin"],
            45
        );
        assert_eq!(g.associations.len(), 36, "withdrawn, not deleted");
    }
    platform.validate(dir.path(), "platform-run3");
    // the audit log names the withdrawal by record id, without personal data
    let store = Store::open(&cfg.config.state.path).unwrap();
    let rows = audit_of(&store, "registration.withdraw");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].record_id.as_deref(), Some(uid(3, 2002).as_str()));
    assert_eq!(rows[0].outcome, "ok");
    let all = store.audit_list(&AuditFilter::default()).unwrap();
    let text = format!("{all:?}");
    assert!(!text.contains("Kandidaat") && !text.contains("example.invalid"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registration_gate_refuses_a_mass_withdrawal_and_an_empty_read() {
    let (sis, platform, dir, cfg) = bed(2, 10).await;
    let r = sync(&cfg, RosterOptions::default()).await;
    assert_eq!(r.outcome.as_ref().unwrap().registrations.created, 21);

    // half of one sitting canceled in the SIS: 5 of 21 (24 %) > 10 %
    {
        let mut g = sis.inner.lock().unwrap();
        for c in 0..5 {
            g.associations.get_mut(&uid(3, c)).unwrap()["state"] = json!("canceled");
        }
    }
    platform.clear_exchanges();
    let r = sync(&cfg, RosterOptions::default()).await;
    let refusal = r.refused.as_ref().expect("held").to_string();
    assert_has(&refusal, &["would withdraw 5 of 21 exam registrations"]);
    assert!(r.held_plan.is_some());
    assert!(writes(&platform).is_empty(), "nothing written while held");
    assert!(
        platform
            .inner
            .lock()
            .unwrap()
            .associations
            .values()
            .all(|a| a["state"] == "associated")
    );

    // the admin approves the held plan: exactly those 5 withdrawals go out
    let held = r.held_plan.unwrap();
    match sisync::sync::held::approve(&cfg, held, "user:test", &sisync::sync::Quiet)
        .await
        .unwrap()
    {
        sisync::sync::held::Approval::Applied(rep) => {
            let o = rep.outcome.as_ref().unwrap();
            assert_eq!((o.registrations.deactivated, o.failed()), (5, 0));
        }
        _ => panic!("not applied"),
    }
    let w = writes(&platform);
    assert_eq!(w.len(), 5);
    assert!(w.iter().all(|e| e["method"] == "PATCH"));
    assert_eq!(
        platform
            .inner
            .lock()
            .unwrap()
            .associations
            .values()
            .filter(|a| a["state"] == "canceled")
            .count(),
        5
    );
    platform.validate(dir.path(), "platform-approved");
    platform.clear_exchanges();

    // every association gone from the SIS lists: an empty bulk is refused
    {
        let mut g = sis.inner.lock().unwrap();
        g.associations.clear();
    }
    let r = sync(&cfg, RosterOptions::default()).await;
    let refusal = r.refused.as_ref().expect("held").to_string();
    assert_has(&refusal, &["0 exam registrations while sisync knows 16"]);
    assert!(writes(&platform).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sis_fails_the_whole_read_and_a_refusal_names_the_platforms_reason() {
    let (sis, platform, dir, cfg) = bed(3, 4).await;

    // the second sitting's associations answer 500: nothing is written
    sis.inner.lock().unwrap().fail_path = Some(format!("/offerings/{}/associations", uid(1, 1)));
    let line = common::sync_error(&cfg, RosterOptions::default()).await;
    assert_has(&line, &[&format!("/offerings/{}/associations", uid(1, 1))]);
    assert!(line.contains("HTTP 500"), "{line}");
    assert!(line.contains("nothing was read or written"), "{line}");
    // the SIS's problem detail may echo a record: not in a line that is logged
    assert!(!line.contains("database unavailable"), "{line}");
    assert!(
        platform.exchanges().is_empty(),
        "nothing sent to the platform"
    );
    sis.validate(dir.path(), "sis-failing");

    // the platform refuses the first sitting with a problem body: its
    // registrations wait, the rest goes through, the line names why
    sis.inner.lock().unwrap().fail_path = None;
    platform.inner.lock().unwrap().fail_next.push_back(400);
    let r = sync(&cfg, RosterOptions::default()).await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!(o.offerings.failed, 1);
    assert_eq!(o.offerings.created, 2);
    assert_eq!(o.registrations.failed, 5, "{:?}", o.failures);
    assert!(
        o.failures[0].contains("HTTP 400")
            && o.failures[0].contains("the service is having a bad day"),
        "{:?}",
        o.failures
    );
    assert!(
        o.failures[0].starts_with(&format!("offering {}", uid(1, 0))),
        "{:?}",
        o.failures
    );
    platform.validate(dir.path(), "platform-refusal");
    // the next run sends what waited
    let r = sync(&cfg, RosterOptions::default()).await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!(
        (o.offerings.created, o.registrations.created, o.failed()),
        (1, 5, 0)
    );
    assert_eq!(platform.inner.lock().unwrap().associations.len(), 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_association_lists_are_completed_by_get_association() {
    let (sis, platform, dir, cfg) = bed(1, 3).await;
    sis.inner.lock().unwrap().bare_association_lists = true;
    let r = sync(&cfg, RosterOptions::default()).await;
    assert_eq!(r.outcome.as_ref().unwrap().registrations.created, 4);
    let gets = sis
        .exchanges()
        .iter()
        .filter(|e| e["path"].as_str().unwrap().starts_with("/associations/"))
        .count();
    assert_eq!(gets, 4);
    let g = platform.inner.lock().unwrap();
    assert_eq!(
        g.associations[&uid(3, 0)]["consumers"][0]["additionalTimeInMin"],
        30
    );
    drop(g);
    sis.validate(dir.path(), "sis-bare");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oke_sis_feeds_a_scim_platform_sittings_as_groups_needs_in_the_extension() {
    let sis = FakeOke::start(SIS_SCOPE).await;
    let scim = FakeScim::start(true).await;
    fill_sis(&sis, 2, 10);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
    let platform = format!(
        "kind = \"scim\"\nbase_url = \"{}\"\ntoken_file = \"token\"\ntimeout = \"5s\"\n",
        scim.base
    );
    let cfg = write_config(
        dir.path(),
        &source_block(&sis),
        &platform,
        r#""name", "role", "accommodations", "groups", "registrations", "personal_needs""#,
        "",
    );
    let r = sync(&cfg, RosterOptions::default()).await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!(o.failed(), 0, "{:?}", o.failures);
    assert_eq!((o.users.created, o.groups.created), (21, 2));
    let groups = scim.groups();
    let sitting = groups
        .iter()
        .find(|g| g["externalId"] == uid(1, 0))
        .expect("the sitting is a group");
    assert_eq!(sitting["displayName"], "Rekenen 3F zitting 0");
    assert_eq!(
        sitting["members"].as_array().unwrap().len(),
        11,
        "10 candidates and the surveillant"
    );
    let u = scim
        .user_by_external_id(&uid(2, 0))
        .unwrap_or_else(|| panic!("{:?}", scim.users()));
    let ext = &u["urn:sisync:schemas:extension:exam:1.0:User"];
    assert_eq!(ext["extraTimeMinutes"], 30);
    assert_eq!(ext["personalNeeds"], json!(["extraTime", "spoken"]));
    assert_eq!(ext["role"], "student");
    let plain = scim.user_by_external_id(&uid(2, 1)).unwrap();
    assert!(
        plain["urn:sisync:schemas:extension:exam:1.0:User"]
            .get("extraTimeMinutes")
            .is_none()
    );
    sis.validate(dir.path(), "sis-to-scim");

    // a registration withdrawn in the SIS leaves the sitting's group
    sis.inner
        .lock()
        .unwrap()
        .associations
        .get_mut(&uid(3, 1))
        .unwrap()["state"] = json!("canceled");
    let r = sync(&cfg, RosterOptions::default()).await;
    assert!(r.refused.is_none(), "{:?}", r.refused);
    assert_eq!(r.outcome.as_ref().unwrap().failed(), 0);
    let groups = scim.groups();
    let sitting = groups
        .iter()
        .find(|g| g["externalId"] == uid(1, 0))
        .unwrap();
    assert_eq!(sitting["members"].as_array().unwrap().len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_drop_gets_exams_and_registrations_files() {
    let sis = FakeOke::start(SIS_SCOPE).await;
    fill_sis(&sis, 1, 3);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &source_block(&sis),
        "kind = \"csv-drop\"\npath = \"drop\"\n",
        r#""name", "registrations", "personal_needs""#,
        "",
    );
    let r = sync(&cfg, RosterOptions::default()).await;
    let folder = r.delivered.clone().expect("a delivery");
    let exams = std::fs::read_to_string(folder.join("exams.csv")).unwrap();
    assert!(
        exams.starts_with("externalId,code,title,tests,start,end,location,active"),
        "{exams}"
    );
    assert!(exams.contains(&format!(
        "{},REK3F-0,Rekenen 3F zitting 0,{}",
        uid(1, 0),
        uid(9, 0)
    )));
    let regs = std::fs::read_to_string(folder.join("registrations.csv")).unwrap();
    assert_eq!(regs.lines().count(), 5, "{regs}");
    assert_has(
        &regs,
        &[&format!(
            "{},{},{},candidate,associated,1,30,extraTime spoken",
            uid(3, 0),
            uid(1, 0),
            uid(2, 0)
        )],
    );
    assert_has(
        &regs,
        &[&format!(
            "{},{},{},surveillant,associated,,,",
            uid(5, 0),
            uid(1, 0),
            uid(4, 0)
        )],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_are_reported_and_held_never_withdrawn_and_a_wrong_scope_fails_the_read() {
    let (sis, platform, _dir, cfg) = bed(1, 12).await;
    let r = sync(&cfg, RosterOptions::default()).await;
    assert_eq!(r.outcome.as_ref().unwrap().registrations.created, 13);

    // an association with a role OOAPI does not know, and a person the SIS
    // no longer has: reported with URL and id, held, never withdrawn
    {
        let mut g = sis.inner.lock().unwrap();
        g.associations.get_mut(&uid(3, 1)).unwrap()["role"] = json!("wizard");
        g.persons.remove(&uid(2, 2));
    }
    platform.clear_exchanges();
    let r = sync(&cfg, RosterOptions::default()).await;
    assert!(r.refused.is_none(), "{:?}", r.refused);
    assert!(r.plan.is_empty(), "{:?}", r.plan);
    assert!(writes(&platform).is_empty());
    let wizard = r
        .issues
        .iter()
        .find(|i| i.record_id.as_deref() == Some(uid(3, 1).as_str()))
        .expect("the bad association is reported");
    assert!(wizard.reason.contains("wizard"), "{wizard}");
    assert!(
        wizard
            .location
            .contains(&format!("/offerings/{}/associations", uid(1, 0)))
    );
    let missing = r
        .issues
        .iter()
        .find(|i| i.record_id.as_deref() == Some(uid(2, 2).as_str()))
        .expect("the missing person is reported");
    assert!(
        missing
            .location
            .ends_with(&format!("/persons/{}", uid(2, 2)))
    );
    assert_eq!(r.outcome.as_ref().unwrap().registrations.skipped, 2);
    assert!(
        platform
            .inner
            .lock()
            .unwrap()
            .associations
            .values()
            .all(|a| a["state"] == "associated")
    );

    // a client set up with the wrong OKE scope: the token is refused and
    // the read fails before anything is planned
    let text = std::fs::read_to_string(&cfg.file).unwrap().replacen(
        "max_retries = 1\n",
        "max_retries = 1\nscope = \"nl-test-admin-flow-2-3-4\"\n",
        1,
    );
    std::fs::write(&cfg.file, text).unwrap();
    let wrong = sisync::connector::load(&cfg.file).unwrap();
    let line = common::sync_error(&wrong, RosterOptions::default()).await;
    assert!(line.contains("/token"), "{line}");
    assert!(writes(&platform).is_empty());
}

/// A freeze window around today that lets accommodations go.
fn freeze_window(mode: &str) -> String {
    let safety = "\n[safety]\nmax_accommodation_loss_share = 1.0\n";
    format!("{safety}{}", common::freeze_window(mode))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adds_only_defers_lost_needs_and_extra_minutes_but_lets_the_rest_through() {
    let (sis, platform, dir, cfg) = bed(1, 6).await;
    let r = sync(&cfg, RosterOptions::default()).await;
    assert_eq!(r.outcome.as_ref().unwrap().failed(), 0);
    // in the SIS: 0 loses the extra minutes and goes to a second attempt,
    // 3 loses one personal need, 1 gains extra minutes, 2 is withdrawn
    {
        let mut g = sis.inner.lock().unwrap();
        let c = &mut g.associations.get_mut(&uid(3, 0)).unwrap()["consumers"][0];
        c.as_object_mut().unwrap().remove("additionalTimeInMin");
        c["attempt"] = json!(2);
        g.associations.get_mut(&uid(3, 3)).unwrap()["consumers"][0]["personalNeeds"] =
            json!(["extraTime"]);
        g.associations.get_mut(&uid(3, 1)).unwrap()["consumers"][0]["additionalTimeInMin"] =
            json!(15);
        g.associations.get_mut(&uid(3, 2)).unwrap()["state"] = json!("canceled");
    }
    let consumer = |p: &FakeOke, n: usize| {
        p.inner.lock().unwrap().associations[&uid(3, n)]["consumers"][0].clone()
    };

    // in the window: only the gain and the attempt go out
    let frozen = oke_config(dir.path(), &sis, &platform, &freeze_window("adds-only"));
    platform.clear_exchanges();
    let r = sync(&frozen, RosterOptions::default()).await;
    assert!(r.refused.is_none(), "{:?}", r.refused);
    let d = r.deferred.clone().unwrap();
    assert_eq!((d.accommodations_reduced, d.memberships_removed), (2, 1));
    let o = r.outcome.as_ref().unwrap();
    assert_eq!(
        (
            o.registrations.updated,
            o.registrations.deactivated,
            o.failed()
        ),
        (2, 0, 0),
        "{:?}",
        r.plan
    );
    let c0 = consumer(&platform, 0);
    assert_eq!(c0["additionalTimeInMin"], 30, "extra minutes kept");
    assert_eq!(c0["attempt"], 2, "the rest of the update went through");
    assert_eq!(c0["personalNeeds"], json!(["extraTime", "spoken"]));
    assert_eq!(
        consumer(&platform, 3)["personalNeeds"],
        json!(["extraTime", "spoken"]),
        "personal need kept"
    );
    assert_eq!(consumer(&platform, 1)["additionalTimeInMin"], 15);
    assert_eq!(
        platform.inner.lock().unwrap().associations[&uid(3, 2)]["state"],
        "associated"
    );
    let w = writes(&platform);
    assert_eq!(w.len(), 2, "{w:?}");
    platform.validate(dir.path(), "platform-frozen");
    // the next run in the window sends nothing and defers the same
    platform.clear_exchanges();
    let r = sync(&frozen, RosterOptions::default()).await;
    assert!(writes(&platform).is_empty(), "{:?}", writes(&platform));
    assert_eq!(r.deferred.unwrap().accommodations_reduced, 2);

    // after the window: the reductions and the withdrawal go out
    let after = oke_config(
        dir.path(),
        &sis,
        &platform,
        "\n[safety]\nmax_accommodation_loss_share = 1.0\nmax_registration_withdrawal_share = 1.0\n",
    );
    let r = sync(&after, RosterOptions::default()).await;
    assert!(r.refused.is_none(), "{:?}", r.refused);
    assert!(r.deferred.is_none());
    let o = r.outcome.as_ref().unwrap();
    assert_eq!(
        (
            o.registrations.updated,
            o.registrations.deactivated,
            o.failed()
        ),
        (2, 1, 0)
    );
    assert!(consumer(&platform, 0).get("additionalTimeInMin").is_none());
    assert_eq!(
        consumer(&platform, 3)["personalNeeds"],
        json!(["extraTime"])
    );
    assert_eq!(
        platform.inner.lock().unwrap().associations[&uid(3, 2)]["state"],
        "canceled"
    );
}

fn platform_link(checks: &[(String, anyhow::Result<String>)]) -> Result<String, String> {
    let (_, r) = checks
        .iter()
        .find(|(name, _)| name == "platform link")
        .expect("an OKE platform has a connect check");
    match r {
        Ok(line) => Ok(line.clone()),
        Err(e) => Err(format!("{e:#}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_connect_asks_the_oke_platform_and_names_a_wrong_scope_or_secret() {
    let (sis, platform, dir, cfg) = bed(1, 2).await;
    // before the first run: no sitting known, the token was accepted
    let line = platform_link(&sisync::sync::connect_checks(&cfg).await).unwrap();
    assert_has(
        &line,
        &[
            "OK, authenticated (scope nl-test-admin-flow-2-3-4)",
            " ms, answered 404",
        ],
    );
    let x = platform.exchanges();
    assert_eq!(x.len(), 1, "one request: {x:?}");
    assert_eq!(x[0]["method"], "GET");
    assert!(x[0]["path"].as_str().unwrap().starts_with("/offerings/"));
    // after a run: a sitting sisync planned, 200, valid OKE
    sync(&cfg, RosterOptions::default()).await;
    platform.clear_exchanges();
    let line = platform_link(&sisync::sync::connect_checks(&cfg).await).unwrap();
    assert_has(
        &line,
        &[&format!("/offerings/{}", uid(1, 0)), "answered 200"],
    );
    platform.validate(dir.path(), "platform-connect");
    let (code, out, _) = sisync_cli(&cfg.file, &["check-config", "--connect"]);
    assert_eq!(code, 0, "{out}");
    assert_has(&out, &["platform link", "answered 200"]);

    // a platform that grants another scope: the token is refused
    let other = FakeOke::start(SIS_SCOPE).await;
    let dir2 = tempfile::tempdir().unwrap();
    let cfg2 = oke_config(dir2.path(), &sis, &other, "");
    let e = platform_link(&sisync::sync::connect_checks(&cfg2).await).unwrap_err();
    assert_has(&e, &["invalid_scope", "nl-test-admin-flow-2-3-4"]);
    assert!(!e.contains(CLIENT_SECRET));
    // a wrong secret
    std::fs::write(dir.path().join("oke-secret"), "not-the-secret").unwrap();
    let cfg3 = sisync::connector::load(&cfg.file).unwrap();
    let e = platform_link(&sisync::sync::connect_checks(&cfg3).await).unwrap_err();
    assert_has(&e, &["invalid_client", "client_secret_file"]);
    let (code, out, _) = sisync_cli(&cfg3.file, &["check-config", "--connect"]);
    assert_ne!(code, 0, "{out}");
    assert_has(&out, &["platform link", "FAILED"]);
}

/// Runs the sisync binary.
fn sisync_cli(cfg: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sisync"))
        .arg("--config")
        .arg(cfg)
        .args(args)
        .env_remove("SISYNC_CONFIG")
        .env_remove("SISYNC_TODAY")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_that_drops_extra_minutes_fails_that_write_by_attribute_and_it_is_sent_again() {
    let (sis, platform, dir, cfg) = bed(1, 6).await;
    // the platform silently drops the extra minutes
    platform.inner.lock().unwrap().drop_on_put = vec!["additionalTimeInMin".into()];
    let r = sync(&cfg, RosterOptions::default()).await;
    let o = r.outcome.as_ref().unwrap();
    // candidates 0 and 3 have extra minutes: those two writes fail
    assert_eq!((o.offerings.created, o.registrations.created), (1, 5));
    assert_eq!(o.registrations.failed, 2, "{:?}", o.failures);
    for n in [0, 3] {
        let line = o
            .failures
            .iter()
            .find(|l| l.contains(&uid(3, n)))
            .unwrap_or_else(|| panic!("no failure for {n}: {:?}", o.failures));
        assert_has(
            line,
            &[
                "did not keep additionalTimeInMin (read back with GET)",
                &format!("/associations/{}", uid(3, n)),
            ],
        );
    }
    // every request and answer, the read-backs included, is valid OKE
    let x = platform.exchanges();
    assert!(
        x.iter()
            .any(|e| e["method"] == "GET" && e["path"] == format!("/associations/{}", uid(3, 0))),
        "read back"
    );
    platform.validate(dir.path(), "platform-dropping");
    // the audit log records the failed writes, not the minutes
    let store = Store::open(&cfg.config.state.path).unwrap();
    let all = store.audit_list(&AuditFilter::default()).unwrap();
    let failed: Vec<_> = all.iter().filter(|a| a.outcome != "ok").collect();
    assert!(failed.len() >= 2, "{all:?}");
    drop(store);

    // fixed platform: the next run sends exactly those two again
    platform.inner.lock().unwrap().drop_on_put.clear();
    platform.clear_exchanges();
    let r = sync(&cfg, RosterOptions::default()).await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!(o.failed(), 0, "{:?}", o.failures);
    let puts: Vec<Value> = writes(&platform);
    assert_eq!(puts.len(), 2, "{puts:?}");
    assert_eq!(
        platform.inner.lock().unwrap().associations[&uid(3, 3)]["consumers"][0]["additionalTimeInMin"],
        30
    );

    // a sitting whose test list the platform drops fails by name, and its
    // registrations wait
    platform.inner.lock().unwrap().drop_on_put = vec!["testsToBeUsed".into()];
    sis.inner
        .lock()
        .unwrap()
        .offerings
        .get_mut(&uid(1, 0))
        .unwrap()["consumers"][0]["locationCode"] = json!("B-1");
    let r = sync(&cfg, RosterOptions::default()).await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!(o.offerings.failed, 1, "{:?}", o.failures);
    assert_any_has(&o.failures, "did not keep testsToBeUsed");
}
