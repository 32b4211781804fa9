//! The event loop over the EDEX element model: one pass, one reused
//! buffer, records handed out as they end. Works on an EDEXML `<EDEX>`
//! document and on a UWLR answer inside its SOAP envelope alike (elements
//! match by local name and position, not by namespace).

use std::io::Read;

use anyhow::{Result, anyhow};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::connector::xml_input::{Counting, doctype_refused, push_ref};

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
    pub voornamen: Option<String>,
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
        groepen.clear();
        vestiging.clear();
        rollen.clear();
        *self = RawPerson {
            line,
            groepen,
            vestiging,
            rollen,
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

fn local_name(name: &[u8]) -> &[u8] {
    match memchr::memchr(b':', name) {
        Some(i) => &name[i + 1..],
        None => name,
    }
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

/// Stream `input`, handing each record to `each`. `origin` names the input
/// in messages ("file.xml", "https://las/... school 99AA00").
pub(crate) fn parse<R: Read>(input: R, origin: &str, each: &mut dyn FnMut(Rec)) -> Result<Answer> {
    let mut reader = Reader::from_reader(Counting::new(input, 256 << 10));
    {
        let c = reader.config_mut();
        c.check_end_names = true;
        c.expand_empty_elements = false;
    }
    let fatal = |line: u64, what: &dyn std::fmt::Display| anyhow!("{origin}:{line}: {what}");
    let mut buf = Vec::with_capacity(8 << 10);
    let mut depth = 0usize;
    // depth of the open record's element, and its kind
    let mut rec_depth = 0usize;
    let mut cur = Cur::None;
    // the element whose text is being read, at `field_depth`
    let mut field = El::Other;
    let mut field_depth = 0usize;
    // inside a person's `samengestelde_groepen` / `groepen` (leerkracht)
    let mut in_refs = 0usize;
    let mut text = String::new();
    let mut person = RawPerson::default();
    let mut answer = Answer::Data;
    let mut line;
    loop {
        line = reader.get_mut().next_event();
        let ev = reader.read_event_into(&mut buf);
        match ev {
            Err(e) => {
                let pos = reader.error_position();
                return Err(anyhow!(
                    "{origin}: XML is not well-formed at byte {pos} ({e}); fix or re-export it"
                ));
            }
            Ok(Event::Start(ref e)) | Ok(Event::Empty(ref e)) => {
                let empty = matches!(ev, Ok(Event::Empty(_)));
                if !empty {
                    depth += 1;
                }
                // the depth the element is at, as for a start tag
                let d = if empty { depth + 1 } else { depth };
                let name = known(local_name(e.name().as_ref()));
                text.clear();
                match &mut cur {
                    Cur::None => {
                        let key = || attr(e, b"key").map_err(|w| fatal(line, &w));
                        let new = match name {
                            El::School => Cur::School(SchoolBlock::default()),
                            El::Vestiging => Cur::Vestiging(RawVestiging {
                                line,
                                key: key()?,
                                naam: None,
                            }),
                            El::Groep | El::SamengesteldeGroep => Cur::Groep(RawGroep {
                                line,
                                key: key()?,
                                samengesteld: name == El::SamengesteldeGroep,
                                ..RawGroep::default()
                            }),
                            El::Leerling | El::Leerkracht => {
                                person.reset(line);
                                person.key = key()?;
                                person.eckid = attr(e, b"eckid").map_err(|w| fatal(line, &w))?;
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
                            }
                        }
                    }
                    Cur::Leerling | Cur::Leerkracht => {
                        let p = &mut person;
                        if d == rec_depth + 1 {
                            match name {
                                El::Groep => {
                                    attr_into(e, b"key", &mut p.groepen.text)
                                        .map_err(|w| fatal(line, &w))?;
                                    p.groepen.close();
                                }
                                El::Vestiging => {
                                    p.vestiging.clear();
                                    attr_into(e, b"key", &mut p.vestiging)
                                        .map_err(|w| fatal(line, &w))?;
                                }
                                El::SamengesteldeGroepen | El::Groepen if !empty => {
                                    in_refs = d;
                                }
                                _ => {
                                    field = name;
                                    field_depth = d;
                                }
                            }
                        } else if in_refs > 0
                            && d == in_refs + 1
                            && matches!(name, El::Groep | El::SamengesteldeGroep)
                        {
                            attr_into(e, b"key", &mut p.groepen.text)
                                .map_err(|w| fatal(line, &w))?;
                            p.groepen.close();
                        }
                    }
                    _ => {
                        if d == rec_depth + 1 {
                            field = name;
                            field_depth = d;
                        }
                    }
                }
                if empty {
                    field = El::Other;
                }
            }
            Ok(Event::End(_)) => {
                if depth == field_depth && field != El::Other {
                    let t = text.trim();
                    if !t.is_empty() {
                        set_field(&mut cur, &mut person, field, t);
                    }
                    field = El::Other;
                }
                if in_refs > 0 && depth == in_refs {
                    in_refs = 0;
                }
                if depth == rec_depth && !matches!(cur, Cur::None) {
                    finish(&mut cur, &mut person, each, origin)?;
                    rec_depth = 0;
                }
                depth = depth.saturating_sub(1);
                text.clear();
            }
            Ok(Event::Text(ref t)) => {
                if field != El::Other && depth == field_depth {
                    let s = std::str::from_utf8(t)
                        .map_err(|_| fatal(line, &"text is not valid UTF-8; send UTF-8"))?;
                    text.push_str(s);
                }
            }
            Ok(Event::CData(ref t)) => {
                if field != El::Other && depth == field_depth {
                    let s = std::str::from_utf8(t)
                        .map_err(|_| fatal(line, &"text is not valid UTF-8; send UTF-8"))?;
                    text.push_str(s);
                }
            }
            Ok(Event::GeneralRef(ref r)) => {
                // checked even where the text is not kept
                let mut sink = String::new();
                push_ref(&mut sink, r).map_err(|w| fatal(line, &w))?;
                if field != El::Other && depth == field_depth {
                    text.push_str(&sink);
                }
            }
            Ok(Event::DocType(ref d)) => {
                let d: &[u8] = d;
                if doctype_refused(d) {
                    return Err(fatal(
                        line,
                        &"DOCTYPE with an internal DTD subset or <!ENTITY> declaration is refused (sisync never expands entities); export without a DTD",
                    ));
                }
            }
            Ok(Event::Decl(ref d)) => {
                if let Some(Ok(enc)) = d.encoding() {
                    let enc = String::from_utf8_lossy(&enc).to_ascii_lowercase();
                    if enc != "utf-8" && enc != "utf8" {
                        return Err(fatal(
                            line,
                            &format!("encoding {enc:?} is not supported; export as UTF-8"),
                        ));
                    }
                }
            }
            Ok(Event::Comment(_)) | Ok(Event::PI(_)) => {}
            Ok(Event::Eof) => {
                if depth > 0 {
                    return Err(fatal(line, &"the document ends early; it was cut off"));
                }
                return Ok(answer);
            }
        }
        drop(ev);
        buf.clear();
    }
}

/// An attribute by local name, unescaped (predefined entities and
/// character references only), trimmed; None when absent or empty.
fn attr(e: &BytesStart<'_>, want: &[u8]) -> Result<Option<String>, String> {
    let mut v = String::new();
    attr_into(e, want, &mut v)?;
    Ok((!v.is_empty()).then_some(v))
}

/// [`attr`] appended to `out` (nothing when absent or empty), without an
/// allocation of its own.
fn attr_into(e: &BytesStart<'_>, want: &[u8], out: &mut String) -> Result<(), String> {
    for a in e.attributes().with_checks(false) {
        let a = a.map_err(|x| format!("bad attribute ({x}); fix or re-export"))?;
        if local_name(a.key.as_ref()) == want {
            let v = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|x| format!("bad attribute value ({x}); sisync never expands entities"))?;
            out.push_str(v.trim());
            return Ok(());
        }
    }
    Ok(())
}

fn set_field(cur: &mut Cur, p: &mut RawPerson, field: El, t: &str) {
    // allocated only for a field that is kept
    let v = || Some(t.to_string());
    match cur {
        Cur::School(s) => match field {
            El::Schooljaar => s.schooljaar = v(),
            El::Brincode => s.brincode = v(),
            El::Dependancecode => s.dependancecode = v(),
            El::Schoolkey => s.schoolkey = v(),
            _ => {}
        },
        Cur::Vestiging(x) => {
            if field == El::Naam {
                x.naam = v();
            }
        }
        Cur::Groep(g) => match field {
            El::Naam => g.naam = v(),
            El::Jaargroep => g.jaargroep = v(),
            _ => {}
        },
        Cur::Leerling | Cur::Leerkracht => match field {
            El::Achternaam => p.achternaam = v(),
            El::Voorvoegsel => p.voorvoegsel = v(),
            El::Voornamen => p.voornamen = v(),
            El::Roepnaam => p.roepnaam = v(),
            El::Gebruikersnaam => p.gebruikersnaam = v(),
            El::Emailadres => p.emailadres = v(),
            El::Bsn | El::Sofinummer => p.bsn = v(),
            El::Rol => p.rollen.push(t.to_string()),
            _ => {}
        },
        Cur::Fault(s) => {
            if field == El::Faultstring {
                *s = t.chars().take(300).collect();
            }
        }
        Cur::None => {}
    }
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
