//! Community (SOGS) blinded identities and signatures (client spec §4.2–4.3).
//!
//! * **15-blinding**: `k = reduce(BLAKE2b-512(server_pk))`, blinded secret `k·a` (with `a`
//!   the clamped X25519 scalar of the Ed25519 key), blinded id `15 ‖ (k·a)·B`. From a Session
//!   ID alone only `±k·A` is known (the X25519 → Ed25519 map loses the sign).
//! * **25-blinding**: `k = reduce(BLAKE2b-512(0x05 ‖ X25519_pk ‖ server_pk))`, negated when
//!   the Ed25519 public key is negative, so the id `25 ‖ k·|A|` is unique and computable from
//!   a Session ID.
//! * **Version blinding (07)**: seed' = BLAKE2b-256(seed; key = "VersionCheckKey_sig"), a
//!   plain Ed25519 keypair from seed'.
//!
//! Blinded signatures are Ed25519-compatible (they verify as plain Ed25519 under the blinded
//! public key) but sign with a scalar that is not derived from a seed, so they are composed
//! here from curve25519-dalek scalar/point arithmetic and SHA-512 / BLAKE2b; the nonce
//! derivations follow libsession (and, for 15, optionally Session Desktop).

use blake2::digest::consts::{U32, U64};
use blake2::digest::Mac;
use blake2::{Blake2b, Blake2bMac, Digest};
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signer, SigningKey};
use sha2::Sha512;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys;

/// Prefix byte of 15-blinded ids.
pub const PREFIX_BLIND15: u8 = 0x15;
/// Prefix byte of 25-blinded ids.
pub const PREFIX_BLIND25: u8 = 0x25;
/// Prefix byte of version-blinded keys (file server version checks).
pub const PREFIX_VERSION_BLIND: u8 = 0x07;
/// Prefix byte of the unblinded SOGS pubkey header (`00` ‖ Ed25519 pk).
pub const PREFIX_UNBLINDED: u8 = 0x00;

const BLIND25_SEED_KEY: &[u8] = b"SessCommBlind25_seed";
const BLIND25_SIG_KEY: &[u8] = b"SessCommBlind25_sig";
const VERSION_BLIND_KEY: &[u8] = b"VersionCheckKey_sig";

/// How the deterministic nonce of a 15-blinded signature is derived. Both verify; the
/// signatures differ byte-wise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Blind15Nonce {
    /// libsession: `SHA-512(seed ‖ ed25519_pk)[32..64]` (the 64-byte secret key).
    #[default]
    Libsession,
    /// Session Desktop: `SHA-512(seed)[32..64]`.
    Desktop,
}

// ---------------------------------------------------------------------------------------------
// Parsing helpers (hex text forms)

fn decode_hex32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    (text.len() == 64 && text.is_ascii() && hex::decode_to_slice(text, &mut out).is_ok())
        .then_some(out)
}

/// Parses a community server public key: 64 hex digits (the server's X25519 key).
pub fn parse_server_pk(text: &str) -> Result<[u8; 32]> {
    decode_hex32(text).ok_or(Error::InvalidKey(
        "the server public key must be 64 hex digits (32 bytes)",
    ))
}

/// Parses a `05` Session ID (66 hex digits) and returns its X25519 public key.
pub use crate::keys::parse_session_id;

/// Parses a blinded id (`15…`, `25…` or `07…`, 66 hex digits) into (prefix, 32-byte key).
pub fn parse_blinded_id(text: &str) -> Result<(u8, [u8; 32])> {
    if text.len() != 66 || !text.is_ascii() {
        return Err(Error::InvalidSessionId(format!(
            "a blinded id is 66 hex digits starting with 15, 25 or 07, got {} characters",
            text.chars().count()
        )));
    }
    let prefix = match &text[..2] {
        "15" => PREFIX_BLIND15,
        "25" => PREFIX_BLIND25,
        "07" => PREFIX_VERSION_BLIND,
        other => {
            return Err(Error::InvalidSessionId(format!(
                "a blinded id starts with 15, 25 or 07, this one starts with {other:?}"
            )))
        }
    };
    let key = decode_hex32(&text[2..]).ok_or_else(|| {
        Error::InvalidSessionId("it contains characters that are not hex digits".into())
    })?;
    Ok((prefix, key))
}

/// Formats a prefix and a 32-byte key as the 66-hex-digit id.
pub fn format_id(prefix: u8, key: &[u8; 32]) -> String {
    let mut s = String::with_capacity(66);
    s.push_str(&hex::encode([prefix]));
    s.push_str(&hex::encode(key));
    s
}

// ---------------------------------------------------------------------------------------------
// Key material derived from the 32-byte Ed25519 seed

/// The pieces of an Ed25519 identity the blinding math needs; secrets are wiped on drop.
struct SeedKeys {
    seed: Zeroizing<[u8; 32]>,
    /// The account's X25519 secret scalar (clamped first half of SHA-512(seed)), reduced mod L.
    a: Zeroizing<Scalar>,
    ed_pk: [u8; 32],
    x_pk: [u8; 32],
}

impl SeedKeys {
    fn new(seed: &[u8; 32]) -> Self {
        let a = Zeroizing::new(Scalar::from_bytes_mod_order(
            *keys::ed25519_seed_to_x25519_secret(seed),
        ));
        let point = EdwardsPoint::mul_base(&a);
        Self {
            seed: Zeroizing::new(*seed),
            a,
            ed_pk: point.compress().to_bytes(),
            x_pk: point.to_montgomery().to_bytes(),
        }
    }

    fn ed_pk_negative(&self) -> bool {
        self.ed_pk[31] & 0x80 != 0
    }
}

/// A blinded keypair; the secret scalar is wiped on drop.
struct BlindedKeypair {
    public: [u8; 32],
    secret: Zeroizing<Scalar>,
}

fn blake2b_512(parts: &[&[u8]]) -> [u8; 64] {
    let mut h = Blake2b::<U64>::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn sha512(parts: &[&[u8]]) -> [u8; 64] {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn keyed_blake2b_32(key: &[u8], data: &[u8]) -> Zeroizing<[u8; 32]> {
    // Keys here are fixed ASCII labels of 19–20 bytes, always valid BLAKE2b keys.
    let mut mac = <Blake2bMac<U32> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("BLAKE2b keys of 1..=64 bytes are valid"));
    mac.update(data);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

fn reduce(wide: &[u8; 64]) -> Scalar {
    Scalar::from_bytes_mod_order_wide(wide)
}

/// The 15-blinding factor `k = reduce(BLAKE2b-512(server_pk))`, as 32 scalar bytes.
pub fn blind15_factor(server_pk: &[u8; 32]) -> [u8; 32] {
    blind15_k(server_pk).to_bytes()
}

fn blind15_k(server_pk: &[u8; 32]) -> Scalar {
    reduce(&blake2b_512(&[server_pk]))
}

/// The 25-blinding factor `k = reduce(BLAKE2b-512(0x05 ‖ x25519_pk ‖ server_pk))`.
pub fn blind25_factor(x25519_pk: &[u8; 32], server_pk: &[u8; 32]) -> [u8; 32] {
    blind25_k(x25519_pk, server_pk).to_bytes()
}

fn blind25_k(x25519_pk: &[u8; 32], server_pk: &[u8; 32]) -> Scalar {
    reduce(&blake2b_512(&[&[0x05], x25519_pk, server_pk]))
}

fn blind15_keypair(keys: &SeedKeys, server_pk: &[u8; 32]) -> BlindedKeypair {
    let ka = Zeroizing::new(blind15_k(server_pk) * *keys.a);
    BlindedKeypair {
        public: EdwardsPoint::mul_base(&ka).compress().to_bytes(),
        secret: ka,
    }
}

fn blind25_keypair(keys: &SeedKeys, server_pk: &[u8; 32]) -> BlindedKeypair {
    let mut k = blind25_k(&keys.x_pk, server_pk);
    if keys.ed_pk_negative() {
        k = -k;
    }
    let ka = Zeroizing::new(k * *keys.a);
    BlindedKeypair {
        public: EdwardsPoint::mul_base(&ka).compress().to_bytes(),
        secret: ka,
    }
}

/// The 25-blinded public key of the identity with this seed and its sign-corrected blinding
/// factor `k'` (negated when the Ed25519 key is negative), as blinded DMs need it.
pub fn blind25_public_key_and_factor(
    seed: &[u8; 32],
    server_pk: &[u8; 32],
) -> ([u8; 32], Zeroizing<Scalar>) {
    let keys = SeedKeys::new(seed);
    let mut k = blind25_k(&keys.x_pk, server_pk);
    if keys.ed_pk_negative() {
        k = -k;
    }
    (blind25_keypair(&keys, server_pk).public, Zeroizing::new(k))
}

/// The 15-blinded public key of the identity with this Ed25519 seed (exact sign).
pub fn blind15_public_key(seed: &[u8; 32], server_pk: &[u8; 32]) -> [u8; 32] {
    blind15_keypair(&SeedKeys::new(seed), server_pk).public
}

/// The 25-blinded public key of the identity with this Ed25519 seed.
pub fn blind25_public_key(seed: &[u8; 32], server_pk: &[u8; 32]) -> [u8; 32] {
    blind25_keypair(&SeedKeys::new(seed), server_pk).public
}

/// The Ed25519 point with positive sign whose Montgomery form is `x25519_pk` (the XEd25519
/// map), rejecting keys that are not usable public keys (not on the prime-order subgroup).
fn positive_ed_point(x25519_pk: &[u8; 32]) -> Result<EdwardsPoint> {
    let p = MontgomeryPoint(*x25519_pk)
        .to_edwards(0)
        .ok_or(Error::InvalidKey(
            "the Session ID is not a valid X25519 public key",
        ))?;
    if p.is_small_order() || !keys::is_torsion_free_vartime(&p) {
        return Err(Error::InvalidKey(
            "the Session ID's key is not on the main subgroup and cannot be blinded",
        ));
    }
    Ok(p)
}

/// The two possible 15-blinded keys (positive form, negative form) of a Session ID's
/// X25519 key. The user's real blinded key is one of them.
pub fn blind15_keys_from_x25519(
    x25519_pk: &[u8; 32],
    server_pk: &[u8; 32],
) -> Result<([u8; 32], [u8; 32])> {
    let a = positive_ed_point(x25519_pk)?;
    let pos = (blind15_k(server_pk) * a).compress().to_bytes();
    let mut neg = pos;
    neg[31] ^= 0x80;
    Ok((pos, neg))
}

/// The 25-blinded key of a Session ID's X25519 key (unique).
pub fn blind25_key_from_x25519(x25519_pk: &[u8; 32], server_pk: &[u8; 32]) -> Result<[u8; 32]> {
    let a = positive_ed_point(x25519_pk)?;
    Ok((blind25_k(x25519_pk, server_pk) * a).compress().to_bytes())
}

/// True if the blinded id (15 or 25, 33 bytes as prefix + key) belongs to the Session ID's
/// X25519 key on this server.
pub fn x25519_matches_blinded(
    x25519_pk: &[u8; 32],
    prefix: u8,
    blinded_key: &[u8; 32],
    server_pk: &[u8; 32],
) -> Result<bool> {
    match prefix {
        PREFIX_BLIND15 => {
            let (pos, neg) = blind15_keys_from_x25519(x25519_pk, server_pk)?;
            Ok(&pos == blinded_key || &neg == blinded_key)
        }
        PREFIX_BLIND25 => Ok(&blind25_key_from_x25519(x25519_pk, server_pk)? == blinded_key),
        _ => Err(Error::InvalidSessionId(
            "only 15- and 25-blinded ids can be matched to a Session ID".into(),
        )),
    }
}

/// Ed25519-style signature `R ‖ S` with `R = r·B`, `S = r + reduce(SHA-512(R ‖ A ‖ M))·a`.
fn sign_with_scalar(r: &Scalar, a: &Scalar, public: &[u8; 32], message: &[u8]) -> [u8; 64] {
    let big_r = EdwardsPoint::mul_base(r).compress().to_bytes();
    let hram = reduce(&sha512(&[&big_r, public, message]));
    let s = r + hram * a;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&big_r);
    sig[32..].copy_from_slice(s.as_bytes());
    sig
}

/// A 15-blinded signature of `message` for `server_pk`, by the identity with this seed.
pub fn blind15_sign(
    seed: &[u8; 32],
    server_pk: &[u8; 32],
    message: &[u8],
    nonce: Blind15Nonce,
) -> [u8; 64] {
    let keys = SeedKeys::new(seed);
    let kp = blind15_keypair(&keys, server_pk);
    let h = Zeroizing::new(match nonce {
        Blind15Nonce::Desktop => sha512(&[&keys.seed[..]]),
        Blind15Nonce::Libsession => sha512(&[&keys.seed[..], &keys.ed_pk]),
    });
    let hrh = &h[32..];
    let r = Zeroizing::new(reduce(&sha512(&[hrh, &kp.public, message])));
    sign_with_scalar(&r, &kp.secret, &kp.public, message)
}

/// A 25-blinded signature of `message` for `server_pk`, by the identity with this seed.
pub fn blind25_sign(seed: &[u8; 32], server_pk: &[u8; 32], message: &[u8]) -> [u8; 64] {
    let keys = SeedKeys::new(seed);
    let kp = blind25_keypair(&keys, server_pk);
    let seed_hash = keyed_blake2b_32(BLIND25_SEED_KEY, &keys.seed[..]);
    let mut mac = <Blake2bMac<U64> as Mac>::new_from_slice(BLIND25_SIG_KEY)
        .unwrap_or_else(|_| unreachable!("BLAKE2b keys of 1..=64 bytes are valid"));
    mac.update(&seed_hash[..]);
    mac.update(&kp.public);
    mac.update(message);
    let wide = Zeroizing::new(<[u8; 64]>::from(mac.finalize().into_bytes()));
    let r = Zeroizing::new(reduce(&wide));
    sign_with_scalar(&r, &kp.secret, &kp.public, message)
}

/// Verifies a blinded (or any Ed25519) signature under a 32-byte public key, with libsodium's
/// acceptance rules ([`keys::verify`]).
pub fn verify(public_key: &[u8; 32], message: &[u8], signature: &[u8]) -> Result<()> {
    // Wrong-length signatures are just invalid signatures: callers check untrusted input.
    let sig: &[u8; 64] = signature.try_into().map_err(|_| Error::InvalidSignature)?;
    keys::verify(public_key, message, sig)
}

/// The version-blinded (07) Ed25519 public key of the identity with this seed.
pub fn version_blind_public_key(seed: &[u8; 32]) -> [u8; 32] {
    version_signing_key(seed).verifying_key().to_bytes()
}

fn version_signing_key(seed: &[u8; 32]) -> SigningKey {
    SigningKey::from_bytes(&keyed_blake2b_32(VERSION_BLIND_KEY, seed))
}

/// A plain Ed25519 signature by the version-blinded key.
pub fn version_blind_sign(seed: &[u8; 32], message: &[u8]) -> [u8; 64] {
    version_signing_key(seed).sign(message).to_bytes()
}

// ---------------------------------------------------------------------------------------------
// SOGS request authentication (client spec §4.3)

/// Inputs of a SOGS request signature.
#[derive(Debug, Clone, Copy)]
pub struct SogsRequest<'a> {
    /// The server's 32-byte public key.
    pub server_pk: &'a [u8; 32],
    /// 16 random bytes, never reused.
    pub nonce: &'a [u8; 16],
    /// Unix seconds.
    pub timestamp: u64,
    /// HTTP method, e.g. `GET`.
    pub method: &'a str,
    /// URL-decoded path, including `?query` when there is one.
    pub path: &'a str,
    /// Request body (empty: not hashed).
    pub body: &'a [u8],
}

/// The signed message `server_pk ‖ nonce ‖ timestamp ‖ METHOD ‖ path [‖ BLAKE2b-512(body)]`.
pub fn sogs_signed_message(req: &SogsRequest<'_>) -> Vec<u8> {
    let ts = req.timestamp.to_string();
    let mut m = Vec::with_capacity(32 + 16 + ts.len() + req.method.len() + req.path.len() + 64);
    m.extend_from_slice(req.server_pk);
    m.extend_from_slice(req.nonce);
    m.extend_from_slice(ts.as_bytes());
    m.extend_from_slice(req.method.as_bytes());
    m.extend_from_slice(req.path.as_bytes());
    if !req.body.is_empty() {
        m.extend_from_slice(&blake2b_512(&[req.body]));
    }
    m
}

/// The values of the four `X-SOGS-*` headers (before base64 / hex formatting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SogsAuth {
    /// `15` ‖ blinded key, or `00` ‖ Ed25519 key.
    pub pubkey: [u8; 33],
    /// The 64-byte signature.
    pub signature: [u8; 64],
}

/// Signs a SOGS request: 15-blinded (`blinded = true`) or plain Ed25519 with the `00` key.
pub fn sogs_auth(
    seed: &[u8; 32],
    req: &SogsRequest<'_>,
    blinded: bool,
    nonce_variant: Blind15Nonce,
) -> Result<SogsAuth> {
    if req.method.is_empty() || !req.method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(Error::InvalidValue {
            what: "HTTP method",
            reason: "it must be ASCII letters, e.g. GET",
        });
    }
    if !req.path.starts_with('/') {
        return Err(Error::InvalidValue {
            what: "request path",
            reason: "it must start with '/' (the URL-decoded path, with ?query if any)",
        });
    }
    let msg = sogs_signed_message(req);
    let mut pubkey = [0u8; 33];
    let signature = if blinded {
        pubkey[0] = PREFIX_BLIND15;
        pubkey[1..].copy_from_slice(&blind15_public_key(seed, req.server_pk));
        blind15_sign(seed, req.server_pk, &msg, nonce_variant)
    } else {
        pubkey[0] = PREFIX_UNBLINDED;
        let sk = SigningKey::from_bytes(seed);
        pubkey[1..].copy_from_slice(sk.verifying_key().as_bytes());
        sk.sign(&msg).to_bytes()
    };
    Ok(SogsAuth { pubkey, signature })
}
