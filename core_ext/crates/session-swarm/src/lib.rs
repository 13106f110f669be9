//! Swarm math shared by nodes and clients: account ID → 64-bit swarm space, the closest
//! swarm, and the storage message hash.
//!
//! * [`space`]: [`AccountId`] parsing and [`swarm_space`] (XOR of the four big-endian words
//!   of the 32-byte key; the prefix byte is ignored).
//! * [`closest`]: [`closest_swarm`] over any list, and [`SwarmIndex`], a sorted index for
//!   repeated lookups (binary search). Distances wrap around 2^64; ties go to the lower
//!   ("left") swarm.
//! * [`hash`]: [`message_hash`], the storage server's message identifier.
//! * [`plain_store`]: [`parse_plain_store`], the fast path of an unsigned `store` request.

#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used)]

pub mod closest;
pub mod error;
pub mod hash;
pub mod plain_store;
pub mod space;

pub use closest::{
    closest_swarm, closest_swarm_for_space, ClosestScan, SwarmIndex, INVALID_SWARM_ID,
};
pub use error::{Error, Result};
pub use hash::{message_hash, message_hash_of, message_hash_raw, MESSAGE_HASH_LEN};
pub use plain_store::{parse_plain_store, PlainStore};
pub use space::{swarm_space, swarm_space_of_key, AccountId};
