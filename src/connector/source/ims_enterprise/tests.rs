//! Parser tests: the bundled fixtures (compared with the OneRoster 1.2
//! fixture they were generated from) plus small hand-made documents.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;
use crate::connector::source::oneroster::config::OneRosterCsvSource;
use crate::connector::source::oneroster::csv::OneRosterCsv;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn cfg(path: &Path) -> ImsEnterpriseSource {
    ImsEnterpriseSource {
        path: path.to_path_buf(),
        // the fixture's proctor is Staff in IMS terms
        role_map: [("staff".to_string(), "proctor".to_string())].into(),
        qualify_ids: false,
        accommodations: Default::default(),
    }
}

fn read_cfg(c: &ImsEnterpriseSource) -> Result<Roster> {
    ImsEnterprise::new(c).read(&|_| {})
}

fn read(path: &Path) -> Roster {
    read_cfg(&cfg(path)).unwrap()
}

/// Read a document given as text from a temp file named `name`.
fn read_text(name: &str, xml: &str) -> (tempfile::TempDir, Result<Roster>) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, xml).unwrap();
    let r = read_cfg(&cfg(&p));
    (dir, r)
}

/// The error of reading `xml` from a file named `name`, checked to name
/// the file and `line`.
fn read_text_err(name: &str, xml: &str, line: usize) -> String {
    let e = read_text(name, xml).1.unwrap_err().to_string();
    assert!(e.contains(&format!("{name}:{line}:")), "{e}");
    e
}

fn person<'a>(r: &'a Roster, id: &str) -> &'a Person {
    r.persons
        .iter()
        .find(|p| p.sourced_id == id)
        .unwrap_or_else(|| panic!("{id} not read"))
}

fn sorted_persons(r: &Roster) -> Vec<Person> {
    let mut v = r.persons.clone();
    v.sort_by(|a, b| a.sourced_id.cmp(&b.sourced_id));
    v
}

/// (group, person, role, status) of each membership, sorted.
fn membership_keys(r: &Roster) -> Vec<(String, String, Role, Status)> {
    let mut v: Vec<_> = r
        .memberships
        .iter()
        .map(|m| (m.group.to_string(), m.person.to_string(), m.role, m.status))
        .collect();
    v.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
    v
}

#[test]
fn fixture_reads_the_same_roster_as_the_oneroster_fixture() {
    let ims = read(&fixture("ims-enterprise/roster.xml"));
    let or = OneRosterCsv::new(&OneRosterCsvSource {
        path: fixture("oneroster-1.2"),
        role_map: Default::default(),
        accommodations: Default::default(),
    })
    .read(&|_| {})
    .unwrap();
    assert!(ims.issues.is_empty(), "{:?}", ims.issues);
    assert_eq!(ims.format, "IMS Enterprise 1.1 XML");
    assert_eq!(ims.persons_completeness, Completeness::Bulk);
    assert_eq!(ims.groups_completeness, Completeness::Bulk);
    assert_eq!(ims.memberships_completeness, Completeness::Bulk);

    // Persons: every canonical field is equal (the IMS fixture carries no
    // ECK iD; the OneRoster one does, in userIds).
    assert_eq!(ims.persons.len(), 42);
    let mut or_persons = sorted_persons(&or);
    assert!(or_persons.iter().filter(|p| p.eck_id.is_some()).count() >= 30);
    for p in &mut or_persons {
        p.eck_id = None;
    }
    assert_eq!(sorted_persons(&ims), or_persons);
    // administrator and two guardians are read but not synced, as in OneRoster
    assert_eq!(ims.ignored, 3);

    // Orgs: equal.
    let mut a = ims.orgs.clone();
    let mut b = or.orgs.clone();
    a.sort_by(|x, y| x.sourced_id.cmp(&y.sourced_id));
    b.sort_by(|x, y| x.sourced_id.cmp(&y.sourced_id));
    assert_eq!(a, b);

    // Groups: equal except what IMS cannot carry (academic sessions, course).
    let strip = |r: &Roster| {
        let mut v: Vec<Group> = r
            .groups
            .iter()
            .map(|g| Group {
                sessions: Vec::new(),
                course: None,
                ..g.clone()
            })
            .collect();
        v.sort_by(|x, y| x.sourced_id.cmp(&y.sourced_id));
        v
    };
    assert_eq!(ims.groups.len(), 6);
    assert_eq!(strip(&ims), strip(&or));

    // Memberships: same group, person, role and status; ids are made up.
    assert_eq!(ims.memberships.len(), 80);
    assert_eq!(membership_keys(&ims), membership_keys(&or));
    assert!(
        ims.memberships
            .iter()
            .any(|m| m.group == "cls-ne-h3a" && m.person == "stu-1001")
    );
}

#[test]
fn non_ascii_names_and_tussenvoegsels_round_trip() {
    let r = read(&fixture("ims-enterprise/roster.xml"));
    let zoe = person(&r, "stu-1003");
    assert_eq!(zoe.given_name, "Zoë");
    assert_eq!(zoe.middle_name.as_deref(), Some("van der"));
    assert_eq!(zoe.family_name, "Berg");
    assert_eq!(zoe.accommodations.extra_time_percent, Some(25));
    assert_eq!(zoe.accommodations.font_scale, Some(1.5));
    assert_eq!(zoe.accommodations.screen_reader, Some(false));
    assert_eq!(person(&r, "stu-1019").family_name, "Yılmaz");
    assert_eq!(person(&r, "stu-1030").given_name, "Søren");
    assert_eq!(person(&r, "tch-2003").family_name, "Aydın");
    assert_eq!(person(&r, "stu-1012").family_name, "Jansen, Jr.");
    let t = person(&r, "tch-2001");
    assert_eq!(t.role, Some(Role::Teacher));
    assert_eq!(t.identifier.as_deref(), Some("LIN"));
    assert_eq!(t.username.as_deref(), Some("m.vanderlinden"));
    assert_eq!(person(&r, "prc-3001").role, Some(Role::Proctor));

    // escapes: predefined entities and character references only
    let (_d, r) = read_text(
        "esc.xml",
        r#"<enterprise><person><sourcedid><id>p&amp;1</id></sourcedid>
<name><n><family>&#x00D6;zt&#252;rk &lt;&quot;&apos;&gt;</family><given><![CDATA[Ça<b>]]></given></n></name>
<institutionrole institutionroletype="Student"/></person></enterprise>"#,
    );
    let r = r.unwrap();
    let p = person(&r, "p&1");
    assert_eq!(p.family_name, "Öztürk <\"'>");
    assert_eq!(p.given_name, "Ça<b>");
}

#[test]
fn delta_recstatus_adds_updates_and_deletes() {
    let r = read(&fixture("ims-enterprise/delta.xml"));
    assert!(r.issues.is_empty(), "{:?}", r.issues);
    assert_eq!(r.persons_completeness, Completeness::Delta);
    assert_eq!(r.groups_completeness, Completeness::Delta);
    assert_eq!(r.memberships_completeness, Completeness::Delta);
    assert_eq!(r.persons.len(), 3);
    let renamed = person(&r, "stu-1009");
    assert_eq!(
        (renamed.status, renamed.family_name.as_str()),
        (Status::Active, "Brouwer")
    );
    let gone = person(&r, "stu-1014");
    assert_eq!(gone.status, Status::ToBeDeleted);
    assert_eq!(gone.role, None, "a delete carries the id only");
    let new = person(&r, "stu-1037");
    assert_eq!(new.family_name, "Doğan");
    assert_eq!(new.orgs, vec!["org-99AA00".to_string()]);
    let keys = membership_keys(&r);
    assert_eq!(
        keys,
        vec![
            (
                "cls-en-h3a".into(),
                "stu-1014".into(),
                Role::Student,
                Status::ToBeDeleted
            ),
            (
                "cls-ne-h3a".into(),
                "stu-1014".into(),
                Role::Student,
                Status::ToBeDeleted
            ),
            (
                "cls-ne-h3a".into(),
                "stu-1037".into(),
                Role::Student,
                Status::Active
            ),
            (
                "cls-wi-h3a".into(),
                "stu-1014".into(),
                Role::Student,
                Status::ToBeDeleted
            ),
        ]
    );

    // properties/type marks a delta even when records carry no recstatus
    let (_d, r) = read_text(
        "typed.xml",
        r#"<enterprise><properties><type>Delta update</type></properties>
<person><sourcedid><id>p1</id></sourcedid><name><n><family>A</family><given>B</given></n></name></person>
</enterprise>"#,
    );
    let r = r.unwrap();
    assert_eq!(r.persons_completeness, Completeness::Delta);
    assert_eq!(
        r.persons[0].role, None,
        "a delta person without role keeps it"
    );

    // one person without recstatus: bulk; recstatus 3 still deactivates
    let (_d, r) = read_text(
        "mixed.xml",
        r#"<enterprise>
<person recstatus="3"><sourcedid><id>p1</id></sourcedid></person>
<person><sourcedid><id>p2</id></sourcedid><name><n><family>A</family><given>B</given></n></name><institutionrole institutionroletype="Learner"/></person>
</enterprise>"#,
    );
    let r = r.unwrap();
    assert_eq!(r.persons_completeness, Completeness::Bulk);
    assert_eq!(r.groups_completeness, Completeness::Absent);
    assert_eq!(r.memberships_completeness, Completeness::Absent);
    assert_eq!(person(&r, "p1").status, Status::ToBeDeleted);
    assert_eq!(person(&r, "p2").role, Some(Role::Student));
}

#[test]
fn multiple_sources_collide_unless_ids_are_qualified() {
    let path = fixture("ims-enterprise/two-sources.xml");
    // default: id alone; the second 1001 is a duplicate, reported and skipped
    let r = read(&path);
    assert_eq!(r.persons.len(), 2);
    assert_eq!(person(&r, "1001").given_name, "Anna");
    assert_eq!(r.issues.len(), 1, "{:?}", r.issues);
    let i = &r.issues[0];
    assert_eq!(i.record_id.as_deref(), Some("1001"));
    assert!(i.location.ends_with("two-sources.xml:12"), "{i}");
    assert!(i.reason.contains("qualify_ids"), "{i}");

    // qualified: source:id everywhere, references included
    let mut c = cfg(&path);
    c.qualify_ids = true;
    let r = read_cfg(&c).unwrap();
    assert!(r.issues.is_empty(), "{:?}", r.issues);
    let mut ids: Vec<_> = r.persons.iter().map(|p| p.sourced_id.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        ["SIS-Centrum:1001", "SIS-Noord:1001", "SIS-Noord:2001"]
    );
    assert_eq!(person(&r, "SIS-Noord:1001").family_name, "Yılmaz");
    assert_eq!(r.groups[0].sourced_id, "SIS-Noord:klas-1a");
    assert_eq!(
        membership_keys(&r),
        vec![
            (
                "SIS-Noord:klas-1a".into(),
                "SIS-Noord:1001".into(),
                Role::Student,
                Status::Active
            ),
            (
                "SIS-Noord:klas-1a".into(),
                "SIS-Noord:2001".into(),
                Role::Teacher,
                Status::Active
            ),
        ]
    );
}

fn assert_refused_fast(name: &str) {
    let path = fixture(&format!("ims-enterprise/{name}"));
    let t = Instant::now();
    let e = read_cfg(&cfg(&path)).unwrap_err().to_string();
    let took = t.elapsed();
    assert!(took < Duration::from_millis(500), "took {took:?}");
    assert!(e.contains(&format!("{name}:2:")), "{e}");
    assert!(e.contains("DTD") && e.contains("entit"), "{e}");
    // the probe refuses it too
    let e = ImsEnterprise::new(&cfg(&path)).probe().unwrap_err();
    assert!(e.to_string().contains("DTD"), "{e}");
}

#[test]
fn billion_laughs_is_refused_quickly() {
    assert_refused_fast("billion-laughs.xml");
}

#[test]
fn external_entity_is_refused_and_never_read() {
    assert_refused_fast("external-entity.xml");
    let e = read_cfg(&cfg(&fixture("ims-enterprise/external-entity.xml")))
        .unwrap_err()
        .to_string();
    assert!(!e.contains("root:"), "{e}");
}

#[test]
fn entity_declarations_and_unknown_entities_are_errors() {
    // an undeclared entity reference is never expanded
    let e = read_text_err(
        "undeclared.xml",
        "<enterprise>\n<person><sourcedid><id>p1</id></sourcedid>\n<name><n><family>&xxe;</family></n></name></person></enterprise>",
        3,
    );
    assert!(e.contains("&xxe;") && e.contains("entit"), "{e}");
    // in an attribute too
    let e = read_text_err(
        "attr.xml",
        "<enterprise>\n<person recstatus=\"&xxe;\"><sourcedid><id>p1</id></sourcedid></person></enterprise>",
        2,
    );
    assert!(e.contains("recstatus"), "{e}");
    // a DOCTYPE with only an external id is ignored, never fetched
    let (_d, r) = read_text(
        "ext-dtd.xml",
        "<?xml version=\"1.0\"?>\n<!DOCTYPE enterprise SYSTEM \"http://127.0.0.1:9/ims.dtd\">\n<enterprise></enterprise>",
    );
    assert!(r.unwrap().persons.is_empty());
    // an encoding sisync cannot read is refused, naming it
    let e = read_text_err(
        "ebcdic.xml",
        "<?xml version=\"1.0\" encoding=\"IBM037\"?>\n<enterprise></enterprise>",
        1,
    );
    assert!(e.contains("\"IBM037\"") && e.contains("UTF-8"), "{e}");
}

/// The fixture saved as Latin-1 and as UTF-16 (Windows "Unicode") reads
/// as the same roster as the UTF-8 file, names with diacritics included.
#[test]
fn latin1_and_utf16_files_read_as_the_same_roster() {
    let utf8 = std::fs::read_to_string(fixture("ims-enterprise/roster.xml")).unwrap();
    let want = sorted_persons(&read(&fixture("ims-enterprise/roster.xml")));
    assert!(want.iter().any(|p| p.given_name == "Zoë"));
    let latin1 = utf8.replacen("encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\"", 1);
    // (a character Latin-1 lacks becomes a character reference)
    let (latin1, _, _) = encoding_rs::WINDOWS_1252.encode(&latin1);
    let utf16 = utf8.replacen("encoding=\"UTF-8\"", "encoding=\"UTF-16\"", 1);
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(utf16.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    for (name, bytes) in [("latin1.xml", &latin1[..]), ("utf16.xml", &utf16[..])] {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        assert_eq!(sorted_persons(&read(&p)), want, "{name}");
    }
    // an error in a decoded file names its line in the file, not an
    // offset into the decoded text
    let broken = "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n<enterprise>\n  <person>\n    <sourcedid><id>p1</id></sourcedid>\n  </persn>\n</enterprise>\n";
    let bytes: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(broken.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("broken16.xml");
    std::fs::write(&p, bytes).unwrap();
    let e = read_cfg(&cfg(&p)).unwrap_err().to_string();
    assert!(
        e.contains("broken16.xml:5:") && e.contains("not well-formed"),
        "{e}"
    );
}

#[test]
fn malformed_xml_fails_with_file_and_line() {
    let e = read_text_err(
        "broken.xml",
        "<?xml version=\"1.0\"?>\n<enterprise>\n  <person>\n    <sourcedid><id>p1</id></sourcedid>\n  </persn>\n</enterprise>\n",
        5,
    );
    assert!(
        e.contains("not well-formed") && e.contains("re-export"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");

    let e = read_text_err(
        "truncated.xml",
        "<enterprise>\n  <person>\n    <sourcedid><id>p1</id>",
        3,
    );
    assert!(e.contains("truncated"), "{e}");

    let e = read_text_err("other.xml", "<roster>\n</roster>", 1);
    assert!(e.contains("<enterprise>"), "{e}");
}

#[test]
fn bad_records_are_reported_held_and_skipped() {
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<enterprise>
  <person>
    <name><n><family>Zonder</family><given>Id</given></n></name>
  </person>
  <person>
    <sourcedid><id>p1</id></sourcedid>
    <name><n><family>Een</family><given>Anna</given></n></name>
    <institutionrole institutionroletype="Student"/>
  </person>
  <person>
    <sourcedid><id>p1</id></sourcedid>
    <name><n><family>Twee</family><given>Anna</given></n></name>
  </person>
  <person>
    <sourcedid><id>p2</id></sourcedid>
    <name><n><family>Bakker</family><given>Bram</given></n></name>
    <institutionrole institutionroletype="Student"/>
    <extension><extraTimePercent>veel</extraTimePercent></extension>
  </person>
  <person recstatus="9">
    <sourcedid><id>p3</id></sourcedid>
  </person>
  <person>
    <sourcedid><id>p4</id></sourcedid>
    <name><n><given>Cher</given></n></name>
    <institutionrole institutionroletype="Student"/>
  </person>
  <group>
    <sourcedid><id>c1</id></sourcedid>
    <grouptype><typevalue>Class</typevalue></grouptype>
    <description><long>Klas 1</long></description>
  </group>
  <group>
    <sourcedid><id>c1</id></sourcedid>
  </group>
  <membership>
    <sourcedid><id>c1</id></sourcedid>
    <member>
      <sourcedid><id>p1</id></sourcedid>
      <idtype>1</idtype>
      <role roletype="01"><status>1</status></role>
    </member>
    <member>
      <sourcedid><id>ghost</id></sourcedid>
      <idtype>1</idtype>
      <role roletype="01"><status>1</status></role>
    </member>
    <member>
      <sourcedid><id>p1</id></sourcedid>
      <idtype>1</idtype>
      <role roletype="01"><status>1</status></role>
    </member>
    <member>
      <idtype>1</idtype>
      <role roletype="01"><status>1</status></role>
    </member>
  </membership>
  <membership>
    <sourcedid><id>no-such-class</id></sourcedid>
    <member>
      <sourcedid><id>p1</id></sourcedid>
      <role roletype="01"/>
    </member>
  </membership>
</enterprise>
"#;
    let (_d, r) = read_text("bad.xml", xml);
    let r = r.unwrap();
    let shown: Vec<String> = r.issues.iter().map(|i| i.to_string()).collect();
    let expect = [
        ("bad.xml:3", None, "without sourcedid"),
        (
            "bad.xml:11",
            Some("p1"),
            "duplicate sourcedid (also at line 6)",
        ),
        ("bad.xml:15", Some("p2"), "extraTimePercent \"veel\""),
        ("bad.xml:21", Some("p3"), "recstatus \"9\""),
        ("bad.xml:24", Some("p4"), "given or name/n/family is empty"),
        (
            "bad.xml:34",
            Some("c1"),
            "duplicate sourcedid (also at line 29)",
        ),
        ("bad.xml:44", Some("ghost"), "not a person in the file"),
        ("bad.xml:49", Some("p1"), "duplicate member of group c1"),
        ("bad.xml:54", None, "member of group c1 without sourcedid"),
        (
            "bad.xml:61",
            Some("p1"),
            "group no-such-class which is not in the file",
        ),
    ];
    assert_eq!(r.issues.len(), expect.len(), "{shown:#?}");
    for (i, (loc, id, reason)) in r.issues.iter().zip(expect) {
        assert!(
            i.location.ends_with(loc) && i.record_id.as_deref() == id && i.reason.contains(reason),
            "expected {loc} {id:?} {reason}, got {i}"
        );
    }
    // only the good person and the good membership are kept
    assert_eq!(r.persons.len(), 1);
    assert_eq!(person(&r, "p1").family_name, "Een");
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.memberships.len(), 1);
    // damaged persons are held, never deactivated for a bad record
    let mut held: Vec<_> = r.held_persons.iter().cloned().collect();
    held.sort();
    assert_eq!(held, ["p2", "p3", "p4"]);
    assert!(r.held_groups.contains("c1"));
}

#[test]
fn roles_map_through_role_map_and_unmapped_roles_are_ignored() {
    let xml = r#"<enterprise>
<person><sourcedid><id>a</id></sourcedid><name><n><family>A</family><given>A</given></n></name></person>
<person><sourcedid><id>b</id></sourcedid><name><n><family>B</family><given>B</given></n></name>
  <institutionrole institutionroletype="Administrator"/></person>
<person><sourcedid><id>c</id></sourcedid><name><n><family>C</family><given>C</given></n></name></person>
<group><sourcedid><id>g</id></sourcedid><grouptype><typevalue>Course section</typevalue></grouptype></group>
<membership><sourcedid><id>g</id></sourcedid>
  <member><sourcedid><id>a</id></sourcedid><idtype>1</idtype><role roletype="08"/></member>
  <member><sourcedid><id>c</id></sourcedid><idtype>1</idtype><role roletype="06"/></member>
</membership>
</enterprise>"#;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("roles.xml");
    std::fs::write(&p, xml).unwrap();
    let mut c = cfg(&p);
    c.role_map.insert("08".into(), "assessor".into());
    let r = read_cfg(&c).unwrap();
    // a: no institutionrole, membership 08 → assessor
    assert_eq!(person(&r, "a").role, Some(Role::Assessor));
    assert_eq!(r.memberships.len(), 1);
    assert_eq!(r.memberships[0].role, Role::Assessor);
    // b: Administrator is not mapped → ignored; c: only a 06 Mentor role →
    // no sisync role: reported and held
    assert!(r.persons.iter().all(|p| p.sourced_id == "a"));
    // b, and c's membership (c is not synced)
    assert_eq!(r.ignored, 2);
    assert_eq!(r.issues.len(), 1, "{:?}", r.issues);
    assert_eq!(r.issues[0].record_id.as_deref(), Some("c"));
    assert!(r.held_persons.contains("c"));
    assert_eq!(r.groups[0].title, "g");
}

#[test]
fn probe_reads_only_the_head() {
    let s = ImsEnterprise::new(&cfg(&fixture("ims-enterprise/roster.xml")))
        .probe()
        .unwrap();
    assert!(
        s.starts_with("IMS Enterprise 1.1 XML, ") && s.contains("datasource VoorbeeldSIS"),
        "{s}"
    );
    let e = ImsEnterprise::new(&cfg(Path::new("/nonexistent/roster.xml")))
        .probe()
        .unwrap_err();
    assert!(e.to_string().contains("check source.path"), "{e}");
}
