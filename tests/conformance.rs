//! The connector conformance kit: one logical school
//! (`common::school::school`) rendered into every roster format sisync
//! reads, read by each source through the library, must give the same
//! canonical `Roster`, and syncing it into csv-drop the same files.
//!
//! Each format gets the school as far as it can carry it; what it cannot
//! carry is listed in [`carried`] and taken out of the expected roster
//! there, nowhere else. Every rendering is checked the way the format's
//! own tests check theirs: EDEXML and the UWLR envelopes with xmllint
//! against the XSDs in `fixtures/specs`, the OKE exchanges with
//! openapi-core against the OKE 1.0.1 OpenAPI document.

mod common;

use std::path::{Path, PathBuf};

use common::fake_las_roster::{
    FakeLas, LasSchool, YEAR, fixture_schools, validate_exchanges, xsd_validate,
};
use common::fake_oke::{self, FakeOke};
use common::fake_scim::{FakeScim, TOKEN};
use common::school::{self, SCHOOL, SCHOOLJAAR};
use common::*;
use sisync::config::Loaded;
use sisync::model::{Accommodations, Person, PersonalNeed, Role, Roster, Status};
use sisync::sync::{self, Quiet, RosterOptions};

/// The roster formats sisync reads.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Format {
    OneRosterCsv,
    OneRosterRest,
    ImsEnterprise,
    Edexml,
    Uwlr,
    Oke,
}

/// The logical school as `format` carries it: the one place that lists
/// what a format cannot hold.
fn carried(format: Format) -> Roster {
    let mut r = school::school();
    use Format::*;
    match format {
        // OneRoster (CSV and REST) and IMS Enterprise carry every field
        OneRosterCsv | OneRosterRest | ImsEnterprise => {}
        Edexml | Uwlr => {
            // no leavers (a leerling who left is absent from the export),
            // no student or employee number, no exam accommodations
            drop_leavers(&mut r);
            for p in &mut r.persons {
                p.identifier = None;
                p.accommodations = Accommodations::default();
            }
        }
        Oke => {
            // OKE flow 1 delivers the persons registered for a sitting
            // (the leaver is not), no orgs and no BSN; its one person code
            // (`primaryCode`) is username and identifier; teachers are
            // staff at a sitting; accommodations are personal needs; the
            // classes come with `class_context`, without school, and
            // always with a code (a class without one gives its id)
            drop_leavers(&mut r);
            r.orgs.clear();
            for p in &mut r.persons {
                p.identifier = p.username.clone();
                p.bsn = None;
                p.orgs.clear();
                if p.role == Some(Role::Teacher) {
                    p.role = Some(Role::Staff);
                }
                let needs = school::oke_need_codes(&p.accommodations);
                p.accommodations = Accommodations {
                    personal_needs: needs.into_iter().map(need).collect(),
                    ..Accommodations::default()
                };
            }
            for g in &mut r.groups {
                g.org = None;
                g.code = g.code.take().or(Some(g.sourced_id.clone()));
            }
        }
    }
    r
}

fn drop_leavers(r: &mut Roster) {
    let gone: Vec<String> = r
        .persons
        .iter()
        .filter(|p| p.status == Status::ToBeDeleted)
        .map(|p| p.sourced_id.clone())
        .collect();
    r.persons.retain(|p| !gone.contains(&p.sourced_id));
    r.memberships
        .retain(|m| !gone.iter().any(|g| m.person == *g));
}

fn need(code: &str) -> PersonalNeed {
    PersonalNeed {
        code: code.into(),
        start: None,
        end: None,
    }
}

/// An OKE roster with the UUIDs of its records back in the school's ids.
fn from_oke(mut r: Roster) -> Roster {
    for p in &mut r.persons {
        p.sourced_id = school::from_oke_uuid(&p.sourced_id);
    }
    for g in &mut r.groups {
        g.sourced_id = school::from_oke_uuid(&g.sourced_id);
    }
    for m in &mut r.memberships {
        m.person = school::from_oke_uuid(&m.person).into();
        m.group = school::from_oke_uuid(&m.group).into();
    }
    r
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

/// A csv-drop config in `dir` reading `source`.
fn drop_config(dir: &Path, source: Source) -> Loaded {
    TestConfig::new(dir)
        .source(source)
        .extra("[privacy]\nfields = [\"name\", \"email\", \"role\", \"org\", \"groups\"]\n")
        .load()
}

fn edexml_file(dir: &Path) -> PathBuf {
    let file = dir.join(format!("{SCHOOL}.xml"));
    std::fs::write(&file, school::edexml(&school::school())).unwrap();
    file
}

/// One source reading the school, with what it must give.
struct Leg {
    format: Format,
    dir: tempfile::TempDir,
    config: Loaded,
}

impl Leg {
    fn new(format: Format, make: impl FnOnce(&Path) -> Source) -> Leg {
        let dir = tempfile::tempdir().unwrap();
        let source = make(dir.path());
        let config = drop_config(dir.path(), source);
        Leg {
            format,
            dir,
            config,
        }
    }

    fn read(&self) -> Roster {
        let l = self.config.clone();
        let r = tokio::task::block_in_place(move || sync::read_source(&l, &Quiet, None)).unwrap();
        if self.format == Format::Oke {
            from_oke(r)
        } else {
            r
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_roster_source_reads_the_same_school() {
    let logical = school::school();
    // OneRoster 1.2 CSV
    let csv = Leg::new(Format::OneRosterCsv, |d| {
        let export = d.join("export");
        school::write_oneroster_csv(&logical, &export);
        Source::OneRosterCsv(export)
    });
    // OneRoster 1.2 REST from the fake service
    let (_sis, sis_url) = common::fake_oneroster::start(school::oneroster_json(&logical)).await;
    let rest = Leg::new(Format::OneRosterRest, |d| {
        std::fs::write(d.join("sis-token"), common::fake_oneroster::SIS_TOKEN).unwrap();
        Source::Toml(format!(
            "kind = \"oneroster-rest\"\nbase_url = \"{sis_url}\"\ntoken_file = \"sis-token\"\npage_size = 3\ntimeout = \"5s\"\n"
        ))
    });
    // IMS Enterprise 1.1
    let ims = Leg::new(Format::ImsEnterprise, |d| {
        let file = d.join("roster.xml");
        std::fs::write(&file, school::ims_enterprise_xml(&logical)).unwrap();
        Source::ImsEnterprise(file)
    });
    // EDEXML 2.1, valid against the official XSD
    let edexml = Leg::new(Format::Edexml, |d| Source::Edexml(edexml_file(d)));
    let doc = std::fs::read(edexml_file(edexml.dir.path())).unwrap();
    xsd_validate(
        &repo().join("fixtures/specs/edexml-2.1/EDEXML.structuur.2.1.xsd"),
        &[("school".into(), doc)],
    );
    // UWLR 2.2 from the fake LAS serving the same EDEXML school
    let las_dir = tempfile::tempdir().unwrap();
    let las = FakeLas::start(vec![LasSchool::from_edexml(
        &edexml_file(las_dir.path()),
        "sleutel",
    )])
    .await;
    let uwlr = Leg::new(Format::Uwlr, |d| {
        std::fs::write(d.join("key"), "sleutel").unwrap();
        Source::Toml(format!(
            "kind = \"uwlr\"\nurl = \"{}\"\nklantcode = \"K\"\nklantnaam = \"N\"\nschooljaar = \"{SCHOOLJAAR}\"\nmax_retries = 0\n[[source.schools]]\nbrincode = \"{}\"\nkey = \"file:key\"\n",
            las.url,
            &SCHOOL[..4]
        ))
    });

    // OKE 1.0.1 flow 1 from the fake OKE SIS, with the class context
    let sis = FakeOke::start("nl-test-admin-flow-1-5").await;
    school::fill_oke_sis(&logical, &sis);
    let oke = Leg::new(Format::Oke, |d| {
        std::fs::write(d.join("oke-secret"), fake_oke::CLIENT_SECRET).unwrap();
        Source::Toml(format!(
            "kind = \"oke\"\nbase_url = \"{}\"\ntoken_url = \"{}\"\nclient_id = \"{}\"\nclient_secret_file = \"oke-secret\"\nclass_context = true\ntimeout = \"5s\"\nmax_retries = 0\n",
            sis.base,
            sis.token_url,
            fake_oke::CLIENT_ID
        ))
    });

    let legs = [csv, rest, ims, edexml, uwlr, oke];
    for leg in &legs {
        let r = leg.read();
        assert!(r.issues.is_empty(), "{:?}: {:?}", leg.format, r.issues);
        assert_eq!(
            canonical(r),
            canonical(carried(leg.format)),
            "{:?} reads the school as the logical roster",
            leg.format
        );
    }
    assert!(validate_exchanges(&las) > 0);
    sis.validate(legs[5].dir.path(), "oke-sis");

    // the same platform state: every format that carries the whole
    // school, and the Dutch exports among themselves
    for leg in &legs[..5] {
        let r = sync::roster(&leg.config, RosterOptions::default(), "user:test", &Quiet)
            .await
            .unwrap();
        assert_eq!(r.outcome.as_ref().unwrap().failed(), 0, "{:?}", leg.format);
    }
    // (OKE plans exam sittings: its platforms are exam platforms)
    let legs = &legs[..5];
    let drops: Vec<_> = legs.iter().map(|l| dropped(l.dir.path())).collect();
    assert!(!drops[0].is_empty());
    for (leg, d) in legs.iter().zip(&drops).skip(1) {
        let same_as = if matches!(leg.format, Format::Uwlr) {
            3
        } else {
            0
        };
        assert_eq!(
            d, &drops[same_as],
            "csv-drop output of {:?} and {:?}",
            leg.format, legs[same_as].format
        );
    }
}

/// The school holds what the kit promises, so a reader that drops one of
/// these cases fails above rather than passing on an easy roster.
#[test]
fn the_school_has_the_dutch_edge_cases() {
    let r = school::school();
    let p = |id: &str| -> &Person { r.persons.iter().find(|p| p.sourced_id == id).unwrap() };
    assert_eq!(p("L1002").middle_name.as_deref(), Some("van den"));
    assert_eq!(p("L1004").middle_name.as_deref(), Some("'t"));
    assert!(p("L1002").given_name.contains('ë') && p("L1003").family_name.contains('Ö'));
    assert_eq!(
        r.memberships.iter().filter(|m| m.person == "L1003").count(),
        3
    );
    assert!(r.persons.iter().any(|p| p.role == Some(Role::Teacher)));
    assert!(r.persons.iter().any(|p| p.status == Status::ToBeDeleted));
    assert!(!p("L1002").accommodations.is_empty());
    assert!(p("L1001").bsn.is_some() && p("L1001").eck_id.is_some());
}

/// The fixture school 99AA00 as EDEXML, as the fake LAS's UWLR answer
/// and as its hand-made OneRoster CSV export (`fixtures/oneroster-edex-99AA00`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edexml_fixture_reads_as_its_uwlr_and_oneroster_forms() {
    // EDEXML
    let d_edex = tempfile::tempdir().unwrap();
    let edex = drop_config(
        d_edex.path(),
        Source::Edexml(repo().join("fixtures/edexml-2.1/99AA00.xml")),
    );
    // OneRoster 1.2 CSV of the same school
    let d_or = tempfile::tempdir().unwrap();
    let or = drop_config(
        d_or.path(),
        Source::OneRosterCsv(repo().join("fixtures/oneroster-edex-99AA00")),
    );
    // UWLR from the fake LAS, school 99AA00 only
    let las = FakeLas::start(fixture_schools()).await;
    let d_uwlr = tempfile::tempdir().unwrap();
    std::fs::write(d_uwlr.path().join("key"), "sleutel-aa").unwrap();
    let uwlr = drop_config(
        d_uwlr.path(),
        Source::Toml(format!(
            "kind = \"uwlr\"\nurl = \"{}\"\nklantcode = \"K\"\nklantnaam = \"N\"\nschooljaar = \"{YEAR}\"\nmax_retries = 0\n[[source.schools]]\nbrincode = \"99AA\"\nkey = \"file:key\"\n",
            las.url
        )),
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
async fn ims_fixture_syncs_to_the_same_platform_state_as_oneroster() {
    // OneRoster 1.2 CSV into one platform
    let (or_server, _or_dir, _, or_cfg) = scim_bed("").await;
    let r = sync(&or_cfg, RosterOptions::default()).await;
    assert_eq!(r.outcome.as_ref().unwrap().failed(), 0);

    // IMS Enterprise into another
    let server = FakeScim::start(true).await;
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("roster.xml");
    std::fs::copy(repo().join("fixtures/ims-enterprise/roster.xml"), &xml).unwrap();
    let cfg = scim_config_with_source(
        dir.path(),
        &format!(
            "kind = \"ims-enterprise\"\npath = \"{}\"\nrole_map = {{ staff = \"proctor\" }}\n",
            xml.display()
        ),
        &server.base,
        TOKEN,
        "",
    );
    let r = sync(&cfg, RosterOptions::default()).await;
    assert!(r.issues.is_empty(), "{:?}", r.issues);
    let o = r.outcome.as_ref().unwrap();
    assert_eq!((o.users.created, o.groups.created, o.failed()), (42, 6, 0));
    assert_eq!(server.users().len(), 42);
    assert_eq!(server.groups().len(), 6);
    let members = server.member_count();
    assert_eq!(members, 80);

    // the same users (names, roles, orgs, accommodations) and classes
    assert_eq!(
        server.users_by_external_id(),
        or_server.users_by_external_id()
    );
    assert_eq!(
        server.groups_by_external_id(),
        or_server.groups_by_external_id()
    );
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
    let g = server.groups_by_external_id();
    let ne = &g["cls-ne-h3a"].1;
    assert!(ne.contains("stu-1037") && !ne.contains("stu-1014"));
    assert!(!g["cls-en-h3a"].1.contains("stu-1014"));
}
