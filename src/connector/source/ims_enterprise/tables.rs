//! Compact storage for the builder: records in fixed-size blocks, member
//! ids interned in one string, small name tables.

use super::*;
pub(super) use crate::model::id_table::IdTable;

/// Records kept in fixed-size blocks: growing never copies them and never
/// touches fresh memory twice (a `Vec` would, at each doubling).
pub(super) struct Chunked<T> {
    pub(super) chunks: Vec<Vec<T>>,
    pub(super) len: usize,
}

pub(super) const CHUNK: usize = 4096;

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Chunked<T> {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(super) fn push(&mut self, v: T) {
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(v),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(v);
                self.chunks.push(c);
            }
        }
        self.len += 1;
    }

    /// Keep the first `n` (every block but the last is full).
    pub(super) fn truncate(&mut self, n: usize) {
        while self.len > n {
            let Some(last) = self.chunks.last_mut() else {
                break; // cannot happen: `len` counts the blocks' records
            };
            let keep = last.len().saturating_sub(self.len - n);
            self.len -= last.len() - keep;
            last.truncate(keep);
            if last.is_empty() {
                self.chunks.pop();
            }
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }

    /// The records from position `from` on.
    pub(super) fn iter_mut_from(&mut self, from: usize) -> impl Iterator<Item = &mut T> {
        let (block, at) = (from / CHUNK, from % CHUNK);
        self.chunks
            .iter_mut()
            .skip(block)
            .enumerate()
            .flat_map(move |(i, c)| c[if i == 0 { at } else { 0 }..].iter_mut())
    }

    pub(super) fn into_iter(self) -> impl Iterator<Item = T> {
        self.chunks.into_iter().flatten()
    }
}

/// Strings by number, each kept once.
#[derive(Default)]
pub(super) struct Interner {
    pub(super) names: Vec<String>,
    pub(super) index: HashMap<String, u32>,
}

impl Interner {
    pub(super) fn number(&mut self, s: &str) -> u32 {
        if let Some(&n) = self.index.get(s) {
            return n;
        }
        let n = self.names.len() as u32;
        self.names.push(s.to_string());
        self.index.insert(s.to_string(), n);
        n
    }
}
