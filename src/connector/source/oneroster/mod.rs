//! OneRoster 1.1/1.2: the CSV export and the REST service, sharing one
//! vocabulary (role map, status, accommodation values, the role rule).

pub mod config;
pub mod csv;
pub mod rest;
pub(crate) mod vocab;
