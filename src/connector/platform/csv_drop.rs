//! csv-drop platform sink: each run that changes anything delivers a folder
//! `sisync-<UTC time>-run<N>/` with `users.csv`, `groups.csv` and
//! `memberships.csv` holding the records that changed (deactivated users
//! as `active=false` rows carrying only their id). A first run delivers
//! the whole minimised roster; `sync --full` does so again.
//!
//! Delivery is atomic: the files are written into a hidden temporary
//! folder, fsynced, and the folder is renamed into place, so a platform
//! importer never sees a half-written drop. Only allowed fields get a
//! column.

pub mod config;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::config::Field;
use crate::connector::drop_folder::{CsvOut, csv_bytes, platform_error, write_folder_as};
use crate::connector::{ChangeSet, Delivery, FileSink, SinkError};
use crate::model::platform::PlatformUser;

pub struct CsvDrop {
    dir: PathBuf,
    fields: Vec<Field>,
    /// Cells that look like spreadsheet formulas are made text
    /// (`platform.formula_guard`, default on).
    formula_guard: bool,
    /// Folders 0750 and files 0640 instead of 0700/0600.
    group_readable: bool,
}

impl CsvDrop {
    pub fn new(dir: &Path, fields: &[Field]) -> CsvDrop {
        CsvDrop {
            dir: dir.to_path_buf(),
            fields: fields.to_vec(),
            formula_guard: true,
            group_readable: false,
        }
    }

    fn has(&self, f: Field) -> bool {
        self.fields.contains(&f)
    }

    fn user_header(&self) -> Vec<&'static str> {
        let mut h = vec!["externalId", "userName", "active"];
        if self.has(Field::Name) {
            h.extend(["givenName", "middleName", "familyName"]);
        }
        if self.has(Field::Email) {
            h.push("email");
        }
        if self.has(Field::Role) {
            h.push("role");
        }
        if self.has(Field::Org) {
            h.push("org");
        }
        if self.has(Field::Accommodations) {
            h.extend(["extraTimePercent", "fontScale", "screenReader"]);
        }
        if self.has(Field::PersonalNeeds) {
            h.extend(["extraTimeMinutes", "personalNeeds"]);
        }
        if self.has(Field::Bsn) {
            h.push("bsn");
        }
        h
    }

    fn user_row(&self, u: &PlatformUser) -> Vec<String> {
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        // an optional number or flag: empty when not given
        fn cell(v: Option<impl ToString>) -> String {
            v.map(|v| v.to_string()).unwrap_or_default()
        }
        let a = u.accommodations.clone().unwrap_or_default();
        let mut r = vec![
            u.external_id.clone(),
            u.user_name.clone(),
            u.active.to_string(),
        ];
        if self.has(Field::Name) {
            r.extend([o(&u.given_name), o(&u.middle_name), o(&u.family_name)]);
        }
        if self.has(Field::Email) {
            r.push(o(&u.email));
        }
        if self.has(Field::Role) {
            r.push(u.role.map(|x| x.as_str().to_string()).unwrap_or_default());
        }
        if self.has(Field::Org) {
            r.push(o(&u.org));
        }
        if self.has(Field::Accommodations) {
            r.extend([
                cell(a.extra_time_percent),
                cell(a.font_scale),
                cell(a.screen_reader),
            ]);
        }
        if self.has(Field::PersonalNeeds) {
            r.push(cell(a.extra_time_minutes));
            r.push(a.personal_needs.unwrap_or_default().join(" "));
        }
        if self.has(Field::Bsn) {
            r.push(o(&u.bsn));
        }
        r
    }

    /// `exams.csv` and `registrations.csv` (with `registrations` in
    /// privacy.fields): one row per sitting or registration that changed; a
    /// canceled sitting or withdrawn registration is a row with
    /// `active=false` / `state=canceled` carrying only its ids.
    fn exam_files(
        &self,
        changes: &ChangeSet<'_>,
        files: &mut Vec<(&'static str, Vec<u8>)>,
        row_hashes: &mut HashMap<(String, String), String>,
    ) -> Result<(), csv::Error> {
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        let eh = [
            "externalId",
            "code",
            "title",
            "tests",
            "start",
            "end",
            "location",
            "active",
        ];
        let mut rows: Vec<Vec<String>> = changes
            .offerings
            .iter()
            .map(|x| {
                let d = &x.details;
                vec![
                    x.external_id.clone(),
                    o(&d.code),
                    d.title.clone(),
                    d.tests.join(" "),
                    o(&d.start),
                    o(&d.end),
                    o(&d.location),
                    "true".into(),
                ]
            })
            .collect();
        for id in &changes.canceled_offerings {
            let mut r = vec![id.to_string()];
            r.resize(eh.len() - 1, String::new());
            r.push("false".into());
            rows.push(r);
        }
        let (bytes, hashes) = csv_bytes(&eh, &rows, self.formula_guard)?;
        for (r, h) in rows.iter().zip(hashes) {
            row_hashes.insert(("exams.csv".to_string(), r[0].clone()), h);
        }
        files.push(("exams.csv", bytes));
        let mut rh = vec![
            "externalId",
            "examExternalId",
            "userExternalId",
            "role",
            "state",
            "attempt",
        ];
        let needs = self.has(Field::PersonalNeeds);
        if needs {
            rh.extend(["extraTimeMinutes", "personalNeeds"]);
        }
        let mut rows: Vec<Vec<String>> = changes
            .registrations
            .iter()
            .map(|x| {
                let mut r = vec![
                    x.external_id.clone(),
                    x.offering.clone(),
                    x.person.clone(),
                    x.role.as_str().into(),
                    x.state.as_str().into(),
                    x.attempt.map(|a| a.to_string()).unwrap_or_default(),
                ];
                if needs {
                    r.push(x.extra_minutes.map(|m| m.to_string()).unwrap_or_default());
                    r.push(x.personal_needs.clone().unwrap_or_default().join(" "));
                }
                r
            })
            .collect();
        for (id, exam) in &changes.withdrawn_registrations {
            let mut r = vec![
                id.to_string(),
                exam.unwrap_or_default().to_string(),
                String::new(),
                String::new(),
                "canceled".into(),
            ];
            r.resize(rh.len(), String::new());
            rows.push(r);
        }
        let (bytes, hashes) = csv_bytes(&rh, &rows, self.formula_guard)?;
        for (r, h) in rows.iter().zip(hashes) {
            row_hashes.insert(("registrations.csv".to_string(), r[0].clone()), h);
        }
        files.push(("registrations.csv", bytes));
        Ok(())
    }
}

impl FileSink for CsvDrop {
    fn endpoint(&self) -> String {
        self.dir.display().to_string()
    }

    fn deliver(&self, run_id: i64, changes: &ChangeSet<'_>) -> Result<Delivery, SinkError> {
        fs::create_dir_all(&self.dir)
            .map_err(|e| platform_error(&self.dir, "create the folder", e))?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let name = format!("sisync-{stamp}-run{run_id}");
        let tmp = self.dir.join(format!(".{name}.tmp"));

        // a hash per row written: sized once, not grown by rehashing
        let mut row_hashes = HashMap::with_capacity(
            changes.users.len() + changes.deactivated_users.len() + changes.groups.len(),
        );
        let mut files: Vec<(&str, Vec<u8>)> = Vec::new();
        let enc = |e: csv::Error| platform_error(&tmp, "encode CSV", e);

        let header = self.user_header();
        let mut rows: Vec<Vec<String>> = changes.users.iter().map(|u| self.user_row(u)).collect();
        for id in &changes.deactivated_users {
            let mut r = vec![id.to_string(), String::new(), "false".into()];
            r.resize(header.len(), String::new());
            rows.push(r);
        }
        let (bytes, hashes) = csv_bytes(&header, &rows, self.formula_guard).map_err(enc)?;
        for (r, h) in rows.iter().zip(hashes) {
            row_hashes.insert(("users.csv".to_string(), r[0].clone()), h);
        }
        files.push(("users.csv", bytes));

        if self.has(Field::Groups) {
            let mut gh = vec!["externalId", "displayName", "active"];
            if self.has(Field::Org) {
                gh.push("org");
            }
            let mut grows = Vec::new();
            // memberships carry no audit hash of their own (the group's
            // entry covers them): written straight through, unhashed
            let mut members = CsvOut::new(
                &["groupExternalId", "userExternalId"],
                self.formula_guard,
                false,
            )
            .map_err(enc)?;
            for (g, active) in &changes.groups {
                let mut r = vec![
                    g.external_id.clone(),
                    g.display_name.clone().unwrap_or_default(),
                    active.to_string(),
                ];
                if self.has(Field::Org) {
                    r.push(g.org.clone().unwrap_or_default());
                }
                grows.push(r);
                for m in &g.members {
                    members
                        .row(&[g.external_id.as_str(), m.as_str()])
                        .map_err(enc)?;
                }
            }
            let (bytes, hashes) = csv_bytes(&gh, &grows, self.formula_guard).map_err(enc)?;
            for (r, h) in grows.iter().zip(hashes) {
                row_hashes.insert(("groups.csv".to_string(), r[0].clone()), h);
            }
            files.push(("groups.csv", bytes));
            files.push(("memberships.csv", members.finish().map_err(enc)?.0));
        }

        if self.has(Field::Registrations) {
            self.exam_files(changes, &mut files, &mut row_hashes)
                .map_err(enc)?;
        }

        let dest = write_folder_as(&self.dir, &name, &files, self.group_readable)
            .map_err(|(p, what, e)| platform_error(&p, what, e))?;
        Ok(Delivery {
            folder: dest,
            row_hashes,
            refused: HashMap::new(),
        })
    }
}

impl crate::connector::platform::FileDrop for config::CsvDropPlatform {
    fn describe(&self) -> crate::connector::platform::DropPlatform<'_> {
        crate::connector::platform::DropPlatform {
            path: &self.path,
            name: "csv-drop",
            register: "file drop",
            exam_shape: crate::connector::platform::ExamShape::Files,
            whole_roster: false,
            formula_guard: self.formula_guard,
            group_readable: self.group_readable,
        }
    }
    fn connect<'a>(
        &'a self,
        loaded: &'a crate::config::Loaded,
        _: Option<Result<crate::connector::platform::edexml_drop::Snapshot, String>>,
    ) -> crate::connector::platform::Connecting<'a> {
        Box::pin(async move {
            let sink = CsvDrop {
                formula_guard: self.formula_guard,
                group_readable: self.group_readable,
                ..CsvDrop::new(&self.path, &loaded.config.privacy.fields)
            };
            Ok(crate::connector::platform::Writer::Files(Box::new(sink)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;
    use crate::model::platform::{ExamAccommodations, PlatformGroup};

    fn user() -> PlatformUser {
        PlatformUser {
            given_name: Some("Anaïs".into()),
            middle_name: Some("van 't".into()),
            family_name: Some("Jansen, Jr.".into()),
            email: Some("secret@example.nl".into()),
            role: Some(Role::Student),
            org: Some("99AA00".into()),
            accommodations: Some(ExamAccommodations {
                extra_time_percent: Some(25),
                font_scale: None,
                screen_reader: Some(true),
                ..Default::default()
            }),
            ..crate::test_util::platform_user("stu-1")
        }
    }

    #[test]
    fn delivers_atomically_with_only_allowed_columns() {
        let dir = tempfile::tempdir().unwrap();
        let sink = CsvDrop::new(
            dir.path(),
            &[Field::Name, Field::Accommodations, Field::Groups],
        );
        let u = user();
        let g = PlatformGroup {
            external_id: "cls-1".into(),
            display_name: Some("H3A".into()),
            org: None,
            members: vec!["stu-1".into()],
            active: true,
            partial: false,
        };
        let cs = ChangeSet {
            users: vec![&u],
            deactivated_users: vec!["stu-2"],
            groups: vec![(&g, true)],
            ..ChangeSet::default()
        };
        let d = sink.deliver(7, &cs).unwrap();
        let entries: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(entries.len(), 1, "no temporary folder left behind");
        assert!(
            d.folder
                .file_name()
                .unwrap()
                .to_string_lossy()
                .ends_with("-run7")
        );
        let users = fs::read_to_string(d.folder.join("users.csv")).unwrap();
        let mut lines = users.lines();
        assert_eq!(
            lines.next().unwrap(),
            "externalId,userName,active,givenName,middleName,familyName,extraTimePercent,fontScale,screenReader"
        );
        assert_eq!(
            lines.next().unwrap(),
            "stu-1,stu-1,true,Anaïs,van 't,\"Jansen, Jr.\",25,,true"
        );
        assert_eq!(lines.next().unwrap(), "stu-2,,false,,,,,,");
        assert!(!users.contains("secret@example.nl"));
        assert!(!users.contains("99AA00"));
        let m = fs::read_to_string(d.folder.join("memberships.csv")).unwrap();
        assert_eq!(m, "groupExternalId,userExternalId\ncls-1,stu-1\n");
        assert_eq!(d.row_hashes.len(), 3);
    }

    #[test]
    fn a_taken_folder_name_gets_a_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let files = [("users.csv", b"x\n".to_vec())];
        let a = write_folder_as(dir.path(), "sisync-x-run1", &files, false).unwrap();
        let b = write_folder_as(dir.path(), "sisync-x-run1", &files, false).unwrap();
        let c = write_folder_as(dir.path(), "sisync-x-run1", &files, false).unwrap();
        assert_eq!(a.file_name().unwrap(), "sisync-x-run1");
        assert_eq!(b.file_name().unwrap(), "sisync-x-run1-2");
        assert_eq!(c.file_name().unwrap(), "sisync-x-run1-3");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
    }
}
