//! Session onion requests, sans-I/O: hop ciphers, the layer codec, building an onion for a
//! path, peeling one layer into a typed decision, reply encryption, the v4 bencode codec.

#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used)]

pub mod error;

pub use error::{Error, Result};
