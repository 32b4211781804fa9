//! Freeze windows: `adds-only` lets creates and additions through and
//! defers what takes something away until after the window; `paused`
//! writes nothing.

mod common;

use common::fake_scim::{FakeScim, TOKEN};
use common::*;
use sisync::config::Loaded;
use sisync::store::Store;
use sisync::sync::RosterOptions;

/// The export after the first sync: stu-1099 joins (in cls-ne-h3a),
/// stu-1014 leaves, stu-1003 loses their accommodations.
fn changes(export: &std::path::Path) {
    let users = std::fs::read_to_string(export.join("users.csv")).unwrap();
    let newcomer = users
        .lines()
        .find(|l| l.starts_with("stu-1001,"))
        .unwrap()
        .replace("stu-1001", "stu-1099");
    edit(export, "users.csv", |l| {
        if l.starts_with("stu-1014,") {
            None
        } else if l.starts_with("stu-1003,") {
            Some(l.rsplitn(4, ',').last().unwrap().to_string() + ",,,")
        } else if l.starts_with("stu-1036,") {
            Some(format!("{l}\n{newcomer}"))
        } else {
            Some(l.to_string())
        }
    });
    edit(export, "roles.csv", |l| {
        if l.starts_with("rol-stu-1001,") {
            Some(format!("{l}\n{}", l.replace("stu-1001", "stu-1099")))
        } else {
            Some(l.to_string())
        }
    });
    let enr = std::fs::read_to_string(export.join("enrollments.csv")).unwrap();
    let join = enr
        .lines()
        .find(|l| l.contains(",cls-ne-h3a,") && l.contains(",stu-1001,"))
        .unwrap()
        .replace("stu-1001", "stu-1099");
    edit(export, "enrollments.csv", |l| {
        if l.contains(",stu-1014,") {
            None
        } else if l.contains(",cls-ne-h3a,") && l.contains(",stu-1001,") {
            Some(format!("{l}\n{join}"))
        } else {
            Some(l.to_string())
        }
    });
}

fn config(
    dir: &std::path::Path,
    export: &std::path::Path,
    server: &FakeScim,
    extra: &str,
) -> Loaded {
    scim_config(dir, export, &server.base, TOKEN, extra)
}

fn members(server: &FakeScim, group: &str) -> Vec<String> {
    let g = server
        .groups()
        .into_iter()
        .find(|g| g["externalId"] == group)
        .unwrap();
    let ids = server.external_ids();
    g["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|x| ids.get(x["value"].as_str().unwrap()).cloned())
                .collect()
        })
        .unwrap_or_default()
}

fn groups_of(server: &FakeScim, user: &str) -> usize {
    server
        .groups()
        .iter()
        .filter(|g| members(server, g["externalId"].as_str().unwrap()).contains(&user.to_string()))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adds_only_creates_and_adds_but_defers_removals_until_after_the_window() {
    let (server, dir, export, cfg) = scim_bed("").await;
    sync(&cfg, RosterOptions::default()).await;
    let classes_1014 = groups_of(&server, "stu-1014");
    assert!(classes_1014 > 0);
    let acc = |s: &FakeScim| s.user_by_external_id("stu-1003").unwrap().to_string();
    assert!(acc(&server).contains("extraTimePercent"));
    changes(&export);

    // in the window
    let cfg = config(dir.path(), &export, &server, &freeze_window("adds-only"));
    server.clear_requests();
    let r = sync(&cfg, RosterOptions::default()).await;
    assert!(r.refused.is_none(), "{:?}", r.refused);
    let o = r.outcome.clone().unwrap();
    assert_eq!(
        (o.users.created, o.users.deactivated, o.failed()),
        (1, 0, 0)
    );
    let d = r.deferred.clone().unwrap();
    assert_eq!(d.users_deactivated, 1);
    assert_eq!(d.accommodations_reduced, 1);
    assert_eq!(d.memberships_removed, classes_1014);
    assert!(server.user_by_external_id("stu-1099").is_some(), "created");
    assert_eq!(
        server.user_by_external_id("stu-1014").unwrap()["active"],
        true
    );
    assert_eq!(
        groups_of(&server, "stu-1014"),
        classes_1014,
        "still in their classes"
    );
    assert!(
        members(&server, "cls-ne-h3a").contains(&"stu-1099".to_string()),
        "addition went through"
    );
    assert!(acc(&server).contains("extraTimePercent"), "extra time kept");
    let store = Store::open(&cfg.config.state.path).unwrap();
    let run = store.recent_runs(1).unwrap().remove(0);
    assert_eq!(run.outcome, "deferred");
    assert!(run.error.unwrap().contains("freeze window (adds-only"));
    drop(store);
    let (code, out, _) = cli(&cfg.file, &["status"]);
    assert_eq!(code, 0);
    assert_has(&out, &["FREEZE   adds-only", "centrale examens"]);
    // the next run in the window defers the same, and sends nothing
    server.clear_requests();
    let r = sync(&cfg, RosterOptions::default()).await;
    assert_eq!(server.writes().len(), 0, "{:?}", server.writes());
    assert_eq!(r.deferred.unwrap().users_deactivated, 1);

    // after the window: everything deferred goes out
    let cfg = config(dir.path(), &export, &server, "");
    let r = sync(&cfg, RosterOptions::default()).await;
    assert!(r.refused.is_none(), "{:?}", r.refused);
    assert!(r.deferred.is_none());
    assert_eq!(r.outcome.unwrap().users.deactivated, 1);
    assert_eq!(
        server.user_by_external_id("stu-1014").unwrap()["active"],
        false
    );
    assert_eq!(groups_of(&server, "stu-1014"), 0);
    assert!(!acc(&server).contains("extraTimePercent"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_writes_nothing() {
    let (server, dir, export, cfg) = scim_bed("").await;
    sync(&cfg, RosterOptions::default()).await;
    changes(&export);
    let cfg = config(dir.path(), &export, &server, &freeze_window("paused"));
    server.clear_requests();
    let r = sync(&cfg, RosterOptions::default()).await;
    assert_eq!(server.writes().len(), 0);
    let d = r.deferred.unwrap();
    assert_eq!(d.mode, "paused");
    assert!(d.other >= 2, "{d:?}"); // the create and the class addition
    assert!(server.user_by_external_id("stu-1099").is_none());
    let (code, _, err) = cli(&cfg.file, &["check-config"]);
    assert_eq!(code, 0, "{err}");
}

fn cli(cfg: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    parts(
        sisync_cmd(cfg)
            .args(args)
            .env_remove("SISYNC_TODAY")
            .output()
            .unwrap(),
    )
}
