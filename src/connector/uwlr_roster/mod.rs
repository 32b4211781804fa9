//! The EDEX element model (EDEXML 2.1 files and UWLR 2.2 leerlinggegevens
//! answers share it) turned into the canonical roster: one mapping for the
//! `edexml` and the `uwlr` source.
//!
//! # Mapping
//! - School (`brincode` + `dependancecode`, "00" when absent) → an org of
//!   kind `school` whose id and identifier are BRIN + dependance
//!   ("99AA00"). `vestiging` → an org of kind `vestiging`, id
//!   `99AA00-<key>`, parent the school.
//! - `groep` → a class: title `naam`, code `jaargroep` (the year group is
//!   kept on the class; the platform is never sent it), org the school.
//!   `samengestelde_groep` → a class without code.
//! - `leerling` → a student; `leerkracht` → a teacher (or the role the
//!   first `rol` code maps to in `source.role_map`). Id: the `key`
//!   (qualified `99AA00:key` with `source.qualify_ids`); ECK iD from
//!   `eckid`; family name `achternaam`, middle name `voorvoegsel` (the
//!   tussenvoegsel), given name `roepnaam`, else `voornamen`; username
//!   `gebruikersnaam`; e-mail `emailadres` (sent only when the privacy
//!   policy allows e-mail); BSN from `bsn` or `sofinummer` (the privacy
//!   policy's BSN rules apply: `allow_bsn`, the 11-test, never stored).
//!   `onderwijsnummer` is not a BSN and is not read. Orgs: the school,
//!   then the `vestiging`.
//! - `groep` / `samengestelde_groepen` of a leerling → student
//!   memberships; `groepen` of a leerkracht → memberships with its role.
//! - Never read, never stored: `geboortedatum`, `geslacht`, `etniciteit`,
//!   `land*`, `gewicht*`, postcodes, `fotourl`, `start_ondw_jgr3`,
//!   dates of entry and exit, `toevoegingen`.
//!
//! # Several documents
//! A person or class key seen again in a later document (the next batch of
//! a staged read, or another school of the same LAS) is the same record:
//! its memberships and orgs are added. Twice in one document is a
//! duplicate: reported, the second skipped.
//!
//! # Bad records
//! A record without `key`, a person without `achternaam` or without any
//! first name, a class without `naam`, a reference to an unknown class:
//! reported as `origin:line: record KEY: reason`; a person or class with a
//! key is *held* (never deactivated for it).

use std::collections::{BTreeMap, HashMap, HashSet};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::model::{
    Completeness, Group, Membership, Org, Person, Role, Roster, SourceIssue, Status,
};

pub(crate) mod parse;

pub(crate) use parse::{Answer, RawGroep, RawPerson, RawVestiging, Rec, SchoolBlock, parse};

/// Leerkracht `rol` codes → sisync roles, from `source.role_map`.
pub(crate) fn role_map(cfg: &BTreeMap<String, String>) -> HashMap<String, Role> {
    cfg.iter()
        .filter_map(|(k, v)| Some((k.trim().to_ascii_uppercase(), Role::parse(v)?)))
        .collect()
}

/// Builds one roster out of one or more documents.
pub(crate) struct Builder {
    qualify: bool,
    roles: HashMap<String, Role>,
    /// The school the records being fed belong to: its org id.
    school: String,
    /// Origins of the documents fed, for messages; the last is current.
    origins: Vec<String>,
    orgs: Vec<Org>,
    org_ids: FxHashSet<String>,
    persons: Vec<Person>,
    person_at: FxHashMap<String, u32>,
    groups: Vec<Group>,
    /// class id → (index in `groups`, school that defined it)
    group_at: FxHashMap<String, (u32, String)>,
    memberships: Vec<Membership>,
    /// (class, person) indexes of the memberships made
    member_seen: FxHashSet<(u32, u32)>,
    /// person and class ids seen in the current document
    doc_persons: FxHashSet<String>,
    doc_groups: FxHashSet<String>,
    /// references to classes not (yet) known: (person index, class id,
    /// role, line, origin index), resolved at the end
    refs: Vec<(u32, String, Role, u64, u32)>,
    issues: Vec<SourceIssue>,
    held_persons: HashSet<String>,
    held_groups: HashSet<String>,
    pub records: u64,
}

impl Builder {
    pub fn new(qualify: bool, roles: HashMap<String, Role>) -> Builder {
        Builder {
            qualify,
            roles,
            school: String::new(),
            origins: vec![String::new()],
            orgs: Vec::new(),
            org_ids: FxHashSet::default(),
            persons: Vec::new(),
            person_at: FxHashMap::default(),
            groups: Vec::new(),
            group_at: FxHashMap::default(),
            memberships: Vec::new(),
            member_seen: FxHashSet::default(),
            doc_persons: FxHashSet::default(),
            doc_groups: FxHashSet::default(),
            refs: Vec::new(),
            issues: Vec::new(),
            held_persons: HashSet::new(),
            held_groups: HashSet::new(),
            records: 0,
        }
    }

    /// The school (org) the next documents belong to.
    pub fn school(&mut self, code: &str, name: &str) {
        self.school = code.to_string();
        if self.org_ids.insert(code.to_string()) {
            self.orgs.push(Org {
                sourced_id: code.to_string(),
                name: name.to_string(),
                identifier: Some(code.to_string()),
                kind: "school".into(),
                parent: None,
            });
        }
    }

    /// A new document (or batch) starts; `origin` names it in messages.
    pub fn document(&mut self, origin: &str) {
        self.origins.push(origin.to_string());
        self.doc_persons.clear();
        self.doc_groups.clear();
    }

    fn origin(&self) -> &str {
        self.origins.last().map(String::as_str).unwrap_or_default()
    }

    fn id(&self, key: String) -> String {
        if self.qualify {
            format!("{}:{key}", self.school)
        } else {
            key
        }
    }

    fn issue(&mut self, line: u64, id: Option<&str>, reason: impl Into<String>) {
        self.issues.push(SourceIssue {
            location: format!("{}:{line}", self.origin()),
            record_id: id.map(String::from),
            reason: reason.into(),
        });
    }

    pub fn feed(&mut self, rec: Rec) {
        self.records += 1;
        match rec {
            // the school block is checked by the caller
            Rec::School(_) => {}
            Rec::Vestiging(v) => self.vestiging(v),
            Rec::Groep(g) => self.groep(g),
            Rec::Leerling(p) => self.person(p, None),
            Rec::Leerkracht(p) => {
                let role = p
                    .rollen
                    .iter()
                    .find_map(|r| self.roles.get(&r.trim().to_ascii_uppercase()).copied())
                    .unwrap_or(Role::Teacher);
                self.person(p, Some(role))
            }
        }
    }

    fn vestiging(&mut self, v: RawVestiging) {
        let Some(key) = v.key else {
            self.issue(v.line, None, "vestiging without key");
            return;
        };
        let id = format!("{}-{key}", self.school);
        if self.org_ids.insert(id.clone()) {
            self.orgs.push(Org {
                sourced_id: id.clone(),
                name: v.naam.unwrap_or_else(|| key.clone()),
                identifier: None,
                kind: "vestiging".into(),
                parent: Some(self.school.clone()),
            });
        }
    }

    fn groep(&mut self, g: RawGroep) {
        let Some(key) = g.key else {
            self.issue(g.line, None, "groep without key");
            return;
        };
        let id = self.id(key.clone());
        if !self.doc_groups.insert(id.clone()) {
            self.issue(
                g.line,
                Some(&id),
                "duplicate groep key in one document; the second is skipped",
            );
            return;
        }
        if let Some((_, other)) = self.group_at.get(&id) {
            if *other != self.school {
                let msg = format!(
                    "groep key {key} is used by schools {other} and {}; set source.qualify_ids = true",
                    self.school
                );
                self.issue(g.line, Some(&id), msg);
                self.held_groups.insert(id);
            }
            return; // the same class again (a later batch)
        }
        let Some(naam) = g.naam else {
            self.issue(g.line, Some(&id), "groep without naam");
            self.held_groups.insert(id);
            return;
        };
        self.group_at
            .insert(id.clone(), (self.groups.len() as u32, self.school.clone()));
        self.groups.push(Group {
            sourced_id: id,
            status: Status::Active,
            title: naam,
            code: if g.samengesteld { None } else { g.jaargroep },
            org: Some(self.school.clone()),
            sessions: Vec::new(),
            course: None,
        });
    }

    /// A membership of person `pi` in class `gi`, once.
    fn member(&mut self, gi: u32, pi: u32, role: Role) {
        if self.member_seen.insert((gi, pi)) {
            self.memberships.push(Membership {
                status: Status::Active,
                group: self.groups[gi as usize].sourced_id.clone(),
                person: self.persons[pi as usize].sourced_id.clone(),
                role,
            });
        }
    }

    /// A leerling (`teacher_role` None) or leerkracht.
    fn person(&mut self, p: RawPerson, teacher_role: Option<Role>) {
        let what = if teacher_role.is_some() {
            "leerkracht"
        } else {
            "leerling"
        };
        let Some(key) = p.key else {
            self.issue(p.line, None, format!("{what} without key"));
            return;
        };
        let id = self.id(key);
        if !self.doc_persons.insert(id.clone()) {
            self.issue(
                p.line,
                Some(&id),
                format!("duplicate {what} key in one document; the second is skipped"),
            );
            return;
        }
        let role = teacher_role.unwrap_or(Role::Student);
        let given = p.roepnaam.or(p.voornamen);
        let (Some(family), Some(given)) = (p.achternaam, given) else {
            self.issue(
                p.line,
                Some(&id),
                format!("{what} without achternaam, or without roepnaam and voornamen"),
            );
            self.held_persons.insert(id);
            return;
        };
        let mut orgs = vec![self.school.clone()];
        if let Some(v) = &p.vestiging {
            orgs.push(format!("{}-{v}", self.school));
        }
        let pi = match self.person_at.get(&id) {
            Some(&i) => {
                // seen in an earlier document: the same person
                let known = &mut self.persons[i as usize];
                for o in orgs {
                    if !known.orgs.contains(&o) {
                        known.orgs.push(o);
                    }
                }
                if known.role != Some(role) && role == Role::Student {
                    self.issue(
                        p.line,
                        Some(&id),
                        "the key is both a leerling and a leerkracht; set source.qualify_ids = true or fix the LAS",
                    );
                    self.held_persons.insert(id);
                    return;
                }
                i
            }
            None => {
                let i = self.persons.len() as u32;
                self.person_at.insert(id.clone(), i);
                self.persons.push(Person {
                    sourced_id: id,
                    status: Status::Active,
                    role: Some(role),
                    username: p.gebruikersnaam,
                    identifier: None,
                    given_name: given,
                    middle_name: p.voorvoegsel,
                    family_name: family,
                    email: p.emailadres,
                    eck_id: p.eckid,
                    bsn: p.bsn,
                    orgs,
                    accommodations: Default::default(),
                });
                i
            }
        };
        let origin = (self.origins.len() - 1) as u32;
        for g in p.groepen {
            let gid = self.id(g);
            match self.group_at.get(&gid) {
                Some(&(gi, _)) => self.member(gi, pi, role),
                None => self.refs.push((pi, gid, role, p.line, origin)),
            }
        }
    }

    /// The roster: every document fed, as one bulk snapshot.
    pub fn finish(mut self, format: String) -> Roster {
        for (pi, group, role, line, origin) in std::mem::take(&mut self.refs) {
            match self.group_at.get(&group) {
                Some(&(gi, _)) => self.member(gi, pi, role),
                None if self.held_groups.contains(&group) => {}
                None => {
                    let person = self.persons[pi as usize].sourced_id.clone();
                    self.issues.push(SourceIssue {
                        location: format!("{}:{line}", self.origins[origin as usize]),
                        record_id: Some(person),
                        reason: format!("groep {group} is not in the groepen"),
                    });
                }
            }
        }
        if !self.held_persons.is_empty() {
            // a key held in a later document loses what an earlier one gave
            let held = &self.held_persons;
            self.persons.retain(|p| !held.contains(&p.sourced_id));
            self.memberships.retain(|m| !held.contains(&m.person));
        }
        Roster {
            orgs: self.orgs,
            persons: self.persons,
            groups: self.groups,
            memberships: self.memberships,
            persons_completeness: Completeness::Bulk,
            groups_completeness: Completeness::Bulk,
            memberships_completeness: Completeness::Bulk,
            issues: self.issues,
            ignored: 0,
            held_persons: self.held_persons,
            held_groups: self.held_groups,
            format,
            exams: Default::default(),
        }
    }
}

/// BRIN + dependance of a school block ("99AA00"), or its schoolkey.
pub(crate) fn school_code(s: &SchoolBlock) -> Option<String> {
    match (&s.brincode, &s.schoolkey) {
        (Some(b), _) => Some(format!(
            "{b}{}",
            s.dependancecode.as_deref().unwrap_or("00")
        )),
        (None, Some(k)) => Some(k.clone()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests;
