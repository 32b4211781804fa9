//! sisync: keeps a school's student administration system (SIS) and an
//! online exam platform in sync. `ARCHITECTURE.md` maps the code and
//! `docs/connector-contract.md` holds the rules every connector keeps.
//!
//! # Layout
//!
//! A roster flows source → [`model::Roster`] → [`privacy::policy`] →
//! [`sync`] (plan, safety gate, apply) → platform; results flow result
//! source → [`sync::results`] (outbox, exactly once) → result sink. All
//! state is one SQLite file in [`store`].
//!
//! - [`connector`]: one module per protocol, in folders by role:
//!   [`connector::source`] (roster sources), [`connector::platform`]
//!   (platforms), [`connector::results`] (`source/` and `sink/`); each
//!   role's `mod.rs` holds its trait and its registry; each connector
//!   owns its config section (its `config.rs`). [`connector::load`]
//!   loads a config file.
//! - [`config`]: the TOML file and its global sections, pure validation
//!   with file:line, the shared HTTP endpoint config, secrets resolved
//!   for a run; connector sections as a kind and the settings the kind's
//!   connector read ([`config::Section`]).
//! - [`sync`]: the engine; it knows no wire format.
//! - [`privacy`], [`store`], [`daemon`], [`alerts`], [`app`] (command
//!   handlers), [`cli`] (clap), [`exit`] (exit codes).
//! - Transport: [`http`], [`soap`]. Leaves (no module below them):
//!   [`model`], [`secret`], [`digest`], [`clock`], [`telemetry`],
//!   [`endpoints`], `xml_input`.
//!
//! Top-level modules form no dependency cycle (`tests/module_layers.rs`).

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
#[cfg(test)]
mod test_util;
pub(crate) mod xml_cut;
pub(crate) mod xml_input;
