//! Session's client-side cryptography, pure Rust, no I/O and no Python.
//!
//! One module per concept: [`keys`] (seed → Ed25519 → X25519 → Session ID, signatures),
//! [`mnemonic`] (13/25-word recovery phrases), [`padding`], [`protocol`] (1:1 sign-then-seal),
//! [`hash`] (BLAKE2b as libsodium's generichash), [`blinding`] (15/25 blinded IDs and
//! signatures, SOGS auth), [`blinded_dm`] (community DMs between blinded ids), [`attachment`] (AES-CBC + HMAC attachments and size buckets), [`profile_pic`] (AES-GCM avatars),
//! [`config`] (config-message encryption for multi-device sync), [`bt`] (canonical bencoding), [`compression`] (zstd),
//! [`group_message`] (03-group messages), [`group_keys`] (their key messages), [`subaccount`] (group members' swarm authentication).

#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used)]

pub mod attachment;
pub mod blinded_dm;
pub mod blinding;
pub mod bt;
pub mod compression;
pub mod config;
pub mod error;
pub mod group_keys;
pub mod group_message;
pub mod hash;
pub mod keys;
pub mod mnemonic;
pub mod ons;
pub mod padding;
pub mod profile_pic;
pub mod protocol;
pub mod subaccount;
pub mod xed25519;

pub use error::{Error, Result};
