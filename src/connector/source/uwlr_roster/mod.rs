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

use hashbrown::hash_map::EntryRef;

use rustc_hash::FxHashSet;

use crate::model::{
    Completeness, Group, Id, Membership, Org, Person, Role, Roster, SourceIssue, Status,
};

pub(crate) mod parse;

pub(crate) use parse::{Answer, RawGroep, RawPerson, RawVestiging, Rec, SchoolBlock, parse};

/// Leerkracht `rol` codes → sisync roles, from `source.role_map`.
pub(crate) fn role_map(cfg: &BTreeMap<String, String>) -> HashMap<String, Role> {
    cfg.iter()
        .filter_map(|(k, v)| Some((k.trim().to_ascii_uppercase(), Role::parse(v)?)))
        .collect()
}

/// Ids (the map's keys, shared with the memberships) → where they stand.
type IdMap = hashbrown::HashMap<Id, Slot, rustc_hash::FxBuildHasher>;

/// Where an id stands: the record it made ([`NONE`] while it made none,
/// when held) and the last document it was in.
#[derive(Clone, Copy)]
struct Slot {
    at: u32,
    doc: u32,
}

const NONE: u32 = u32::MAX;

/// A reference to a class not (yet) known, resolved at the end.
struct Ref {
    person: u32,
    group: String,
    role: Role,
    line: u64,
    origin: u32,
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
    /// The id of each of `persons`, shared with its memberships.
    person_ids: Vec<Id>,
    /// person id → its person (index in `persons`)
    person_at: IdMap,
    groups: Vec<Group>,
    /// class id → its class (index in `groups`)
    group_at: IdMap,
    /// Made as read, the ids shared (see [`Builder::expect`]).
    memberships: Vec<Membership>,
    /// Scratch: one person's memberships as they are made.
    made: Vec<Membership>,
    /// Set when a membership may have been made twice (a person in two
    /// documents, references resolved at the end): checked at the end
    /// instead of for every membership.
    maybe_twice: bool,
    refs: Vec<Ref>,
    /// Scratch for qualified ids.
    id_buf: String,
    issues: Vec<SourceIssue>,
    held_persons: HashSet<String>,
    held_groups: HashSet<String>,
    pub records: u64,
}

/// `key`, or `school:key` when ids are qualified, in `buf` when it must be
/// made.
fn qualified<'a>(qualify: bool, school: &str, key: &'a str, buf: &'a mut String) -> &'a str {
    if !qualify {
        return key;
    }
    buf.clear();
    buf.push_str(school);
    buf.push(':');
    buf.push_str(key);
    buf
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
            person_ids: Vec::new(),
            person_at: IdMap::default(),
            groups: Vec::new(),
            group_at: IdMap::default(),
            memberships: Vec::new(),
            made: Vec::new(),
            maybe_twice: false,
            refs: Vec::new(),
            id_buf: String::new(),
            issues: Vec::new(),
            held_persons: HashSet::new(),
            held_groups: HashSet::new(),
            records: 0,
        }
    }

    /// Room for what a document of `bytes` bytes may hold, made before it
    /// is read. Growing the persons and memberships as they come copies
    /// each into fresh memory twice its size, which the kernel must fault
    /// in and zero: about a third of a parse's CPU time. The estimates are
    /// generous (a person takes far more than 256 bytes of EDEX, a group
    /// reference more than 48): room never written is never faulted in,
    /// and when the estimate is short the vectors grow as before. A
    /// reservation the system refuses is left out. The person map is
    /// reserved too, so it is not rebuilt as it grows.
    pub fn expect(&mut self, bytes: u64) {
        let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        let _ = self.persons.try_reserve((bytes / 256).min(1 << 22));
        let _ = self.person_ids.try_reserve((bytes / 256).min(1 << 22));
        let _ = self.memberships.try_reserve((bytes / 48).min(1 << 25));
        // a map is reserved closer to the mark (its room is touched all
        // over): a person per KiB, past which it grows as before
        let _ = self.person_at.try_reserve((bytes / 1024).min(1 << 20));
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
    }

    /// The current document, by number.
    fn doc(&self) -> u32 {
        (self.origins.len() - 1) as u32
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

    /// The org id of a vestiging of the current school: `99AA00-key`.
    fn vestiging_id(&self, key: &str) -> String {
        let mut id = String::with_capacity(self.school.len() + 1 + key.len());
        id.push_str(&self.school);
        id.push('-');
        id.push_str(key);
        id
    }

    fn issue(&mut self, line: u64, id: Option<&str>, reason: impl Into<String>) {
        self.issues.push(SourceIssue {
            location: format!("{}:{line}", self.origin()),
            record_id: id.map(String::from),
            reason: reason.into(),
        });
    }

    /// Mark `id` as seen in the current document; None when it already
    /// was (a duplicate). The slot it has (or a new one without record),
    /// to be given the record's place when one is made, and the id as
    /// shared: one look-up in the map.
    fn see<'m>(map: &'m mut IdMap, id: &str, doc: u32) -> Option<(&'m mut Slot, Id)> {
        match map.entry_ref(id) {
            EntryRef::Occupied(e) if e.get().doc == doc => None,
            EntryRef::Occupied(e) => {
                let shared = e.key().clone();
                let slot = e.into_mut();
                slot.doc = doc;
                Some((slot, shared))
            }
            EntryRef::Vacant(e) => {
                // shared before the map is written: the atomic count of a
                // clone waits for the stores before it
                let key = Id::from(id);
                let shared = key.clone();
                Some((e.insert_with_key(key, Slot { at: NONE, doc }), shared))
            }
        }
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
        let id = self.vestiging_id(&key);
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
        let doc = self.doc();
        let Some((&mut slot, _)) = Self::see(&mut self.group_at, &id, doc) else {
            self.issue(
                g.line,
                Some(&id),
                "duplicate groep key in one document; the second is skipped",
            );
            return;
        };
        if slot.at != NONE {
            let other = self.groups[slot.at as usize]
                .org
                .as_deref()
                .unwrap_or_default();
            if other != self.school {
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
        if let Some(s) = self.group_at.get_mut(id.as_str()) {
            s.at = self.groups.len() as u32;
        }
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

    /// A leerling (`teacher_role` None) or leerkracht.
    fn person(&mut self, p: &mut RawPerson, teacher_role: Option<Role>) {
        let what = if teacher_role.is_some() {
            "leerkracht"
        } else {
            "leerling"
        };
        let Some(key) = p.key.take() else {
            self.issue(p.line, None, format!("{what} without key"));
            return;
        };
        let id = self.id(key);
        let doc = self.doc();
        let given = p
            .roepnaam
            .take()
            .or_else(|| (!p.voornamen.is_empty()).then(|| p.voornamen.clone()));
        let names = (p.achternaam.take(), given);
        let mut orgs = Vec::with_capacity(2);
        orgs.push(self.school.clone());
        if !p.vestiging.is_empty() {
            orgs.push(self.vestiging_id(&p.vestiging));
        }
        let Some((slot, shared)) = Self::see(&mut self.person_at, &id, doc) else {
            self.issue(
                p.line,
                Some(&id),
                format!("duplicate {what} key in one document; the second is skipped"),
            );
            return;
        };
        let at = slot.at;
        let role = teacher_role.unwrap_or(Role::Student);
        let (Some(family), Some(given)) = names else {
            self.issue(
                p.line,
                Some(&id),
                format!("{what} without achternaam, or without roepnaam and voornamen"),
            );
            self.held_persons.insert(id);
            return;
        };
        if at != NONE {
            // seen in an earlier document: the same person
            let i = at;
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
            self.maybe_twice = true;
            let person = self.person_ids[i as usize].clone();
            self.member_of(p, i, &person, role);
        } else {
            let i = self.persons.len() as u32;
            slot.at = i;
            // the memberships first: their shared ids are counted before
            // the person is written
            self.member_of(p, i, &shared, role);
            self.person_ids.push(shared);
            self.persons.push(Person {
                sourced_id: id,
                status: Status::Active,
                role: Some(role),
                username: p.gebruikersnaam.take(),
                identifier: None,
                given_name: given,
                middle_name: p.voorvoegsel.take(),
                family_name: family,
                email: p.emailadres.take(),
                eck_id: p.eckid.take(),
                bsn: p.bsn.take(),
                orgs,
                accommodations: Default::default(),
            });
        }
    }

    /// The memberships of person `pi` (its id `person`) in the classes `p`
    /// names, each once. The classes are looked up a batch at a time
    /// before any is shared: the look-ups (each a likely cache miss) then
    /// overlap instead of waiting one by one behind the atomic count of
    /// the share before. Made in scratch and then moved to the roster's,
    /// so that no count waits for stores into fresh memory either.
    fn member_of(&mut self, p: &RawPerson, pi: u32, person: &Id, role: Role) {
        const BATCH: usize = 8;
        let made = &mut self.made;
        let mut keys = p.groepen.iter();
        loop {
            let mut found: [Option<&Id>; BATCH] = [None; BATCH];
            let mut n = 0;
            for key in keys.by_ref() {
                let gid = qualified(self.qualify, &self.school, key, &mut self.id_buf);
                match self.group_at.get_key_value(gid) {
                    Some((group, s)) if s.at != NONE => {
                        found[n] = Some(group);
                        n += 1;
                        if n == BATCH {
                            break;
                        }
                    }
                    _ => self.refs.push(Ref {
                        person: pi,
                        group: gid.to_string(),
                        role,
                        line: p.line,
                        origin: (self.origins.len() - 1) as u32,
                    }),
                }
            }
            for group in found.into_iter().map_while(|g| g) {
                // a person names a handful of classes: a scan is cheaper than a set
                if !made.iter().any(|m| same(&m.group, group)) {
                    made.push(Membership {
                        status: Status::Active,
                        group: group.clone(),
                        person: person.clone(),
                        role,
                    });
                }
            }
            if n < BATCH {
                break;
            }
        }
        self.memberships.append(made);
    }

    /// The roster: every document fed, as one bulk snapshot.
    pub fn finish(mut self, format: String) -> Roster {
        self.resolve_refs();
        if self.maybe_twice {
            let mut made = FxHashSet::default();
            self.memberships
                .retain(|m| made.insert((m.group.as_ptr(), m.person.as_ptr())));
        }
        self.drop_held_persons();
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

    /// References to classes defined after the person: memberships, or
    /// issues for classes that never came.
    fn resolve_refs(&mut self) {
        for r in std::mem::take(&mut self.refs) {
            match self.group_at.get_key_value(r.group.as_str()) {
                Some((group, s)) if s.at != NONE => {
                    self.maybe_twice = true;
                    self.memberships.push(Membership {
                        status: Status::Active,
                        group: group.clone(),
                        person: self.person_ids[r.person as usize].clone(),
                        role: r.role,
                    });
                }
                _ if self.held_groups.contains(&r.group) => {}
                _ => {
                    let person = self.persons[r.person as usize].sourced_id.clone();
                    self.issues.push(SourceIssue {
                        location: format!("{}:{}", self.origins[r.origin as usize], r.line),
                        record_id: Some(person),
                        reason: format!("groep {} is not in the groepen", r.group),
                    });
                }
            }
        }
    }

    /// A key held in a later document loses what an earlier one gave.
    fn drop_held_persons(&mut self) {
        if self.held_persons.is_empty() {
            return;
        }
        let held = &self.held_persons;
        self.persons.retain(|p| !held.contains(&p.sourced_id));
        self.memberships
            .retain(|m| !held.contains(m.person.as_str()));
    }
}

/// The same shared id (one allocation), not only the same text.
fn same(a: &Id, b: &Id) -> bool {
    std::ptr::eq(a.as_ptr(), b.as_ptr())
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
