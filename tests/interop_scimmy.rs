//! Interop with a real third-party SCIM server: SCIMMY (npm `scimmy` +
//! `scimmy-routers` + `express`), served by `tests/peers/scimmy/server.js`
//! with an in-memory store and a bearer token. `.ci/run` installs it with
//! `npm ci` in `tests/peers/scimmy`.
//!
//! This test does not skip: without the peer it fails and says how to
//! install it.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::real_peer::{
    self, Peer, all, assert_roster_complete, assert_zoe_extension, by_ext, lose_state,
};
use common::*;
use sisync::config::Loaded;
use sisync::sync::{self, Quiet, RosterOptions};

/// SCIMMY accepts only URNs under urn:ietf:params:scim:schemas:.
const EXT: &str = "urn:ietf:params:scim:schemas:extension:sisync:exam:2.0:User";

/// SCIMMY with the extension, or with its defaults; behind Express 4, or
/// Express 5 (which loses its paging); `flags` as `server.js` takes them.
fn start(extension: bool, flags: &[&str], log_dir: &std::path::Path) -> Peer {
    let dir = repo().join("tests/peers/scimmy");
    assert!(
        dir.join("node_modules/scimmy-routers").exists(),
        "SCIMMY is not installed in {}: run `bash .ci/run`, or `(cd tests/peers/scimmy && npm ci)`",
        dir.display()
    );
    let token = real_peer::random_token();
    let mut cmd = Command::new("node");
    cmd.current_dir(&dir)
        .env("SCIMMY_TOKEN", &token)
        .arg("server.js");
    if extension {
        cmd.arg("--extension")
            .arg(repo().join("deploy/scim/exam-extension-ietf.json"));
    }
    cmd.args(flags);
    real_peer::spawn(cmd, &token, &log_dir.join("scimmy.log"), "SCIMMY")
}

/// SCIMMY (see `start`) logging into a temporary directory, the fixture
/// export there and the config syncing it into the peer with `extra`
/// platform keys; keep the directory bound while the peer runs.
fn bed(extension: bool, flags: &[&str], extra: &str) -> (tempfile::TempDir, Peer, PathBuf, Loaded) {
    let dir = tempfile::tempdir().unwrap();
    let peer = start(extension, flags, dir.path());
    let (export, cfg) = peer.fixture_config(dir.path(), extra);
    (dir, peer, export, cfg)
}

/// The ietf extension URN, set as the README tells admins to.
fn ietf_urn() -> String {
    format!("extension_urn = \"{EXT}\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scimmy_defaults_without_the_extension_are_refused_before_any_write() {
    // the admin followed the README and set the ietf URN, but the vendor
    // did not load the schema
    let (dir, peer, export, cfg) = bed(false, &[], &ietf_urn());
    let e = common::sync_error(&cfg, RosterOptions::default()).await;
    assert!(e.contains("nothing was written"), "{e}");
    assert_has(&e, &[&format!("does not have the extension schema {EXT}")]);
    assert!(all(&peer, "Users").await.is_empty(), "no user created");
    assert!(all(&peer, "Groups").await.is_empty(), "no group created");

    // the same with the default URN: refused, naming that one
    let cfg = scim_config(dir.path(), &export, &peer.url, &peer.token, "");
    let e = common::sync_error(&cfg, RosterOptions::default()).await;
    assert_has(
        &e,
        &["does not have the extension schema urn:sisync:schemas:extension:exam:1.0:User"],
    );
    assert!(all(&peer, "Users").await.is_empty(), "no user created");
}

/// SCIMMY 1.3.5 rejects a whole-number decimal: JavaScript reads the
/// `2.0` sisync sends for stu-1015's fontScale as `2`, which SCIMMY's
/// validation calls an integer. That user fails by name, every run, and
/// everything else arrives.
const REFUSED: &[&str] = &["stu-1015"];

fn assert_only_the_whole_decimal_failed(r: &sisync::sync::RosterReport) {
    let o = r.outcome.as_ref().unwrap();
    assert_eq!(o.failed(), 1, "{:?}", o.failures);
    assert_eq!(r.failed(), 1, "the run does not claim success");
    let f = &o.failures[0];
    assert!(
        f.starts_with("user stu-1015: ")
            && f.contains("fontScale")
            && f.contains("expected value type 'decimal'"),
        "{f}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_into_scimmy_with_the_extension_and_a_lost_state_file() {
    let (dir, peer, export, cfg) = bed(true, &[], &ietf_urn());

    let r = common::sync(&cfg, RosterOptions::default()).await;
    assert_only_the_whole_decimal_failed(&r);
    let o = r.outcome.as_ref().unwrap();
    assert_eq!((o.users.created, o.groups.created), (41, 6));

    let users = all(&peer, "Users").await;
    let groups = all(&peer, "Groups").await;
    assert_roster_complete(&export, &users, &groups, EXT, REFUSED);
    let zoe = assert_zoe_extension(&users, EXT);
    assert_eq!(zoe["name"]["middleName"], "van der");

    // the next run tries stu-1015 again and says so again
    let r = common::sync(&cfg, RosterOptions::default()).await;
    assert_only_the_whole_decimal_failed(&r);

    // changes go through PATCH on SCIMMY and are read back: a name, an
    // accommodation, a student who left (deactivated, out of classes)
    edit(&export, "users.csv", |l| {
        Some(if l.starts_with("stu-1009,") {
            l.replace(",Lotte,Jansen,", ",Lotte,Brouwer,")
        } else if l.starts_with("stu-1003,") {
            l.replace(",25,1.5,false", ",33,1.5,false")
        } else {
            l.to_string()
        })
    });
    remove_person(&export, "stu-1014");
    let r = common::sync(&cfg, RosterOptions::default()).await;
    assert_only_the_whole_decimal_failed(&r);
    let o = r.outcome.as_ref().unwrap();
    assert_eq!(
        (o.users.updated, o.users.deactivated, o.groups.updated),
        (2, 1, 3)
    );
    let users = all(&peer, "Users").await;
    assert_eq!(by_ext(&users, "stu-1009")["name"]["familyName"], "Brouwer");
    assert_eq!(by_ext(&users, "stu-1003")[EXT]["extraTimePercent"], 33);
    let gone = by_ext(&users, "stu-1014");
    assert_eq!(gone["active"], false);
    let gone_id = gone["id"].as_str().unwrap().to_string();
    let groups = all(&peer, "Groups").await;
    assert!(
        groups
            .iter()
            .all(|g| !g["members"].to_string().contains(&gone_id))
    );

    // reconcile reads SCIMMY back and finds it as sisync left it (the
    // refused user was never delivered, so it is no drift)
    let (report, _) = sync::reconcile::run(&cfg, false, "user:test", &Quiet)
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.users_read, report.groups_read), (41, 6));

    // the state file is lost: the next run adopts what is there
    lose_state(dir.path());
    let r = common::sync(&cfg, RosterOptions::default()).await;
    assert_only_the_whole_decimal_failed(&r);
    let mut users = all(&peer, "Users").await;
    let groups = all(&peer, "Groups").await;
    // stu-1014 left: still there, inactive, not in the export any more
    users.retain(|u| u["externalId"] != "stu-1014");
    assert_roster_complete(&export, &users, &groups, EXT, &["stu-1014", "stu-1015"]);
}

/// SCIMMY declaring neither PATCH nor filters (scimmy-routers declares both
/// unless told otherwise): sisync reads the externalIds from the paged list
/// and updates by PUT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scimmy_declaring_no_patch_and_no_filter_gets_put_and_a_paged_index() {
    let (dir, peer, export, cfg) = bed(true, &["--no-patch-no-filter"], &ietf_urn());
    let r = common::sync(&cfg, RosterOptions::default()).await;
    assert_only_the_whole_decimal_failed(&r);

    edit_user(
        &export,
        "stu-1003",
        ",Zoë,Berg,van der,",
        ",Zoë,Berg,van den,",
    );
    let r = common::sync(&cfg, RosterOptions::default()).await;
    assert_only_the_whole_decimal_failed(&r);
    assert_eq!(r.outcome.as_ref().unwrap().users.updated, 1);
    let users = all(&peer, "Users").await;
    let zoe = by_ext(&users, "stu-1003");
    assert_eq!(zoe["name"]["middleName"], "van den");
    assert_eq!(zoe[EXT]["fontScale"], 1.5, "PUT kept the rest");
    let log = std::fs::read_to_string(dir.path().join("scimmy.log")).unwrap();
    assert!(log.contains("PUT /scim/v2/Users/"), "{log}");
    assert!(!log.contains("PATCH ") && !log.contains("filter="), "{log}");

    lose_state(dir.path());
    let r = common::sync(&cfg, RosterOptions::default()).await;
    assert_only_the_whole_decimal_failed(&r);
    let users = all(&peer, "Users").await;
    let groups = all(&peer, "Groups").await;
    assert_roster_complete(&export, &users, &groups, EXT, REFUSED);
}

/// scimmy-routers behind Express 5 answers the first 20 resources for any
/// startIndex. Writes go by filter and arrive; reconcile, which reads the
/// whole list, refuses the list instead of calling 21 users missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scimmy_behind_express5_does_not_page_and_reconcile_says_so() {
    let (_dir, peer, _, cfg) = bed(true, &["--express5"], &ietf_urn());
    let r = common::sync(&cfg, RosterOptions::default()).await;
    assert_only_the_whole_decimal_failed(&r);
    assert_eq!(r.outcome.as_ref().unwrap().users.created, 41);

    let e = sync::reconcile::run(&cfg, false, "user:test", &Quiet)
        .await
        .unwrap_err();
    let e = format!("{e:#}");
    assert_has(
        &e,
        &["does not page its list (asked for startIndex 21, answered 1)"],
    );
    let e = sync::reconcile::run(&cfg, true, "user:test", &Quiet)
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("does not page its list"), "{e:#}");
    assert_eq!(real_peer_count(&peer).await, 41, "--fix created nothing");
}

/// totalResults of /Users (one page is enough for that).
async fn real_peer_count(peer: &Peer) -> u64 {
    let v: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/Users", peer.url))
        .bearer_auth(&peer.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["totalResults"].as_u64().unwrap()
}
