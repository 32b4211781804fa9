//! The event loop over the EDEX element model: one pass, one reused
//! buffer, records handed out as they end. Works on an EDEXML `<EDEX>`
//! document and on a UWLR answer inside its SOAP envelope alike (elements
//! match by local name and position, not by namespace).

use std::io::BufRead;

use anyhow::{Result, anyhow};
use quick_xml::Reader;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesStart, Event};

use crate::connector::xml_input::{
    Counting, Twins, Utf8Xml, doctype_refused, local_name, plain, plain_attrs, push_ref,
};

/// The school block of a document.
#[derive(Debug, Clone, Default)]
pub(crate) struct SchoolBlock {
    pub schooljaar: Option<String>,
    pub brincode: Option<String>,
    pub dependancecode: Option<String>,
    pub schoolkey: Option<String>,
}

/// A `leerling` or `leerkracht` as read: scratch space the parser reuses
/// from person to person (the builder takes the fields it keeps). Fields
/// sisync never needs (birth date, gender, ethnicity, countries, weights,
/// postcodes, photo URL, remarks, the leerling's jaargroep) are not even
/// copied out of the parser's buffer.
#[derive(Debug, Default)]
pub(crate) struct RawPerson {
    pub line: u64,
    pub key: Option<String>,
    pub eckid: Option<String>,
    pub achternaam: Option<String>,
    pub voorvoegsel: Option<String>,
    /// Scratch, empty when absent: the builder copies it only for a person
    /// without `roepnaam` (most have one), so it is not made for each.
    pub voornamen: String,
    pub roepnaam: Option<String>,
    pub gebruikersnaam: Option<String>,
    pub emailadres: Option<String>,
    /// `bsn` or `sofinummer` (the BSN's predecessor, same number).
    pub bsn: Option<String>,
    /// `groep` and `samengestelde_groepen` (leerling), `groepen` (leerkracht).
    pub groepen: Keys,
    /// The `vestiging` key; empty when absent.
    pub vestiging: String,
    /// leerkracht `rol` codes.
    pub rollen: Vec<String>,
}

impl RawPerson {
    /// Ready for the next person, keeping the buffers.
    fn reset(&mut self, line: u64) {
        let mut groepen = std::mem::take(&mut self.groepen);
        let mut vestiging = std::mem::take(&mut self.vestiging);
        let mut rollen = std::mem::take(&mut self.rollen);
        let mut voornamen = std::mem::take(&mut self.voornamen);
        groepen.clear();
        vestiging.clear();
        rollen.clear();
        voornamen.clear();
        *self = RawPerson {
            line,
            groepen,
            vestiging,
            rollen,
            voornamen,
            ..RawPerson::default()
        };
    }
}

/// Keys (group references) kept in one string: no allocation per key.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    text: String,
    ends: Vec<usize>,
}

impl Keys {
    fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    /// Add the key at the end of `text` (pushed there by the caller), if
    /// it is not empty.
    fn close(&mut self) {
        if self.text.len() > self.ends.last().copied().unwrap_or(0) {
            self.ends.push(self.text.len());
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let k = &self.text[start..end];
            start = end;
            k
        })
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RawGroep {
    pub line: u64,
    pub key: Option<String>,
    pub naam: Option<String>,
    pub jaargroep: Option<String>,
    pub samengesteld: bool,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RawVestiging {
    pub line: u64,
    pub key: Option<String>,
    pub naam: Option<String>,
}

/// A record as it ends. A person is lent: the builder takes what it keeps.
pub(crate) enum Rec<'a> {
    School(SchoolBlock),
    Vestiging(RawVestiging),
    Groep(RawGroep),
    Leerling(&'a mut RawPerson),
    Leerkracht(&'a mut RawPerson),
}

/// What the document (or answer) held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Answer {
    /// Records (possibly none).
    #[default]
    Data,
    /// `geenwijzigingen`: nothing changed since `laatstontvangengegevens`.
    NoChanges,
    /// `geengegevens`: the LAS has no data for this request.
    NoData,
}

/// Element names the loop tells apart; everything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum El {
    Other,
    School,
    Schooljaar,
    Brincode,
    Dependancecode,
    Schoolkey,
    Vestiging,
    Groep,
    SamengesteldeGroep,
    SamengesteldeGroepen,
    Groepen,
    Leerling,
    Leerkracht,
    Naam,
    Jaargroep,
    Achternaam,
    Voorvoegsel,
    Voornamen,
    Roepnaam,
    Gebruikersnaam,
    Emailadres,
    Bsn,
    Sofinummer,
    Rol,
    GeenWijzigingen,
    GeenGegevens,
    Fault,
    Faultstring,
}

fn known(local: &[u8]) -> El {
    // by length first: one or two comparisons instead of a chain
    match local.len() {
        3 => match local {
            b"bsn" => El::Bsn,
            b"rol" => El::Rol,
            _ => El::Other,
        },
        4 => match local {
            b"naam" => El::Naam,
            _ => El::Other,
        },
        5 => match local {
            b"groep" => El::Groep,
            b"Fault" => El::Fault,
            _ => El::Other,
        },
        6 => match local {
            b"school" => El::School,
            _ => El::Other,
        },
        7 => match local {
            b"groepen" => El::Groepen,
            _ => El::Other,
        },
        8 => match local {
            b"leerling" => El::Leerling,
            b"brincode" => El::Brincode,
            b"roepnaam" => El::Roepnaam,
            _ => El::Other,
        },
        9 => match local {
            b"vestiging" => El::Vestiging,
            b"jaargroep" => El::Jaargroep,
            b"schoolkey" => El::Schoolkey,
            b"voornamen" => El::Voornamen,
            _ => El::Other,
        },
        10 => match local {
            b"leerkracht" => El::Leerkracht,
            b"schooljaar" => El::Schooljaar,
            b"achternaam" => El::Achternaam,
            b"emailadres" => El::Emailadres,
            b"sofinummer" => El::Sofinummer,
            _ => El::Other,
        },
        11 => match local {
            b"voorvoegsel" => El::Voorvoegsel,
            b"faultstring" => El::Faultstring,
            _ => El::Other,
        },
        12 => match local {
            b"geengegevens" => El::GeenGegevens,
            _ => El::Other,
        },
        14 => match local {
            b"dependancecode" => El::Dependancecode,
            b"gebruikersnaam" => El::Gebruikersnaam,
            _ => El::Other,
        },
        15 => match local {
            b"geenwijzigingen" => El::GeenWijzigingen,
            _ => El::Other,
        },
        19 => match local {
            b"samengestelde_groep" => El::SamengesteldeGroep,
            _ => El::Other,
        },
        21 => match local {
            b"samengestelde_groepen" => El::SamengesteldeGroepen,
            _ => El::Other,
        },
        _ => El::Other,
    }
}

/// The record being read (a person's fields are in the parser's scratch
/// [`RawPerson`]).
enum Cur {
    None,
    School(SchoolBlock),
    Vestiging(RawVestiging),
    Groep(RawGroep),
    Leerling,
    Leerkracht,
    Fault(String),
}

impl Cur {
    fn is_person(&self) -> bool {
        matches!(self, Cur::Leerling | Cur::Leerkracht)
    }
}

/// Stream `input`, handing each record to `each`. `origin` names the input
/// in messages ("file.xml", "https://las/... school 99AA00").
///
/// A field (a child element of a record) is read from its own events: its
/// text, CDATA and references gathered into one buffer up to its end tag
/// (the text of an element nested in it left out), checked as UTF-8 and
/// trimmed there; a field sisync never keeps is passed over without being
/// copied or decoded (its references are checked all the same). An error
/// inside a field names the line the field starts on.
pub(crate) fn parse<R: BufRead>(
    input: R,
    origin: &str,
    each: &mut dyn FnMut(Rec),
) -> Result<Answer> {
    // one parser per encoding, chosen once: no dispatch per event
    match Utf8Xml::new(input).map_err(|e| anyhow!("{origin}:1: {e}"))? {
        Utf8Xml::Utf8(input) => parse_utf8(input, origin, each),
        Utf8Xml::Decoded(input) => parse_utf8(input, origin, each),
    }
}

fn parse_utf8<R: BufRead>(input: R, origin: &str, each: &mut dyn FnMut(Rec)) -> Result<Answer> {
    // read in place: a UTF-8 input's own buffer is never copied
    let mut reader = Reader::from_reader(Counting::buffered(input, 256 << 10));
    {
        let c = reader.config_mut();
        c.check_end_names = true;
        c.expand_empty_elements = false;
    }
    let fatal = |line: u64, what: &dyn std::fmt::Display| anyhow!("{origin}:{line}: {what}");
    let not_well_formed = |reader: &Reader<_>, e: quick_xml::Error| {
        let pos = reader.error_position();
        anyhow!("{origin}: XML is not well-formed at byte {pos} ({e}); fix or re-export it")
    };
    let mut buf = Vec::with_capacity(8 << 10);
    // the field being read: its content (when kept), its depth (0: none)
    // and its name (None: not kept)
    let mut field = Vec::with_capacity(256);
    let mut field_at = 0usize;
    let mut keep: Option<El> = None;
    let mut depth = 0usize;
    // depth of the open record's element, and its kind
    let mut rec_depth = 0usize;
    let mut cur = Cur::None;
    // inside a person's `samengestelde_groepen` / `groepen` (leerkracht)
    let mut in_refs = 0usize;
    let mut person = RawPerson::default();
    let mut answer = Answer::Data;
    // the line of the current event, counted only when asked for
    macro_rules! line {
        () => {
            reader.get_mut().line()
        };
    }
    // an error at the current event
    macro_rules! at {
        () => {
            |w: String| fatal(reader.get_mut().line(), &w)
        };
    }
    loop {
        // inside a field, an error names the line the field starts on
        if field_at == 0 {
            reader.get_mut().mark();
        }
        let (e, empty) = match reader.read_event_into(&mut buf) {
            Err(e) => return Err(not_well_formed(&reader, e)),
            Ok(Event::Start(e)) if field_at == 0 => (e, false),
            Ok(Event::Empty(e)) if field_at == 0 => (e, true),
            // an element nested in a field: its text is left out
            Ok(Event::Start(_)) => {
                depth += 1;
                buf.clear();
                continue;
            }
            Ok(Event::Empty(_)) => {
                buf.clear();
                continue;
            }
            Ok(Event::End(_)) => {
                if field_at > 0 && depth == field_at {
                    field_at = 0;
                    if let Some(kept) = keep.take() {
                        let t = std::str::from_utf8(&field)
                            .map_err(|_| at!()(NOT_UTF8.to_string()))?
                            .trim();
                        if !t.is_empty()
                            && let Some(slot) = slot(&mut cur, &mut person, kept)
                        {
                            slot.set(t);
                        }
                    }
                }
                if in_refs > 0 && depth == in_refs {
                    in_refs = 0;
                }
                if depth == rec_depth && !matches!(cur, Cur::None) {
                    finish(&mut cur, &mut person, each, origin)?;
                    rec_depth = 0;
                }
                depth = depth.saturating_sub(1);
                buf.clear();
                continue;
            }
            // a kept field's own text, CDATA and references, as they come;
            // text anywhere else is never kept
            Ok(Event::Text(t)) => {
                if keep.is_some() && depth == field_at {
                    field.extend_from_slice(&t);
                }
                buf.clear();
                continue;
            }
            Ok(Event::CData(t)) => {
                if keep.is_some() && depth == field_at {
                    field.extend_from_slice(&t);
                }
                buf.clear();
                continue;
            }
            Ok(Event::Comment(_)) | Ok(Event::PI(_)) => {
                buf.clear();
                continue;
            }
            Ok(Event::GeneralRef(r)) => {
                let mut c = String::new();
                push_ref(&mut c, &r).map_err(|w| fatal(line!(), &w))?;
                if keep.is_some() && depth == field_at {
                    field.extend_from_slice(c.as_bytes());
                }
                buf.clear();
                continue;
            }
            Ok(Event::DocType(_)) if field_at > 0 => {
                return Err(at!()(
                    "DOCTYPE inside an element is refused; export without a DTD".into(),
                ));
            }
            Ok(Event::DocType(d)) => {
                if doctype_refused(&d) {
                    return Err(fatal(
                        line!(),
                        &"DOCTYPE with an internal DTD subset or <!ENTITY> declaration is refused (sisync never expands entities); export without a DTD",
                    ));
                }
                buf.clear();
                continue;
            }
            // its encoding was read by `Utf8Xml`
            Ok(Event::Decl(_)) => {
                buf.clear();
                continue;
            }
            Ok(Event::Eof) => {
                if depth > 0 {
                    return Err(fatal(line!(), &"the document ends early; it was cut off"));
                }
                return Ok(answer);
            }
        };
        // the depth the element is at
        let d = depth + 1;
        if !empty {
            depth = d;
        }
        // a known name has no prefix: the prefix is looked for only when
        // the whole name is not known
        let name = match known(e.name().as_ref()) {
            El::Other => known(local_name(e.name().as_ref())),
            n => n,
        };
        if matches!(cur, Cur::None) {
            let line = match name {
                El::Vestiging
                | El::Groep
                | El::SamengesteldeGroep
                | El::Leerling
                | El::Leerkracht => {
                    line!()
                }
                _ => 0,
            };
            let new = match name {
                El::School => Cur::School(SchoolBlock::default()),
                El::Vestiging => Cur::Vestiging(RawVestiging {
                    line,
                    key: attr(&e, b"key").map_err(at!())?,
                    naam: None,
                }),
                El::Groep | El::SamengesteldeGroep => Cur::Groep(RawGroep {
                    line,
                    key: attr(&e, b"key").map_err(at!())?,
                    samengesteld: name == El::SamengesteldeGroep,
                    ..RawGroep::default()
                }),
                El::Leerling | El::Leerkracht => {
                    person.reset(line);
                    [person.key, person.eckid] = attrs(&e, [b"key", b"eckid"]).map_err(at!())?;
                    if name == El::Leerling {
                        Cur::Leerling
                    } else {
                        Cur::Leerkracht
                    }
                }
                El::GeenWijzigingen => {
                    answer = Answer::NoChanges;
                    Cur::None
                }
                El::GeenGegevens => {
                    answer = Answer::NoData;
                    Cur::None
                }
                El::Fault => Cur::Fault(String::new()),
                _ => Cur::None,
            };
            if !matches!(new, Cur::None) {
                cur = new;
                rec_depth = d;
                if empty {
                    finish(&mut cur, &mut person, each, origin)?;
                    rec_depth = 0;
                }
            }
        } else if d == rec_depth + 1 {
            let p = &mut person;
            match name {
                El::Groep if cur.is_person() => {
                    attr_into(&e, b"key", &mut p.groepen.text).map_err(at!())?;
                    p.groepen.close();
                }
                El::Vestiging if cur.is_person() => {
                    p.vestiging.clear();
                    attr_into(&e, b"key", &mut p.vestiging).map_err(at!())?;
                }
                El::SamengesteldeGroepen | El::Groepen if cur.is_person() => {
                    if !empty {
                        in_refs = d;
                    }
                }
                _ if empty => {}
                _ => {
                    // a field: its text is gathered up to its end tag (a
                    // field sisync does not keep is only checked)
                    field.clear();
                    field_at = d;
                    keep = slot(&mut cur, p, name).is_some().then_some(name);
                }
            }
        } else if in_refs > 0
            && d == in_refs + 1
            && cur.is_person()
            && matches!(name, El::Groep | El::SamengesteldeGroep)
        {
            let g = &mut person.groepen;
            attr_into(&e, b"key", &mut g.text).map_err(at!())?;
            g.close();
        }
        // the event borrows `buf`
        drop(e);
        buf.clear();
    }
}

const NOT_UTF8: &str = "text is not valid UTF-8; send UTF-8";

/// An attribute by local name, unescaped (predefined entities and
/// character references only), trimmed; None when absent or empty.
fn attr(e: &BytesStart<'_>, want: &[u8]) -> Result<Option<String>, String> {
    let [v] = attrs(e, [want])?;
    Ok(v)
}

/// [`attr`] of several names, in one pass over the attributes.
fn attrs<const N: usize>(
    e: &BytesStart<'_>,
    want: [&[u8]; N],
) -> Result<[Option<String>; N], String> {
    let mut out = [const { None }; N];
    if let Some(plain) = quick_attrs(e.attributes_raw(), want) {
        for (o, v) in out.iter_mut().zip(plain) {
            *o = v.map(String::from);
        }
        return Ok(out);
    }
    attrs_full(e, want)
}

/// [`attrs`] through quick-xml's attribute iterator: any tag.
fn attrs_full<const N: usize>(
    e: &BytesStart<'_>,
    want: [&[u8]; N],
) -> Result<[Option<String>; N], String> {
    let mut out = [const { None }; N];
    let mut found = 0;
    for a in e.attributes().with_checks(false) {
        let a = a.map_err(|x| format!("bad attribute ({x}); fix or re-export"))?;
        let key = local_name(a.key.as_ref());
        if let Some(i) = want.iter().position(|w| *w == key) {
            let mut v = String::new();
            push_value(&a, &mut v)?;
            out[i] = (!v.is_empty()).then_some(v);
            found += 1;
            if found == N {
                break;
            }
        }
    }
    Ok(out)
}

/// [`attr`] appended to `out` (nothing when absent or empty), without an
/// allocation of its own.
fn attr_into(e: &BytesStart<'_>, want: &[u8], out: &mut String) -> Result<(), String> {
    if let Some(v) = only_attr(e.attributes_raw(), want) {
        // plain ASCII: byte by byte, no UTF-8 check to call
        out.extend(v.iter().map(|&b| char::from(b)));
        return Ok(());
    }
    if let Some([v]) = quick_attrs(e.attributes_raw(), [want]) {
        out.push_str(v.unwrap_or_default());
        return Ok(());
    }
    for a in e.attributes().with_checks(false) {
        let a = a.map_err(|x| format!("bad attribute ({x}); fix or re-export"))?;
        if local_name(a.key.as_ref()) == want {
            return push_value(&a, out);
        }
    }
    Ok(())
}

/// The form of nearly every group reference, ` key="…"` and nothing else,
/// its value plain as in [`quick_attrs`] (ASCII), read without its loop
/// (the reader meets one such tag for every membership); None otherwise.
fn only_attr<'a>(raw: &'a [u8], want: &[u8]) -> Option<&'a [u8]> {
    let value = raw
        .strip_prefix(b" ")?
        .strip_prefix(want)?
        .strip_prefix(b"=\"")?
        .strip_suffix(b"\"")?;
    if value.first() == Some(&b' ') || value.last() == Some(&b' ') || !plain(value, b'"') {
        return None;
    }
    Some(value)
}

/// The common case of [`attrs`], straight from the tag (quick-xml's
/// attribute iterator costs more than the rest of a group reference
/// together): [`plain_attrs`], a name given twice taken as [`attrs`]
/// takes it, empty as absent. None: read the full way.
fn quick_attrs<'a, const N: usize>(
    raw: &'a [u8],
    want: [&[u8]; N],
) -> Option<[Option<&'a str>; N]> {
    plain_attrs(raw, want, Twins::Counted).map(|v| v.map(|v| v.filter(|v| !v.is_empty())))
}

/// An attribute's value, normalised and trimmed, appended to `out`.
fn push_value(a: &Attribute<'_>, out: &mut String) -> Result<(), String> {
    // nothing to normalise (no reference, no tab or line end): as it is
    if !a
        .value
        .iter()
        .fold(false, |bad, &b| bad | (b < b' ') | (b == b'&'))
    {
        let v = std::str::from_utf8(&a.value)
            .map_err(|_| "attribute value is not valid UTF-8; send UTF-8".to_string())?;
        out.push_str(v.trim());
        return Ok(());
    }
    let v = a
        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
        .map_err(|x| format!("bad attribute value ({x}); sisync never expands entities"))?;
    out.push_str(v.trim());
    Ok(())
}

/// Where a field of the record being read goes.
enum Slot<'a> {
    One(&'a mut Option<String>),
    /// scratch text, its buffer kept from record to record
    Scratch(&'a mut String),
    /// leerkracht `rol` codes, as many as there are
    Rol(&'a mut Vec<String>),
    /// a SOAP fault's `faultstring`, shortened
    Fault(&'a mut String),
}

impl Slot<'_> {
    fn set(self, t: &str) {
        match self {
            Slot::One(v) => *v = Some(t.to_string()),
            Slot::Scratch(v) => {
                v.clear();
                v.push_str(t);
            }
            Slot::Rol(v) => v.push(t.to_string()),
            Slot::Fault(v) => *v = t.chars().take(300).collect(),
        }
    }
}

/// The slot for field `name` of the record being read; None for a field
/// sisync does not keep.
fn slot<'a>(cur: &'a mut Cur, p: &'a mut RawPerson, name: El) -> Option<Slot<'a>> {
    let one = match (cur, name) {
        (Cur::School(s), El::Schooljaar) => &mut s.schooljaar,
        (Cur::School(s), El::Brincode) => &mut s.brincode,
        (Cur::School(s), El::Dependancecode) => &mut s.dependancecode,
        (Cur::School(s), El::Schoolkey) => &mut s.schoolkey,
        (Cur::Vestiging(v), El::Naam) => &mut v.naam,
        (Cur::Groep(g), El::Naam) => &mut g.naam,
        (Cur::Groep(g), El::Jaargroep) => &mut g.jaargroep,
        (Cur::Leerling | Cur::Leerkracht, field) => match field {
            El::Achternaam => &mut p.achternaam,
            El::Voorvoegsel => &mut p.voorvoegsel,
            El::Voornamen => return Some(Slot::Scratch(&mut p.voornamen)),
            El::Roepnaam => &mut p.roepnaam,
            El::Gebruikersnaam => &mut p.gebruikersnaam,
            El::Emailadres => &mut p.emailadres,
            El::Bsn | El::Sofinummer => &mut p.bsn,
            El::Rol => return Some(Slot::Rol(&mut p.rollen)),
            _ => return None,
        },
        (Cur::Fault(s), El::Faultstring) => return Some(Slot::Fault(s)),
        _ => return None,
    };
    Some(Slot::One(one))
}

fn finish(
    cur: &mut Cur,
    person: &mut RawPerson,
    each: &mut dyn FnMut(Rec),
    origin: &str,
) -> Result<()> {
    match std::mem::replace(cur, Cur::None) {
        Cur::None => {}
        Cur::School(s) => each(Rec::School(s)),
        Cur::Vestiging(v) => each(Rec::Vestiging(v)),
        Cur::Groep(g) => each(Rec::Groep(g)),
        Cur::Leerling => each(Rec::Leerling(person)),
        Cur::Leerkracht => each(Rec::Leerkracht(person)),
        Cur::Fault(s) => {
            return Err(anyhow!("{origin}: SOAP fault: {s}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod plain_attributes {
    use super::*;

    fn start(tag: &str) -> BytesStart<'static> {
        match Reader::from_str(tag).read_event().unwrap() {
            Event::Start(e) | Event::Empty(e) => e.into_owned(),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn the_quick_path_reads_what_the_full_one_reads() {
        for (tag, plain) in [
            (r#"<groep key="G1"/>"#, true),
            (
                r#"<leerling key="L1" eckid="https://ketenid.nl/201703/ab">"#,
                true,
            ),
            (r#"<leerling eckid='e' x:key='L1' other="o">"#, true),
            (r#"<leerling  key=""   eckid="e" >"#, true),
            ("<leerling\n\tkey=\"L1\"\r\n>", true),
            (r#"<leerling key="L1" key="L2" eckid="e">"#, true),
            (r#"<groep other="x"/>"#, true),
            (r#"<groep key="G1" other="x"/>"#, true),
            (r#"<groep key="G1" />"#, true),
            (r#"<groep x:key="G1"/>"#, true),
            (r#"<groep key="a" b="c"/>"#, true),
            (r#"<groep/>"#, true),
            (r#"<groep key = "G1"/>"#, false),
            (r#"<groep key=" G1 "/>"#, false),
            (r#"<groep key="G&amp;1"/>"#, false),
            (r#"<groep key="G&#x31;"/>"#, false),
            ("<groep key=\"G\t1\"/>", false),
            (r#"<groep key="Gé"/>"#, false),
            (r#"<groep key="G1"other="x"/>"#, false),
            (r#"<groep key=G1/>"#, false),
            (r#"<groep key/>"#, false),
        ] {
            let e = start(tag);
            let quick = quick_attrs(e.attributes_raw(), [b"key".as_slice(), b"eckid"]);
            assert_eq!(quick.is_some(), plain, "{tag}");
            let full = attrs_full(&e, [b"key", b"eckid"]);
            assert_eq!(attrs(&e, [b"key", b"eckid"]), full, "{tag}");
            if let Some(q) = quick {
                let q = q.map(|v| v.map(String::from));
                assert_eq!(Ok(q), full, "{tag}");
            }
            let (mut a, mut b) = (String::new(), String::new());
            let fast = attr_into(&e, b"key", &mut a);
            let slow = attrs_full(&e, [b"key"]).map(|[v]| {
                b.push_str(v.as_deref().unwrap_or_default());
            });
            assert_eq!(fast.is_ok(), slow.is_ok(), "{tag}");
            assert_eq!(a, b, "{tag}");
        }
    }
}

#[cfg(test)]
mod known_names {
    use super::*;

    #[test]
    fn every_name_is_known_by_its_own_length() {
        for (name, el) in [
            ("school", El::School),
            ("schooljaar", El::Schooljaar),
            ("brincode", El::Brincode),
            ("dependancecode", El::Dependancecode),
            ("schoolkey", El::Schoolkey),
            ("vestiging", El::Vestiging),
            ("groep", El::Groep),
            ("samengestelde_groep", El::SamengesteldeGroep),
            ("samengestelde_groepen", El::SamengesteldeGroepen),
            ("groepen", El::Groepen),
            ("leerling", El::Leerling),
            ("leerkracht", El::Leerkracht),
            ("naam", El::Naam),
            ("jaargroep", El::Jaargroep),
            ("achternaam", El::Achternaam),
            ("voorvoegsel", El::Voorvoegsel),
            ("voornamen", El::Voornamen),
            ("roepnaam", El::Roepnaam),
            ("gebruikersnaam", El::Gebruikersnaam),
            ("emailadres", El::Emailadres),
            ("bsn", El::Bsn),
            ("sofinummer", El::Sofinummer),
            ("rol", El::Rol),
            ("geenwijzigingen", El::GeenWijzigingen),
            ("geengegevens", El::GeenGegevens),
            ("Fault", El::Fault),
            ("faultstring", El::Faultstring),
        ] {
            assert_eq!(known(name.as_bytes()), el, "{name}");
        }
        assert_eq!(known(b"geboortedatum"), El::Other);
        assert_eq!(known(b"Groep"), El::Other);
    }
}
