//! Where results go: a OneRoster gradebook (REST or CSV files) and the
//! UWLR LAS, and the OKE SIS (flow 5).

pub mod gradebook_csv;
pub mod gradebook_rest;
pub mod oke;
pub mod uwlr;
