//! Roster sync from the IMS Enterprise 1.1 fixture through the fake SCIM
//! server: the platform ends up exactly as after syncing the OneRoster 1.2
//! fixture the IMS file was generated from.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::fake_scim::{FakeScim, TOKEN};
use common::*;
use serde_json::Value;
use sisync::config::Loaded;
use sisync::sync::RosterOptions;

/// A SCIM config reading the IMS fixture (the proctor is IMS "Staff").
fn ims_config(dir: &Path, xml: &Path, base: &str) -> Loaded {
    let source = format!(
        "kind = \"ims-enterprise\"\npath = \"{}\"\nrole_map = {{ staff = \"proctor\" }}\n",
        xml.display()
    );
    scim_config_with_source(dir, &source, base, TOKEN, "")
}

/// Users by externalId, without the platform's own ids and metadata.
fn users(server: &FakeScim) -> BTreeMap<String, Value> {
    server
        .users()
        .into_iter()
        .map(|mut u| {
            let ext = u["externalId"].as_str().unwrap().to_string();
            let o = u.as_object_mut().unwrap();
            o.remove("id");
            o.remove("meta");
            (ext, u)
        })
        .collect()
}

/// Groups by externalId: (displayName, member externalIds).
fn groups(server: &FakeScim) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let by_id: BTreeMap<String, String> = server
        .users()
        .iter()
        .map(|u| {
            (
                u["id"].as_str().unwrap().to_string(),
                u["externalId"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    server
        .groups()
        .iter()
        .map(|g| {
            let members = g["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| by_id[m["value"].as_str().unwrap()].clone())
                .collect();
            (
                g["externalId"].as_str().unwrap().to_string(),
                (g["displayName"].as_str().unwrap().to_string(), members),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ims_fixture_syncs_to_the_same_platform_state_as_oneroster() {
    // OneRoster 1.2 CSV into one platform
    let or_server = FakeScim::start(true).await;
    let or_dir = tempfile::tempdir().unwrap();
    let export = copy_fixture("oneroster-1.2", or_dir.path());
    let or_cfg = scim_config(or_dir.path(), &export, &or_server.base, TOKEN, "");
    let r = sync(&or_cfg, RosterOptions::default()).await;
    assert_eq!(r.outcome.as_ref().unwrap().failed(), 0);

    // IMS Enterprise into another
    let server = FakeScim::start(true).await;
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("roster.xml");
    std::fs::copy(repo().join("fixtures/ims-enterprise/roster.xml"), &xml).unwrap();
    let cfg = ims_config(dir.path(), &xml, &server.base);
    let r = sync(&cfg, RosterOptions::default()).await;
    assert!(r.issues.is_empty(), "{:?}", r.issues);
    let o = r.outcome.as_ref().unwrap();
    assert_eq!((o.users.created, o.groups.created, o.failed()), (42, 6, 0));
    assert_eq!(server.users().len(), 42);
    assert_eq!(server.groups().len(), 6);
    let members: usize = server
        .groups()
        .iter()
        .map(|g| g["members"].as_array().unwrap().len())
        .sum();
    assert_eq!(members, 80);

    // the same users (names, roles, orgs, accommodations) and classes
    assert_eq!(users(&server), users(&or_server));
    assert_eq!(groups(&server), groups(&or_server));
    let zoe = server.user_by_external_id("stu-1003").unwrap();
    assert_eq!(zoe["name"]["givenName"], "Zoë");
    assert_eq!(zoe["name"]["middleName"], "van der");
    let ext = &zoe["urn:sisync:schemas:extension:exam:1.0:User"];
    assert_eq!(ext["org"], "99AA00");
    assert_eq!(ext["extraTimePercent"], 25);
    assert_eq!(
        server.user_by_external_id("prc-3001").unwrap()["urn:sisync:schemas:extension:exam:1.0:User"]
            ["role"],
        "proctor"
    );

    // same file again: no request at all
    server.clear_requests();
    let r = sync(&cfg, RosterOptions::default()).await;
    assert!(r.plan.is_empty());
    assert_eq!(server.requests().len(), 0);

    // the delta: one rename, one deactivation, one new student
    std::fs::copy(repo().join("fixtures/ims-enterprise/delta.xml"), &xml).unwrap();
    let r = sync(&cfg, RosterOptions::default()).await;
    assert!(r.issues.is_empty(), "{:?}", r.issues);
    let o = r.outcome.as_ref().unwrap();
    assert_eq!(
        (
            o.users.created,
            o.users.updated,
            o.users.deactivated,
            o.failed()
        ),
        (1, 1, 1, 0)
    );
    assert_eq!(
        server.user_by_external_id("stu-1009").unwrap()["name"]["familyName"],
        "Brouwer"
    );
    assert_eq!(
        server.user_by_external_id("stu-1014").unwrap()["active"],
        false
    );
    assert_eq!(
        server.user_by_external_id("stu-1037").unwrap()["name"]["familyName"],
        "Doğan"
    );
    let g = groups(&server);
    let ne = &g["cls-ne-h3a"].1;
    assert!(ne.contains("stu-1037") && !ne.contains("stu-1014"));
    assert!(!g["cls-en-h3a"].1.contains("stu-1014"));
}

#[test]
fn check_config_probes_the_ims_file() {
    let dir = tempfile::tempdir().unwrap();
    let xml = repo().join("fixtures/ims-enterprise/roster.xml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sisync"))
        .arg("--config")
        .arg(dir.path().join("sisync.toml"))
        .arg("check-config")
        .env_remove("SISYNC_CONFIG")
        .output()
        .unwrap();
    // no config yet: exit 2
    assert_eq!(out.status.code(), Some(2));
    ims_config(dir.path(), &xml, "http://127.0.0.1:9/scim/v2");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sisync"))
        .arg("--config")
        .arg(dir.path().join("sisync.toml"))
        .arg("check-config")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("ims-enterprise") && stdout.contains("IMS Enterprise 1.1 XML"),
        "{stdout}"
    );

    let bad = dir.path().join("xxe.xml");
    std::fs::copy(
        repo().join("fixtures/ims-enterprise/external-entity.xml"),
        &bad,
    )
    .unwrap();
    ims_config(dir.path(), &bad, "http://127.0.0.1:9/scim/v2");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sisync"))
        .arg("--config")
        .arg(dir.path().join("sisync.toml"))
        .arg("check-config")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("xxe.xml:2:") && all.contains("DTD"), "{all}");
}
