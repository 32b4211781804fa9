//! IMS Enterprise 1.1 XML (the format Moodle's "IMS Enterprise file"
//! enrolment plugin reads): one `<enterprise>` document holding
//! `<properties>`, `<person>`, `<group>` and `<membership>` records.
//!
//! # Reading
//! The file is streamed with quick-xml: one event loop, one reused buffer,
//! nothing but the records themselves kept, so memory follows the roster,
//! not the file. Element names match by local name (a namespace prefix or a
//! default namespace is fine). The line of each record is counted while
//! reading (newlines in the bytes the parser consumes).
//! A file of 8 MB or more is read by two threads, one per half
//! ([`split`]), with the same result.
//!
//! # Safety
//! No DTD and no entity is ever resolved. A `<!DOCTYPE` with an internal
//! subset (`[...]`) or any `<!ENTITY` declaration fails the read at once
//! (billion laughs, XXE). A DOCTYPE with only an external id is allowed and
//! ignored: it is never fetched. Only the five predefined entities
//! (`&lt;` `&gt;` `&amp;` `&apos;` `&quot;`) and numeric character
//! references are unescaped; any other entity reference is an error. A single
//! token larger than 16 MiB fails the read (no unbounded buffer). A
//! document that is not well-formed fails the whole read with
//! `file:line: what; what to do`.
//!
//! # Mapping
//! - Ids: `sourcedid/id`. With `source.qualify_ids = true` every id, also
//!   in references, becomes `source:id` (`sourcedid/source`, then `:`, then
//!   the id). The rule never depends on the data: a document that suddenly
//!   holds a second source does not rename everybody. Without qualification
//!   an id used by two records of one kind is a duplicate (reported, the
//!   second skipped).
//! - `person`: `name/n/given`, `name/n/family`; `name/n/partname` with
//!   `partnametype` Prefix, Tussenvoegsel, Voorvoegsel, Infix or Middlename
//!   → middle name (the Dutch *tussenvoegsel*); `email`; `userid` with
//!   `useridtype` studentnumber, studentid, employeenumber, staffcode,
//!   identifier, leerlingnummer or personeelsnummer → identifier, any other
//!   `userid` → username. Role: the `institutionrole` (`primaryrole="Yes"`
//!   first) looked up in the role map; a person without one gets the role of
//!   their first active, mapped membership `roletype`. An institution role that does
//!   not map (Administrator, Other, ...) means the person is not synced
//!   (counted as ignored).
//! - Accommodations: children of `person/extension` named by
//!   `source.accommodations` (default `extraTimePercent`, `fontScale`,
//!   `screenReader`), same values as the OneRoster source accepts.
//! - `group`: a group whose `grouptype/typevalue` is School, District,
//!   Organization/Organisation, OrgUnit, Institution, Department, Bestuur or
//!   Vestiging becomes an `Org` (kind = the typevalue lowercased, identifier
//!   = `org/id` such as the BRIN + location code, name =
//!   `description/long`, else `short`, else `org/orgname`); every other
//!   group is a class: title = `description/long` (else `short`, `full`),
//!   code = `description/short`. `relationship relation="1"` (parent) names
//!   the class's org, or its course when the parent is not an org.
//!   Academic sessions cannot be expressed: `sessions` stays empty.
//! - `membership`: a person `member` (`idtype` 1 or absent) of a class,
//!   one per `role`: `roletype` via the role map (01 → student, 02 →
//!   teacher; 03–08 only when mapped), `status` 0 or role `recstatus` 3 →
//!   to be deleted. Membership ids are made up as `group/person/roletype`.
//!   A person member of an org places the person in that org (first one =
//!   primary org). A group member (`idtype` 2) of an org gives a class
//!   without parent its org; other group members are ignored.
//! - `recstatus` (attribute, or child element): 1 add, 2 update, 3 delete
//!   (→ to be deleted: the platform deactivates).
//!
//!   In a delta, a membership of a group that the document does not hold
//!   is taken as a class membership: to place a new person in a school, a
//!   delta repeats the school's `group` record (`recstatus="2"`).
//!
//! # Bulk or delta
//! A document is a delta when `properties/type` says delta, event,
//! incremental or update, or when it holds records and every person and
//! group carries a `recstatus`. Otherwise it is bulk (a snapshot): persons
//! and classes absent from it leave. A bulk document without any group
//! (or membership) element leaves classes (memberships) as they are.
//!
//! # Skipped records
//! A record without sourcedid, a duplicate id, a bad recstatus, a person
//! without names or with a bad accommodation value, a member pointing at an
//! unknown person or group: reported as `file:line: record ID: reason` and
//! skipped. A skipped person or class with an id is *held* (never
//! deactivated for it); damaged members hold their class.

use std::collections::{BTreeMap, HashSet};

use rustc_hash::{FxHashMap as HashMap, FxHashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::config::{ImsAccommodationElements, ImsEnterpriseSource};
use crate::connector::oneroster_csv::parse_accommodation_values;
use crate::connector::xml_input::{Counting, count_newlines, doctype_refused, push_ref};
use crate::model::{
    Completeness, Group, Membership, Org, Person, Role, Roster, SourceIssue, Status,
};

/// Group types that are organisations, not classes (lowercase).
const ORG_TYPES: &[&str] = &[
    "school",
    "district",
    "organization",
    "organisation",
    "orgunit",
    "institution",
    "department",
    "bestuur",
    "vestiging",
];

const MIDDLE_NAME_PARTS: &[&str] = &[
    "prefix",
    "tussenvoegsel",
    "voorvoegsel",
    "infix",
    "middlename",
];

const IDENTIFIER_TYPES: &[&str] = &[
    "studentnumber",
    "studentid",
    "employeenumber",
    "staffcode",
    "identifier",
    "leerlingnummer",
    "personeelsnummer",
];

/// Reads an IMS Enterprise 1.1 XML document into a canonical [`Roster`].
pub struct ImsEnterprise {
    path: PathBuf,
    role_map: BTreeMap<String, Role>,
    qualify_ids: bool,
    accommodations: ImsAccommodationElements,
}

impl ImsEnterprise {
    pub fn new(cfg: &ImsEnterpriseSource) -> ImsEnterprise {
        let mut role_map: BTreeMap<String, Role> = [
            ("01", Role::Student),
            ("02", Role::Teacher),
            ("student", Role::Student),
            ("learner", Role::Student),
            ("faculty", Role::Teacher),
            ("instructor", Role::Teacher),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (from, to) in &cfg.role_map {
            if let Some(r) = Role::parse(to) {
                role_map.insert(from.trim().to_ascii_lowercase(), r);
            }
        }
        ImsEnterprise {
            path: cfg.path.clone(),
            role_map,
            qualify_ids: cfg.qualify_ids,
            accommodations: cfg.accommodations.clone(),
        }
    }

    pub fn location(&self) -> &Path {
        &self.path
    }

    /// What is at the configured path, reading only up to the first record:
    /// "IMS Enterprise 1.1 XML, 1234 bytes, datasource X" (for `check-config`).
    pub fn probe(&self) -> Result<String> {
        let size = std::fs::metadata(&self.path)
            .with_context(|| {
                format!(
                    "IMS Enterprise file {} not found; check source.path",
                    self.path.display()
                )
            })?
            .len();
        let mut p = Parser::open(&self.path)?;
        let mut props = Properties::default();
        p.run(&mut |_, ev| match ev {
            Item::Properties(pr) => {
                props = pr;
                false
            }
            Item::Person(_) | Item::Group(_) | Item::Member(_) | Item::Membership(_) => false,
        })?;
        let mut out = format!("IMS Enterprise 1.1 XML, {size} bytes");
        if let Some(ds) = props.datasource.filter(|s| !s.is_empty()) {
            out.push_str(&format!(", datasource {ds}"));
        }
        if let Some(t) = props.kind.filter(|s| !s.is_empty()) {
            out.push_str(&format!(", type {t}"));
        }
        Ok(out)
    }

    /// Read the whole document. `progress` is called with records read.
    ///
    /// A large document is read by two threads, one per half (see
    /// [`split`]); anything unusual about the split point and the read
    /// starts again on one thread, so the result never depends on it.
    pub fn read(&self, progress: &dyn Fn(u64)) -> Result<Roster> {
        if let Some(roster) = split::read_in_halves(self, progress)? {
            return Ok(roster);
        }
        self.read_on_one_thread(progress)
    }

    /// [`ImsEnterprise::read`] on the calling thread only (also what the
    /// benchmark compares with).
    pub fn read_on_one_thread(&self, progress: &dyn Fn(u64)) -> Result<Roster> {
        let mut p = Parser::open(&self.path)?;
        let mut b = Builder::new(self, p.file.clone());
        p.run(&mut |line, item| {
            b.feed(line, item, progress);
            true
        })?;
        progress(b.records);
        Ok(b.finish())
    }
}

impl<'a> Builder<'a> {
    fn new(cfg: &'a ImsEnterprise, file: String) -> Builder<'a> {
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
    fn feed(&mut self, line: u64, item: Item<'_>, progress: &dyn Fn(u64)) {
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

// ---------------------------------------------------------------------------
// Raw records as they come out of the event loop.

#[derive(Debug, Default, Clone)]
struct SourcedId {
    source: String,
    id: String,
}

#[derive(Debug, Default)]
struct Properties {
    datasource: Option<String>,
    kind: Option<String>,
}

#[derive(Debug, Default)]
struct RawPerson {
    sourcedid: Option<SourcedId>,
    recstatus: Option<String>,
    userids: Vec<(String, String)>,
    full_name: Option<String>,
    given: Option<String>,
    family: Option<String>,
    middle: Option<String>,
    email: Option<String>,
    /// (institutionroletype, primary)
    institution_roles: Vec<(String, bool)>,
    /// The `partname` being read is a tussenvoegsel.
    partname_is_middle: bool,
    extension: Vec<(String, String)>,
}

#[derive(Debug, Default)]
struct RawGroup {
    sourcedid: Option<SourcedId>,
    recstatus: Option<String>,
    typevalue: Option<String>,
    short: Option<String>,
    long: Option<String>,
    full: Option<String>,
    org_name: Option<String>,
    org_id: Option<String>,
    parent: Option<SourcedId>,
}

/// A member's role. Scratch space reused from member to member: an empty
/// `status` is an absent one (only non-empty text sets it).
#[derive(Debug, Default)]
struct RawRole {
    roletype: String,
    status: String,
    /// `recstatus` (attribute or child) was given; it may be empty.
    has_recstatus: bool,
    recstatus: String,
}

impl RawRole {
    fn recstatus(&self) -> Option<&str> {
        self.has_recstatus.then_some(self.recstatus.as_str())
    }

    fn status(&self) -> Option<&str> {
        (!self.status.is_empty()).then_some(self.status.as_str())
    }
}

/// The `member` being read: one scratch record reused for every member of
/// the document (its strings keep their capacity), handed to the builder as
/// soon as the member ends. Empty strings are absent values.
#[derive(Debug, Default)]
struct RawMember {
    line: u64,
    source: String,
    id: String,
    idtype: String,
    /// `roles[..nroles]` are this member's roles.
    roles: Vec<RawRole>,
    nroles: usize,
}

impl RawMember {
    fn reset(&mut self, line: u64) {
        self.line = line;
        self.source.clear();
        self.id.clear();
        self.idtype.clear();
        self.nroles = 0;
    }

    fn roles(&self) -> &[RawRole] {
        &self.roles[..self.nroles]
    }

    fn last_role(&mut self) -> Option<&mut RawRole> {
        self.roles[..self.nroles].last_mut()
    }

    /// A new, empty role (reusing an earlier one's strings).
    fn push_role(&mut self) -> &mut RawRole {
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
struct RawMembership {
    sourcedid: Option<SourcedId>,
}

enum Item<'a> {
    Properties(Properties),
    Person(RawPerson),
    Group(RawGroup),
    /// A member of the `membership` being read (its group is known when
    /// the membership itself comes).
    Member(&'a RawMember),
    Membership(RawMembership),
}

// ---------------------------------------------------------------------------
// Input with line counting and a bound on a single token.

/// 1-based line of a byte offset, by reading the file again (error path only).
fn line_at(path: &Path, offset: u64) -> u64 {
    let Ok(f) = File::open(path) else { return 0 };
    let mut rd = BufReader::new(f.take(offset));
    let mut lines = 1;
    loop {
        let n = match rd.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(b) => {
                lines += count_newlines(b);
                b.len()
            }
        };
        rd.consume(n);
    }
    lines
}

/// The bytes at `offset`, to recognise a declaration the parser choked on.
fn bytes_at(path: &Path, offset: u64, n: usize) -> Vec<u8> {
    use std::io::{Seek, SeekFrom};
    let mut out = vec![0; n];
    let got = File::open(path)
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(offset))?;
            f.read(&mut out)
        })
        .unwrap_or(0);
    out.truncate(got);
    out
}

// ---------------------------------------------------------------------------
// The event loop.

struct Parser {
    path: PathBuf,
    /// How the file is named in messages.
    file: String,
    reader: Reader<Counting<std::io::Take<File>>>,
    /// Line on which the event being handled starts.
    event_line: u64,
    /// Where the part read starts in the file: byte offset, and the
    /// newlines before it.
    base_byte: u64,
    base_lines: u64,
    /// The part starts between two records inside `<enterprise>`.
    mid_document: bool,
    /// The part ends at a split point: its end is not the document's.
    split_end: bool,
    /// With `split_end`: the part ended between two records, as it must.
    ended_clean: bool,
}

/// Element names the parser cares about, as small numbers (paths match
/// without comparing strings); everything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum El {
    Other,
    Enterprise,
    Properties,
    DataSource,
    Type,
    Person,
    Group,
    Membership,
    Member,
    SourcedId,
    Source,
    Id,
    UserId,
    Name,
    Fn,
    N,
    Family,
    Given,
    PartName,
    Email,
    InstitutionRole,
    RecStatus,
    Extension,
    GroupType,
    TypeValue,
    Description,
    Short,
    Long,
    Full,
    Org,
    OrgName,
    Relationship,
    Idtype,
    Role,
    Status,
}

impl El {
    fn name(self) -> &'static str {
        match self {
            El::Other => "element",
            El::Enterprise => "enterprise",
            El::Properties => "properties",
            El::DataSource => "datasource",
            El::Type => "type",
            El::Person => "person",
            El::Group => "group",
            El::Membership => "membership",
            El::Member => "member",
            El::SourcedId => "sourcedid",
            El::Source => "source",
            El::Id => "id",
            El::UserId => "userid",
            El::Name => "name",
            El::Fn => "fn",
            El::N => "n",
            El::Family => "family",
            El::Given => "given",
            El::PartName => "partname",
            El::Email => "email",
            El::InstitutionRole => "institutionrole",
            El::RecStatus => "recstatus",
            El::Extension => "extension",
            El::GroupType => "grouptype",
            El::TypeValue => "typevalue",
            El::Description => "description",
            El::Short => "short",
            El::Long => "long",
            El::Full => "full",
            El::Org => "org",
            El::OrgName => "orgname",
            El::Relationship => "relationship",
            El::Idtype => "idtype",
            El::Role => "role",
            El::Status => "status",
        }
    }
}

fn known(local: &[u8]) -> El {
    // a name of up to 15 bytes and its length as one 128-bit number: no
    // string comparison
    const fn key(name: &[u8]) -> u128 {
        let mut k = [0u8; 16];
        let mut i = 0;
        while i < name.len() {
            k[i] = name[i];
            i += 1;
        }
        k[15] = name.len() as u8;
        u128::from_le_bytes(k)
    }
    const N: u128 = key(b"n");
    const ID: u128 = key(b"id");
    const FN: u128 = key(b"fn");
    const ORG: u128 = key(b"org");
    const TYPE: u128 = key(b"type");
    const NAME: u128 = key(b"name");
    const LONG: u128 = key(b"long");
    const FULL: u128 = key(b"full");
    const ROLE: u128 = key(b"role");
    const GROUP: u128 = key(b"group");
    const GIVEN: u128 = key(b"given");
    const EMAIL: u128 = key(b"email");
    const SHORT: u128 = key(b"short");
    const PERSON: u128 = key(b"person");
    const MEMBER: u128 = key(b"member");
    const SOURCE: u128 = key(b"source");
    const USERID: u128 = key(b"userid");
    const FAMILY: u128 = key(b"family");
    const IDTYPE: u128 = key(b"idtype");
    const STATUS: u128 = key(b"status");
    const ORGNAME: u128 = key(b"orgname");
    const PARTNAME: u128 = key(b"partname");
    const SOURCEDID: u128 = key(b"sourcedid");
    const RECSTATUS: u128 = key(b"recstatus");
    const EXTENSION: u128 = key(b"extension");
    const GROUPTYPE: u128 = key(b"grouptype");
    const TYPEVALUE: u128 = key(b"typevalue");
    const ENTERPRISE: u128 = key(b"enterprise");
    const PROPERTIES: u128 = key(b"properties");
    const DATASOURCE: u128 = key(b"datasource");
    const MEMBERSHIP: u128 = key(b"membership");
    const DESCRIPTION: u128 = key(b"description");
    const RELATIONSHIP: u128 = key(b"relationship");
    const INSTITUTIONROLE: u128 = key(b"institutionrole");
    if local.len() > 15 {
        return El::Other;
    }
    // built in a register: bytes stored one by one and read back as one
    // number would stall the load
    let mut k = (local.len() as u128) << 120;
    for (i, &b) in local.iter().enumerate() {
        k |= (b as u128) << (8 * i);
    }
    match k {
        N => El::N,
        ID => El::Id,
        FN => El::Fn,
        ORG => El::Org,
        TYPE => El::Type,
        NAME => El::Name,
        LONG => El::Long,
        FULL => El::Full,
        ROLE => El::Role,
        GROUP => El::Group,
        GIVEN => El::Given,
        EMAIL => El::Email,
        SHORT => El::Short,
        PERSON => El::Person,
        MEMBER => El::Member,
        SOURCE => El::Source,
        USERID => El::UserId,
        FAMILY => El::Family,
        IDTYPE => El::Idtype,
        STATUS => El::Status,
        ORGNAME => El::OrgName,
        PARTNAME => El::PartName,
        SOURCEDID => El::SourcedId,
        RECSTATUS => El::RecStatus,
        EXTENSION => El::Extension,
        GROUPTYPE => El::GroupType,
        TYPEVALUE => El::TypeValue,
        ENTERPRISE => El::Enterprise,
        PROPERTIES => El::Properties,
        DATASOURCE => El::DataSource,
        MEMBERSHIP => El::Membership,
        DESCRIPTION => El::Description,
        RELATIONSHIP => El::Relationship,
        INSTITUTIONROLE => El::InstitutionRole,
        _ => El::Other,
    }
}

/// Whether the text of the innermost element of `stack` can be read by
/// [`end`]: not for the elements that only hold other elements.
fn wants_text(stack: &[El]) -> bool {
    match stack {
        [_, El::Person, El::Extension, _] => true,
        [.., top] => !matches!(
            top,
            El::Other
                | El::Enterprise
                | El::Properties
                | El::Person
                | El::Group
                | El::Membership
                | El::Member
                | El::SourcedId
                | El::Name
                | El::N
                | El::Extension
                | El::GroupType
                | El::Description
                | El::Org
                | El::Relationship
                | El::Role
                | El::InstitutionRole
        ),
        [] => false,
    }
}

/// The part of a (short) element name after its prefix, as
/// `QName::local_name`, without a vector search set up for a few bytes.
fn local_name(name: &[u8]) -> &[u8] {
    match name.iter().position(|&b| b == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

/// The record being read.
enum Current {
    None,
    Properties(Properties),
    Person(RawPerson),
    Group(RawGroup),
    Membership(RawMembership),
}

impl Parser {
    fn open(path: &Path) -> Result<Parser> {
        Self::open_part(path, 0, u64::MAX)
    }

    /// The bytes `start..start + len` of the file (the whole file:
    /// `0, u64::MAX`).
    fn open_part(path: &Path, start: u64, len: u64) -> Result<Parser> {
        use std::io::{Seek, SeekFrom};
        let mut f = File::open(path).with_context(|| {
            format!(
                "cannot open IMS Enterprise file {}; check source.path",
                path.display()
            )
        })?;
        if start > 0 {
            f.seek(SeekFrom::Start(start))
                .with_context(|| format!("cannot read IMS Enterprise file {}", path.display()))?;
        }
        let counting = Counting::new(f.take(len), 256 << 10);
        let mut reader = Reader::from_reader(counting);
        let c = reader.config_mut();
        c.check_end_names = true;
        c.expand_empty_elements = false;
        c.trim_text_start = false;
        c.trim_text_end = false;
        Ok(Parser {
            path: path.to_path_buf(),
            file: path.display().to_string(),
            reader,
            event_line: 1,
            base_byte: start,
            base_lines: 0,
            mid_document: false,
            split_end: false,
            ended_clean: false,
        })
    }

    /// A fatal error at the event being handled.
    fn fatal(&self, what: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("{}:{}: {what}", self.file, self.event_line)
    }

    /// Map a quick-xml error to `file:line: what; what to do`.
    fn xml_error(&self, e: quick_xml::Error) -> anyhow::Error {
        let pos = self.base_byte + self.reader.error_position();
        let line = line_at(&self.path, pos);
        let at = bytes_at(&self.path, pos, 10);
        if at.starts_with(b"<!ENTITY") || at.starts_with(b"<!DOCTYPE") {
            return anyhow!(
                "{}:{line}: DTD/entity declarations are refused (sisync never expands entities); export the roster without a DOCTYPE",
                self.file
            );
        }
        anyhow!(
            "{}:{line}: XML is not well-formed ({e}); fix or re-export the file",
            self.file
        )
    }

    /// Stream the document, handing each complete record to `each` with the
    /// line it starts on. `each` returns false to stop early.
    fn run(&mut self, each: &mut dyn FnMut(u64, Item<'_>) -> bool) -> Result<()> {
        let mut buf = Vec::with_capacity(8 << 10);
        let mut stack: Vec<El> = Vec::with_capacity(16);
        if self.mid_document {
            // quick-xml did not see `<enterprise>` open: its end is
            // checked here instead
            self.reader.config_mut().allow_unmatched_ends = true;
            stack.push(El::Enterprise);
        }
        let mut text = String::new();
        let mut cur = Current::None;
        let mut cur_line = 0u64;
        let mut seen_root = self.mid_document;
        // name of the extension child being read (person/extension/*)
        let mut ext_name = String::new();
        let mut member = RawMember::default();
        // the text of the innermost open element is read at its end
        let mut want_text = false;
        loop {
            self.event_line = self.base_lines + self.reader.get_mut().next_event();
            // matched where it was returned, not moved out first
            let ev = self.reader.read_event_into(&mut buf);
            match ev {
                Err(e) => return Err(self.xml_error(e)),
                Ok(Event::Start(ref e)) | Ok(Event::Empty(ref e)) => {
                    let empty = matches!(ev, Ok(Event::Empty(_)));
                    let name = known(local_name(e.name().as_ref()));
                    if !seen_root {
                        if name != El::Enterprise {
                            return Err(self.fatal(format!(
                                "the root element is <{}>, not <enterprise>; source.path must point at an IMS Enterprise 1.1 XML file",
                                String::from_utf8_lossy(e.name().as_ref())
                            )));
                        }
                        seen_root = true;
                    } else if stack.is_empty() {
                        return Err(self.fatal(
                            "content after the end of <enterprise>; fix or re-export the file",
                        ));
                    }
                    text.clear();
                    if stack.len() == 1 {
                        // a record starts
                        cur_line = self.event_line;
                        cur = match name {
                            El::Properties => Current::Properties(Properties::default()),
                            El::Person => Current::Person(RawPerson::default()),
                            El::Group => Current::Group(RawGroup::default()),
                            El::Membership => Current::Membership(RawMembership::default()),
                            _ => Current::None,
                        };
                    }
                    if stack.len() == 3 && stack[1] == El::Person && stack[2] == El::Extension {
                        ext_name.clear();
                        ext_name.push_str(&self.decode_name(e)?);
                    }
                    self.start(&mut cur, &mut member, &stack, name, e)?;
                    if empty {
                        if stack.len() == 1 {
                            if let Some(item) = take(&mut cur) {
                                if !each(cur_line, item) {
                                    return Ok(());
                                }
                            }
                        } else if end(&mut cur, &mut member, &stack, name, "", &ext_name)
                            && !each(member.line, Item::Member(&member))
                        {
                            return Ok(());
                        }
                    } else {
                        stack.push(name);
                        want_text = wants_text(&stack);
                    }
                }
                Ok(Event::End(ref e)) => {
                    if self.mid_document
                        && stack.len() == 1
                        && known(local_name(e.name().as_ref())) != El::Enterprise
                    {
                        return Err(self.fatal(format!(
                            "end tag </{}> does not close <enterprise>; fix or re-export the file",
                            String::from_utf8_lossy(e.name().as_ref())
                        )));
                    }
                    let Some(name) = stack.pop() else {
                        return Err(self.fatal("unexpected end tag; fix or re-export the file"));
                    };
                    want_text = wants_text(&stack);
                    if stack.len() == 1 {
                        if let Some(item) = take(&mut cur) {
                            if !each(cur_line, item) {
                                return Ok(());
                            }
                        }
                    } else if !stack.is_empty() {
                        let t = text.trim();
                        if end(&mut cur, &mut member, &stack, name, t, &ext_name)
                            && !each(member.line, Item::Member(&member))
                        {
                            return Ok(());
                        }
                    }
                    text.clear();
                }
                Ok(Event::Text(ref t)) => {
                    if want_text {
                        let s = std::str::from_utf8(t).map_err(|_| {
                            self.fatal("text is not valid UTF-8; re-export the file as UTF-8")
                        })?;
                        text.push_str(s);
                    } else if !stack.is_empty() {
                        // text nobody reads (mostly the indentation between
                        // tags): only checked, not copied
                        if !t.is_ascii() && std::str::from_utf8(t).is_err() {
                            return Err(
                                self.fatal("text is not valid UTF-8; re-export the file as UTF-8")
                            );
                        }
                    } else if !t.iter().all(u8::is_ascii_whitespace) {
                        return Err(self.fatal(
                            "text outside the <enterprise> element; fix or re-export the file",
                        ));
                    }
                }
                Ok(Event::CData(ref t)) => {
                    let s = t.decode().map_err(|_| {
                        self.fatal("text is not valid UTF-8; re-export the file as UTF-8")
                    })?;
                    text.push_str(&s);
                }
                Ok(Event::GeneralRef(ref r)) => {
                    if let Err(what) = push_ref(&mut text, r) {
                        return Err(self.fatal(what));
                    }
                }
                Ok(Event::DocType(ref d)) => {
                    let d: &[u8] = d;
                    if doctype_refused(d) {
                        return Err(self.fatal(
                            "DOCTYPE with an internal DTD subset or <!ENTITY> declaration is refused (sisync never expands entities); export the roster without a DTD",
                        ));
                    }
                    // an external DTD reference only: never fetched, ignored
                }
                Ok(Event::Decl(ref d)) => {
                    if let Some(Ok(enc)) = d.encoding() {
                        let enc = String::from_utf8_lossy(&enc).to_ascii_lowercase();
                        if enc != "utf-8" && enc != "utf8" {
                            return Err(self.fatal(format!(
                                "encoding {enc:?} is not supported; re-export the file as UTF-8"
                            )));
                        }
                    }
                }
                Ok(Event::Comment(_)) | Ok(Event::PI(_)) => {}
                Ok(Event::Eof) if self.split_end => {
                    self.ended_clean = stack == [El::Enterprise] && matches!(cur, Current::None);
                    return Ok(());
                }
                Ok(Event::Eof) => {
                    if !seen_root {
                        return Err(self.fatal(
                            "no <enterprise> element; source.path must point at an IMS Enterprise 1.1 XML file",
                        ));
                    }
                    if let Some(open) = stack.last() {
                        return Err(self.fatal(format!(
                            "the document ends inside <{}>; the file is truncated, re-export it",
                            open.name()
                        )));
                    }
                    return Ok(());
                }
            }
            drop(ev);
            buf.clear();
        }
    }

    fn decode_name(&self, e: &BytesStart<'_>) -> Result<String> {
        std::str::from_utf8(e.local_name().as_ref())
            .map(String::from)
            .map_err(|_| self.fatal("element name is not valid UTF-8"))
    }

    /// Attributes of interest, unescaped with the predefined entities only.
    fn attr(&self, e: &BytesStart<'_>, want: &[u8]) -> Result<Option<String>> {
        let mut v = String::new();
        Ok(self.attr_into(e, want, &mut v)?.then_some(v))
    }

    /// [`Parser::attr`] into a reused string (left empty when absent): true
    /// when the attribute is there.
    /// Two attributes in one pass over the tag, with the result (and error)
    /// of [`Parser::attr_into`] for `a` and then for `b`.
    fn attr_pair(
        &self,
        e: &BytesStart<'_>,
        (a, out_a): (&[u8], &mut String),
        (b, out_b): (&[u8], &mut String),
    ) -> Result<(bool, bool)> {
        out_a.clear();
        out_b.clear();
        let (mut va, mut vb, mut err) = (None, None, None);
        for x in e.attributes() {
            match x {
                Err(er) => {
                    err = Some(er);
                    break;
                }
                Ok(at) => {
                    let k = at.key.local_name();
                    if va.is_none() && k.as_ref() == a {
                        va = Some(at);
                    } else if vb.is_none() && k.as_ref() == b {
                        vb = Some(at);
                    }
                    if va.is_some() && vb.is_some() {
                        break;
                    }
                }
            }
        }
        // a search for one attribute stops at it, or at the first bad one
        let one = |v: Option<quick_xml::events::attributes::Attribute<'_>>,
                   want: &[u8],
                   out: &mut String|
         -> Result<bool> {
            match (v, &err) {
                (Some(at), _) => {
                    self.attr_value(&at, want, out)?;
                    Ok(true)
                }
                (None, Some(er)) => {
                    Err(self.fatal(format!("bad attribute ({er}); fix or re-export the file")))
                }
                (None, None) => Ok(false),
            }
        };
        let has_a = one(va, a, out_a)?;
        let has_b = one(vb, b, out_b)?;
        Ok((has_a, has_b))
    }

    fn attr_into(&self, e: &BytesStart<'_>, want: &[u8], out: &mut String) -> Result<bool> {
        out.clear();
        for a in e.attributes() {
            let a = a.map_err(|err| {
                self.fatal(format!("bad attribute ({err}); fix or re-export the file"))
            })?;
            if a.key.local_name().as_ref() == want {
                self.attr_value(&a, want, out)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// An attribute's value, unescaped (predefined entities only) and
    /// trimmed, appended to `out`.
    fn attr_value(
        &self,
        at: &quick_xml::events::attributes::Attribute<'_>,
        want: &[u8],
        out: &mut String,
    ) -> Result<()> {
        let v = at
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|err| {
                self.fatal(format!(
                    "attribute {}: {err}; sisync never expands entities other than the five predefined ones",
                    String::from_utf8_lossy(want)
                ))
            })?;
        out.push_str(v.trim());
        Ok(())
    }

    /// Handle a start tag: attributes and new sub-records.
    fn start(
        &self,
        cur: &mut Current,
        mem: &mut RawMember,
        stack: &[El],
        name: El,
        e: &BytesStart<'_>,
    ) -> Result<()> {
        match cur {
            Current::Person(p) => match (stack, name) {
                ([_], El::Person) => {
                    if let Some(v) = self.attr(e, b"recstatus")? {
                        p.recstatus = Some(v);
                    }
                }
                ([_, El::Person], El::InstitutionRole) => {
                    let t = self.attr(e, b"institutionroletype")?.unwrap_or_default();
                    let primary = self
                        .attr(e, b"primaryrole")?
                        .is_some_and(|v| v.eq_ignore_ascii_case("yes"));
                    p.institution_roles.push((t, primary));
                }
                ([_, El::Person], El::UserId) => {
                    let t = self.attr(e, b"useridtype")?.unwrap_or_default();
                    p.userids.push((t, String::new()));
                }
                ([_, El::Person, El::Name, El::N], El::PartName) => {
                    let t = self.attr(e, b"partnametype")?.unwrap_or_default();
                    p.partname_is_middle =
                        MIDDLE_NAME_PARTS.contains(&t.to_ascii_lowercase().as_str());
                }
                _ => {}
            },
            Current::Group(g) => match (stack, name) {
                ([_], El::Group) => {
                    if let Some(v) = self.attr(e, b"recstatus")? {
                        g.recstatus = Some(v);
                    }
                }
                ([_, El::Group], El::Relationship) => {
                    let rel = self.attr(e, b"relation")?.unwrap_or_default();
                    if rel == "1" {
                        g.parent = Some(SourcedId::default());
                    }
                }
                _ => {}
            },
            Current::Membership(_) => match (stack, name) {
                ([_, El::Membership], El::Member) => mem.reset(self.event_line),
                ([_, El::Membership, El::Member], El::Role) => {
                    let r = mem.push_role();
                    (_, r.has_recstatus) = self.attr_pair(
                        e,
                        (b"roletype", &mut r.roletype),
                        (b"recstatus", &mut r.recstatus),
                    )?;
                }
                _ => {}
            },
            Current::Properties(_) | Current::None => {}
        }
        Ok(())
    }
}

fn take(cur: &mut Current) -> Option<Item<'static>> {
    match std::mem::replace(cur, Current::None) {
        Current::None => None,
        Current::Properties(p) => Some(Item::Properties(p)),
        Current::Person(p) => Some(Item::Person(p)),
        Current::Group(g) => Some(Item::Group(g)),
        Current::Membership(m) => Some(Item::Membership(m)),
    }
}

fn set(slot: &mut Option<String>, t: &str) {
    if !t.is_empty() {
        *slot = Some(t.to_string());
    }
}

fn set_sourced(slot: &mut Option<SourcedId>, name: El, t: &str) {
    let s = slot.get_or_insert_with(SourcedId::default);
    match name {
        El::Source => s.source = t.to_string(),
        _ => s.id = t.to_string(),
    }
}

/// Handle an end tag: `stack` is the path of the parent, `t` the trimmed
/// text of the element just closed. True when a `member` is complete.
fn end(cur: &mut Current, mem: &mut RawMember, stack: &[El], name: El, t: &str, ext: &str) -> bool {
    match cur {
        Current::Properties(p) => match (stack, name) {
            ([_, El::Properties], El::DataSource) => set(&mut p.datasource, t),
            ([_, El::Properties], El::Type) => set(&mut p.kind, t),
            _ => {}
        },
        Current::Person(p) => match (stack, name) {
            ([_, El::Person, El::SourcedId], El::Source | El::Id) => {
                set_sourced(&mut p.sourcedid, name, t)
            }
            ([_, El::Person], El::RecStatus) => set(&mut p.recstatus, t),
            ([_, El::Person], El::UserId) => {
                if let Some(u) = p.userids.last_mut() {
                    u.1 = t.to_string();
                }
            }
            ([_, El::Person], El::Email) => set(&mut p.email, t),
            ([_, El::Person, El::Name], El::Fn) => set(&mut p.full_name, t),
            ([_, El::Person, El::Name, El::N], El::Family) => set(&mut p.family, t),
            ([_, El::Person, El::Name, El::N], El::Given) => set(&mut p.given, t),
            ([_, El::Person, El::Name, El::N], El::PartName)
                if p.partname_is_middle && p.middle.is_none() =>
            {
                set(&mut p.middle, t);
            }
            ([_, El::Person, El::Extension], _) if !t.is_empty() => {
                p.extension.push((ext.to_string(), t.to_string()));
            }
            _ => {}
        },
        Current::Group(g) => match (stack, name) {
            ([_, El::Group, El::SourcedId], El::Source | El::Id) => {
                set_sourced(&mut g.sourcedid, name, t)
            }
            ([_, El::Group], El::RecStatus) => set(&mut g.recstatus, t),
            ([_, El::Group, El::GroupType], El::TypeValue) if g.typevalue.is_none() => {
                set(&mut g.typevalue, t)
            }
            ([_, El::Group, El::Description], El::Short) => set(&mut g.short, t),
            ([_, El::Group, El::Description], El::Long) => set(&mut g.long, t),
            ([_, El::Group, El::Description], El::Full) => set(&mut g.full, t),
            ([_, El::Group, El::Org], El::OrgName) => set(&mut g.org_name, t),
            ([_, El::Group, El::Org], El::Id) => set(&mut g.org_id, t),
            ([_, El::Group, El::Relationship, El::SourcedId], El::Source | El::Id)
                if g.parent.is_some() =>
            {
                set_sourced(&mut g.parent, name, t);
            }
            _ => {}
        },
        Current::Membership(m) => match (stack, name) {
            ([_, El::Membership, El::SourcedId], El::Source | El::Id) => {
                set_sourced(&mut m.sourcedid, name, t)
            }
            ([_, El::Membership], El::Member) => return true,
            ([_, El::Membership, El::Member, El::SourcedId], El::Source) => {
                mem.source.clear();
                mem.source.push_str(t);
            }
            ([_, El::Membership, El::Member, El::SourcedId], El::Id) => {
                mem.id.clear();
                mem.id.push_str(t);
            }
            ([_, El::Membership, El::Member], El::Idtype) if !t.is_empty() => {
                mem.idtype.clear();
                mem.idtype.push_str(t);
            }
            ([_, El::Membership, El::Member, El::Role], El::Status) if !t.is_empty() => {
                if let Some(r) = mem.last_role() {
                    r.status.clear();
                    r.status.push_str(t);
                }
            }
            ([_, El::Membership, El::Member, El::Role], El::RecStatus) if !t.is_empty() => {
                if let Some(r) = mem.last_role() {
                    r.has_recstatus = true;
                    r.recstatus.clear();
                    r.recstatus.push_str(t);
                }
            }
            _ => {}
        },
        Current::None => {}
    }
    false
}

// ---------------------------------------------------------------------------
// From raw records to the canonical roster.

struct PersonRec {
    line: u64,
    person: Person,
    /// Institution role: Some(mapped or None when unmapped); None = absent.
    institution_role: Option<Option<Role>>,
}

struct GroupRec {
    line: u64,
    id: String,
    status: Status,
    is_org: bool,
    raw: RawGroup,
}

/// A member as kept until the roster is built: numbers only, no string of
/// its own (ids, groups and roletypes repeat a lot and are interned).
struct MemberRec {
    line: u64,
    /// Index into [`Builder::membership_groups`]: the `membership` record.
    group: u32,
    /// Index into [`Builder::member_ids`], or [`NO_ID`].
    member: u32,
    /// `idtype` as given (absent = "1").
    idtype: IdType,
    /// How many roles: the first is `first`, the others are
    /// `Builder::more_roles[more..more + roles - 1]` (rare).
    roles: u32,
    first: RoleRec,
    more: u32,
}

/// Records kept in fixed-size blocks: growing never copies them and never
/// touches fresh memory twice (a `Vec` would, at each doubling).
struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

const CHUNK: usize = 4096;

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Chunked<T> {
    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn push(&mut self, v: T) {
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(v),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(v);
                self.chunks.push(c);
            }
        }
        self.len += 1;
    }

    /// Keep the first `n` (every block but the last is full).
    fn truncate(&mut self, n: usize) {
        while self.len > n {
            let Some(last) = self.chunks.last_mut() else {
                break; // cannot happen: `len` counts the blocks' records
            };
            let keep = last.len().saturating_sub(self.len - n);
            self.len -= last.len() - keep;
            last.truncate(keep);
            if last.is_empty() {
                self.chunks.pop();
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }

    /// The records from position `from` on.
    fn iter_mut_from(&mut self, from: usize) -> impl Iterator<Item = &mut T> {
        let (block, at) = (from / CHUNK, from % CHUNK);
        self.chunks
            .iter_mut()
            .skip(block)
            .enumerate()
            .flat_map(move |(i, c)| c[if i == 0 { at } else { 0 }..].iter_mut())
    }

    fn into_iter(self) -> impl Iterator<Item = T> {
        self.chunks.into_iter().flatten()
    }
}

/// A member without `sourcedid/id`.
const NO_ID: u32 = u32::MAX;

/// A member's `idtype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdType {
    Person,
    Group,
    /// Index into [`Builder::other_idtypes`].
    Other(u32),
}

/// A member's role, its status worked out when the record is read.
#[derive(Clone, Copy)]
struct RoleRec {
    /// Index into [`Builder::roletypes`].
    roletype: u32,
    /// `Ok` or an index into [`Builder::role_errors`].
    status: Result<Status, u32>,
}

struct Builder<'a> {
    file: String,
    cfg: &'a ImsEnterprise,
    props: Properties,
    persons: Chunked<PersonRec>,
    groups: Vec<GroupRec>,
    memberships: Chunked<MemberRec>,
    /// Roles of members after their first.
    more_roles: Vec<RoleRec>,
    /// Canonical member ids, interned.
    member_ids: IdTable,
    /// Group id of each `membership` record, by number.
    membership_groups: Vec<String>,
    /// The members read since the last `membership` record ended
    /// (`memberships[from..]`, `member_roles[from..]`): theirs is the next.
    pending: (usize, usize),
    roletypes: Interner,
    /// The roletype interned last (most roles have the same).
    last_roletype: Option<u32>,
    role_errors: Vec<String>,
    other_idtypes: Interner,
    /// Scratch for canonical member ids.
    id_buf: String,
    /// id → (line, source) of every person / group read
    person_index: HashMap<String, (u64, String)>,
    group_index: HashMap<String, (u64, String)>,
    issues: Vec<SourceIssue>,
    held_persons: HashSet<String>,
    held_groups: HashSet<String>,
    /// Every person and group carried a recstatus.
    all_recstatus: bool,
    records: u64,
}

/// [`canonical_id`] written into `out`; false when there is none.
fn canonical_id_into(qualify: bool, source: &str, id: &str, out: &mut String) -> bool {
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

/// Ids by number, each kept once in one string: the table holds 4-byte
/// numbers, not boxed strings, so it stays in a core's cache.
#[derive(Default)]
struct IdTable {
    text: String,
    /// `ends[n]`: where id `n` ends in `text`.
    ends: Vec<usize>,
    table: hashbrown::HashTable<u32>,
}

impl IdTable {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn get(&self, n: u32) -> &str {
        id_at(&self.text, &self.ends, n)
    }

    fn find(&self, s: &str) -> Option<u32> {
        let (text, ends) = (&self.text, &self.ends);
        self.table
            .find(id_hash(s), |&n| id_at(text, ends, n) == s)
            .copied()
    }

    fn number(&mut self, s: &str) -> u32 {
        let h = id_hash(s);
        let (text, ends) = (&self.text, &self.ends);
        if let Some(&n) = self.table.find(h, |&n| id_at(text, ends, n) == s) {
            return n;
        }
        let n = self.ends.len() as u32;
        self.text.push_str(s);
        self.ends.push(self.text.len());
        let (text, ends) = (&self.text, &self.ends);
        self.table
            .insert_unique(h, n, |&m| id_hash(id_at(text, ends, m)));
        n
    }
}

fn id_at<'a>(text: &'a str, ends: &[usize], n: u32) -> &'a str {
    let n = n as usize;
    let start = if n == 0 { 0 } else { ends[n - 1] };
    &text[start..ends[n]]
}

fn id_hash(s: &str) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(s)
}

/// Strings by number, each kept once.
#[derive(Default)]
struct Interner {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Interner {
    fn number(&mut self, s: &str) -> u32 {
        if let Some(&n) = self.index.get(s) {
            return n;
        }
        let n = self.names.len() as u32;
        self.names.push(s.to_string());
        self.index.insert(s.to_string(), n);
        n
    }
}

/// The canonical id of a sourcedid: `id`, or `source:id` when qualified.
fn canonical_id(qualify: bool, s: &SourcedId) -> Option<String> {
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

fn status_of(recstatus: Option<&str>) -> Result<Status, String> {
    match recstatus {
        None | Some("1") | Some("2") => Ok(Status::Active),
        Some("3") => Ok(Status::ToBeDeleted),
        Some(other) => Err(format!(
            "recstatus {other:?} is not 1 (add), 2 (update) or 3 (delete)"
        )),
    }
}

impl Builder<'_> {
    fn issue(&mut self, line: u64, id: Option<&str>, reason: impl Into<String>) {
        self.issues.push(SourceIssue {
            location: format!("{}:{line}", self.file),
            record_id: id.map(String::from),
            reason: reason.into(),
        });
    }

    fn canonical(&self, s: &SourcedId) -> Option<String> {
        canonical_id(self.cfg.qualify_ids, s)
    }

    fn duplicate_reason(&self, first_line: u64, first_source: &str, s: &SourcedId) -> String {
        if !self.cfg.qualify_ids && first_source != s.source {
            format!(
                "duplicate sourcedid (also at line {first_line}, source {first_source:?}); set source.qualify_ids = true if the sources are independent"
            )
        } else {
            format!("duplicate sourcedid (also at line {first_line})")
        }
    }

    fn add(&mut self, line: u64, item: Item) {
        match item {
            Item::Properties(p) => self.props = p,
            Item::Person(p) => self.add_person(line, p),
            Item::Group(g) => self.add_group(line, g),
            Item::Member(m) => self.add_member(m),
            Item::Membership(m) => self.add_membership(line, m),
        }
    }

    fn add_person(&mut self, line: u64, mut p: RawPerson) {
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
            } else if kind == "bsn" {
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

    fn add_group(&mut self, line: u64, g: RawGroup) {
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
    fn add_member(&mut self, m: &RawMember) {
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
    fn add_membership(&mut self, line: u64, m: RawMembership) {
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

    fn finish(mut self) -> Roster {
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
            format: "IMS Enterprise 1.1 XML".into(),
        }
    }
}

/// Role map lookup, case-insensitive, without allocating for lowercase keys.
fn lookup(map: &BTreeMap<String, Role>, key: &str) -> Option<Role> {
    if key.bytes().any(|b| b.is_ascii_uppercase()) {
        map.get(&key.to_ascii_lowercase()).copied()
    } else {
        map.get(key).copied()
    }
}

fn role_status(r: &RawRole) -> Result<Status, String> {
    let s = status_of(r.recstatus())?;
    match r.status() {
        None | Some("1") => Ok(s),
        Some("0") => Ok(Status::ToBeDeleted),
        Some(other) => Err(format!(
            "role status {other:?} is not 1 (active) or 0 (inactive)"
        )),
    }
}

mod split;
#[cfg(test)]
mod tests;
