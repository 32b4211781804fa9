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
        let start = i;
        while raw
            .get(i)
            .is_some_and(|&b| !matches!(b, b'=' | b'"' | b'\'' | b'<' | b'>') && !is_space(b))
        {
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
        let Some(n) = want.iter().position(|w| *w == local_name(name)) else {
            continue;
        };
        if twins == Twins::FirstChecked && out[n].is_some() {
            continue;
        }
        let edged = value
            .first()
            .zip(value.last())
            .is_some_and(|(&f, &l)| f == b' ' || l == b' ');
        if edged || !plain(value, quote) {
            return None;
        }
        // ASCII without control characters: valid UTF-8
        out[n] = Some(std::str::from_utf8(value).ok()?);
        found += 1;
        // (a first-checked twin was skipped above: N distinct names)
        if found == N {
            return Some(out);
        }
    }
}

/// ASCII without control characters, references or the `quote` that
/// would end the value: nothing to normalise. (A fold, not `any`, so
/// that it runs over many bytes at once.)
pub(crate) fn plain(value: &[u8], quote: u8) -> bool {
    !value.iter().fold(false, |bad, &b| {
        bad | !(b' '..0x7f).contains(&b) | (b == b'&') | (b == quote)
    })
}

/// A name without its prefix (after the first `:`, as quick-xml's
/// `QName::local_name`).
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
