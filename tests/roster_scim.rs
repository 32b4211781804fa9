//! Roster sync against an in-process fake SCIM server on 127.0.0.1 that
//! counts requests.

mod common;

use common::fake_scim::{FakeScim, TOKEN};
use common::*;
use sisync::store::{AuditFilter, Store, audit};
use sisync::sync::RosterOptions;

fn run() -> RosterOptions {
    RosterOptions::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_creates_second_makes_no_writes_rename_patches_removal_deactivates() {
    let (server, dir, export, cfg) = scim_bed("").await;

    // 1. first run creates every user and class
    let r = sync(&cfg, run()).await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!((o.users.created, o.groups.created, o.failed()), (42, 6, 0));
    let posts: Vec<_> = server.writes();
    assert_eq!(posts.len(), 48);
    assert!(posts.iter().all(|w| w.method == "POST"));
    assert_eq!(server.users().len(), 42);
    let groups = server.groups();
    assert_eq!(groups.len(), 6);
    let members: usize = groups
        .iter()
        .map(|g| g["members"].as_array().unwrap().len())
        .sum();
    assert_eq!(members, 80);
    // members point at the platform's own user ids
    let ids: Vec<String> = server
        .users()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();
    assert!(groups.iter().all(|g| {
        g["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| ids.contains(&m["value"].as_str().unwrap().to_string()))
    }));
    let zoe = server.user_by_external_id("stu-1003").unwrap();
    let ext = &zoe["urn:sisync:schemas:extension:exam:1.0:User"];
    assert_eq!(ext["extraTimePercent"], 25);
    assert_eq!(ext["fontScale"], 1.5);
    assert_eq!(ext["screenReader"], false);
    assert_eq!(ext["role"], "student");
    assert_eq!(ext["org"], "99AA00");
    assert_eq!(zoe["name"]["givenName"], "Zoë");
    // e-mail is opt-in: no address in any request body
    assert!(
        server
            .requests()
            .iter()
            .all(|r| !r.body.contains("@leerling"))
    );

    // 2. same input: no request at all
    server.clear_requests();
    let r = sync(&cfg, run()).await;
    assert!(r.plan.is_empty());
    assert_eq!(server.requests().len(), 0, "{:?}", server.requests());

    // 3. a renamed student: one PATCH of the name
    edit_user(&export, "stu-1009", ",Lotte,Jansen,", ",Lotte,Brouwer,");
    server.clear_requests();
    let r = sync(&cfg, run()).await;
    assert_eq!(r.outcome.as_ref().unwrap().users.updated, 1);
    let w = server.writes();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].method, "PATCH");
    assert!(w[0].body.contains("name.familyName") && w[0].body.contains("Brouwer"));
    assert_eq!(
        server.user_by_external_id("stu-1009").unwrap()["name"]["familyName"],
        "Brouwer"
    );

    // 4. a removed student: one deactivation, and out of their classes
    edit(&export, "users.csv", |l| {
        (!l.starts_with("stu-1014,")).then(|| l.to_string())
    });
    edit(&export, "roles.csv", |l| {
        (!l.contains(",stu-1014,")).then(|| l.to_string())
    });
    edit(&export, "enrollments.csv", |l| {
        (!l.contains(",stu-1014,")).then(|| l.to_string())
    });
    server.clear_requests();
    let r = sync(&cfg, run()).await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!(o.users.deactivated, 1);
    let user_writes: Vec<_> = server
        .writes()
        .into_iter()
        .filter(|w| w.path.starts_with("/Users"))
        .collect();
    assert_eq!(user_writes.len(), 1);
    assert!(
        user_writes[0].body.contains(r#""path":"active""#) && user_writes[0].body.contains("false")
    );
    let gone = server.user_by_external_id("stu-1014").unwrap();
    assert_eq!(gone["active"], false, "deactivated, not deleted");
    assert_eq!(server.users().len(), 42);
    let gone_id = gone["id"].as_str().unwrap();
    assert!(
        server
            .groups()
            .iter()
            .all(|g| !g["members"].to_string().contains(gone_id))
    );
    assert_eq!(o.groups.updated, 3);

    // the audit log has every write and verifies
    let store = Store::open(&dir.path().join("state.db")).unwrap();
    let all = audit::list(&rusqlite_conn(&store), &AuditFilter::default()).unwrap();
    assert_eq!(all.len(), 48 + 1 + 1 + 3);
    let about = audit::list(
        &rusqlite_conn(&store),
        &AuditFilter {
            person: Some("stu-1014".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let actions: Vec<&str> = about.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, vec!["user.create", "user.deactivate"]);
    assert!(audit::verify(&rusqlite_conn(&store)).unwrap().ok());
}

fn rusqlite_conn(store: &Store) -> rusqlite::Connection {
    rusqlite::Connection::open(store.path()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_gate_refuses_mass_deactivation_and_writes_nothing() {
    let (server, _dir, export, cfg) = scim_bed("").await;
    sync(&cfg, run()).await;
    // a half roster: everyone at the second school vanished
    edit(&export, "users.csv", |l| {
        (!l.contains("org-99AA01")).then(|| l.to_string())
    });
    server.clear_requests();
    let r = sync(&cfg, run()).await;
    assert!(r.refused.is_some());
    assert!(
        r.refused
            .as_ref()
            .unwrap()
            .to_string()
            .contains("--allow-mass-changes")
    );
    assert_eq!(server.requests().len(), 0);
    // an empty export is refused too
    edit(&export, "users.csv", |l| {
        l.starts_with("\u{feff}sourcedId").then(|| l.to_string())
    });
    let r = sync(&cfg, run()).await;
    assert!(r.refused.unwrap().to_string().contains("yielded 0 users"));
    assert_eq!(server.requests().len(), 0);
    // the admin can let it through
    let r = sync(
        &cfg,
        RosterOptions {
            allow_mass_changes: true,
            ..run()
        },
    )
    .await;
    assert_eq!(r.outcome.unwrap().users.deactivated, 42);
    assert!(server.users().iter().all(|u| u["active"] == false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_state_never_creates_duplicates() {
    let (server, dir, _, cfg) = scim_bed("").await;
    sync(&cfg, run()).await;
    real_peer::lose_state(dir.path());
    server.clear_requests();
    let r = sync(&cfg, run()).await;
    assert_eq!(r.failed(), 0);
    assert!(
        server.writes().iter().all(|w| w.method != "POST"),
        "no POST after a lookup found the user"
    );
    assert_eq!(server.users().len(), 42);
    assert_eq!(server.groups().len(), 6);
    // and the mapping is back: the next run is quiet
    server.clear_requests();
    assert!(sync(&cfg, run()).await.plan.is_empty());
    assert_eq!(server.requests().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_is_used_when_patch_is_unsupported() {
    let server = FakeScim::start(false).await;
    let dir = tempfile::tempdir().unwrap();
    let export = copy_fixture("oneroster-1.2", dir.path());
    let cfg = scim_config(dir.path(), &export, &server.base, TOKEN, "");
    sync(&cfg, run()).await;
    edit_user(&export, "stu-1003", ",25,1.5,false", ",33,1.5,false");
    server.clear_requests();
    let r = sync(&cfg, run()).await;
    assert_eq!(r.failed(), 0, "{:?}", r.outcome);
    let w = server.writes();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].method, "PUT");
    let u = server.user_by_external_id("stu-1003").unwrap();
    let ext = &u["urn:sisync:schemas:extension:exam:1.0:User"];
    assert_eq!(ext["extraTimePercent"], 33);
    assert_eq!(ext["role"], "student", "untouched attributes are kept");
    assert_eq!(u["name"]["givenName"], "Zoë");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_server_is_retried_and_refused_record_is_retried_next_run() {
    let server = FakeScim::start(true).await;
    server
        .inner
        .lock()
        .unwrap()
        .fail_writes
        .extend([(503, Some("0")), (429, Some("0"))]);
    server.inner.lock().unwrap().reject_containing = Some("\"stu-1020\"".into());
    let dir = tempfile::tempdir().unwrap();
    let export = copy_fixture("oneroster-1.2", dir.path());
    let cfg = scim_config(dir.path(), &export, &server.base, TOKEN, "concurrency = 1");
    let r = sync(&cfg, run()).await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!(o.users.created, 41);
    assert_eq!(o.users.failed, 1);
    assert!(
        o.failures[0].contains("user stu-1020") && o.failures[0].contains("HTTP 400"),
        "{:?}",
        o.failures
    );
    assert_eq!(server.users().len(), 41);
    // the failure is audited without personal data, the group left it out
    let conn = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    let failed = audit::list(
        &conn,
        &AuditFilter {
            person: Some("stu-1020".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].outcome, "failed");
    assert_eq!(
        failed[0].detail.as_deref(),
        Some("HTTP 400 scimType invalidValue")
    );
    // the platform accepts it again: only that user and its classes move
    server.inner.lock().unwrap().reject_containing = None;
    server.clear_requests();
    let r = sync(&cfg, run()).await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!((o.users.created, o.failed()), (1, 0));
    assert!(o.groups.updated >= 1);
    let id = server.user_by_external_id("stu-1020").unwrap()["id"].clone();
    assert!(
        server
            .groups()
            .iter()
            .any(|g| g["members"].to_string().contains(id.as_str().unwrap()))
    );
    server.clear_requests();
    assert!(sync(&cfg, run()).await.plan.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_fails_the_run_without_touching_state() {
    let server = FakeScim::start(true).await;
    let dir = tempfile::tempdir().unwrap();
    let export = copy_fixture("oneroster-1.2", dir.path());
    let cfg = scim_config(dir.path(), &export, &server.base, "not-the-token", "");
    let msg = common::sync_error(&cfg, run()).await;
    assert_has(&msg, &["HTTP 401", "check the token"]);
    assert!(!msg.contains("not-the-token"), "secret leaked: {msg}");
    let store = Store::open(&dir.path().join("state.db")).unwrap();
    assert!(
        store
            .load_state(sisync::store::RecordKind::User)
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.recent_runs(1).unwrap()[0].outcome, "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_and_scope_follow_the_privacy_config() {
    let (server, _dir, _, cfg) = scim_bed("user_name = \"username\"\n\n[privacy]\nfields = [\"name\", \"email\", \"groups\"]\nscope_orgs = [\"99AA01\"]\n").await;
    let r = sync(&cfg, run()).await;
    assert_eq!(r.failed(), 0);
    let users = server.users();
    // only the second school: 6 students and their teacher(s)
    assert!(
        users
            .iter()
            .all(|u| u["externalId"].as_str().unwrap() != "stu-1001")
    );
    assert!(users.iter().any(|u| u["externalId"] == "stu-1033"));
    assert!(users.iter().all(|u| {
        u["emails"][0]["value"]
            .as_str()
            .is_some_and(|e| e.contains('@'))
    }));
    // no role, org or accommodations: the extension is not sent at all
    assert!(server
        .requests()
        .iter()
        .all(|r| !r.body.contains("urn:sisync:schemas:extension") && !r.body.contains("99AA01")));
    assert_eq!(server.groups().len(), 2);
}
