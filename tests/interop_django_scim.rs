//! Interop with a real third-party SCIM server: django-scim2 (PyPI) with
//! the package's defaults, in the minimal Django project
//! `tests/peers/django_scim` (sqlite file, bearer token), installed into
//! `.venv` by `.ci/run` (or the venv named by `SISYNC_SCIM_VENV`).
//!
//! This test does not skip: without the peer it fails and says how to
//! install it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::real_peer::{self, Peer, all};
use common::*;
use sisync::sync::{self, Quiet, RosterOptions};

fn start(dir: &Path) -> Peer {
    let venv = std::env::var_os("SISYNC_SCIM_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"));
    let py = venv.join("bin/python");
    let installed = Command::new(&py)
        .args(["-c", "import django_scim, django"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        installed,
        "django-scim2 is not installed in {}: run `bash .ci/run`, or `python3 -m venv .venv && .venv/bin/pip install -r tests/peers/django_scim/requirements.txt`",
        venv.display()
    );
    let token = real_peer::random_token();
    let mut cmd = Command::new(py);
    cmd.arg(repo().join("tests/peers/django_scim/serve.py"))
        .env("DJANGO_SCIM_TOKEN", &token)
        .env("DJANGO_SCIM_DB", dir.join("django-scim.sqlite3"));
    real_peer::spawn(cmd, &token, &dir.join("django-scim.log"), "django-scim2")
}

/// In-scope persons of the fixture with a tussenvoegsel (name.middleName).
fn with_middle_name(export: &Path) -> Vec<String> {
    let mut r = csv::Reader::from_path(export.join("users.csv")).unwrap();
    let expected = real_peer::expected_users();
    let mut v: Vec<String> = r
        .records()
        .map(Result::unwrap)
        .filter(|rec| !rec[8].is_empty() && expected.iter().any(|e| e == &rec[0]))
        .map(|rec| rec[0].to_string())
        .collect();
    v.sort();
    v
}

/// The records a run's failure lines name for `what` (`dropped
/// name.middleName`, `members`).
fn failed_for(r: &sisync::sync::RosterReport, what: &str) -> Vec<String> {
    let o = r.outcome.as_ref().unwrap();
    let mut v: Vec<String> = o
        .failures
        .iter()
        .filter(|f| f.contains(what))
        .map(|f| f.split(':').next().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// Each person and class on the server exactly once.
async fn assert_no_duplicates(peer: &Peer) {
    for (kind, n) in [("Users", 42), ("Groups", 6)] {
        let list = all(peer, kind).await;
        let mut ext: Vec<&str> = list
            .iter()
            .map(|r| r["externalId"].as_str().unwrap())
            .collect();
        ext.sort();
        ext.dedup();
        assert_eq!((ext.len(), list.len()), (n, n), "{kind} once each");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_scim2_defaults_without_the_extension_are_refused_before_any_write() {
    let dir = tempfile::tempdir().unwrap();
    let peer = start(dir.path());
    let (_, cfg) = peer.fixture_config(dir.path(), "");
    let e = common::sync_error(&cfg, RosterOptions::default()).await;
    assert!(e.contains("nothing was written"), "{e}");
    assert_has(
        &e,
        &["does not have the extension schema urn:sisync:schemas:extension:exam:1.0:User"],
    );
    assert!(all(&peer, "Users").await.is_empty(), "no user created");
    assert!(all(&peer, "Groups").await.is_empty(), "no group created");
}

/// django-scim2's default adapters store neither name.middleName nor the
/// members sent with a group (only PATCH adds members). Every run says so
/// by name, none claims success, and a lost state file makes no duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_scim2_drops_middle_names_and_members_and_every_run_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let peer = start(dir.path());
    let export = copy_fixture("oneroster-1.2", dir.path());
    // the admin took the extension fields out, as the refusal suggested
    let fields = "\n[privacy]\nfields = [\"name\", \"groups\"]\n";
    let cfg = scim_config(dir.path(), &export, &peer.url, &peer.token, fields);
    let middle: Vec<String> = with_middle_name(&export)
        .iter()
        .map(|id| format!("user {id}"))
        .collect();
    assert_eq!(middle.len(), 13);
    let classes = [
        "cls-ec-h4a",
        "cls-en-h3a",
        "cls-mentor-m2b",
        "cls-ne-h3a",
        "cls-rek-m2b",
        "cls-wi-h3a",
    ]
    .map(|c| format!("group {c}"));

    for _ in 0..2 {
        let r = common::sync(&cfg, RosterOptions::default()).await;
        assert_eq!(r.failed(), 19, "{:?}", r.outcome);
        assert_eq!(failed_for(&r, "dropped name.middleName"), middle);
        assert_eq!(failed_for(&r, " members"), classes);
        assert_no_duplicates(&peer).await;
    }
    let users = all(&peer, "Users").await;
    assert_eq!(
        real_peer::by_ext(&users, "stu-1004")["name"]["familyName"],
        "Özdemir"
    );

    real_peer::lose_state(dir.path());
    let r = common::sync(&cfg, RosterOptions::default()).await;
    assert_eq!(r.failed(), 19, "{:?}", r.outcome);
    assert_no_duplicates(&peer).await;

    // the tussenvoegsel in the family name: the users arrive, the classes
    // still fail by name
    let fields = format!("middle_name = \"in-family-name\"\n{fields}");
    let cfg = scim_config(dir.path(), &export, &peer.url, &peer.token, &fields);
    let r = common::sync(&cfg, RosterOptions::default()).await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!(o.users.failed, 0, "{:?}", o.failures);
    assert_eq!(failed_for(&r, " members"), classes);
    assert_eq!(r.failed(), 6, "the run does not claim success");
    let users = all(&peer, "Users").await;
    let zoe = real_peer::by_ext(&users, "stu-1003");
    assert_eq!(zoe["name"]["familyName"], "van der Berg");
    assert_eq!(zoe["name"]["givenName"], "Zoë");

    real_peer::lose_state(dir.path());
    let r = common::sync(&cfg, RosterOptions::default()).await;
    assert_eq!(r.failed(), 6, "{:?}", r.outcome);
    assert_no_duplicates(&peer).await;
    let r = common::sync(&cfg, RosterOptions::default()).await;
    assert_eq!(r.failed(), 6, "never silent");

    // reconcile reads django-scim2 back and finds the users as sent (its
    // empty e-mail is no e-mail, not drift); the classes were never
    // delivered, which every sync run says, so they are no drift either
    let (report, _) = sync::reconcile::run(&cfg, false, "user:test", &Quiet)
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.users_read, report.groups_read), (42, 6));
}
