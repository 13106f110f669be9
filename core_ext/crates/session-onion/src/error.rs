//! The crate's one error type. Every variant knows the HTTP status a node answers with.

/// Result alias used across the crate.
pub type Result<T> = core::result::Result<T, Error>;

/// Everything that can go wrong while building, peeling or answering an onion request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The layer could not be decrypted (wrong key, tampered, truncated).
    #[error("onion layer decryption failed: {0}")]
    DecryptionFailed(&'static str),
    /// The layer's framing or JSON is malformed.
    #[error("malformed onion layer: {0}")]
    Malformed(String),
    /// A key has the wrong size.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// The routing instructions name a destination this node will not serve.
    #[error("forbidden onion destination: {0}")]
    ForbiddenDestination(String),
    /// More hops than allowed.
    #[error("too many hops: {got} (at most {max})")]
    TooManyHops { got: usize, max: usize },
    /// An unknown encryption type name.
    #[error("unknown encryption type {0:?} (expected \"aes-gcm\" or \"xchacha20\")")]
    UnknownEncType(String),
    /// A bencoded v4 request or response is malformed.
    #[error("malformed v4 bencode: {0}")]
    Bencode(String),
}

impl Error {
    /// The HTTP status code a node answers with when this error ends a request.
    pub fn status(&self) -> u16 {
        match self {
            Error::ForbiddenDestination(_) => 400,
            Error::TooManyHops { .. } => 400,
            _ => 400,
        }
    }
}
