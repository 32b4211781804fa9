//! Safe XML input shared by the XML connectors (IMS Enterprise, QTI
//! results): a reader that counts lines and bounds a single token, and the
//! rules for DTDs and entity references. No DTD and no entity other than the
//! five predefined ones and numeric character references is ever expanded.

use std::io::{self, BufRead, BufReader, Read};

use quick_xml::events::BytesRef;

/// Largest single XML token (tag, text run, DOCTYPE) accepted.
pub(crate) const MAX_TOKEN: u64 = 16 << 20;

/// A buffered reader that counts the newlines consumed and refuses a
/// single token larger than [`MAX_TOKEN`].
pub(crate) struct Counting<R> {
    inner: BufReader<R>,
    /// Newlines consumed so far.
    pub newlines: u64,
    /// Bytes consumed since the last event was handed out.
    pub since_event: u64,
}

impl<R: Read> Counting<R> {
    pub fn new(inner: R, capacity: usize) -> Counting<R> {
        Counting {
            inner: BufReader::with_capacity(capacity, inner),
            newlines: 0,
            since_event: 0,
        }
    }

    /// Call before reading each event: the line it starts on.
    pub fn next_event(&mut self) -> u64 {
        self.since_event = 0;
        self.newlines + 1
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.newlines += count_newlines(&buf[..n]);
        self.since_event += n as u64;
        Ok(n)
    }
}

impl<R: Read> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.since_event > MAX_TOKEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a single XML token is larger than 16 MiB; this is not a document sisync reads",
            ));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        let buf = self.inner.buffer();
        self.newlines += count_newlines(&buf[..amt.min(buf.len())]);
        self.since_event += amt as u64;
        self.inner.consume(amt);
    }
}

pub(crate) fn count_newlines(b: &[u8]) -> u64 {
    // byte-wide counters over blocks of at most 255 bytes: the compiler
    // turns this into vector compares and sums
    b.chunks(255)
        .map(|c| c.iter().fold(0u8, |n, &x| n + u8::from(x == b'\n')) as u64)
        .sum()
}

pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A DOCTYPE is refused when it declares anything (internal subset or
/// entity); an external id alone is ignored and never fetched.
pub(crate) fn doctype_refused(d: &[u8]) -> bool {
    d.contains(&b'[') || contains(d, b"ENTITY")
}

/// Append the text an entity or character reference stands for, or say why
/// it is refused.
pub(crate) fn push_ref(text: &mut String, r: &BytesRef<'_>) -> Result<(), String> {
    if r.is_char_ref() {
        return match r.resolve_char_ref() {
            Ok(Some(c)) => {
                text.push(c);
                Ok(())
            }
            _ => Err(format!(
                "bad character reference &{};; fix or re-export the file",
                String::from_utf8_lossy(r)
            )),
        };
    }
    let c = match &**r {
        b"lt" => '<',
        b"gt" => '>',
        b"amp" => '&',
        b"apos" => '\'',
        b"quot" => '"',
        other => {
            return Err(format!(
                "unknown entity reference &{};: sisync never expands entities (no DTD); export the file without custom entities",
                String::from_utf8_lossy(other)
            ));
        }
    };
    text.push(c);
    Ok(())
}
