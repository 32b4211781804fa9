//! REST roster benchmark (issue 4): a full pull of 50,000 students, 2,000
//! teachers, 3,000 classes and 400,000 enrolments from an in-process fake
//! OneRoster 1.2 service on 127.0.0.1 (page size 1,000). Reports total time,
//! pages and peak RSS. The server shares the 2 cores with sisync, so the
//! figure is an upper bound. The service is the tests' fake
//! (`tests/common/fake_oneroster.rs`). Run with
//! `cargo bench --bench oneroster_rest`.

mod common;
use common::{Source, TestConfig, peak_rss_mb};
#[path = "../tests/common/fake_oneroster.rs"]
mod fake_oneroster;

use std::collections::BTreeMap;
use std::time::Instant;

use sisync::sync::{self, Quiet};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const STUDENTS: usize = 50_000;
const TEACHERS: usize = 2_000;
const CLASSES: usize = 3_000;
const ENROLMENTS: usize = 400_000;
const SCHOOLS: usize = 20;

/// Each collection as JSON text.
fn records() -> BTreeMap<String, Vec<String>> {
    let mut d = BTreeMap::new();
    let mut orgs = vec![
        r#"{"sourcedId":"org-d","status":"active","name":"Bench","type":"district"}"#.to_string(),
    ];
    for s in 0..SCHOOLS {
        orgs.push(format!(
            r#"{{"sourcedId":"org-{s}","status":"active","name":"School {s}","type":"school","identifier":"{:02}AA00","parent":{{"sourcedId":"org-d"}}}}"#,
            10 + s
        ));
    }
    d.insert("orgs".into(), orgs);
    d.insert(
        "classes".into(),
        (0..CLASSES)
            .map(|i| format!(r#"{{"sourcedId":"cls-{i}","status":"active","title":"Klas {i}","school":{{"sourcedId":"org-{}"}}}}"#, i % SCHOOLS))
            .collect(),
    );
    let mut users = Vec::with_capacity(STUDENTS + TEACHERS);
    for i in 0..STUDENTS {
        let meta = if i % 20 == 0 {
            r#","metadata":{"extraTimePercent":25}"#
        } else {
            ""
        };
        users.push(format!(
            r#"{{"sourcedId":"stu-{i}","status":"active","enabledUser":true,"username":"s{i}","givenName":"Leerling{i}","familyName":"Achternaam{i}","identifier":"{i}","roles":[{{"roleType":"primary","role":"student","org":{{"sourcedId":"org-{}"}}}}]{meta}}}"#,
            i % SCHOOLS
        ));
    }
    for i in 0..TEACHERS {
        users.push(format!(
            r#"{{"sourcedId":"tch-{i}","status":"active","enabledUser":true,"givenName":"Docent{i}","familyName":"X","roles":[{{"roleType":"primary","role":"teacher","org":{{"sourcedId":"org-{}"}}}}]}}"#,
            i % SCHOOLS
        ));
    }
    d.insert("users".into(), users);
    let mut enr = Vec::with_capacity(ENROLMENTS);
    for k in 0..CLASSES {
        enr.push(format!(
            r#"{{"sourcedId":"e-t-{k}","status":"active","class":{{"sourcedId":"cls-{k}"}},"user":{{"sourcedId":"tch-{}"}},"role":"teacher"}}"#,
            k % TEACHERS
        ));
    }
    let mut seed: u64 = 42;
    for n in 0..(ENROLMENTS - CLASSES) {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let k = (seed >> 33) as usize % CLASSES;
        enr.push(format!(
            r#"{{"sourcedId":"e-{n}","status":"active","class":{{"sourcedId":"cls-{k}"}},"user":{{"sourcedId":"stu-{}"}},"role":"student"}}"#,
            n % STUDENTS
        ));
    }
    d.insert("enrollments".into(), enr);
    d
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_sis, base) = rt.block_on(fake_oneroster::start_raw(records()));
    let rss_before = peak_rss_mb();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("token"), fake_oneroster::SIS_TOKEN).unwrap();
    let cfg = TestConfig::new(tmp.path())
        .institution("Bench", "10AA")
        .source(Source::Toml(format!(
            "kind = \"oneroster-rest\"\nbase_url = \"{base}\"\ntoken_file = \"token\"\n"
        )))
        .text();
    let loaded = sisync::connector::load_str(&tmp.path().join("sisync.toml"), cfg).unwrap();
    let t = Instant::now();
    let roster = rt
        .block_on(async {
            tokio::task::block_in_place(|| sync::read_source(&loaded, &Quiet, None))
        })
        .unwrap();
    let took = t.elapsed().as_secs_f64();
    assert_eq!(roster.persons.len(), STUDENTS + TEACHERS);
    assert_eq!(roster.memberships.len(), ENROLMENTS);
    assert!(roster.issues.is_empty());
    let pages = 1
        + CLASSES.div_ceil(1000)
        + (STUDENTS + TEACHERS).div_ceil(1000)
        + ENROLMENTS.div_ceil(1000);
    println!("| measure | result |");
    println!("|---|---|");
    println!(
        "| full REST pull, {} users + {} enrolments, {pages} pages of 1,000 | {took:.2} s |",
        STUDENTS + TEACHERS,
        ENROLMENTS
    );
    println!("| peak RSS before the pull (server data) | {rss_before:.0} MB |");
    println!(
        "| peak RSS after the pull (server + roster) | {:.0} MB |",
        peak_rss_mb()
    );
}
