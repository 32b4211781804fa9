//! The EDEXML 2.1 document: `EDEX` with the school block, `vestigingen`,
//! `groepen` (each class a `samengestelde_groep`: EDEXML gives a leerling
//! one stamgroep with a required jaargroep, which sisync does not know,
//! but any number of samengestelde groepen), `leerlingen` and
//! `leerkrachten`. Element order, lengths and patterns follow
//! `EDEXML.structuur.2.1.xsd`; a value the schema cannot carry fails the
//! delivery with the record named, never a file an importer would refuse.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use quick_xml::escape::escape;

use crate::config::Field;
use crate::digest::sha256_hex;
use crate::model::Role;
use crate::model::platform::{PlatformGroup, PlatformUser};

/// The school block.
#[derive(Debug, Clone)]
pub struct School {
    pub schooljaar: String,
    pub brincode: String,
    pub dependancecode: Option<String>,
    /// `aanmaakdatum`, RFC 3339 UTC.
    pub created: String,
}

/// The written document, the SHA-256 of each record's element by
/// `(part, id)` (part `leerling`, also for teachers, or `groep`), and the
/// records left out because the schema cannot carry one of their values.
pub struct Written {
    pub bytes: Vec<u8>,
    pub hashes: BTreeMap<(&'static str, String), String>,
    pub unfit: Vec<Unfit>,
}

/// Why a record cannot go into an EDEXML file: the record and the field,
/// no value (it may be personal data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfit {
    pub kind: &'static str,
    pub id: String,
    pub why: String,
}

impl std::fmt::Display for Unfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.id, self.why)
    }
}

/// Characters XML 1.0 allows in text.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// A value for an element or attribute of at most `max` characters.
fn fit<'a>(
    kind: &'static str,
    id: &str,
    field: &str,
    v: &'a str,
    max: usize,
) -> Result<&'a str, Unfit> {
    let unfit = |why: String| Unfit {
        kind,
        id: id.to_string(),
        why,
    };
    if !v.chars().all(xml_char) {
        return Err(unfit(format!(
            "{field} holds a control character XML cannot carry; correct it in the SIS"
        )));
    }
    if v.chars().count() > max {
        return Err(unfit(format!(
            "{field} is longer than the {max} characters EDEXML 2.1 allows; shorten it in the SIS"
        )));
    }
    Ok(v)
}

/// An optional text value: `None` when absent or blank.
fn text(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn el(out: &mut String, name: &str, value: &str) {
    let _ = write!(out, "<{name}>{}</{name}>", escape(value));
}

/// The EDEXML document for `users` and `groups` (members by group id).
/// Only the fields in `fields` are written. A person or class with a
/// value the schema cannot carry is left out (and listed in
/// [`Written::unfit`]), and so are references to a class left out. Fails
/// only when no valid document is possible (no leerling, an org code the
/// schema refuses).
pub fn document(
    school: &School,
    users: &[&PlatformUser],
    groups: &[&PlatformGroup],
    members: &BTreeMap<String, BTreeSet<String>>,
    fields: &[Field],
) -> Result<Written, Unfit> {
    let has = |f: Field| fields.contains(&f);
    let mut hashes = BTreeMap::new();
    let mut out = String::with_capacity(256 + users.len() * 256);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<EDEX>\n<school>");
    el(&mut out, "schooljaar", &school.schooljaar);
    el(&mut out, "brincode", &school.brincode);
    if let Some(d) = &school.dependancecode {
        el(&mut out, "dependancecode", d);
    }
    el(&mut out, "aanmaakdatum", &school.created);
    el(&mut out, "auteur", "sisync");
    el(&mut out, "xsdversie", "2.1");
    out.push_str("</school>\n");

    // vestigingen: each org a person names
    let orgs: BTreeSet<&str> = if has(Field::Org) {
        users.iter().filter_map(|u| text(&u.org)).collect()
    } else {
        BTreeSet::new()
    };
    if !orgs.is_empty() {
        out.push_str("<vestigingen>\n");
        for o in &orgs {
            let o = fit("org", o, "the org code", o, 64)?;
            let _ = write!(out, "<vestiging key=\"{}\">", escape(o));
            el(&mut out, "naam", o);
            out.push_str("</vestiging>\n");
        }
        out.push_str("</vestigingen>\n");
    }

    // groepen, and each person's groups
    let mut unfit = Vec::new();
    let mut groups_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    if has(Field::Groups) && !groups.is_empty() {
        let mut any = false;
        for g in groups {
            let checked =
                fit("class", &g.external_id, "the id", &g.external_id, 256).and_then(|id| {
                    let name = text(&g.display_name).unwrap_or(id);
                    Ok((id, fit("class", id, "the name", name, 64)?))
                });
            let (id, name) = match checked {
                Ok(v) => v,
                Err(u) => {
                    unfit.push(u);
                    continue;
                }
            };
            if !any {
                out.push_str("<groepen>\n");
                any = true;
            }
            let start = out.len();
            let _ = write!(out, "<samengestelde_groep key=\"{}\">", escape(id));
            el(&mut out, "naam", name);
            out.push_str("</samengestelde_groep>\n");
            hashes.insert(
                ("groep", id.to_string()),
                sha256_hex(&out.as_bytes()[start..]),
            );
            if let Some(m) = members.get(id) {
                for p in m {
                    groups_of.entry(p.as_str()).or_default().push(id);
                }
            }
        }
        if any {
            out.push_str("</groepen>\n");
        }
    }

    // students are leerlingen; teachers, assessors, proctors and staff
    // leerkrachten (with their role as rolomschrijving); a person with a
    // value the schema cannot carry is left out
    let mut leerlingen = String::new();
    let mut leerkrachten = String::new();
    for u in users {
        let student = u.role == Some(Role::Student) || !has(Field::Role);
        let (tag, into) = if student {
            ("leerling", &mut leerlingen)
        } else {
            ("leerkracht", &mut leerkrachten)
        };
        let mut one = String::new();
        match person(
            &mut one,
            u,
            tag,
            groups_of.get(u.external_id.as_str()),
            fields,
        ) {
            Ok(()) => {
                hashes.insert(
                    ("leerling", u.external_id.clone()),
                    sha256_hex(one.as_bytes()),
                );
                into.push_str(&one);
            }
            Err(e) => unfit.push(e),
        }
    }
    if leerlingen.is_empty() {
        return Err(Unfit {
            kind: "roster",
            id: String::new(),
            why: "no leerling to write, and EDEXML requires at least one; nothing was delivered"
                .into(),
        });
    }
    out.push_str("<leerlingen>\n");
    out.push_str(&leerlingen);
    out.push_str("</leerlingen>\n");
    if !leerkrachten.is_empty() {
        out.push_str("<leerkrachten>\n");
        out.push_str(&leerkrachten);
        out.push_str("</leerkrachten>\n");
    }
    out.push_str("</EDEX>\n");
    Ok(Written {
        bytes: out.into_bytes(),
        hashes,
        unfit,
    })
}

/// One `leerling` or `leerkracht` element.
fn person(
    out: &mut String,
    u: &PlatformUser,
    tag: &'static str,
    groups: Option<&Vec<&str>>,
    fields: &[Field],
) -> Result<(), Unfit> {
    let has = |f: Field| fields.contains(&f);
    let id = fit(tag, &u.external_id, "the id", &u.external_id, 256)?;
    let _ = write!(out, "<{tag} key=\"{}\">", escape(id));
    // names: achternaam (+ voorvoegsel, roepnaam), or a roepnaam alone
    let family = text(&u.family_name);
    let given = text(&u.given_name);
    match (family, given) {
        (Some(f), g) => {
            el(out, "achternaam", fit(tag, id, "the family name", f, 200)?);
            if let Some(m) = text(&u.middle_name) {
                el(
                    out,
                    "voorvoegsel",
                    fit(tag, id, "the tussenvoegsel", m, 10)?,
                );
            }
            if let Some(g) = g {
                el(out, "roepnaam", fit(tag, id, "the given name", g, 64)?);
            }
        }
        (None, Some(g)) => el(out, "roepnaam", fit(tag, id, "the given name", g, 64)?),
        (None, None) => {
            return Err(Unfit {
                kind: tag,
                id: id.to_string(),
                why: "has neither a family nor a given name, and EDEXML requires one; add it in the SIS".into(),
            });
        }
    }
    let user_name = Some(u.user_name.clone());
    let email = if has(Field::Email) {
        text(&u.email)
    } else {
        None
    };
    // user name and e-mail: after the school's elements for a leerling,
    // before the role for a leerkracht
    let contact = |out: &mut String| -> Result<(), Unfit> {
        if let Some(n) = text(&user_name) {
            el(out, "gebruikersnaam", fit(tag, id, "the user name", n, 64)?);
        }
        if let Some(e) = email {
            el(
                out,
                "emailadres",
                fit(tag, id, "the e-mail address", e, 256)?,
            );
        }
        Ok(())
    };
    if tag == "leerling" {
        if let Some(gs) = groups {
            out.push_str("<samengestelde_groepen>");
            for g in gs {
                let _ = write!(out, "<samengestelde_groep key=\"{}\"/>", escape(*g));
            }
            out.push_str("</samengestelde_groepen>");
        }
        if has(Field::Org) {
            if let Some(o) = text(&u.org) {
                let _ = write!(out, "<vestiging key=\"{}\"/>", escape(o));
            }
        }
        contact(out)?;
        if has(Field::Bsn) {
            if let Some(b) = text(&u.bsn) {
                if b.len() != 9 || !b.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(Unfit {
                        kind: tag,
                        id: id.to_string(),
                        why: "the BSN is not nine digits; correct it in the SIS".into(),
                    });
                }
                el(out, "bsn", b);
            }
        }
    } else {
        contact(out)?;
        if let Some(r) = u.role.filter(|_| has(Field::Role)) {
            el(out, "rolomschrijving", r.as_str());
        }
        if let Some(gs) = groups {
            out.push_str("<groepen>");
            for g in gs {
                let _ = write!(out, "<samengestelde_groep key=\"{}\"/>", escape(*g));
            }
            out.push_str("</groepen>");
        }
    }
    let _ = writeln!(out, "</{tag}>");
    Ok(())
}
