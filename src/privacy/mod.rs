//! Privacy by design: what may leave sisync, for whom, and in which form.

pub mod policy;
