//! EDEXML 2.1 files (the export of ParnasSys, ESIS, Magister and others):
//! one `<EDEX>` document with the school, vestigingen, groepen, leerlingen
//! and leerkrachten. Streamed with quick-xml under the same XML safety as
//! the other XML readers (no DTD, no entity but the predefined ones, a
//! bound on a single token) and mapped as UWLR leerlinggegevens (see
//! [`crate::connector::source::uwlr_roster`]). A file is a complete snapshot.

pub mod config;

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};

use crate::connector::source::uwlr_roster::{self, Answer, Builder, Rec};
use crate::model::Roster;
use config::EdexmlSource;

pub struct Edexml {
    path: PathBuf,
    cfg: EdexmlSource,
}

impl Edexml {
    pub fn new(cfg: &EdexmlSource) -> Edexml {
        Edexml {
            path: cfg.path.clone(),
            cfg: cfg.clone(),
        }
    }

    pub fn location(&self) -> &Path {
        &self.path
    }

    fn open(&self) -> Result<File> {
        File::open(&self.path).with_context(|| {
            format!(
                "cannot open EDEXML file {}; check source.path",
                self.path.display()
            )
        })
    }

    /// "EDEXML, 1234 bytes, school 99AA00, schooljaar 2024-2025" (for
    /// `check-config`).
    pub fn probe(&self) -> Result<String> {
        let size = std::fs::metadata(&self.path)
            .with_context(|| {
                format!(
                    "EDEXML file {} not found; check source.path",
                    self.path.display()
                )
            })?
            .len();
        let roster = self.read(&|_| {})?;
        let school = roster
            .orgs
            .first()
            .map(|o| o.sourced_id.clone())
            .unwrap_or_default();
        Ok(format!(
            "EDEXML 2.1, {size} bytes, school {school}, {} persons, {} groepen",
            roster.persons.len(),
            roster.groups.len()
        ))
    }

    /// Read the whole file; `progress` is called with records read.
    pub fn read(&self, progress: &dyn Fn(u64)) -> Result<Roster> {
        let file = self.path.display().to_string();
        let mut b = Builder::new(
            self.cfg.qualify_ids,
            uwlr_roster::role_map(&self.cfg.role_map),
        );
        b.document(&file);
        let mut school_seen = false;
        let mut persons = 0u64;
        let mut err = None;
        let input = self.open()?;
        if let Ok(m) = input.metadata() {
            b.expect(m.len());
        }
        let input = BufReader::with_capacity(256 << 10, input);
        let answer = uwlr_roster::parse(input, &file, &mut |r| {
            if let Rec::School(s) = &r {
                match uwlr_roster::school_code(s) {
                    Some(code) => b.school(&code, &code),
                    None => {
                        err.get_or_insert_with(|| {
                            anyhow!("{file}: the school block has neither brincode nor schoolkey; re-export the file")
                        });
                    }
                }
                school_seen = true;
            } else if !school_seen {
                err.get_or_insert_with(|| {
                    anyhow!(
                        "{file}: records before the <school> block; is this an EDEXML 2.1 file?"
                    )
                });
            }
            if matches!(r, Rec::Leerling(_)) {
                persons += 1;
            }
            b.feed(r);
            if b.records % 10_000 == 0 {
                progress(b.records);
            }
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        if answer != Answer::Data || !school_seen {
            return Err(anyhow!(
                "{file}: no <school> block; source.path must point at an EDEXML 2.1 file"
            ));
        }
        if persons == 0 {
            return Err(anyhow!(
                "{file}: the file holds no leerling; refused like an empty roster (it would deactivate every student). Re-export the file"
            ));
        }
        progress(b.records);
        Ok(b.finish("EDEXML 2.1".to_string()))
    }
}

super::file_roster_source!(EdexmlSource, Edexml, "edexml", "EDEXML 2.1 file");
