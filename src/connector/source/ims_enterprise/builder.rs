//! From raw records to the roster: ids, duplicates, roles, memberships,
//! bulk or delta, and the issues of skipped records.

use super::*;
use crate::model::Id;

pub(super) struct PersonRec {
    pub(super) line: u64,
    pub(super) person: Person,
    /// Institution role: Some(mapped or None when unmapped); None = absent.
    pub(super) institution_role: Option<Option<Role>>,
}

pub(super) struct GroupRec {
    pub(super) line: u64,
    pub(super) id: String,
    pub(super) status: Status,
    pub(super) is_org: bool,
    pub(super) raw: RawGroup,
}

/// A member as kept until the roster is built: numbers only, no string of
/// its own (ids, groups and roletypes repeat a lot and are interned).
pub(super) struct MemberRec {
    pub(super) line: u64,
    /// Index into [`Builder::membership_groups`]: the `membership` record.
    pub(super) group: u32,
    /// Index into [`Builder::member_ids`], or [`NO_ID`].
    pub(super) member: u32,
    /// `idtype` as given (absent = "1").
    pub(super) idtype: IdType,
    /// How many roles: the first is `first`, the others are
    /// `Builder::more_roles[more..more + roles - 1]` (rare).
    pub(super) roles: u32,
    pub(super) first: RoleRec,
    pub(super) more: u32,
}

/// A member without `sourcedid/id`.
pub(super) const NO_ID: u32 = u32::MAX;

/// A member's `idtype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IdType {
    Person,
    Group,
    /// Index into [`Builder::other_idtypes`].
    Other(u32),
}

/// A member's role, its status worked out when the record is read.
#[derive(Clone, Copy)]
pub(super) struct RoleRec {
    /// Index into [`Builder::roletypes`].
    pub(super) roletype: u32,
    /// `Ok` or an index into [`Builder::role_errors`].
    pub(super) status: Result<Status, u32>,
}

pub(super) struct Builder<'a> {
    pub(super) file: String,
    pub(super) cfg: &'a ImsEnterprise,
    pub(super) props: Properties,
    pub(super) persons: Chunked<PersonRec>,
    pub(super) groups: Vec<GroupRec>,
    pub(super) memberships: Chunked<MemberRec>,
    /// Roles of members after their first.
    pub(super) more_roles: Vec<RoleRec>,
    /// Canonical member ids, interned.
    pub(super) member_ids: IdTable,
    /// Group id of each `membership` record, by number.
    pub(super) membership_groups: Vec<String>,
    /// The members read since the last `membership` record ended
    /// (`memberships[from..]`, `member_roles[from..]`): theirs is the next.
    pub(super) pending: (usize, usize),
    pub(super) roletypes: Interner,
    /// The roletype interned last (most roles have the same).
    pub(super) last_roletype: Option<u32>,
    pub(super) role_errors: Vec<String>,
    pub(super) other_idtypes: Interner,
    /// Scratch for canonical member ids.
    pub(super) id_buf: String,
    /// id → (line, source) of every person / group read
    pub(super) person_index: HashMap<String, (u64, String)>,
    pub(super) group_index: HashMap<String, (u64, String)>,
    pub(super) issues: Vec<SourceIssue>,
    pub(super) held_persons: HashSet<String>,
    pub(super) held_groups: HashSet<String>,
    /// Every person and group carried a recstatus.
    pub(super) all_recstatus: bool,
    pub(super) records: u64,
}

/// [`canonical_id`] written into `out`; false when there is none.
pub(super) fn canonical_id_into(qualify: bool, source: &str, id: &str, out: &mut String) -> bool {
    out.clear();
    let id = id.trim();
    if id.is_empty() {
        return false;
    }
    if qualify && !source.trim().is_empty() {
        out.push_str(source.trim());
        out.push(':');
    }
    out.push_str(id);
    true
}

impl<'a> Builder<'a> {
    pub(super) fn new(cfg: &'a ImsEnterprise, file: String) -> Builder<'a> {
        Builder {
            file,
            cfg,
            props: Properties::default(),
            persons: Chunked::default(),
            groups: Vec::new(),
            memberships: Chunked::default(),
            more_roles: Vec::new(),
            member_ids: IdTable::default(),
            membership_groups: Vec::new(),
            pending: (0, 0),
            roletypes: Interner::default(),
            last_roletype: None,
            role_errors: Vec::new(),
            other_idtypes: Interner::default(),
            id_buf: String::new(),
            person_index: HashMap::default(),
            group_index: HashMap::default(),
            issues: Vec::new(),
            held_persons: HashSet::new(),
            held_groups: HashSet::new(),
            all_recstatus: true,
            records: 0,
        }
    }

    /// One item from the parser, in document order.
    pub(super) fn feed(&mut self, line: u64, item: Item<'_>, progress: &dyn Fn(u64)) {
        if let Item::Member(m) = item {
            self.add_member(m);
            return;
        }
        self.records += 1;
        if self.records % 10_000 == 0 {
            progress(self.records);
        }
        self.add(line, item);
    }
}

/// The canonical id of a sourcedid: `id`, or `source:id` when qualified.
pub(super) fn canonical_id(qualify: bool, s: &SourcedId) -> Option<String> {
    let id = s.id.trim();
    if id.is_empty() {
        return None;
    }
    Some(if qualify && !s.source.trim().is_empty() {
        format!("{}:{id}", s.source.trim())
    } else {
        id.to_string()
    })
}

pub(super) fn status_of(recstatus: Option<&str>) -> Result<Status, String> {
    match recstatus {
        None | Some("1") | Some("2") => Ok(Status::Active),
        Some("3") => Ok(Status::ToBeDeleted),
        Some(other) => Err(format!(
            "recstatus {other:?} is not 1 (add), 2 (update) or 3 (delete)"
        )),
    }
}

impl Builder<'_> {
    pub(super) fn issue(&mut self, line: u64, id: Option<&str>, reason: impl Into<String>) {
        self.issues.push(SourceIssue {
            location: format!("{}:{line}", self.file),
            record_id: id.map(String::from),
            reason: reason.into(),
        });
    }

    pub(super) fn canonical(&self, s: &SourcedId) -> Option<String> {
        canonical_id(self.cfg.qualify_ids, s)
    }

    pub(super) fn duplicate_reason(
        &self,
        first_line: u64,
        first_source: &str,
        s: &SourcedId,
    ) -> String {
        if !self.cfg.qualify_ids && first_source != s.source {
            format!(
                "duplicate sourcedid (also at line {first_line}, source {first_source:?}); set source.qualify_ids = true if the sources are independent"
            )
        } else {
            format!("duplicate sourcedid (also at line {first_line})")
        }
    }

    pub(super) fn add(&mut self, line: u64, item: Item) {
        match item {
            Item::Properties(p) => self.props = p,
            Item::Person(p) => self.add_person(line, p),
            Item::Group(g) => self.add_group(line, g),
            Item::Member(m) => self.add_member(m),
            Item::Membership(m) => self.add_membership(line, m),
        }
    }

    /// The canonical id of a `kind` record read at `line`, unless it has
    /// none or repeats one already in `seen` (an issue each). A record
    /// without `recstatus` means the document does not carry it throughout.
    fn record_id(
        &mut self,
        line: u64,
        has_status: bool,
        sid: &SourcedId,
        kind: &str,
        seen: fn(&Self) -> &HashMap<String, (u64, String)>,
    ) -> Option<String> {
        if !has_status {
            self.all_recstatus = false;
        }
        let Some(id) = self.canonical(sid) else {
            self.issue(line, None, format!("{kind} without sourcedid/id"));
            return None;
        };
        if let Some((first, src)) = seen(self).get(&id) {
            let reason = self.duplicate_reason(*first, src, sid);
            self.issue(line, Some(&id), reason);
            return None;
        }
        Some(id)
    }

    pub(super) fn add_person(&mut self, line: u64, mut p: RawPerson) {
        let sid = p.sourcedid.take().unwrap_or_default();
        let has_status = p.recstatus.is_some();
        let Some(id) = self.record_id(line, has_status, &sid, "person", |b| &b.person_index) else {
            return;
        };
        self.person_index.insert(id.clone(), (line, sid.source));
        let hold = |b: &mut Self, reason: String| {
            b.issue(line, Some(&id), reason);
            b.held_persons.insert(id.clone());
        };
        let status = match status_of(p.recstatus.as_deref()) {
            Ok(s) => s,
            Err(e) => return hold(self, e),
        };
        let cfg = self.cfg;
        let ext = |name: &str| {
            p.extension
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let accommodations = match cfg.accommodations.read(ext) {
            Ok(a) => a,
            Err(e) => return hold(self, e),
        };
        let (given, family) = match (p.given.take(), p.family.take()) {
            (Some(g), Some(f)) => (g, f),
            _ if status == Status::ToBeDeleted => (String::new(), String::new()),
            _ => return hold(self, "name/n/given or name/n/family is empty".into()),
        };
        let mut username = None;
        let mut identifier = None;
        let mut eck_id = None;
        let mut bsn = None;
        for (mut kind, value) in std::mem::take(&mut p.userids) {
            if value.is_empty() {
                continue;
            }
            kind.make_ascii_lowercase();
            let slot = if kind == "eck" || kind == "eckid" {
                &mut eck_id
            } else if kind == "bsn" || kind == "burgerservicenummer" {
                &mut bsn
            } else if IDENTIFIER_TYPES.contains(&kind.as_str()) {
                &mut identifier
            } else {
                &mut username
            };
            slot.get_or_insert(value);
        }
        // the first primary role, else the first one
        let institution_role = p
            .institution_roles
            .iter()
            .find(|(_, primary)| *primary)
            .or(p.institution_roles.first())
            .map(|(t, _)| cfg.role_map.get(&t.to_ascii_lowercase()).copied());
        self.persons.push(PersonRec {
            line,
            institution_role,
            person: Person {
                sourced_id: id,
                status,
                role: None,
                username,
                identifier,
                given_name: given,
                middle_name: p.middle,
                family_name: family,
                email: p.email,
                eck_id,
                bsn,
                orgs: Vec::new(),
                accommodations,
            },
        });
    }

    pub(super) fn add_group(&mut self, line: u64, g: RawGroup) {
        let sid = g.sourcedid.clone().unwrap_or_default();
        let has_status = g.recstatus.is_some();
        let Some(id) = self.record_id(line, has_status, &sid, "group", |b| &b.group_index) else {
            return;
        };
        let status = match status_of(g.recstatus.as_deref()) {
            Ok(s) => s,
            Err(e) => {
                self.group_index
                    .insert(id.clone(), (line, sid.source.clone()));
                self.issue(line, Some(&id), e);
                self.held_groups.insert(id);
                return;
            }
        };
        let is_org = g
            .typevalue
            .as_deref()
            .is_some_and(|t| ORG_TYPES.contains(&t.to_ascii_lowercase().as_str()));
        self.group_index
            .insert(id.clone(), (line, sid.source.clone()));
        self.groups.push(GroupRec {
            line,
            id,
            status,
            is_org,
            raw: g,
        });
    }

    /// A member of the `membership` being read, kept as numbers.
    pub(super) fn add_member(&mut self, m: &RawMember) {
        let member = if canonical_id_into(self.cfg.qualify_ids, &m.source, &m.id, &mut self.id_buf)
        {
            self.member_ids.number(&self.id_buf)
        } else {
            NO_ID
        };
        let idtype = match m.idtype.as_str() {
            "" | "1" => IdType::Person,
            "2" => IdType::Group,
            other => IdType::Other(self.other_idtypes.number(other)),
        };
        let more = self.more_roles.len() as u32;
        let mut first = RoleRec {
            roletype: 0,
            status: Ok(Status::Active),
        };
        for (i, r) in m.roles().iter().enumerate() {
            let roletype = match self.last_roletype {
                Some(n) if self.roletypes.names[n as usize] == r.roletype => n,
                _ => self.roletypes.number(&r.roletype),
            };
            self.last_roletype = Some(roletype);
            let status = role_status(r).map_err(|e| {
                self.role_errors.push(e);
                (self.role_errors.len() - 1) as u32
            });
            let rec = RoleRec { roletype, status };
            if i == 0 {
                first = rec;
            } else {
                self.more_roles.push(rec);
            }
        }
        self.memberships.push(MemberRec {
            line: m.line,
            group: u32::MAX,
            member,
            idtype,
            roles: m.roles().len() as u32,
            first,
            more,
        });
    }

    /// A `membership` record ends: its members (read before) get its group.
    pub(super) fn add_membership(&mut self, line: u64, m: RawMembership) {
        let (from, roles_from) = self.pending;
        let sid = m.sourcedid.unwrap_or_default();
        match self.canonical(&sid) {
            None => {
                self.issue(line, None, "membership without sourcedid/id of its group");
                self.memberships.truncate(from);
                self.more_roles.truncate(roles_from);
            }
            Some(group) => {
                let n = self.membership_groups.len() as u32;
                self.membership_groups.push(group);
                for mem in self.memberships.iter_mut_from(from) {
                    mem.group = n;
                }
            }
        }
        self.pending = (self.memberships.len(), self.more_roles.len());
    }

    /// The roster: orgs and classes, then persons with their roles, then
    /// memberships (which may add orgs to persons and classes).
    pub(super) fn finish(mut self) -> Roster {
        let bulk = !self.is_delta();
        let mut out = self.orgs_and_classes(bulk);
        let members = self.take_members();
        self.persons_with_roles(bulk, &members, &mut out);
        let any_membership = !self.memberships.is_empty();
        self.memberships_of(bulk, &members, &mut out);
        let kind = if bulk {
            Completeness::Bulk
        } else {
            Completeness::Delta
        };
        Roster {
            orgs: out.orgs,
            persons: out.persons,
            groups: out.groups,
            memberships: out.memberships,
            persons_completeness: kind,
            groups_completeness: if bulk && self.group_index.is_empty() {
                Completeness::Absent
            } else {
                kind
            },
            memberships_completeness: if bulk && !any_membership {
                Completeness::Absent
            } else {
                kind
            },
            issues: self.issues,
            ignored: out.ignored,
            held_persons: self.held_persons,
            held_groups: self.held_groups,
            exams: Default::default(),
            format: "IMS Enterprise 1.1 XML".into(),
        }
    }

    /// `properties/type` says delta, or every person and group carries a
    /// recstatus.
    fn is_delta(&self) -> bool {
        self.props.kind.as_deref().is_some_and(|t| {
            let t = t.to_ascii_lowercase();
            ["delta", "event", "incremental", "update"]
                .iter()
                .any(|k| t.contains(k))
        }) || (self.all_recstatus && !(self.persons.is_empty() && self.groups.is_empty()))
    }

    /// Orgs and classes from the groups; a class whose parent is missing
    /// from a bulk file is held.
    fn orgs_and_classes(&mut self, bulk: bool) -> Out {
        let mut out = Out {
            is_org: self
                .groups
                .iter()
                .map(|g| (g.id.clone(), g.is_org))
                .collect(),
            ..Out::default()
        };
        let qualify = self.cfg.qualify_ids;
        let mut issues = Vec::new();
        for g in &self.groups {
            let parent = g.raw.parent.as_ref().and_then(|s| canonical_id(qualify, s));
            if g.is_org {
                if g.status != Status::ToBeDeleted {
                    out.orgs.push(org_of(g, parent));
                }
                continue;
            }
            let (org, course) = match parent {
                Some(p) if out.is_org.get(&p) == Some(&true) => (Some(p), None),
                Some(p) if bulk && !out.is_org.contains_key(&p) && g.status == Status::Active => {
                    let reason = format!("parent group {p} is not in the file");
                    issues.push((g.line, g.id.clone(), reason));
                    continue;
                }
                Some(p) => (None, Some(p)),
                None => (None, None),
            };
            out.class_index.insert(g.id.clone(), out.groups.len());
            out.groups.push(class_of(g, org, course));
        }
        for (line, id, reason) in issues {
            self.issue(line, Some(&id), reason);
            self.held_groups.insert(id);
        }
        out
    }

    /// The member tables, taken out of `self` (issues are added while
    /// they are read).
    fn take_members(&mut self) -> Members {
        let roletypes = std::mem::take(&mut self.roletypes).names;
        Members {
            ids: std::mem::take(&mut self.member_ids),
            groups: std::mem::take(&mut self.membership_groups),
            more_roles: std::mem::take(&mut self.more_roles),
            // the role map once per roletype, not per role
            roletype_role: roletypes
                .iter()
                .map(|t| lookup(&self.cfg.role_map, t))
                .collect(),
            roletypes,
            role_errors: std::mem::take(&mut self.role_errors),
            other_idtypes: std::mem::take(&mut self.other_idtypes).names,
        }
    }

    /// The role of each member id that has no institution role: its first
    /// active membership role that maps (only computed when needed).
    fn membership_roles(&self, members: &Members) -> Vec<Option<Role>> {
        if self.persons.iter().all(|p| p.institution_role.is_some()) {
            return Vec::new();
        }
        let mut role = vec![None; members.ids.len()];
        for m in self.memberships.iter() {
            if m.member == NO_ID || m.idtype != IdType::Person || role[m.member as usize].is_some()
            {
                continue;
            }
            role[m.member as usize] = members
                .roles_of(m)
                .filter(|r| r.status == Ok(Status::Active))
                .find_map(|r| members.roletype_role[r.roletype as usize]);
        }
        role
    }

    /// Persons with their role: the institution role, else the first
    /// mapped membership role; a bulk person with neither is held.
    fn persons_with_roles(&mut self, bulk: bool, members: &Members, out: &mut Out) {
        let membership_role = self.membership_roles(members);
        out.persons.reserve_exact(self.persons.len());
        out.member_pos = vec![NO_ID; members.ids.len()];
        let mut held = Vec::new();
        for rec in std::mem::take(&mut self.persons).into_iter() {
            let no = members.ids.find(&rec.person.sourced_id);
            let role = match rec.institution_role {
                Some(Some(r)) => Some(r),
                Some(None) => {
                    out.ignored += 1; // Administrator, Other, ...: not synced
                    continue;
                }
                None => match no.and_then(|n| membership_role[n as usize]) {
                    Some(r) => Some(r),
                    None if !bulk || rec.person.status == Status::ToBeDeleted => None,
                    None => {
                        held.push((rec.line, rec.person.sourced_id));
                        continue;
                    }
                },
            };
            if let Some(n) = no {
                out.member_pos[n as usize] = out.persons.len() as u32;
            }
            out.persons.push(Person { role, ..rec.person });
        }
        for (line, id) in held {
            self.issue(
                line,
                Some(&id),
                "no institutionrole and no membership role that maps to a sisync role",
            );
            self.held_persons.insert(id);
        }
    }

    /// Every member read, in document order: class memberships, persons
    /// placed in orgs, classes given an org.
    fn memberships_of(&mut self, bulk: bool, members: &Members, out: &mut Out) {
        out.memberships.reserve_exact(self.memberships.len());
        out.member_ids = vec![None; members.ids.len()];
        out.group_ids = vec![None; members.groups.len()];
        let mut facts = GroupFacts::default();
        for m in std::mem::take(&mut self.memberships).into_iter() {
            let group = members.groups[m.group as usize].as_str();
            if m.member == NO_ID {
                self.hold_group(
                    m.line,
                    None,
                    group,
                    format!("member of group {group} without sourcedid/id"),
                );
                continue;
            }
            let member = members.ids.get(m.member);
            let f = facts.of(
                m.group,
                group,
                &self.group_index,
                &out.is_org,
                &mut out.seen,
            );
            if bulk && !f.known {
                self.issue(
                    m.line,
                    Some(member),
                    format!("membership of group {group} which is not in the file"),
                );
                continue;
            }
            let at = MemberAt {
                m: &m,
                member,
                group,
                facts: f,
            };
            match m.idtype {
                IdType::Person => self.person_member(bulk, at, members, out),
                IdType::Group => self.group_member(bulk, at, out),
                IdType::Other(other) => {
                    let other = &members.other_idtypes[other as usize];
                    self.hold_group(
                        m.line,
                        Some(member),
                        group,
                        format!("member idtype {other:?} is not 1 (person) or 2 (group)"),
                    );
                }
            }
        }
    }

    /// A group member (`idtype` 2) of an org gives a class without parent
    /// its org; other group members are ignored.
    fn group_member(&mut self, bulk: bool, at: MemberAt, out: &mut Out) {
        let MemberAt {
            m,
            member,
            group,
            facts: f,
        } = at;
        if bulk && !self.group_index.contains_key(member) {
            self.hold_group(
                m.line,
                Some(member),
                group,
                format!("member group {member} of group {group} is not in the file"),
            );
            return;
        }
        match out.class_index.get(member) {
            Some(&i) if f.is_org && out.groups[i].org.is_none() => {
                out.groups[i].org = Some(group.to_string());
            }
            _ => out.ignored += 1,
        }
    }

    /// A person member: of an org, it places the person there; of a class,
    /// one membership per role.
    fn person_member(&mut self, bulk: bool, at: MemberAt, members: &Members, out: &mut Out) {
        let MemberAt {
            m,
            member,
            group,
            facts: f,
        } = at;
        let pos = match out.member_pos[m.member as usize] {
            NO_ID => None,
            i => Some(i as usize),
        };
        if bulk && pos.is_none() && !self.person_index.contains_key(member) {
            self.issue(
                m.line,
                Some(member),
                format!("member of group {group} is not a person in the file"),
            );
            return;
        }
        let no_role = m.roles == 0;
        if f.is_org {
            let active = no_role || members.roles_of(m).any(|r| r.status == Ok(Status::Active));
            if let Some(i) = pos {
                let orgs = &mut out.persons[i].orgs;
                if active && !orgs.iter().any(|o| o == group) {
                    orgs.push(group.to_string());
                }
            }
            return;
        }
        if bulk && pos.is_none() {
            out.ignored += 1; // membership of a person who is not synced
            return;
        }
        if no_role {
            let reason = format!("member of group {group} has no role");
            return self.hold_group(m.line, Some(member), group, reason);
        }
        for r in members.roles_of(m) {
            let status = match r.status {
                Ok(s) => s,
                Err(e) => {
                    let reason = members.role_errors[e as usize].clone();
                    self.hold_group(m.line, Some(member), group, reason);
                    continue;
                }
            };
            let Some(role) = members.roletype_role[r.roletype as usize] else {
                out.ignored += 1; // roletype 03..08 not mapped
                continue;
            };
            if !f.seen(out, m.member, r.roletype) {
                let roletype = &members.roletypes[r.roletype as usize];
                self.issue(
                    m.line,
                    Some(member),
                    format!("duplicate member of group {group} with roletype {roletype}"),
                );
                continue;
            }
            out.memberships.push(Membership {
                status,
                group: shared(&mut out.group_ids, m.group, group),
                person: shared(&mut out.member_ids, m.member, member),
                role,
            });
        }
    }

    /// Report a member and hold its group.
    fn hold_group(&mut self, line: u64, member: Option<&str>, group: &str, reason: String) {
        self.issue(line, member, reason);
        self.held_groups.insert(group.to_string());
    }
}

/// The roster taking shape in [`Builder::finish`].
#[derive(Default)]
struct Out {
    orgs: Vec<Org>,
    persons: Vec<Person>,
    groups: Vec<Group>,
    memberships: Vec<Membership>,
    /// group id → whether it is an org, for every group read
    is_org: HashMap<String, bool>,
    /// class id → position in `groups`
    class_index: HashMap<String, usize>,
    /// position in `persons` of each member id that is a synced person
    member_pos: Vec<u32>,
    /// duplicates by (member, roletype) as numbers, one set per group (the
    /// set being filled stays in the cache)
    seen: Vec<FxHashSet<(u32, u32)>>,
    /// The memberships' ids by member and group number, shared.
    member_ids: Vec<Option<Id>>,
    group_ids: Vec<Option<Id>>,
    ignored: usize,
}

/// The shared id of number `n` (`id`), made when first asked for.
fn shared(ids: &mut [Option<Id>], n: u32, id: &str) -> Id {
    ids[n as usize].get_or_insert_with(|| Id::from(id)).clone()
}

/// The member tables of the builder, by number.
struct Members {
    ids: IdTable,
    /// group id of each `membership` record
    groups: Vec<String>,
    more_roles: Vec<RoleRec>,
    roletypes: Vec<String>,
    roletype_role: Vec<Option<Role>>,
    role_errors: Vec<String>,
    other_idtypes: Vec<String>,
}

impl Members {
    fn roles_of(&self, m: &MemberRec) -> impl Iterator<Item = RoleRec> + '_ {
        let more = m.more as usize..(m.more + m.roles.saturating_sub(1)) as usize;
        let first = (m.roles > 0).then_some(m.first);
        first
            .into_iter()
            .chain(self.more_roles[more].iter().copied())
    }
}

/// A member being placed: its record, its id and its group's id.
#[derive(Clone, Copy)]
struct MemberAt<'a> {
    m: &'a MemberRec,
    member: &'a str,
    group: &'a str,
    facts: Facts,
}

/// What is known about a member's group.
#[derive(Clone, Copy)]
struct Facts {
    known: bool,
    is_org: bool,
    /// The group by number (two records may name the same group).
    no: u32,
}

impl Facts {
    /// Whether (member, roletype) is new in this group.
    fn seen(self, out: &mut Out, member: u32, roletype: u32) -> bool {
        out.seen[self.no as usize].insert((member, roletype))
    }
}

/// Group facts looked up once per `membership` record, not per member.
#[derive(Default)]
struct GroupFacts {
    numbers: HashMap<String, u32>,
    last: Option<(u32, Facts)>,
}

impl GroupFacts {
    fn of(
        &mut self,
        record: u32,
        group: &str,
        index: &HashMap<String, (u64, String)>,
        is_org: &HashMap<String, bool>,
        seen: &mut Vec<FxHashSet<(u32, u32)>>,
    ) -> Facts {
        if let Some((r, f)) = self.last {
            if r == record {
                return f;
            }
        }
        let next = self.numbers.len() as u32;
        let no = *self.numbers.entry(group.to_string()).or_insert(next);
        if no == next {
            seen.push(FxHashSet::default());
        }
        let f = Facts {
            known: index.contains_key(group),
            is_org: is_org.get(group) == Some(&true),
            no,
        };
        self.last = Some((record, f));
        f
    }
}

fn org_of(g: &GroupRec, parent: Option<String>) -> Org {
    let raw = &g.raw;
    Org {
        sourced_id: g.id.clone(),
        name: raw
            .long
            .clone()
            .or_else(|| raw.short.clone())
            .or_else(|| raw.org_name.clone())
            .unwrap_or_default(),
        identifier: raw.org_id.clone(),
        kind: raw.typevalue.clone().unwrap_or_default().to_lowercase(),
        parent,
    }
}

fn class_of(g: &GroupRec, org: Option<String>, course: Option<String>) -> Group {
    let raw = &g.raw;
    Group {
        sourced_id: g.id.clone(),
        status: g.status,
        title: raw
            .long
            .clone()
            .or_else(|| raw.short.clone())
            .or_else(|| raw.full.clone())
            .unwrap_or_else(|| g.id.clone()),
        code: raw.short.clone(),
        org,
        sessions: Vec::new(),
        course,
    }
}

/// Role map lookup, case-insensitive, without allocating for lowercase keys.
pub(super) fn lookup(map: &BTreeMap<String, Role>, key: &str) -> Option<Role> {
    if key.bytes().any(|b| b.is_ascii_uppercase()) {
        map.get(&key.to_ascii_lowercase()).copied()
    } else {
        map.get(key).copied()
    }
}

pub(super) fn role_status(r: &RawRole) -> Result<Status, String> {
    let s = status_of(r.recstatus())?;
    match r.status() {
        None | Some("1") => Ok(s),
        Some("0") => Ok(Status::ToBeDeleted),
        Some(other) => Err(format!(
            "role status {other:?} is not 1 (active) or 0 (inactive)"
        )),
    }
}
