//! Issue 11, results path: results are held, never lost or given to the
//! wrong student.

use super::*;

/// A QTI file whose sessions were issued by `source`.
fn write_qti_from(dir: &Path, name: &str, source: &str, rows: &[Row<'_>]) {
    write_qti(dir, name, rows);
    let p = dir.join(name);
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, text.replace("https://toets.example", source)).unwrap();
}

/// SIS result of a student: (sourcedId, score).
fn sis_results_of(gb: &FakeGradebook, student: &str) -> Vec<(String, serde_json::Value)> {
    gb.with(|g| {
        g.results
            .iter()
            .filter(|(_, r)| r["student"]["sourcedId"] == student)
            .map(|(id, r)| (id.clone(), r["score"].clone()))
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_sharing_a_session_id_never_overwrite_each_other() {
    let (dir, gb, loaded) = rest_bed().await;
    let inbox = dir.path().join("inbox");
    // one file: two candidates, one session id (numbered per delivery)
    write_qti(
        &inbox,
        "a.xml",
        &[
            ("stu-1001", "EX-NED-1", "1", 40.0),
            ("stu-1002", "EX-NED-1", "1", 50.0),
        ],
    );
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.ingested.new, r.ingested.changed), (2, 0), "{r:?}");
    assert_eq!((r.pushed, r.updated), (2, 0));
    // another platform numbers its sessions the same way
    write_qti_from(
        &inbox,
        "b.xml",
        "https://other-platform.example",
        &[("stu-1003", "EX-NED-1", "1", 60.0)],
    );
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.ingested.new, r.ingested.changed), (1, 0), "{r:?}");
    assert_eq!((r.pushed, r.updated), (1, 0));
    assert_eq!(gb.result_pairs().len(), 3);
    for (stu, score) in [("stu-1001", 40.0), ("stu-1002", 50.0), ("stu-1003", 60.0)] {
        let held = sis_results_of(&gb, stu);
        assert_eq!(held.len(), 1, "{stu}: {held:?}");
        assert_eq!(held[0].1, serde_json::json!(score), "{stu}");
    }
    assert!(audit_of(&store(&loaded), "result.update").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_stored_under_the_old_key_keep_it_and_are_not_sent_twice() {
    let (dir, gb, loaded) = rest_bed().await;
    let inbox = dir.path().join("inbox");
    let row = [("stu-1001", "EX-NED-1", "1", 40.0)];
    write_qti(&inbox, "a.xml", &row);
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!(r.pushed, 1);
    // as sisync before schema 5 stored and delivered it: the old key
    let result = sisync::model::ExamResult {
        candidate: "stu-1001".into(),
        exam: "EX-NED-1".into(),
        session_id: Some("1".into()),
        session_source: Some("https://toets.example".into()),
        ..Default::default()
    };
    let (new, old) = (
        sisync::sync::results::result_key(&result),
        sisync::sync::results::legacy_key(&result),
    );
    assert_ne!(new, old);
    {
        let db = rusqlite::Connection::open(&loaded.config.state.path).unwrap();
        let n = db
            .execute(
                "UPDATE results SET key = ?2, key_scheme = 1, session_source = NULL WHERE key = ?1",
                [&new, &old],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    gb.with(|g| {
        let v = g.results.remove(&format!("sisync-r-{new}")).unwrap();
        g.results.insert(format!("sisync-r-{old}"), v);
    });
    let writes = gb.result_writes();
    // the same file read again after the upgrade: nothing new, nothing sent
    write_qti(&inbox, "a-again.xml", &row);
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.ingested.new, r.ingested.unchanged), (0, 1), "{r:?}");
    assert_eq!(gb.result_writes(), writes);
    // a re-marking overwrites the record the SIS already holds
    write_qti(&inbox, "b.xml", &[("stu-1001", "EX-NED-1", "1", 45.0)]);
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!(
        (r.ingested.changed, r.updated, r.pushed),
        (1, 1, 0),
        "{r:?}"
    );
    assert_eq!(
        sis_results_of(&gb, "stu-1001"),
        vec![(format!("sisync-r-{old}"), serde_json::json!(45.0))]
    );
    // another candidate with that session id gets a record of their own
    write_qti(&inbox, "c.xml", &[("stu-1002", "EX-NED-1", "1", 70.0)]);
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.ingested.new, r.ingested.changed), (1, 0), "{r:?}");
    assert_eq!((r.pushed, r.updated), (1, 0));
    assert_eq!(
        sis_results_of(&gb, "stu-1001"),
        vec![(format!("sisync-r-{old}"), serde_json::json!(45.0))]
    );
    assert_eq!(sis_results_of(&gb, "stu-1002").len(), 1);
}

/// A complete QTI document of `rows` (written to `dir/name` and read back).
fn qti_text(dir: &Path, rows: &[Row<'_>]) -> String {
    let scratch = dir.join("scratch");
    write_qti(&scratch, "x.xml", rows);
    std::fs::read_to_string(scratch.join("x.xml")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_still_being_uploaded_waits_and_is_read_once_complete() {
    let dir = tempfile::tempdir().unwrap();
    let gb = FakeGradebook::start().await;
    let loaded = results_config(
        dir.path(),
        &fixture_roster(),
        "kind = \"qti-folder\"\npath = \"inbox\"\nsettle = \"500ms\"",
        "",
        &rest_sink(&gb, ""),
    )
    .load();
    roster(&loaded).await;
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let text = qti_text(
        dir.path(),
        &[
            ("stu-1001", "EX-NED-1", "S-1", 40.0),
            ("stu-1002", "EX-NED-1", "S-2", 50.0),
        ],
    );
    // an upload that writes a chunk every 100 ms for 1.5 s
    let path = inbox.join("a.xml");
    std::fs::write(&path, &text[..20]).unwrap();
    let upload = {
        let (path, text) = (path.clone(), text.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            let rest = &text.as_bytes()[20..];
            let chunk = rest.len().div_ceil(15);
            for part in rest.chunks(chunk) {
                std::thread::sleep(Duration::from_millis(100));
                f.write_all(part).unwrap();
            }
        })
    };
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.documents, r.documents_waiting), (0, 1), "{r:?}");
    assert!(r.document_errors.is_empty(), "{r:?}");
    assert!(path.exists() && !inbox.join("failed").exists());
    upload.join().unwrap();
    // complete now: read after it stayed the same for `settle`
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!(
        (r.documents, r.documents_waiting, r.pushed),
        (1, 0, 2),
        "{r:?}"
    );
    assert!(inbox.join("done/a.xml").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_in_failed_is_read_again_when_it_changes() {
    let (dir, _gb, loaded) = rest_bed().await;
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let text = qti_text(dir.path(), &[("stu-1001", "EX-NED-1", "S-1", 40.0)]);
    // the upload stalled half-way: the file is moved to failed/
    std::fs::write(inbox.join("a.xml"), &text[..text.len() / 2]).unwrap();
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!(r.document_errors.len(), 1, "{r:?}");
    assert!(
        r.document_errors[0].contains("it is read again when it changes"),
        "{r:?}"
    );
    let failed = inbox.join("failed/a.xml");
    assert!(failed.exists());
    // unchanged there: not read again
    let r = run(&loaded, ResultsOptions::default()).await;
    assert!(r.document_errors.is_empty(), "{r:?}");
    assert_eq!(r.documents, 0);
    // the upload completes in failed/: read, pushed, moved to done/
    std::fs::write(&failed, &text).unwrap();
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.documents, r.pushed), (1, 1), "{r:?}");
    assert!(r.document_errors.is_empty(), "{r:?}");
    assert!(inbox.join("done/a.xml").exists());
    assert!(!failed.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_are_reported_and_temporary_names_skipped_in_the_inbox() {
    let (dir, _gb, loaded) = rest_bed().await;
    let inbox = dir.path().join("inbox");
    let elsewhere = dir.path().join("elsewhere");
    write_qti(
        &elsewhere,
        "x.xml",
        &[("stu-1001", "EX-NED-1", "S-1", 40.0)],
    );
    std::fs::create_dir_all(&inbox).unwrap();
    std::os::unix::fs::symlink(elsewhere.join("x.xml"), inbox.join("link.xml")).unwrap();
    for name in [".a.xml", "b.xml.part", "~$c.xml"] {
        std::fs::write(inbox.join(name), "<half").unwrap();
    }
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.documents, r.pushed), (0, 0), "{r:?}");
    assert_eq!(r.document_errors.len(), 1, "{r:?}");
    let line = &r.document_errors[0];
    assert_has(
        line,
        &["link.xml: is a symbolic link", "put the file itself there"],
    );
    assert!(inbox.join("link.xml").exists() && elsewhere.join("x.xml").exists());
    assert!(!inbox.join("failed").exists());
}

/// Every `*.csv` under `dir` (any depth), concatenated.
fn csv_text(dir: &Path) -> String {
    common::files_under(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// Stdout of a run that must succeed.
fn cli_ok(config: &Path, args: &[&str]) -> String {
    let o = common::sisync(config, args);
    assert!(o.status.success(), "{o:?}");
    String::from_utf8(o.stdout).unwrap()
}

const FORMULA: &str = "=cmd|' /C calc'!A0";
const CLASS_FORMULA: &str = "=1+cmd|' /C calc'!A0";

/// A QTI result of stu-1001 for EX-NED-1 with `score` and [`FORMULA`] as
/// its grade, as a platform that lets one through would write it.
fn write_formula_grade(inbox: &Path, name: &str, score: f64) {
    write_qti(inbox, name, &[("stu-1001", "EX-NED-1", "S-1", score)]);
    let p = inbox.join(name);
    let grade = format!(
        "<outcomeVariable identifier=\"GRADE\" cardinality=\"single\" baseType=\"string\"><value>{}</value></outcomeVariable></testResult>",
        FORMULA.replace('\'', "&apos;")
    );
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, text.replace("</testResult>", &grade)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spreadsheet_formulas_never_reach_a_csv_file_as_formulas() {
    let dir = tempfile::tempdir().unwrap();
    let export = common::copy_fixture("oneroster-1.2", dir.path());
    common::edit(&export, "users.csv", |l| {
        Some(l.replace(",Jesse,", &format!(",{FORMULA},")))
    });
    for f in ["classes.csv", "enrollments.csv"] {
        common::edit(&export, f, |l| {
            Some(l.replace("cls-mentor-m2b", CLASS_FORMULA))
        });
    }
    let loaded = config(
        dir.path(),
        &export,
        "kind = \"oneroster-csv\"\npath = \"sis\"\n",
    );
    roster(&loaded).await;
    // a platform that puts a formula in the grade
    let inbox = dir.path().join("inbox");
    write_formula_grade(&inbox, "a.xml", 40.0);
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!(r.pushed, 1, "{r:?}");

    let guarded = format!("'{FORMULA}");
    let drop = csv_text(&dir.path().join("platform"));
    assert!(drop.contains(&guarded), "{drop}");
    assert!(drop.contains(&format!("'{CLASS_FORMULA}")), "{drop}");
    let sis = csv_text(&dir.path().join("sis"));
    assert!(sis.contains(&guarded), "{sis}");
    let export = cli_ok(
        &loaded.file,
        &[
            "privacy", "export", "--person", "stu-1001", "--format", "csv",
        ],
    );
    assert!(export.contains(&guarded), "{export}");
    let audit = cli_ok(&loaded.file, &["audit", "list", "--csv"]);
    assert!(audit.contains(&format!("'{CLASS_FORMULA}")), "{audit}");
    // no cell of any of them starts a formula
    for (what, text) in [
        ("drop", &drop),
        ("sis", &sis),
        ("export", &export),
        ("audit", &audit),
    ] {
        let mut rd = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        for rec in rd.records() {
            for cell in rec.unwrap().iter() {
                assert!(
                    !cell.starts_with('=') && !cell.starts_with('@'),
                    "{what}: {cell}"
                );
            }
        }
    }

    // an importer that needs the bytes as given: the documented switch
    let loaded = config(
        dir.path(),
        &dir.path().join("export"),
        "kind = \"oneroster-csv\"\npath = \"sis2\"\nformula_guard = false\n",
    );
    write_formula_grade(&inbox, "b.xml", 41.0);
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!(r.updated, 1, "{r:?}");
    let sis2 = csv_text(&dir.path().join("sis2"));
    assert!(sis2.contains(&format!(",{FORMULA},")), "{sis2}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_scores_are_parked_with_the_reason() {
    let (dir, gb, loaded) = rest_bed().await;
    let inbox = dir.path().join("inbox");
    write_qti(
        &inbox,
        "a.xml",
        &[
            ("stu-1001", "EX-NED-1", "S-1", -5.0),
            ("stu-1002", "EX-NED-1", "S-2", 150.0),
            ("stu-1004", "EX-NED-1", "S-4", 60.0),
        ],
    );
    write_qti(&inbox, "b.xml", &[("stu-1003", "EX-NED-1", "S-3", 0.0)]);
    let p = inbox.join("b.xml");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("<value>100</value>", "<value>0</value>");
    std::fs::write(&p, text).unwrap();
    for _ in 0..2 {
        // and again: matching parked results again keeps these parked
        let r = run(&loaded, ResultsOptions::default()).await;
        assert_eq!((r.outbox.pushed, r.outbox.parked), (1, 3), "{r:?}");
        let reasons: Vec<&str> = r.outbox.reasons.iter().map(|x| x.1.as_str()).collect();
        for want in [
            "score is negative",
            "score is above MAXSCORE",
            "MAXSCORE is 0 or negative",
        ] {
            assert!(reasons.iter().any(|x| x.starts_with(want)), "{reasons:?}");
        }
    }
    assert_eq!(gb.result_pairs().len(), 1);
    // a corrected export goes out
    write_qti(&inbox, "c.xml", &[("stu-1001", "EX-NED-1", "S-1", 5.0)]);
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.pushed, r.outbox.parked), (1, 2), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_class_places_a_candidate_in_several_classes() {
    let dir = tempfile::tempdir().unwrap();
    let gb = FakeGradebook::start().await;
    let loaded = results_config(
        dir.path(),
        &fixture_roster(),
        QTI_FOLDER,
        "default_class = \"cls-mentor-m2b\"",
        &rest_sink(&gb, ""),
    )
    .load();
    roster(&loaded).await;
    // no rule for EX-ENG: stu-1001 is in several classes
    write_qti(
        &dir.path().join("inbox"),
        "a.xml",
        &[("stu-1001", "EX-ENG-1", "S-1", 40.0)],
    );
    let r = run(&loaded, ResultsOptions::default()).await;
    assert_eq!((r.pushed, r.outbox.parked), (1, 0), "{r:?}");
    let class = gb.with(|g| {
        g.line_items
            .values()
            .map(|li| li["class"]["sourcedId"].clone())
            .collect::<Vec<_>>()
    });
    assert_eq!(class, vec![serde_json::json!("cls-mentor-m2b")]);
}
