//! Defects found while testing the exam-grade safety work (issue 12):
//! audit `fields` list only what was sent, an erased person leaves no new
//! pseudonym mapping, a killed run does not stay `running` forever.

mod common;

use common::fake_scim::{FakeScim, TOKEN};
use common::*;
use sisync::store::Store;
use sisync::sync::RosterOptions;

const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_fields_list_only_attributes_that_were_sent() {
    let (server, _dir, _, cfg) =
        scim_bed("\n[privacy]\nfields = [\"name\", \"role\", \"groups\"]\n").await;
    sync(&cfg, RosterOptions::default()).await;
    let bodies: String = server.writes().iter().map(|r| r.body.clone()).collect();
    assert!(!bodies.contains("emails") && !bodies.contains("extraTimePercent"));
    let store = Store::open(&cfg.config.state.path).unwrap();
    let creates: Vec<_> = audit_of(&store, "user.create");
    assert_eq!(creates.len(), 42);
    for a in &creates {
        let fields: Vec<&str> = a.fields.split(',').collect();
        for never in ["email", "accommodations", "org", "bsn"] {
            assert!(
                !fields.contains(&never),
                "{}: {}",
                a.record_id.as_deref().unwrap_or(""),
                a.fields
            );
        }
        assert!(fields.contains(&"userName") && fields.contains(&"active"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erased_person_gets_no_new_pseudonym_mapping() {
    let server = FakeScim::start(true).await;
    let dir = tempfile::tempdir().unwrap();
    let export = copy_fixture("oneroster-1.2", dir.path());
    std::fs::write(dir.path().join("pseudonym.key"), KEY).unwrap();
    let cfg = scim_config(
        dir.path(),
        &export,
        &server.base,
        TOKEN,
        "\n[privacy]\npseudonymize_ids = true\npseudonym_key_file = \"pseudonym.key\"\nfields = [\"name\", \"role\", \"groups\"]\n",
    );
    sync(&cfg, RosterOptions::default()).await;
    let (code, out, err) = cli(&cfg.file, &["privacy", "erase", "--person", "stu-1002"]);
    assert_eq!(code, 0, "{out}{err}");
    // stu-1002 is still in the SIS export
    let r = sync(&cfg, RosterOptions::default()).await;
    assert!(r.refused.is_none());
    let conn = rusqlite::Connection::open(&cfg.config.state.path).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM pseudonyms WHERE sourced_id = 'stu-1002'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0, "the erased person's SIS id is back in pseudonyms");
    let others: i64 = conn
        .query_row("SELECT COUNT(*) FROM pseudonyms", [], |r| r.get(0))
        .unwrap();
    assert!(others > 0, "the others keep their mapping");
    drop(conn);
    assert_state_lacks(
        &cfg.config.state.path,
        "stu-1002",
        "holds the erased id again",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_killed_with_sigkill_is_marked_interrupted_by_the_next_run() {
    let (_, _dir, _, cfg) = scim_bed("").await;
    // what a process killed with SIGKILL leaves: a run row still
    // `running`, and no lock holder
    let killed = Store::open(&cfg.config.state.path)
        .unwrap()
        .begin_run("roster", "user:killed", true)
        .unwrap();
    sync(&cfg, RosterOptions::default()).await;
    let store = Store::open(&cfg.config.state.path).unwrap();
    let runs = store.recent_runs(5).unwrap();
    let old = runs.iter().find(|r| r.id == killed).unwrap();
    assert_eq!(old.outcome, "interrupted");
    assert!(old.finished_at.is_some());
    assert!(
        old.error
            .as_deref()
            .unwrap()
            .contains("ended before it finished")
    );
    assert_eq!(runs[0].outcome, "ok");
    let (code, out, _) = cli(&cfg.file, &["status"]);
    assert_eq!(code, 0);
    assert!(out.contains("interrupted"), "{out}");
}
