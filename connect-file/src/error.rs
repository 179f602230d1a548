//! Errors of connect-file.

use std::path::PathBuf;

/// What can go wrong reading or writing files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The file cannot be opened (missing, permission denied, a directory...).
    #[error("cannot open `{path}`: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Reading failed.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Writing or syncing failed.
    #[error("cannot write `{path}`: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not valid UTF-8 (with `invalid.utf8=fail`).
    #[error("line at byte {offset} of `{path}` is not valid UTF-8 (set invalid.utf8=replace to decode it lossily)")]
    InvalidUtf8 {
        /// The file.
        path: PathBuf,
        /// Byte offset of the line's start.
        offset: u64,
    },
    /// A record's topic is not among the sink's `topics`.
    #[error(
        "record of topic `{topic}` reached file sink `{path}`, whose `topics` does not list it"
    )]
    UnexpectedTopic {
        /// The topic.
        topic: String,
        /// The sink's file.
        path: PathBuf,
    },
}

impl FileError {
    fn retryable(&self) -> bool {
        let io = match self {
            FileError::Read { source, .. } | FileError::Write { source, .. } => source,
            _ => return false,
        };
        matches!(
            io.kind(),
            std::io::ErrorKind::Interrupted
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::WouldBlock
        )
    }
}

impl From<FileError> for connect_core::Error {
    fn from(e: FileError) -> Self {
        if e.retryable() {
            connect_core::Error::retryable("file", e)
        } else {
            connect_core::Error::fatal("file", e)
        }
    }
}
