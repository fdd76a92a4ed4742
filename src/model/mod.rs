//! The records the gateway keeps: plain typed values with their serde form,
//! one file per record kind. The store persists them and everything above
//! reads them; nothing here knows how or where they are kept.

pub mod applications;
pub mod audit;
pub mod category;
pub mod changes;
pub mod connections;
pub mod domains;
pub mod language;
pub mod listings;
pub mod nodes;
pub mod phone;
pub mod servers;
pub mod sightings;
pub mod suspensions;
pub mod tlsrpt;
pub mod webhooks;
