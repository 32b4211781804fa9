//! The edexml-drop platform end to end through the CLI: each run with
//! changes delivers a folder with an EDEXML 2.1 file of the whole roster
//! that `xmllint --schema` accepts against the official EDEXML 2.1 XSD
//! (fixtures/specs/edexml-2.1), with only the fields the privacy policy
//! allows, written atomically and privately; a quiet run writes nothing;
//! an erasure reaches the kept files.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn sisync(config: &Path, args: &[&str]) -> Output {
    sisync_cmd(config)
        .args(args)
        // the official type list of EDEXML 2.1 ends with 2024-2025
        .env("SISYNC_TODAY", "2025-03-01")
        .output()
        .unwrap()
}

/// [`sisync`] (at a date EDEXML 2.1 knows), which must exit 0.
#[track_caller]
fn sisync_ok(config: &Path, args: &[&str]) -> Output {
    exited_0(sisync(config, args), args)
}

fn setup(dir: &Path, platform: &str, privacy: &str) -> (PathBuf, PathBuf) {
    let export = copy_fixture("oneroster-1.2", dir);
    let cfg = TestConfig::new(dir)
        .state(Some("state/sisync.db"))
        .source(Source::OneRosterCsv(export.clone()))
        .platform(Platform::Toml(format!(
            "kind = \"edexml-drop\"\npath = \"drop\"\n{platform}\n"
        )))
        .extra(&format!("[privacy]\n{privacy}\n"))
        .write();
    (cfg, export)
}

/// Delivered folders, oldest first.
fn deliveries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("drop"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// `xmllint --noout --schema` against the official EDEXML 2.1 XSD.
fn validate(file: &Path) {
    let xsd = repo().join("fixtures/specs/edexml-2.1/EDEXML.structuur.2.1.xsd");
    let o = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(file)
        .output()
        .expect("xmllint (Debian libxml2-utils) is installed by .ci/run");
    assert!(
        o.status.success(),
        "{} does not validate against EDEXML 2.1:\n{}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The fields a complete EDEXML file needs.
const FIELDS: &str = r#"fields = ["name", "role", "groups"]"#;

/// A temporary directory with `setup`'s config (`FIELDS`), synced once:
/// (the directory, the config, the export).
fn synced() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, export) = setup(dir.path(), "", FIELDS);
    sisync_ok(&cfg, &["sync", "roster"]);
    (dir, cfg, export)
}

/// A delivery folder and its `edexml.xml` have these modes (on unix).
fn assert_modes(folder: &Path, folder_mode: u32, file_mode: u32) {
    #[cfg(unix)]
    {
        assert_eq!(mode(folder), folder_mode);
        assert_eq!(mode(&folder.join("edexml.xml")), file_mode);
    }
}

#[test]
fn the_validator_is_real() {
    // a file that breaks a keyref must fail, or the test above proves nothing
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.xml");
    std::fs::write(
        &bad,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<EDEX><school><schooljaar>2024-2025</schooljaar><brincode>99AA</brincode></school>
<leerlingen><leerling key="s1"><achternaam>X</achternaam><samengestelde_groepen><samengestelde_groep key="nope"/></samengestelde_groepen></leerling></leerlingen></EDEX>
"#,
    )
    .unwrap();
    let xsd = repo().join("fixtures/specs/edexml-2.1/EDEXML.structuur.2.1.xsd");
    let o = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("keyref"));
}

#[test]
fn each_run_with_changes_delivers_a_valid_edexml_file_and_a_quiet_run_none() {
    let (dir, cfg, export) = synced();
    let d = dir.path();
    let first = deliveries(d);
    assert_eq!(first.len(), 1, "one folder, no temporary left: {first:?}");
    let file = first[0].join("edexml.xml");
    validate(&file);
    assert_modes(&first[0], 0o700, 0o600);
    let xml = std::fs::read_to_string(&file).unwrap();
    assert!(xml.contains("<schooljaar>2024-2025</schooljaar><brincode>99AA</brincode>"));
    assert!(xml.contains(r#"<leerling key="stu-1001"><achternaam>Vries</achternaam><voorvoegsel>de</voorvoegsel><roepnaam>Jesse</roepnaam><samengestelde_groepen>"#), "{xml}");
    assert!(xml.contains(r#"<leerkracht key="tch-2001">"#));
    // proctors and other staff are no candidates
    assert!(!xml.contains(r#"<leerling key="prc-3001">"#));
    assert_has(&xml, &["<rolomschrijving>proctor</rolomschrijving>"]);
    assert!(xml.contains(r#"<samengestelde_groep key="cls-ne-h3a"><naam>Nederlands H3A</naam>"#));
    // only allowed fields: no e-mail, no org, no ECK iD, no accommodations
    for never in [
        "@leerling.voorbeeld.nl",
        "emailadres",
        "vestiging",
        "ketenid",
        "eckid",
    ] {
        assert!(!xml.contains(never), "{never} in the file");
    }

    // nothing changed: nothing delivered
    sisync_ok(&cfg, &["sync", "roster"]);
    assert_eq!(deliveries(d), first);

    // a changed name: a new complete file, the old one untouched
    let before = std::fs::read(&file).unwrap();
    edit(&export, "users.csv", |l| {
        Some(l.replace(",Jesse,Vries,", ",Jesse,Vries-Bakker,"))
    });
    sisync_ok(&cfg, &["sync", "roster"]);
    let second = deliveries(d);
    assert_eq!(second.len(), 2, "{second:?}");
    assert_eq!(std::fs::read(&file).unwrap(), before);
    let file2 = second[1].join("edexml.xml");
    validate(&file2);
    let xml2 = std::fs::read_to_string(&file2).unwrap();
    assert!(xml2.contains("<achternaam>Vries-Bakker</achternaam>"));
    assert!(
        xml2.contains(r#"<leerling key="stu-1002">"#),
        "the whole roster, not only the change"
    );
    assert!(!second[1].join("deactivated.csv").exists());

    // a student who left: out of the file, named in deactivated.csv
    edit(&export, "users.csv", |l| {
        (!l.starts_with("stu-1002,")).then(|| l.to_string())
    });
    sisync_ok(&cfg, &["sync", "roster"]);
    let third = deliveries(d);
    assert_eq!(third.len(), 3, "{third:?}");
    let file3 = third[2].join("edexml.xml");
    validate(&file3);
    assert!(
        !std::fs::read_to_string(&file3)
            .unwrap()
            .contains("stu-1002")
    );
    assert_eq!(
        std::fs::read_to_string(third[2].join("deactivated.csv")).unwrap(),
        "externalId,active\nstu-1002,false\n"
    );

    // the audit log names the file each record went to
    let o = sisync(&cfg, &["audit", "list", "--person", "stu-1002"]);
    let out = text(&o);
    assert_has(&out, &["edexml.xml", "deactivated.csv"]);

    // an erasure removes them from every kept file; the files stay valid
    let o = sisync_ok(&cfg, &["privacy", "erase", "--person", "stu-1001", "--yes"]);
    let out = text(&o);
    assert!(out.contains("edexml.xml"), "{out}");
    for f in [&file, &file2, &file3] {
        let x = std::fs::read_to_string(f).unwrap();
        assert!(!x.contains("stu-1001"), "{}", f.display());
        validate(f);
    }
}

#[test]
fn allowed_fields_are_written_and_group_readable_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cfg, _) = setup(
        d,
        "group_readable = true\ndependancecode = \"00\"",
        r#"fields = ["name", "email", "role", "org", "groups"]"#,
    );
    sisync_ok(&cfg, &["sync", "roster"]);
    let got = deliveries(d);
    let file = got[0].join("edexml.xml");
    validate(&file);
    assert_modes(&got[0], 0o750, 0o640);
    let xml = std::fs::read_to_string(&file).unwrap();
    assert!(xml.contains("<brincode>99AA</brincode><dependancecode>00</dependancecode>"));
    assert_has(
        &xml,
        &["<emailadres>1001@leerling.voorbeeld.nl</emailadres>"],
    );
    assert!(
        xml.contains(r#"<vestiging key="99AA00"><naam>99AA00</naam></vestiging>"#),
        "{xml}"
    );
}

#[test]
fn config_refuses_what_edexml_cannot_carry() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cfg, _) = setup(d, "", r#"fields = ["name", "groups"]"#);
    let o = sisync(&cfg, &["check-config"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("needs \"role\""), "{}", text(&o));
    let (cfg, _) = setup(d, "", r#"fields = ["role", "groups"]"#);
    let o = sisync(&cfg, &["check-config"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("needs \"name\""), "{}", text(&o));
    let (cfg, _) = setup(d, "brincode = \"99aa\"", r#"fields = ["name", "role"]"#);
    let o = sisync(&cfg, &["check-config"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("platform.brincode"), "{}", text(&o));
}

#[test]
fn a_value_edexml_cannot_carry_holds_that_record_and_delivers_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cfg, export) = setup(d, "", FIELDS);
    // a tussenvoegsel over the 10 characters EDEXML allows
    edit(&export, "users.csv", |l| {
        Some(l.replace(",Zoë,Berg,van der,", ",Zoë,Berg,van der den x,"))
    });
    let o = sisync(&cfg, &["sync", "roster"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert_has(
        &out,
        &[
            "stu-1003",
            "the tussenvoegsel is longer than the 10 characters",
        ],
    );
    assert!(
        !out.contains("van der den x"),
        "no value in the failure line: {out}"
    );
    let got = deliveries(d);
    assert_eq!(got.len(), 1);
    let file = got[0].join("edexml.xml");
    validate(&file);
    let xml = std::fs::read_to_string(&file).unwrap();
    assert!(!xml.contains("stu-1003"));
    assert!(xml.contains(r#"<leerling key="stu-1001">"#));
    // fixed in the SIS: the next run delivers them
    edit(&export, "users.csv", |l| {
        Some(l.replace(",Zoë,Berg,van der den x,", ",Zoë,Berg,van der,"))
    });
    sisync_ok(&cfg, &["sync", "roster"]);
    let got = deliveries(d);
    assert_eq!(got.len(), 2);
    let xml = std::fs::read_to_string(got[1].join("edexml.xml")).unwrap();
    assert!(xml.contains(r#"<leerling key="stu-1003"><achternaam>Berg</achternaam><voorvoegsel>van der</voorvoegsel>"#), "{xml}");
}

#[test]
fn a_held_plan_cannot_write_a_complete_file_and_says_what_to_do() {
    let (dir, cfg, export) = synced();
    let d = dir.path();
    // ten students leave at once: above the gate, the plan is held
    edit(&export, "users.csv", |l| {
        let gone = (1001..=1010).any(|n| l.starts_with(&format!("stu-{n},")));
        (!gone).then(|| l.to_string())
    });
    let o = sisync(&cfg, &["sync", "roster"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let out = text(&o);
    let id = out
        .split("sisync plan approve ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap_or_else(|| panic!("no held plan id in: {out}"))
        .to_string();
    let o = sisync(&cfg, &["plan", "approve", &id]);
    let out = text(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert_has(
        &out,
        &["a held plan carries only changes", "--allow-mass-changes"],
    );
    assert_eq!(deliveries(d).len(), 1, "nothing delivered");
    // the way out it names works
    sisync_ok(&cfg, &["sync", "roster", "--allow-mass-changes"]);
    let got = deliveries(d);
    assert_eq!(got.len(), 2);
    validate(&got[1].join("edexml.xml"));
    let gone = std::fs::read_to_string(got[1].join("deactivated.csv")).unwrap();
    assert_eq!(gone.lines().count(), 11, "{gone}");
}
