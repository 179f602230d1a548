//! Errors of connect-jdbc, and the one place that decides which of them a retry can fix.

/// What can go wrong talking SQL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JdbcError {
    /// The database cannot be reached or the connection broke.
    #[error("{dialect}: connection to `{target}` failed: {source}")]
    Connect {
        /// `postgresql`, `mysql` or `sqlite`.
        dialect: &'static str,
        /// The host or file (never the password).
        target: String,
        /// The driver's error.
        #[source]
        source: connect_core::BoxError,
    },
    /// A statement failed.
    #[error("{dialect}: {action} on table `{table}` failed: {source}")]
    Statement {
        /// `postgresql`, `mysql` or `sqlite`.
        dialect: &'static str,
        /// What was being done (`insert`, `upsert`, `create table`, ...).
        action: &'static str,
        /// The table.
        table: String,
        /// Whether the connection was lost (so a retry on a new one can succeed).
        connection_lost: bool,
        /// The driver's error.
        #[source]
        source: connect_core::BoxError,
    },
    /// The table does not exist and `auto.create` is off.
    #[error("table `{table}` does not exist (set auto.create=true to create it)")]
    MissingTable {
        /// The table.
        table: String,
    },
    /// A record field has no column and `auto.evolve` is off.
    #[error("table `{table}` has no column `{column}` (set auto.evolve=true to add it)")]
    MissingColumn {
        /// The table.
        table: String,
        /// The field without a column.
        column: String,
    },
    /// A field's type has no SQL column type in this dialect.
    #[error("{dialect}: field `{column}` of table `{table}` has type {schema}, which has no SQL column type")]
    UnsupportedType {
        /// `postgresql`, `mysql` or `sqlite`.
        dialect: &'static str,
        /// The table.
        table: String,
        /// The field.
        column: String,
        /// The field's Connect type (and logical name).
        schema: String,
    },
    /// A record cannot be written (no key where the `pk.mode` needs one, a value that does
    /// not fit the column...).
    #[error("record of topic `{topic}` cannot be written to table `{table}`: {message}")]
    BadRecord {
        /// The record's topic.
        topic: String,
        /// The table.
        table: String,
        /// What is wrong.
        message: String,
    },
    /// A transaction with rows in it was lost with its connection after those rows were
    /// acknowledged, and the sink could not write them again.
    #[error("the open transaction on `{table}` was lost and could not be replayed: {message}")]
    TransactionLost {
        /// A table of the transaction.
        table: String,
        /// Why the replay failed.
        message: String,
    },
}

impl JdbcError {
    /// Whether a retry (on a new connection) can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            JdbcError::Connect { .. } => true,
            JdbcError::Statement {
                connection_lost, ..
            } => *connection_lost,
            _ => false,
        }
    }
}

impl From<JdbcError> for connect_core::Error {
    fn from(e: JdbcError) -> Self {
        if e.is_retryable() {
            connect_core::Error::retryable("jdbc", e)
        } else {
            connect_core::Error::fatal("jdbc", e)
        }
    }
}
