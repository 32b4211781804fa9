//! Results as a CSV export, for platforms that offer nothing else. One row
//! per result; which column holds what is configured
//! ([`CsvResultColumns`]). The header row is required. The file is read
//! row by row (memory does not grow with the file); a UTF-8 BOM is skipped.
//!
//! A row without candidate or exam, or with none of score, passed and
//! grade, is reported (`file:line`) and skipped; a value that does not
//! parse is reported and left out of its result.

pub use config::CsvResultColumns;
pub mod config;

use std::io::Read;

use anyhow::{Result, anyhow};

use crate::model::{ExamResult, ResultValue, SourceIssue};

/// What reading one file found besides the results.
#[derive(Debug, Default)]
pub struct ReadReport {
    pub results: usize,
    pub issues: Vec<SourceIssue>,
}

/// Read one CSV results file named `name`, calling `each` per result.
pub fn read<R: Read>(
    input: R,
    name: &str,
    cols: &CsvResultColumns,
    delimiter: u8,
    each: &mut dyn FnMut(ExamResult) -> Result<()>,
) -> Result<ReadReport> {
    let mut rd = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(input);
    let headers = rd
        .headers()
        .map_err(|e| anyhow!("{name}:1: cannot read the header row ({e}); is it a CSV file?"))?
        .clone();
    let find = |col: &str| {
        headers.iter().position(|h| {
            h.trim_start_matches('\u{feff}')
                .trim()
                .eq_ignore_ascii_case(col)
        })
    };
    let need = |key: &str, col: &str| {
        find(col).ok_or_else(|| {
            anyhow!(
                "{name}:1: no column {col:?} (results.source.columns.{key}); the header has: {}",
                headers.iter().collect::<Vec<_>>().join(", ")
            )
        })
    };
    let candidate = need("candidate", &cols.candidate)?;
    let exam = need("exam", &cols.exam)?;
    let session = find(&cols.session);
    let score = find(&cols.score);
    let max_score = find(&cols.max_score);
    let passed = find(&cols.passed);
    let grade = find(&cols.grade);
    let date = find(&cols.date);
    if score.is_none() && passed.is_none() && grade.is_none() {
        return Err(anyhow!(
            "{name}:1: none of the columns {:?}, {:?}, {:?} (results.source.columns.score/passed/grade) is in the header",
            cols.score,
            cols.passed,
            cols.grade
        ));
    }
    let mut report = ReadReport::default();
    let mut row = csv::StringRecord::new();
    loop {
        match rd.read_record(&mut row) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                return Err(anyhow!(
                    "{name}:{line}: not valid CSV ({e}); fix or export the file again"
                ));
            }
        }
        let line = row.position().map(|p| p.line()).unwrap_or(0);
        let get = |i: Option<usize>| {
            i.and_then(|i| row.get(i))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let mut issue = |id: Option<&str>, reason: String| {
            report.issues.push(SourceIssue {
                location: format!("{name}:{line}"),
                record_id: id.map(String::from),
                reason,
            })
        };
        let (Some(cand), Some(ex)) = (get(Some(candidate)), get(Some(exam))) else {
            issue(None, "no candidate or exam id; row skipped".into());
            continue;
        };
        let mut num = |col: &str, v: Option<&str>| {
            v.and_then(|v| match v.replace(',', ".").parse::<f64>() {
                Ok(n) if n.is_finite() => Some(n),
                _ => {
                    issue(
                        Some(cand),
                        format!("{col} {v:?} is not a number; left out of the result"),
                    );
                    None
                }
            })
        };
        let score_v = num(&cols.score, get(score));
        let max_v = num(&cols.max_score, get(max_score));
        let passed_v = get(passed).and_then(|v| match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "ja" | "j" => Some(true),
            "false" | "0" | "no" | "nee" | "n" => Some(false),
            _ => {
                issue(
                    Some(cand),
                    format!(
                        "{} {v:?} is not true/false; left out of the result",
                        cols.passed
                    ),
                );
                None
            }
        });
        let grade_v = get(grade).map(String::from);
        if score_v.is_none() && passed_v.is_none() && grade_v.is_none() {
            issue(
                Some(cand),
                format!("result for exam {ex} has no score, passed or grade; row skipped"),
            );
            continue;
        }
        let date_v = get(date).and_then(|d| {
            let ok = chrono::DateTime::parse_from_rfc3339(d).is_ok()
                || chrono::NaiveDateTime::parse_from_str(d, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
                || chrono::NaiveDateTime::parse_from_str(d, "%Y-%m-%d %H:%M:%S").is_ok()
                || chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok();
            if !ok {
                issue(
                    Some(cand),
                    format!("date {d:?} is not a date; result kept without a date"),
                );
            }
            ok.then(|| d.to_string())
        });
        let r = ExamResult {
            candidate: cand.to_string(),
            exam: ex.to_string(),
            session_id: get(session).map(String::from),
            session_source: None,
            value: ResultValue {
                score: score_v,
                max_score: max_v,
                passed: passed_v,
                grade: grade_v,
            },
            taken_at: date_v,
            origin: format!("{name}:{line}"),
            oke: None,
        };
        report.results += 1;
        each(r)?;
    }
    Ok(report)
}

impl crate::connector::results::ResultInput for config::CsvResults {
    fn check(&self) -> String {
        format!(
            "csv {} (delimiter {:?})",
            self.path.display(),
            self.delimiter
        )
    }
    fn documents(&self) -> crate::connector::results::Documents<'_> {
        crate::connector::results::Documents::Folder {
            path: &self.path,
            extension: "csv",
            after: self.after,
            settle: self.settle,
        }
    }
    fn read(
        &self,
        input: &mut dyn Read,
        name: &str,
        _tag: &str,
        each: &mut dyn FnMut(ExamResult) -> Result<()>,
    ) -> Result<Vec<SourceIssue>> {
        let delimiter = self.delimiter.as_bytes()[0];
        Ok(read(input, name, &self.columns, delimiter, each)?.issues)
    }
    fn processed(&self) -> Option<(&std::path::Path, crate::connector::DocumentFormat)> {
        (self.after == crate::config::results::AfterRead::Move).then(|| {
            let format = crate::connector::DocumentFormat::Csv {
                delimiter: self.delimiter.as_bytes().first().copied().unwrap_or(b','),
                candidate: self.columns.candidate.clone(),
            };
            (self.path.as_path(), format)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(
        text: &str,
        cols: &CsvResultColumns,
        delim: u8,
    ) -> Result<(Vec<ExamResult>, ReadReport)> {
        let mut out = Vec::new();
        let rep = read(text.as_bytes(), "r.csv", cols, delim, &mut |r| {
            out.push(r);
            Ok(())
        })?;
        Ok((out, rep))
    }

    #[test]
    fn mapped_columns_with_semicolons_and_decimal_commas() {
        let cols = CsvResultColumns {
            candidate: "leerlingnummer".into(),
            exam: "toets".into(),
            session: "sessie".into(),
            score: "score".into(),
            max_score: "max".into(),
            passed: "geslaagd".into(),
            grade: "cijfer".into(),
            date: "datum".into(),
        };
        let text = "\u{feff}Leerlingnummer;toets;sessie;score;max;geslaagd;cijfer;datum\n\
                    stu-1001;EX-1;S1;42,5;60;ja;7,1;2026-06-02T09:45:00Z\n\
                    stu-1002;EX-1;;;60;nee;;gisteren\n\
                    ;EX-1;S3;1;2;;;\n\
                    stu-1004;EX-1;S4;veel;60;;;2026-06-02\n";
        let (rs, rep) = read_all(text, &cols, b';').unwrap();
        assert_eq!(rs.len(), 2, "{:?}", rep.issues);
        assert_eq!(
            (
                rs[0].candidate.as_str(),
                rs[0].session_id.as_deref(),
                rs[0].value.score,
                rs[0].value.passed,
                rs[0].value.grade.as_deref()
            ),
            ("stu-1001", Some("S1"), Some(42.5), Some(true), Some("7,1"))
        );
        assert_eq!(rs[0].origin, "r.csv:2");
        assert_eq!(
            (
                rs[1].session_id.as_deref(),
                rs[1].value.score,
                rs[1].value.passed
            ),
            (None, None, Some(false))
        );
        let text: Vec<String> = rep.issues.iter().map(|i| i.to_string()).collect();
        assert_eq!(text.len(), 4, "{text:?}");
        assert!(
            text[0].starts_with("r.csv:3: record stu-1002: date \"gisteren\""),
            "{text:?}"
        );
        assert_eq!(text[1], "r.csv:4: no candidate or exam id; row skipped");
        assert!(
            text[2].starts_with("r.csv:5: record stu-1004: score \"veel\""),
            "{text:?}"
        );
        assert!(
            text[3].ends_with("has no score, passed or grade; row skipped"),
            "{text:?}"
        );
        assert_eq!(rs[1].taken_at, None);
    }

    #[test]
    fn missing_columns_name_the_config_key() {
        let e = read_all("who,what\n1,2\n", &CsvResultColumns::default(), b',').unwrap_err();
        assert!(
            e.to_string()
                .contains("no column \"candidate\" (results.source.columns.candidate)"),
            "{e}"
        );
        let e = read_all("candidate,exam\n1,2\n", &CsvResultColumns::default(), b',').unwrap_err();
        assert!(e.to_string().contains("score/passed/grade"), "{e}");
    }
}
