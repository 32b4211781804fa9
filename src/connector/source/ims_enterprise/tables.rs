//! Compact storage for the builder: records in fixed-size blocks, member
//! ids interned in one string, small name tables.

use super::*;

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

/// Ids by number, each kept once in one string: the table holds 4-byte
/// numbers, not boxed strings, so it stays in a core's cache.
#[derive(Default)]
pub(super) struct IdTable {
    pub(super) text: String,
    /// `ends[n]`: where id `n` ends in `text`.
    pub(super) ends: Vec<usize>,
    pub(super) table: hashbrown::HashTable<u32>,
}

impl IdTable {
    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(super) fn get(&self, n: u32) -> &str {
        id_at(&self.text, &self.ends, n)
    }

    pub(super) fn find(&self, s: &str) -> Option<u32> {
        let (text, ends) = (&self.text, &self.ends);
        self.table
            .find(id_hash(s), |&n| id_at(text, ends, n) == s)
            .copied()
    }

    pub(super) fn number(&mut self, s: &str) -> u32 {
        let h = id_hash(s);
        let (text, ends) = (&self.text, &self.ends);
        if let Some(&n) = self.table.find(h, |&n| id_at(text, ends, n) == s) {
            return n;
        }
        let n = self.ends.len() as u32;
        self.text.push_str(s);
        self.ends.push(self.text.len());
        let (text, ends) = (&self.text, &self.ends);
        self.table
            .insert_unique(h, n, |&m| id_hash(id_at(text, ends, m)));
        n
    }
}

pub(super) fn id_at<'a>(text: &'a str, ends: &[usize], n: u32) -> &'a str {
    let n = n as usize;
    let start = if n == 0 { 0 } else { ends[n - 1] };
    &text[start..ends[n]]
}

pub(super) fn id_hash(s: &str) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(s)
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
