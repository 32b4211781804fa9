use super::*;
use crate::model::Role;

fn user(id: &str, role: Role) -> PlatformUser {
    PlatformUser {
        given_name: Some("Anaïs".into()),
        middle_name: Some("van 't".into()),
        family_name: Some("Jansen & <Zn>".into()),
        email: Some("secret@example.nl".into()),
        role: Some(role),
        org: Some("99AA00".into()),
        ..crate::test_util::platform_user(id)
    }
}

fn school() -> School {
    School {
        schooljaar: "2024-2025".into(),
        brincode: "99AA".into(),
        dependancecode: None,
        created: "2025-03-01T10:00:00Z".into(),
    }
}

fn snapshot() -> Snapshot {
    let g = PlatformGroup {
        external_id: "cls-1".into(),
        display_name: Some("H3A".into()),
        org: None,
        members: Vec::new(),
        active: true,
        partial: false,
    };
    Snapshot {
        users: vec![
            user("stu-1", Role::Student),
            user("stu-2", Role::Student),
            user("tea-1", Role::Teacher),
        ],
        groups: vec![g],
        members: [(
            "cls-1".to_string(),
            ["stu-1", "tea-1"]
                .iter()
                .map(|s| crate::model::Id::from(*s))
                .collect(),
        )]
        .into(),
    }
}

/// The snapshot delivered as run 3 with names, roles and groups allowed.
fn deliver_snapshot(dir: &Path) -> Delivery {
    let fields = [Field::Name, Field::Role, Field::Groups];
    let sink = EdexmlDrop::new(dir, &fields, school(), snapshot());
    sink.deliver(3, &ChangeSet::default()).unwrap()
}

#[test]
fn writes_only_allowed_fields_and_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let d = deliver_snapshot(dir.path());
    let xml = std::fs::read_to_string(d.folder.join(FILE)).unwrap();
    assert!(xml.contains("<achternaam>Jansen &amp; &lt;Zn&gt;</achternaam>"));
    assert!(
        xml.contains("<voorvoegsel>van &apos;t</voorvoegsel>")
            || xml.contains("<voorvoegsel>van 't</voorvoegsel>")
    );
    assert!(!xml.contains("secret@example.nl"), "e-mail is not allowed");
    assert!(!xml.contains("99AA00"), "org is not allowed");
    assert!(xml.contains("<leerkracht key=\"tea-1\">"));
    assert!(xml.contains("<samengestelde_groep key=\"cls-1\"><naam>H3A</naam>"));
    assert_eq!(d.row_hashes.len(), 4);
    assert!(
        d.row_hashes
            .contains_key(&(GROUPS.to_string(), "cls-1".to_string()))
    );
    assert!(!d.folder.join(DEACTIVATED).exists());
}

#[test]
fn a_deactivated_user_leaves_the_file_and_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let sink = EdexmlDrop::new(
        dir.path(),
        &[Field::Name, Field::Role],
        school(),
        snapshot(),
    );
    let cs = ChangeSet {
        users: Vec::new(),
        deactivated_users: vec!["stu-2"],
        groups: Vec::new(),
        ..Default::default()
    };
    let d = sink.deliver(4, &cs).unwrap();
    let xml = std::fs::read_to_string(d.folder.join(FILE)).unwrap();
    assert!(!xml.contains("stu-2"));
    assert!(xml.contains("<rolomschrijving>teacher</rolomschrijving>"));
    let csv = std::fs::read_to_string(d.folder.join(DEACTIVATED)).unwrap();
    assert_eq!(csv, "externalId,active\nstu-2,false\n");
}

#[test]
fn an_unfit_record_is_left_out_and_named_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = snapshot();
    s.users[1].middle_name = Some("van der den".into()); // 11 > 10
    s.groups[0].display_name = Some("x".repeat(65));
    let sink = EdexmlDrop::new(
        dir.path(),
        &[Field::Name, Field::Role, Field::Groups],
        school(),
        s,
    );
    let d = sink.deliver(5, &ChangeSet::default()).unwrap();
    let why = &d.refused[&(FILE.to_string(), "stu-2".to_string())];
    assert!(
        why.contains("leerling stu-2: the tussenvoegsel is longer than the 10 characters"),
        "{why}"
    );
    assert!(!why.contains("van der den"));
    let why = &d.refused[&(GROUPS.to_string(), "cls-1".to_string())];
    assert!(
        why.contains("class cls-1: the name is longer than the 64"),
        "{why}"
    );
    let xml = std::fs::read_to_string(d.folder.join(FILE)).unwrap();
    assert!(!xml.contains("stu-2") && !xml.contains("cls-1"), "{xml}");
    assert!(xml.contains("<leerling key=\"stu-1\">"));
    // nobody left: nothing delivered
    let mut s = snapshot();
    s.users.retain(|u| u.external_id == "stu-2");
    s.users[0].middle_name = Some("van der den".into());
    let sink = EdexmlDrop::new(dir.path(), &[Field::Name], school(), s);
    let before = std::fs::read_dir(dir.path()).unwrap().count();
    let e = sink.deliver(6, &ChangeSet::default()).unwrap_err();
    assert!(e.message.contains("no leerling to write"), "{}", e.message);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), before);
}

#[test]
fn erasure_cuts_the_person_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = deliver_snapshot(dir.path());
    let xml = std::fs::read(d.folder.join(FILE)).unwrap();
    let ids: BTreeSet<String> = ["stu-1".to_string()].into();
    let (new, n) = without_persons(&xml, &ids).unwrap();
    let new = String::from_utf8(new.unwrap()).unwrap();
    assert_eq!(n, 1);
    assert!(!new.contains("stu-1"));
    assert!(new.contains("stu-2") && new.contains("tea-1"));
    let all: BTreeSet<String> = ["stu-1".to_string(), "stu-2".to_string()].into();
    assert_eq!(without_persons(&xml, &all).unwrap(), (None, 2));
}
