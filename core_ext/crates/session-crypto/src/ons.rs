//! Session Name Service (ONS) values: the name hash a lookup sends and the encrypted
//! Session ID a node answers with (client spec §6.8, libsession `decrypt_ons_response`).
//!
//! `name_hash = H_32(name)` (unkeyed BLAKE2b-256 of the lower-cased name);
//! `key = H_32(name; key = name_hash)`; the value is XChaCha20-Poly1305-IETF of the 33-byte
//! Session ID under that key with a 24-byte nonce that travels beside it.

use blake2::digest::consts::U32;
use blake2::digest::Mac;
use blake2::{Blake2b, Blake2bMac, Digest};
use chacha20poly1305::aead::Aead;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Length of the nonce stored beside an encrypted value.
pub const NONCE_LEN: usize = 24;
/// Length of the plaintext: a Session ID (`05` prefix byte + 32-byte X25519 key).
pub const SESSION_ID_LEN: usize = 33;
/// Length of an encrypted value (Session ID + Poly1305 tag).
pub const VALUE_LEN: usize = SESSION_ID_LEN + 16;

/// The lookup key of a (lower-cased) name: unkeyed BLAKE2b-256 of its UTF-8 bytes.
pub fn name_hash(name: &str) -> [u8; 32] {
    Blake2b::<U32>::digest(name.as_bytes()).into()
}

fn value_key(name: &str) -> Zeroizing<[u8; 32]> {
    let hash = name_hash(name);
    // A 32-byte key is always a valid BLAKE2b key.
    let mut mac = <Blake2bMac<U32> as Mac>::new_from_slice(&hash)
        .unwrap_or_else(|_| unreachable!("a 32-byte BLAKE2b key is valid"));
    mac.update(name.as_bytes());
    Zeroizing::new(mac.finalize().into_bytes().into())
}

fn check_nonce(nonce: &[u8]) -> Result<&XNonce> {
    if nonce.len() != NONCE_LEN {
        return Err(Error::InvalidLength {
            what: "an ONS nonce",
            expected: "24",
            got: nonce.len(),
        });
    }
    Ok(XNonce::from_slice(nonce))
}

/// Encrypts a 33-byte Session ID for `name` with the given 24-byte nonce.
pub fn encrypt(name: &str, session_id: &[u8], nonce: &[u8]) -> Result<Vec<u8>> {
    if session_id.len() != SESSION_ID_LEN {
        return Err(Error::InvalidLength {
            what: "a Session ID",
            expected: "33",
            got: session_id.len(),
        });
    }
    let nonce = check_nonce(nonce)?;
    let key = value_key(name);
    XChaCha20Poly1305::new((&*key).into())
        .encrypt(nonce, session_id)
        .map_err(|_| Error::InvalidValue {
            what: "ONS value",
            reason: "it could not be encrypted",
        })
}

/// Decrypts an ONS value for `name`; the result is the 33-byte Session ID.
pub fn decrypt(name: &str, ciphertext: &[u8], nonce: &[u8]) -> Result<Vec<u8>> {
    let nonce = check_nonce(nonce)?;
    if ciphertext.len() != VALUE_LEN {
        return Err(Error::DecryptionFailed(
            "the name's value is not an encrypted Session ID (wrong length)",
        ));
    }
    let key = value_key(name);
    XChaCha20Poly1305::new((&*key).into())
        .decrypt(nonce, ciphertext)
        .map_err(|_| Error::DecryptionFailed("the name's value does not authenticate"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let sid = [5u8; SESSION_ID_LEN];
        let nonce = [7u8; NONCE_LEN];
        let ct = encrypt("test", &sid, &nonce).expect("encrypts");
        assert_eq!(
            decrypt("test", &ct, &nonce).expect("decrypts"),
            sid.to_vec()
        );
        assert!(decrypt("tesu", &ct, &nonce).is_err());
        let mut bad = ct.clone();
        bad[3] ^= 1;
        assert!(decrypt("test", &bad, &nonce).is_err());
    }
}
