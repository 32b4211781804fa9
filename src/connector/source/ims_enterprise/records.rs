//! Raw records as the event loop hands them out, before the builder
//! turns them into the roster.

#[derive(Debug, Default, Clone)]
pub(super) struct SourcedId {
    pub(super) source: String,
    pub(super) id: String,
}

#[derive(Debug, Default)]
pub(super) struct Properties {
    pub(super) datasource: Option<String>,
    pub(super) kind: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct RawPerson {
    pub(super) sourcedid: Option<SourcedId>,
    pub(super) recstatus: Option<String>,
    pub(super) userids: Vec<(String, String)>,
    pub(super) full_name: Option<String>,
    pub(super) given: Option<String>,
    pub(super) family: Option<String>,
    pub(super) middle: Option<String>,
    pub(super) email: Option<String>,
    /// (institutionroletype, primary)
    pub(super) institution_roles: Vec<(String, bool)>,
    /// The `partname` being read is a tussenvoegsel.
    pub(super) partname_is_middle: bool,
    pub(super) extension: Vec<(String, String)>,
}

#[derive(Debug, Default)]
pub(super) struct RawGroup {
    pub(super) sourcedid: Option<SourcedId>,
    pub(super) recstatus: Option<String>,
    pub(super) typevalue: Option<String>,
    pub(super) short: Option<String>,
    pub(super) long: Option<String>,
    pub(super) full: Option<String>,
    pub(super) org_name: Option<String>,
    pub(super) org_id: Option<String>,
    pub(super) parent: Option<SourcedId>,
}

/// A member's role. Scratch space reused from member to member: an empty
/// `status` is an absent one (only non-empty text sets it).
#[derive(Debug, Default)]
pub(super) struct RawRole {
    pub(super) roletype: String,
    pub(super) status: String,
    /// `recstatus` (attribute or child) was given; it may be empty.
    pub(super) has_recstatus: bool,
    pub(super) recstatus: String,
}

impl RawRole {
    pub(super) fn recstatus(&self) -> Option<&str> {
        self.has_recstatus.then_some(self.recstatus.as_str())
    }

    pub(super) fn status(&self) -> Option<&str> {
        (!self.status.is_empty()).then_some(self.status.as_str())
    }
}

/// The `member` being read: one scratch record reused for every member of
/// the document (its strings keep their capacity), handed to the builder as
/// soon as the member ends. Empty strings are absent values.
#[derive(Debug, Default)]
pub(super) struct RawMember {
    pub(super) line: u64,
    pub(super) source: String,
    pub(super) id: String,
    pub(super) idtype: String,
    /// `roles[..nroles]` are this member's roles.
    pub(super) roles: Vec<RawRole>,
    pub(super) nroles: usize,
}

impl RawMember {
    pub(super) fn reset(&mut self, line: u64) {
        self.line = line;
        self.source.clear();
        self.id.clear();
        self.idtype.clear();
        self.nroles = 0;
    }

    pub(super) fn roles(&self) -> &[RawRole] {
        &self.roles[..self.nroles]
    }

    pub(super) fn last_role(&mut self) -> Option<&mut RawRole> {
        self.roles[..self.nroles].last_mut()
    }

    /// A new, empty role (reusing an earlier one's strings).
    pub(super) fn push_role(&mut self) -> &mut RawRole {
        if self.nroles == self.roles.len() {
            self.roles.push(RawRole::default());
        }
        self.nroles += 1;
        let r = &mut self.roles[self.nroles - 1];
        r.roletype.clear();
        r.status.clear();
        r.has_recstatus = false;
        r.recstatus.clear();
        r
    }
}

/// A `membership` record; its members went to the builder one by one
/// ([`Item::Member`]) before it.
#[derive(Debug, Default)]
pub(super) struct RawMembership {
    pub(super) sourcedid: Option<SourcedId>,
}

pub(super) enum Item<'a> {
    Properties(Properties),
    Person(RawPerson),
    Group(RawGroup),
    /// A member of the `membership` being read (its group is known when
    /// the membership itself comes).
    Member(&'a RawMember),
    Membership(RawMembership),
}
