//! edexml-drop platform sink: each run that changes anything delivers a
//! folder `sisync-<UTC time>-run<N>/` with `edexml.xml`, an EDEXML 2.1
//! file of the whole minimised roster as it stands after the run (EDEXML
//! is a snapshot format: Facet and other importers read a school's
//! complete candidate list, not a list of changes), and, when the run
//! deactivated anyone, `deactivated.csv` naming them (`externalId,active`).
//!
//! Delivery is atomic and private exactly as for csv-drop (see
//! [`crate::connector::drop_folder::write_folder_as`]). Only allowed
//! fields are written; a run without changes writes nothing.

pub mod config;
mod erase;
mod writer;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

pub use erase::without_persons;
pub use writer::{School, Unfit};

use crate::config::Field;
use crate::connector::drop_folder::{csv_bytes, platform_error, write_folder_as};
use crate::connector::{ChangeSet, Delivery, FileSink, SinkError};
use crate::model::Completeness;
use crate::model::platform::{Minimised, PlatformGroup, PlatformUser};

/// The file of a delivery holding the roster.
pub const FILE: &str = "edexml.xml";
/// How the audit log names the class part of [`FILE`].
pub const GROUPS: &str = "edexml.xml#groepen";
/// The file of a delivery naming who was deactivated.
pub const DEACTIVATED: &str = "deactivated.csv";

/// The complete minimised roster of a run, taken before planning.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub users: Vec<PlatformUser>,
    pub groups: Vec<PlatformGroup>,
    pub members: BTreeMap<String, BTreeSet<crate::model::Id>>,
}

impl Snapshot {
    /// The roster of `m`, or why it is not complete (a delta export
    /// carries changes only, and an EDEXML file must name everyone).
    pub fn of(m: &Minimised) -> Result<Snapshot, String> {
        let partial = [
            ("users", m.users_completeness),
            ("classes", m.groups_completeness),
            ("memberships", m.memberships_completeness),
        ]
        .into_iter()
        .find(|(_, c)| *c == Completeness::Delta);
        if let Some((what, _)) = partial {
            return Err(format!(
                "this run read {what} as a delta (changes only), and an EDEXML file must name everyone: run `sisync sync roster --full` (or point the source at a full export)"
            ));
        }
        Ok(Snapshot {
            users: m.users.clone(),
            groups: m.groups.clone(),
            members: m.members.clone(),
        })
    }
}

pub struct EdexmlDrop {
    dir: PathBuf,
    fields: Vec<Field>,
    school: School,
    snapshot: Snapshot,
    /// Folders 0750 and files 0640 instead of 0700/0600.
    group_readable: bool,
}

impl EdexmlDrop {
    pub fn new(dir: &Path, fields: &[Field], school: School, snapshot: Snapshot) -> EdexmlDrop {
        EdexmlDrop {
            dir: dir.to_path_buf(),
            fields: fields.to_vec(),
            school,
            snapshot,
            group_readable: false,
        }
    }

    /// The document for the snapshot, with the run's changes laid over it
    /// (a record the run deactivated is left out even if the snapshot
    /// still had it).
    fn document(&self, changes: &ChangeSet<'_>) -> Result<writer::Written, Unfit> {
        let gone: BTreeSet<&str> = changes.deactivated_users.iter().copied().collect();
        let retired: BTreeSet<&str> = changes
            .groups
            .iter()
            .filter(|(_, active)| !active)
            .map(|(g, _)| g.external_id.as_str())
            .collect();
        let users = in_file(&self.snapshot.users, &gone, |u| (&u.external_id, u.active));
        let groups = in_file(&self.snapshot.groups, &retired, |g| {
            (&g.external_id, g.active)
        });
        // members: of the snapshot, only persons in the file
        let present: BTreeSet<&str> = users.iter().map(|u| u.external_id.as_str()).collect();
        let members: BTreeMap<String, BTreeSet<String>> = self
            .snapshot
            .members
            .iter()
            .map(|(g, m)| {
                (
                    g.clone(),
                    m.iter()
                        .filter(|p| present.contains(p.as_str()))
                        .map(|p| p.to_string())
                        .collect(),
                )
            })
            .collect();
        writer::document(&self.school, &users, &groups, &members, &self.fields)
    }
}

/// The records of `all` that go into the file: active, not `left_out` by
/// the run, ordered by external id and each id once (the first wins).
fn in_file<'a, T>(
    all: &'a [T],
    left_out: &BTreeSet<&str>,
    id_active: impl Fn(&T) -> (&String, bool),
) -> Vec<&'a T> {
    let mut kept: Vec<&T> = all
        .iter()
        .filter(|x| {
            let (id, active) = id_active(x);
            active && !left_out.contains(id.as_str())
        })
        .collect();
    kept.sort_by(|a, b| id_active(a).0.cmp(id_active(b).0));
    kept.dedup_by(|a, b| id_active(a).0 == id_active(b).0);
    kept
}

impl FileSink for EdexmlDrop {
    fn endpoint(&self) -> String {
        self.dir.display().to_string()
    }

    fn record_file(&self, group: bool, deactivate: bool) -> &'static str {
        match (group, deactivate) {
            (true, _) => GROUPS,
            (false, true) => DEACTIVATED,
            (false, false) => FILE,
        }
    }

    fn deliver(&self, run_id: i64, changes: &ChangeSet<'_>) -> Result<Delivery, SinkError> {
        let doc = self.document(changes).map_err(|u| SinkError {
            endpoint: self.dir.display().to_string(),
            status: None,
            message: format!("{u}; nothing was delivered"),
            payload_sha256: None,
            detail: None,
            refused: false,
        })?;
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| platform_error(&self.dir, "create the folder", e))?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let name = format!("sisync-{stamp}-run{run_id}");
        let mut row_hashes = HashMap::new();
        for ((part, id), h) in doc.hashes {
            let file = if part == "groep" { GROUPS } else { FILE };
            row_hashes.insert((file.to_string(), id), h);
        }
        // left out: the record fails (and is held: its state is not
        // updated, so the next run tries again); the rest is delivered
        let mut refused = HashMap::new();
        for u in doc.unfit {
            let file = if u.kind == "class" { GROUPS } else { FILE };
            tracing::warn!(record = %u.id, "left out of the EDEXML file: {}", u.why);
            refused.insert(
                (file.to_string(), u.id.clone()),
                format!("{u}; left out of the EDEXML file"),
            );
        }
        let mut files: Vec<(&str, Vec<u8>)> = vec![(FILE, doc.bytes)];
        if !changes.deactivated_users.is_empty() {
            let rows: Vec<Vec<String>> = changes
                .deactivated_users
                .iter()
                .map(|id| vec![id.to_string(), "false".into()])
                .collect();
            let (bytes, hashes) = csv_bytes(&["externalId", "active"], &rows, true)
                .map_err(|e| platform_error(&self.dir, "encode CSV", e))?;
            for (r, h) in rows.iter().zip(hashes) {
                row_hashes.insert((DEACTIVATED.to_string(), r[0].clone()), h);
            }
            files.push((DEACTIVATED, bytes));
        }
        let dest = write_folder_as(&self.dir, &name, &files, self.group_readable)
            .map_err(|(p, what, e)| platform_error(&p, what, e))?;
        Ok(Delivery {
            folder: dest,
            row_hashes,
            refused,
        })
    }
}

impl crate::connector::platform::FileDrop for config::EdexmlDropPlatform {
    /// A sitting becomes a samengestelde groep Facet can import; EDEXML
    /// has no deletion: the same erasures.csv as csv-drop.
    fn describe(&self) -> crate::connector::platform::DropPlatform<'_> {
        crate::connector::platform::DropPlatform {
            path: &self.path,
            name: "edexml-drop (EDEXML 2.1)",
            register: "EDEXML file drop",
            exam_shape: crate::connector::platform::ExamShape::Groups,
            whole_roster: true,
            formula_guard: true,
            group_readable: self.group_readable,
        }
    }
    fn connect<'a>(
        &'a self,
        loaded: &'a crate::config::Loaded,
        whole: Option<Result<Snapshot, String>>,
    ) -> crate::connector::platform::Connecting<'a> {
        Box::pin(async move {
            let snapshot = match whole {
                Some(Ok(s)) => s,
                Some(Err(why)) => anyhow::bail!(
                    "edexml-drop into {}: {why}; nothing was delivered",
                    self.path.display()
                ),
                None => anyhow::bail!(
                    "edexml-drop into {}: a held plan carries only changes, and an EDEXML file must name everyone; nothing was delivered. Check the plan with `sisync plan show`, then run `sisync sync roster --allow-mass-changes`",
                    self.path.display()
                ),
            };
            let cfg = &loaded.config;
            let (brincode, dependancecode) = self.school.block(&cfg.institution.brin);
            let school = School {
                schooljaar: self.school_year(crate::clock::today()),
                brincode,
                dependancecode,
                created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            };
            let sink = EdexmlDrop {
                group_readable: self.group_readable,
                ..EdexmlDrop::new(&self.path, &cfg.privacy.fields, school, snapshot)
            };
            Ok(crate::connector::platform::Writer::Files(Box::new(sink)))
        })
    }
}

#[cfg(test)]
mod tests;
