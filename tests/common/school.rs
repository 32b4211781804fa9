//! One logical school, and the same school in every roster format sisync
//! reads: the conformance test (`tests/conformance.rs`) renders
//! [`school`] with the functions here, reads each rendering through the
//! library and compares the canonical rosters.
//!
//! The school has the Dutch edge cases the readers must keep: a
//! tussenvoegsel ("de", "van den", "'t"), diacritics (Zoë, Özdemir,
//! Søren), a student in three classes, teachers, a leaver (status
//! `tobedeleted`), exam accommodations, an ECK iD and a BSN.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};
use sisync::model::{
    Accommodations, Group, Membership, Org, Person, PersonalNeed, Role, Roster, Status,
};

/// The school's BRIN and dependance code (the org's sourcedId).
pub const SCHOOL: &str = "99AA00";
pub const SCHOOLJAAR: &str = "2024-2025";

fn eck(n: u32) -> String {
    format!("https://ketenid.nl/201703/{n:0128x}")
}

fn person(id: &str, role: Role, (given, middle, family): (&str, &str, &str)) -> Person {
    Person {
        sourced_id: id.into(),
        status: Status::Active,
        role: Some(role),
        username: Some(id.to_lowercase()),
        identifier: Some(id[1..].into()),
        given_name: given.into(),
        middle_name: (!middle.is_empty()).then(|| middle.into()),
        family_name: family.into(),
        // OKE requires one (`mail`); the school's domain for all
        email: Some(format!("{}@voorbeeld.nl", id.to_lowercase())),
        eck_id: Some(eck(id[1..].parse().unwrap())),
        bsn: None,
        orgs: vec![SCHOOL.into()],
        accommodations: Accommodations::default(),
    }
}

fn group(id: &str, title: &str, code: Option<&str>) -> Group {
    Group {
        sourced_id: id.into(),
        status: Status::Active,
        title: title.into(),
        code: code.map(String::from),
        org: Some(SCHOOL.into()),
        sessions: Vec::new(),
        course: None,
    }
}

/// The logical school: sorted by id, memberships by (group, person).
pub fn school() -> Roster {
    let v = |k: &str| format!("{SCHOOL}-{k}");
    let orgs = vec![
        Org {
            sourced_id: SCHOOL.into(),
            name: SCHOOL.into(),
            identifier: Some(SCHOOL.into()),
            kind: "school".into(),
            parent: None,
        },
        Org {
            sourced_id: v("V1"),
            name: "Hoofdgebouw".into(),
            identifier: None,
            kind: "vestiging".into(),
            parent: Some(SCHOOL.into()),
        },
        Org {
            sourced_id: v("V2"),
            name: "Dépendance Noord".into(),
            identifier: None,
            kind: "vestiging".into(),
            parent: Some(SCHOOL.into()),
        },
    ];
    let student = |id, name, vestiging: &str| {
        let mut p = person(id, Role::Student, name);
        p.orgs.push(v(vestiging));
        p
    };
    let mut jesse = student("L1001", ("Jesse", "de", "Vries"), "V1");
    jesse.email = Some("jesse.devries@leerling.voorbeeld.nl".into());
    jesse.bsn = Some("123456782".into());
    let mut zoe = student("L1002", ("Zoë", "van den", "Berg"), "V1");
    zoe.accommodations = Accommodations {
        extra_time_percent: Some(25),
        font_scale: Some(1.5),
        screen_reader: Some(true),
        ..Accommodations::default()
    };
    let mut emre = student("L1003", ("Emre", "", "Özdemir"), "V1");
    emre.email = Some("emre.ozdemir@leerling.voorbeeld.nl".into());
    let daan = student("L1004", ("Daan", "'t", "Smit"), "V2");
    let soren = student("L1005", ("Søren", "", "Jørgensen"), "V2");
    let mut leaver = student("L1006", ("Noor", "", "Visser"), "V2");
    leaver.status = Status::ToBeDeleted;
    let mut anna = person("T2001", Role::Teacher, ("Anna", "", "Dekker"));
    anna.email = Some("a.dekker@voorbeeld.nl".into());
    let pieter = person("T2002", Role::Teacher, ("Pieter", "van", "Hoek"));
    let persons = vec![jesse, zoe, emre, daan, soren, leaver, anna, pieter];
    let groups = vec![
        group("G7A", "7A", Some("7")),
        group("G7B", "7B", Some("7")),
        group("SG-PLUS", "Plusklas", None),
        group("SG-REK", "Rekenen – verlengde instructie", None),
    ];
    // each group's members; T… are teachers, L… pupils
    let members = [
        ("G7A", "L1001 L1002 L1003 T2001"),
        ("G7B", "L1004 L1005 T2002"),
        ("SG-PLUS", "L1001 L1003 T2001"),
        ("SG-REK", "L1003 L1004 T2002"),
    ];
    let memberships = members
        .iter()
        .flat_map(|&(group, people)| people.split(' ').map(move |p| (group, p)))
        .map(|(group, person)| Membership {
            status: Status::Active,
            group: group.into(),
            person: person.into(),
            role: if person.starts_with('T') {
                Role::Teacher
            } else {
                Role::Student
            },
        })
        .collect();
    Roster {
        orgs,
        persons,
        groups,
        memberships,
        ..Roster::default()
    }
}

/// The classes of `person`, in the order of the memberships.
fn classes_of<'a>(r: &'a Roster, person: &str) -> Vec<&'a Membership> {
    r.memberships
        .iter()
        .filter(|m| m.person == person)
        .collect()
}

fn status_str(s: Status) -> &'static str {
    match s {
        Status::Active => "active",
        Status::ToBeDeleted => "tobedeleted",
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A OneRoster CSV row of an active record: `sourcedId`, an empty
/// `status` and `dateLastModified`, then `rest`.
fn active_row(id: &str, rest: &[&str]) -> String {
    let mut fields = vec![id, "", ""];
    fields.extend_from_slice(rest);
    csv_row(&fields)
}

fn csv_row(fields: &[&str]) -> String {
    let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    line.join(",") + "\n"
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or_default()
}

/// `{ECK:…}{BSN:…}`, the OneRoster 1.2 `userIds` of a person.
fn user_ids(p: &Person) -> String {
    let mut s = String::new();
    if let Some(e) = &p.eck_id {
        write!(s, "{{ECK:{e}}}").unwrap();
    }
    if let Some(b) = &p.bsn {
        write!(s, "{{BSN:{b}}}").unwrap();
    }
    s
}

/// The roster as a OneRoster 1.2 CSV bulk export in `dir`.
pub fn write_oneroster_csv(r: &Roster, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let w = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();
    let mut manifest =
        String::from("propertyName,value\nmanifest.version,1.0\noneroster.version,1.2\n");
    for (file, mode) in [
        ("academicSessions", "absent"),
        ("categories", "absent"),
        ("classes", "bulk"),
        ("classResources", "absent"),
        ("courses", "absent"),
        ("courseResources", "absent"),
        ("demographics", "absent"),
        ("enrollments", "bulk"),
        ("lineItems", "absent"),
        ("orgs", "bulk"),
        ("resources", "absent"),
        ("results", "absent"),
        ("users", "bulk"),
        ("roles", "bulk"),
        ("userProfiles", "absent"),
    ] {
        writeln!(manifest, "file.{file},{mode}").unwrap();
    }
    w("manifest.csv", manifest);
    let mut orgs =
        String::from("sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\n");
    for o in &r.orgs {
        orgs += &active_row(
            &o.sourced_id,
            &[&o.name, &o.kind, opt(&o.identifier), opt(&o.parent)],
        );
    }
    w("orgs.csv", orgs);
    let mut users = String::from(
        "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,middleName,identifier,email,primaryOrgSourcedId,metadata.extraTimePercent,metadata.fontScale,metadata.screenReader\n",
    );
    let mut roles = String::from(
        "sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,userProfileSourcedId\n",
    );
    for p in &r.persons {
        let a = &p.accommodations;
        let status = match p.status {
            Status::Active => "",
            s => status_str(s),
        };
        users += &csv_row(&[
            &p.sourced_id,
            status,
            "",
            "true",
            opt(&p.username),
            &user_ids(p),
            &p.given_name,
            &p.family_name,
            opt(&p.middle_name),
            opt(&p.identifier),
            opt(&p.email),
            &p.orgs[0],
            &a.extra_time_percent
                .map(|x| x.to_string())
                .unwrap_or_default(),
            &a.font_scale.map(|x| x.to_string()).unwrap_or_default(),
            &a.screen_reader.map(|x| x.to_string()).unwrap_or_default(),
        ]);
        for (i, org) in p.orgs.iter().enumerate() {
            let kind = if i == 0 { "primary" } else { "secondary" };
            let role = p.role.unwrap().as_str();
            roles += &active_row(
                &format!("r{i}-{}", p.sourced_id),
                &[&p.sourced_id, kind, role, "", "", org, ""],
            );
        }
    }
    w("users.csv", users);
    w("roles.csv", roles);
    let mut classes = String::from(
        "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods\n",
    );
    for g in &r.groups {
        classes += &active_row(
            &g.sourced_id,
            &[
                &g.title,
                "",
                "",
                opt(&g.code),
                "homeroom",
                "",
                opt(&g.org),
                "",
                "",
                "",
                "",
            ],
        );
    }
    w("classes.csv", classes);
    let mut enrollments = String::from(
        "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate\n",
    );
    for m in &r.memberships {
        let school = r
            .groups
            .iter()
            .find(|g| g.sourced_id == m.group)
            .and_then(|g| g.org.clone());
        enrollments += &active_row(
            &format!("e-{}-{}", m.group, m.person),
            &[
                &m.group,
                opt(&school),
                &m.person,
                m.role.as_str(),
                "",
                "",
                "",
            ],
        );
    }
    w("enrollments.csv", enrollments);
}

/// When every OneRoster REST record was last modified.
pub const REST_MODIFIED: &str = "2026-09-01T08:00:00.000Z";

/// The roster as OneRoster 1.2 REST collections (entity → records), the
/// data of [`super::fake_oneroster::FakeOneRoster`].
pub fn oneroster_json(r: &Roster) -> std::collections::BTreeMap<String, Vec<Value>> {
    let mut d = std::collections::BTreeMap::new();
    let reference = |id: &Option<String>| id.as_ref().map(|p| json!({"sourcedId": p}));
    d.insert(
        "orgs".to_string(),
        r.orgs
            .iter()
            .map(|o| json!({"sourcedId": o.sourced_id, "status": "active", "dateLastModified": REST_MODIFIED, "name": o.name, "type": o.kind, "identifier": o.identifier, "parent": reference(&o.parent)}))
            .collect(),
    );
    d.insert(
        "classes".to_string(),
        r.groups
            .iter()
            .map(|g| json!({"sourcedId": g.sourced_id, "status": status_str(g.status), "dateLastModified": REST_MODIFIED, "title": g.title, "classCode": g.code, "school": reference(&g.org)}))
            .collect(),
    );
    let users: Vec<Value> = r
        .persons
        .iter()
        .map(|p| {
            let role = p.role.unwrap().as_str();
            let a = &p.accommodations;
            let mut meta = serde_json::Map::new();
            if let Some(x) = a.extra_time_percent {
                meta.insert("extraTimePercent".into(), json!(x));
            }
            if let Some(x) = a.font_scale {
                meta.insert("fontScale".into(), json!(x.to_string()));
            }
            if let Some(x) = a.screen_reader {
                meta.insert("screenReader".into(), json!(x));
            }
            let mut ids = Vec::new();
            if let Some(e) = &p.eck_id {
                ids.push(json!({"type": "ECK", "identifier": e}));
            }
            if let Some(b) = &p.bsn {
                ids.push(json!({"type": "BSN", "identifier": b}));
            }
            let roles: Vec<Value> = p
                .orgs
                .iter()
                .enumerate()
                .map(|(i, o)| json!({"roleType": if i == 0 { "primary" } else { "secondary" }, "role": role, "org": {"sourcedId": o}}))
                .collect();
            json!({"sourcedId": p.sourced_id, "status": status_str(p.status), "dateLastModified": REST_MODIFIED, "enabledUser": true,
                   "username": p.username, "userIds": ids, "givenName": p.given_name, "familyName": p.family_name,
                   "middleName": p.middle_name, "identifier": p.identifier, "email": p.email,
                   "roles": roles, "primaryOrg": {"sourcedId": p.orgs[0]}, "metadata": meta})
        })
        .collect();
    d.insert("users".to_string(), users);
    d.insert(
        "enrollments".to_string(),
        r.memberships
            .iter()
            .enumerate()
            .map(|(i, m)| {
                json!({"sourcedId": format!("enr-{i}"), "status": status_str(m.status), "dateLastModified": REST_MODIFIED,
                       "class": {"sourcedId": m.group}, "user": {"sourcedId": m.person}, "role": m.role.as_str()})
            })
            .collect(),
    );
    d
}

/// "Zoë van den Berg": given name, tussenvoegsel, family name.
fn full_name(p: &Person) -> String {
    [
        Some(&p.given_name),
        p.middle_name.as_ref(),
        Some(&p.family_name),
    ]
    .into_iter()
    .flatten()
    .map(String::as_str)
    .collect::<Vec<_>>()
    .join(" ")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The roster as one IMS Enterprise 1.1 bulk document (read it with
/// `role_map` default: Student and Faculty).
pub fn ims_enterprise_xml(r: &Roster) -> String {
    let e = xml_escape;
    let sid = |id: &str| {
        format!(
            "<sourcedid><source>VoorbeeldSIS</source><id>{}</id></sourcedid>",
            e(id)
        )
    };
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<enterprise>\n  <properties><datasource>VoorbeeldSIS</datasource><datetime>2026-09-01T08:00:00</datetime></properties>\n",
    );
    for p in &r.persons {
        let recstatus = match p.status {
            Status::Active => "",
            Status::ToBeDeleted => " recstatus=\"3\"",
        };
        write!(x, "  <person{recstatus}>{}", sid(&p.sourced_id)).unwrap();
        if let Some(u) = &p.username {
            write!(x, "<userid>{}</userid>", e(u)).unwrap();
        }
        let id_type = if p.role == Some(Role::Student) {
            "studentnumber"
        } else {
            "employeenumber"
        };
        for (t, v) in [
            (id_type, &p.identifier),
            ("ECK", &p.eck_id),
            ("BSN", &p.bsn),
        ] {
            if let Some(v) = v {
                write!(x, "<userid useridtype=\"{t}\">{}</userid>", e(v)).unwrap();
            }
        }
        let full = full_name(p);
        write!(
            x,
            "<name><fn>{}</fn><n><family>{}</family><given>{}</given>",
            e(&full),
            e(&p.family_name),
            e(&p.given_name)
        )
        .unwrap();
        if let Some(m) = &p.middle_name {
            write!(x, "<partname partnametype=\"Prefix\">{}</partname>", e(m)).unwrap();
        }
        x += "</n></name>";
        if let Some(m) = &p.email {
            write!(x, "<email>{}</email>", e(m)).unwrap();
        }
        let role = match p.role {
            Some(Role::Student) => "Student",
            _ => "Faculty",
        };
        write!(
            x,
            "<institutionrole primaryrole=\"Yes\" institutionroletype=\"{role}\"/>"
        )
        .unwrap();
        let a = &p.accommodations;
        if !a.is_empty() {
            x += "<extension>";
            if let Some(v) = a.extra_time_percent {
                write!(x, "<extraTimePercent>{v}</extraTimePercent>").unwrap();
            }
            if let Some(v) = a.font_scale {
                write!(x, "<fontScale>{v}</fontScale>").unwrap();
            }
            if let Some(v) = a.screen_reader {
                write!(x, "<screenReader>{v}</screenReader>").unwrap();
            }
            x += "</extension>";
        }
        x += "</person>\n";
    }
    let relationship = |parent: &Option<String>| match parent {
        Some(p) => format!(
            "<relationship relation=\"1\">{}<label>parent</label></relationship>",
            sid(p)
        ),
        None => String::new(),
    };
    for o in &r.orgs {
        let kind = match o.kind.as_str() {
            "school" => "School".to_string(),
            k => k.to_string(),
        };
        write!(x, "  <group>{}<grouptype><scheme>VoorbeeldSIS</scheme><typevalue level=\"1\">{kind}</typevalue></grouptype><description><long>{}</long></description><org><orgname>{}</orgname>", sid(&o.sourced_id), e(&o.name), e(&o.name)).unwrap();
        if let Some(i) = &o.identifier {
            write!(x, "<id>{}</id>", e(i)).unwrap();
        }
        writeln!(x, "</org>{}</group>", relationship(&o.parent)).unwrap();
    }
    for g in &r.groups {
        write!(x, "  <group>{}<grouptype><scheme>VoorbeeldSIS</scheme><typevalue level=\"1\">Class</typevalue></grouptype><description>", sid(&g.sourced_id)).unwrap();
        if let Some(c) = &g.code {
            write!(x, "<short>{}</short>", e(c)).unwrap();
        }
        writeln!(
            x,
            "<long>{}</long></description>{}</group>",
            e(&g.title),
            relationship(&g.org)
        )
        .unwrap();
    }
    let member = |person: &str, roletype: &str| {
        format!(
            "<member>{}<idtype>1</idtype><role roletype=\"{roletype}\"><status>1</status></role></member>",
            sid(person)
        )
    };
    for o in &r.orgs {
        let members: String = r
            .persons
            .iter()
            .filter(|p| p.orgs.contains(&o.sourced_id))
            .map(|p| {
                member(
                    &p.sourced_id,
                    if p.role == Some(Role::Student) {
                        "01"
                    } else {
                        "02"
                    },
                )
            })
            .collect();
        if !members.is_empty() {
            writeln!(
                x,
                "  <membership>{}{members}</membership>",
                sid(&o.sourced_id)
            )
            .unwrap();
        }
    }
    for g in &r.groups {
        let members: String = r
            .memberships
            .iter()
            .filter(|m| m.group == g.sourced_id)
            .map(|m| member(&m.person, if m.role == Role::Student { "01" } else { "02" }))
            .collect();
        writeln!(
            x,
            "  <membership>{}{members}</membership>",
            sid(&g.sourced_id)
        )
        .unwrap();
    }
    x + "</enterprise>\n"
}

/// The roster's active persons as one EDEXML 2.1 document of school
/// [`SCHOOL`] (EDEXML has no leavers: a leerling who left is absent;
/// nor accommodations or a student number).
pub fn edexml(r: &Roster) -> String {
    let e = xml_escape;
    let (brin, dep) = SCHOOL.split_at(4);
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<EDEX>\n  <school><schooljaar>{SCHOOLJAAR}</schooljaar><brincode>{brin}</brincode><dependancecode>{dep}</dependancecode><aanmaakdatum>2024-10-01T08:00:00</aanmaakdatum><auteur>VoorbeeldLAS</auteur><xsdversie>2.1</xsdversie></school>\n  <vestigingen>\n"
    );
    let key_of = |org: &str| org.strip_prefix(&format!("{SCHOOL}-")).map(String::from);
    for o in r.orgs.iter().filter(|o| o.kind == "vestiging") {
        writeln!(
            x,
            "    <vestiging key=\"{}\"><naam>{}</naam></vestiging>",
            e(&key_of(&o.sourced_id).unwrap()),
            e(&o.name)
        )
        .unwrap();
    }
    x += "  </vestigingen>\n  <groepen>\n";
    // the groepen before the samengestelde groepen, as the XSD wants
    for g in r.groups.iter().filter(|g| g.code.is_some()) {
        writeln!(
            x,
            "    <groep key=\"{}\"><naam>{}</naam><jaargroep>{}</jaargroep></groep>",
            e(&g.sourced_id),
            e(&g.title),
            e(opt(&g.code))
        )
        .unwrap();
    }
    for g in r.groups.iter().filter(|g| g.code.is_none()) {
        writeln!(
            x,
            "    <samengestelde_groep key=\"{}\"><naam>{}</naam></samengestelde_groep>",
            e(&g.sourced_id),
            e(&g.title)
        )
        .unwrap();
    }
    x += "  </groepen>\n  <leerlingen>\n";
    let active = |role: Role| {
        r.persons
            .iter()
            .filter(move |p| p.status == Status::Active && p.role == Some(role))
    };
    let is_groep = |id: &str| {
        r.groups
            .iter()
            .any(|g| g.sourced_id == id && g.code.is_some())
    };
    let names = |p: &Person| {
        let mut s = format!("<achternaam>{}</achternaam>", e(&p.family_name));
        if let Some(m) = &p.middle_name {
            write!(s, "<voorvoegsel>{}</voorvoegsel>", e(m)).unwrap();
        }
        write!(
            s,
            "<voornamen>{0}</voornamen><roepnaam>{0}</roepnaam>",
            e(&p.given_name)
        )
        .unwrap();
        s
    };
    let eck_attr = |p: &Person| {
        p.eck_id
            .as_ref()
            .map(|i| format!(" eckid=\"{}\"", e(i)))
            .unwrap_or_default()
    };
    for p in active(Role::Student) {
        let classes = classes_of(r, &p.sourced_id);
        let groep = classes.iter().find(|m| is_groep(&m.group));
        let jaargroep = groep
            .and_then(|m| r.groups.iter().find(|g| g.sourced_id == m.group))
            .and_then(|g| g.code.clone());
        write!(x, "    <leerling key=\"{}\"{}>{}<geboortedatum>2013-01-10</geboortedatum><geslacht>0</geslacht>", e(&p.sourced_id), eck_attr(p), names(p)).unwrap();
        if let Some(j) = jaargroep {
            write!(x, "<jaargroep>{}</jaargroep>", e(&j)).unwrap();
        }
        if let Some(m) = groep {
            write!(x, "<groep key=\"{}\"/>", e(&m.group)).unwrap();
        }
        let sg: String = classes
            .iter()
            .filter(|m| !is_groep(&m.group))
            .map(|m| format!("<samengestelde_groep key=\"{}\"/>", e(&m.group)))
            .collect();
        if !sg.is_empty() {
            write!(x, "<samengestelde_groepen>{sg}</samengestelde_groepen>").unwrap();
        }
        if let Some(v) = p.orgs.iter().find_map(|o| key_of(o)) {
            write!(x, "<vestiging key=\"{}\"/>", e(&v)).unwrap();
        }
        if let Some(u) = &p.username {
            write!(x, "<gebruikersnaam>{}</gebruikersnaam>", e(u)).unwrap();
        }
        if let Some(m) = &p.email {
            write!(x, "<emailadres>{}</emailadres>", e(m)).unwrap();
        }
        if let Some(b) = &p.bsn {
            write!(x, "<bsn>{}</bsn>", e(b)).unwrap();
        }
        x += "</leerling>\n";
    }
    x += "  </leerlingen>\n  <leerkrachten>\n";
    for p in active(Role::Teacher) {
        write!(
            x,
            "    <leerkracht key=\"{}\"{}>{}",
            e(&p.sourced_id),
            eck_attr(p),
            names(p)
        )
        .unwrap();
        if let Some(u) = &p.username {
            write!(x, "<gebruikersnaam>{}</gebruikersnaam>", e(u)).unwrap();
        }
        if let Some(m) = &p.email {
            write!(x, "<emailadres>{}</emailadres>", e(m)).unwrap();
        }
        x += "<rol>LRK</rol><groepen>";
        for m in classes_of(r, &p.sourced_id) {
            let tag = if is_groep(&m.group) {
                "groep"
            } else {
                "samengestelde_groep"
            };
            write!(x, "<{tag} key=\"{}\"/>", e(&m.group)).unwrap();
        }
        x += "</groepen></leerkracht>\n";
    }
    x + "  </leerkrachten>\n</EDEX>\n"
}

/// The OKE form of a record id: OOAPI ids are UUIDs, so the id's bytes
/// (at most 15) are written into the hex digits of one; [`from_oke_uuid`]
/// reads them back.
/// An OKE sitting (an offering of type component) on 21 January 2027,
/// active for the test admin, of the MBO-NED test `component`.
pub fn oke_offering(id: &str, code: &str, name: &str, description: &str, component: &str) -> Value {
    let lang = |v: &str| json!([{"language": "nl-NL", "value": v}]);
    json!({
        "offeringId": id,
        "primaryCode": {"codeType": "offeringCode", "code": code},
        "offeringType": "component",
        "name": lang(name),
        "description": lang(description),
        "teachingLanguage": "nld",
        "resultExpected": true,
        "startDateTime": "2027-01-21T12:45:00.000Z",
        "endDateTime": "2027-01-21T13:45:00.000Z",
        "consumers": [{
            "consumerKey": "nl-test-admin",
            "offeringState": "active",
            "testsToBeUsed": [{"testProvider": "MBO-NED", "componentId": component}]
        }]
    })
}

pub fn oke_uuid(id: &str) -> String {
    assert!(id.len() <= 15, "{id}: too long for an OKE test id");
    let mut hex: String = id.bytes().map(|b| format!("{b:02x}")).collect();
    hex.extend(std::iter::repeat_n('0', 30 - hex.len()));
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..15],
        &hex[15..18],
        &hex[18..]
    )
}

/// The record id an [`oke_uuid`] stands for.
pub fn from_oke_uuid(uuid: &str) -> String {
    let hex: String = uuid
        .split('-')
        .enumerate()
        .map(|(i, part)| if i == 2 || i == 3 { &part[1..] } else { part })
        .collect();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .take_while(|b| *b != 0)
        .collect();
    String::from_utf8(bytes).unwrap()
}

/// The OKE personal-needs codes that stand for exam accommodations.
pub fn oke_need_codes(a: &Accommodations) -> Vec<&'static str> {
    let mut v = Vec::new();
    if a.extra_time_percent.is_some() {
        v.push("extraTime");
    }
    if a.screen_reader == Some(true) {
        v.push("spoken");
    }
    v
}

/// The roster in an OKE SIS (flow 1, with the class context): one exam
/// sitting every active person is registered for (students as `student`,
/// teachers as `lecturer`), the persons with their accommodations as
/// assigned needs, and the classes as groups with their members.
pub fn fill_oke_sis(r: &Roster, sis: &super::fake_oke::FakeOke) {
    let lang = |v: &str| json!([{"language": "nl-NL", "value": v}]);
    let mut g = sis.inner.lock().unwrap();
    let sitting = oke_uuid("sitting");
    g.offerings.insert(
        sitting.clone(),
        oke_offering(
            &sitting,
            "REK-1F",
            "Rekenen 1F",
            "Rekenen 1F",
            &oke_uuid("REK-1F"),
        ),
    );
    for p in r.persons.iter().filter(|p| p.status == Status::Active) {
        let pid = oke_uuid(&p.sourced_id);
        let aid = oke_uuid(&format!("a-{}", p.sourced_id));
        let student = p.role == Some(Role::Student);
        g.associations.insert(
            aid.clone(),
            json!({
                "associationId": aid,
                "associationType": "componentOfferingAssociation",
                "role": if student { "student" } else { "lecturer" },
                "state": "associated",
                "consumers": [{"consumerKey": "nl-test-admin"}],
                "person": pid,
                "offering": sitting,
            }),
        );
        let display = full_name(p);
        let needs: Vec<Value> = oke_need_codes(&p.accommodations)
            .into_iter()
            .map(|c| json!({"code": c}))
            .collect();
        let mut person = json!({
            "personId": pid,
            "primaryCode": {"codeType": if student { "studentNumber" } else { "employeeNumber" }, "code": p.username},
            "givenName": p.given_name,
            "surname": p.family_name,
            "displayName": display,
            "activeEnrollment": true,
            "affiliations": [if student { "student" } else { "employee" }],
            "consumers": [{"consumerKey": "nl-test-admin", "assignedNeeds": needs}]
        });
        let o = person.as_object_mut().unwrap();
        if let Some(m) = &p.middle_name {
            o.insert("surnamePrefix".into(), json!(m));
        }
        if let Some(m) = &p.email {
            o.insert("mail".into(), json!(m));
        }
        if let Some(e) = &p.eck_id {
            o.insert(
                "otherCodes".into(),
                json!([{"codeType": "eckid", "code": e}]),
            );
        }
        g.persons.insert(pid, person);
    }
    for grp in &r.groups {
        let gid = oke_uuid(&grp.sourced_id);
        g.groups.insert(
            gid.clone(),
            json!({
                "groupId": gid,
                "groupType": "class",
                "name": lang(&grp.title),
                "primaryCode": {"codeType": "groupCode", "code": grp.code.as_ref().unwrap_or(&grp.sourced_id)},
            }),
        );
        let members = r
            .memberships
            .iter()
            .filter(|m| m.group == grp.sourced_id)
            .map(|m| {
                json!({
                    "personId": oke_uuid(&m.person),
                    "startDateTime": "2024-08-19T08:00:00+02:00",
                    "state": "active",
                    "role": if m.role == Role::Student { "student" } else { "lecturer" },
                })
            })
            .collect();
        g.members.insert(gid, members);
    }
}

/// Unused-field guard: the renderings above know every field of the
/// canonical types; a new field breaks this until they learn it.
#[allow(dead_code)]
fn fields_known(p: &Person, a: &Accommodations, n: &PersonalNeed) {
    let Person {
        sourced_id: _,
        status: _,
        role: _,
        username: _,
        identifier: _,
        given_name: _,
        middle_name: _,
        family_name: _,
        email: _,
        eck_id: _,
        bsn: _,
        orgs: _,
        accommodations: _,
    } = p;
    let Accommodations {
        extra_time_percent: _,
        extra_time_minutes: _,
        personal_needs: _,
        font_scale: _,
        screen_reader: _,
        other: _,
    } = a;
    let PersonalNeed {
        code: _,
        start: _,
        end: _,
    } = n;
}
