//! OneRoster 1.2 CSV gradebook writer, as a result sink for SIS products
//! that import files: each push delivers a folder
//! `sisync-results-<UTC time>-run<N>/` holding `manifest.csv`,
//! `categories.csv`, `lineItems.csv` and `results.csv` (delta files: only
//! what this push carries). The folder appears atomically (see
//! `drop_folder::write_folder_as`). Ids are the same deterministic
//! sourcedIds the REST sink uses, so an importer that sees a result twice
//! (a push repeated after a crash) overwrites it.

pub mod config;

use std::path::{Path, PathBuf};

use crate::config::Loaded;
use crate::connector::drop_folder::{csv_bytes, write_folder_as};
use crate::connector::results::ResultWriter;
use crate::connector::{GradebookResult, LineItem, SinkError};

pub struct GradebookCsv {
    dir: PathBuf,
    category: String,
    school: Option<String>,
    /// Cells that look like spreadsheet formulas (an exam title or grade
    /// from the platform) are made text (`results.sink.formula_guard`,
    /// default on).
    formula_guard: bool,
    /// Folders 0750 and files 0640 instead of 0700/0600.
    group_readable: bool,
}

/// A delivered folder and the SHA-256 of each result row by sourcedId.
pub type CsvDelivery = crate::connector::results::FilesDelivered;

fn num(v: Option<f64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_default()
}

impl GradebookCsv {
    pub fn new(dir: &Path, category: &str, school: Option<&str>) -> GradebookCsv {
        GradebookCsv {
            dir: dir.to_path_buf(),
            category: category.to_string(),
            school: school.map(String::from),
            formula_guard: true,
            group_readable: false,
        }
    }

    pub fn endpoint(&self) -> String {
        self.dir.display().to_string()
    }

    fn err(&self, path: &Path, what: &str, e: impl std::fmt::Display) -> SinkError {
        SinkError {
            endpoint: path.display().to_string(),
            status: None,
            message: format!(
                "{}: cannot {what} ({e}); check results.sink.path exists and is writable",
                path.display()
            ),
            detail: None,
            payload_sha256: None,
            refused: false,
        }
    }

    /// Deliver line items and results as one folder.
    pub fn deliver(
        &self,
        run_id: i64,
        line_items: &[LineItem],
        results: &[GradebookResult],
    ) -> Result<CsvDelivery, SinkError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| self.err(&self.dir, "create the folder", e))?;
        let now = chrono::Utc::now();
        let modified = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let name = format!(
            "sisync-results-{}-run{run_id}",
            now.format("%Y%m%dT%H%M%SZ")
        );
        let enc = |e: csv::Error| self.err(&self.dir, "encode CSV", e);
        let csv = |header: &[&str], rows: &[Vec<String>]| {
            csv_bytes(header, rows, self.formula_guard).map_err(&enc)
        };
        // a row of a OneRoster record: sourcedId, status, dateLastModified, then its own columns
        let record = |sourced_id: &str, own: Vec<String>| -> Vec<String> {
            [sourced_id.to_string(), "active".into(), modified.clone()]
                .into_iter()
                .chain(own)
                .collect()
        };

        let manifest = csv(
            &["propertyName", "value"],
            &[
                ["manifest.version", "1.0"],
                ["oneroster.version", "1.2"],
                ["file.academicSessions", "absent"],
                ["file.categories", "delta"],
                ["file.classes", "absent"],
                ["file.classResources", "absent"],
                ["file.courses", "absent"],
                ["file.courseResources", "absent"],
                ["file.demographics", "absent"],
                ["file.enrollments", "absent"],
                ["file.lineItemLearningObjectiveIds", "absent"],
                ["file.lineItems", "delta"],
                ["file.lineItemScoreScales", "absent"],
                ["file.orgs", "absent"],
                ["file.resources", "absent"],
                ["file.resultLearningObjectiveIds", "absent"],
                ["file.results", "delta"],
                ["file.resultScoreScales", "absent"],
                ["file.roles", "absent"],
                ["file.scoreScales", "absent"],
                ["file.userProfiles", "absent"],
                ["file.userResources", "absent"],
                ["file.users", "absent"],
                ["source.systemName", "sisync"],
                ["source.systemCode", env!("CARGO_PKG_VERSION")],
            ]
            .map(|r| r.map(String::from).to_vec()),
        )?
        .0;
        let categories = csv(
            &["sourcedId", "status", "dateLastModified", "title", "weight"],
            &[record(
                &self.category,
                vec![self.category.clone(), String::new()],
            )],
        )?
        .0;
        let li_rows: Vec<Vec<String>> = line_items
            .iter()
            .map(|li| {
                record(
                    &li.sourced_id,
                    vec![
                        li.title.clone(),
                        String::new(),
                        li.date.clone(),
                        li.date.clone(),
                        li.class_id.clone(),
                        self.category.clone(),
                        String::new(),
                        "0".into(),
                        num(li.max_score),
                        self.school.clone().unwrap_or_default(),
                    ],
                )
            })
            .collect();
        let line_items_csv = csv(
            &[
                "sourcedId",
                "status",
                "dateLastModified",
                "title",
                "description",
                "assignDate",
                "dueDate",
                "classSourcedId",
                "categorySourcedId",
                "gradingPeriodSourcedId",
                "resultValueMin",
                "resultValueMax",
                "schoolSourcedId",
            ],
            &li_rows,
        )?
        .0;
        let r_rows: Vec<Vec<String>> = results
            .iter()
            .map(|r| {
                record(
                    &r.sourced_id,
                    vec![
                        r.line_item_id.clone(),
                        r.student_id.clone(),
                        r.class_id.clone(),
                        "fully graded".into(),
                        num(r.value.score),
                        crate::connector::text_score(r).unwrap_or_default(),
                        r.date.clone(),
                        String::new(),
                        r.value.passed.map(|p| p.to_string()).unwrap_or_default(),
                        num(r.value.max_score),
                    ],
                )
            })
            .collect();
        let (results_csv, hashes) = csv(
            &[
                "sourcedId",
                "status",
                "dateLastModified",
                "lineItemSourcedId",
                "studentSourcedId",
                "classSourcedId",
                "scoreStatus",
                "score",
                "textScore",
                "scoreDate",
                "comment",
                "metadata.passed",
                "metadata.maxScore",
            ],
            &r_rows,
        )?;
        let files = [
            ("manifest.csv", manifest),
            ("categories.csv", categories),
            ("lineItems.csv", line_items_csv),
            ("results.csv", results_csv),
        ];
        let folder = write_folder_as(&self.dir, &name, &files, self.group_readable)
            .map_err(|(p, what, e)| self.err(&p, what, e))?;
        Ok(CsvDelivery {
            folder,
            row_hashes: results
                .iter()
                .map(|r| r.sourced_id.clone())
                .zip(hashes)
                .collect(),
        })
    }
}

impl crate::connector::results::ResultFiles for GradebookCsv {
    fn endpoint(&self) -> String {
        GradebookCsv::endpoint(self)
    }
    fn deliver(
        &self,
        run_id: i64,
        line_items: &[LineItem],
        results: &[GradebookResult],
    ) -> Result<CsvDelivery, SinkError> {
        GradebookCsv::deliver(self, run_id, line_items, results)
    }
}

impl crate::connector::results::ResultOutput for config::GradebookCsvSink {
    fn check(&self) -> String {
        format!("oneroster-csv {}", self.path.display())
    }
    fn writer(&self, _loaded: &Loaded) -> anyhow::Result<ResultWriter> {
        let sink = GradebookCsv {
            formula_guard: self.formula_guard,
            group_readable: self.group_readable,
            ..GradebookCsv::new(&self.path, &self.category, self.school.as_deref())
        };
        Ok(ResultWriter::Files(Box::new(sink)))
    }
    fn delivery_folder(&self) -> Option<&Path> {
        Some(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResultValue;

    #[test]
    fn writes_the_four_files_atomically_with_header_order() {
        let dir = tempfile::tempdir().unwrap();
        let w = GradebookCsv::new(dir.path(), "exam", Some("org-1"));
        let li = LineItem {
            sourced_id: "li-1".into(),
            title: "EX-1".into(),
            class_id: "cls-1".into(),
            max_score: Some(60.0),
            date: "2026-06-02".into(),
        };
        let r = GradebookResult {
            sourced_id: "r-1".into(),
            exam: "EX-1".into(),
            line_item_id: "li-1".into(),
            class_id: "cls-1".into(),
            student_id: "stu-1".into(),
            eckid: None,
            value: ResultValue {
                score: Some(42.5),
                max_score: Some(60.0),
                passed: Some(true),
                grade: Some("7,1".into()),
            },
            date: "2026-06-02".into(),
        };
        let d = w.deliver(7, &[li], &[r]).unwrap();
        let name = d.folder.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            name.starts_with("sisync-results-") && name.ends_with("-run7"),
            "{name}"
        );
        let entries: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(entries, vec![name.clone()], "no temporary folder left");
        let results = std::fs::read_to_string(d.folder.join("results.csv")).unwrap();
        let mut lines = results.lines();
        assert!(
            lines.next().unwrap().starts_with(
                "sourcedId,status,dateLastModified,lineItemSourcedId,studentSourcedId"
            )
        );
        let row = lines.next().unwrap();
        assert!(row.starts_with("r-1,active,"), "{row}");
        assert!(
            row.ends_with(",li-1,stu-1,cls-1,fully graded,42.5,\"7,1\",2026-06-02,,true,60"),
            "{row}"
        );
        let li = std::fs::read_to_string(d.folder.join("lineItems.csv")).unwrap();
        assert!(
            li.lines()
                .nth(1)
                .unwrap()
                .ends_with(",cls-1,exam,,0,60,org-1"),
            "{li}"
        );
        let manifest = std::fs::read_to_string(d.folder.join("manifest.csv")).unwrap();
        assert!(manifest.contains("file.results,delta") && manifest.contains("file.users,absent"));
        assert_eq!(d.row_hashes.len(), 1);
    }

    #[test]
    fn unwritable_folder_names_the_path_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let w = GradebookCsv::new(&file, "exam", None);
        let e = w.deliver(1, &[], &[]).unwrap_err();
        assert!(e.message.contains("not-a-dir"), "{e}");
        assert!(e.message.contains("results.sink.path"), "{e}");
    }
}
