//! Legacy attachment encryption (client spec §5.1–5.2): what every Session client sends
//! and accepts today.
//!
//! * Plaintext = file bytes followed by `0x00` padding up to [`padded_size`] (the size bucket
//!   hides the exact length; receivers cut to the pointer's `size`).
//! * Key = 64 bytes: AES-256 key ‖ HMAC-SHA256 key. IV = 16 random bytes.
//! * blob = IV ‖ AES-256-CBC-PKCS#7(padded) ‖ HMAC-SHA256(mac_key, IV ‖ ciphertext).
//! * digest = SHA-256(blob), carried in the attachment pointer.
//!
//! [`StreamEncryptor`] / [`StreamDecryptor`] produce and take the same bytes chunk by chunk.
//!
//! The deterministic "stream" scheme (§5.3) is not implemented here.

use aes::Aes256;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Attachment key length: AES-256 key (32) ‖ HMAC-SHA256 key (32).
pub const KEY_LEN: usize = 64;
/// CBC IV length.
pub const IV_LEN: usize = 16;
/// HMAC-SHA256 tag length (not truncated).
pub const MAC_LEN: usize = 32;
/// SHA-256 digest length.
pub const DIGEST_LEN: usize = 32;
/// Smallest padded plaintext.
pub const MIN_PADDED_SIZE: usize = 541;
/// Padded sizes of inputs up to this many bytes are capped here.
pub const PADDING_CAP: usize = 10_000_000;

type HmacSha256 = Hmac<Sha256>;

/// Padded plaintext size for `n` file bytes:
/// `max(541, floor(1.05^ceil(ln n / ln 1.05)))`, capped at 10,000,000 when `n` ≤ 10,000,000.
/// Uses IEEE-754 float64 `ln`/`pow` like the JavaScript reference; never less than `n`.
pub fn padded_size(n: usize) -> usize {
    #[allow(clippy::cast_precision_loss)]
    let nf = n as f64;
    let exp = (nf.ln() / 1.05f64.ln()).ceil();
    let p = 1.05f64.powf(exp).floor();
    // n = 0 gives ln = -inf, pow = 0. Sizes beyond usize cannot occur for real inputs.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let p = if p.is_finite() && p >= 0.0 {
        p as usize
    } else {
        0
    };
    let p = p.max(MIN_PADDED_SIZE);
    let p = if p > PADDING_CAP && n <= PADDING_CAP {
        PADDING_CAP
    } else {
        p
    };
    p.max(n)
}

/// `data` followed by zero bytes up to [`padded_size`].
pub fn pad(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(padded_size(data.len()));
    out.extend_from_slice(data);
    out.resize(padded_size(data.len()), 0);
    out
}

/// Cuts padded plaintext to the attachment pointer's `size`. If `size` is not smaller than
/// the data, the data is returned unchanged (as Session Desktop does: no padding present).
pub fn unpad(mut data: Vec<u8>, size: usize) -> Vec<u8> {
    data.truncate(size);
    data
}

fn split_key(key: &[u8]) -> Result<(&[u8], &[u8])> {
    if key.len() != KEY_LEN {
        return Err(Error::InvalidKey(
            "an attachment key must be 64 bytes (AES-256 key followed by HMAC-SHA256 key)",
        ));
    }
    Ok(key.split_at(32))
}

fn mac_for(mac_key: &[u8]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(mac_key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"))
}

/// An encrypted attachment.
#[derive(Clone, PartialEq, Eq)]
pub struct Encrypted {
    /// IV ‖ ciphertext ‖ MAC.
    pub blob: Vec<u8>,
    /// The 64-byte key (wiped on drop).
    pub key: Zeroizing<[u8; KEY_LEN]>,
    /// SHA-256 of `blob`.
    pub digest: [u8; DIGEST_LEN],
}

impl core::fmt::Debug for Encrypted {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Encrypted")
            .field("blob_len", &self.blob.len())
            .finish_non_exhaustive()
    }
}

/// Pads and encrypts `data` with the given 64-byte key and 16-byte IV (deterministic; use
/// [`encrypt`] for a random IV).
pub fn encrypt_with_iv(data: &[u8], key: &[u8], iv: &[u8; IV_LEN]) -> Result<Encrypted> {
    let (aes_key, mac_key) = split_key(key)?;
    let padded = Zeroizing::new(pad(data));
    let ct = cbc::Encryptor::<Aes256>::new(aes_key.into(), iv.into())
        .encrypt_padded_vec_mut::<Pkcs7>(&padded);
    let mut blob = Vec::with_capacity(IV_LEN + ct.len() + MAC_LEN);
    blob.extend_from_slice(iv);
    blob.extend_from_slice(&ct);
    let mut mac = mac_for(mac_key);
    mac.update(&blob);
    blob.extend_from_slice(&mac.finalize().into_bytes());
    let digest: [u8; DIGEST_LEN] = Sha256::digest(&blob).into();
    let mut k = Zeroizing::new([0u8; KEY_LEN]);
    k.copy_from_slice(key);
    Ok(Encrypted {
        blob,
        key: k,
        digest,
    })
}

/// Pads and encrypts `data` with a random IV, and a random key unless one is given.
pub fn encrypt(data: &[u8], key: Option<&[u8]>) -> Result<Encrypted> {
    let mut iv = [0u8; IV_LEN];
    OsRng.fill_bytes(&mut iv);
    match key {
        Some(k) => encrypt_with_iv(data, k, &iv),
        None => {
            let mut k = Zeroizing::new([0u8; KEY_LEN]);
            OsRng.fill_bytes(&mut k[..]);
            encrypt_with_iv(data, &k[..], &iv)
        }
    }
}

/// Verifies and decrypts a blob. Checks, in order: length, HMAC (constant time), the
/// SHA-256 `digest` if given, then decrypts and cuts to `size` if given (see [`unpad`]).
pub fn decrypt(
    blob: &[u8],
    key: &[u8],
    digest: Option<&[u8]>,
    size: Option<usize>,
) -> Result<Vec<u8>> {
    let (aes_key, mac_key) = split_key(key)?;
    if let Some(d) = digest {
        if d.len() != DIGEST_LEN {
            return Err(Error::InvalidLength {
                what: "attachment digest",
                expected: "32",
                got: d.len(),
            });
        }
    }
    if blob.len() < IV_LEN + MAC_LEN {
        return Err(Error::DecryptionFailed(
            "the attachment is too short (less than IV + MAC, 48 bytes)",
        ));
    }
    let (body, tag) = blob.split_at(blob.len() - MAC_LEN);
    let mut mac = mac_for(mac_key);
    mac.update(body);
    mac.verify_slice(tag).map_err(|_| {
        Error::DecryptionFailed("the attachment's MAC does not match (wrong key or corrupted)")
    })?;
    if let Some(d) = digest {
        let actual = Sha256::digest(blob);
        // Not secret, but compare without early exit anyway.
        if actual.iter().zip(d).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0 {
            return Err(Error::DecryptionFailed(
                "the attachment's digest does not match",
            ));
        }
    }
    let (iv, ct) = body.split_at(IV_LEN);
    if ct.is_empty() || ct.len() % 16 != 0 {
        return Err(Error::DecryptionFailed(
            "the attachment's ciphertext is not a whole number of AES blocks",
        ));
    }
    let iv: &[u8; IV_LEN] = iv
        .try_into()
        .map_err(|_| Error::DecryptionFailed("bad IV"))?;
    let plain = cbc::Decryptor::<Aes256>::new(aes_key.into(), iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(ct)
        .map_err(|_| Error::DecryptionFailed("the attachment's block padding is invalid"))?;
    Ok(match size {
        Some(n) => unpad(plain, n),
        None => plain,
    })
}

/// Bytes processed per block-cipher call in the streaming types (keeps their buffers small).
const BLOCK: usize = 16;

/// Streaming form of [`encrypt_with_iv`]: the same output bytes, produced chunk by chunk so a
/// large file never has to be in memory at once. The file's total `size` must be known up
/// front (it fixes the padding bucket); feed exactly that many bytes to [`Self::update`], then
/// call [`Self::finalize`] for the tail (zero padding, PKCS#7 block, MAC) and the digest.
pub struct StreamEncryptor {
    cbc: cbc::Encryptor<Aes256>,
    mac: HmacSha256,
    sha: Sha256,
    iv: [u8; IV_LEN],
    pending: Zeroizing<Vec<u8>>,
    size: usize,
    fed: usize,
    started: bool,
}

impl core::fmt::Debug for StreamEncryptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StreamEncryptor")
            .field("size", &self.size)
            .field("fed", &self.fed)
            .finish_non_exhaustive()
    }
}

impl StreamEncryptor {
    /// Starts encrypting a file of `size` bytes under a 64-byte `key` and a 16-byte `iv`.
    pub fn new(key: &[u8], iv: &[u8; IV_LEN], size: usize) -> Result<Self> {
        let (aes_key, mac_key) = split_key(key)?;
        Ok(Self {
            cbc: cbc::Encryptor::<Aes256>::new(aes_key.into(), iv.into()),
            mac: mac_for(mac_key),
            sha: Sha256::new(),
            iv: *iv,
            pending: Zeroizing::new(Vec::with_capacity(BLOCK)),
            size,
            fed: 0,
            started: false,
        })
    }

    /// Starts with a random IV, and a random key unless one is given; returns the key too.
    pub fn random(key: Option<&[u8]>, size: usize) -> Result<(Self, Zeroizing<[u8; KEY_LEN]>)> {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        match key {
            Some(given) => {
                split_key(given)?;
                k.copy_from_slice(given);
            }
            None => OsRng.fill_bytes(&mut k[..]),
        }
        let mut iv = [0u8; IV_LEN];
        OsRng.fill_bytes(&mut iv);
        Ok((Self::new(&k[..], &iv, size)?, k))
    }

    /// Encrypts the whole blocks of `pending ‖ data`, keeps the rest, returns the ciphertext
    /// (prefixed with the IV on the first call).
    fn push(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(IV_LEN + self.pending.len() + data.len());
        if !self.started {
            self.started = true;
            out.extend_from_slice(&self.iv);
            self.mac.update(&self.iv);
            self.sha.update(self.iv);
        }
        let start = out.len();
        out.extend_from_slice(&self.pending);
        out.extend_from_slice(data);
        let whole = (out.len() - start) / BLOCK * BLOCK;
        self.pending.clear();
        self.pending.extend_from_slice(&out[start + whole..]);
        out.truncate(start + whole);
        let (blocks, _) = cbc::cipher::inout::InOutBuf::from(&mut out[start..]).into_chunks();
        self.cbc.encrypt_blocks_inout_mut(blocks);
        self.mac.update(&out[start..]);
        self.sha.update(&out[start..]);
        out
    }

    /// Encrypts the next chunk of the file; returns the ciphertext bytes ready so far.
    pub fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        let fed = self.fed.saturating_add(data.len());
        if fed > self.size {
            return Err(Error::TooLarge {
                what: "the attachment data fed to the encryptor",
                max: self.size,
                got: fed,
            });
        }
        self.fed = fed;
        Ok(self.push(data))
    }

    /// Pads, encrypts the last blocks and appends the MAC; returns `(tail, digest)`.
    pub fn finalize(mut self) -> Result<(Vec<u8>, [u8; DIGEST_LEN])> {
        if self.fed != self.size {
            return Err(Error::InvalidValue {
                what: "attachment stream",
                reason: "fewer bytes were fed than the size given at the start",
            });
        }
        let zeros = padded_size(self.size) - self.size;
        let total = zeros + self.pending.len();
        let pkcs7 = BLOCK - total % BLOCK;
        let mut tail = vec![0u8; zeros];
        #[allow(clippy::cast_possible_truncation)]
        tail.resize(zeros + pkcs7, pkcs7 as u8);
        let mut out = self.push(&tail);
        debug_assert!(self.pending.is_empty());
        let tag = self.mac.finalize().into_bytes();
        out.extend_from_slice(&tag);
        self.sha.update(tag);
        Ok((out, self.sha.finalize().into()))
    }
}

/// Streaming form of [`decrypt`]: feed the blob in chunks, get plaintext back in chunks.
///
/// The MAC and digest can only be checked at the end, so the plaintext returned by
/// [`Self::update`] is unverified until [`Self::finalize`] succeeds: write it somewhere
/// temporary and discard it if `finalize` fails.
pub struct StreamDecryptor {
    aes_key: Zeroizing<[u8; 32]>,
    cbc: Option<cbc::Decryptor<Aes256>>,
    mac: HmacSha256,
    sha: Sha256,
    held: Vec<u8>,
    digest: Option<[u8; DIGEST_LEN]>,
    size: Option<usize>,
    emitted: usize,
    total: usize,
}

impl core::fmt::Debug for StreamDecryptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StreamDecryptor")
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl StreamDecryptor {
    /// Starts decrypting with a 64-byte key; `digest` (32 bytes) and `size` as in [`decrypt`].
    pub fn new(key: &[u8], digest: Option<&[u8]>, size: Option<usize>) -> Result<Self> {
        let (aes_key, mac_key) = split_key(key)?;
        let digest = match digest {
            None => None,
            Some(d) => Some(
                <[u8; DIGEST_LEN]>::try_from(d).map_err(|_| Error::InvalidLength {
                    what: "attachment digest",
                    expected: "32",
                    got: d.len(),
                })?,
            ),
        };
        let mut k = Zeroizing::new([0u8; 32]);
        k.copy_from_slice(aes_key);
        Ok(Self {
            aes_key: k,
            cbc: None,
            mac: mac_for(mac_key),
            sha: Sha256::new(),
            held: Vec::new(),
            digest,
            size,
            emitted: 0,
            total: 0,
        })
    }

    /// Cuts decrypted bytes to the pointer's size (padding is dropped as it is reached).
    fn cut(&mut self, mut plain: Vec<u8>) -> Vec<u8> {
        if let Some(n) = self.size {
            let room = n.saturating_sub(self.emitted);
            plain.truncate(room);
        }
        self.emitted += plain.len();
        plain
    }

    /// Takes the next chunk of the blob; returns the (not yet verified) plaintext ready so far.
    pub fn update(&mut self, data: &[u8]) -> Vec<u8> {
        self.total = self.total.saturating_add(data.len());
        self.sha.update(data);
        self.held.extend_from_slice(data);
        if self.cbc.is_none() {
            if self.held.len() < IV_LEN {
                return Vec::new();
            }
            let iv: [u8; IV_LEN] = self.held[..IV_LEN]
                .try_into()
                .unwrap_or_else(|_| unreachable!("checked length"));
            self.mac.update(&iv);
            self.cbc = Some(cbc::Decryptor::<Aes256>::new(
                (&self.aes_key[..]).into(),
                (&iv).into(),
            ));
            self.held.drain(..IV_LEN);
        }
        // Keep back the MAC and the last block (it carries the PKCS#7 padding).
        let ready = self.held.len().saturating_sub(MAC_LEN + BLOCK) / BLOCK * BLOCK;
        if ready == 0 {
            return Vec::new();
        }
        let mut plain: Vec<u8> = self.held.drain(..ready).collect();
        self.mac.update(&plain);
        let (blocks, _) = cbc::cipher::inout::InOutBuf::from(&mut plain[..]).into_chunks();
        if let Some(c) = self.cbc.as_mut() {
            c.decrypt_blocks_inout_mut(blocks);
        }
        self.cut(plain)
    }

    /// Checks length, MAC and digest, decrypts the last block and strips its padding;
    /// returns the last plaintext bytes. Any failure means the whole output is to be discarded.
    pub fn finalize(mut self) -> Result<Vec<u8>> {
        if self.total < IV_LEN + MAC_LEN {
            return Err(Error::DecryptionFailed(
                "the attachment is too short (less than IV + MAC, 48 bytes)",
            ));
        }
        let held = core::mem::take(&mut self.held);
        let (body, tag) = held.split_at(held.len() - MAC_LEN);
        let mut mac = self.mac.clone();
        mac.update(body);
        mac.verify_slice(tag).map_err(|_| {
            Error::DecryptionFailed("the attachment's MAC does not match (wrong key or corrupted)")
        })?;
        if let Some(d) = self.digest {
            let actual: [u8; DIGEST_LEN] = core::mem::take(&mut self.sha).finalize().into();
            if actual.iter().zip(d).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0 {
                return Err(Error::DecryptionFailed(
                    "the attachment's digest does not match",
                ));
            }
        }
        if body.len() != BLOCK {
            return Err(Error::DecryptionFailed(
                "the attachment's ciphertext is not a whole number of AES blocks",
            ));
        }
        let mut last = body.to_vec();
        let cbc = self
            .cbc
            .take()
            .ok_or(Error::DecryptionFailed("the attachment has no IV"))?;
        let plain = cbc
            .decrypt_padded_mut::<Pkcs7>(&mut last)
            .map_err(|_| Error::DecryptionFailed("the attachment's block padding is invalid"))?
            .to_vec();
        Ok(self.cut(plain))
    }
}
