//! The byte stream under the CSV parser: CRLF line ends become LF (the
//! `csv` crate reports CRLF rows one line too low), and no record may grow
//! past a limit. A stray `"` makes the parser take the rest of the file as
//! one field; without the limit a few megabytes of zip became gigabytes of
//! memory before the first error.

use std::cell::Cell;
use std::io::{self, BufRead, Read};
use std::rc::Rc;

/// Longest record (in bytes) the parser may assemble.
pub(super) const MAX_RECORD_BYTES: u64 = 1 << 20;

/// Shared between the guard and the loop that reads records: the loop
/// moves the limit forward after every record, the guard reports a trip.
#[derive(Clone, Default)]
pub(super) struct Limit {
    until: Rc<Cell<u64>>,
    tripped: Rc<Cell<bool>>,
}

impl Limit {
    /// Allow [`MAX_RECORD_BYTES`] after byte `start` (where the next
    /// record begins).
    pub(super) fn allow_from(&self, start: u64) {
        self.until.set(start + MAX_RECORD_BYTES);
    }

    pub(super) fn tripped(&self) -> bool {
        self.tripped.get()
    }
}

pub(super) struct Guarded<'a> {
    inner: &'a mut dyn BufRead,
    /// Bytes handed to the parser so far (after CRLF → LF).
    out: u64,
    limit: Limit,
    /// A `\r` ended the last chunk: dropped if a `\n` follows.
    pending_cr: bool,
}

impl<'a> Guarded<'a> {
    pub(super) fn new(inner: &'a mut dyn BufRead, limit: Limit) -> Guarded<'a> {
        limit.allow_from(0);
        Guarded {
            inner,
            out: 0,
            limit,
            pending_cr: false,
        }
    }
}

impl Read for Guarded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.out > self.limit.until.get() {
            self.limit.tripped.set(true);
            return Err(io::Error::other("record longer than the limit"));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        // A chunk that was only a held-back `\r` gives no output: read on,
        // since returning 0 would mean end of file.
        loop {
            let mut w = 0;
            if self.pending_cr {
                self.pending_cr = false;
                if self.inner.fill_buf()?.first() != Some(&b'\n') {
                    buf[0] = b'\r';
                    w = 1;
                }
            }
            let chunk = self.inner.fill_buf()?;
            let take = chunk.len().min(buf.len() - w);
            let src = &chunk[..take];
            let mut i = 0;
            while let Some(j) = memchr::memchr(b'\r', &src[i..]) {
                let j = i + j;
                buf[w..w + (j - i)].copy_from_slice(&src[i..j]);
                w += j - i;
                match chunk.get(j + 1) {
                    Some(b'\n') => {}
                    Some(_) => {
                        buf[w] = b'\r';
                        w += 1;
                    }
                    None => self.pending_cr = true,
                }
                i = j + 1;
            }
            buf[w..w + (take - i)].copy_from_slice(&src[i..]);
            w += take - i;
            self.inner.consume(take);
            self.out += w as u64;
            if w > 0 || take == 0 {
                return Ok(w);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through(data: &[u8], chunk: usize, read_size: usize) -> Vec<u8> {
        let mut br = io::BufReader::with_capacity(chunk, data);
        let mut g = Guarded::new(&mut br, Limit::default());
        let mut out = Vec::new();
        let mut buf = vec![0u8; read_size];
        loop {
            let n = g.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    #[test]
    fn crlf_becomes_lf_across_chunk_edges() {
        let data = b"a,b\r\nc,\"d\re\"\r\n\r\rx\r";
        for chunk in 1..8 {
            for read_size in 1..8 {
                assert_eq!(
                    through(data, chunk, read_size),
                    b"a,b\nc,\"d\re\"\n\r\rx\r",
                    "chunk {chunk} read {read_size}"
                );
            }
        }
    }

    #[test]
    fn a_record_past_the_limit_trips() {
        let data = vec![b'x'; (MAX_RECORD_BYTES * 2) as usize];
        let mut br = io::BufReader::new(&data[..]);
        let limit = Limit::default();
        let mut g = Guarded::new(&mut br, limit.clone());
        let mut sink = Vec::new();
        assert!(g.read_to_end(&mut sink).is_err());
        assert!(limit.tripped());
        assert!(sink.len() as u64 <= MAX_RECORD_BYTES + 64 * 1024);
    }
}
