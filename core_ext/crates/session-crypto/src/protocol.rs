//! The 1:1 "Session protocol" (client spec §2.3–2.4): sign-then-sealed-box.
//!
//! Sender: `sig = Ed25519(M ‖ A ‖ Y)`, then `crypto_box_seal(M ‖ A ‖ sig, Y)` where `A` is the
//! sender's Ed25519 public key and `Y` the recipient's X25519 key. Including `Y` in the signed
//! data binds the message to its recipient. Overhead: 96 + 48 = 144 bytes. Padding is the
//! caller's job (the Content is padded before it is encrypted, §2.1).
//!
//! Sealed boxes are byte-compatible with libsodium `crypto_box_seal`: ephemeral X25519 key
//! `e`, nonce `BLAKE2b-24(e_pk ‖ Y)`, `e_pk ‖ crypto_box_easy(...)`. As in libsodium, a
//! low-order public key (all-zero shared secret) is refused on both sides.
//!
//! Also here: libsession's "encrypt for multiple recipients" (`multi_encrypt.cpp`), used by
//! group key distribution.

use chacha20poly1305::XChaCha20Poly1305;
use crypto_secretbox::aead::generic_array::GenericArray;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Kdf, XSalsa20Poly1305};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha512};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::hash::{blake2b_n, blake2b_parts};
use crate::keys::{self, SessionKeys};

/// Sealed-box overhead: ephemeral public key (32) + Poly1305 tag (16).
pub const SEAL_OVERHEAD: usize = 48;
/// Sender Ed25519 public key (32) + signature (64) inside the box.
pub const SIGNATURE_OVERHEAD: usize = 96;
/// Total ciphertext overhead of [`encrypt_for_recipient`].
pub const ENCRYPT_OVERHEAD: usize = SEAL_OVERHEAD + SIGNATURE_OVERHEAD;
/// BLAKE2b key for the deterministic ephemeral seed (libsession).
pub const DETERMINISTIC_EPHEMERAL_KEY: &[u8] = b"SessionBoxEphemeralHashKey";

/// The crypto_box key (HSalsa20 of the X25519 shared secret, as `crypto_box_beforenm`), or
/// `None` when the other key is low-order (libsodium refuses those).
fn box_cipher(secret: &StaticSecret, their_public: &[u8; 32]) -> Option<XSalsa20Poly1305> {
    let shared = secret.diffie_hellman(&PublicKey::from(*their_public));
    if !shared.was_contributory() {
        return None;
    }
    let key = Zeroizing::new(XSalsa20Poly1305::kdf(
        GenericArray::from_slice(shared.as_bytes()),
        &GenericArray::default(),
    ));
    Some(XSalsa20Poly1305::new(&key))
}

fn seal_nonce(ephemeral_pk: &[u8; 32], recipient_pk: &[u8; 32]) -> Result<[u8; 24]> {
    blake2b_n::<24>(&[ephemeral_pk, recipient_pk], &[])
}

/// `crypto_box_seal` with a caller-chosen ephemeral secret key (raw 32 bytes, clamped by
/// X25519). Used by the deterministic variant and to check the fixed test vector; normal
/// callers use [`seal`].
pub fn seal_with_ephemeral_secret(
    recipient_x25519_pk: &[u8; 32],
    ephemeral_secret: &[u8; 32],
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let esk = StaticSecret::from(*ephemeral_secret);
    let epk = PublicKey::from(&esk).to_bytes();
    let cipher = box_cipher(&esk, recipient_x25519_pk).ok_or(Error::InvalidKey(
        "the recipient's X25519 public key is a low-order point",
    ))?;
    let nonce = seal_nonce(&epk, recipient_x25519_pk)?;
    let body = cipher
        .encrypt(GenericArray::from_slice(&nonce), plaintext)
        .map_err(|_| Error::TooLarge {
            what: "a sealed-box plaintext",
            max: usize::MAX / 2,
            got: plaintext.len(),
        })?;
    let mut out = Vec::with_capacity(32 + body.len());
    out.extend_from_slice(&epk);
    out.extend_from_slice(&body);
    Ok(out)
}

/// libsodium `crypto_box_seal` with a fresh random ephemeral key.
pub fn seal(recipient_x25519_pk: &[u8; 32], plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut esk = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(&mut esk[..]);
    seal_with_ephemeral_secret(recipient_x25519_pk, &esk, plaintext)
}

/// libsodium `crypto_box_seal_open`.
pub fn seal_open(
    x25519_pk: &[u8; 32],
    x25519_sk: &StaticSecret,
    ciphertext: &[u8],
) -> Result<Vec<u8>> {
    if ciphertext.len() < SEAL_OVERHEAD {
        return Err(Error::DecryptionFailed(
            "the sealed box is shorter than 48 bytes",
        ));
    }
    let mut epk = [0u8; 32];
    epk.copy_from_slice(&ciphertext[..32]);
    let cipher = box_cipher(x25519_sk, &epk).ok_or(Error::DecryptionFailed(
        "the sealed box's ephemeral key is a low-order point",
    ))?;
    let nonce = seal_nonce(&epk, x25519_pk)?;
    cipher
        .decrypt(GenericArray::from_slice(&nonce), &ciphertext[32..])
        .map_err(|_| Error::DecryptionFailed("not addressed to this key, or corrupted"))
}

/// libsodium `crypto_box_seed_keypair`: secret = first 32 bytes of SHA-512(seed).
fn box_seed_secret(seed: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let h = Zeroizing::new(Sha512::digest(seed));
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&h[..32]);
    out
}

/// `M ‖ A ‖ sig` with `sig = Ed25519(M ‖ A ‖ Y)`.
fn signed_inner(
    sender: &SessionKeys,
    recipient_x25519_pk: &[u8; 32],
    plaintext: &[u8],
) -> Zeroizing<Vec<u8>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(plaintext.len() + SIGNATURE_OVERHEAD));
    buf.extend_from_slice(plaintext);
    buf.extend_from_slice(sender.ed25519_public());
    buf.extend_from_slice(recipient_x25519_pk);
    let sig = sender.sign(&buf);
    buf.truncate(plaintext.len() + 32);
    buf.extend_from_slice(&sig);
    buf
}

/// Sign-then-seal `plaintext` (already padded by the caller) for the X25519 key of a
/// Session ID. Output is `plaintext.len() + 144` bytes.
pub fn encrypt_for_recipient(
    sender: &SessionKeys,
    recipient_x25519_pk: &[u8; 32],
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    seal(
        recipient_x25519_pk,
        &signed_inner(sender, recipient_x25519_pk, plaintext),
    )
}

/// libsession's deterministic variant (used for config messages): the ephemeral key is
/// `crypto_box_seed_keypair(BLAKE2b-32(seed ‖ Y ‖ M; key="SessionBoxEphemeralHashKey"))`,
/// so the same inputs give the same ciphertext.
pub fn encrypt_for_recipient_deterministic(
    sender: &SessionKeys,
    recipient_x25519_pk: &[u8; 32],
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let eph_seed = Zeroizing::new(blake2b_n::<32>(
        &[sender.ed25519_seed(), recipient_x25519_pk, plaintext],
        DETERMINISTIC_EPHEMERAL_KEY,
    )?);
    let esk = box_seed_secret(&eph_seed);
    seal_with_ephemeral_secret(
        recipient_x25519_pk,
        &esk,
        &signed_inner(sender, recipient_x25519_pk, plaintext),
    )
}

/// A decrypted, signature-checked 1:1 message.
#[derive(Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The plaintext exactly as encrypted (still padded).
    pub plaintext: Vec<u8>,
    /// The sender's Ed25519 public key (it signed the message).
    pub sender_ed25519: [u8; 32],
    /// The sender's X25519 key, i.e. their Session ID without the `05`.
    pub sender_x25519: [u8; 32],
}

impl Decrypted {
    pub fn sender_session_id(&self) -> String {
        keys::session_id_from_x25519(&self.sender_x25519)
    }
}

impl core::fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Decrypted")
            .field("plaintext_len", &self.plaintext.len())
            .field("sender", &self.sender_session_id())
            .finish()
    }
}

/// Opens a message addressed to `recipient`, checks the sender's signature over
/// `M ‖ A ‖ own X25519 key` (libsodium rules, see [`keys::verify`]) and identifies the sender.
pub fn decrypt_incoming(recipient: &SessionKeys, ciphertext: &[u8]) -> Result<Decrypted> {
    if ciphertext.len() < ENCRYPT_OVERHEAD {
        return Err(Error::DecryptionFailed(
            "the ciphertext is shorter than the 144-byte minimum of a Session message",
        ));
    }
    let mut inner = seal_open(
        recipient.x25519_public(),
        recipient.x25519_secret(),
        ciphertext,
    )?;
    let msg_len = inner.len() - SIGNATURE_OVERHEAD;
    let mut sender_ed25519 = [0u8; 32];
    sender_ed25519.copy_from_slice(&inner[msg_len..msg_len + 32]);
    let mut sig = [0u8; 64];
    sig.copy_from_slice(&inner[msg_len + 32..]);
    // Reuse the buffer for the signed data M ‖ A ‖ Y.
    inner.truncate(msg_len + 32);
    inner.extend_from_slice(recipient.x25519_public());
    let sender_x25519 =
        keys::verify_and_convert(&sender_ed25519, &inner, &sig).map_err(|e| match e {
            Error::InvalidKey(_) => {
                Error::DecryptionFailed("the sender's Ed25519 key has no valid Session ID")
            }
            other => other,
        })?;
    inner.truncate(msg_len);
    Ok(Decrypted {
        plaintext: inner,
        sender_ed25519,
        sender_x25519,
    })
}

// ---- encrypt for multiple recipients (libsession multi_encrypt) ----

/// Per-recipient key: `BLAKE2b-32(X25519(a, B) ‖ A ‖ B; key=domain)`, where `A` is always the
/// sender's X25519 public key and `B` the recipient's (both sides compute the same value).
pub fn multi_encrypt_key(
    own_secret: &StaticSecret,
    sender_pk: &[u8; 32],
    recipient_pk: &[u8; 32],
    other_pk: &[u8; 32],
    domain: &[u8],
) -> Result<Zeroizing<[u8; 32]>> {
    let shared = own_secret.diffie_hellman(&PublicKey::from(*other_pk));
    if !shared.was_contributory() {
        return Err(Error::InvalidKey(
            "the other party's X25519 public key is a low-order point",
        ));
    }
    let v = Zeroizing::new(blake2b_parts(
        &[shared.as_bytes(), sender_pk, recipient_pk],
        domain,
        32,
    )?);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&v);
    Ok(out)
}

/// One recipient's ciphertext: XChaCha20-Poly1305 of `message` with the shared `nonce`.
pub fn multi_encrypt_one(
    sender_secret: &StaticSecret,
    sender_pk: &[u8; 32],
    recipient_pk: &[u8; 32],
    nonce: &[u8; 24],
    domain: &[u8],
    message: &[u8],
) -> Result<Vec<u8>> {
    let key = multi_encrypt_key(sender_secret, sender_pk, recipient_pk, recipient_pk, domain)?;
    XChaCha20Poly1305::new(GenericArray::from_slice(&key[..]))
        .encrypt(GenericArray::from_slice(nonce), message)
        .map_err(|_| Error::TooLarge {
            what: "a message",
            max: usize::MAX / 2,
            got: message.len(),
        })
}

/// Tries every ciphertext with the recipient's key; returns the first that opens.
pub fn multi_decrypt(
    recipient_secret: &StaticSecret,
    recipient_pk: &[u8; 32],
    sender_pk: &[u8; 32],
    nonce: &[u8; 24],
    domain: &[u8],
    ciphertexts: &[&[u8]],
) -> Result<Vec<u8>> {
    let key = multi_encrypt_key(recipient_secret, sender_pk, recipient_pk, sender_pk, domain)?;
    let cipher = XChaCha20Poly1305::new(GenericArray::from_slice(&key[..]));
    ciphertexts
        .iter()
        .find_map(|ct| cipher.decrypt(GenericArray::from_slice(nonce), *ct).ok())
        .ok_or(Error::DecryptionFailed(
            "none of the ciphertexts is addressed to this key",
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_interoperates_with_crypto_box_crate() {
        let sk = crypto_box::SecretKey::from_bytes([9u8; 32]);
        let pk = sk.public_key().to_bytes();
        for len in [0usize, 1, 100, 1000] {
            let msg = vec![0xabu8; len];
            let ours = seal(&pk, &msg).expect("seal");
            assert_eq!(ours.len(), len + SEAL_OVERHEAD);
            assert_eq!(sk.unseal(&ours).expect("crate opens ours"), msg);
            let theirs = sk.public_key().seal(&mut OsRng, &msg).expect("crate seal");
            let x_sk = StaticSecret::from([9u8; 32]);
            assert_eq!(seal_open(&pk, &x_sk, &theirs).expect("we open theirs"), msg);
        }
    }

    #[test]
    fn low_order_keys_are_refused() {
        let zero = [0u8; 32];
        assert!(matches!(seal(&zero, b"x"), Err(Error::InvalidKey(_))));
        let x_sk = StaticSecret::from([9u8; 32]);
        let pk = PublicKey::from(&x_sk).to_bytes();
        let mut ct = vec![0u8; 60];
        ct[0] = 1; // u = 1 is low order too
        assert!(matches!(
            seal_open(&pk, &x_sk, &ct),
            Err(Error::DecryptionFailed(_))
        ));
    }

    #[test]
    fn round_trip_and_wrong_recipient() {
        let a = SessionKeys::from_seed(&[1u8; 16]).expect("seed");
        let b = SessionKeys::from_seed(&[2u8; 16]).expect("seed");
        let ct = encrypt_for_recipient(&a, b.x25519_public(), b"hi").expect("encrypt");
        assert_eq!(ct.len(), 2 + ENCRYPT_OVERHEAD);
        let d = decrypt_incoming(&b, &ct).expect("decrypt");
        assert_eq!(d.plaintext, b"hi");
        assert_eq!(d.sender_session_id(), a.session_id());
        assert_eq!(&d.sender_ed25519, a.ed25519_public());
        assert!(decrypt_incoming(&a, &ct).is_err());
        assert!(decrypt_incoming(&b, &ct[..143]).is_err());
        let empty = encrypt_for_recipient(&a, b.x25519_public(), b"").expect("encrypt");
        assert_eq!(decrypt_incoming(&b, &empty).expect("empty").plaintext, b"");
    }

    #[test]
    fn signature_binds_the_recipient() {
        // A box re-sealed to someone else (forwarding) must fail signature verification.
        let a = SessionKeys::from_seed(&[1u8; 16]).expect("seed");
        let b = SessionKeys::from_seed(&[2u8; 16]).expect("seed");
        let c = SessionKeys::from_seed(&[3u8; 16]).expect("seed");
        let ct = encrypt_for_recipient(&a, b.x25519_public(), b"secret").expect("encrypt");
        let inner = seal_open(b.x25519_public(), b.x25519_secret(), &ct).expect("open");
        let forwarded = seal(c.x25519_public(), &inner).expect("seal");
        assert_eq!(
            decrypt_incoming(&c, &forwarded),
            Err(Error::InvalidSignature)
        );
    }
}
