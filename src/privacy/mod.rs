//! Privacy: the policy (scope, field allow-list, pseudonyms, synthetic
//! values for acceptance), pseudonyms, retention and subject rights.

pub mod exams;
pub mod files;
pub mod policy;
pub mod pseudonym;
