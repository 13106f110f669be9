//! Swarm math shared by nodes and clients: account ID → 64-bit swarm space, the closest
//! swarm, and the storage message hash.

#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used)]

pub mod error;

pub use error::{Error, Result};
