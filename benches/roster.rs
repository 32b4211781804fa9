//! Roster benchmark (issue 2): a synthetic OneRoster 1.2 CSV export of
//! 50,000 students, 2,000 teachers, 3,000 classes and 400,000 enrolments.
//!
//! Reports: parse + plan of a first run against an empty state, a full
//! first run into csv-drop (state and audit committed), a no-change rerun,
//! and peak RSS. Run with `cargo bench --bench roster`.

mod common;
use common::{Source, TestConfig, peak_rss_mb};

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use sisync::config::{Privacy, UserNameFrom};
use sisync::privacy::policy::Policy;
use sisync::sync::{self, Quiet, RosterOptions, plan};

// the same allocator as the sisync binary
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sizes at 50,000 students; `SISYNC_BENCH_STUDENTS` scales all of them
/// (bench/compare.sh runs 10k, 50k and 200k).
#[derive(Clone, Copy)]
struct Sizes {
    students: usize,
    teachers: usize,
    classes: usize,
    enrolments: usize,
}

fn sizes() -> Sizes {
    let students: usize = std::env::var("SISYNC_BENCH_STUDENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000)
        .max(1_000);
    Sizes {
        students,
        teachers: students / 25,
        classes: students * 3 / 50,
        enrolments: students * 8,
    }
}
const SCHOOLS: usize = 20;

fn w(dir: &Path, name: &str) -> BufWriter<File> {
    BufWriter::with_capacity(1 << 20, File::create(dir.join(name)).unwrap())
}

#[allow(non_snake_case)]
fn generate(dir: &Path) -> std::io::Result<()> {
    let Sizes {
        students: STUDENTS,
        teachers: TEACHERS,
        classes: CLASSES,
        enrolments: ENROLMENTS,
    } = sizes();
    let mut m = w(dir, "manifest.csv");
    writeln!(
        m,
        "propertyName,value\nmanifest.version,1.0\noneroster.version,1.2"
    )?;
    for f in [
        "orgs",
        "academicSessions",
        "courses",
        "classes",
        "users",
        "roles",
        "enrollments",
    ] {
        writeln!(m, "file.{f},bulk")?;
    }
    let mut o = w(dir, "orgs.csv");
    writeln!(
        o,
        "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId"
    )?;
    writeln!(o, "org-d,,,Stichting Bench,district,,")?;
    for s in 0..SCHOOLS {
        writeln!(o, "org-{s},,,School {s},school,{:02}AA00,org-d", 10 + s)?;
    }
    let mut a = w(dir, "academicSessions.csv");
    writeln!(
        a,
        "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear"
    )?;
    writeln!(a, "sy,,,2026-2027,schoolYear,2026-08-01,2027-07-31,,2027")?;
    let mut c = w(dir, "courses.csv");
    writeln!(
        c,
        "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,orgSourcedId,subjects,subjectCodes"
    )?;
    for i in 0..30 {
        writeln!(c, "crs-{i},,,sy,Course {i},C{i},10,org-d,,")?;
    }
    let mut cl = w(dir, "classes.csv");
    writeln!(
        cl,
        "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods"
    )?;
    for i in 0..CLASSES {
        writeln!(
            cl,
            "cls-{i},,,Klas {i},10,crs-{},K{i},scheduled,,org-{},sy,,,",
            i % 30,
            i % SCHOOLS
        )?;
    }
    let mut u = w(dir, "users.csv");
    let mut r = w(dir, "roles.csv");
    writeln!(
        u,
        "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,userMasterIdentifier,resourceSourcedIds,preferredGivenName,preferredMiddleName,preferredFamilyName,primaryOrgSourcedId,pronouns,metadata.extraTimePercent,metadata.fontScale,metadata.screenReader"
    )?;
    writeln!(
        r,
        "sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,userProfileSourcedId"
    )?;
    for i in 0..STUDENTS {
        let org = i % SCHOOLS;
        let acc = if i % 20 == 0 { "25,1.5,true" } else { ",," };
        writeln!(
            u,
            "stu-{i},,,true,s{i},,Leerling{i},Achternaam{i},van,{i},{i}@school.nl,,,,10,,,,,,,org-{org},,{acc}"
        )?;
        writeln!(r, "r-stu-{i},,,stu-{i},primary,student,,,org-{org},")?;
    }
    for i in 0..TEACHERS {
        let org = i % SCHOOLS;
        writeln!(
            u,
            "tch-{i},,,true,t{i},,Docent{i},Achternaam{i},,T{i},t{i}@school.nl,,,,,,,,,,,org-{org},,,,"
        )?;
        writeln!(r, "r-tch-{i},,,tch-{i},primary,teacher,,,org-{org},")?;
    }
    let mut e = w(dir, "enrollments.csv");
    writeln!(
        e,
        "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate"
    )?;
    // one teacher per class, students spread over the classes
    for k in 0..CLASSES {
        writeln!(
            e,
            "e-t-{k},,,cls-{k},org-{},tch-{},teacher,true,,",
            k % SCHOOLS,
            k % TEACHERS
        )?;
    }
    let mut seed: u64 = 42;
    for n in 0..(ENROLMENTS - CLASSES) {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let s = n % STUDENTS;
        let k = (seed >> 33) as usize % CLASSES;
        writeln!(
            e,
            "e-{n},,,cls-{k},org-{},stu-{s},student,false,,",
            k % SCHOOLS
        )?;
    }
    for mut f in [m, o, a, c, cl, u, r, e] {
        f.flush()?;
    }
    Ok(())
}

#[allow(non_snake_case)]
fn main() {
    // bench/compare.sh: only write the export into this folder
    if let Ok(dir) = std::env::var("SISYNC_BENCH_EXPORT") {
        let dir = Path::new(&dir);
        std::fs::create_dir_all(dir).unwrap();
        generate(dir).unwrap();
        return;
    }
    let Sizes {
        students: STUDENTS,
        teachers: TEACHERS,
        classes: CLASSES,
        ..
    } = sizes();
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("export");
    std::fs::create_dir_all(&export).unwrap();
    let t = Instant::now();
    generate(&export).unwrap();
    println!("generated the export in {:.2} s", t.elapsed().as_secs_f64());

    let cfg_text = TestConfig::new(tmp.path())
        .institution("Bench", "10AA")
        .source(Source::OneRosterCsv(export.clone()))
        .text();
    let loaded = sisync::connector::load_str(&tmp.path().join("sisync.toml"), cfg_text).unwrap();

    // 1. parse + plan against an empty state
    let t = Instant::now();
    let roster = sync::read_source(&loaded, &Quiet, None).unwrap();
    let t_read = t.elapsed();
    println!(
        "  peak RSS after reading the source: {:.0} MB",
        peak_rss_mb()
    );
    let minimised = Policy::new(&Privacy::default(), UserNameFrom::SourcedId, None).apply(&roster);
    let t_policy = t.elapsed() - t_read;
    let p = plan::plan(minimised, &plan::State::default(), false);
    println!(
        "  policy {:.2} s, plan {:.2} s",
        t_policy.as_secs_f64(),
        (t.elapsed() - t_read - t_policy).as_secs_f64()
    );
    let parse_plan = t.elapsed().as_secs_f64();
    assert_eq!(p.users.len(), STUDENTS + TEACHERS);
    assert_eq!(p.groups.len(), CLASSES);
    assert!(roster.issues.is_empty(), "{:?}", roster.issues.first());
    println!(
        "parse + plan (first run, empty state): {parse_plan:.2} s (read {:.2} s); {} user and {} class creates",
        t_read.as_secs_f64(),
        p.users.len(),
        p.groups.len()
    );
    let rss_plan = peak_rss_mb();
    drop((roster, p));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // 2. a real first run: csv-drop delivery, state and audit committed
    let t = Instant::now();
    let r = rt
        .block_on(sync::roster(
            &loaded,
            RosterOptions::default(),
            "bench",
            &Quiet,
        ))
        .unwrap();
    let first = t.elapsed().as_secs_f64();
    assert_eq!(r.failed(), 0);
    println!(
        "first full run (csv-drop, state + audit commit): {first:.2} s, peak RSS so far {:.0} MB",
        peak_rss_mb()
    );

    // 3. no-change rerun
    let t = Instant::now();
    let r = rt
        .block_on(sync::roster(
            &loaded,
            RosterOptions::default(),
            "bench",
            &Quiet,
        ))
        .unwrap();
    let rerun = t.elapsed().as_secs_f64();
    assert!(r.plan.is_empty(), "rerun must be a no-op");
    println!("no-change rerun: {rerun:.2} s");
    let rss = peak_rss_mb();

    println!();
    println!("| measure | result | target |");
    println!("|---|---|---|");
    println!("| parse + plan, first run | {parse_plan:.2} s | < 3 s |");
    println!("| no-change rerun | {rerun:.2} s | < 2 s |");
    println!("| first full run incl. delivery and commit | {first:.2} s | (none) |");
    println!("| peak RSS after parse + plan | {rss_plan:.0} MB | < 300 MB |");
    println!("| peak RSS, whole benchmark | {rss:.0} MB | < 300 MB |");
}
