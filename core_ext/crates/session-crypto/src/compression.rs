//! zstd compression as libsession uses it: group messages (`z` entry) and config pushes
//! (`z`-prefixed) are compressed only when that makes them smaller, and decompression is
//! bounded so a small "zip bomb" cannot exhaust memory.

use std::io::Read;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// zstd (level 1 equivalent) of `data`.
pub fn compress(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

/// Decompresses one zstd frame, refusing output larger than `max` bytes.
pub fn decompress(data: &[u8], max: usize) -> Result<Zeroizing<Vec<u8>>> {
    let bad = || Error::DecryptionFailed("the compressed data is not valid zstd");
    let decoder = ruzstd::decoding::StreamingDecoder::new(data).map_err(|_| bad())?;
    let mut out = Zeroizing::new(Vec::new());
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    decoder
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|_| bad())?;
    if out.len() > max {
        return Err(Error::TooLarge {
            what: "decompressed data",
            max,
            got: out.len(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_limits_and_garbage() {
        let data = b"hello to all my friends sitting in the tomato sauce".repeat(32);
        let c = compress(&data);
        assert!(c.len() < 200);
        assert_eq!(&decompress(&c, data.len()).expect("ok")[..], &data[..]);
        assert!(matches!(
            decompress(&c, data.len() - 1),
            Err(Error::TooLarge { .. })
        ));
        assert!(decompress(b"not zstd at all", 100).is_err());
        assert!(decompress(&c[..c.len() / 2], 10_000).is_err());
    }
}
