//! Parser tests: the bundled fixtures plus small hand-made exports for
//! the edge cases (BOM, embedded newlines, bad rows, zip, no manifest).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;
use crate::connector::source::oneroster::config::OneRosterCsvSource;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn source(path: &Path) -> OneRosterCsv {
    OneRosterCsv::new(&OneRosterCsvSource {
        path: path.to_path_buf(),
        role_map: Default::default(),
        accommodations: Default::default(),
    })
}

fn read(path: &Path) -> Roster {
    source(path).read(&|_| {}).unwrap()
}

fn person<'a>(r: &'a Roster, id: &str) -> &'a Person {
    r.persons
        .iter()
        .find(|p| p.sourced_id == id)
        .unwrap_or_else(|| panic!("{id} not read"))
}

fn write(dir: &Path, file: &str, content: &str) {
    std::fs::write(dir.join(file), content).unwrap();
}

const USERS_12: &str = "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,middleName,identifier,email,primaryOrgSourcedId,metadata.extraTimePercent\n";
const ROLES_12: &str = "sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,userProfileSourcedId\n";
const CLASSES: &str = "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods\n";
const ENROLL: &str = "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate\n";

/// The error of a read that must fail.
fn read_err(path: &Path) -> String {
    source(path).read(&|_| {}).unwrap_err().to_string()
}

/// The error of a read that must fail, checked to contain `want`.
fn read_fails_with(path: &Path, want: &str) -> String {
    let e = read_err(path);
    assert!(e.contains(want), "{e}");
    e
}

/// [`small_export`] in a fresh directory, with `files` (name, content)
/// written over it: the edge case of a test.
fn export_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    small_export(dir.path());
    for (name, content) in files {
        write(dir.path(), name, content);
    }
    dir
}

/// A CSV file's bytes: the header and rows that need not be UTF-8.
fn rows(header: &str, rows: &[&[u8]]) -> Vec<u8> {
    let mut bytes = header.as_bytes().to_vec();
    for r in rows {
        bytes.extend_from_slice(r);
    }
    bytes
}

/// [`export_with`] these rows under the 1.2 header as users.csv.
fn users_export(rows: &str) -> tempfile::TempDir {
    export_with(&[("users.csv", &format!("{USERS_12}{rows}"))])
}

/// A small 1.2 export; callers replace files to make edge cases.
fn small_export(dir: &Path) {
    let files = [
        ("manifest.csv", "propertyName,value\nmanifest.version,1.0\noneroster.version,1.2\nfile.orgs,bulk\nfile.classes,bulk\nfile.users,bulk\nfile.roles,bulk\nfile.enrollments,bulk\nfile.demographics,bulk\n".to_string()),
        ("orgs.csv", "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\no1,,,School,school,99AA00,\n".to_string()),
        ("classes.csv", format!("{CLASSES}c1,,,H3A,09,,,scheduled,,o1,\"t1,t2\",,,\n")),
        ("users.csv", format!("{USERS_12}s1,,,true,a,,Anna,Bakker,,1,a@x.nl,o1,25\ns2,,,true,b,,Bram,Visser,,2,b@x.nl,o1,\n")),
        ("roles.csv", format!("{ROLES_12}r1,,,s1,primary,student,,,o1,\nr2,,,s2,primary,student,,,o1,\n")),
        ("enrollments.csv", format!("{ENROLL}e1,,,c1,o1,s1,student,false,,\ne2,,,c1,o1,s2,student,false,,\n")),
    ];
    for (name, content) in files {
        write(dir, name, &content);
    }
    // never opened: a demographics file that would not even parse
    write(dir, "demographics.csv", "\"unterminated\n");
}

#[test]
fn reads_the_1_2_fixture() {
    let r = read(&fixture("oneroster-1.2"));
    assert_eq!(r.format, "OneRoster 1.2 CSV");
    assert!(r.issues.is_empty(), "{:?}", r.issues);
    assert_eq!(r.persons.len(), 42, "36 students, 5 teachers, 1 proctor");
    let count = |role| r.persons.iter().filter(|p| p.role == Some(role)).count();
    assert_eq!(count(Role::Student), 36);
    assert_eq!(count(Role::Teacher), 5);
    assert_eq!(count(Role::Proctor), 1);
    assert_eq!(r.ignored, 3, "administrator and two guardians");
    assert_eq!(r.groups.len(), 6);
    assert_eq!(r.memberships.len(), 80);
    assert_eq!(r.orgs.len(), 3);
    assert_eq!(r.persons_completeness, Completeness::Bulk);
    // users.csv has a BOM and CRLF: the first column still resolves
    let s = person(&r, "stu-1003");
    assert_eq!(s.given_name, "Zoë");
    assert_eq!(s.middle_name.as_deref(), Some("van der"));
    assert_eq!(s.orgs, vec!["org-99AA00".to_string()]);
    assert_eq!(s.accommodations.extra_time_percent, Some(25));
    assert_eq!(s.accommodations.font_scale, Some(1.5));
    assert_eq!(s.accommodations.screen_reader, Some(false));
    assert_eq!(person(&r, "stu-1012").family_name, "Jansen, Jr.");
    assert_eq!(person(&r, "stu-1033").orgs[0], "org-99AA01");
    let holders = r
        .persons
        .iter()
        .filter(|p| !p.accommodations.is_empty())
        .count();
    assert_eq!(holders, 5);
}

#[test]
fn the_1_1_fixture_reads_the_same_roster() {
    let a = read(&fixture("oneroster-1.1"));
    let b = read(&fixture("oneroster-1.2"));
    assert_eq!(a.format, "OneRoster 1.1 CSV");
    assert!(a.issues.is_empty(), "{:?}", a.issues);
    let sort = |mut v: Vec<Person>| {
        v.sort_by(|x, y| x.sourced_id.cmp(&y.sourced_id));
        v
    };
    assert_eq!(sort(a.persons), sort(b.persons));
    assert_eq!(a.groups.len(), b.groups.len());
    assert_eq!(a.memberships.len(), b.memberships.len());
}

#[test]
fn delta_fixture_marks_changes() {
    let r = read(&fixture("oneroster-1.2-delta"));
    assert_eq!(r.persons_completeness, Completeness::Delta);
    assert_eq!(r.memberships_completeness, Completeness::Delta);
    assert_eq!(r.groups_completeness, Completeness::Absent);
    assert_eq!(person(&r, "stu-1009").family_name, "Brouwer");
    assert_eq!(
        person(&r, "stu-1009").role,
        None,
        "no roles row in the delta"
    );
    assert_eq!(person(&r, "stu-1037").role, Some(Role::Student));
    assert_eq!(person(&r, "stu-1014").status, Status::ToBeDeleted);
    assert_eq!(person(&r, "stu-1037").status, Status::Active);
    let removed = r
        .memberships
        .iter()
        .filter(|m| m.status == Status::ToBeDeleted)
        .count();
    assert_eq!(removed, 3);
    assert!(r.issues.is_empty(), "{:?}", r.issues);
}

#[test]
fn reads_a_zip_with_a_top_folder() {
    let dir = tempfile::tempdir().unwrap();
    let zpath = dir.path().join("export.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&zpath).unwrap());
    let opts: zip::write::SimpleFileOptions = Default::default();
    for e in std::fs::read_dir(fixture("oneroster-1.2"))
        .unwrap()
        .flatten()
    {
        let name = format!("export/{}", e.file_name().to_string_lossy());
        zip.start_file(name, opts).unwrap();
        zip.write_all(&std::fs::read(e.path()).unwrap()).unwrap();
    }
    zip.finish().unwrap();
    let r = read(&zpath);
    assert_eq!(r.persons.len(), 42);
    assert_eq!(r.memberships.len(), 80);
    assert!(source(&zpath).probe().unwrap().contains("zip"));
}

#[test]
fn embedded_newlines_commas_and_bom_in_small_export() {
    let dir = export_with(&[(
        "users.csv",
        &format!(
            "\u{feff}{USERS_12}s1,,,true,a,\"{{ECK:x}}\n{{BSN:y}}\",Anna,\"Bakker, Jr.\",,1,a@x.nl,o1,25\ns2,,,true,b,,Bram,Visser,,2,b@x.nl,o1,\ns3,,,true,c,,\"Anna\nMaria\",Smit,,3,,o1,\ns4,,,true,d,,Do,Vos,,4,,o1,lots\n"
        ),
    )]);
    let r = read(dir.path());
    let s1 = person(&r, "s1");
    assert_eq!(s1.given_name, "Anna");
    assert_eq!(s1.family_name, "Bakker, Jr.");
    assert_eq!(r.persons.len(), 2);
    // a line break inside a name is held, not sent; the rows after the
    // two-line records are reported on their real lines
    let issues: Vec<String> = r.issues.iter().map(|i| i.to_string()).collect();
    assert_eq!(
        issues,
        [
            "users.csv:5: record s3: givenName contains the control character U+000A; fix it in the SIS",
            "users.csv:7: record s4: user has no role (roles.csv)",
        ]
    );
    assert!(r.held_persons.contains("s3"));
}

#[test]
fn a_user_row_without_id_fails_the_read() {
    let dir = users_export("s1,,,true,a,,Anna,Bakker,,1,a@x.nl,o1,\n,,,true,c,,No,Id,,3,,o1,\n");
    let e = read_err(dir.path());
    assert!(e.ends_with("users.csv:3: a user row without sourcedId; sisync cannot tell whose row it is, so the export cannot be trusted. Fix that row in the SIS export"), "{e}");
}

#[test]
fn bad_rows_are_reported_with_file_line_and_skipped() {
    let dir = export_with(&[
        (
            "users.csv",
            &format!(
                "{USERS_12}s1,,,true,a,,Anna,Bakker,,1,a@x.nl,o1,25\ns1,,,true,a,,Dup,Licate,,1,a@x.nl,o1,\ns2,,,true,b,,Bram,Visser,,2,b@x.nl,o1,lots\ns3,,,true,c,,Short,Row\ns4,,,true,d,,Dirk,Dijk,,4,,o1,\n"
            ),
        ),
        (
            "roles.csv",
            &format!(
                "{ROLES_12}r1,,,s1,primary,student,,,o1,\nr2,,,s2,primary,student,,,o1,\nr4,,,s4,primary,student,,,o1,\n"
            ),
        ),
        (
            "enrollments.csv",
            &format!(
                "{ENROLL}e1,,,c1,o1,s1,student,false,,\ne2,,,c1,o1,ghost,student,false,,\ne3,,,nope,o1,s1,student,false,,\ne4,,,c1,o1,s4,student,false,,\n"
            ),
        ),
    ]);
    let r = read(dir.path());
    let got: Vec<String> = r.issues.iter().map(|i| i.to_string()).collect();
    assert_eq!(
        got,
        vec![
            "users.csv:3: record s1: duplicate sourcedId",
            "users.csv:4: record s2: metadata.extraTimePercent \"lots\" is not a whole percentage",
            "users.csv:5: record s3: row has 8 fields, header has 13; held as it was",
            "enrollments.csv:3: record e2: userSourcedId ghost is not in users.csv",
            "enrollments.csv:4: record e3: classSourcedId nope is not in classes.csv",
        ]
    );
    let ids: Vec<&str> = r.persons.iter().map(|p| p.sourced_id.as_str()).collect();
    assert_eq!(ids, vec!["s1", "s4"]);
    assert_eq!(
        person(&r, "s1").given_name,
        "Anna",
        "first of the duplicates wins"
    );
    // damaged rows of known people are held, never taken as 'left'
    assert!(r.held_persons.contains("s2") && r.held_persons.contains("s3"));
    assert_eq!(r.memberships.len(), 2);
}

#[test]
fn version_is_detected_without_a_manifest() {
    let dir = export_with(&[]);
    std::fs::remove_file(dir.path().join("manifest.csv")).unwrap();
    let r = read(dir.path());
    assert_eq!(r.format, "OneRoster 1.2 CSV");
    assert_eq!(r.persons.len(), 2);
    std::fs::remove_file(dir.path().join("roles.csv")).unwrap();
    write(
        dir.path(),
        "users.csv",
        "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName\ns1,active,,true,o1,teacher,a,,Anna,Bakker\n",
    );
    let r = read(dir.path());
    assert_eq!(r.format, "OneRoster 1.1 CSV");
    assert_eq!(person(&r, "s1").role, Some(Role::Teacher));
}

#[test]
fn missing_declared_file_is_fatal_with_what_to_do() {
    let dir = export_with(&[]);
    std::fs::remove_file(dir.path().join("users.csv")).unwrap();
    read_fails_with(
        dir.path(),
        "users.csv is missing but manifest.csv declares file.users = bulk",
    );
}

#[test]
fn missing_required_column_is_fatal() {
    let dir = export_with(&[("users.csv", "id,givenName,familyName\ns1,A,B\n")]);
    read_fails_with(dir.path(), "users.csv:1: required column \"sourcedId\"");
}

#[test]
fn invalid_utf8_row_is_held_by_its_id() {
    let dir = export_with(&[]);
    let bytes = rows(
        USERS_12,
        &[
            b"s1,,,true,a,,Zo\xeb,Bakker,,1,,o1,\n",
            b"s2,,,true,b,,Bram,Visser,,2,,o1,\n",
        ],
    );
    std::fs::write(dir.path().join("users.csv"), bytes).unwrap();
    let r = read(dir.path());
    assert_eq!(r.persons.len(), 1);
    assert_eq!(r.issues[0].location, "users.csv:2");
    assert_eq!(r.issues[0].record_id.as_deref(), Some("s1"));
    assert!(r.issues[0].reason.contains("UTF-8"));
    // held: the planner leaves s1 as it is instead of deactivating it
    assert!(r.held_persons.contains("s1"));
}

#[test]
fn a_damaged_row_without_readable_id_fails_the_read() {
    let dir = export_with(&[]);
    let bytes = rows(USERS_12, &[b"s\xe91,,,true,a,,Zo\xeb,Bakker,,1,,o1,\n"]);
    std::fs::write(dir.path().join("users.csv"), bytes).unwrap();
    let e = read_fails_with(dir.path(), "users.csv:2: a damaged row");
    assert!(e.contains("cannot be trusted"), "{e}");
}

#[test]
fn a_stray_quote_fails_the_read_with_its_line() {
    let dir = export_with(&[]);
    let mut users = USERS_12.to_string();
    users.push_str("s1,,,true,a,,Anna,Bakker,,1,a@x.nl,o1,\n");
    users.push_str("s2,,,true,b,,\"Bram,Visser,,2,b@x.nl,o1,\n");
    for i in 3..200 {
        users.push_str(&format!("s{i},,,true,x,,Xe,Ye,,{i},,o1,\n"));
    }
    write(dir.path(), "users.csv", &users.replace('\n', "\r\n"));
    let e = read_fails_with(dir.path(), "the rest of the file cannot be read");
    assert!(
        e.contains("users.csv:3: a quoted field never ends"),
        "line counted through CRLF: {e}"
    );
}

#[test]
fn a_stray_quote_closed_rows_later_fails_too() {
    // the rows between the two quotes would vanish from the export
    let dir = export_with(&[]);
    let users = format!(
        "{USERS_12}s1,,,true,a,,\"Anna,Bakker,,1,a@x.nl,o1,\ns2,,,true,b,,Bram,Visser\",,2,b@x.nl,o1,\n"
    );
    write(dir.path(), "users.csv", &users);
    read_fails_with(
        dir.path(),
        "users.csv:2: a quoted field runs into the next rows",
    );
}

#[test]
fn a_huge_field_is_stopped_early_with_bounded_memory() {
    let dir = export_with(&[]);
    // one unterminated quote followed by 20 MB without a line break
    let mut bytes = format!("{USERS_12}s1,,,true,a,,\"").into_bytes();
    bytes.resize(bytes.len() + (20 << 20), b'x');
    std::fs::write(dir.path().join("users.csv"), bytes).unwrap();
    read_fails_with(dir.path(), "users.csv:2: a quoted field never ends");
}

#[test]
fn skipped_rows_are_listed_up_to_a_cap_and_counted() {
    let dir = export_with(&[]);
    let mut users = USERS_12.to_string();
    for i in 0..2500 {
        users.push_str(&format!("s{i},,,true,x,,Xe,Ye,,{i},,o1,lots\n"));
    }
    write(dir.path(), "users.csv", &users);
    let r = read(dir.path());
    assert_eq!(r.issues.len(), MAX_ISSUES_PER_FILE + 1);
    assert_eq!(
        r.issues.last().unwrap().reason,
        "1500 more rows skipped in this file (the first 1000 are listed)"
    );
    // every one of them is still held
    assert_eq!(r.held_persons.len(), 2500);
}

#[test]
fn a_bad_enrolment_row_holds_its_class() {
    let dir = export_with(&[]);
    let bytes = rows(
        ENROLL,
        &[
            b"e1,,,c1,o1,s1,student,false,,\n",
            b"e2,,,c1,o1,s2,student\n",
        ],
    );
    std::fs::write(dir.path().join("enrollments.csv"), &bytes).unwrap();
    let r = read(dir.path());
    assert!(r.held_groups.contains("c1"), "{:?}", r.issues);
    assert_eq!(r.issues[0].location, "enrollments.csv:3");
    // not UTF-8: held as well
    let bytes = rows(
        ENROLL,
        &[
            b"e1,,,c1,o1,s1,student,false,,\n",
            b"e2,\xff,,c1,o1,s2,student,false,,\n",
        ],
    );
    std::fs::write(dir.path().join("enrollments.csv"), bytes).unwrap();
    let r = read(dir.path());
    assert!(r.held_groups.contains("c1"), "{:?}", r.issues);
}

#[test]
fn exports_that_hold_nothing_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let named = dir.path().join("OneRoster 1.1 CSV");
    std::fs::create_dir(&named).unwrap();
    read_fails_with(&named, "holds no CSV files");
    // the export one folder down: say where
    read_fails_with(dir.path(), "point source.path at");

    // a manifest that declares every file absent
    let d2 = tempfile::tempdir().unwrap();
    write(
        d2.path(),
        "manifest.csv",
        "propertyName,value\noneroster.version,1.2\nfile.users,absent\nfile.classes,absent\nfile.enrollments,absent\n",
    );
    read_fails_with(d2.path(), "declares them all absent");
    // garbage as a manifest
    write(d2.path(), "manifest.csv", "\u{0}\u{1}garbage\nmore,junk\n");
    read_fails_with(d2.path(), "is not a OneRoster manifest");

    let zips = tempfile::tempdir().unwrap();
    let make = |name: &str, entries: &[(&str, &[u8])]| {
        let p = zips.path().join(name);
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
        for (n, data) in entries {
            zip.start_file(*n, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap();
        p
    };
    let empty = make("empty.zip", &[]);
    read_fails_with(&empty, "no users.csv, classes.csv or enrollments.csv");
    let nested = make(
        "nested.zip",
        &[("inner.zip", &std::fs::read(&empty).unwrap())],
    );
    read_fails_with(&nested, "holds another zip (inner.zip)");
    let users = format!("{USERS_12}s1,,,true,a,,Anna,Bakker,,1,a@x.nl,o1,\n");
    let two = make(
        "two.zip",
        &[
            ("a/users.csv", users.as_bytes()),
            ("b/users.csv", users.as_bytes()),
        ],
    );
    read_fails_with(&two, "holds users.csv twice (a/users.csv and b/users.csv)");
}

#[test]
fn a_semicolon_separated_export_says_so() {
    let dir = export_with(&[(
        "users.csv",
        "sourcedId;givenName;familyName\ns1;Anna;Bakker\n",
    )]);
    read_fails_with(
        dir.path(),
        "users.csv:1: the columns are separated by semicolons",
    );
}

/// Excel's "Unicode" saves: UTF-16 with a byte-order mark reads as the
/// UTF-8 export does; tab-separated columns are named as the problem.
#[test]
fn a_utf16_export_reads_as_its_utf8_twin_and_tabs_are_named() {
    let want = read(&fixture("oneroster-1.2"));
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture("oneroster-1.2")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let le = path.file_name().unwrap() == "users.csv";
        let mut bytes = if le {
            vec![0xFF, 0xFE]
        } else {
            vec![0xFE, 0xFF]
        };
        for unit in text.encode_utf16() {
            bytes.extend(if le {
                unit.to_le_bytes()
            } else {
                unit.to_be_bytes()
            });
        }
        std::fs::write(dir.path().join(path.file_name().unwrap()), bytes).unwrap();
    }
    let got = read(dir.path());
    assert_eq!(got.persons, want.persons);
    assert_eq!(got.groups, want.groups);
    assert_eq!(got.memberships, want.memberships);
    assert!(got.persons.iter().any(|p| p.given_name == "Zoë"));

    let tabs = export_with(&[(
        "users.csv",
        "sourcedId\tgivenName\tfamilyName\ns1\tAnna\tBakker\n",
    )]);
    read_fails_with(
        tabs.path(),
        "users.csv:1: the columns are separated by tabs",
    );
}

#[test]
fn duplicate_headers_and_non_files_are_refused() {
    let dir = export_with(&[(
        "users.csv",
        "sourcedId,givenName,familyName,email,EMAIL\ns1,A,B,a@x.nl,b@x.nl\n",
    )]);
    read_fails_with(dir.path(), "users.csv:1: column \"EMAIL\" appears twice");

    std::fs::remove_file(dir.path().join("users.csv")).unwrap();
    std::fs::create_dir(dir.path().join("users.csv")).unwrap();
    read_fails_with(dir.path(), "users.csv is not a regular file");

    std::fs::remove_dir(dir.path().join("users.csv")).unwrap();
    let fifo = dir.path().join("users.csv");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    read_fails_with(dir.path(), "users.csv is not a regular file");
}

#[test]
fn disabled_and_tobedeleted_users_are_leaving() {
    let dir = users_export(
        "s1,tobedeleted,,true,a,,Anna,Bakker,,1,,o1,\ns2,,,false,b,,Bram,Visser,,2,,o1,\n",
    );
    let r = read(dir.path());
    assert!(r.persons.iter().all(|p| p.status == Status::ToBeDeleted));
}

/// One rule with the REST source (`connector::source::oneroster::vocab::role_rule`):
/// a leaver whose roles row is gone is still read, to be deactivated with
/// the role it had; an active user without one is held.
#[test]
fn a_leaver_without_a_role_is_read_and_an_active_one_held() {
    let dir = export_with(&[
        (
            "users.csv",
            &format!(
                "{USERS_12}s1,tobedeleted,,true,a,,Anna,Bakker,,1,,o1,\ns2,,,true,b,,Bram,Visser,,2,,o1,\ns3,,,true,c,,Cas,Smit,,3,,o1,\n"
            ),
        ),
        (
            "roles.csv",
            &format!("{ROLES_12}r3,,,s3,primary,student,,,o1,\n"),
        ),
    ]);
    let r = read(dir.path());
    let s1 = r
        .persons
        .iter()
        .find(|p| p.sourced_id == "s1")
        .expect("the leaver is read");
    assert_eq!((s1.status, s1.role), (Status::ToBeDeleted, None));
    assert!(r.persons.iter().all(|p| p.sourced_id != "s2"));
    assert!(r.held_persons.contains("s2"), "{:?}", r.issues);
    assert!(r.persons.iter().any(|p| p.sourced_id == "s3"));
}

#[test]
fn role_map_brings_in_staff_roles() {
    let dir = export_with(&[(
        "roles.csv",
        &format!("{ROLES_12}r1,,,s1,primary,aide,,,o1,\nr2,,,s2,primary,student,,,o1,\n"),
    )]);
    assert_eq!(
        read(dir.path()).persons.len(),
        1,
        "aide is not synced by default"
    );
    let mut map = std::collections::BTreeMap::new();
    map.insert("aide".to_string(), "assessor".to_string());
    let src = OneRosterCsv::new(&OneRosterCsvSource {
        path: dir.path().to_path_buf(),
        role_map: map,
        accommodations: Default::default(),
    });
    let r = src.read(&|_| {}).unwrap();
    assert_eq!(person(&r, "s1").role, Some(Role::Assessor));
}

#[test]
fn a_file_s_rows_are_estimated_from_its_size_as_a_hint_only() {
    // 10 rows took 100 bytes of a 1,000-byte file: about 100 rows, with slack
    assert_eq!(super::expected_rows(Some(1000), 10, 100), Some(122));
    assert_eq!(super::expected_rows(None, 10, 100), None);
    assert_eq!(super::expected_rows(Some(1000), 10, 0), None);
    // a size far beyond memory reserves nothing
    assert_eq!(super::expected_rows(Some(u64::MAX), 1, 2), None);
}
