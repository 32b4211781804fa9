//! Content digests shared by the store (audit chain), the connectors
//! (delivery hashes) and the privacy policy; a leaf module.

use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}
