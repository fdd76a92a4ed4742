//! Outbound delivery: the scheduler leases due messages from the queue,
//! [`route`] finds where each recipient domain goes (registered inbound
//! route, static route, or MX), [`client`] carries them over SMTP/TLS,
//! [`outcome`] decides retry or bounce, and [`dsn`] writes the bounces;
//! [`dane`] decides what TLSA records demand of a certificate.

pub mod client;
pub mod dane;
pub mod dsn;
pub mod mta_sts;
pub mod outcome;
pub mod route;
pub mod scheduler;
pub mod single_flight;
pub mod tls_policy;
pub mod tlsrpt;
pub mod verify;
