//! Erasure in delivered EDEXML files: the person's `leerling` or
//! `leerkracht` element (with its group references) is cut out byte for
//! byte; the rest stays as delivered.

use std::collections::BTreeSet;

use quick_xml::events::Event;

/// The document without the `leerling`/`leerkracht` elements whose `key`
/// or `eckid` is one of `ids`, and how many went; `(None, n)` when no
/// leerling would be left (EDEXML requires one: the file goes whole);
/// None when it does not parse.
pub fn without_persons(bytes: &[u8], ids: &BTreeSet<String>) -> Option<(Option<Vec<u8>>, usize)> {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let mut students = 0usize;
    let mut students_cut = 0usize;
    let mut depth = 0usize;
    // (start offset, depth, theirs, is a leerling)
    let mut open: Option<(usize, usize, bool, bool)> = None;
    loop {
        let before = reader.buffer_position() as usize;
        let ev = reader.read_event().ok()?;
        let empty = matches!(ev, Event::Empty(_));
        match ev {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => {
                let tag = e.local_name();
                let person = tag.as_ref() == b"leerling" || tag.as_ref() == b"leerkracht";
                // EDEX / leerlingen|leerkrachten / leerling|leerkracht
                if person && depth == 2 && open.is_none() {
                    let is_student = tag.as_ref() == b"leerling";
                    students += usize::from(is_student);
                    let theirs = e.attributes().flatten().any(|a| {
                        let k = a.key.local_name();
                        (k.as_ref() == b"key" || k.as_ref() == b"eckid")
                            && a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                .is_ok_and(|v| ids.contains(v.trim()))
                    });
                    if empty {
                        if theirs {
                            cuts.push((before, reader.buffer_position() as usize));
                            students_cut += usize::from(is_student);
                        }
                    } else {
                        open = Some((before, depth + 1, theirs, is_student));
                    }
                }
                if !empty {
                    depth += 1;
                }
            }
            Event::End(_) => {
                if let Some((start, d, theirs, is_student)) = open {
                    if d == depth {
                        if theirs {
                            cuts.push((start, reader.buffer_position() as usize));
                            students_cut += usize::from(is_student);
                        }
                        open = None;
                    }
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
    }
    Some(crate::xml_input::cut_out(
        bytes,
        &cuts,
        students_cut == students,
    ))
}
