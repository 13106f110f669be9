//! The crate's one error type. Every variant knows the HTTP status a node answers with.
//!
//! Statuses follow the storage server (oxenss `rpc/request_handler.cpp`, `server/omq.cpp`):
//! undecryptable layer → 400 "Invalid ciphertext", unparsable inner JSON → 400 "Invalid json",
//! forbidden proxy URL → 400 "Invalid url", hop count above 15 → 400. (An unknown next node,
//! 502, is the relaying node's own answer, not a peel error.)

/// Result alias used across the crate.
pub type Result<T> = core::result::Result<T, Error>;

/// Everything that can go wrong while building, peeling or answering an onion request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The layer could not be decrypted (wrong key, tampered, truncated).
    #[error("onion layer decryption failed (invalid ciphertext): {0}")]
    DecryptionFailed(&'static str),
    /// The layer's framing (length prefix) is malformed.
    #[error("malformed onion layer: {0}")]
    Malformed(String),
    /// The layer's JSON routing instructions are malformed or incomplete.
    #[error("invalid json in onion layer: {0}")]
    InvalidJson(String),
    /// A key has the wrong size or is not usable (e.g. a low-order X25519 point).
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// The routing instructions name a destination this node will not serve
    /// (proxy target outside `/loki/…/lsrpc`, `/oxen/…/lsrpc`, bad scheme or host).
    #[error("forbidden onion destination (invalid url): {0}")]
    ForbiddenDestination(String),
    /// More hops than allowed.
    #[error("onion request max path length exceeded: {got} hops (at most {max})")]
    TooManyHops { got: usize, max: usize },
    /// A path without any hop.
    #[error("an onion path needs at least one hop")]
    EmptyPath,
    /// An unknown encryption type name.
    #[error("unknown encryption type {0:?} (expected \"aes-gcm\" or \"xchacha20\")")]
    UnknownEncType(String),
    /// A known encryption type that onion requests do not accept (legacy unauthenticated CBC).
    #[error("encryption type {0:?} is not accepted for onion requests")]
    UnsupportedEncType(&'static str),
    /// A bencoded v4 request or response is malformed.
    #[error("malformed v4 bencode: {0}")]
    Bencode(String),
    /// An argument is out of range or badly formed (caller error, not a peer error).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl Error {
    /// The HTTP status code a node answers with when this error ends a request.
    pub fn status(&self) -> u16 {
        match self {
            Error::DecryptionFailed(_)
            | Error::Malformed(_)
            | Error::InvalidJson(_)
            | Error::InvalidKey(_)
            | Error::ForbiddenDestination(_)
            | Error::TooManyHops { .. }
            | Error::EmptyPath
            | Error::UnknownEncType(_)
            | Error::UnsupportedEncType(_)
            | Error::Bencode(_)
            | Error::InvalidInput(_) => 400,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(Error::DecryptionFailed("x").status(), 400);
        assert_eq!(Error::ForbiddenDestination("x".into()).status(), 400);
        assert_eq!(Error::TooManyHops { got: 16, max: 15 }.status(), 400);
        assert_eq!(Error::InvalidJson("x".into()).status(), 400);
    }
}
