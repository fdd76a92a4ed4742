//! The outbound SMTP client: one connection to one target host, carrying one
//! or more messages. It says EHLO (HELO if refused), upgrades with STARTTLS
//! per [`TlsPolicy`], pipelines MAIL and RCPT when offered, honours SIZE, and
//! reports a result per recipient.
//!
//! One file per job:
//! - [`transport`]: the TCP connection (timeout, source address) and the
//!   buffered reply reader over the plaintext or TLS stream;
//! - [`reply`]: multi-line replies into a typed, bounded [`RemoteReply`],
//!   and the EHLO keywords;
//! - [`framing`]: MAIL FROM parameters (SIZE, 8BITMIME, SMTPUTF8), the
//!   message check and dot-stuffing;
//! - [`tls`]: STARTTLS, the policy, the handshake and the certificate check;
//! - `dane`: the certificate check against TLSA records (RFC 7672);
//! - [`error`]: where it failed and why;
//! - [`connection`]: opening a session, probes, what is known about it;
//! - [`transaction`]: one message, step by step.
//!
//! The transport is tokio and tokio-rustls. The SMTP dialogue is written
//! here rather than taken from mail-send, because of what mail-send does
//! (read in its source and tried against a hostile feed; each file says
//! what it does differently).

pub mod connection;
mod dane;
pub mod error;
pub mod framing;
pub mod reply;
pub mod tls;
pub mod transaction;
pub mod transport;

pub use connection::{ClientSettings, Connection, Target};
pub use error::{ConnError, Stage};
pub use framing::{MAX_LINE_LENGTH, check_message, wire_form};
pub use reply::{
    Extensions, MAX_REPLY_LINE, MAX_REPLY_LINES, MAX_REPLY_SIZE, RemoteReply, ReplyError,
    parse_reply,
};
pub use transaction::RcptResult;
pub use transport::{SourceHook, Timeouts};

// The policy is a configuration value (`[delivery] tls`), so it lives on
// the ground floor; re-exported here where the client uses it.
pub use crate::values::TlsPolicy;
