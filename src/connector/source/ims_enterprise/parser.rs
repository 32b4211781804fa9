//! The event loop: quick-xml events matched against the element paths
//! sisync reads, turned into raw records with their line numbers.

use super::*;

// ---------------------------------------------------------------------------
// Input with line counting and a bound on a single token.

/// 1-based line of a byte offset, by reading the file again (error path only).
pub(super) fn line_at(path: &Path, offset: u64) -> u64 {
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
pub(super) fn bytes_at(path: &Path, offset: u64, n: usize) -> Vec<u8> {
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

pub(super) struct Parser<R> {
    /// The file whose bytes are the ones parsed, looked into again for an
    /// error's position; None when they were decoded from another encoding
    /// (offsets differ): such an error names the event's line.
    pub(super) raw: Option<PathBuf>,
    /// How the file is named in messages.
    pub(super) file: String,
    pub(super) reader: Reader<Counting<R>>,
    /// Line on which the event being handled starts.
    pub(super) event_line: u64,
}

/// Element names the parser cares about, as small numbers (paths match
/// without comparing strings); everything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum El {
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
    pub(super) fn name(self) -> &'static str {
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

pub(super) fn known(local: &[u8]) -> El {
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
pub(super) fn wants_text(stack: &[El]) -> bool {
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
pub(super) fn local_name(name: &[u8]) -> &[u8] {
    match name.iter().position(|&b| b == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

/// The record being read.
pub(super) enum Current {
    None,
    Properties(Properties),
    Person(RawPerson),
    Group(RawGroup),
    Membership(RawMembership),
}

/// Parse the file at `path`, calling `each` as [`Parser::run`] does.
pub(super) fn run_file(path: &Path, each: &mut dyn FnMut(u64, Item<'_>) -> bool) -> Result<()> {
    let f = File::open(path).with_context(|| {
        format!(
            "cannot open IMS Enterprise file {}; check source.path",
            path.display()
        )
    })?;
    // one parser per encoding, chosen once: no dispatch per event
    match Utf8Xml::new(BufReader::with_capacity(256 << 10, f))
        .map_err(|e| anyhow!("{}:1: {e}", path.display()))?
    {
        Utf8Xml::Utf8(input) => Parser::new(path, true, input).run(each),
        Utf8Xml::Decoded(input) => Parser::new(path, false, input).run(each),
    }
}

impl<R: BufRead> Parser<R> {
    fn new(path: &Path, raw: bool, input: R) -> Parser<R> {
        let counting = Counting::buffered(input, 256 << 10);
        let mut reader = Reader::from_reader(counting);
        let c = reader.config_mut();
        c.check_end_names = true;
        c.expand_empty_elements = false;
        c.trim_text_start = false;
        c.trim_text_end = false;
        Parser {
            raw: raw.then(|| path.to_path_buf()),
            file: path.display().to_string(),
            reader,
            event_line: 1,
        }
    }

    /// A fatal error at the event being handled.
    pub(super) fn fatal(&self, what: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("{}:{}: {what}", self.file, self.event_line)
    }

    /// Map a quick-xml error to `file:line: what; what to do`.
    pub(super) fn xml_error(&self, e: quick_xml::Error) -> anyhow::Error {
        let pos = self.reader.error_position();
        let (line, at) = match &self.raw {
            Some(path) => (line_at(path, pos), bytes_at(path, pos, 10)),
            None => (self.event_line, Vec::new()),
        };
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
    pub(super) fn run(&mut self, each: &mut dyn FnMut(u64, Item<'_>) -> bool) -> Result<()> {
        let mut buf = Vec::with_capacity(8 << 10);
        let mut stack: Vec<El> = Vec::with_capacity(16);
        let mut text = String::new();
        let mut cur = Current::None;
        let mut cur_line = 0u64;
        let mut seen_root = false;
        // name of the extension child being read (person/extension/*)
        let mut ext_name = String::new();
        let mut member = RawMember::default();
        // the text of the innermost open element is read at its end
        let mut want_text = false;
        loop {
            self.event_line = self.reader.get_mut().next_event();
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
                Ok(Event::End(_)) => {
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
                // its encoding was read by `Utf8Xml`
                Ok(Event::Decl(_)) | Ok(Event::Comment(_)) | Ok(Event::PI(_)) => {}
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

    pub(super) fn decode_name(&self, e: &BytesStart<'_>) -> Result<String> {
        std::str::from_utf8(e.local_name().as_ref())
            .map(String::from)
            .map_err(|_| self.fatal("element name is not valid UTF-8"))
    }

    /// Attributes of interest, unescaped with the predefined entities only.
    pub(super) fn attr(&self, e: &BytesStart<'_>, want: &[u8]) -> Result<Option<String>> {
        let mut v = String::new();
        Ok(self.attr_into(e, want, &mut v)?.then_some(v))
    }

    /// [`Parser::attr`] into `slot` when the tag carries it (else `slot`
    /// keeps what it holds).
    fn attr_over(&self, e: &BytesStart<'_>, want: &[u8], slot: &mut Option<String>) -> Result<()> {
        if let Some(v) = self.attr(e, want)? {
            *slot = Some(v);
        }
        Ok(())
    }

    /// [`Parser::attr`] into a reused string (left empty when absent): true
    /// when the attribute is there.
    /// Two attributes in one pass over the tag, with the result (and error)
    /// of [`Parser::attr_into`] for `a` and then for `b`.
    pub(super) fn attr_pair(
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

    pub(super) fn attr_into(
        &self,
        e: &BytesStart<'_>,
        want: &[u8],
        out: &mut String,
    ) -> Result<bool> {
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
    pub(super) fn attr_value(
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
    pub(super) fn start(
        &self,
        cur: &mut Current,
        mem: &mut RawMember,
        stack: &[El],
        name: El,
        e: &BytesStart<'_>,
    ) -> Result<()> {
        match cur {
            Current::Person(p) => match (stack, name) {
                ([_], El::Person) => self.attr_over(e, b"recstatus", &mut p.recstatus)?,
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
                ([_], El::Group) => self.attr_over(e, b"recstatus", &mut g.recstatus)?,
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

pub(super) fn take(cur: &mut Current) -> Option<Item<'static>> {
    match std::mem::replace(cur, Current::None) {
        Current::None => None,
        Current::Properties(p) => Some(Item::Properties(p)),
        Current::Person(p) => Some(Item::Person(p)),
        Current::Group(g) => Some(Item::Group(g)),
        Current::Membership(m) => Some(Item::Membership(m)),
    }
}

pub(super) fn set(slot: &mut Option<String>, t: &str) {
    if !t.is_empty() {
        *slot = Some(t.to_string());
    }
}

pub(super) fn set_sourced(slot: &mut Option<SourcedId>, name: El, t: &str) {
    let s = slot.get_or_insert_with(SourcedId::default);
    match name {
        El::Source => s.source = t.to_string(),
        _ => s.id = t.to_string(),
    }
}

/// Handle an end tag: `stack` is the path of the parent, `t` the trimmed
/// text of the element just closed. True when a `member` is complete.
pub(super) fn end(
    cur: &mut Current,
    mem: &mut RawMember,
    stack: &[El],
    name: El,
    t: &str,
    ext: &str,
) -> bool {
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
