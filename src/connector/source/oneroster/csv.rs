//! 1EdTech OneRoster 1.1 / 1.2 CSV binding: a folder or `.zip` holding
//! `manifest.csv`, `orgs.csv`, `academicSessions.csv`, `courses.csv`,
//! `classes.csv`, `users.csv`, `roles.csv` (1.2) and `enrollments.csv`.
//!
//! Files are streamed row by row with the `csv` crate. A bad row is reported
//! with file:line and skipped; a missing or unreadable file is fatal.
//! `demographics.csv` and `userProfiles.csv` are never opened: nothing in
//! the canonical model maps from them (birth dates and sex stay in the SIS).

mod guard;
mod input;

pub(crate) use crate::connector::source::oneroster::vocab::role_map;
use crate::connector::source::oneroster::vocab::{RoleRule, role_rule, status_of};
use std::collections::BTreeMap;
// Fx hashing: the column and id maps are looked up for every row, and the
// data comes from the school's own SIS, not from an adversary.
use rustc_hash::FxHashMap as HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};

use super::config::OneRosterCsvSource;
use crate::connector::source::accommodation_keys::{AccommodationKeys, OneRoster};
use crate::model::id_table::IdTable;
use crate::model::{
    Completeness, Group, Id, Membership, Org, Person, Role, Roster, SharedIds, SourceIssue, Status,
};
use guard::{Guarded, Limit};
use input::Input;

/// OneRoster version found in the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1_1,
    V1_2,
}

impl Version {
    fn label(self) -> &'static str {
        match self {
            Version::V1_1 => "1.1",
            Version::V1_2 => "1.2",
        }
    }
}

/// Reads a OneRoster CSV export into a canonical [`Roster`].
pub struct OneRosterCsv {
    path: PathBuf,
    role_map: BTreeMap<String, Role>,
    accommodations: AccommodationKeys<OneRoster>,
}

impl OneRosterCsv {
    pub fn new(cfg: &OneRosterCsvSource) -> OneRosterCsv {
        OneRosterCsv {
            path: cfg.path.clone(),
            role_map: role_map(&cfg.role_map),
            accommodations: cfg.accommodations.clone(),
        }
    }

    pub fn location(&self) -> &Path {
        &self.path
    }

    /// What is at the configured path, without reading the data:
    /// "OneRoster 1.2 CSV, folder" (for `check-config`).
    pub fn probe(&self) -> Result<String> {
        let input = Input::open(&self.path)?;
        let manifest = Manifest::read(&input)?;
        let version = manifest.version(&input)?;
        let kind = input.kind();
        let users = manifest.mode(&input, "users")?;
        if users == Completeness::Absent {
            bail!(
                "{}: no users.csv declared or present; this export cannot be synced",
                self.path.display()
            );
        }
        Ok(format!(
            "OneRoster {} CSV, {kind}, users {}",
            version.label(),
            match users {
                Completeness::Delta => "delta",
                _ => "bulk",
            }
        ))
    }

    /// Read the whole export. `progress` is called with rows read so far.
    pub fn read(&self, progress: &dyn Fn(u64)) -> Result<Roster> {
        let input = Input::open(&self.path)?;
        let manifest = Manifest::read(&input)?;
        let version = manifest.version(&input)?;
        manifest.declares_data(&input)?;
        let mut r = Reader {
            input: &input,
            manifest: &manifest,
            roster: Roster {
                format: format!("OneRoster {} CSV", version.label()),
                ..Roster::default()
            },
            progress,
            rows: 0,
        };
        let orgs = r.orgs()?;
        let courses = r.courses()?;
        r.academic_sessions()?;
        let classes = r.classes(&orgs, &courses)?;
        let roles = if version == Version::V1_2 {
            r.roles(&self.role_map)?
        } else {
            HashMap::default()
        };
        let users = r.users(version, &self.role_map, &roles, &self.accommodations)?;
        r.enrollments(&users, &classes, &self.role_map)?;
        Ok(r.roster)
    }
}

/// `manifest.csv`: propertyName,value.
struct Manifest {
    props: HashMap<String, String>,
    present: bool,
}

impl Manifest {
    fn read(input: &Input) -> Result<Manifest> {
        let shown = input.display("manifest.csv");
        let props = input.with("manifest.csv", |rd, _| {
            let mut props = HashMap::default();
            let mut csv = csv_reader(Guarded::new(rd, Limit::default()));
            for rec in csv.records() {
                let rec = rec.map_err(|e| {
                    anyhow!("{shown}: {e}; the manifest cannot be read, re-export the files")
                })?;
                if let (Some(k), Some(v)) = (rec.get(0), rec.get(1)) {
                    props.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
            Ok(props)
        })?;
        let props = props.map(|p: HashMap<String, String>| {
            // A manifest that names no OneRoster property is not one.
            if !p
                .keys()
                .any(|k| k == "oneroster.version" || k.starts_with("file."))
            {
                bail!(
                    "{shown} is not a OneRoster manifest (no oneroster.version, no file.* lines); re-export the files or remove it"
                );
            }
            Ok(p)
        });
        let props = props.transpose()?;
        Ok(Manifest {
            present: props.is_some(),
            props: props.unwrap_or_default(),
        })
    }

    /// An export that declares none of users, classes and enrolments (an
    /// empty folder, an all-`absent` manifest) is an error, not an empty
    /// roster that quietly changes nothing.
    fn declares_data(&self, input: &Input) -> Result<()> {
        for entity in ["users", "classes", "enrollments"] {
            if self.mode(input, entity)? != Completeness::Absent {
                return Ok(());
            }
        }
        bail!(
            "{}: the export has no users.csv, classes.csv or enrollments.csv{}; check the SIS export job",
            input.root(),
            if self.present {
                " (the manifest declares them all absent)"
            } else {
                ""
            }
        )
    }

    fn version(&self, input: &Input) -> Result<Version> {
        match self.props.get("oneroster.version").map(String::as_str) {
            Some("1.2") => Ok(Version::V1_2),
            Some("1.1") | Some("1.0") => Ok(Version::V1_1),
            Some(other) => bail!(
                "{}: oneroster.version {other:?} is not supported; sisync reads OneRoster 1.1 and 1.2",
                input.display("manifest.csv")
            ),
            None => {
                // No manifest (or no version in it): 1.2 has roles.csv and
                // no role column in users.csv.
                if input.exists("roles.csv") {
                    return Ok(Version::V1_2);
                }
                let has_role = input
                    .with("users.csv", |rd, _| {
                        let mut csv = csv_reader(rd);
                        let h = csv.headers()?;
                        Ok(h.iter().any(|c| c.trim().eq_ignore_ascii_case("role")))
                    })?
                    .unwrap_or(true);
                Ok(if has_role {
                    Version::V1_1
                } else {
                    Version::V1_2
                })
            }
        }
    }

    /// How the manifest declares a file: bulk, delta or absent.
    fn mode(&self, input: &Input, entity: &str) -> Result<Completeness> {
        let file = format!("{entity}.csv");
        if !self.present {
            return Ok(if input.exists(&file) {
                Completeness::Bulk
            } else {
                Completeness::Absent
            });
        }
        match self
            .props
            .get(&format!("file.{entity}"))
            .map(String::as_str)
        {
            Some("bulk") => Ok(Completeness::Bulk),
            Some("delta") => Ok(Completeness::Delta),
            Some("absent") | None => Ok(Completeness::Absent),
            Some(other) => bail!(
                "{}: file.{entity} = {other:?}; expected bulk, delta or absent",
                input.display("manifest.csv")
            ),
        }
    }
}

fn csv_reader<R: Read>(rd: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::None)
        .from_reader(rd)
}

/// Most issues listed per file; the rest are counted in one line, so a
/// broken export cannot flood memory and the log.
const MAX_ISSUES_PER_FILE: usize = 1000;
/// Longest field: anything longer is a stray quote, not roster data.
const MAX_FIELD_BYTES: usize = 64 * 1024;
/// Most lines one record may span (line breaks inside quotes).
const MAX_RECORD_LINES: u64 = 4;
/// Person columns that reach the platform as text.
const PERSON_TEXT: &[&str] = &[
    "givenName",
    "familyName",
    "middleName",
    "email",
    "username",
    "identifier",
];
/// Longest id taken from a row.
const MAX_ID_BYTES: usize = 256;

/// Header name (exact and lowercase) → column. A column named twice is
/// refused: which of the two holds the data is a guess.
fn columns(headers: &csv::StringRecord, shown: &str) -> Result<HashMap<String, usize>> {
    let mut cols: HashMap<String, usize> = HashMap::default();
    for (i, h) in headers.iter().enumerate() {
        let name = h.trim();
        if name.is_empty() {
            continue;
        }
        if cols.insert(name.to_ascii_lowercase(), i).is_some() {
            bail!(
                "{shown}:1: column {name:?} appears twice in the header; sisync cannot tell which one holds the data. Fix the SIS export"
            );
        }
        cols.entry(name.to_string()).or_insert(i);
    }
    Ok(cols)
}

fn cap_issues(roster: &mut Roster, base: usize, omitted: &mut usize) {
    let keep = base + MAX_ISSUES_PER_FILE;
    if roster.issues.len() > keep {
        *omitted += roster.issues.len() - keep;
        roster.issues.truncate(keep);
    }
}

/// A row that cannot be read as data: its ids come from the raw bytes.
struct Damaged<'a> {
    rec: &'a csv::ByteRecord,
    cols: &'a HashMap<String, usize>,
}

impl Damaged<'_> {
    /// A column's value, when it is readable text of id length.
    fn get(&self, col: &str) -> Option<&str> {
        self.field(*self.cols.get(&col.to_ascii_lowercase())?)
    }

    fn field(&self, i: usize) -> Option<&str> {
        std::str::from_utf8(self.rec.get(i)?)
            .ok()
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= MAX_ID_BYTES)
    }

    /// The row's id column and its first field (where the id is when a
    /// comma shifted the columns): every one of them is held.
    fn ids(&self, col: &str) -> Vec<String> {
        let mut ids: Vec<String> = self.get(col).into_iter().map(String::from).collect();
        if let Some(first) = self.field(0) {
            if !ids.iter().any(|i| i == first) {
                ids.push(first.to_string());
            }
        }
        ids
    }
}

/// Hold every id of a damaged row in `set`; the first is returned.
fn hold_ids(
    ids: Vec<String>,
    set: &mut std::collections::HashSet<String>,
) -> Result<Option<String>, ()> {
    let first = ids.first().cloned().ok_or(())?;
    set.extend(ids);
    Ok(Some(first))
}

/// For files whose rows hold nothing on the platform (orgs, courses,
/// sessions): a damaged row is only reported.
fn report_only(_: &mut Roster, d: &Damaged<'_>) -> Result<Option<String>, ()> {
    Ok(d.field(0).map(String::from))
}

/// One data row with header lookup.
struct Row<'a> {
    rec: &'a csv::StringRecord,
    cols: &'a HashMap<String, usize>,
    file: &'a str,
    line: u64,
    /// On one early row only: how many rows the whole file will have,
    /// from its size and the rows so far, so that a reader reserves its
    /// tables once instead of growing (and copying) them step by step.
    expected_rows: Option<usize>,
}

/// The row on which a file's row count is estimated.
const ESTIMATE_AFTER_ROWS: usize = 512;

/// Rows in a file of `size` bytes of which `rows` took `read` bytes, with
/// a little slack; None when too little was read to tell, or the guess
/// is far beyond what fits in memory anyway (a hint, never a limit).
fn expected_rows(size: Option<u64>, rows: usize, read: u64) -> Option<usize> {
    let per_row = read.checked_div(rows as u64).filter(|&b| b > 0)?;
    let n = size? / per_row;
    usize::try_from(n + n / 16 + 16)
        .ok()
        .filter(|&n| n <= 50_000_000)
}

impl Row<'_> {
    fn get(&self, col: &str) -> Option<&str> {
        // exact header name first (no allocation), then any capitalisation
        let i = match self.cols.get(col) {
            Some(i) => *i,
            None => *self.cols.get(&col.to_ascii_lowercase())?,
        };
        self.rec.get(i).map(str::trim).filter(|s| !s.is_empty())
    }

    fn list(&self, col: &str) -> Vec<String> {
        self.get(col)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A control character (NUL, ESC, a line break …) in a text column
    /// that reaches the platform: named, so the row can be held.
    fn control_chars(&self, cols: &[&str]) -> Option<String> {
        cols.iter().find_map(|c| {
            let ch = self.get(c)?.chars().find(|ch| ch.is_control())?;
            Some(format!(
                "{c} contains the control character U+{:04X}; fix it in the SIS",
                ch as u32
            ))
        })
    }

    fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    fn issue(&self, id: Option<&str>, reason: impl Into<String>) -> SourceIssue {
        SourceIssue {
            location: self.location(),
            record_id: id.map(String::from),
            reason: reason.into(),
        }
    }

    /// The row's sourcedId if it has one not seen before in this file;
    /// otherwise the problem is reported and None returned.
    fn new_id(&self, seen: &mut IdTable, roster: &mut Roster) -> Option<&str> {
        let Some(id) = self.get("sourcedId") else {
            roster.issues.push(self.issue(None, "missing sourcedId"));
            return None;
        };
        if !seen.insert(id) {
            roster
                .issues
                .push(self.issue(Some(id), "duplicate sourcedId"));
            return None;
        }
        Some(id)
    }

    /// `status` column: active unless tobedeleted (1.1/1.2) or inactive (1.0).
    fn status(&self) -> Result<Status, String> {
        status_of(self.get("status"))
    }
}

struct Reader<'a> {
    input: &'a Input,
    manifest: &'a Manifest,
    roster: Roster,
    progress: &'a dyn Fn(u64),
    rows: u64,
}

impl Reader<'_> {
    /// Stream one file; `each` gets every well-formed row. A damaged row
    /// (wrong field count, not UTF-8) goes to `damaged`, which holds what
    /// the row names and returns the id to report, or Err when it cannot
    /// tell whose row it is: then the file cannot be trusted and the read
    /// fails before anything is written. Returns the mode.
    fn table(
        &mut self,
        entity: &str,
        required: &[&str],
        mut each: impl FnMut(&mut Roster, &Row<'_>),
        mut damaged: impl FnMut(&mut Roster, &Damaged<'_>) -> Result<Option<String>, ()>,
    ) -> Result<Completeness> {
        let file = format!("{entity}.csv");
        let mode = self.manifest.mode(self.input, entity)?;
        if mode == Completeness::Absent {
            return Ok(mode);
        }
        let shown = self.input.display(&file);
        let roster = &mut self.roster;
        let progress = self.progress;
        let rows = &mut self.rows;
        let found = self.input.with(&file, |rd, size| {
            let limit = Limit::default();
            let mut csv = csv_reader(Guarded::new(rd, limit.clone()));
            let headers = match csv.headers() {
                Ok(h) => h.clone(),
                Err(_) if limit.tripped() => bail!(
                    "{shown}:1: the header line never ends (over {} KiB); this is not a OneRoster CSV file",
                    guard::MAX_RECORD_BYTES / 1024
                ),
                Err(e) => bail!("{shown}:1: cannot read the header line: {e}"),
            };
            let cols = columns(&headers, &shown)?;
            for req in required {
                if !cols.contains_key(&req.to_ascii_lowercase()) {
                    let only = headers.get(0).filter(|_| headers.len() == 1);
                    if only.is_some_and(|h| h.contains(';')) {
                        bail!(
                            "{shown}:1: the columns are separated by semicolons (saved by Excel with Dutch settings?); OneRoster CSV uses commas: export the file again as comma-separated CSV (UTF-8)"
                        );
                    }
                    if only.is_some_and(|h| h.contains('\t')) {
                        bail!(
                            "{shown}:1: the columns are separated by tabs (saved by Excel as \"Unicode text\"?); OneRoster CSV uses commas: export the file again as comma-separated CSV (UTF-8)"
                        );
                    }
                    bail!("{shown}:1: required column {req:?} is missing from the header");
                }
            }
            let base = roster.issues.len();
            let mut omitted = 0usize;
            let mut brec = csv::ByteRecord::new();
            let mut file_rows = 0usize;
            loop {
                let start = csv.position().clone();
                limit.allow_from(start.byte());
                match csv.read_byte_record(&mut brec) {
                    Ok(false) => break,
                    Ok(true) => {}
                    Err(_) if limit.tripped() => bail!(
                        "{shown}:{}: a quoted field never ends (the row runs past {} KiB); the rest of the file cannot be read. Look for a stray \" in that row of the SIS export",
                        start.line(),
                        guard::MAX_RECORD_BYTES / 1024
                    ),
                    Err(e) => bail!(
                        "{shown}:{}: {e}; the rest of the file cannot be read",
                        start.line()
                    ),
                }
                let line = brec.position().map_or(start.line(), |p| p.line());
                let span = csv.position().line().saturating_sub(line);
                *rows += 1;
                if *rows % 10_000 == 0 {
                    progress(*rows);
                }
                let longest = brec.iter().map(<[u8]>::len).max().unwrap_or(0);
                if span > MAX_RECORD_LINES || longest > MAX_FIELD_BYTES {
                    bail!(
                        "{shown}:{line}: a quoted field never ends (it runs over {span} lines, {} KiB); the rest of the file cannot be read. Look for a stray \" in that row of the SIS export",
                        longest.div_ceil(1024)
                    );
                }
                if brec.iter().all(|f| f.trim_ascii().is_empty()) {
                    continue; // blank line
                }
                // A line break inside a field that also holds many commas
                // is rows swallowed by a stray quote, not a value.
                let swallowed = span > 1
                    && brec.iter().any(|f| {
                        f.contains(&b'\n')
                            && f.iter().filter(|&&b| b == b',').count()
                                >= (headers.len() / 2).max(2)
                    });
                let problem = if brec.len() != headers.len() || swallowed {
                    if span > 1 {
                        bail!(
                            "{shown}:{line}: a quoted field runs into the next rows ({} fields over {span} lines, the header has {}); those rows cannot be read. Look for a stray \" in line {line} of the SIS export",
                            brec.len(),
                            headers.len()
                        );
                    }
                    format!(
                        "row has {} fields, header has {}; held as it was",
                        brec.len(),
                        headers.len()
                    )
                } else {
                    match csv::StringRecord::from_byte_record(std::mem::take(&mut brec)) {
                        Ok(rec) => {
                            file_rows += 1;
                            let row = Row {
                                rec: &rec,
                                cols: &cols,
                                file: &file,
                                line,
                                expected_rows: (file_rows == ESTIMATE_AFTER_ROWS)
                                    .then(|| expected_rows(size, file_rows, csv.position().byte()))
                                    .flatten(),
                            };
                            each(roster, &row);
                            brec = rec.into_byte_record();
                            cap_issues(roster, base, &mut omitted);
                            continue;
                        }
                        Err(e) => {
                            brec = e.into_byte_record();
                            "row is not valid UTF-8 (a Latin-1 export?); held as it was. Re-export the file as UTF-8".to_string()
                        }
                    }
                };
                let d = Damaged {
                    rec: &brec,
                    cols: &cols,
                };
                let Ok(id) = damaged(roster, &d) else {
                    bail!(
                        "{shown}:{line}: a damaged row ({problem}) without a readable id; sisync cannot tell whose row it is, so the file cannot be trusted. Fix that row in the SIS export"
                    );
                };
                roster.issues.push(SourceIssue {
                    location: format!("{file}:{line}"),
                    record_id: id,
                    reason: problem,
                });
                cap_issues(roster, base, &mut omitted);
            }
            if omitted > 0 {
                roster.issues.push(SourceIssue {
                    location: file.clone(),
                    record_id: None,
                    reason: format!(
                        "{omitted} more rows skipped in this file (the first {MAX_ISSUES_PER_FILE} are listed)"
                    ),
                });
            }
            Ok(())
        })?;
        if found.is_none() {
            bail!(
                "{shown} is missing but manifest.csv declares file.{entity} = {}; re-export or fix the manifest",
                match mode {
                    Completeness::Delta => "delta",
                    _ => "bulk",
                }
            );
        }
        (self.progress)(self.rows);
        Ok(mode)
    }

    /// A table whose rows are only read, never held: `each` gets every row
    /// with a new `sourcedId` (a missing or repeated one is reported).
    fn records(&mut self, entity: &str, mut each: impl FnMut(&str, &Row<'_>)) -> Result<IdTable> {
        let mut seen = IdTable::default();
        self.table(
            entity,
            &["sourcedId"],
            |roster, row| {
                if let Some(id) = row.new_id(&mut seen, roster) {
                    each(id, row);
                }
            },
            report_only,
        )?;
        Ok(seen)
    }

    fn orgs(&mut self) -> Result<IdTable> {
        let mut orgs = Vec::new();
        let seen = self.records("orgs", |id, row| {
            if row.status() == Ok(Status::ToBeDeleted) {
                return;
            }
            orgs.push(Org {
                sourced_id: id.to_string(),
                name: row.get("name").unwrap_or_default().to_string(),
                identifier: row.get("identifier").map(String::from),
                kind: row.get("type").unwrap_or_default().to_string(),
                parent: row.get("parentSourcedId").map(String::from),
            });
        })?;
        self.roster.orgs = orgs;
        Ok(seen)
    }

    fn courses(&mut self) -> Result<HashMap<String, Option<String>>> {
        let mut courses = HashMap::default();
        self.records("courses", |id, row| {
            courses.insert(id.to_string(), row.get("courseCode").map(String::from));
        })?;
        Ok(courses)
    }

    fn academic_sessions(&mut self) -> Result<()> {
        self.records("academicSessions", |_, _| {})?;
        Ok(())
    }

    fn classes(
        &mut self,
        orgs: &IdTable,
        courses: &HashMap<String, Option<String>>,
    ) -> Result<IdTable> {
        let orgs_bulk = self.manifest.mode(self.input, "orgs")? == Completeness::Bulk;
        let mut seen = IdTable::default();
        let mut groups = Vec::new();
        let mode = self.table(
            "classes",
            &["sourcedId", "title"],
            |roster, row| {
                let Some(id) = row.new_id(&mut seen, roster) else {
                    return;
                };
                if let Some(problem) = row.control_chars(&["title", "classCode"]) {
                    roster.issues.push(row.issue(Some(id), problem));
                    roster.held_groups.insert(id.to_string());
                    return;
                }
                let status = match row.status() {
                    Ok(s) => s,
                    Err(e) => {
                        roster.issues.push(row.issue(Some(id), e));
                        roster.held_groups.insert(id.to_string());
                        return;
                    }
                };
                let org = row.get("schoolSourcedId").map(String::from);
                if let Some(o) = &org {
                    if orgs_bulk && !orgs.contains(o) && status == Status::Active {
                        roster.issues.push(
                            row.issue(Some(id), format!("schoolSourcedId {o} is not in orgs.csv")),
                        );
                        roster.held_groups.insert(id.to_string());
                        return;
                    }
                }
                let course = row.get("courseSourcedId").map(String::from);
                let code = row.get("classCode").map(String::from).or_else(|| {
                    course
                        .as_ref()
                        .and_then(|c| courses.get(c).cloned().flatten())
                });
                groups.push(Group {
                    sourced_id: id.to_string(),
                    status,
                    title: row.get("title").unwrap_or(id).to_string(),
                    code,
                    org,
                    sessions: row.list("termSourcedIds"),
                    course,
                });
            },
            |roster, d| hold_ids(d.ids("sourcedId"), &mut roster.held_groups),
        )?;
        self.roster.groups = groups;
        self.roster.groups_completeness = mode;
        Ok(seen)
    }

    /// 1.2 `roles.csv`: user → (role, orgs). The primary role wins.
    fn roles(&mut self, role_map: &BTreeMap<String, Role>) -> Result<HashMap<String, UserRoles>> {
        let mut out: HashMap<String, UserRoles> = HashMap::default();
        self.table(
            "roles",
            &["userSourcedId", "role"],
            |roster, row| {
                let Some(user) = row.get("userSourcedId") else {
                    roster
                        .issues
                        .push(row.issue(row.get("sourcedId"), "missing userSourcedId"));
                    return;
                };
                if row.status() == Ok(Status::ToBeDeleted) {
                    return;
                }
                let role_name = row.get("role").unwrap_or_default().to_ascii_lowercase();
                let primary = row
                    .get("roleType")
                    .is_some_and(|t| t.eq_ignore_ascii_case("primary"));
                let entry = out.entry(user.to_string()).or_default();
                let mapped = role_map.get(&role_name).copied();
                if entry.role.is_none() || (primary && !entry.primary) {
                    entry.role = mapped;
                    entry.role_name = role_name;
                    entry.primary = primary;
                }
                if let Some(org) = row.get("orgSourcedId") {
                    if !entry.orgs.iter().any(|o| o == org) {
                        if primary {
                            entry.orgs.insert(0, org.to_string());
                        } else {
                            entry.orgs.push(org.to_string());
                        }
                    }
                }
            },
            |roster, d| {
                let user = d.get("userSourcedId").map(String::from);
                hold_ids(user.into_iter().collect(), &mut roster.held_persons)
            },
        )?;
        Ok(out)
    }

    fn users(
        &mut self,
        version: Version,
        role_map: &BTreeMap<String, Role>,
        roles: &HashMap<String, UserRoles>,
        acc: &AccommodationKeys<OneRoster>,
    ) -> Result<IdTable> {
        let mut seen = IdTable::default();
        let mut persons = Vec::new();
        let mut ignored = 0usize;
        let required: &[&str] = match version {
            Version::V1_1 => &["sourcedId", "role", "givenName", "familyName"],
            Version::V1_2 => &["sourcedId", "givenName", "familyName"],
        };
        let delta = self.manifest.mode(self.input, "users")? == Completeness::Delta;
        let mut anonymous: Option<u64> = None;
        let mode = self.table(
            "users",
            required,
            |roster, row| {
                if let Some(n) = row.expected_rows {
                    persons.reserve(n.saturating_sub(persons.len()));
                    seen.reserve(n.saturating_sub(seen.len()));
                }
                if row.get("sourcedId").is_none() {
                    anonymous.get_or_insert(row.line);
                    return;
                }
                let Some(id) = row.new_id(&mut seen, roster) else {
                    return;
                };
                if let Some(problem) = row.control_chars(PERSON_TEXT) {
                    roster.issues.push(row.issue(Some(id), problem));
                    roster.held_persons.insert(id.to_string());
                    return;
                }
                let mut status = match row.status() {
                    Ok(s) => s,
                    Err(e) => {
                        roster.issues.push(row.issue(Some(id), e));
                        roster.held_persons.insert(id.to_string());
                        return;
                    }
                };
                if row
                    .get("enabledUser")
                    .is_some_and(|v| v.eq_ignore_ascii_case("false"))
                {
                    status = Status::ToBeDeleted;
                }
                let (role, role_name, mut orgs) = match version {
                    Version::V1_1 => {
                        let name = row.get("role").unwrap_or_default().to_ascii_lowercase();
                        (
                            role_map.get(&name).copied(),
                            name,
                            row.list("orgSourcedIds"),
                        )
                    }
                    Version::V1_2 => match roles.get(id) {
                        Some(r) => (r.role, r.role_name.clone(), r.orgs.clone()),
                        None => (None, String::new(), Vec::new()),
                    },
                };
                if let Some(primary) = row.get("primaryOrgSourcedId") {
                    orgs.retain(|o| o != primary);
                    orgs.insert(0, primary.to_string());
                }
                let rule = match role {
                    Some(r) => RoleRule::Sync(Some(r)),
                    None => role_rule(role_map, &role_name, status, delta),
                };
                let role = match rule {
                    RoleRule::Sync(role) => role,
                    RoleRule::Hold => {
                        roster
                            .issues
                            .push(row.issue(Some(id), "user has no role (roles.csv)"));
                        roster.held_persons.insert(id.to_string());
                        return;
                    }
                    RoleRule::Ignore => {
                        ignored += 1; // guardians, parents, unmapped staff
                        return;
                    }
                };
                let accommodations = match acc.read(|col| row.get(col)) {
                    Ok(a) => a,
                    Err(e) => {
                        roster.issues.push(row.issue(Some(id), e));
                        roster.held_persons.insert(id.to_string());
                        return;
                    }
                };
                let (Some(given), Some(family)) = (row.get("givenName"), row.get("familyName"))
                else {
                    if status == Status::Active {
                        roster
                            .issues
                            .push(row.issue(Some(id), "givenName or familyName is empty"));
                        roster.held_persons.insert(id.to_string());
                        return;
                    }
                    // a tobedeleted delta row may carry the id only
                    persons.push(Person {
                        sourced_id: id.to_string(),
                        status,
                        role,
                        username: None,
                        identifier: None,
                        given_name: String::new(),
                        middle_name: None,
                        family_name: String::new(),
                        email: None,
                        eck_id: None,
                        bsn: None,
                        orgs,
                        accommodations,
                    });
                    return;
                };
                persons.push(Person {
                    sourced_id: id.to_string(),
                    status,
                    role,
                    username: row.get("username").map(String::from),
                    identifier: row.get("identifier").map(String::from),
                    given_name: given.to_string(),
                    middle_name: row.get("middleName").map(String::from),
                    family_name: family.to_string(),
                    email: row.get("email").map(String::from),
                    eck_id: row.get("userIds").and_then(crate::model::eck_id_in),
                    bsn: row
                        .get("userIds")
                        .and_then(crate::model::bsn_in)
                        .or_else(|| row.get("metadata.bsn").map(String::from)),
                    orgs,
                    accommodations,
                });
            },
            |roster, d| hold_ids(d.ids("sourcedId"), &mut roster.held_persons),
        )?;
        if let Some(at) = anonymous {
            bail!(
                "{}:{}: a user row without sourcedId; sisync cannot tell whose row it is, so the export cannot be trusted. Fix that row in the SIS export",
                self.input.display("users.csv"),
                at
            );
        }
        self.roster.persons = persons;
        self.roster.ignored += ignored;
        self.roster.persons_completeness = mode;
        Ok(seen)
    }

    fn enrollments(
        &mut self,
        users: &IdTable,
        classes: &IdTable,
        role_map: &BTreeMap<String, Role>,
    ) -> Result<()> {
        let users_bulk = self.roster.persons_completeness == Completeness::Bulk;
        let classes_bulk = self.roster.groups_completeness == Completeness::Bulk;
        // Against bulk files an enrolment's class and user are found by
        // their number in users.csv and classes.csv: one lookup each, and
        // the shared ids and the synced flags are kept by that number.
        let mut synced = vec![false; users.len()];
        for p in &self.roster.persons {
            if let Some(n) = users.find(&p.sourced_id) {
                synced[n as usize] = true;
            }
        }
        let mut user_ids: Vec<Option<Id>> = vec![None; users.len()];
        let mut class_ids: Vec<Option<Id>> = vec![None; classes.len()];
        let mut seen = IdTable::default();
        let mut memberships = Vec::new();
        let mut ids = SharedIds::default();
        let mut ignored = 0usize;
        let mode = self.table(
            "enrollments",
            &["classSourcedId", "userSourcedId"],
            |roster, row| {
                let hold = |roster: &mut Roster| {
                    if let Some(class) = row.get("classSourcedId") {
                        roster.held_groups.insert(class.to_string());
                    }
                };
                if let Some(n) = row.expected_rows {
                    memberships.reserve(n.saturating_sub(memberships.len()));
                    seen.reserve(n.saturating_sub(seen.len()));
                }
                let Some(id) = row.new_id(&mut seen, roster) else {
                    hold(roster);
                    return;
                };
                let status = match row.status() {
                    Ok(s) => s,
                    Err(e) => {
                        roster.issues.push(row.issue(Some(id), e));
                        hold(roster);
                        return;
                    }
                };
                let (Some(class), Some(user)) =
                    (row.get("classSourcedId"), row.get("userSourcedId"))
                else {
                    roster
                        .issues
                        .push(row.issue(Some(id), "classSourcedId or userSourcedId is empty"));
                    return;
                };
                // the number of a bulk file's id; None when it is not
                // there (reported), Some(None) against a delta file
                let number = |roster: &mut Roster,
                              bulk: bool,
                              table: &IdTable,
                              value: &str,
                              column: &str,
                              file: &str| {
                    if !bulk {
                        return Some(None);
                    }
                    let n = table.find(value).map(|n| n as usize);
                    if n.is_none() {
                        roster.issues.push(
                            row.issue(Some(id), format!("{column} {value} is not in {file}")),
                        );
                    }
                    n.map(Some)
                };
                let Some(user_no) = number(
                    roster,
                    users_bulk,
                    users,
                    user,
                    "userSourcedId",
                    "users.csv",
                ) else {
                    return;
                };
                let Some(class_no) = number(
                    roster,
                    classes_bulk,
                    classes,
                    class,
                    "classSourcedId",
                    "classes.csv",
                ) else {
                    return;
                };
                if user_no.is_some_and(|n| !synced[n]) {
                    ignored += 1; // enrolment of a guardian or a skipped user
                    return;
                }
                let role_name = row.get("role").unwrap_or("student");
                // the map's keys are lower case; most exports are too, so
                // a copy is made only for a name with capitals
                let role = if role_name.bytes().any(|b| b.is_ascii_uppercase()) {
                    role_map.get(&role_name.to_ascii_lowercase())
                } else {
                    role_map.get(role_name)
                };
                let Some(role) = role.copied() else {
                    ignored += 1;
                    return;
                };
                let mut shared = |no: Option<usize>, by_no: &mut [Option<Id>], id: &str| match no {
                    Some(n) => by_no[n].get_or_insert_with(|| Id::from(id)).clone(),
                    None => ids.get(id),
                };
                let group = shared(class_no, &mut class_ids, class);
                let person = shared(user_no, &mut user_ids, user);
                memberships.push(Membership {
                    status,
                    group,
                    person,
                    role,
                });
            },
            |roster, d| {
                // hold the class: its column, and any field naming a known
                // class (the columns may have shifted)
                let mut ids: Vec<String> = d
                    .get("classSourcedId")
                    .into_iter()
                    .map(String::from)
                    .collect();
                for i in 0..d.rec.len() {
                    if let Some(f) = d.field(i).filter(|f| classes.contains(f)) {
                        if !ids.iter().any(|c| c == f) {
                            ids.push(f.to_string());
                        }
                    }
                }
                hold_ids(ids, &mut roster.held_groups)
            },
        )?;
        self.roster.memberships = memberships;
        self.roster.ignored += ignored;
        self.roster.memberships_completeness = mode;
        Ok(())
    }
}

#[derive(Default)]
struct UserRoles {
    role: Option<Role>,
    role_name: String,
    primary: bool,
    orgs: Vec<String>,
}

#[cfg(test)]
mod fuzz;
super::super::file_roster_source!(
    OneRosterCsvSource,
    OneRosterCsv,
    "oneroster-csv",
    "OneRoster CSV export at"
);

#[cfg(test)]
mod tests;
