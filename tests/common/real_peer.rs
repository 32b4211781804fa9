//! Real third-party SCIM servers as test peers (SCIMMY, django-scim2):
//! started as child processes on a free loopback port, read back page by
//! page, and the fixture roster checked against what they stored.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sisync::config::Loaded;

/// A peer server process; killed when dropped. Its stdin is a pipe that
/// the peer watches, so it also stops when the test process dies.
pub struct Peer {
    pub url: String,
    pub token: String,
    child: Child,
}

impl Peer {
    /// The OneRoster 1.2 fixture copied into `dir` and the config syncing
    /// it into this peer with `extra` platform keys.
    pub fn fixture_config(&self, dir: &Path, extra: &str) -> (PathBuf, Loaded) {
        let export = super::copy_fixture("oneroster-1.2", dir);
        let cfg = super::scim_config(dir, &export, &self.url, &self.token, extra);
        (export, cfg)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` (which must print `SISYNC_SCIM_URL=...` once it listens)
/// with its stderr in `log`; fails the test, with the log, when it does not.
pub fn spawn(mut cmd: Command, token: &str, log: &Path, what: &str) -> Peer {
    let err = std::fs::File::create(log).unwrap();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("{what} could not be started: {e}"));
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let url = lines.find_map(|l| l.ok()?.strip_prefix("SISYNC_SCIM_URL=").map(str::to_string));
        let _ = tx.send(url);
        // keep draining, so that the peer never blocks on a full pipe
        for _ in lines {}
    });
    let url = rx.recv_timeout(Duration::from_secs(60)).ok().flatten();
    let Some(url) = url else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "{what} did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    };
    Peer {
        url,
        token: token.to_string(),
        child,
    }
}

pub fn random_token() -> String {
    (0..4)
        .map(|_| format!("{:016x}", fastrand::u64(..)))
        .collect()
}

/// Every resource of a type, paged as the server pages.
pub async fn all(peer: &Peer, resource: &str) -> Vec<Value> {
    all_at(&peer.url, &peer.token, resource).await
}

/// [`all`] of any SCIM service at `url` with bearer `token`.
pub async fn all_at(url: &str, token: &str, resource: &str) -> Vec<Value> {
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    let mut start = 1;
    loop {
        let resp = client
            .get(format!("{url}/{resource}?startIndex={start}&count=50"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{resource}: {}", resp.status());
        let v: Value = resp.json().await.unwrap();
        let page = v["Resources"].as_array().cloned().unwrap_or_default();
        let n = page.len();
        out.extend(page);
        let total = v["totalResults"].as_u64().unwrap_or(0) as usize;
        if n == 0 || out.len() >= total {
            break;
        }
        start += n;
    }
    out
}

pub fn by_ext<'a>(list: &'a [Value], ext: &str) -> &'a Value {
    list.iter()
        .find(|u| u["externalId"] == ext)
        .unwrap_or_else(|| panic!("{ext} not on the server"))
}

/// The in-scope persons of `fixtures/oneroster-1.2`.
/// stu-1003 (Zoë) arrived with her accommodations and school in the
/// extension `ext`; her record, for what else a peer keeps.
pub fn assert_zoe_extension<'a>(users: &'a [Value], ext: &str) -> &'a Value {
    let zoe = by_ext(users, "stu-1003");
    assert_eq!(zoe[ext]["extraTimePercent"], 25);
    assert_eq!(zoe[ext]["fontScale"], 1.5);
    assert_eq!(zoe[ext]["screenReader"], false);
    assert_eq!(zoe[ext]["org"], "99AA00");
    zoe
}

pub fn expected_users() -> Vec<String> {
    let mut v: Vec<String> = (1001..=1036).map(|n| format!("stu-{n}")).collect();
    v.extend((2001..=2005).map(|n| format!("tch-{n}")));
    v.push("prc-3001".into());
    v.sort();
    v
}

fn csv_rows(export: &Path, file: &str) -> Vec<BTreeMap<String, String>> {
    let mut r = csv::Reader::from_path(export.join(file)).unwrap();
    let head: Vec<String> = r
        .headers()
        .unwrap()
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_string())
        .collect();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            head.iter()
                .cloned()
                .zip(rec.iter().map(str::to_string))
                .collect()
        })
        .collect()
}

/// Checks that the server holds the whole fixture roster exactly once:
/// every in-scope user with given, middle and family name, role, org and
/// accommodations in extension `ext`, and every class with its members;
/// except the persons in `absent`, which the platform refused.
pub fn assert_roster_complete(
    export: &Path,
    users: &[Value],
    groups: &[Value],
    ext: &str,
    absent: &[&str],
) {
    let mut ext_ids: Vec<&str> = users
        .iter()
        .map(|u| u["externalId"].as_str().unwrap_or("(none)"))
        .collect();
    ext_ids.sort();
    let mut expected = expected_users();
    expected.retain(|id| !absent.contains(&id.as_str()));
    assert_eq!(ext_ids, expected, "exactly the in-scope persons, once each");

    for row in csv_rows(export, "users.csv") {
        let id = &row["sourcedId"];
        if !expected.contains(id) {
            continue;
        }
        let u = by_ext(users, id);
        assert_eq!(u["name"]["givenName"], row["givenName"].as_str(), "{id}");
        assert_eq!(u["name"]["familyName"], row["familyName"].as_str(), "{id}");
        let middle = u["name"]["middleName"].as_str().unwrap_or("");
        assert_eq!(middle, row["middleName"], "{id}: name.middleName");
        assert_eq!(u["active"], true, "{id}");
        let x = &u[ext];
        let role = match &id[..3] {
            "stu" => "student",
            "tch" => "teacher",
            _ => "proctor",
        };
        assert_eq!(x["role"], role, "{id}: {ext}.role in {u}");
        let org = row["primaryOrgSourcedId"].trim_start_matches("org-");
        if !org.is_empty() {
            assert_eq!(x["org"], org, "{id}: {ext}.org");
        }
        if let Ok(n) = row["metadata.extraTimePercent"].parse::<i64>() {
            assert_eq!(x["extraTimePercent"].as_i64(), Some(n), "{id}: {u}");
        }
        if let Ok(f) = row["metadata.fontScale"].parse::<f64>() {
            assert_eq!(x["fontScale"].as_f64(), Some(f), "{id}: {u}");
        }
        if let Ok(b) = row["metadata.screenReader"].parse::<bool>() {
            assert_eq!(x["screenReader"].as_bool(), Some(b), "{id}: {u}");
        }
        assert!(u.get("emails").is_none(), "e-mail is opt-in");
    }

    // members: platform ids of the in-scope persons enrolled in each class
    let platform_id: BTreeMap<&str, &str> = users
        .iter()
        .map(|u| (u["externalId"].as_str().unwrap(), u["id"].as_str().unwrap()))
        .collect();
    let mut want: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in csv_rows(export, "enrollments.csv") {
        if let Some(pid) = platform_id.get(row["userSourcedId"].as_str()) {
            want.entry(row["classSourcedId"].clone())
                .or_default()
                .insert(pid.to_string());
        }
    }
    let mut got: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for g in groups {
        let class = g["externalId"].as_str().unwrap_or("(none)").to_string();
        let members: Vec<String> = g["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|m| m["value"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        let set: BTreeSet<String> = members.iter().cloned().collect();
        assert_eq!(set.len(), members.len(), "{class}: a member twice");
        assert!(got.insert(class.clone(), set).is_none(), "{class} twice");
    }
    assert_eq!(got.len(), 6);
    assert_eq!(got, want, "every class with exactly its members");
    if absent.is_empty() {
        assert_eq!(got.values().map(BTreeSet::len).sum::<usize>(), 80);
    }
}

/// Deletes the state database, as an admin who lost it.
pub fn lose_state(dir: &Path) {
    for f in ["state.db", "state.db-wal", "state.db-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
}
