//! Session onion requests, sans-I/O: hop ciphers, the layer codec, building an onion for a
//! path, peeling one layer into a typed decision, reply encryption, the v4 bencode codec.
//!
//! * [`hop`] — per-hop encryption (`aes-gcm`, `xchacha20`, legacy `aes-cbc`) and key derivation.
//! * [`layer`] — `LE32(n) ‖ blob ‖ JSON` framing.
//! * [`builder`] — client: wrap a payload for a path of hops to a node or an HTTP server.
//! * [`peel`] — node: decrypt one layer and decide (deliver, relay, proxy).
//! * [`reply`] — destination reply encryption and the client's reply key.
//! * [`bencode`] — the v4 request/response framing.

#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used)]

pub mod bencode;
pub mod builder;
pub mod error;
pub mod hop;
pub mod layer;
pub mod peel;
pub mod reply;

pub use builder::{build, Destination, HopNode};
pub use error::{Error, Result};
pub use hop::{decrypt_hop, encrypt_hop, EncType, HopKey};
pub use peel::{url_target_allowed, Decision, PeelError, Peeler, MAX_ONION_HOPS};
pub use reply::{ReplyCipher, ReplyKey};
