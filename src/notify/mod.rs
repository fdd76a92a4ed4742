//! Notifications: e-mail through the gateway's own queue.
//!
//! [`mail`] builds and queues a notice, [`notices`] holds the words of the
//! registration notices, and [`deadlines`] alerts the postmaster about
//! applications that reach their decision date.

pub mod alarms;
pub mod contacts;
pub mod deadlines;
pub mod lifecycle;
pub mod mail;
pub mod notices;
pub mod webhook;

pub use deadlines::overdue_alerts;
pub use mail::{NotifyError, enqueue_notice};
