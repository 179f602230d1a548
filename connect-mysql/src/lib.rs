//! MySQL and MariaDB change-data-capture source (binlog streaming).
//!
//! Not implemented yet: this crate is filled by its own issue. It depends on
//! [`connect_core`] only, as every connector crate does.
