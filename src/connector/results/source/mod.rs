//! Where results come from: QTI result documents and CSV exports (each
//! from a folder or an HTTP list, see [`crate::sync::results`]); and the OKE platform's
//! own results (flow 3.4).

pub mod csv;
pub mod oke;
pub mod qti;
