//! Attributes of the plain form read straight from a tag (issue 17):
//! quick-xml's attribute iterator (and its duplicate check) costs more
//! than the rest of a small tag together, and nearly every tag the XML
//! readers look into is `name="value"` pairs with nothing to normalise.
//! Anything else is left to the iterator, which also reports what is wrong.

/// How a name that comes again is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Twins {
    /// As a loop without checks that stops after N hits takes it: every
    /// hit counts, the last one read is kept (the UWLR reader).
    Counted,
    /// The first one is kept, and a qualified name given twice before the
    /// last wanted one is not read here (quick-xml's checked iterator
    /// refuses it; the QTI reader).
    FirstChecked,
}

/// Most attributes before the last wanted one that [`Twins::FirstChecked`]
/// checks for twins; a tag with more is read the full way.
const CHECKED: usize = 16;

/// The wanted attributes (by local name) of a tag's raw attributes
/// (`BytesStart::attributes_raw`), when each pair up to the last wanted
/// one is `name="value"` (or `'value'`) apart by XML white space and each
/// wanted value is plain: ASCII without control characters or references,
/// no space at either end (nothing to normalise, trim or check). An empty
/// value is `Some("")`. None for anything else: the caller then reads the
/// attributes with quick-xml's iterator.
pub(crate) fn plain_attrs<'a, const N: usize>(
    raw: &'a [u8],
    want: [&[u8]; N],
    twins: Twins,
) -> Option<[Option<&'a str>; N]> {
    let mut out = [None; N];
    let mut seen: [&[u8]; CHECKED] = [&[]; CHECKED];
    let (mut i, mut found, mut pairs) = (0, 0, 0);
    loop {
        while raw.get(i).is_some_and(|&b| is_space(b)) {
            i += 1;
        }
        if i == raw.len() {
            return Some(out);
        }
        // the name, and where its local part starts (after the first `:`)
        let start = i;
        let mut local = start;
        while let Some(&b) = raw.get(i) {
            if matches!(b, b'=' | b'"' | b'\'' | b'<' | b'>') || is_space(b) {
                break;
            }
            if b == b':' && local == start {
                local = i + 1;
            }
            i += 1;
        }
        let name = &raw[start..i];
        let quote = *raw.get(i + 1)?;
        if name.is_empty() || raw[i] != b'=' || !matches!(quote, b'"' | b'\'') {
            return None;
        }
        let from = i + 2;
        let len = memchr::memchr(quote, &raw[from..])?;
        let value = &raw[from..from + len];
        i = from + len + 1;
        if raw.get(i).is_some_and(|&b| !is_space(b)) {
            return None;
        }
        if twins == Twins::FirstChecked {
            if pairs == CHECKED || seen[..pairs].contains(&name) {
                return None;
            }
            seen[pairs] = name;
            pairs += 1;
        }
        let local = &raw[local..start + name.len()];
        let Some(n) = want.iter().position(|w| *w == local) else {
            continue;
        };
        if twins == Twins::FirstChecked && out[n].is_some() {
            continue;
        }
        let edged = value
            .first()
            .zip(value.last())
            .is_some_and(|(&f, &l)| f == b' ' || l == b' ');
        if edged {
            return None;
        }
        out[n] = Some(plain_text(value, quote)?);
        found += 1;
        // (a first-checked twin was skipped above: N distinct names)
        if found == N {
            return Some(out);
        }
    }
}

/// A [`plain`] value as text; None when it is not plain.
fn plain_text(value: &[u8], quote: u8) -> Option<&str> {
    if !plain(value, quote) {
        return None;
    }
    // SAFETY: `plain` admits only the bytes 0x20..0x7f, ASCII, which is
    // valid UTF-8 (`str::from_utf8` checked it again, at about a hundred
    // instructions a value: 3 % of the QTI reader's)
    Some(unsafe { std::str::from_utf8_unchecked(value) })
}

/// ASCII without control characters, references or the `quote` that
/// would end the value: nothing to normalise. (A fold, not `any`, so
/// that it runs over many bytes at once.)
#[inline]
pub(crate) fn plain(value: &[u8], quote: u8) -> bool {
    !value.iter().fold(false, |bad, &b| {
        bad | !(b' '..0x7f).contains(&b) | (b == b'&') | (b == quote)
    })
}

/// A name without its prefix (after the first `:`, as quick-xml's
/// `QName::local_name`).
#[inline]
pub(crate) fn local_name(name: &[u8]) -> &[u8] {
    // names are short: a plain scan beats memchr's setup
    match name.iter().position(|&b| b == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

/// XML's white space.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What quick-xml's checked iterator gives for the first attribute of
    /// each wanted local name (None: an error before the last one found).
    fn checked<const N: usize>(raw: &str, want: [&[u8]; N]) -> Option<[Option<String>; N]> {
        let tag = format!("<t {raw}>");
        let mut r = quick_xml::Reader::from_str(&tag);
        let quick_xml::events::Event::Start(e) = r.read_event().ok()? else {
            return None;
        };
        let mut out: [Option<String>; N] = std::array::from_fn(|_| None);
        for a in e.attributes() {
            let a = a.ok()?;
            if let Some(i) = want.iter().position(|w| *w == local_name(a.key.as_ref())) {
                if out[i].is_none() {
                    let v = a
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .ok()?;
                    out[i] = Some(v.into_owned());
                }
            }
            if out.iter().all(Option::is_some) {
                break;
            }
        }
        Some(out)
    }

    #[test]
    fn plain_pairs_are_read_and_the_rest_left_to_the_iterator() {
        fn got(raw: &str) -> Option<[Option<&str>; 2]> {
            plain_attrs(
                raw.as_bytes(),
                [b"identifier", b"sourceID"],
                Twins::FirstChecked,
            )
        }
        assert_eq!(
            got(r#"sourceID="https://b" q:identifier='S-1'"#),
            Some([Some("S-1"), Some("https://b")])
        );
        assert_eq!(got(r#"identifier="" other="é""#), Some([Some(""), None]));
        // a reference, a tab, a space at an end, non-ASCII: the full way
        for raw in [
            r#"identifier="a&amp;b""#,
            "identifier=\"a\tb\"",
            r#"identifier=" a""#,
            r#"identifier="é""#,
            r#"identifier="a"sourceID="b""#,
            r#"x="1" x="2" identifier="a""#,
        ] {
            assert_eq!(got(raw), None, "{raw}");
        }
        // a twin after the last wanted one is not looked at
        assert_eq!(
            got(r#"identifier="a" sourceID="b" x="1" x="2""#),
            Some([Some("a"), Some("b")])
        );
        // counted: every hit counts, the last one read is kept
        assert_eq!(
            plain_attrs(br#"key="1" key="2""#, [b"key"], Twins::Counted),
            Some([Some("1")])
        );
        assert_eq!(
            plain_attrs(br#"key="1" key="2""#, [b"key", b"x"], Twins::Counted),
            Some([Some("2"), None])
        );
    }

    proptest! {
        /// Whatever the quick way reads is what the checked iterator reads.
        #[test]
        fn the_quick_way_agrees_with_the_checked_iterator(
            pairs in proptest::collection::vec(
                (
                    prop::sample::select(vec!["id", "a:id", "src", "b:src", "x", "a:x", "xmlns:a"]),
                    "[a-c &;é\t<>]{0,4}",
                    prop::sample::select(vec![" ", "  ", "\n", ""]),
                ),
                0..6,
            )
        ) {
            let raw: String = pairs
                .iter()
                .map(|(n, v, sep)| format!("{sep}{n}=\"{}\"", v.replace('<', "&lt;")))
                .collect();
            let want: [&[u8]; 2] = [b"id", b"src"];
            if let Some(quick) = plain_attrs(raw.as_bytes(), want, Twins::FirstChecked) {
                let full = checked(&raw, want);
                prop_assert_eq!(
                    Some(quick.map(|v| v.map(String::from))),
                    full,
                    "{}",
                    raw
                );
            }
        }
    }
}
