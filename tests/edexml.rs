//! Source `edexml`: the fixtures against the official XSD, bad records
//! and unsafe documents. That it reads a school as every other source
//! does is `tests/conformance.rs`.

mod common;

use std::path::{Path, PathBuf};

use common::fake_las_roster::*;
use common::*;
use sisync::config::Loaded;
use sisync::sync::{self, Quiet, RosterOptions};

fn edexml_fixture(name: &str) -> PathBuf {
    repo().join("fixtures/edexml-2.1").join(name)
}

/// A csv-drop config with any `[source]` body.
fn drop_config(dir: &Path, source: &str) -> Loaded {
    TestConfig::new(dir)
        .source(Source::Toml(source.into()))
        .extra("[privacy]\nfields = [\"name\", \"email\", \"role\", \"org\", \"groups\"]\n")
        .load()
}

fn edexml_source(path: &Path) -> String {
    format!("kind = \"edexml\"\npath = \"{}\"\n", path.display())
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
    assert_any_has(&issues, "record L1009: groep G9Z is not in the groepen");
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
        let line = common::sync_error(&cfg, RosterOptions::default()).await;
        assert!(line.contains(want), "{want}: {line}");
        assert!(line.contains(&file.display().to_string()), "{line}");
        assert!(!dir.path().join("drop").exists(), "nothing written");
    }
}
