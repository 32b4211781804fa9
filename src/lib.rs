//! sisync: keeps a school's student administration system (SIS) and an
//! online exam platform in sync. See `DESIGN.md` for the architecture.

pub mod alerts;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connector;
pub mod daemon;
pub mod digest;
pub mod endpoints;
pub mod exit;
pub mod http;
pub mod journal;
pub mod model;
pub mod privacy;
pub mod secret;
pub mod soap;
pub mod store;
pub mod sync;
pub mod telemetry;
pub(crate) mod xml_input;
