//! XEd25519: Ed25519-compatible signatures by an X25519 key (client spec §4.5, TV-04).
//!
//! Community posts on servers without blinding are signed this way, so that anyone holding
//! only the poster's `05` Session ID (an X25519 public key) can verify them.
//!
//! * **Public key**: the Edwards point whose Montgomery u-coordinate is the X25519 key, taken
//!   with sign bit 0 (`y = (u − 1)/(u + 1)`). Verification is then plain Ed25519 (libsodium
//!   rules, [`keys::verify`]) under that point.
//! * **Signing** (as libsession `xed25519::sign`): `a` = the X25519 private scalar; if `a·B`
//!   has sign bit 1, `a` is negated so that `a·B` is the positive point above. The nonce is
//!   `r = reduce(BLAKE2b-512(a ‖ M ‖ Z; personal = "xed25519signatur"))` with 64 fresh random
//!   bytes `Z`, and the signature `R ‖ S` with `R = r·B`, `S = r + reduce(SHA-512(R ‖ A ‖ M))·a`.

use blake2::digest::core_api::{Buffer, UpdateCore, VariableOutputCore};
use blake2::Blake2bVarCore;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha512};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::keys;

/// BLAKE2b personalisation of the nonce hash (libsession's 16-byte label).
const NONCE_PERSONAL: &[u8; 16] = b"xed25519signatur";

/// The Ed25519 public key (sign bit 0) that XEd25519 signatures of this X25519 key verify under.
pub fn public_key(x25519_pk: &[u8; 32]) -> Result<[u8; 32]> {
    keys::x25519_pk_to_ed25519_positive(x25519_pk)
}

/// Verifies an XEd25519 signature of `message` by the holder of `x25519_pk`.
/// A key with no Ed25519 counterpart or a signature that is not 64 valid bytes is
/// [`Error::InvalidSignature`] (callers check untrusted posts).
pub fn verify(x25519_pk: &[u8; 32], message: &[u8], signature: &[u8]) -> Result<()> {
    let sig: &[u8; 64] = signature.try_into().map_err(|_| Error::InvalidSignature)?;
    let ed_pk = public_key(x25519_pk).map_err(|_| Error::InvalidSignature)?;
    keys::verify(&ed_pk, message, sig)
}

/// `r = reduce(BLAKE2b-512(a ‖ M ‖ Z))` with libsession's personalisation.
fn nonce(a: &Scalar, message: &[u8], random: &[u8; 64]) -> Zeroizing<Scalar> {
    let mut core = Blake2bVarCore::new_with_params(&[], NONCE_PERSONAL, 0, 64);
    let mut buffer = Buffer::<Blake2bVarCore>::default();
    for part in [&a.as_bytes()[..], message, &random[..]] {
        buffer.digest_blocks(part, |blocks| core.update_blocks(blocks));
    }
    let mut full = Default::default();
    core.finalize_variable_core(&mut buffer, &mut full);
    let mut wide = [0u8; 64];
    wide.copy_from_slice(&full[..64]);
    full.zeroize();
    let r = Zeroizing::new(Scalar::from_bytes_mod_order_wide(&wide));
    wide.zeroize();
    r
}

/// XEd25519 signature with caller-supplied nonce randomness `random` (tests use this to be
/// deterministic; [`sign`] draws it from the OS).
pub fn sign_with_random(x25519_sk: &[u8; 32], message: &[u8], random: &[u8; 64]) -> [u8; 64] {
    let mut a = Zeroizing::new(Scalar::from_bytes_mod_order(*x25519_sk));
    let mut public = EdwardsPoint::mul_base(&a).compress().to_bytes();
    if public[31] & 0x80 != 0 {
        *a = -*a;
        public[31] &= 0x7f;
    }
    let r = nonce(&a, message, random);
    let big_r = EdwardsPoint::mul_base(&r).compress().to_bytes();
    let mut h = Sha512::new();
    h.update(big_r);
    h.update(public);
    h.update(message);
    let hram = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    let s = Zeroizing::new(*r + hram * *a);
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&big_r);
    sig[32..].copy_from_slice(s.as_bytes());
    sig
}

/// XEd25519 signature of `message` by the X25519 private key `x25519_sk` (the clamped
/// scalar, as libsodium's `crypto_sign_ed25519_sk_to_curve25519` gives it).
pub fn sign(x25519_sk: &[u8; 32], message: &[u8]) -> [u8; 64] {
    let mut random = Zeroizing::new([0u8; 64]);
    OsRng.fill_bytes(&mut random[..]);
    sign_with_random(x25519_sk, message, &random)
}

/// XEd25519 signature by the X25519 key of the identity with this Ed25519 seed.
pub fn sign_with_seed(seed: &[u8; 32], message: &[u8]) -> [u8; 64] {
    sign(&keys::ed25519_seed_to_x25519_secret(seed), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).expect("test hex");
        out
    }

    const SEED1: &str = "fecd9a6034bc9aba273925dee7062b123334587c3c6257341afae2d7fe85e122";
    const X1: &str = "fe94b7ad4b7f1cc1bb92671f1f0d243f226e115b33770465e82b503fc3e96e1f";
    const PK1: &str = "f4ef873908f6a5377ba3853f0e2fa326eed9e741edf9f7d0311a3ecc66a57b32";
    const SEED2: &str = "8659efdcbe0949e0f81141e6d397e8be75f45d09262f209d5950e97989eb43c7";
    const X2: &str = "05c9a9bf178fa644d44bebf628716dc7f2df3d0842e97881962c723699152073";
    const PK2_POS: &str = "3570b69a47dc094544c1c5089c40414bbda1ffdde8aab2617fe937ee74a5ee01";

    #[test]
    fn tv04_public_key_has_sign_bit_zero() {
        assert_eq!(public_key(&h32(X1)).expect("TV-04 key 1"), h32(PK1));
        assert_eq!(public_key(&h32(X2)).expect("TV-04 key 2"), h32(PK2_POS));
    }

    #[test]
    fn sign_verifies_for_positive_and_negative_keys() {
        for (seed, x) in [(SEED1, X1), (SEED2, X2)] {
            let seed = h32(seed);
            let sig = sign_with_seed(&seed, b"hello community");
            verify(&h32(x), b"hello community", &sig).expect("own signature verifies");
            assert!(verify(&h32(x), b"hello communitz", &sig).is_err());
            let mut bad = sig;
            bad[5] ^= 1;
            assert!(verify(&h32(x), b"hello community", &bad).is_err());
            assert!(verify(&h32(x), b"hello community", &sig[..63]).is_err());
        }
    }

    #[test]
    fn nonce_is_deterministic_in_its_randomness_and_fresh_otherwise() {
        let sk = keys::ed25519_seed_to_x25519_secret(&h32(SEED2));
        let z = [7u8; 64];
        assert_eq!(
            sign_with_random(&sk, b"m", &z),
            sign_with_random(&sk, b"m", &z)
        );
        assert_ne!(
            sign_with_random(&sk, b"m", &z),
            sign_with_random(&sk, b"m", &[8u8; 64])
        );
        assert_ne!(sign(&sk, b"m"), sign(&sk, b"m"));
    }

    #[test]
    fn nonce_is_personalised_blake2b_reduced() {
        // Computed independently: int(hashlib.blake2b(a ‖ M ‖ Z,
        // person=b"xed25519signatur").digest() as little-endian) mod ℓ.
        let r = nonce(&Scalar::from(5u8), b"m", &[7u8; 64]);
        assert_eq!(
            hex::encode(r.as_bytes()),
            "bb745bffb2b7ccdb0ee01d9e0c2142c5e65469b187a7cbaae4555d7d62891509"
        );
    }
}
