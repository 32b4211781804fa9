//! Safe XML input shared by the XML connectors (IMS Enterprise, QTI
//! results): a reader that counts lines and bounds a single token, and the
//! rules for DTDs and entity references. No DTD and no entity other than the
//! five predefined ones and numeric character references is ever expanded.

use std::io::{self, BufRead, Read};

use quick_xml::events::BytesRef;

mod encoding;
mod plain_attrs;
pub(crate) use encoding::Utf8Xml;
pub(crate) use plain_attrs::{Twins, local_name, plain, plain_attrs};

/// Largest single XML token (tag, text run, DOCTYPE) accepted.
pub(crate) const MAX_TOKEN: u64 = 16 << 20;

/// A reader over a buffered input that counts lines and refuses a single
/// token larger than [`MAX_TOKEN`] (checked each time the reader moves on to
/// the next window of the input). Lines are counted lazily, in bulk, when
/// one is asked for (a record's start, an error), not token by token.
///
/// The input's own buffer is read in place, never copied: an answer held in
/// memory, a live answer's chunks and a file's `BufReader` are served in
/// windows of at most `window` bytes (the token limit is checked, and the
/// lines before are counted, at each window's end).
pub(crate) struct Counting<R> {
    inner: R,
    window: usize,
    /// Length of the input's current buffer (`inner.fill_buf()`), which is
    /// consumed from `inner` only when all of it was read.
    chunk: usize,
    /// Unread bytes of the current window are `chunk[pos..end]`.
    pos: usize,
    end: usize,
    /// Newlines in the input before `chunk[counted]` (`counted <= pos`).
    newlines: u64,
    counted: usize,
    /// Where in the chunk the current event starts (None once the reader
    /// moved on to the next window: its line is then `event_line`).
    event_at: Option<usize>,
    event_line: u64,
    /// Bytes consumed since the current event started.
    since_event: u64,
}

impl<R: BufRead> Counting<R> {
    /// Over an input that holds its own buffer (a slice, a `BufReader`, a
    /// stream of chunks), read in place in windows of `window` bytes.
    pub fn buffered(inner: R, window: usize) -> Counting<R> {
        Counting {
            inner,
            window: window.max(64),
            chunk: 0,
            pos: 0,
            end: 0,
            newlines: 0,
            counted: 0,
            event_at: Some(0),
            event_line: 1,
            since_event: 0,
        }
    }

    /// Call before reading each event: the line it starts on.
    pub fn next_event(&mut self) -> u64 {
        self.mark();
        self.line()
    }

    /// Call before reading each event instead of [`Counting::next_event`]
    /// when its line is asked for only now and then, with
    /// [`Counting::line`].
    pub fn mark(&mut self) {
        self.since_event = 0;
        self.event_at = Some(self.pos);
    }

    /// The line the current event (since [`Counting::mark`]) starts on.
    pub fn line(&mut self) -> u64 {
        match self.event_at {
            Some(at) => {
                self.count_to(at);
                self.newlines + 1
            }
            None => self.event_line,
        }
    }

    /// Count the newlines of the current chunk up to `at`.
    fn count_to(&mut self, at: usize) {
        if at > self.counted {
            // the chunk is not consumed from `inner` yet: no I/O here
            if let Ok(chunk) = self.inner.fill_buf() {
                self.newlines += count_newlines(&chunk[self.counted..at]);
            }
            self.counted = at;
        }
    }

    /// The current window is read: on to the next one, in the same chunk
    /// or in the input's next.
    #[inline(never)]
    fn advance(&mut self) -> io::Result<()> {
        if self.since_event > MAX_TOKEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a single XML token is larger than 16 MiB; this is not a document sisync reads",
            ));
        }
        // the window is left behind: count what is in it
        if self.event_at.is_some() {
            self.event_line = self.line();
            self.event_at = None;
        }
        self.count_to(self.pos);
        if self.pos == self.chunk {
            self.inner.consume(self.chunk);
            (self.chunk, self.pos, self.end, self.counted) = (0, 0, 0, 0);
            self.chunk = loop {
                match self.inner.fill_buf() {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r?.len(),
                }
            };
        }
        self.end = self.chunk.min(self.pos + self.window);
        Ok(())
    }
}

impl<R: BufRead> Read for Counting<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, out)
    }
}

/// `Read::read` of a reader that is read through its own buffer.
pub(crate) fn read_buffered(r: &mut impl BufRead, out: &mut [u8]) -> io::Result<usize> {
    let n = {
        let avail = r.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        n
    };
    r.consume(n);
    Ok(n)
}

impl<R: BufRead> BufRead for Counting<R> {
    // called for every few bytes: inlined, the advance kept out of line
    #[inline]
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.end {
            self.advance()?;
        }
        let (pos, end) = (self.pos, self.end);
        // the chunk `advance` saw, not consumed yet: no I/O
        Ok(&self.inner.fill_buf()?[pos..end])
    }

    #[inline]
    fn consume(&mut self, amt: usize) {
        let amt = amt.min(self.end - self.pos);
        self.pos += amt;
        self.since_event += amt as u64;
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

/// `bytes` without the element spans `cuts` (start, end; in order, not
/// overlapping), byte for byte, and how many went: `(None, n)` when
/// `nothing_left` (the caller knows the document would be empty of what it
/// is for). The line break after a cut element goes with it.
pub(crate) fn cut_out(
    bytes: &[u8],
    cuts: &[(usize, usize)],
    nothing_left: bool,
) -> (Option<Vec<u8>>, usize) {
    if cuts.is_empty() {
        return (Some(bytes.to_vec()), 0);
    }
    if nothing_left {
        return (None, cuts.len());
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    for &(s, e) in cuts {
        out.extend_from_slice(&bytes[at..s]);
        at = e;
        if bytes.get(at) == Some(&b'\n') {
            at += 1;
        }
    }
    out.extend_from_slice(&bytes[at..]);
    (Some(out), cuts.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quick_xml::Reader;
    use quick_xml::events::Event;
    use std::io::BufReader;

    /// The line of every start tag, as the reader counts it.
    fn start_lines<R: BufRead>(counting: Counting<R>) -> Vec<u64> {
        let mut r = Reader::from_reader(counting);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        loop {
            r.get_mut().mark();
            match r.read_event_into(&mut buf).unwrap() {
                Event::Start(e) if e.name().as_ref() == b"e" => got.push(r.get_mut().line()),
                Event::Eof => break,
                _ => {}
            }
            buf.clear();
        }
        got
    }

    /// The line of every start tag, counted lazily over windows and chunks
    /// far smaller than the document (tags straddle them), is the line the
    /// tag is on.
    #[test]
    fn lines_are_counted_lazily_across_refills() {
        let mut doc = String::from("<r>\n");
        for i in 0..200 {
            doc.push_str(&"\n".repeat(i % 3));
            doc.push_str(&format!("  <e n=\"{i}\"\n   x=\"y\">t\n</e>\n"));
        }
        doc.push_str("</r>\n");
        let want: Vec<u64> = doc
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains("<e "))
            .map(|(n, _)| n as u64 + 1)
            .collect();
        let bytes = doc.as_bytes();
        for capacity in [64, 100, 4096] {
            let got = start_lines(Counting::buffered(
                BufReader::with_capacity(capacity, bytes),
                capacity,
            ));
            assert_eq!(got, want, "buffer of {capacity} bytes");
            let got = start_lines(Counting::buffered(bytes, capacity));
            assert_eq!(got, want, "windows of {capacity} bytes over one slice");
            // chunks that end inside tags, each read in windows
            let (a, rest) = bytes.split_at(1001);
            let (b, c) = rest.split_at(77);
            let got = start_lines(Counting::buffered(a.chain(b).chain(c), capacity));
            assert_eq!(got, want, "windows of {capacity} bytes over three chunks");
        }
    }

    #[test]
    fn a_token_larger_than_the_limit_is_refused() {
        let doc = format!("<r>{}</r>", "a".repeat(MAX_TOKEN as usize + (1 << 20)));
        fn refused<R: BufRead>(counting: Counting<R>) {
            let mut r = Reader::from_reader(counting);
            let mut buf = Vec::new();
            let err = loop {
                r.get_mut().mark();
                match r.read_event_into(&mut buf) {
                    Err(e) => break e.to_string(),
                    Ok(Event::Eof) => panic!("read to the end"),
                    Ok(_) => buf.clear(),
                }
            };
            assert!(err.contains("larger than 16 MiB"), "{err}");
        }
        refused(Counting::buffered(
            BufReader::with_capacity(64 << 10, doc.as_bytes()),
            64 << 10,
        ));
        // the whole document in memory, read in windows
        refused(Counting::buffered(doc.as_bytes(), 256 << 10));
    }
}
