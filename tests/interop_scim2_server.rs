//! Interop with a real third-party SCIM server: `scim2-server` from PyPI,
//! installed into `.venv` by `.ci/run` (or the venv named by
//! `SISYNC_SCIM_VENV`) and started by `.ci/scim2-server.sh` with a bearer
//! token and the sisync exam extension schema.
//!
//! This test does not skip: without the peer it fails and says how to
//! install it.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::real_peer::{assert_zoe_extension, by_ext};
use common::*;
use serde_json::Value;
use sisync::config::Loaded;
use sisync::sync::RosterOptions;

struct Peer {
    url: String,
    token: String,
    pid: i32,
}

impl Drop for Peer {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) of the child the script started.
        unsafe {
            libc::kill(self.pid, libc::SIGTERM);
        }
    }
}

fn start_peer() -> Peer {
    let venv = std::env::var_os("SISYNC_SCIM_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"));
    assert!(
        venv.join("bin/scim2-server").exists(),
        "scim2-server is not installed in {}: run `bash .ci/run`, or `python3 -m venv .venv && .venv/bin/pip install scim2-server`",
        venv.display()
    );
    let out = Command::new("bash")
        .arg(repo().join(".ci/scim2-server.sh"))
        .arg(&venv)
        .output()
        .unwrap();
    assert_success(&out, "starting scim2-server");
    let vars: std::collections::HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Peer {
        url: vars["SISYNC_SCIM_URL"].clone(),
        token: vars["SISYNC_SCIM_TOKEN"].clone(),
        pid: vars["SISYNC_SCIM_PID"].parse().unwrap(),
    }
}

/// scim2-server and the config syncing the fixture export (in a temporary
/// directory, kept bound while the config is used) into it.
fn bed() -> (Peer, tempfile::TempDir, PathBuf, Loaded) {
    let peer = start_peer();
    let dir = tempfile::tempdir().unwrap();
    let export = copy_fixture("oneroster-1.2", dir.path());
    let cfg = scim_config(dir.path(), &export, &peer.url, &peer.token, "");
    (peer, dir, export, cfg)
}

/// Every resource of a type, paged.
async fn all(peer: &Peer, resource: &str) -> Vec<Value> {
    real_peer::all_at(&peer.url, &peer.token, resource).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_into_scim2_server() {
    let (peer, _dir, export, cfg) = bed();

    let r = sync(&cfg, RosterOptions::default()).await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!(o.failed(), 0, "{:?}", o.failures);
    assert_eq!((o.users.created, o.groups.created), (42, 6));

    let users = all(&peer, "Users").await;
    let groups = all(&peer, "Groups").await;
    let mut ext_ids: Vec<&str> = users
        .iter()
        .map(|u| u["externalId"].as_str().unwrap())
        .collect();
    ext_ids.sort();
    let mut expected: Vec<String> = (1001..=1036).map(|n| format!("stu-{n}")).collect();
    expected.extend((2001..=2005).map(|n| format!("tch-{n}")));
    expected.push("prc-3001".into());
    expected.sort();
    assert_eq!(
        ext_ids, expected,
        "exactly the in-scope students, teachers and proctor"
    );
    assert_eq!(groups.len(), 6);
    let members: usize = groups
        .iter()
        .map(|g| g["members"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(members, 80);

    let ext = "urn:sisync:schemas:extension:exam:1.0:User";
    let zoe = assert_zoe_extension(&users, ext);
    assert_eq!(zoe["name"]["givenName"], "Zoë");
    assert_eq!(zoe[ext]["role"], "student");
    assert!(zoe.get("emails").is_none(), "e-mail is opt-in");
    assert_eq!(by_ext(&users, "tch-2001")[ext]["role"], "teacher");

    // a rerun sends nothing
    assert!(sync(&cfg, RosterOptions::default()).await.plan.is_empty());

    // rename and removal round-trip through PATCH on the real server
    edit_user(&export, "stu-1009", ",Lotte,Jansen,", ",Lotte,Brouwer,");
    remove_person(&export, "stu-1014");
    let r = sync(&cfg, RosterOptions::default()).await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!(o.failed(), 0, "{:?}", o.failures);
    assert_eq!(
        (o.users.updated, o.users.deactivated, o.groups.updated),
        (1, 1, 3)
    );
    let users = all(&peer, "Users").await;
    assert_eq!(users.len(), 42, "deactivated, not deleted");
    assert_eq!(by_ext(&users, "stu-1009")["name"]["familyName"], "Brouwer");
    assert_eq!(by_ext(&users, "stu-1014")["active"], false);
    let gone_id = by_ext(&users, "stu-1014")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let groups = all(&peer, "Groups").await;
    assert!(
        groups
            .iter()
            .all(|g| !g["members"].to_string().contains(&gone_id))
    );
    let members: usize = groups
        .iter()
        .map(|g| g["members"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(members, 77);
    assert!(sync(&cfg, RosterOptions::default()).await.plan.is_empty());
}

/// A request to the peer, as an admin poking at the platform by hand.
async fn by_hand(peer: &Peer, method: reqwest::Method, path: &str, body: Option<Value>) {
    let client = reqwest::Client::new();
    let mut req = client
        .request(method, format!("{}/{path}", peer.url))
        .bearer_auth(&peer.token)
        .header("content-type", "application/scim+json");
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_against_scim2_server_finds_and_fixes_what_was_changed_by_hand() {
    let (peer, _dir, _, cfg) = bed();
    let r = sync(&cfg, RosterOptions::default()).await;
    assert_eq!(r.outcome.as_ref().unwrap().failed(), 0);
    let (report, _) = sisync::sync::reconcile::run(&cfg, false, "user:test", &sisync::sync::Quiet)
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");

    let users = all(&peer, "Users").await;
    let groups = all(&peer, "Groups").await;
    let id = |ext: &str| by_ext(&users, ext)["id"].as_str().unwrap().to_string();
    // 1. a user deleted by hand
    by_hand(
        &peer,
        reqwest::Method::DELETE,
        &format!("Users/{}", id("stu-1005")),
        None,
    )
    .await;
    // 2. a name changed by hand
    let ops = serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "name.familyName", "value": "Gewijzigd"}]});
    by_hand(
        &peer,
        reqwest::Method::PATCH,
        &format!("Users/{}", id("stu-1006")),
        Some(ops),
    )
    .await;
    // 3. an orphan created by hand
    let orphan = serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "handmade", "externalId": "hand-1", "active": true});
    by_hand(&peer, reqwest::Method::POST, "Users", Some(orphan)).await;
    // 4. a member removed by hand
    let class = by_ext(&groups, "cls-ne-h3a");
    let removed = id("stu-1003");
    let ops = serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "remove", "path": format!("members[value eq \"{removed}\"]")}]});
    by_hand(
        &peer,
        reqwest::Method::PATCH,
        &format!("Groups/{}", class["id"].as_str().unwrap()),
        Some(ops),
    )
    .await;

    let (report, _) = sisync::sync::reconcile::run(&cfg, false, "user:test", &sisync::sync::Quiet)
        .await
        .unwrap();
    let ids = |l: &[sisync::sync::reconcile::Finding]| -> Vec<String> {
        l.iter()
            .map(|f| {
                format!(
                    "{}:{}:{}",
                    f.kind,
                    f.id,
                    sisync::model::TrackedField::join(&f.fields, ",")
                )
            })
            .collect()
    };
    assert_eq!(ids(&report.missing), ["user:stu-1005:"]);
    assert_eq!(ids(&report.drifted), ["user:stu-1006:name"]);
    assert_eq!(ids(&report.orphans), ["user:hand-1:"]);
    // the deleted user also left its classes
    assert!(
        ids(&report.membership).contains(&"group:cls-ne-h3a:members".to_string()),
        "{report:?}"
    );

    let (_, fixed) = sisync::sync::reconcile::run(&cfg, true, "user:test", &sisync::sync::Quiet)
        .await
        .unwrap();
    let fixed = fixed.expect("a fix run");
    assert_eq!(fixed.failed(), 0, "{:?}", fixed.outcome);
    let (report, _) = sisync::sync::reconcile::run(&cfg, false, "user:test", &sisync::sync::Quiet)
        .await
        .unwrap();
    assert!(
        report.missing.is_empty() && report.drifted.is_empty() && report.membership.is_empty(),
        "{report:?}"
    );
    assert_eq!(
        ids(&report.orphans),
        ["user:hand-1:"],
        "orphans are never deleted"
    );
    let users = all(&peer, "Users").await;
    assert_eq!(by_ext(&users, "stu-1006")["name"]["familyName"], "Bakker");
}
