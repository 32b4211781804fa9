//! Pseudonymous ids: with `privacy.pseudonymize_ids = true` the platform
//! sees `p-` + the first 32 hex digits (128 bits) of HMAC-SHA256(key, SIS
//! id) instead of the SIS id. The same key gives the same pseudonym on
//! every run and machine; without the key a pseudonym cannot be linked to
//! the student number. The state file keeps the mapping (table
//! `pseudonyms`), which results need to reach the SIS again.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

#[derive(Clone)]
pub struct Pseudonymizer {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer(key hidden)")
    }
}

impl Pseudonymizer {
    pub fn new(key: &Secret) -> Pseudonymizer {
        Pseudonymizer {
            mac: Hmac::<Sha256>::new_from_slice(key.expose().as_bytes())
                .expect("HMAC takes keys of any length"),
        }
    }

    /// The pseudonym of a SIS id.
    pub fn id(&self, sis_id: &str) -> String {
        let mut m = self.mac.clone();
        m.update(sis_id.as_bytes());
        let out = m.finalize().into_bytes();
        format!("p-{}", hex::encode(&out[..16]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_distinct_and_key_dependent() {
        let a = Pseudonymizer::new(&Secret::new("0123456789abcdef0123"));
        let b = Pseudonymizer::new(&Secret::new("another-key-0123456789"));
        assert_eq!(a.id("stu-1001"), a.id("stu-1001"));
        assert_ne!(a.id("stu-1001"), a.id("stu-1002"));
        assert_ne!(a.id("stu-1001"), b.id("stu-1001"));
        let p = a.id("stu-1001");
        assert!(
            p.starts_with("p-") && p.len() == 34 && !p.contains("1001"),
            "{p}"
        );
        // RFC 4231 test case 2 pins the HMAC construction
        let k = Pseudonymizer::new(&Secret::new("Jefe"));
        assert_eq!(
            k.id("what do ya want for nothing?"),
            "p-5bdcc146bf60754e6a042426089575c7"
        );
        assert!(!format!("{a:?}").contains("0123"));
    }
}
