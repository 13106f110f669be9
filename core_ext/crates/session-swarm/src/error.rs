//! The crate's one error type.

/// Result alias used across the crate.
pub type Result<T> = core::result::Result<T, Error>;

/// Errors of the swarm math.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The account ID is not 66 hex characters (a 1-byte prefix followed by a 32-byte key).
    #[error("invalid account ID: {0}")]
    InvalidAccountId(String),
    /// Closest-swarm lookup over an empty list.
    #[error("no swarms to choose from")]
    NoSwarms,
    /// A swarm id that is not an integer in 0..=2^64-2 (2^64-1 marks unassigned nodes).
    #[error("swarm ids must be integers from 0 to 2^64-2 (2^64-1 marks an unassigned node)")]
    InvalidSwarmId,
    /// A namespace outside the storage server's int16 range.
    #[error("namespace {0} is out of range: namespaces are integers from -32768 to 32767")]
    InvalidNamespace(String),
}
