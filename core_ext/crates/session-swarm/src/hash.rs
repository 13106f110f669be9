//! The storage server's message hash (network spec §4.5 `store`, vectors §11.3 / §11.15):
//! `base64_unpadded(BLAKE2b-256(prefix ‖ key32 ‖ namespace_decimal ‖ data))`, where the
//! namespace contributes nothing when it is 0. Timestamps and expiries are not hashed.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};

use crate::error::Result;
use crate::space::AccountId;

/// Length of the text hash (43 base64 characters for 32 bytes, no padding).
pub const MESSAGE_HASH_LEN: usize = 43;

/// The 32-byte BLAKE2b digest behind the message hash.
pub fn message_hash_raw(account: &AccountId, namespace: i16, data: &[u8]) -> [u8; 32] {
    let mut h = Blake2b::<U32>::new();
    h.update(account.as_bytes());
    if namespace != 0 {
        h.update(namespace.to_string().as_bytes());
    }
    h.update(data);
    h.finalize().into()
}

/// The message hash of a parsed account (43 characters, unpadded base64).
pub fn message_hash_of(account: &AccountId, namespace: i16, data: &[u8]) -> String {
    STANDARD_NO_PAD.encode(message_hash_raw(account, namespace, data))
}

/// The message hash as the storage server returns it (43 characters, unpadded base64).
pub fn message_hash(account_id: &str, namespace: i16, data: &[u8]) -> Result<String> {
    Ok(message_hash_of(
        &AccountId::parse(account_id)?,
        namespace,
        data,
    ))
}
