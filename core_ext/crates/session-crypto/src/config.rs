//! Config-message encryption for multi-device sync (client spec §6.7, TV-24/TV-25).
//!
//! Deterministic XChaCha20-Poly1305:
//! * key = BLAKE2b-256(key_base ‖ u64_BE(len(plaintext)) ‖ domain)
//! * nonce = BLAKE2b-192(plaintext; key = "libsessionutil-config-encrypted-" ‖ domain)
//! * output = ciphertext ‖ tag ‖ nonce (40 bytes of overhead).
//!
//! Plaintexts are prefix-padded with `0x00` to [`padded_size`] before encryption
//! ([`pad`]); encryption itself does not pad.

use blake2::digest::consts::{U24, U32};
use blake2::digest::Mac;
use blake2::{Blake2b, Blake2bMac, Digest};
use chacha20poly1305::aead::Aead;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Bytes added by [`encrypt`]: 16-byte tag + 24-byte nonce.
pub const OVERHEAD: usize = 40;
/// Required length of the key base (e.g. the user's Ed25519 seed).
pub const KEY_BASE_LEN: usize = 32;
/// Longest allowed domain (so that the nonce key fits BLAKE2b's 64-byte key limit).
pub const DOMAIN_MAX_LEN: usize = 24;
/// Largest config message stored in a swarm (75 KiB).
pub const MAX_MESSAGE_SIZE: usize = 76_800;

const NONCE_KEY_PREFIX: &[u8] = b"libsessionutil-config-encrypted-";
const NONCE_LEN: usize = 24;

/// Size a plaintext of `size` bytes is prefix-padded to so that `padded + overhead` is a
/// multiple of 256 (below 5,120), 1,024 (below 20,480), 2,048 (below 40,960) or 5,120.
pub fn padded_size(size: usize, overhead: usize) -> Result<usize> {
    let total = size.checked_add(overhead).ok_or(Error::TooLarge {
        what: "config message",
        max: usize::MAX,
        got: size,
    })?;
    let chunk = match total {
        t if t < 5 * 1024 => 256,
        t if t < 20 * 1024 => 1024,
        t if t < 40 * 1024 => 2048,
        _ => 5120,
    };
    let rounded = total
        .div_ceil(chunk)
        .checked_mul(chunk)
        .ok_or(Error::TooLarge {
            what: "config message",
            max: usize::MAX,
            got: size,
        })?;
    Ok(rounded - overhead)
}

/// `message` with `0x00` bytes prepended up to [`padded_size`]`(len, overhead)`.
pub fn pad(message: &[u8], overhead: usize) -> Result<Vec<u8>> {
    let target = padded_size(message.len(), overhead)?;
    let mut out = vec![0u8; target - message.len()];
    out.extend_from_slice(message);
    Ok(out)
}

/// BLAKE2b-256 of a serialized config message (the hash used in the `<` history list).
pub fn config_hash(data: &[u8]) -> [u8; 32] {
    Blake2b::<U32>::digest(data).into()
}

fn check_domain(domain: &str) -> Result<()> {
    if domain.is_empty() || domain.len() > DOMAIN_MAX_LEN {
        return Err(Error::InvalidValue {
            what: "config encryption domain",
            reason: "it must be 1 to 24 bytes long",
        });
    }
    Ok(())
}

fn derive_key(key_base: &[u8], message_len: usize, domain: &str) -> Result<Zeroizing<[u8; 32]>> {
    if key_base.len() != KEY_BASE_LEN {
        return Err(Error::InvalidKey("the config key base must be 32 bytes"));
    }
    check_domain(domain)?;
    let mut h = Blake2b::<U32>::new();
    h.update(key_base);
    h.update((message_len as u64).to_be_bytes());
    h.update(domain.as_bytes());
    Ok(Zeroizing::new(h.finalize().into()))
}

fn derive_nonce(plaintext: &[u8], domain: &str) -> [u8; NONCE_LEN] {
    let mut key = Vec::with_capacity(NONCE_KEY_PREFIX.len() + domain.len());
    key.extend_from_slice(NONCE_KEY_PREFIX);
    key.extend_from_slice(domain.as_bytes());
    // 32 + ≤ 24 bytes: always a valid BLAKE2b key (checked by `check_domain` first).
    let mut mac = <Blake2bMac<U24> as Mac>::new_from_slice(&key)
        .unwrap_or_else(|_| unreachable!("nonce keys are at most 56 bytes"));
    mac.update(plaintext);
    mac.finalize().into_bytes().into()
}

/// Encrypts a (normally already padded) config message.
pub fn encrypt(message: &[u8], key_base: &[u8], domain: &str) -> Result<Vec<u8>> {
    let key = derive_key(key_base, message.len(), domain)?;
    let nonce = derive_nonce(message, domain);
    let cipher = XChaCha20Poly1305::new((&*key).into());
    let mut out = cipher
        .encrypt(XNonce::from_slice(&nonce), message)
        .map_err(|_| Error::TooLarge {
            what: "config message",
            max: usize::MAX,
            got: message.len(),
        })?;
    out.extend_from_slice(&nonce);
    Ok(out)
}

/// Decrypts a config message produced by [`encrypt`] (padding is left in place).
pub fn decrypt(ciphertext: &[u8], key_base: &[u8], domain: &str) -> Result<Vec<u8>> {
    if ciphertext.len() < OVERHEAD {
        // Validate the other inputs first so a bad key is reported as such.
        derive_key(key_base, 0, domain)?;
        return Err(Error::DecryptionFailed(
            "the config message is too short (under 40 bytes)",
        ));
    }
    let (ct, nonce) = ciphertext.split_at(ciphertext.len() - NONCE_LEN);
    let key = derive_key(key_base, ct.len() - 16, domain)?;
    let cipher = XChaCha20Poly1305::new((&*key).into());
    cipher.decrypt(XNonce::from_slice(nonce), ct).map_err(|_| {
        Error::DecryptionFailed("the config message does not authenticate (wrong key or domain)")
    })
}
