use super::*;

const DOC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<EDEX>
  <school><schooljaar>2024-2025</schooljaar><brincode>99AA</brincode><dependancecode>00</dependancecode></school>
  <vestigingen><vestiging key="v1"><naam>Hoofdgebouw</naam></vestiging></vestigingen>
  <groepen>
    <groep key="g7a"><naam>7A</naam><jaargroep>7</jaargroep></groep>
    <samengestelde_groep key="sg1"><naam>Plusklas</naam></samengestelde_groep>
  </groepen>
  <leerlingen>
    <leerling key="l1" eckid="https://ketenid.nl/201703/abc">
      <achternaam>Berg</achternaam><voorvoegsel>van den</voorvoegsel><voornamen>Johanna Maria</voornamen><roepnaam>Jo</roepnaam>
      <geboortedatum>2014-03-01</geboortedatum><geslacht>V</geslacht><jaargroep>7</jaargroep>
      <groep key="g7a"/><samengestelde_groepen><samengestelde_groep key="sg1"/></samengestelde_groepen>
      <vestiging key="v1"/><emailadres>jo@example.nl</emailadres><land>6030</land><bsn>123456782</bsn>
    </leerling>
    <leerling key="l2"><achternaam>Dijk</achternaam><voornamen>Piet &amp; Jan</voornamen><groep key="nope"/></leerling>
    <leerling key="l3"><roepnaam>Alleen</roepnaam></leerling>
    <leerling key="l1"><achternaam>Twee</achternaam><roepnaam>Keer</roepnaam></leerling>
  </leerlingen>
  <leerkrachten>
    <leerkracht key="t1"><achternaam>Jansen</achternaam><roepnaam>Els</roepnaam><rol>LRK</rol>
      <groepen><groep key="g7a"><rol>KLA</rol></groep><samengestelde_groep key="sg1"/></groepen></leerkracht>
  </leerkrachten>
</EDEX>"#;

fn read(doc: &str) -> (Answer, Roster) {
    let mut b = Builder::new(false, role_map(&Default::default()));
    b.school("99AA00", "School");
    b.document("x.xml");
    let a = parse(doc.as_bytes(), "x.xml", &mut |r| b.feed(r)).unwrap();
    (a, b.finish("EDEXML".into()))
}

/// (person, group) of every membership, in order.
fn memberships(r: &Roster) -> Vec<(&str, &str)> {
    r.memberships
        .iter()
        .map(|m| (m.person.as_str(), m.group.as_str()))
        .collect()
}

#[test]
fn maps_the_element_model() {
    let (a, r) = read(DOC);
    assert_eq!(a, Answer::Data);
    let p = &r.persons[0];
    assert_eq!(p.sourced_id, "l1");
    assert_eq!(p.given_name, "Jo");
    assert_eq!(p.middle_name.as_deref(), Some("van den"));
    assert_eq!(p.family_name, "Berg");
    assert_eq!(p.eck_id.as_deref(), Some("https://ketenid.nl/201703/abc"));
    assert_eq!(p.bsn.as_deref(), Some("123456782"));
    assert_eq!(p.orgs, vec!["99AA00", "99AA00-v1"]);
    assert_eq!(r.persons[1].given_name, "Piet & Jan");
    assert_eq!(r.persons.len(), 3, "l1, l2, t1");
    assert_eq!(r.persons[2].role, Some(Role::Teacher));
    assert!(r.held_persons.contains("l3"));
    assert_eq!(r.groups.len(), 2);
    assert_eq!(r.groups[0].code.as_deref(), Some("7"));
    let m: Vec<_> = r
        .memberships
        .iter()
        .map(|m| (m.person.as_str(), m.group.as_str(), m.role))
        .collect();
    assert_eq!(
        m,
        vec![
            ("l1", "g7a", Role::Student),
            ("l1", "sg1", Role::Student),
            ("t1", "g7a", Role::Teacher),
            ("t1", "sg1", Role::Teacher),
        ]
    );
    let issues: Vec<String> = r.issues.iter().map(|i| i.to_string()).collect();
    assert_eq!(issues.len(), 3, "{issues:?}");
    assert!(
        issues
            .iter()
            .any(|i| i.contains("record l3") && i.contains("achternaam"))
    );
    assert!(
        issues
            .iter()
            .any(|i| i.contains("record l1") && i.contains("duplicate"))
    );
    assert!(
        issues
            .iter()
            .any(|i| i.contains("record l2") && i.contains("groep nope"))
    );
}

#[test]
fn exceptions_and_unsafe_xml() {
    let (a, r) = read("<leerlinggegevens_antwoord><geenwijzigingen/></leerlinggegevens_antwoord>");
    assert_eq!(a, Answer::NoChanges);
    assert!(r.persons.is_empty());
    let (a, _) = read(
        "<x:leerlinggegevens_antwoord xmlns:x=\"u\"><x:geengegevens></x:geengegevens></x:leerlinggegevens_antwoord>",
    );
    assert_eq!(a, Answer::NoData);
    let bomb = "<!DOCTYPE EDEX [<!ENTITY a \"aaaa\">]><EDEX>&a;</EDEX>";
    let mut b = Builder::new(false, Default::default());
    let e = parse(bomb.as_bytes(), "f.xml", &mut |r| b.feed(r)).unwrap_err();
    assert!(e.to_string().contains("DOCTYPE"), "{e}");
    let e = parse("<EDEX>&custom;</EDEX>".as_bytes(), "f.xml", &mut |r| {
        b.feed(r)
    })
    .unwrap_err();
    assert!(e.to_string().contains("never expands entities"), "{e}");
    let e = parse("<EDEX><leerlingen>".as_bytes(), "f.xml", &mut |r| b.feed(r)).unwrap_err();
    assert!(e.to_string().starts_with("f.xml:"), "{e}");
}

/// Memberships are made once per (class, person) however often they are
/// named: twice in one record, again in a later batch, or before the class
/// is defined; a key held in a later batch loses its earlier memberships.
#[test]
fn memberships_are_made_once_across_batches_and_late_classes() {
    let mut b = Builder::new(false, role_map(&Default::default()));
    b.school("99AA00", "School");
    let feed = |b: &mut Builder, origin: &str, doc: &str| {
        b.document(origin);
        parse(doc.as_bytes(), origin, &mut |r| b.feed(r)).unwrap();
    };
    feed(
        &mut b,
        "batch1",
        r#"<EDEX><groepen><groep key="g1"><naam>1A</naam></groep></groepen><leerlingen>
<leerling key="l1"><achternaam>Berg</achternaam><roepnaam>Jo</roepnaam>
  <groep key="g1"/><samengestelde_groepen><samengestelde_groep key="g1"/><samengestelde_groep key="s2"/><samengestelde_groep key="s2"/></samengestelde_groepen></leerling>
<leerling key="l2"><achternaam>Dijk</achternaam><roepnaam>Piet</roepnaam><groep key="g1"/></leerling>
</leerlingen></EDEX>"#,
    );
    feed(
        &mut b,
        "batch2",
        r#"<EDEX><groepen><samengestelde_groep key="s2"><naam>Plus</naam></samengestelde_groep></groepen><leerlingen>
<leerling key="l1"><achternaam>Berg</achternaam><roepnaam>Jo</roepnaam><groep key="g1"/><samengestelde_groepen><samengestelde_groep key="s2"/></samengestelde_groepen></leerling>
<leerling key="l2"><roepnaam>Piet</roepnaam></leerling>
</leerlingen></EDEX>"#,
    );
    let r = b.finish("EDEXML".into());
    assert_eq!(memberships(&r), vec![("l1", "g1"), ("l1", "s2")]);
    assert_eq!(r.persons.len(), 1, "l2 is held by its second batch");
    assert!(r.held_persons.contains("l2"));
    assert!(
        r.issues.iter().all(|i| !i.reason.contains("duplicate")),
        "{:?}",
        r.issues
    );
}

/// The room made from a document's size is only room: a short, a generous
/// and no estimate give the same roster, and its memberships share one id
/// per class and per person.
#[test]
fn the_size_estimate_changes_nothing_read() {
    let rosters: Vec<String> = [None, Some(1), Some(DOC.len() as u64), Some(1 << 30)]
        .into_iter()
        .map(|bytes| {
            let mut b = Builder::new(false, role_map(&Default::default()));
            b.school("99AA00", "School");
            b.document("x.xml");
            if let Some(n) = bytes {
                b.expect(n);
            }
            parse(DOC.as_bytes(), "x.xml", &mut |r| b.feed(r)).unwrap();
            let r = b.finish("EDEXML".into());
            let g7a: Vec<_> = r.memberships.iter().filter(|m| m.group == "g7a").collect();
            assert_eq!(g7a.len(), 2, "l1 and t1 in 7A");
            assert!(same(&g7a[0].group, &g7a[1].group), "one id per class");
            let l1: Vec<_> = r.memberships.iter().filter(|m| m.person == "l1").collect();
            assert!(same(&l1[0].person, &l1[1].person), "one id per person");
            format!("{r:?}")
        })
        .collect();
    assert!(rosters.iter().all(|r| *r == rosters[0]));
}

/// A field is read whole: references, CDATA and comments inside it are
/// honoured, the text of an element nested in it is left out, a field
/// sisync does not keep is still checked for references, and an issue
/// names the line its record starts on.
#[test]
fn fields_with_markup_and_the_lines_of_issues() {
    let doc = "<EDEX>\n<groepen>\n\
        <groep key=\" g&amp;1 \"><naam><![CDATA[1 <A>]]> &amp; x</naam><jaargroep>\n 7 </jaargroep></groep>\n\
        <groep key=\"g2\"><naam>Twee<!-- c --> <sub>niet</sub>deel</naam></groep>\n\
        </groepen><leerlingen>\n\n\
        <leerling key=\"l&#49;\" eckid=\"e\t1\"><achternaam>B&lt;erg</achternaam><voornamen>  Jo  </voornamen>\n\
        <geboortedatum>2014-03-01</geboortedatum><groep key=\"g&amp;1\"/><emailadres/></leerling>\n\
        <leerling\n key=\"l2\"><roepnaam>Piet</roepnaam></leerling>\n\
        </leerlingen></EDEX>";
    let (_, r) = read(doc);
    let titles: Vec<_> = r
        .groups
        .iter()
        .map(|g| (g.sourced_id.as_str(), g.title.as_str()))
        .collect();
    assert_eq!(titles, vec![("g&1", "1 <A> & x"), ("g2", "Twee deel")]);
    assert_eq!(r.groups[0].code.as_deref(), Some("7"));
    let p = &r.persons[0];
    assert_eq!(
        (
            p.sourced_id.as_str(),
            p.family_name.as_str(),
            p.given_name.as_str()
        ),
        ("l1", "B<erg", "Jo")
    );
    assert_eq!(
        p.eck_id.as_deref(),
        Some("e 1"),
        "attribute value normalised"
    );
    assert_eq!(p.email, None, "an empty field is absent");
    assert_eq!(r.memberships.len(), 1);
    let issue = r
        .issues
        .iter()
        .find(|i| i.record_id.as_deref() == Some("l2"))
        .unwrap();
    assert_eq!(issue.location, "x.xml:10", "the line of `<leerling`");

    let mut b = Builder::new(false, Default::default());
    for (doc, want) in [
        (
            "<EDEX><leerling key=\"a\"><geboortedatum>&custom;</geboortedatum></leerling></EDEX>",
            "x.xml:1: unknown entity reference &custom;",
        ),
        (
            "<EDEX>\n<leerling key=\"a\">\n<achternaam>\n&nope;</achternaam></leerling></EDEX>",
            "x.xml:3: unknown entity reference &nope;",
        ),
    ] {
        let e = parse(doc.as_bytes(), "x.xml", &mut |r| b.feed(r)).unwrap_err();
        assert!(e.to_string().starts_with(want), "{e}");
    }
    let bad = b"<EDEX><leerling key=\"a\"><achternaam>\xff</achternaam></leerling></EDEX>";
    let e = parse(&bad[..], "x.xml", &mut |r| b.feed(r)).unwrap_err();
    assert!(e.to_string().contains("not valid UTF-8"), "{e}");
    let bad = b"<EDEX><leerling key=\"a\"><achternaam>x</roepnaam></leerling></EDEX>";
    let e = parse(&bad[..], "x.xml", &mut |r| b.feed(r)).unwrap_err();
    assert!(e.to_string().contains("not well-formed"), "{e}");
}

/// Read `bytes` as `read` does a UTF-8 text.
fn read_bytes(bytes: &[u8]) -> Roster {
    let mut b = Builder::new(false, role_map(&Default::default()));
    b.school("99AA00", "School");
    b.document("x.xml");
    parse(bytes, "x.xml", &mut |r| b.feed(r)).unwrap();
    b.finish("EDEXML".into())
}

#[test]
fn a_latin1_or_utf16_export_reads_as_its_utf8_twin() {
    let doc = DOC.replace("<achternaam>Berg<", "<achternaam>Ångström-Çelik<");
    let (_, want) = read(&doc);
    assert!(
        want.persons
            .iter()
            .any(|p| p.family_name == "Ångström-Çelik")
    );
    let latin1 = doc.replacen("\"UTF-8\"", "\"ISO-8859-1\"", 1);
    let (latin1, _, lossy) = encoding_rs::WINDOWS_1252.encode(&latin1);
    assert!(!lossy);
    let utf16 = doc.replacen("\"UTF-8\"", "\"UTF-16\"", 1);
    let utf16: Vec<u8> = [0xFE, 0xFF]
        .into_iter()
        .chain(utf16.encode_utf16().flat_map(u16::to_be_bytes))
        .collect();
    for bytes in [&latin1[..], &utf16[..]] {
        let got = read_bytes(bytes);
        assert_eq!(got.persons, want.persons);
        assert_eq!(memberships(&got), memberships(&want));
        // the issues name the same lines
        let issues = |r: &Roster| r.issues.iter().map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(issues(&got), issues(&want));
        assert!(!issues(&got).is_empty());
    }
}
