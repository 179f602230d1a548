//! SQL table polling source and upsert sink (PostgreSQL, MySQL/MariaDB, SQLite).
//!
//! Not implemented yet: this crate is filled by its own issue. It depends on
//! [`connect_core`] only, as every connector crate does.
