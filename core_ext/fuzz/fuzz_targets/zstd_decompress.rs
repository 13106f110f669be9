//! Bounded zstd decompression (group messages and configs) never panics and never returns
//! more than its bound, whatever the frame claims; compressing then decompressing any input
//! gives it back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_crypto::compression::{compress, decompress};

/// Small enough that a frame announcing more is refused quickly.
const MAX: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    if let Ok(out) = decompress(data, MAX) {
        assert!(out.len() <= MAX);
    }
    let packed = compress(data);
    assert_eq!(
        &decompress(&packed, data.len()).expect("round trip")[..],
        data
    );
    if !data.is_empty() {
        assert!(decompress(&packed, data.len() - 1).is_err());
    }
});
