//! Per-field hashes as bytes. The state file and held plans keep them as
//! hex text (a JSON object, fields in name order); in memory each is a
//! fixed-size value in one small vector, because a rerun holds one set per
//! known record and a map of strings cost about 0.9 KB a record.

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap as _, Serializer};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::model::TrackedField;

/// The longest hash kept: a keyed BSN hash (HMAC-SHA-256); a value's hash
/// is the first 16 bytes of its SHA-256.
const MAX: usize = 32;

/// One field's hash, compared by its bytes and written as lower-case hex.
/// The default is the empty hash (stored as ""), which no value has.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FieldHash {
    len: u8,
    bytes: [u8; MAX],
}

impl FieldHash {
    /// A hash from its bytes (at most 32; longer ones are cut).
    pub fn from_bytes(b: &[u8]) -> FieldHash {
        let n = b.len().min(MAX);
        let mut bytes = [0; MAX];
        bytes[..n].copy_from_slice(&b[..n]);
        FieldHash {
            len: n as u8,
            bytes,
        }
    }

    /// A hash from its hex text; None unless it is even-length lower- or
    /// upper-case hex of at most 32 bytes.
    pub fn from_hex(s: &str) -> Option<FieldHash> {
        let n = s.len() / 2;
        if s.len() % 2 != 0 || n > MAX {
            return None;
        }
        let mut bytes = [0; MAX];
        hex::decode_to_slice(s, &mut bytes[..n]).ok()?;
        Some(FieldHash {
            len: n as u8,
            bytes,
        })
    }

    /// A stored hash as read back. Text that is no hash (a damaged or
    /// foreign value) still marks the field as sent, with a hash no value
    /// has, so the field counts as changed and goes out again.
    pub fn from_stored(s: &str) -> FieldHash {
        FieldHash::from_hex(s).unwrap_or_else(|| {
            FieldHash::from_bytes(&Sha256::digest(
                format!("sisync-unreadable\x1f{s}").as_bytes(),
            ))
        })
    }

    /// The hex text, on the stack.
    pub fn hex(&self) -> Hex {
        let mut buf = [0; 2 * MAX];
        let n = 2 * usize::from(self.len);
        hex::encode_to_slice(&self.bytes[..usize::from(self.len)], &mut buf[..n])
            .expect("the buffer is twice the bytes");
        Hex { buf, len: n as u8 }
    }
}

/// A record's hash (one SHA-256 over its field hashes), kept the same way;
/// empty after `reconcile --fix` forgot what was sent.
pub type RecordHash = FieldHash;

/// A [`FieldHash`] as hex text.
pub struct Hex {
    buf: [u8; 2 * MAX],
    len: u8,
}

impl Hex {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).expect("hex is ASCII")
    }
}

impl fmt::Display for FieldHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hex().as_str())
    }
}

impl fmt::Debug for FieldHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FieldHash({self})")
    }
}

impl Serialize for FieldHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.hex().as_str())
    }
}

const FIELDS: usize = TrackedField::ALL.len();
const _: () = assert!(FIELDS <= 32, "one bit per field");

/// Whether `a` sorts before `b` (byte order, as `str`'s `Ord`).
const fn before(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut i = 0;
    while i < a.len() && i < b.len() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
        i += 1;
    }
    a.len() < b.len()
}

/// Each field's place in name order (by its declaration index): the
/// order of the stored JSON and of the record hash, as `TrackedField`'s
/// `Ord` (by name) gives it.
const RANK: [u8; FIELDS] = {
    let mut rank = [0; FIELDS];
    let mut i = 0;
    while i < FIELDS {
        let mut j = 0;
        while j < FIELDS {
            if before(TrackedField::ALL[j].as_str(), TrackedField::ALL[i].as_str()) {
                rank[i] += 1;
            }
            j += 1;
        }
        i += 1;
    }
    rank
};

/// The fields in name order.
static BY_NAME: [TrackedField; FIELDS] = {
    let mut order = [TrackedField::ALL[0]; FIELDS];
    let mut i = 0;
    while i < FIELDS {
        order[RANK[i] as usize] = TrackedField::ALL[i];
        i += 1;
    }
    order
};

/// A field's place in name order, as a bit.
fn bit(f: TrackedField) -> u32 {
    1 << RANK[f as usize]
}

/// Field → hash, in name order (a map with the few operations the planner
/// needs): a bit per present field, and their hashes in that order.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct FieldHashes {
    present: u32,
    hashes: Vec<FieldHash>,
}

impl FieldHashes {
    pub fn new() -> FieldHashes {
        FieldHashes::default()
    }

    /// Where a field's hash is (or would go) in `hashes`.
    fn slot(&self, b: u32) -> usize {
        (self.present & (b - 1)).count_ones() as usize
    }

    pub fn get(&self, f: &TrackedField) -> Option<&FieldHash> {
        let b = bit(*f);
        (self.present & b != 0).then(|| &self.hashes[self.slot(b)])
    }

    pub fn contains_key(&self, f: &TrackedField) -> bool {
        self.present & bit(*f) != 0
    }

    /// Sets a field's hash; the one it replaces, if any.
    pub fn insert(&mut self, f: TrackedField, h: FieldHash) -> Option<FieldHash> {
        let b = bit(f);
        let i = self.slot(b);
        if self.present & b != 0 {
            return Some(std::mem::replace(&mut self.hashes[i], h));
        }
        if self.hashes.capacity() == 0 {
            // a user's set is eight fields: one allocation
            self.hashes.reserve_exact(8);
        }
        self.present |= b;
        self.hashes.insert(i, h);
        None
    }

    pub fn remove(&mut self, f: &TrackedField) -> Option<FieldHash> {
        let b = bit(*f);
        if self.present & b == 0 {
            return None;
        }
        self.present &= !b;
        Some(self.hashes.remove(self.slot(b)))
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The fields present, in name order.
    pub fn keys(&self) -> impl Iterator<Item = &'static TrackedField> + '_ {
        self.iter().map(|(f, _)| f)
    }

    /// Field and hash, in name order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            present: self.present,
            hashes: self.hashes.iter(),
        }
    }
}

/// The next present field of `present` (and takes it off).
fn next_field(present: &mut u32) -> Option<&'static TrackedField> {
    let i = present.trailing_zeros() as usize;
    let f = BY_NAME.get(i)?;
    *present &= *present - 1;
    Some(f)
}

/// [`FieldHashes::iter`]: no allocation, as the record hash walks one per
/// record.
pub struct Iter<'a> {
    present: u32,
    hashes: std::slice::Iter<'a, FieldHash>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'static TrackedField, &'a FieldHash);
    fn next(&mut self) -> Option<Self::Item> {
        Some((next_field(&mut self.present)?, self.hashes.next()?))
    }
}

/// The owned walk of [`FieldHashes`].
pub struct IntoIter {
    present: u32,
    hashes: std::vec::IntoIter<FieldHash>,
}

impl Iterator for IntoIter {
    type Item = (TrackedField, FieldHash);
    fn next(&mut self) -> Option<Self::Item> {
        Some((*next_field(&mut self.present)?, self.hashes.next()?))
    }
}

impl std::ops::Index<&TrackedField> for FieldHashes {
    type Output = FieldHash;
    /// The field's hash; panics when it has none (as a map does).
    fn index(&self, f: &TrackedField) -> &FieldHash {
        self.get(f).expect("a hash for that field")
    }
}

impl fmt::Debug for FieldHashes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a FieldHashes {
    type Item = (&'static TrackedField, &'a FieldHash);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for FieldHashes {
    type Item = (TrackedField, FieldHash);
    type IntoIter = IntoIter;
    fn into_iter(self) -> IntoIter {
        IntoIter {
            present: self.present,
            hashes: self.hashes.into_iter(),
        }
    }
}

impl Extend<(TrackedField, FieldHash)> for FieldHashes {
    fn extend<I: IntoIterator<Item = (TrackedField, FieldHash)>>(&mut self, it: I) {
        for (f, h) in it {
            self.insert(f, h);
        }
    }
}

impl FromIterator<(TrackedField, FieldHash)> for FieldHashes {
    fn from_iter<I: IntoIterator<Item = (TrackedField, FieldHash)>>(it: I) -> FieldHashes {
        let mut m = FieldHashes::new();
        m.extend(it);
        m
    }
}

impl Serialize for FieldHashes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.len()))?;
        for (f, h) in self {
            m.serialize_entry(f, h)?;
        }
        m.end()
    }
}

impl FieldHashes {
    /// The stored JSON object read back: names borrowed, a field this
    /// version does not track skipped, a value that is no hash kept as
    /// one that matches nothing ([`FieldHash::from_stored`]). A damaged
    /// object reads as no hashes, so the record is sent again.
    pub fn from_stored(json: &str) -> FieldHashes {
        struct Stored(FieldHashes);
        impl<'de> Deserialize<'de> for Stored {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Stored, D::Error> {
                struct Visit;
                impl<'de> Visitor<'de> for Visit {
                    type Value = Stored;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("an object of field hashes")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Stored, A::Error> {
                        let mut out = FieldHashes::new();
                        while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                            let v = map.next_value::<std::borrow::Cow<'de, str>>()?;
                            if let Some(k) = TrackedField::parse(&k) {
                                out.insert(k, FieldHash::from_stored(&v));
                            }
                        }
                        Ok(Stored(out))
                    }
                }
                d.deserialize_map(Visit)
            }
        }
        serde_json::from_str::<Stored>(json).map_or_else(|_| FieldHashes::new(), |s| s.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> FieldHash {
        FieldHash::from_hex(s).unwrap()
    }

    /// The stored text round-trips byte for byte, fields in name order
    /// whatever order they were set in (as the string map wrote them).
    #[test]
    fn stored_json_round_trips_in_name_order() {
        let mut m = FieldHashes::new();
        m.insert(TrackedField::UserName, h("00ff"));
        m.insert(TrackedField::Active, h("0123456789abcdef0123456789abcdef"));
        m.insert(TrackedField::Bsn, h(&"ab".repeat(32)));
        m.insert(TrackedField::Email, h("cd"));
        let json = serde_json::to_string(&m).unwrap();
        let bsn = "ab".repeat(32);
        assert_eq!(
            json,
            format!(
                r#"{{"active":"0123456789abcdef0123456789abcdef","bsn":"{bsn}","email":"cd","userName":"00ff"}}"#
            )
        );
        let back = FieldHashes::from_stored(&json);
        assert_eq!(back, m);
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        let strings: std::collections::BTreeMap<TrackedField, String> =
            m.iter().map(|(f, h)| (*f, h.to_string())).collect();
        assert_eq!(serde_json::to_string(&strings).unwrap(), json);
    }

    #[test]
    fn name_order_is_trackedfields_order() {
        let mut sorted = TrackedField::ALL.to_vec();
        sorted.sort();
        assert_eq!(BY_NAME.to_vec(), sorted);
        for (i, f) in TrackedField::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i);
        }
    }

    #[test]
    fn insert_replace_remove_and_get() {
        let mut m = FieldHashes::new();
        assert_eq!(m.insert(TrackedField::Org, h("01")), None);
        assert_eq!(m.insert(TrackedField::Name, h("02")), None);
        assert_eq!(m.insert(TrackedField::Org, h("03")), Some(h("01")));
        assert_eq!(m.get(&TrackedField::Org), Some(&h("03")));
        assert_eq!(m.get(&TrackedField::Name), Some(&h("02")));
        assert_eq!(m.get(&TrackedField::Email), None);
        assert_eq!(m.len(), 2);
        assert_eq!(m.remove(&TrackedField::Name), Some(h("02")));
        assert_eq!(m.remove(&TrackedField::Name), None);
        assert!(!m.contains_key(&TrackedField::Name));
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), [TrackedField::Org]);
        let owned: Vec<_> = m.clone().into_iter().collect();
        assert_eq!(owned, [(TrackedField::Org, h("03"))]);
    }

    /// Text that is no hash keeps its field (as changed, matching no
    /// value's hash); an unknown field and a damaged object read as
    /// before: skipped, and no hashes at all.
    #[test]
    fn unreadable_stored_values() {
        let m = FieldHashes::from_stored(r#"{"name":"xyz","future":"ab","em\u0061il":"ab"}"#);
        assert_eq!(
            m.keys().copied().collect::<Vec<_>>(),
            [TrackedField::Email, TrackedField::Name]
        );
        assert_ne!(m.get(&TrackedField::Name), FieldHash::from_hex("").as_ref());
        assert_eq!(m.get(&TrackedField::Email), Some(&h("ab")));
        assert!(FieldHashes::from_stored("{\"name\":").is_empty());
        assert!(FieldHashes::from_stored("[]").is_empty());
        assert!(FieldHash::from_hex("abc").is_none());
        assert!(FieldHash::from_hex(&"00".repeat(33)).is_none());
    }
}
