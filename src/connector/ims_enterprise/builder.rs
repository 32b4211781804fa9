//! From raw records to the roster: ids, duplicates, roles, memberships,
//! bulk or delta, and the issues of skipped records.

use super::*;

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

    pub(super) fn add_person(&mut self, line: u64, mut p: RawPerson) {
        if p.recstatus.is_none() {
            self.all_recstatus = false;
        }
        let sid = p.sourcedid.take().unwrap_or_default();
        let Some(id) = self.canonical(&sid) else {
            self.issue(line, None, "person without sourcedid/id");
            return;
        };
        if let Some((first, src)) = self.person_index.get(&id) {
            let reason = self.duplicate_reason(*first, src, &sid);
            self.issue(line, Some(&id), reason);
            return;
        }
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
        let acc = &cfg.accommodations;
        let ext = |name: &str| {
            p.extension
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let accommodations = match parse_accommodation_values([
            (
                acc.extra_time_percent.as_str(),
                ext(&acc.extra_time_percent),
            ),
            (acc.font_scale.as_str(), ext(&acc.font_scale)),
            (acc.screen_reader.as_str(), ext(&acc.screen_reader)),
        ]) {
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
        if g.recstatus.is_none() {
            self.all_recstatus = false;
        }
        let sid = g.sourcedid.clone().unwrap_or_default();
        let Some(id) = self.canonical(&sid) else {
            self.issue(line, None, "group without sourcedid/id");
            return;
        };
        if let Some((first, src)) = self.group_index.get(&id) {
            let reason = self.duplicate_reason(*first, src, &sid);
            self.issue(line, Some(&id), reason);
            return;
        }
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

    pub(super) fn finish(mut self) -> Roster {
        let delta = self.props.kind.as_deref().is_some_and(|t| {
            let t = t.to_ascii_lowercase();
            ["delta", "event", "incremental", "update"]
                .iter()
                .any(|k| t.contains(k))
        }) || (self.all_recstatus
            && !(self.persons.is_empty() && self.groups.is_empty()));
        let kind = if delta {
            Completeness::Delta
        } else {
            Completeness::Bulk
        };
        let bulk = !delta;
        let cfg: &ImsEnterprise = self.cfg;
        let role_map = &cfg.role_map;

        // Orgs first: classes and persons point at them.
        let is_org: HashMap<String, bool> = self
            .groups
            .iter()
            .map(|g| (g.id.clone(), g.is_org))
            .collect();
        let qualify = |s: &SourcedId| canonical_id(cfg.qualify_ids, s);
        let mut orgs = Vec::new();
        let mut groups = Vec::new();
        let mut class_index: HashMap<String, usize> = HashMap::default();
        let mut issues = Vec::new();
        for g in &self.groups {
            let parent = g.raw.parent.as_ref().and_then(qualify);
            if g.is_org {
                if g.status == Status::ToBeDeleted {
                    continue;
                }
                orgs.push(Org {
                    sourced_id: g.id.clone(),
                    name: g
                        .raw
                        .long
                        .clone()
                        .or_else(|| g.raw.short.clone())
                        .or_else(|| g.raw.org_name.clone())
                        .unwrap_or_default(),
                    identifier: g.raw.org_id.clone(),
                    kind: g.raw.typevalue.clone().unwrap_or_default().to_lowercase(),
                    parent,
                });
                continue;
            }
            let (org, course) = match parent {
                Some(p) if is_org.get(&p) == Some(&true) => (Some(p), None),
                Some(p) if bulk && !is_org.contains_key(&p) && g.status == Status::Active => {
                    issues.push((
                        g.line,
                        g.id.clone(),
                        format!("parent group {p} is not in the file"),
                    ));
                    self.held_groups.insert(g.id.clone());
                    continue;
                }
                Some(p) => (None, Some(p)),
                None => (None, None),
            };
            class_index.insert(g.id.clone(), groups.len());
            groups.push(Group {
                sourced_id: g.id.clone(),
                status: g.status,
                title: g
                    .raw
                    .long
                    .clone()
                    .or_else(|| g.raw.short.clone())
                    .or_else(|| g.raw.full.clone())
                    .unwrap_or_else(|| g.id.clone()),
                code: g.raw.short.clone(),
                org,
                sessions: Vec::new(),
                course,
            });
        }
        for (line, id, reason) in issues {
            self.issue(line, Some(&id), reason);
        }

        // Interned tables of the members, taken out of `self` (issues are
        // added while they are read).
        let member_ids = std::mem::take(&mut self.member_ids);
        let membership_groups = std::mem::take(&mut self.membership_groups);
        let more_roles = std::mem::take(&mut self.more_roles);
        let roletypes = std::mem::take(&mut self.roletypes).names;
        let role_errors = std::mem::take(&mut self.role_errors);
        let other_idtypes = std::mem::take(&mut self.other_idtypes).names;
        // the role map once per roletype, not per role
        let roletype_role: Vec<Option<Role>> =
            roletypes.iter().map(|t| lookup(role_map, t)).collect();
        let roles_of = |m: &MemberRec| {
            let more = m.more as usize..(m.more + m.roles.saturating_sub(1)) as usize;
            let first = (m.roles > 0).then_some(m.first);
            first.into_iter().chain(more_roles[more].iter().copied())
        };

        // Person roles: institution role, else the first mapped membership role.
        let mut membership_role: Vec<Option<Role>> = Vec::new();
        let needed = self.persons.iter().any(|p| p.institution_role.is_none());
        if needed {
            membership_role = vec![None; member_ids.len()];
            for m in self.memberships.iter() {
                if m.member != NO_ID
                    && m.idtype == IdType::Person
                    && membership_role[m.member as usize].is_none()
                {
                    if let Some(r) = roles_of(m)
                        .filter(|r| r.status == Ok(Status::Active))
                        .find_map(|r| roletype_role[r.roletype as usize])
                    {
                        membership_role[m.member as usize] = Some(r);
                    }
                }
            }
        }
        let mut persons = Vec::with_capacity(self.persons.len());
        // position in `persons` of each member id that is a synced person
        let mut member_pos: Vec<u32> = vec![NO_ID; member_ids.len()];
        let mut ignored = 0usize;
        let mut later = Vec::new();
        for rec in std::mem::take(&mut self.persons).into_iter() {
            let no = member_ids.find(&rec.person.sourced_id);
            let role = match rec.institution_role {
                Some(Some(r)) => Some(r),
                Some(None) => {
                    ignored += 1; // Administrator, Other, ...: not synced
                    continue;
                }
                None => match no.and_then(|n| membership_role[n as usize]) {
                    Some(r) => Some(r),
                    None if !bulk || rec.person.status == Status::ToBeDeleted => None,
                    None => {
                        later.push((
                            rec.line,
                            rec.person.sourced_id.clone(),
                            "no institutionrole and no membership role that maps to a sisync role",
                        ));
                        continue;
                    }
                },
            };
            if let Some(n) = no {
                member_pos[n as usize] = persons.len() as u32;
            }
            persons.push(Person { role, ..rec.person });
        }
        drop(membership_role);
        for (line, id, reason) in later {
            self.issue(line, Some(&id), reason);
            self.held_persons.insert(id);
        }

        // Memberships.
        let mut memberships = Vec::with_capacity(self.memberships.len());
        // duplicates by (member, roletype) as numbers, one set per group
        // (the set being filled stays in the cache); the group interned by
        // its id (two records may name the same group)
        let mut seen: Vec<FxHashSet<(u32, u32)>> = Vec::new();
        let mut group_no: HashMap<&str, u32> = HashMap::default();
        let mut any_membership = false;
        // facts of the `membership` record being handled:
        // (record number, known, is an org, group number)
        let mut last_group: Option<(u32, bool, bool, u32)> = None;
        for m in std::mem::take(&mut self.memberships).into_iter() {
            any_membership = true;
            let group = membership_groups[m.group as usize].as_str();
            if m.member == NO_ID {
                self.issue(
                    m.line,
                    None,
                    format!("member of group {group} without sourcedid/id"),
                );
                self.held_groups.insert(group.to_string());
                continue;
            }
            let member: &str = member_ids.get(m.member);
            // group facts once per membership record, not per member
            let (known_group, group_is_org, g) = match last_group {
                Some((rec, known, org, g)) if rec == m.group => (known, org, g),
                _ => {
                    let known = self.group_index.contains_key(group);
                    let org = is_org.get(group) == Some(&true);
                    let next = group_no.len() as u32;
                    let g = *group_no.entry(group).or_insert(next);
                    if g == next {
                        seen.push(FxHashSet::default());
                    }
                    last_group = Some((m.group, known, org, g));
                    (known, org, g)
                }
            };
            if bulk && !known_group {
                self.issue(
                    m.line,
                    Some(member),
                    format!("membership of group {group} which is not in the file"),
                );
                continue;
            }
            match m.idtype {
                IdType::Person => {}
                IdType::Group => {
                    if bulk && !self.group_index.contains_key(member) {
                        self.issue(
                            m.line,
                            Some(member),
                            format!("member group {member} of group {group} is not in the file"),
                        );
                        self.held_groups.insert(group.to_string());
                        continue;
                    }
                    match class_index.get(member) {
                        Some(&i) if group_is_org && groups[i].org.is_none() => {
                            groups[i].org = Some(group.to_string());
                        }
                        _ => ignored += 1,
                    }
                    continue;
                }
                IdType::Other(other) => {
                    let other = &other_idtypes[other as usize];
                    self.issue(
                        m.line,
                        Some(member),
                        format!("member idtype {other:?} is not 1 (person) or 2 (group)"),
                    );
                    self.held_groups.insert(group.to_string());
                    continue;
                }
            }
            let pos = match member_pos[m.member as usize] {
                NO_ID => None,
                i => Some(i as usize),
            };
            if bulk && pos.is_none() && !self.person_index.contains_key(member) {
                self.issue(
                    m.line,
                    Some(member),
                    format!("member of group {group} is not a person in the file"),
                );
                continue;
            }
            let roles = roles_of(&m);
            let no_role = m.roles == 0;
            if group_is_org {
                let active = no_role || roles.clone().any(|r| r.status == Ok(Status::Active));
                if let Some(i) = pos {
                    if active && !persons[i].orgs.iter().any(|o| o == group) {
                        persons[i].orgs.push(group.to_string());
                    }
                }
                continue;
            }
            if bulk && pos.is_none() {
                ignored += 1; // membership of a person who is not synced
                continue;
            }
            if no_role {
                self.issue(
                    m.line,
                    Some(member),
                    format!("member of group {group} has no role"),
                );
                self.held_groups.insert(group.to_string());
                continue;
            }
            for r in roles {
                let status = match r.status {
                    Ok(s) => s,
                    Err(e) => {
                        self.issue(m.line, Some(member), role_errors[e as usize].clone());
                        self.held_groups.insert(group.to_string());
                        continue;
                    }
                };
                let Some(role) = roletype_role[r.roletype as usize] else {
                    ignored += 1; // roletype 03..08 not mapped
                    continue;
                };
                if !seen[g as usize].insert((m.member, r.roletype)) {
                    self.issue(
                        m.line,
                        Some(member),
                        format!(
                            "duplicate member of group {group} with roletype {}",
                            roletypes[r.roletype as usize]
                        ),
                    );
                    continue;
                }
                memberships.push(Membership {
                    status,
                    group: group.to_string(),
                    person: member.to_string(),
                    role,
                });
            }
        }

        Roster {
            orgs,
            persons,
            groups,
            memberships,
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
            ignored,
            held_persons: self.held_persons,
            held_groups: self.held_groups,
            exams: Default::default(),
            format: "IMS Enterprise 1.1 XML".into(),
        }
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
