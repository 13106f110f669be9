//! Legacy profile-picture encryption (client spec §6.9): a random 32-byte profile key,
//! blob = IV (12 random bytes) ‖ AES-256-GCM(image) with its 16-byte tag. The key travels in
//! `DataMessage.profileKey` and in the UserProfile config; the blob goes to the file server.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use rand_core::{OsRng, RngCore};

use crate::error::{Error, Result};

/// Profile key length (AES-256).
pub const KEY_LEN: usize = 32;
/// GCM nonce length used by Session's clients.
pub const IV_LEN: usize = 12;
/// GCM tag length.
pub const TAG_LEN: usize = 16;

fn cipher(key: &[u8]) -> Result<Aes256Gcm> {
    Aes256Gcm::new_from_slice(key).map_err(|_| Error::InvalidKey("a profile key must be 32 bytes"))
}

/// Encrypts `image` under `key` with the given nonce (deterministic; tests use it).
pub fn encrypt_with_iv(image: &[u8], key: &[u8], iv: &[u8; IV_LEN]) -> Result<Vec<u8>> {
    let ct = cipher(key)?
        .encrypt(Nonce::from_slice(iv), image)
        .map_err(|_| Error::InvalidValue {
            what: "profile picture",
            reason: "too large for AES-GCM",
        })?;
    let mut out = Vec::with_capacity(IV_LEN + ct.len());
    out.extend_from_slice(iv);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Encrypts `image` under `key` with a random nonce: `IV ‖ ciphertext ‖ tag`.
pub fn encrypt(image: &[u8], key: &[u8]) -> Result<Vec<u8>> {
    let mut iv = [0u8; IV_LEN];
    OsRng.fill_bytes(&mut iv);
    encrypt_with_iv(image, key, &iv)
}

/// Verifies and decrypts a blob from [`encrypt`].
pub fn decrypt(blob: &[u8], key: &[u8]) -> Result<Vec<u8>> {
    let c = cipher(key)?;
    if blob.len() < IV_LEN + TAG_LEN {
        return Err(Error::DecryptionFailed(
            "the profile picture is too short (less than IV + tag, 28 bytes)",
        ));
    }
    let (iv, ct) = blob.split_at(IV_LEN);
    c.decrypt(Nonce::from_slice(iv), ct).map_err(|_| {
        Error::DecryptionFailed("the profile picture does not decrypt (wrong key or corrupted)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let key = [5u8; KEY_LEN];
        let blob = encrypt(b"a picture", &key).unwrap_or_default();
        assert_eq!(blob.len(), IV_LEN + 9 + TAG_LEN);
        assert_eq!(decrypt(&blob, &key).unwrap_or_default(), b"a picture");
        let mut bad = blob.clone();
        bad[14] ^= 1;
        assert!(decrypt(&bad, &key).is_err());
        assert!(decrypt(&blob[..20], &key).is_err());
        assert!(encrypt(b"x", &key[..31]).is_err());
    }
}
