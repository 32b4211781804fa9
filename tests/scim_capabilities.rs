//! Delivery you can trust: what the platform supports is discovered, what
//! it stored is read back, and platforms without filters, with a broken
//! PATCH or with conflicts get no duplicates. Real HTTP to the in-process
//! fake SCIM server, set up to behave like lossy real servers.

mod common;

use common::fake_scim::{FakeScim, TOKEN};
use common::*;
use serde_json::json;
use sisync::config::Loaded;
use sisync::sync::{Quiet, RosterOptions};

const EXT: &str = "urn:sisync:schemas:extension:exam:1.0:User";
const CORE: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

fn run() -> RosterOptions {
    RosterOptions::default()
}

/// The SCIM bed with a platform that cannot filter, synced once.
async fn synced_without_filters() -> (FakeScim, tempfile::TempDir, Loaded) {
    let (server, dir, _, cfg) = scim_bed("").await;
    server.inner.lock().unwrap().no_filter = true;
    let r = common::sync(&cfg, run()).await;
    assert_eq!(r.outcome.as_ref().unwrap().failed(), 0, "{:?}", r.outcome);
    (server, dir, cfg)
}

/// `/Schemas` of a platform with the core User schema (with or without
/// name.middleName) and, optionally, the exam extension.
fn schemas(middle: bool, ext: bool) -> serde_json::Value {
    let mut sub = vec![json!({"name": "givenName"}), json!({"name": "familyName"})];
    if middle {
        sub.push(json!({"name": "middleName"}));
    }
    let mut list = vec![json!({"id": CORE, "attributes": [
        {"name": "userName"}, {"name": "name", "subAttributes": sub}, {"name": "active"}
    ]})];
    if ext {
        list.push(json!({"id": EXT, "attributes": [
            {"name": "role"}, {"name": "org"}, {"name": "bsn"},
            {"name": "extraTimePercent"}, {"name": "fontScale"}, {"name": "screenReader"}
        ]}));
    }
    json!({"totalResults": list.len(), "Resources": list})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_without_the_extension_is_refused_before_any_write() {
    let server = FakeScim::start(true).await;
    server.inner.lock().unwrap().schemas = Some(schemas(false, false));
    let dir = tempfile::tempdir().unwrap();
    let export = copy_fixture("oneroster-1.2", dir.path());
    let cfg = scim_config(dir.path(), &export, &server.base, TOKEN, "");
    let e = common::sync_error(&cfg, run()).await;
    assert!(e.contains("nothing was written"), "{e}");
    assert_has(&e, &[&format!("does not have the extension schema {EXT}")]);
    assert!(e.contains("deploy/scim/exam-extension.json"), "{e}");
    assert!(e.contains("no name.middleName"), "{e}");
    assert!(server.writes().is_empty(), "{:?}", server.writes());

    // the admin loads the schema: everything arrives
    server.inner.lock().unwrap().schemas = Some(schemas(true, true));
    let r = common::sync(&cfg, run()).await;
    assert_eq!(r.outcome.as_ref().unwrap().failed(), 0);
    assert_eq!(server.users().len(), 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_that_drops_what_it_accepted_is_caught() {
    // says nothing about its schemas, answers 201, stores without the
    // extension and the tussenvoegsel (SCIMMY, django-scim2 defaults)
    let server = FakeScim::start(true).await;
    server.inner.lock().unwrap().drop_attrs = vec![EXT.to_string(), "name.middleName".into()];
    let dir = tempfile::tempdir().unwrap();
    let export = copy_fixture("oneroster-1.2", dir.path());
    let cfg = scim_config(dir.path(), &export, &server.base, TOKEN, "");
    let r = common::sync(&cfg, run()).await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!(
        o.users.failed, 42,
        "every user lost data: none counts as done"
    );
    assert!(
        o.failures
            .iter()
            .any(|f| f.starts_with("user stu-1003: create failed:")
                && f.contains("platform dropped")),
        "{:?}",
        o.failures
    );
    // the next run tries again (adopting what is there), never silent
    let r = common::sync(&cfg, run()).await;
    assert_eq!(r.outcome.as_ref().unwrap().users.failed, 42);
    assert_eq!(server.users().len(), 42, "no duplicates");

    // a platform that keeps the extension but has no middleName: the
    // admin chooses to put the tussenvoegsel in the family name
    server.inner.lock().unwrap().drop_attrs = vec!["name.middleName".into()];
    let cfg = scim_config(
        dir.path(),
        &export,
        &server.base,
        TOKEN,
        "middle_name = \"in-family-name\"\n",
    );
    let r = common::sync(&cfg, run()).await;
    assert_eq!(r.outcome.as_ref().unwrap().failed(), 0, "{:?}", r.outcome);
    let zoe = server.user_by_external_id("stu-1003").unwrap();
    assert_eq!(zoe["name"]["familyName"], "van der Berg");
    assert_eq!(zoe[EXT]["extraTimePercent"], 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_filters_a_lost_state_file_makes_no_duplicates() {
    let (server, dir, cfg) = synced_without_filters().await;
    real_peer::lose_state(dir.path());
    server.clear_requests();
    let r = common::sync(&cfg, run()).await;
    assert_eq!(r.outcome.as_ref().unwrap().failed(), 0, "{:?}", r.outcome);
    assert_eq!(server.users().len(), 42);
    assert_eq!(server.groups().len(), 6);
    assert!(server.writes().iter().all(|w| w.method != "POST"));
    // the list was read in pages, never filtered
    assert!(server.requests().iter().all(|r| !r.path.contains("filter")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_that_ignores_start_index_is_not_read_as_complete() {
    // without filters the externalIds come from the paged list; a platform
    // answering page 1 for every startIndex hid 22 of the 42 users, which
    // were then created again after a lost state file
    let (server, dir, cfg) = synced_without_filters().await;
    server.inner.lock().unwrap().ignore_start_index = true;
    real_peer::lose_state(dir.path());
    server.clear_requests();
    let r = common::sync(&cfg, run()).await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!(server.users().len(), 42, "no duplicates");
    assert_eq!(server.groups().len(), 6, "no duplicates");
    assert!(server.writes().iter().all(|w| w.method != "POST"));
    assert_eq!(o.users.created, 0);
    assert!(r.failed() > 0, "the run does not claim success");
    for f in &o.failures {
        assert_has(
            f,
            &["does not page its list (asked for startIndex 21, answered 1)"],
        );
    }

    // reconcile does not call the users on later pages missing
    let e = sisync::sync::reconcile::run(&cfg, false, "user:test", &Quiet)
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("does not page its list"), "{e:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_on_create_adopts_the_existing_record() {
    let (server, dir, _, cfg) = scim_bed("").await;
    common::sync(&cfg, run()).await;
    {
        let mut inner = server.inner.lock().unwrap();
        inner.filter_blind = true;
        inner.conflict_on_external_id = true;
    }
    real_peer::lose_state(dir.path());
    let r = common::sync(&cfg, run()).await;
    assert_eq!(r.outcome.as_ref().unwrap().failed(), 0, "{:?}", r.outcome);
    assert_eq!(server.users().len(), 42);
    assert_eq!(server.groups().len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_answered_with_501_falls_back_to_put() {
    let (server, _dir, export, cfg) = scim_bed("").await;
    common::sync(&cfg, run()).await;
    server.inner.lock().unwrap().patch_501 = true;
    edit_user(&export, "stu-1009", ",Lotte,Jansen,", ",Lotte,Brouwer,");
    server.clear_requests();
    let r = common::sync(&cfg, run()).await;
    assert_eq!(r.outcome.as_ref().unwrap().failed(), 0, "{:?}", r.outcome);
    assert_eq!(
        server.user_by_external_id("stu-1009").unwrap()["name"]["familyName"],
        "Brouwer"
    );
    assert!(server.writes().iter().any(|w| w.method == "PUT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_extension_with_its_own_attribute_names() {
    const VENDOR: &str = "urn:ietf:params:scim:schemas:extension:vendor:2.0:User";
    let server = FakeScim::start(true).await;
    server.inner.lock().unwrap().schemas = Some(json!({"Resources": [
        {"id": CORE, "attributes": [{"name": "name", "subAttributes": [{"name": "middleName"}]}]},
        {"id": VENDOR, "attributes": [
            {"name": "role"}, {"name": "org"}, {"name": "extraTime"}, {"name": "zoom"}, {"name": "screenReader"}
        ]}
    ]}));
    let dir = tempfile::tempdir().unwrap();
    let export = copy_fixture("oneroster-1.2", dir.path());
    let extra = format!(
        "extension_urn = \"{VENDOR}\"\n[platform.attributes]\nextraTimePercent = \"extraTime\"\nfontScale = \"zoom\"\n"
    );
    let cfg = scim_config(dir.path(), &export, &server.base, TOKEN, &extra);
    let r = common::sync(&cfg, run()).await;
    assert_eq!(r.outcome.as_ref().unwrap().failed(), 0, "{:?}", r.outcome);
    let zoe = server.user_by_external_id("stu-1003").unwrap();
    assert_eq!(zoe[VENDOR]["extraTime"], 25);
    assert_eq!(zoe[VENDOR]["zoom"], 1.5);
    assert!(zoe[VENDOR].get("extraTimePercent").is_none());
    // a change goes to the platform's name too, and reads back clean
    edit_user(&export, "stu-1003", ",25,1.5,", ",33,1.5,");
    let r = common::sync(&cfg, run()).await;
    assert_eq!(r.outcome.as_ref().unwrap().users.updated, 1);
    assert_eq!(
        server.user_by_external_id("stu-1003").unwrap()[VENDOR]["extraTime"],
        33
    );
    let (report, _) = sisync::sync::reconcile::run(&cfg, false, "user:test", &Quiet)
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platforms_explanation_reaches_the_admin_and_its_keyword_the_audit() {
    let server = FakeScim::start(true).await;
    server.inner.lock().unwrap().reject_containing = Some("stu-1003".into());
    let dir = tempfile::tempdir().unwrap();
    let export = copy_fixture("oneroster-1.2", dir.path());
    let cfg = scim_config(dir.path(), &export, &server.base, TOKEN, "");
    let r = common::sync(&cfg, run()).await;
    let o = r.outcome.as_ref().unwrap();
    let line = o
        .failures
        .iter()
        .find(|f| f.starts_with("user stu-1003:"))
        .unwrap_or_else(|| panic!("{:?}", o.failures));
    assert!(line.contains("HTTP 400 (scimType invalidValue)"), "{line}");
    assert!(
        line.ends_with("(the platform says: rejected by test)"),
        "{line}"
    );
    let store = sisync::store::Store::open(&dir.path().join("state.db")).unwrap();
    let failed = store
        .audit_list(&sisync::store::AuditFilter {
            person: Some("stu-1003".into()),
            ..Default::default()
        })
        .unwrap();
    let e = failed.iter().find(|e| e.outcome == "failed").unwrap();
    // the keyword, never the free text (it may echo the record)
    assert_eq!(e.detail.as_deref(), Some("HTTP 400 scimType invalidValue"));
}
