//! ugem: an SMTP relay gateway for registered e-government mail domains.
//!
//! The flow is smtp -> policy -> queue -> delivery, with the registry, the
//! governors, notifications and the admin API around it; see
//! `docs/architecture.md` (and `tests/layering.rs` for the module layering).

pub mod address;
pub mod admin;
pub mod calendar;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod dkim;
pub mod dns;
pub mod domain;
pub mod governor;
pub mod logging;
pub mod mailbox;
pub mod maillog;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod policy;
pub mod prepare;
pub mod registry;
pub mod reply;
pub mod sdnotify;
pub mod server;
pub mod shutdown;
pub mod smtp;
pub mod store;
pub mod tls;
pub mod trust;
pub mod values;
