//! PostgreSQL change-data-capture source (logical replication with pgoutput).
//!
//! Not implemented yet: this crate is filled by its own issue. It depends on
//! [`connect_core`] only, as every connector crate does.
