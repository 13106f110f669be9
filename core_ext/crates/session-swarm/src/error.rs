//! The crate's one error type.

/// Result alias used across the crate.
pub type Result<T> = core::result::Result<T, Error>;

/// Errors of the swarm math.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The account ID is not 66 hex characters (or 64 without prefix).
    #[error("invalid account ID: {0}")]
    InvalidAccountId(String),
    /// Closest-swarm lookup over an empty list.
    #[error("no swarms to choose from")]
    NoSwarms,
}
