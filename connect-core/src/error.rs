//! Errors of connect-core and the one place that decides whether an error is retried.

use std::path::PathBuf;

/// A boxed error from a connector, a converter or user code.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used throughout connect-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the engine does with an error: the single decision point is [`Error::directive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDirective {
    /// Transient (connection lost, server restarting, broker unavailable): retry with backoff.
    Retry,
    /// Permanent (bad config, bad data, corrupt state): stop the pipeline and surface the error.
    Fail,
}

/// Every error the engine, its stores, converters and transforms can report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration key is missing, unknown or has an invalid value.
    #[error("invalid configuration `{key}`: {message}")]
    Config {
        /// The offending key, as the user wrote it (e.g. `offset.flush.interval.ms`).
        key: String,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{action} `{path}`: {source}")]
    Io {
        /// What was being done (e.g. "cannot open offsets file").
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A state file (offsets, schema history) exists but cannot be understood. Never
    /// answered by starting from scratch: the user decides.
    #[error("corrupt {what} file `{path}`: {detail}")]
    CorruptFile {
        /// "offsets" or "schema history".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Where and why (line, parse error).
        detail: String,
    },
    /// A record could not be converted to or from bytes.
    #[error("cannot convert record for topic `{topic}`: {message}")]
    Conversion {
        /// Topic of the record.
        topic: String,
        /// What could not be converted.
        message: String,
    },
    /// A transform failed on a record.
    #[error("transform `{transform}` failed on a record of topic `{topic}`: {message}")]
    Transform {
        /// Alias of the transform in the chain.
        transform: String,
        /// Topic of the record.
        topic: String,
        /// Why.
        message: String,
    },
    /// The destination dropped a batch without acknowledging it. The pipeline stops: a
    /// batch is never silently skipped.
    #[error("batch {batch} of pipeline `{pipeline}` was dropped without ack (nack)")]
    Nacked {
        /// Pipeline name.
        pipeline: String,
        /// Sequence number of the batch.
        batch: u64,
    },
    /// The destination rejected a batch.
    #[error("destination of pipeline `{pipeline}` failed: {source}")]
    Destination {
        /// Pipeline name.
        pipeline: String,
        /// Whether retrying can help.
        retryable: bool,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// A connector (source or sink task) failed.
    #[error("connector `{connector}` failed: {source}")]
    Connector {
        /// Connector name.
        connector: String,
        /// Whether retrying can help (e.g. a lost connection).
        retryable: bool,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// Retries of a retryable error ran out of time.
    #[error("gave up after retrying for {elapsed_ms} ms: {last}")]
    RetriesExhausted {
        /// How long it was retried.
        elapsed_ms: u64,
        /// The last error seen.
        last: Box<Error>,
    },
    /// The engine was asked to do something after it stopped.
    #[error("engine has stopped")]
    Stopped,
}

impl Error {
    /// Builds a [`Error::Config`] naming the key.
    pub fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            key: key.into(),
            message: message.into(),
        }
    }

    /// Builds an [`Error::Io`] naming the file.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// A connector error that retrying can fix (connection lost, server restarting).
    pub fn retryable(connector: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Connector {
            connector: connector.into(),
            retryable: true,
            source: source.into(),
        }
    }

    /// A connector error that retrying cannot fix.
    pub fn fatal(connector: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Connector {
            connector: connector.into(),
            retryable: false,
            source: source.into(),
        }
    }

    /// The single place that decides whether the engine retries or fails.
    pub fn directive(&self) -> RetryDirective {
        match self {
            Error::Connector { retryable, .. } | Error::Destination { retryable, .. } => {
                if *retryable {
                    RetryDirective::Retry
                } else {
                    RetryDirective::Fail
                }
            }
            Error::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::Interrupted
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::WouldBlock
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::BrokenPipe => RetryDirective::Retry,
                _ => RetryDirective::Fail,
            },
            _ => RetryDirective::Fail,
        }
    }

    /// Shorthand for `directive() == Retry`.
    pub fn is_retryable(&self) -> bool {
        self.directive() == RetryDirective::Retry
    }

    /// Whether the error is about one record (conversion, transform), so that
    /// `errors.tolerance=all` may skip or dead-letter that record.
    pub fn is_record_level(&self) -> bool {
        matches!(self, Error::Conversion { .. } | Error::Transform { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_decision_follows_the_kind() {
        assert!(Error::retryable("pg", "connection reset").is_retryable());
        assert!(!Error::fatal("pg", "slot lost").is_retryable());
        assert!(!Error::config("tasks.max", "must be > 0").is_retryable());
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(Error::io("connect", "/x", refused).is_retryable());
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(!Error::io("open", "/x", denied).is_retryable());
    }

    #[test]
    fn config_error_names_the_key() {
        let e = Error::config("offset.flush.interval.ms", "not a number: `abc`");
        assert!(e.to_string().contains("offset.flush.interval.ms"));
    }
}
