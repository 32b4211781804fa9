//! Ids kept once in one string and found by number: a set or an interner
//! for the hundreds of thousands of ids of a large export without one
//! allocation per id. The table holds 4-byte numbers, not boxed strings,
//! so it stays in a core's cache.

/// Ids by number, in the order they were first given.
#[derive(Default)]
pub struct IdTable {
    text: String,
    /// `ends[n]`: where id `n` ends in `text`.
    ends: Vec<usize>,
    table: hashbrown::HashTable<u32>,
}

impl IdTable {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Room for `more` ids of about the length of those so far.
    pub fn reserve(&mut self, more: usize) {
        let average = self.text.len().checked_div(self.len()).unwrap_or(16);
        self.text.reserve(more.saturating_mul(average + 1));
        self.ends.reserve(more);
        let (text, ends) = (&self.text, &self.ends);
        self.table.reserve(more, |&m| id_hash(id_at(text, ends, m)));
    }

    /// The id numbered `n`.
    pub fn get(&self, n: u32) -> &str {
        id_at(&self.text, &self.ends, n)
    }

    /// The number of `s`, if it is in the table.
    pub fn find(&self, s: &str) -> Option<u32> {
        let (text, ends) = (&self.text, &self.ends);
        self.table
            .find(id_hash(s), |&n| id_at(text, ends, n) == s)
            .copied()
    }

    pub fn contains(&self, s: &str) -> bool {
        self.find(s).is_some()
    }

    /// The number of `s`, added when it is new.
    pub fn number(&mut self, s: &str) -> u32 {
        self.add(s).0
    }

    /// Add `s` as a set does: true when it was not there yet.
    pub fn insert(&mut self, s: &str) -> bool {
        self.add(s).1
    }

    fn add(&mut self, s: &str) -> (u32, bool) {
        let h = id_hash(s);
        let (text, ends) = (&self.text, &self.ends);
        if let Some(&n) = self.table.find(h, |&n| id_at(text, ends, n) == s) {
            return (n, false);
        }
        let n = self.ends.len() as u32;
        self.text.push_str(s);
        self.ends.push(self.text.len());
        let (text, ends) = (&self.text, &self.ends);
        self.table
            .insert_unique(h, n, |&m| id_hash(id_at(text, ends, m)));
        (n, true)
    }

    /// Every id, in number order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len() as u32).map(|n| self.get(n))
    }
}

fn id_at<'a>(text: &'a str, ends: &[usize], n: u32) -> &'a str {
    let n = n as usize;
    let start = if n == 0 { 0 } else { ends[n - 1] };
    &text[start..ends[n]]
}

fn id_hash(s: &str) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(s)
}

#[cfg(test)]
mod tests {
    use super::IdTable;

    #[test]
    fn numbers_each_id_once_and_finds_it_again() {
        let mut t = IdTable::default();
        assert!(t.insert("a"));
        assert!(!t.insert("a"));
        assert_eq!(t.number("bc"), 1);
        assert_eq!(t.number("a"), 0);
        assert_eq!(t.find("bc"), Some(1));
        assert_eq!(t.find("b"), None);
        assert!(!t.contains("abc"));
        assert_eq!(t.get(1), "bc");
        assert_eq!(t.iter().collect::<Vec<_>>(), ["a", "bc"]);
        assert_eq!(t.len(), 2);
        t.reserve(1000);
        assert_eq!(t.find("bc"), Some(1));
        assert!(t.insert("d"));
        assert_eq!(t.iter().collect::<Vec<_>>(), ["a", "bc", "d"]);
    }
}
