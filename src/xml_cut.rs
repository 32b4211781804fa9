//! Walking a kept or delivered XML document to cut whole elements out of
//! it byte for byte (erasure in EDEXML drops and in kept QTI files; the
//! cutting itself is `xml_input::cut_out`): every tag with its depth and
//! byte offsets, the text between them untouched.

use quick_xml::events::{BytesStart, Event};

/// A tag met on the walk. `depth` counts the element's ancestors (the
/// root element is at 0).
pub(crate) enum Tag<'a, 'e> {
    /// A start tag, or an empty element.
    Open(Open<'a, 'e>),
    /// An end tag: the element's local name, and the offset after the tag.
    Close {
        name: &'e [u8],
        depth: usize,
        end: usize,
    },
}

/// A start tag on the walk.
pub(crate) struct Open<'a, 'e> {
    pub e: &'e BytesStart<'a>,
    pub depth: usize,
    /// The offset the tag starts at.
    pub start: usize,
    /// For an empty element, the offset after it.
    pub empty_end: Option<usize>,
}

/// Hand every tag of `bytes` to `on`, in document order; None when the
/// document does not parse.
pub(crate) fn walk(bytes: &[u8], mut on: impl FnMut(Tag<'_, '_>)) -> Option<()> {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut depth = 0usize;
    loop {
        let start = reader.buffer_position() as usize;
        let ev = reader.read_event().ok()?;
        let after = reader.buffer_position() as usize;
        match ev {
            Event::Eof => return Some(()),
            Event::Start(e) => {
                on(Tag::Open(Open {
                    e: &e,
                    depth,
                    start,
                    empty_end: None,
                }));
                depth += 1;
            }
            Event::Empty(e) => on(Tag::Open(Open {
                e: &e,
                depth,
                start,
                empty_end: Some(after),
            })),
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                on(Tag::Close {
                    name: e.local_name().into_inner(),
                    depth,
                    end: after,
                });
            }
            _ => {}
        }
    }
}
