//! Messages of 03 groups (client spec §3.2.4; libsession `groups::Keys::encrypt_message` /
//! `decrypt_message`).
//!
//! The sender signs the (optionally zstd-compressed) plaintext with its own Ed25519 key and
//! wraps it in a bencoded dict `{"": 1, "a": sender Ed25519 pk, "d" | "z": data, "s": sig}`;
//! zero bytes are appended so that the encoding plus 40 bytes of overhead is a multiple of the
//! padding (256 in every Session client); the result is `nonce(24) ‖ XChaCha20-Poly1305(dict)`
//! under the group's current 32-byte key. Receivers try every key generation they hold.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::bt::{self, DictWriter, Value};
use crate::compression;
use crate::error::{Error, Result};
use crate::keys::{self, SessionKeys};

/// Largest plaintext (after decompression) a group message may carry.
pub const MAX_PLAINTEXT: usize = 1_000_000;
/// Padding every Session client uses for group messages.
pub const DEFAULT_PADDING: usize = 256;
/// Nonce + Poly1305 tag.
pub const OVERHEAD: usize = NONCE_LEN + 16;
const NONCE_LEN: usize = 24;
/// The format version in the `""` entry.
pub const VERSION: i64 = 1;

/// A decrypted group message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMessage {
    /// The plaintext (decompressed).
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The author's Ed25519 public key (the signature checked against it).
    pub sender_ed25519: [u8; 32],
    /// The author's X25519 public key (its Session ID without the `05`).
    pub sender_x25519: [u8; 32],
    /// Index into the key list of the key that opened the message.
    pub key_index: usize,
}

impl GroupMessage {
    /// The author's Session ID.
    pub fn sender_session_id(&self) -> String {
        keys::session_id_from_x25519(&self.sender_x25519)
    }
}

fn compress(data: &[u8]) -> Vec<u8> {
    compression::compress(data)
}

fn decompress(data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    compression::decompress(data, MAX_PLAINTEXT).map_err(|e| match e {
        Error::TooLarge { got, .. } => Error::TooLarge {
            what: "a group message",
            max: MAX_PLAINTEXT,
            got,
        },
        _ => Error::DecryptionFailed("the group message's compressed data is not valid zstd"),
    })
}

/// The padded, signed inner dict of a group message (before encryption).
pub fn encode_signed(
    sender: &SessionKeys,
    plaintext: &[u8],
    compress_data: bool,
    padding: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(Error::TooLarge {
            what: "a group message",
            max: MAX_PLAINTEXT,
            got: plaintext.len(),
        });
    }
    let compressed = if compress_data {
        Some(compress(plaintext))
    } else {
        None
    };
    let (data, is_compressed) = match &compressed {
        Some(c) if c.len() < plaintext.len() => (c.as_slice(), true),
        _ => (plaintext, false),
    };
    let sig = sender.sign(data);
    let mut w = DictWriter::new();
    w.int(b"", VERSION).bytes(b"a", sender.ed25519_public());
    if !is_compressed {
        w.bytes(b"d", data);
    }
    w.bytes(b"s", &sig);
    if is_compressed {
        w.bytes(b"z", data);
    }
    let mut encoded = Zeroizing::new(w.finish());
    let total = encoded.len() + OVERHEAD;
    if padding > 1 && total % padding != 0 {
        let new_len = encoded.len() + padding - total % padding;
        encoded.resize(new_len, 0);
    }
    Ok(encoded)
}

/// Encrypts `plaintext` (normally a serialized Envelope) for the group under `group_key`
/// with a random nonce; see the module documentation for the format.
pub fn encrypt(
    sender: &SessionKeys,
    group_key: &[u8; 32],
    plaintext: &[u8],
    compress_data: bool,
    padding: usize,
) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    encrypt_with_nonce(sender, group_key, plaintext, compress_data, padding, &nonce)
}

/// [`encrypt`] with a given nonce (tests and reproducible vectors only: a nonce must never
/// repeat under one key).
pub fn encrypt_with_nonce(
    sender: &SessionKeys,
    group_key: &[u8; 32],
    plaintext: &[u8],
    compress_data: bool,
    padding: usize,
    nonce: &[u8; 24],
) -> Result<Vec<u8>> {
    let encoded = encode_signed(sender, plaintext, compress_data, padding)?;
    let ct = XChaCha20Poly1305::new(group_key.into())
        .encrypt(XNonce::from_slice(nonce), encoded.as_slice())
        .map_err(|_| Error::TooLarge {
            what: "a group message",
            max: MAX_PLAINTEXT,
            got: plaintext.len(),
        })?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Decrypts a group message with the first of `group_keys` that authenticates it, checks the
/// author's signature and decompresses. Errors say which step failed.
pub fn decrypt(group_keys: &[[u8; 32]], ciphertext: &[u8]) -> Result<GroupMessage> {
    if ciphertext.len() < OVERHEAD {
        return Err(Error::DecryptionFailed(
            "the group message is too short to be encrypted data",
        ));
    }
    let (nonce, body) = ciphertext.split_at(NONCE_LEN);
    let nonce = XNonce::from_slice(nonce);
    let (key_index, mut plain) = group_keys
        .iter()
        .enumerate()
        .find_map(|(i, k)| {
            XChaCha20Poly1305::new(k.into())
                .decrypt(nonce, body)
                .ok()
                .map(|p| (i, Zeroizing::new(p)))
        })
        .ok_or(Error::DecryptionFailed(
            "none of the group's keys opens this message",
        ))?;
    let end = plain.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    plain.truncate(end);
    let dict = bt::parse(&plain).map_err(|_| {
        Error::DecryptionFailed("the decrypted group message is not a bencoded dict")
    })?;
    parse_signed(&dict, key_index)
}

fn parse_signed(dict: &Value<'_>, key_index: usize) -> Result<GroupMessage> {
    let fail = Error::DecryptionFailed;
    if !matches!(dict, Value::Dict(_)) {
        return Err(fail("the decrypted group message is not a bencoded dict"));
    }
    match dict.get(b"").and_then(Value::as_int) {
        Some(VERSION) => {}
        Some(_) => {
            return Err(fail(
                "the group message has a version this client does not support",
            ))
        }
        None => return Err(fail("the group message has no version tag")),
    }
    let ed: [u8; 32] = dict
        .get(b"a")
        .and_then(Value::as_bytes)
        .and_then(|a| a.try_into().ok())
        .ok_or(fail("the group message has no valid author key"))?;
    let sig: [u8; 64] = dict
        .get(b"s")
        .and_then(Value::as_bytes)
        .and_then(|s| s.try_into().ok())
        .ok_or(fail("the group message has no valid signature"))?;
    let d = dict.get(b"d").and_then(Value::as_bytes);
    let z = dict.get(b"z").and_then(Value::as_bytes);
    let (data, compressed) = match (d, z) {
        (Some(d), None) if !d.is_empty() => (d, false),
        (None, Some(z)) if !z.is_empty() => (z, true),
        (Some(_), Some(_)) => {
            return Err(fail(
                "the group message holds both compressed and plain data",
            ))
        }
        _ => return Err(fail("the group message holds no data")),
    };
    let sender_x25519 = keys::verify_and_convert(&ed, data, &sig).map_err(|e| match e {
        Error::InvalidSignature => Error::InvalidSignature,
        _ => fail("the group message's author key has no Session ID"),
    })?;
    let plaintext = if compressed {
        decompress(data)?
    } else {
        Zeroizing::new(data.to_vec())
    };
    Ok(GroupMessage {
        plaintext,
        sender_ed25519: ed,
        sender_x25519,
        key_index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: u8) -> SessionKeys {
        SessionKeys::from_seed(&[n; 32]).expect("seed")
    }

    #[test]
    fn round_trip_padding_and_key_search() {
        let alice = keys(1);
        let (k1, k2, k3) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        for len in [1usize, 10, 215, 216, 217, 1000, 5000] {
            for comp in [false, true] {
                let msg: Vec<u8> = (0..len).map(|i| (i % 7) as u8 + b'a').collect();
                let ct = encrypt(&alice, &k2, &msg, comp, DEFAULT_PADDING).expect("encrypt");
                assert_eq!(ct.len() % DEFAULT_PADDING, 0, "len {len}");
                let got = decrypt(&[k1, k3, k2], &ct).expect("decrypt");
                assert_eq!(&got.plaintext[..], &msg[..]);
                assert_eq!(got.key_index, 2);
                assert_eq!(got.sender_session_id(), alice.session_id());
                assert!(decrypt(&[k1, k3], &ct).is_err());
            }
        }
        // compression is kept only when it helps
        let repetitive = vec![b'x'; 4000];
        let c = encrypt(&alice, &k1, &repetitive, true, 1).expect("encrypt");
        let p = encrypt(&alice, &k1, &repetitive, false, 1).expect("encrypt");
        assert!(c.len() < p.len());
    }

    #[test]
    fn forged_and_malformed_messages_fail() {
        let alice = keys(1);
        let mallory = keys(2);
        let k = [9u8; 32];
        let nonce = [4u8; 24];
        // Mallory swaps in Alice's key as author but signs with her own key.
        let mut inner = encode_signed(&mallory, b"hi", false, 1)
            .expect("encode")
            .to_vec();
        let pos = inner
            .windows(32)
            .position(|w| w == mallory.ed25519_public())
            .expect("author");
        inner[pos..pos + 32].copy_from_slice(alice.ed25519_public());
        let ct = XChaCha20Poly1305::new((&k).into())
            .encrypt(XNonce::from_slice(&nonce), inner.as_slice())
            .expect("enc");
        let forged = [&nonce[..], &ct].concat();
        assert_eq!(decrypt(&[k], &forged), Err(Error::InvalidSignature));
        // tampered ciphertext
        let mut good = encrypt_with_nonce(&alice, &k, b"hello", false, 256, &nonce).expect("enc");
        let last = good.len() - 1;
        good[last] ^= 1;
        assert!(matches!(
            decrypt(&[k], &good),
            Err(Error::DecryptionFailed(_))
        ));
        assert!(decrypt(&[k], &[0u8; 39]).is_err());
        // wrong version
        let mut w = DictWriter::new();
        w.int(b"", 2)
            .bytes(b"a", alice.ed25519_public())
            .bytes(b"d", b"x")
            .bytes(b"s", &alice.sign(b"x"));
        let body = w.finish();
        let ct = XChaCha20Poly1305::new((&k).into())
            .encrypt(XNonce::from_slice(&nonce), body.as_slice())
            .expect("enc");
        assert!(decrypt(&[k], &[&nonce[..], &ct].concat()).is_err());
    }

    #[test]
    fn oversized_and_bomb_refused() {
        let alice = keys(1);
        assert!(matches!(
            encrypt(
                &alice,
                &[0u8; 32],
                &vec![0u8; MAX_PLAINTEXT + 1],
                false,
                256
            ),
            Err(Error::TooLarge { .. })
        ));
        let bomb = compress(&vec![0u8; MAX_PLAINTEXT + 10]);
        assert!(matches!(decompress(&bomb), Err(Error::TooLarge { .. })));
        assert_eq!(
            &decompress(&compress(b"abcabc")).expect("ok")[..],
            b"abcabc"
        );
    }
}
