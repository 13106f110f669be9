//! Blinded direct messages between community members (client spec §4.6).
//!
//! Two members of a community know each other only by blinded ids (`15…` or `25…`). The
//! sender with blinded key `kA` and the recipient with blinded key `jB` share
//! `key = BLAKE2b-256(x ‖ kA ‖ jB)` (always sender first), where `x = a'·jB` for the sender and
//! `b'·kA` for the recipient: with 15-blinding every member of a server has the same factor, so
//! `a' = a` (the account's X25519 scalar); with 25-blinding `a' = k'·a` (the member's own,
//! sign-corrected factor), and both sides reach `k·j·a·b·B`.
//!
//! The message is `0x00 ‖ XChaCha20-Poly1305(content ‖ A, nonce, key) ‖ nonce` where `A` is the
//! sender's real Ed25519 key: the recipient learns the sender's Session ID and checks that it
//! blinds to the id the server delivered the message from. The sender's own devices read the
//! copy in the server's outbox with the same key ("sending" orientation).

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::blinding::{self, PREFIX_BLIND15, PREFIX_BLIND25};
use crate::error::{Error, Result};
use crate::keys;

/// The version byte that starts every blinded DM this module writes and reads.
pub const BLINDED_DM_VERSION: u8 = 0x00;
/// Length of the XChaCha20 nonce at the end of a blinded DM.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Bytes a blinded DM adds to its content: version, sender key, tag and nonce.
pub const OVERHEAD: usize = 1 + 32 + TAG_LEN + NONCE_LEN;

/// A blinded id split into its prefix byte (`0x15` or `0x25`) and its 32-byte key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlindedId {
    /// `0x15` or `0x25`.
    pub prefix: u8,
    /// The blinded Ed25519 public key.
    pub key: [u8; 32],
}

impl BlindedId {
    /// Parses a 15/25 blinded id (66 hex digits); other prefixes (07, 05, 00) are refused.
    pub fn parse(text: &str) -> Result<Self> {
        let (prefix, key) = blinding::parse_blinded_id(text)?;
        if prefix != PREFIX_BLIND15 && prefix != PREFIX_BLIND25 {
            return Err(Error::InvalidSessionId(
                "a community member's blinded id starts with 15 or 25".into(),
            ));
        }
        Ok(Self { prefix, key })
    }
}

/// A decrypted blinded DM: the content (still padded as the sender padded it) and the
/// sender's X25519 key (the Session ID is `05` ‖ it).
pub struct OpenedDm {
    /// The plaintext content, as the sender passed it to [`encrypt`].
    pub content: Zeroizing<Vec<u8>>,
    /// The sender's X25519 public key.
    pub sender_x25519: [u8; 32],
}

impl core::fmt::Debug for OpenedDm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OpenedDm")
            .field("content_len", &self.content.len())
            .finish_non_exhaustive()
    }
}

/// This identity's own blinded key of the given kind on this server, with its secret factor
/// for the shared point (`a` for 15, `k'·a` for 25).
fn own_keys(
    seed: &[u8; 32],
    server_pk: &[u8; 32],
    prefix: u8,
) -> Result<([u8; 32], Zeroizing<Scalar>)> {
    let a = Zeroizing::new(Scalar::from_bytes_mod_order(
        *keys::ed25519_seed_to_x25519_secret(seed),
    ));
    match prefix {
        PREFIX_BLIND15 => Ok((blinding::blind15_public_key(seed, server_pk), a)),
        PREFIX_BLIND25 => {
            let (public, k) = blinding::blind25_public_key_and_factor(seed, server_pk);
            Ok((public, Zeroizing::new(*k * *a)))
        }
        _ => Err(Error::InvalidSessionId(
            "a community member's blinded id starts with 15 or 25".into(),
        )),
    }
}

/// Decodes a blinded public key as a prime-order point, refusing what libsodium's
/// `crypto_scalarmult_ed25519_noclamp` refuses (non-canonical, low-order, torsion).
fn blinded_point(key: &[u8; 32]) -> Result<EdwardsPoint> {
    let point = CompressedEdwardsY(*key)
        .decompress()
        .filter(|p| p.compress().as_bytes() == key)
        .ok_or(Error::InvalidKey(
            "the blinded id is not a valid curve point",
        ))?;
    if point.is_small_order() || !keys::is_torsion_free_vartime(&point) {
        return Err(Error::InvalidKey(
            "the blinded id is a low-order point or outside the prime-order subgroup",
        ));
    }
    Ok(point)
}

/// `BLAKE2b-256(secret·other ‖ sender ‖ recipient)`.
fn shared_key(
    secret: &Scalar,
    other: &[u8; 32],
    sender: &[u8; 32],
    recipient: &[u8; 32],
) -> Result<Zeroizing<[u8; 32]>> {
    let point = secret * blinded_point(other)?;
    if point.is_identity() {
        return Err(Error::InvalidKey("the shared point is the identity"));
    }
    let x = Zeroizing::new(point.compress().to_bytes());
    let mut h = Blake2b::<U32>::new();
    h.update(&x[..]);
    h.update(sender);
    h.update(recipient);
    Ok(Zeroizing::new(h.finalize().into()))
}

/// Encrypts `content` from the identity with this seed to the member `recipient` on the
/// server `server_pk`, with the given 24-byte nonce (use [`encrypt`] for a random one).
pub fn encrypt_with_nonce(
    seed: &[u8; 32],
    server_pk: &[u8; 32],
    recipient: &BlindedId,
    content: &[u8],
    nonce: &[u8; NONCE_LEN],
) -> Result<Vec<u8>> {
    let (own_public, secret) = own_keys(seed, server_pk, recipient.prefix)?;
    let key = shared_key(&secret, &recipient.key, &own_public, &recipient.key)?;
    let (ed_pk, _) = keys::ed25519_keypair_from_seed(seed);
    let mut inner = Zeroizing::new(Vec::with_capacity(content.len() + 32));
    inner.extend_from_slice(content);
    inner.extend_from_slice(&ed_pk);
    let sealed = XChaCha20Poly1305::new((&*key).into())
        .encrypt(XNonce::from_slice(nonce), inner.as_slice())
        .map_err(|_| Error::TooLarge {
            what: "a blinded message",
            max: u32::MAX as usize,
            got: content.len(),
        })?;
    let mut out = Vec::with_capacity(1 + sealed.len() + NONCE_LEN);
    out.push(BLINDED_DM_VERSION);
    out.extend_from_slice(&sealed);
    out.extend_from_slice(nonce);
    Ok(out)
}

/// Encrypts `content` for the member `recipient` with a fresh random nonce.
pub fn encrypt(
    seed: &[u8; 32],
    server_pk: &[u8; 32],
    recipient: &BlindedId,
    content: &[u8],
) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    encrypt_with_nonce(seed, server_pk, recipient, content, &nonce)
}

/// Splits a blinded DM into (sealed bytes with tag, nonce) after checking version and size.
pub fn split(message: &[u8]) -> Result<(&[u8], &[u8; NONCE_LEN])> {
    if message.len() < OVERHEAD {
        return Err(Error::DecryptionFailed(
            "the blinded message is too short to hold a sender key, tag and nonce",
        ));
    }
    if message[0] != BLINDED_DM_VERSION {
        return Err(Error::DecryptionFailed(
            "the blinded message has an unknown version byte",
        ));
    }
    let (sealed, nonce) = message[1..].split_at(message.len() - 1 - NONCE_LEN);
    let nonce: &[u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| Error::DecryptionFailed("the blinded message has no nonce"))?;
    Ok((sealed, nonce))
}

/// Decrypts a blinded DM the server lists with these `sender` and `recipient` ids, as the
/// identity with this seed, which must be one of the two: the recipient (inbox), or the sender
/// (outbox: a copy of a message this account sent, read on any of its devices).
///
/// Checks that the sender key inside blinds to `sender` on this server (either sign for
/// 15-blinding, as only ±kA is computable from a Session ID) and returns the content and the
/// sender's X25519 key.
pub fn decrypt(
    seed: &[u8; 32],
    server_pk: &[u8; 32],
    sender: &BlindedId,
    recipient: &BlindedId,
    message: &[u8],
) -> Result<OpenedDm> {
    if sender.prefix != recipient.prefix {
        return Err(Error::InvalidSessionId(
            "the sender and recipient ids must both be 15- or both 25-blinded".into(),
        ));
    }
    let (sealed, nonce) = split(message)?;
    let (own_public, secret) = own_keys(seed, server_pk, recipient.prefix)?;
    let key = if own_public == sender.key {
        shared_key(&secret, &recipient.key, &sender.key, &recipient.key)?
    } else if own_public == recipient.key {
        shared_key(&secret, &sender.key, &sender.key, &recipient.key)?
    } else {
        return Err(Error::DecryptionFailed(
            "this account is neither the sender nor the recipient of the blinded message",
        ));
    };
    let inner = Zeroizing::new(
        XChaCha20Poly1305::new((&*key).into())
            .decrypt(XNonce::from_slice(nonce), sealed)
            .map_err(|_| {
                Error::DecryptionFailed(
                    "the blinded message does not authenticate (wrong key or tampered)",
                )
            })?,
    );
    let (content, ed_pk) = inner.split_at(inner.len() - 32);
    let ed_pk: [u8; 32] = ed_pk
        .try_into()
        .map_err(|_| Error::DecryptionFailed("the blinded message has no sender key"))?;
    let sender_x25519 = keys::ed25519_pk_to_x25519(&ed_pk)?;
    if !blinding::x25519_matches_blinded(&sender_x25519, sender.prefix, &sender.key, server_pk)? {
        return Err(Error::DecryptionFailed(
            "the sender key inside the blinded message does not match the id it came from",
        ));
    }
    Ok(OpenedDm {
        content: Zeroizing::new(content.to_vec()),
        sender_x25519,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(n: u8) -> [u8; 32] {
        [n; 32]
    }

    const SERVER: [u8; 32] = [7u8; 32];

    fn id(prefix: u8, s: &[u8; 32]) -> BlindedId {
        let key = if prefix == PREFIX_BLIND15 {
            blinding::blind15_public_key(s, &SERVER)
        } else {
            blinding::blind25_public_key(s, &SERVER)
        };
        BlindedId { prefix, key }
    }

    #[test]
    fn both_orientations_and_strangers() {
        for prefix in [PREFIX_BLIND15, PREFIX_BLIND25] {
            let (a, b, c) = (seed(1), seed(2), seed(3));
            let (ida, idb) = (id(prefix, &a), id(prefix, &b));
            let ct = encrypt(&a, &SERVER, &idb, b"hi there").expect("encrypt");
            assert_eq!(ct.len(), 8 + OVERHEAD);
            for reader in [&a, &b] {
                let opened = decrypt(reader, &SERVER, &ida, &idb, &ct).expect("decrypt");
                assert_eq!(opened.content.as_slice(), b"hi there");
                assert_eq!(
                    keys::session_id_from_x25519(&opened.sender_x25519),
                    keys::SessionKeys::from_seed(&a).expect("keys").session_id()
                );
            }
            assert!(decrypt(&c, &SERVER, &ida, &idb, &ct).is_err());
            let mut bad = ct.clone();
            bad[5] ^= 1;
            assert!(decrypt(&b, &SERVER, &ida, &idb, &bad).is_err());
            // The server claims another sender: refused even though it decrypts for nobody.
            let idc = id(prefix, &c);
            assert!(decrypt(&b, &SERVER, &idc, &idb, &ct).is_err());
        }
    }

    #[test]
    fn short_and_versioned_input_refused() {
        let (a, b) = (seed(1), seed(2));
        let (ida, idb) = (id(PREFIX_BLIND15, &a), id(PREFIX_BLIND15, &b));
        for len in 0..OVERHEAD {
            assert!(decrypt(&b, &SERVER, &ida, &idb, &vec![0u8; len]).is_err());
        }
        let mut ct = encrypt(&a, &SERVER, &idb, b"x").expect("encrypt");
        ct[0] = 1;
        assert!(decrypt(&b, &SERVER, &ida, &idb, &ct).is_err());
        let ida25 = id(PREFIX_BLIND25, &a);
        assert!(decrypt(&b, &SERVER, &ida25, &idb, &ct).is_err());
    }
}
