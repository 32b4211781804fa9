//! `[platform] kind = "edexml-drop"`: an EDEXML 2.1 file per run with
//! changes, for Facet's candidate import and other EDEXML consumers.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::{ConfigError, ConnectorConfig, Environment, Field, Loaded};
use crate::connector::school::{
    SchoolKeys, is_brin, is_dependance, parse_month_day, valid_school_year,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdexmlDropPlatform {
    /// Folder that receives a `sisync-<time>-run<N>/` folder per run with
    /// changes, holding `edexml.xml`.
    pub path: PathBuf,
    #[serde(default)]
    pub environment: Environment,
    /// Delivered folders 0750 and files 0640 instead of 0700/0600.
    #[serde(default)]
    pub group_readable: bool,
    /// `brincode`, `dependancecode`, `school_year_starts`.
    #[serde(flatten)]
    pub school: SchoolKeys,
    /// `schooljaar` as `2025-2026`; default: from the date, a school year
    /// starting on `school_year_starts`.
    pub schooljaar: Option<String>,
}

impl EdexmlDropPlatform {
    /// The school year for `today`: an explicit `schooljaar`, else the
    /// one `today` falls in.
    pub fn school_year(&self, today: chrono::NaiveDate) -> String {
        match &self.schooljaar {
            Some(s) => s.clone(),
            None => self.school.year_of(today),
        }
    }
}

impl ConnectorConfig for EdexmlDropPlatform {
    fn resolve_paths(&mut self, abs: &dyn Fn(&mut PathBuf)) {
        abs(&mut self.path);
    }
    fn environment(&self) -> Environment {
        self.environment
    }
    fn validate(&self, l: &Loaded, _section: &str) -> Result<(), ConfigError> {
        let p = self;
        let (brin, dep) = p.school.block(&l.config.institution.brin);
        if !is_brin(&brin) {
            let (section, key) = if p.school.brincode.is_some() {
                ("platform", "brincode")
            } else {
                ("institution", "brin")
            };
            return Err(l.error(
                section,
                key,
                format!(
                    "`{brin}` is not a BRIN code (two digits and two capitals, e.g. 99AA); set platform.brincode"
                ),
            ));
        }
        if let Some(d) = &dep {
            if !is_dependance(d) {
                return Err(l.error(
                    "platform",
                    "dependancecode",
                    format!("`{d}` is not two digits (e.g. 00 or 01)"),
                ));
            }
        }
        if parse_month_day(&p.school.school_year_starts).is_none() {
            return Err(l.error(
                "platform",
                "school_year_starts",
                format!(
                    "`{}` is not a month and day as MM-DD (e.g. 08-01)",
                    p.school.school_year_starts
                ),
            ));
        }
        if let Some(y) = &p.schooljaar {
            // the EDEXML schema's pattern starts at 1991
            let first = y.get(..4).and_then(|a| a.parse::<i32>().ok());
            let ok = valid_school_year(y) && first.is_some_and(|a| (1991..=2999).contains(&a));
            if !ok {
                return Err(l.error(
                    "platform",
                    "schooljaar",
                    format!("`{y}` is not a school year like 2025-2026"),
                ));
            }
        }
        l.needs_field(
            Field::Role,
            "platform.kind = \"edexml-drop\" needs \"role\": EDEXML lists leerlingen (the candidates) apart from leerkrachten and other staff; add \"role\"",
        )?;
        l.needs_field(
            Field::Name,
            "platform.kind = \"edexml-drop\" needs \"name\": EDEXML requires each leerling's achternaam or roepnaam; add \"name\" or choose another platform",
        )
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> EdexmlDropPlatform {
        EdexmlDropPlatform {
            path: "/tmp".into(),
            environment: Environment::Production,
            group_readable: false,
            school: SchoolKeys {
                brincode: None,
                dependancecode: None,
                school_year_starts: "08-01".into(),
            },
            schooljaar: None,
        }
    }

    #[test]
    fn school_year_turns_on_the_first_of_august() {
        let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(p().school_year(d("2026-07-31")), "2025-2026");
        assert_eq!(p().school_year(d("2026-08-01")), "2026-2027");
        let mut q = p();
        q.school.school_year_starts = "07-15".into();
        assert_eq!(q.school_year(d("2026-07-20")), "2026-2027");
        q.schooljaar = Some("2024-2025".into());
        assert_eq!(q.school_year(d("2026-07-20")), "2024-2025");
    }

    #[test]
    fn school_block_from_the_institution_brin() {
        assert_eq!(
            p().school.block("99AA01"),
            ("99AA".into(), Some("01".into()))
        );
        assert_eq!(p().school.block("99AA"), ("99AA".into(), None));
        let mut q = p();
        q.school.dependancecode = Some("02".into());
        assert_eq!(q.school.block("99AA01"), ("99AA".into(), Some("02".into())));
    }
}
