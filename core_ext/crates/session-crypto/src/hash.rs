//! BLAKE2b with a run-time digest size and optional key, as libsodium's
//! `crypto_generichash` (which Session uses everywhere as `H_n(x; key=k)`).

use blake2::digest::core_api::{Buffer, UpdateCore, VariableOutputCore};
use blake2::Blake2bVarCore;
use zeroize::Zeroize;

use crate::error::{Error, Result};

/// Largest digest and key size (bytes).
pub const MAX_SIZE: usize = 64;
const BLOCK: usize = 128;

/// BLAKE2b of `parts` concatenated, `digest_size` bytes (1..=64), keyed when `key` is
/// non-empty (up to 64 bytes; an empty key means unkeyed, as in libsodium).
pub fn blake2b_parts(parts: &[&[u8]], key: &[u8], digest_size: usize) -> Result<Vec<u8>> {
    if digest_size == 0 || digest_size > MAX_SIZE {
        return Err(Error::InvalidLength {
            what: "a BLAKE2b digest size",
            expected: "between 1 and 64",
            got: digest_size,
        });
    }
    if key.len() > MAX_SIZE {
        return Err(Error::InvalidLength {
            what: "a BLAKE2b key",
            expected: "at most 64",
            got: key.len(),
        });
    }
    // The variable-size core takes the output size and key length as parameters (they go
    // into BLAKE2b's parameter block); a key is then hashed as a first, zero-padded block.
    let mut core = Blake2bVarCore::new_with_params(&[], &[], key.len(), digest_size);
    let mut buffer = Buffer::<Blake2bVarCore>::default();
    if !key.is_empty() {
        let mut block = [0u8; BLOCK];
        block[..key.len()].copy_from_slice(key);
        buffer.digest_blocks(&block, |blocks| core.update_blocks(blocks));
        block.zeroize();
    }
    for part in parts {
        buffer.digest_blocks(part, |blocks| core.update_blocks(blocks));
    }
    let mut full = Default::default();
    core.finalize_variable_core(&mut buffer, &mut full);
    let out = full[..digest_size].to_vec();
    full.zeroize();
    Ok(out)
}

/// BLAKE2b of `data` (see [`blake2b_parts`]); `key = None` is unkeyed.
pub fn blake2b(data: &[u8], key: Option<&[u8]>, digest_size: usize) -> Result<Vec<u8>> {
    blake2b_parts(&[data], key.unwrap_or(&[]), digest_size)
}

/// Fixed-size helper for internal callers: BLAKE2b of `parts` with an `N`-byte digest.
pub fn blake2b_n<const N: usize>(parts: &[&[u8]], key: &[u8]) -> Result<[u8; N]> {
    let v = blake2b_parts(parts, key, N)?;
    let mut out = [0u8; N];
    out.copy_from_slice(&v);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use blake2::digest::{Update, VariableOutput};

    #[test]
    fn matches_the_crate_for_unkeyed_sizes() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for size in 1..=64 {
            for len in [0usize, 1, 127, 128, 129, 256, 1000] {
                let mut h = blake2::Blake2bVar::new(size).expect("size");
                h.update(&data[..len]);
                let mut want = vec![0u8; size];
                h.finalize_variable(&mut want).expect("size");
                assert_eq!(blake2b(&data[..len], None, size).expect("ok"), want);
                // split input gives the same digest
                let (a, b) = data[..len].split_at(len / 3);
                assert_eq!(blake2b_parts(&[a, b], &[], size).expect("ok"), want);
            }
        }
    }

    #[test]
    fn keyed_matches_the_crate_mac() {
        use blake2::digest::{FixedOutput, KeyInit};
        for klen in [1usize, 7, 16, 64] {
            let key = vec![0x5au8; klen];
            for len in [0usize, 5, 128, 300] {
                let data = vec![0x33u8; len];
                let mut mac = blake2::Blake2bMac512::new_from_slice(&key).expect("key");
                blake2::digest::Update::update(&mut mac, &data);
                let want = mac.finalize_fixed();
                assert_eq!(blake2b(&data, Some(&key), 64).expect("ok"), want.to_vec());
            }
        }
    }

    #[test]
    fn rejects_bad_sizes() {
        assert!(blake2b(b"", None, 0).is_err());
        assert!(blake2b(b"", None, 65).is_err());
        assert!(blake2b(b"", Some(&[0u8; 65]), 32).is_err());
        assert_eq!(
            blake2b(b"x", Some(&[]), 32).expect("ok"),
            blake2b(b"x", None, 32).expect("ok")
        );
    }
}
