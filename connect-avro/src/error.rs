//! What can go wrong in connect-avro.

/// connect-avro's errors.
#[derive(Debug, thiserror::Error)]
pub enum AvroError {
    /// A setting is missing or invalid.
    #[error("invalid configuration `{key}`: {message}")]
    Config {
        /// The full key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The schema registry failed or refused a request.
    #[error("schema registry: {message}")]
    Registry {
        /// Whether trying again may succeed (unreachable, HTTP 5xx or 429).
        retryable: bool,
        /// What happened, naming the subject or id.
        message: String,
    },
}

impl AvroError {
    /// As connect-core's error: configuration errors name the key; a registry that may
    /// come back is retryable; anything else is a conversion error of `topic`'s record.
    pub fn into_core(self, topic: &str) -> connect_core::Error {
        match self {
            AvroError::Config { key, message } => connect_core::Error::config(key, message),
            AvroError::Registry {
                retryable: true,
                message,
            } => connect_core::Error::retryable("schema-registry", message),
            AvroError::Registry { message, .. } => {
                connect_core::convert::conversion_error(topic, message)
            }
        }
    }
}
