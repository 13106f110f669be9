//! Account keys: seed → Ed25519 keypair → X25519 keypair → Session ID, and Ed25519 signatures.
//!
//! A current account is 16 random bytes (the recovery seed). The Ed25519 seed is those 16
//! bytes followed by 16 zero bytes; legacy accounts use a 32-byte Ed25519 seed as is
//! (client spec §1.1, §1.5). The X25519 keys are the libsodium conversions of the Ed25519
//! keys (`crypto_sign_ed25519_{pk,sk}_to_curve25519`) and the Session ID is `05` followed by
//! the X25519 public key in hex.
//!
//! Every function here is a plain `pub fn` so other modules (blinding, attachments, config)
//! can reuse the derivations.

use core::fmt;

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha512};
use x25519_dalek::StaticSecret;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

/// Length of a current recovery seed (what a 13-word phrase encodes).
pub const RECOVERY_SEED_LEN: usize = 16;
/// Length of an Ed25519 seed (and of a legacy recovery seed, a 25-word phrase).
pub const ED25519_SEED_LEN: usize = 32;
/// Prefix byte of a standard (unblinded) Session ID.
pub const SESSION_ID_PREFIX: u8 = 0x05;
/// Length of a Session ID in hex characters.
pub const SESSION_ID_HEX_LEN: usize = 66;

/// The 32-byte Ed25519 seed for a recovery seed: 16-byte seeds get 16 zero bytes appended,
/// 32-byte (legacy) seeds are used as they are.
pub fn ed25519_seed_from_recovery_seed(seed: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    let mut out = Zeroizing::new([0u8; 32]);
    match seed.len() {
        RECOVERY_SEED_LEN | ED25519_SEED_LEN => {
            out[..seed.len()].copy_from_slice(seed);
            Ok(out)
        }
        got => Err(Error::InvalidLength {
            what: "a seed",
            expected: "16 or 32",
            got,
        }),
    }
}

/// Ed25519 keypair of a 32-byte seed, as libsodium `crypto_sign_seed_keypair`:
/// returns the public key and the 64-byte secret key (seed ‖ public key).
pub fn ed25519_keypair_from_seed(seed: &[u8; 32]) -> ([u8; 32], Zeroizing<[u8; 64]>) {
    let signing = SigningKey::from_bytes(seed);
    let pk = signing.verifying_key().to_bytes();
    let mut sk = Zeroizing::new([0u8; 64]);
    sk[..32].copy_from_slice(seed);
    sk[32..].copy_from_slice(&pk);
    (pk, sk)
}

/// X25519 secret key of an Ed25519 seed, as libsodium `crypto_sign_ed25519_sk_to_curve25519`:
/// the first 32 bytes of SHA-512(seed), clamped.
pub fn ed25519_seed_to_x25519_secret(seed: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut h = Sha512::digest(seed);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&h[..32]);
    h.zeroize();
    out[0] &= 248;
    out[31] &= 127;
    out[31] |= 64;
    out
}

/// X25519 public key of an Ed25519 public key, as libsodium
/// `crypto_sign_ed25519_pk_to_curve25519`: rejects encodings that are not curve points,
/// low-order points and points outside the prime-order subgroup.
pub fn ed25519_pk_to_x25519(ed25519_pk: &[u8; 32]) -> Result<[u8; 32]> {
    let point = CompressedEdwardsY(*ed25519_pk)
        .decompress()
        .ok_or(Error::InvalidKey(
            "the Ed25519 public key is not a valid curve point",
        ))?;
    if point.is_small_order() || !is_torsion_free_vartime(&point) {
        return Err(Error::InvalidKey(
            "the Ed25519 public key is a low-order point or not in the prime-order subgroup",
        ));
    }
    Ok(point.to_montgomery().to_bytes())
}

/// `[ℓ]P == identity`, in variable time (only for public points). `ℓ − 1` is a canonical
/// scalar (−1 mod ℓ) and the double-base multiplication computes the true integer multiple
/// for any curve point, so `[ℓ − 1]P + P = [ℓ]P`. About twice as fast as the constant-time
/// `EdwardsPoint::is_torsion_free`.
pub(crate) fn is_torsion_free_vartime(point: &EdwardsPoint) -> bool {
    let l_minus_one = -Scalar::ONE;
    (EdwardsPoint::vartime_double_scalar_mul_basepoint(&l_minus_one, point, &Scalar::ZERO) + point)
        .is_identity()
}

/// Slice form of [`ed25519_pk_to_x25519`] with a length check.
pub fn ed25519_pk_to_x25519_slice(ed25519_pk: &[u8]) -> Result<[u8; 32]> {
    ed25519_pk_to_x25519(&array32(
        ed25519_pk,
        "an Ed25519 public key must be 32 bytes",
    )?)
}

/// The Ed25519 point with sign bit 0 whose X25519 (Montgomery) form is `x25519_pk` (the
/// XEd25519 convention). Equals the account's real Ed25519 key only when that key is
/// "positive"; the other account keys are its negation (last byte differs by 0x80).
pub fn x25519_pk_to_ed25519_positive(x25519_pk: &[u8; 32]) -> Result<[u8; 32]> {
    MontgomeryPoint(*x25519_pk)
        .to_edwards(0)
        .map(|p| p.compress().to_bytes())
        .ok_or(Error::InvalidKey(
            "the X25519 public key has no Ed25519 counterpart",
        ))
}

/// Session ID text (`05` + hex) of an X25519 public key.
pub fn session_id_from_x25519(x25519_pk: &[u8; 32]) -> String {
    let mut s = String::with_capacity(SESSION_ID_HEX_LEN);
    s.push_str("05");
    push_hex(&mut s, x25519_pk);
    s
}

/// Parses a standard Session ID (`05` followed by 64 hex digits, either case) and returns
/// the 32-byte X25519 public key.
pub fn parse_session_id(text: &str) -> Result<[u8; 32]> {
    let n = text.chars().count();
    if n != SESSION_ID_HEX_LEN {
        return Err(Error::InvalidSessionId(format!(
            "a Session ID is 66 hex characters starting with 05, got {n} characters"
        )));
    }
    let bytes = text.as_bytes();
    if !bytes.iter().all(u8::is_ascii_hexdigit) {
        return Err(Error::InvalidSessionId(
            "a Session ID may only contain hex digits 0-9 and a-f".to_owned(),
        ));
    }
    let prefix = &text[..2];
    if prefix != "05" {
        let what = match prefix.to_ascii_lowercase().as_str() {
            "15" | "25" => "a community-blinded ID",
            "03" => "a group ID",
            "00" | "07" => "an Ed25519 key, not a user ID",
            _ => "an unknown kind of ID",
        };
        return Err(Error::InvalidSessionId(format!(
            "a user's Session ID starts with 05; this one starts with {prefix} ({what})"
        )));
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes[2..].chunks_exact(2).enumerate() {
        out[i] = (hex_val(pair[0]) << 4) | hex_val(pair[1]);
    }
    Ok(out)
}

/// Verifies a detached Ed25519 signature with the same acceptance rules as libsodium's
/// `crypto_sign_verify_detached` (what every Session client and libsession use).
///
/// Why `verify_strict` plus one extra check: libsodium rejects a non-canonical `S`
/// (S ≥ ℓ), a low-order `R`, a low-order public key `A` and a non-canonical encoding of `A`
/// (y ≥ p), and it checks the cofactorless equation `R == sB − hA` by comparing encodings.
/// ed25519-dalek's `verify` (the lenient one) accepts low-order `A`/`R`, so signatures that
/// every Session client rejects would pass here; `verify_strict` has exactly libsodium's
/// equation and its low-order rejections, and dalek always requires canonical `S`. The only
/// remaining difference, a non-canonical `A`, is rejected explicitly below. The result: a
/// signature verifies here iff it verifies in libsodium (checked against PyNaCl in tests).
pub fn verify(ed25519_pk: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> Result<()> {
    if !is_canonical_field_encoding(ed25519_pk) {
        return Err(Error::InvalidSignature);
    }
    let key = VerifyingKey::from_bytes(ed25519_pk).map_err(|_| Error::InvalidSignature)?;
    let sig = Signature::from_bytes(signature);
    key.verify_strict(message, &sig)
        .map_err(|_| Error::InvalidSignature)
}

/// [`verify`], then the X25519 key of the now-authenticated Ed25519 key (as
/// [`ed25519_pk_to_x25519`]), decompressing the key once. Fails with
/// [`Error::InvalidSignature`] or, for a key libsodium cannot convert, [`Error::InvalidKey`].
pub fn verify_and_convert(
    ed25519_pk: &[u8; 32],
    message: &[u8],
    signature: &[u8; 64],
) -> Result<[u8; 32]> {
    if !is_canonical_field_encoding(ed25519_pk) {
        return Err(Error::InvalidSignature);
    }
    let key = VerifyingKey::from_bytes(ed25519_pk).map_err(|_| Error::InvalidSignature)?;
    key.verify_strict(message, &Signature::from_bytes(signature))
        .map_err(|_| Error::InvalidSignature)?;
    // verify_strict refused low-order keys; the conversion also needs the prime-order subgroup.
    if !is_torsion_free_vartime(&key.to_edwards()) {
        return Err(Error::InvalidKey(
            "the Ed25519 public key is a low-order point or not in the prime-order subgroup",
        ));
    }
    Ok(key.to_montgomery().to_bytes())
}

/// Slice form of [`verify`]: a key that is not 32 bytes is an [`Error::InvalidKey`], a
/// signature that is not 64 bytes an [`Error::InvalidLength`].
pub fn verify_slices(ed25519_pk: &[u8], message: &[u8], signature: &[u8]) -> Result<()> {
    let pk = array32(ed25519_pk, "an Ed25519 public key must be 32 bytes")?;
    let sig: [u8; 64] = signature.try_into().map_err(|_| Error::InvalidLength {
        what: "an Ed25519 signature",
        expected: "64",
        got: signature.len(),
    })?;
    verify(&pk, message, &sig)
}

/// Ed25519 signature with a 32-byte seed (deterministic, RFC 8032 / libsodium).
pub fn sign_with_seed(seed: &[u8; 32], message: &[u8]) -> [u8; 64] {
    SigningKey::from_bytes(seed).sign(message).to_bytes()
}

/// y < p = 2^255 − 19 for the little-endian y coordinate (sign bit ignored): libsodium's
/// `ge25519_is_canonical`.
fn is_canonical_field_encoding(b: &[u8; 32]) -> bool {
    let top_all_ones = (b[31] & 0x7f) == 0x7f && b[1..31].iter().all(|&x| x == 0xff);
    !(top_all_ones && b[0] >= 0xed)
}

fn array32(s: &[u8], msg: &'static str) -> Result<[u8; 32]> {
    s.try_into().map_err(|_| Error::InvalidKey(msg))
}

fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

fn push_hex(s: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0x0f) as usize] as char);
    }
}

/// One account's keys, derived once from its seed. Secret parts are wiped on drop and never
/// shown by `Debug`.
pub struct SessionKeys {
    /// The recovery seed as given (16 bytes, or 32 for legacy accounts); zero-padded to 32.
    seed: [u8; 32],
    seed_len: usize,
    signing: SigningKey,
    x_secret: StaticSecret,
    ed_public: [u8; 32],
    x_public: [u8; 32],
}

impl SessionKeys {
    /// Keys of a 16-byte recovery seed or a legacy 32-byte Ed25519 seed.
    pub fn from_seed(seed: &[u8]) -> Result<Self> {
        let ed_seed = ed25519_seed_from_recovery_seed(seed)?;
        let signing = SigningKey::from_bytes(&ed_seed);
        let verifying = signing.verifying_key();
        let x_secret = StaticSecret::from(*ed25519_seed_to_x25519_secret(&ed_seed));
        Ok(SessionKeys {
            seed: *ed_seed,
            seed_len: seed.len(),
            ed_public: verifying.to_bytes(),
            // Same value as X25519(x_secret, base) but without a scalar multiplication.
            x_public: verifying.to_montgomery().to_bytes(),
            signing,
            x_secret,
        })
    }

    /// A new account: 16 random bytes from the operating system.
    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; RECOVERY_SEED_LEN]);
        OsRng.fill_bytes(&mut seed[..]);
        // A 16-byte seed is always accepted.
        match Self::from_seed(&seed[..]) {
            Ok(keys) => keys,
            Err(_) => unreachable!("16-byte seeds are valid"),
        }
    }

    /// The recovery seed as given at creation (16 bytes, or 32 for legacy accounts).
    pub fn recovery_seed(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.seed[..self.seed_len].to_vec())
    }

    /// The 32-byte Ed25519 seed.
    pub fn ed25519_seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// libsodium-style 64-byte Ed25519 secret key: seed ‖ public key.
    pub fn ed25519_secret_key(&self) -> Zeroizing<[u8; 64]> {
        Zeroizing::new(self.signing.to_keypair_bytes())
    }

    /// The dalek signing key (for modules that sign with the account key).
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    pub fn ed25519_public(&self) -> &[u8; 32] {
        &self.ed_public
    }

    pub fn x25519_public(&self) -> &[u8; 32] {
        &self.x_public
    }

    /// The X25519 secret key (clamped SHA-512 of the Ed25519 seed).
    pub fn x25519_secret(&self) -> &StaticSecret {
        &self.x_secret
    }

    pub fn session_id(&self) -> String {
        session_id_from_x25519(&self.x_public)
    }

    /// Detached Ed25519 signature with the account key.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

impl Drop for SessionKeys {
    fn drop(&mut self) {
        // `signing` and `x_secret` wipe themselves (dalek `zeroize` features).
        self.seed.zeroize();
    }
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys")
            .field("session_id", &self.session_id())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_encoding_check() {
        let mut p = [0xffu8; 32];
        p[31] = 0x7f;
        p[0] = 0xec; // p - 1
        assert!(is_canonical_field_encoding(&p));
        p[0] = 0xed; // p
        assert!(!is_canonical_field_encoding(&p));
        p[31] = 0xff; // sign bit does not matter
        assert!(!is_canonical_field_encoding(&p));
        assert!(is_canonical_field_encoding(&[0u8; 32]));
    }

    #[test]
    fn vartime_torsion_check_matches_dalek() {
        use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
        for k in 1u64..20 {
            let p = ED25519_BASEPOINT_POINT * Scalar::from(k * 7919);
            for t in EIGHT_TORSION {
                let q = p + t;
                assert_eq!(is_torsion_free_vartime(&q), q.is_torsion_free());
                assert_eq!(is_torsion_free_vartime(&t), t.is_torsion_free());
            }
        }
    }

    #[test]
    fn debug_shows_only_the_session_id() {
        let k = SessionKeys::from_seed(&[7u8; 16]).expect("valid seed");
        let d = format!("{k:?}");
        assert!(d.contains(&k.session_id()));
        assert!(!d.contains("0707070707"));
    }

    #[test]
    fn session_id_parse_errors() {
        let good = "05d2ad010eeb72d72e561d9de7bd7b6989af77dcabffa03a5111a6c859ae5c3a72";
        assert!(parse_session_id(good).is_ok());
        assert!(parse_session_id(&good.to_ascii_uppercase()).is_ok());
        for bad in [
            &good[2..],
            "15d2ad010eeb72d72e561d9de7bd7b6989af77dcabffa03a5111a6c859ae5c3a72",
            "05d2ad010eeb72d72e561d9de7bd7b6989af77dcabffa03a5111a6c859ae5c3a7g",
            "",
            "é5d2ad010eeb72d72e561d9de7bd7b6989af77dcabffa03a5111a6c859ae5c3a7",
        ] {
            assert!(
                matches!(parse_session_id(bad), Err(Error::InvalidSessionId(_))),
                "{bad}"
            );
        }
    }
}
