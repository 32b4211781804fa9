//! Property tests (a fuzz target run in CI): whatever `users.csv` and
//! `enrollments.csv` hold, the reader never panics, stays within bounded
//! memory (a 1 MiB record guard), and every row it skips is held, unless
//! it refuses the whole file.

use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::connector::source::oneroster::config::OneRosterCsvSource;

const USERS: &str = "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,middleName,identifier,email,primaryOrgSourcedId,metadata.extraTimePercent\n";

fn export(dir: &Path, users: &[u8], enrollments: &[u8]) {
    let w = |f: &str, b: &[u8]| std::fs::write(dir.join(f), b).unwrap();
    w(
        "manifest.csv",
        b"propertyName,value\noneroster.version,1.2\nfile.orgs,bulk\nfile.classes,bulk\nfile.users,bulk\nfile.roles,bulk\nfile.enrollments,bulk\n",
    );
    w(
        "orgs.csv",
        b"sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\no1,,,School,school,99AA00,\n",
    );
    w(
        "classes.csv",
        b"sourcedId,status,dateLastModified,title,schoolSourcedId\nc1,,,H3A,o1\nc2,,,H3B,o1\n",
    );
    let mut roles =
        b"sourcedId,status,dateLastModified,userSourcedId,roleType,role,orgSourcedId\n".to_vec();
    for i in 0..40 {
        roles.extend_from_slice(format!("r{i},,,s{i},primary,student,o1\n").as_bytes());
    }
    w("roles.csv", &roles);
    w("users.csv", users);
    w("enrollments.csv", enrollments);
}

fn read(dir: &Path) -> Result<Roster> {
    OneRosterCsv::new(&OneRosterCsvSource {
        path: dir.to_path_buf(),
        role_map: Default::default(),
        accommodations: Default::default(),
    })
    .read(&|_| {})
}

/// How a generated row is damaged.
#[derive(Debug, Clone)]
enum Damage {
    None,
    Latin1,
    FewerFields,
    MoreFields,
    ControlChar,
    BadExtraTime,
    StrayQuote,
    Crlf,
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        6 => Just(Damage::None),
        1 => Just(Damage::Latin1),
        1 => Just(Damage::FewerFields),
        1 => Just(Damage::MoreFields),
        1 => Just(Damage::ControlChar),
        1 => Just(Damage::BadExtraTime),
        1 => Just(Damage::StrayQuote),
        1 => Just(Damage::Crlf),
    ]
}

fn user_row(i: usize, d: &Damage) -> Vec<u8> {
    let given: &[u8] = match d {
        Damage::Latin1 => b"Zo\xeb",
        Damage::ControlChar => b"Zo\x1be",
        Damage::StrayQuote => b"\"Zoe",
        _ => b"Zoe",
    };
    let extra: &[u8] = match d {
        Damage::BadExtraTime => b"lots",
        _ => b"25",
    };
    let mut row = format!("s{i},,,true,u{i},,").into_bytes();
    row.extend_from_slice(given);
    row.extend_from_slice(b",Berg,van der,");
    match d {
        Damage::FewerFields => row.extend_from_slice(format!("{i}").as_bytes()),
        Damage::MoreFields => {
            row.extend_from_slice(format!("{i},x@y.nl,o1,").as_bytes());
            row.extend_from_slice(extra);
            row.extend_from_slice(b",surplus");
        }
        _ => {
            row.extend_from_slice(format!("{i},x@y.nl,o1,").as_bytes());
            row.extend_from_slice(extra);
        }
    }
    row.extend_from_slice(if matches!(d, Damage::Crlf) {
        b"\r\n"
    } else {
        b"\n"
    });
    row
}

proptest! {
    // 96 cases in CI; PROPTEST_CASES=5000 for a longer hunt
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(96),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_user_row_is_read_or_held_or_the_file_refused(
        damages in proptest::collection::vec(damage(), 1..40),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut users = USERS.as_bytes().to_vec();
        for (i, d) in damages.iter().enumerate() {
            users.extend_from_slice(&user_row(i, d));
        }
        let enroll = b"sourcedId,classSourcedId,userSourcedId,role\ne1,c1,s0,student\n";
        export(dir.path(), &users, enroll);
        match read(dir.path()) {
            Ok(r) => {
                for (i, d) in damages.iter().enumerate() {
                    let id = format!("s{i}");
                    let read = r.persons.iter().any(|p| p.sourced_id == id);
                    prop_assert!(
                        read || r.held_persons.contains(&id),
                        "s{} ({:?}) neither read nor held: {:?}", i, d, r.issues
                    );
                }
                prop_assert!(r.issues.len() <= MAX_ISSUES_PER_FILE + 1);
            }
            Err(e) => {
                // only a stray quote may make the file untrustworthy
                prop_assert!(
                    damages.iter().any(|d| matches!(d, Damage::StrayQuote)),
                    "refused without a stray quote: {e:#}"
                );
                prop_assert!(e.to_string().contains("users.csv:"), "{e:#}");
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        users in proptest::collection::vec(any::<u8>(), 0..4096),
        enroll in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut u = USERS.as_bytes().to_vec();
        u.extend_from_slice(&users);
        let mut e = b"sourcedId,classSourcedId,userSourcedId,role\n".to_vec();
        e.extend_from_slice(&enroll);
        export(dir.path(), &u, &e);
        // an error is fine; a panic or a hang is not
        let _ = read(dir.path());
    }

    #[test]
    fn a_bad_enrolment_row_always_holds_its_class(
        damages in proptest::collection::vec(damage(), 1..20),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut users = USERS.as_bytes().to_vec();
        for i in 0..20 {
            users.extend_from_slice(&user_row(i, &Damage::None));
        }
        let mut enroll = b"sourcedId,classSourcedId,userSourcedId,role\n".to_vec();
        for (i, d) in damages.iter().enumerate() {
            let class = if i % 2 == 0 { "c1" } else { "c2" };
            let row = match d {
                Damage::Latin1 => format!("e{i},{class},s{i},stud\u{0}").into_bytes().into_iter().map(|b| if b == 0 { 0xe9 } else { b }).collect(),
                Damage::FewerFields => format!("e{i},{class},s{i}\n").into_bytes(),
                Damage::MoreFields => format!("e{i},{class},s{i},student,x\n").into_bytes(),
                _ => format!("e{i},{class},s{i},student\n").into_bytes(),
            };
            let bad = matches!(d, Damage::Latin1 | Damage::FewerFields | Damage::MoreFields);
            enroll.extend_from_slice(&row);
            if matches!(d, Damage::Latin1) {
                enroll.push(b'\n');
            }
            if bad {
                let r = {
                    export(dir.path(), &users, &enroll);
                    read(dir.path()).unwrap()
                };
                prop_assert!(r.held_groups.contains(class), "{:?}", r.issues);
            }
        }
    }
}
