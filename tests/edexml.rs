//! Source `edexml` and the conformance kit of the Dutch channels: the
//! same school as an EDEXML 2.1 file, as a UWLR 2.2 answer from the fake
//! LAS and as a OneRoster 1.2 CSV export gives the same canonical roster
//! and the same csv-drop output.

mod common;

use std::path::{Path, PathBuf};

use common::fake_las_roster::*;
use common::*;
use sisync::config::Loaded;
use sisync::model::Roster;
use sisync::sync::{self, Quiet, RosterOptions};

fn edexml_fixture(name: &str) -> PathBuf {
    repo().join("fixtures/edexml-2.1").join(name)
}

/// A csv-drop config with any `[source]` body.
fn drop_config(dir: &Path, source: &str) -> Loaded {
    let text = format!(
        "[institution]\nname = \"T\"\nbrin = \"99AA\"\n[state]\npath = \"state.db\"\n[source]\n{source}\n[platform]\nkind = \"csv-drop\"\npath = \"drop\"\n[privacy]\nfields = [\"name\", \"email\", \"role\", \"org\", \"groups\"]\n"
    );
    let f = dir.join("sisync.toml");
    std::fs::write(&f, text).unwrap();
    Loaded::from_file(&f).unwrap()
}

fn edexml_source(path: &Path) -> String {
    format!("kind = \"edexml\"\npath = \"{}\"\n", path.display())
}

/// The roster's records in a fixed order, for comparison.
fn canonical(mut r: Roster) -> String {
    r.persons.sort_by(|a, b| a.sourced_id.cmp(&b.sourced_id));
    r.groups.sort_by(|a, b| a.sourced_id.cmp(&b.sourced_id));
    r.orgs.sort_by(|a, b| a.sourced_id.cmp(&b.sourced_id));
    let mut m: Vec<String> = r.memberships.iter().map(|m| format!("{m:?}")).collect();
    m.sort();
    format!(
        "{:#?}\n{:#?}\n{:#?}\n{}",
        r.orgs,
        r.persons,
        r.groups,
        m.join("\n")
    )
}

/// Every file the csv-drop platform wrote, by name, after one run.
fn dropped(dir: &Path) -> Vec<(String, String)> {
    let drop = dir.join("drop");
    let runs: Vec<_> = std::fs::read_dir(&drop)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    assert_eq!(runs.len(), 1);
    let mut files: Vec<(String, String)> = std::fs::read_dir(runs[0].path())
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().to_string(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn the_edexml_fixtures_validate_against_the_official_xsd() {
    let xsd = repo().join("fixtures/specs/edexml-2.1/EDEXML.structuur.2.1.xsd");
    let docs: Vec<(String, Vec<u8>)> = ["99AA00.xml", "99BB00.xml"]
        .iter()
        .map(|n| (n.to_string(), std::fs::read(edexml_fixture(n)).unwrap()))
        .collect();
    xsd_validate(&xsd, &docs);
    // and the validator does refuse a broken one
    let broken = String::from_utf8(docs[0].1.clone())
        .unwrap()
        .replace("<groep key=\"G7A\"/>", "<groep key=\"G9Z\"/>");
    let r =
        std::panic::catch_unwind(|| xsd_validate(&xsd, &[("broken".into(), broken.into_bytes())]));
    assert!(
        r.is_err(),
        "a reference to an unknown groep fails the XSD keyref"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uwlr_edexml_and_oneroster_give_the_same_roster_and_platform_state() {
    // EDEXML
    let d_edex = tempfile::tempdir().unwrap();
    let edex = drop_config(d_edex.path(), &edexml_source(&edexml_fixture("99AA00.xml")));
    // OneRoster 1.2 CSV of the same school
    let d_or = tempfile::tempdir().unwrap();
    let or = drop_config(
        d_or.path(),
        &format!(
            "kind = \"oneroster-csv\"\npath = \"{}\"\n",
            repo().join("fixtures/oneroster-edex-99AA00").display()
        ),
    );
    // UWLR from the fake LAS, school 99AA00 only
    let las = FakeLas::start(fixture_schools()).await;
    let d_uwlr = tempfile::tempdir().unwrap();
    std::fs::write(d_uwlr.path().join("key"), "sleutel-aa").unwrap();
    let uwlr = drop_config(
        d_uwlr.path(),
        &format!(
            "kind = \"uwlr\"\nurl = \"{}\"\nklantcode = \"K\"\nklantnaam = \"N\"\nschooljaar = \"{YEAR}\"\nmax_retries = 0\n[[source.schools]]\nbrincode = \"99AA\"\nkey = \"file:key\"\n",
            las.url
        ),
    );

    let read = |l: &Loaded| {
        let l = l.clone();
        tokio::task::block_in_place(move || sync::read_source(&l, &Quiet, None)).unwrap()
    };
    let (a, b, c) = (read(&edex), read(&or), read(&uwlr));
    for r in [&a, &b, &c] {
        assert!(r.issues.is_empty(), "{}: {:?}", r.format, r.issues);
        assert_eq!(r.persons.len(), 14, "{}", r.format);
        assert_eq!(r.groups.len(), 5, "{}", r.format);
    }
    let (a, b, c) = (canonical(a), canonical(b), canonical(c));
    assert_eq!(a, b, "EDEXML and OneRoster CSV");
    assert_eq!(a, c, "EDEXML and UWLR");

    for l in [&edex, &or, &uwlr] {
        let r = sync::roster(l, RosterOptions::default(), "user:test", &Quiet)
            .await
            .unwrap();
        assert_eq!(r.outcome.as_ref().unwrap().failed(), 0);
    }
    let (x, y, z) = (
        dropped(d_edex.path()),
        dropped(d_or.path()),
        dropped(d_uwlr.path()),
    );
    assert!(!x.is_empty());
    assert_eq!(x, y, "csv-drop output: EDEXML and OneRoster CSV");
    assert_eq!(x, z, "csv-drop output: EDEXML and UWLR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_record_is_reported_and_held_never_deactivated() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.xml");
    let good = std::fs::read_to_string(edexml_fixture("99AA00.xml")).unwrap();
    std::fs::write(&file, &good).unwrap();
    let cfg = drop_config(dir.path(), &edexml_source(&file));
    let r = sync::roster(&cfg, RosterOptions::default(), "user:test", &Quiet)
        .await
        .unwrap();
    assert_eq!(r.plan.users.len(), 14);

    // L1002 loses its achternaam, L1009 points at an unknown groep
    let bad = good.replace("<achternaam>Berg</achternaam>", "").replace(
        "<groep key=\"G8A\"/><vestiging key=\"V1\"/><gebruikersnaam>l1009",
        "<groep key=\"G9Z\"/><vestiging key=\"V1\"/><gebruikersnaam>l1009",
    );
    std::fs::write(&file, &bad).unwrap();
    let r = sync::roster(&cfg, RosterOptions::default(), "user:test", &Quiet)
        .await
        .unwrap();
    let issues: Vec<String> = r.issues.iter().map(|i| i.to_string()).collect();
    assert_eq!(issues.len(), 2, "{issues:?}");
    let shown = file.display().to_string();
    assert!(
        issues.iter().any(|i| i.starts_with(&format!(
            "{shown}:19: record L1002: leerling without achternaam"
        ))),
        "{issues:?}"
    );
    assert!(
        issues
            .iter()
            .any(|i| i.contains("record L1009: groep G9Z is not in the groepen")),
        "{issues:?}"
    );
    assert_eq!(r.plan.held_users, 1);
    assert!(
        r.plan
            .users
            .iter()
            .all(|u| format!("{u:?}").contains("L1009") || !format!("{u:?}").contains("L1002")),
        "L1002 is held, not deactivated: {:?}",
        r.plan.users
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_or_empty_documents_fail_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.xml");
    let cfg = drop_config(dir.path(), &edexml_source(&file));
    let cases = [
        (
            "<?xml version=\"1.0\"?>\n<!DOCTYPE EDEX [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">]>\n<EDEX>&b;</EDEX>\n",
            "DOCTYPE",
        ),
        (
            "<?xml version=\"1.0\"?>\n<EDEX><school><schooljaar>2024-2025</schooljaar><brincode>99AA</brincode></school><leerlingen><leerling key=\"x\"><achternaam>&xxe;</achternaam></leerling></leerlingen></EDEX>\n",
            "never expands entities",
        ),
        (
            "<?xml version=\"1.0\"?>\n<EDEX><school><schooljaar>2024-2025</schooljaar><brincode>99AA</brincode></school><leerlingen>",
            "cut off",
        ),
        (
            "<?xml version=\"1.0\"?>\n<EDEX><school><schooljaar>2024-2025</schooljaar><brincode>99AA</brincode></school></EDEX>\n",
            "holds no leerling",
        ),
        (
            "<?xml version=\"1.0\"?>\n<enterprise/>\n",
            "no <school> block",
        ),
    ];
    for (doc, want) in cases {
        std::fs::write(&file, doc).unwrap();
        let e = sync::roster(&cfg, RosterOptions::default(), "user:test", &Quiet)
            .await
            .unwrap_err();
        let line = format!("{e:#}");
        assert!(line.contains(want), "{want}: {line}");
        assert!(line.contains(&file.display().to_string()), "{line}");
        assert!(!dir.path().join("drop").exists(), "nothing written");
    }
}
