//! Erasure in delivered EDEXML files: the person's `leerling` or
//! `leerkracht` element (with its group references) is cut out byte for
//! byte; the rest stays as delivered.

use std::collections::BTreeSet;

use crate::xml_cut::Tag;

/// The document without the `leerling`/`leerkracht` elements whose `key`
/// or `eckid` is one of `ids`, and how many went; `(None, n)` when no
/// leerling would be left (EDEXML requires one: the file goes whole);
/// None when it does not parse.
pub fn without_persons(bytes: &[u8], ids: &BTreeSet<String>) -> Option<(Option<Vec<u8>>, usize)> {
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let mut students = 0usize;
    let mut students_cut = 0usize;
    // (start offset, theirs, is a leerling) of the person element open now
    let mut open: Option<(usize, bool, bool)> = None;
    let mut cut = |start, end, is_student: bool| {
        cuts.push((start, end));
        students_cut += usize::from(is_student);
    };
    crate::xml_cut::walk(bytes, |tag| match tag {
        Tag::Open(o) => {
            let tag = o.e.local_name();
            let person = tag.as_ref() == b"leerling" || tag.as_ref() == b"leerkracht";
            // EDEX / leerlingen|leerkrachten / leerling|leerkracht
            if person && o.depth == 2 && open.is_none() {
                let is_student = tag.as_ref() == b"leerling";
                students += usize::from(is_student);
                let theirs = o.e.attributes().flatten().any(|a| {
                    let k = a.key.local_name();
                    (k.as_ref() == b"key" || k.as_ref() == b"eckid")
                        && a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .is_ok_and(|v| ids.contains(v.trim()))
                });
                match o.empty_end {
                    Some(end) if theirs => cut(o.start, end, is_student),
                    Some(_) => {}
                    None => open = Some((o.start, theirs, is_student)),
                }
            }
        }
        Tag::Close { depth: 2, end, .. } => {
            if let Some((start, true, is_student)) = open.take() {
                cut(start, end, is_student);
            }
        }
        Tag::Close { .. } => {}
    })?;
    Some(crate::xml_input::cut_out(
        bytes,
        &cuts,
        students_cut == students,
    ))
}
