//! Inbound SMTP: protocol parsing (pure), session state machine, listener.

pub mod command;
pub mod data;
pub mod line;
pub mod reply;
