//! PostgreSQL change-data-capture source (logical replication with pgoutput).
//!
//! Work in progress (issue 4): the pgoutput decoder and the type mapping are here; the
//! connector (slot and publication management, snapshot, streaming) comes next.

pub mod pgoutput;
pub mod types;
