//! Layer decoding never panics; a decoded layer re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_onion::layer;

fuzz_target!(|data: &[u8]| {
    if let Ok((blob, json)) = layer::decode(data) {
        assert_eq!(
            layer::encode(blob, json).expect("decoded layer re-encodes"),
            data
        );
    }
    if let Ok((blob, rest)) = layer::split(data) {
        assert_eq!(4 + blob.len() + rest.len(), data.len());
    }
});
