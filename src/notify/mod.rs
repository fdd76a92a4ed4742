//! Notifications: e-mail through the gateway's own queue.
//!
//! [`mail`] numbers, builds and queues a notice; [`notices`] and
//! [`lifecycle`] say which template each notice is and what values it gets;
//! [`templates`] holds the templates (embedded, or staff's files) and
//! [`render`] writes a notice in its recipients' languages; [`deadlines`]
//! alerts the postmaster about applications that reach their decision date
//! and runs the yearly confirmation reminders of [`reconfirm`].

pub mod alarms;
pub mod contacts;
pub mod deadlines;
pub mod lifecycle;
pub mod mail;
pub mod notices;
pub mod outbox;
pub mod reconfirm;
pub mod render;
pub mod templates;
pub mod webhook;

pub use deadlines::overdue_alerts;
pub use mail::{NotifyError, enqueue_notice};
