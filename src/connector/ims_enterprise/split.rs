//! Reading a large IMS Enterprise document with two threads.
//!
//! The document is cut where a top-level record (`<person`, `<group` or
//! `<membership`) starts near its middle. The calling thread reads the
//! first half straight into the roster builder; a second thread reads the
//! second half at the same time into a compact log (records as parsed,
//! members packed into one string), which is then fed to the builder in
//! document order. The roster, its issues and their line numbers are the
//! same as from one thread.
//!
//! The cut is only a guess made from raw bytes (`<person` could sit in a
//! comment, or be a nested element): the first half must end exactly
//! between two records inside `<enterprise>`, with no error. If it does
//! not, both halves are thrown away and the document is read again on one
//! thread, which gives the usual result or error. An error in the second
//! half of a clean cut is the document's first error and is returned with
//! its line in the whole file.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;

use super::{Chunked, ImsEnterprise, Item, Parser, RawMember, line_at, local_name};
use crate::model::Roster;

/// Smaller documents are read on one thread.
const SPLIT_MIN_BYTES: u64 = 8 << 20;
/// How far past the middle a record start is looked for.
const SEARCH_BYTES: u64 = 4 << 20;

/// The roster read by two threads, or `None` when the document is small,
/// has no usable cut, or the cut turned out not to be between records.
pub(super) fn read_in_halves(
    src: &ImsEnterprise,
    progress: &dyn Fn(u64),
) -> Result<Option<Roster>> {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return Ok(None);
    }
    let path = src.path.as_path();
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(None); // the one-thread read reports it
    };
    if meta.len() < SPLIT_MIN_BYTES {
        return Ok(None);
    }
    let Some(cut) = find_cut(path, meta.len() / 2) else {
        return Ok(None);
    };
    read_cut_at(src, cut, progress)
}

/// The roster read in two parts, `..cut` and `cut..`; `None` when the
/// first part does not end cleanly between two records.
pub(super) fn read_cut_at(
    src: &ImsEnterprise,
    cut: u64,
    progress: &dyn Fn(u64),
) -> Result<Option<Roster>> {
    let path = src.path.as_path();
    // set when the first half fails: the second stops early
    let stop = AtomicBool::new(false);
    let stop = &stop;
    std::thread::scope(|s| {
        let second = s.spawn(move || read_second_half(path, cut, stop));
        let mut first = Parser::open_part(path, 0, cut)?;
        first.split_end = true;
        let mut b = super::Builder::new(src, first.file.clone());
        let read = first.run(&mut |line, item| {
            b.feed(line, item, progress);
            true
        });
        let clean = read.is_ok() && first.ended_clean;
        if !clean {
            stop.store(true, Ordering::Relaxed);
        }
        let log = second.join().unwrap_or_else(|_| Ok(None));
        if !clean {
            return Ok(None);
        }
        let Some(log) = log? else {
            return Ok(None);
        };
        log.replay(&mut b, progress);
        progress(b.records);
        Ok(Some(b.finish()))
    })
}

/// The second half, from `cut` to the end, as a log. `None` when the log
/// would not fit its 32-bit offsets or `stop` was set (the one-thread read
/// takes over).
fn read_second_half(path: &Path, cut: u64, stop: &AtomicBool) -> Result<Option<Log>> {
    let mut p = Parser::open_part(path, cut, u64::MAX)?;
    p.mid_document = true;
    p.base_lines = line_at(path, cut).saturating_sub(1);
    let mut log = Log::default();
    let mut fits = true;
    p.run(&mut |line, item| {
        fits = log.push(line, item) && !stop.load(Ordering::Relaxed);
        fits
    })?;
    Ok(fits.then_some(log))
}

/// Where a top-level record seems to start at or after `from`.
pub(super) fn find_cut(path: &Path, from: u64) -> Option<u64> {
    let mut f = std::fs::File::open(path).ok()?;
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut window = Vec::new();
    f.take(SEARCH_BYTES).read_to_end(&mut window).ok()?;
    let mut at = 0;
    while let Some(i) = window[at..].iter().position(|&c| c == b'<') {
        let start = at + i;
        let name_end = window[start + 1..]
            .iter()
            .position(|&c| c.is_ascii_whitespace() || c == b'>' || c == b'/')
            .map(|n| start + 1 + n)?;
        let name = local_name(&window[start + 1..name_end]);
        if matches!(name, b"person" | b"group" | b"membership") {
            return Some(from + start as u64);
        }
        at = start + 1;
    }
    None
}

/// A span of [`Log::text`].
#[derive(Debug, Clone, Copy)]
struct Span(u32, u32);

#[derive(Debug)]
struct PackedRole {
    roletype: Span,
    status: Span,
    recstatus: Option<Span>,
}

#[derive(Debug)]
struct PackedMember {
    line: u64,
    source: Span,
    id: Span,
    idtype: Span,
    /// Its roles are the next this many of [`Log::roles`].
    roles: u32,
}

enum Entry {
    Member(PackedMember),
    /// Any record but a member (boxed: persons are large, members many).
    Record(u64, Box<Item<'static>>),
}

/// The second half's records in document order. Blocks, not vectors
/// (no copy and no slack when they grow); a value equal to the last one of
/// its field is stored once (sources, idtypes, roletypes, statuses repeat).
#[derive(Default)]
struct Log {
    entries: Chunked<Entry>,
    text: String,
    roles: Chunked<PackedRole>,
    last: [Option<Span>; 5],
}

const SOURCE: usize = 0;
const IDTYPE: usize = 1;
const ROLETYPE: usize = 2;
const STATUS: usize = 3;
const RECSTATUS: usize = 4;

impl Log {
    /// False when the text outgrew 32-bit offsets.
    fn push(&mut self, line: u64, item: Item<'_>) -> bool {
        let owned = match item {
            Item::Member(m) => {
                for r in m.roles() {
                    let role = PackedRole {
                        roletype: self.keep_field(ROLETYPE, &r.roletype),
                        status: self.keep_field(STATUS, &r.status),
                        recstatus: r
                            .has_recstatus
                            .then(|| self.keep_field(RECSTATUS, &r.recstatus)),
                    };
                    self.roles.push(role);
                }
                let member = PackedMember {
                    line: m.line,
                    source: self.keep_field(SOURCE, &m.source),
                    id: self.keep(&m.id),
                    idtype: self.keep_field(IDTYPE, &m.idtype),
                    roles: m.roles().len() as u32,
                };
                self.entries.push(Entry::Member(member));
                return self.text.len() < u32::MAX as usize / 2;
            }
            Item::Properties(p) => Item::Properties(p),
            Item::Person(p) => Item::Person(p),
            Item::Group(g) => Item::Group(g),
            Item::Membership(m) => Item::Membership(m),
        };
        self.entries.push(Entry::Record(line, Box::new(owned)));
        true
    }

    fn keep(&mut self, s: &str) -> Span {
        let from = self.text.len() as u32;
        self.text.push_str(s);
        Span(from, s.len() as u32)
    }

    /// [`Log::keep`], reusing the field's last value when it is the same.
    fn keep_field(&mut self, field: usize, s: &str) -> Span {
        if let Some(last) = self.last[field] {
            if &self.text[last.0 as usize..(last.0 + last.1) as usize] == s {
                return last;
            }
        }
        let span = self.keep(s);
        self.last[field] = Some(span);
        span
    }

    /// Feed the builder, in order, as the parser would have.
    fn replay(self, b: &mut super::Builder<'_>, progress: &dyn Fn(u64)) {
        let Log {
            entries,
            text,
            roles,
            ..
        } = self;
        let mut roles = roles.into_iter();
        let get = |s: Span| &text[s.0 as usize..(s.0 + s.1) as usize];
        let mut m = RawMember::default();
        for e in entries.into_iter() {
            match e {
                Entry::Member(pm) => {
                    m.reset(pm.line);
                    m.source.push_str(get(pm.source));
                    m.id.push_str(get(pm.id));
                    m.idtype.push_str(get(pm.idtype));
                    for pr in roles.by_ref().take(pm.roles as usize) {
                        let r = m.push_role();
                        r.roletype.push_str(get(pr.roletype));
                        r.status.push_str(get(pr.status));
                        if let Some(rs) = pr.recstatus {
                            r.has_recstatus = true;
                            r.recstatus.push_str(get(rs));
                        }
                    }
                    b.feed(pm.line, Item::Member(&m), progress);
                }
                Entry::Record(line, item) => b.feed(line, *item, progress),
            }
        }
    }
}
