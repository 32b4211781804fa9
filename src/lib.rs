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

/// Process exit codes (the CLI contract).
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const CONFIG: i32 = 2;
    pub const REFUSED: i32 = 3;
    pub const AUDIT_BROKEN: i32 = 4;
    /// `plan approve`: the state moved since the plan was made.
    pub const STATE_MOVED: i32 = 5;
}
