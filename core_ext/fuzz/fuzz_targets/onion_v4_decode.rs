//! v4 bencode decoding never panics; whatever decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_onion::bencode::{decode, encode, Kind};

fuzz_target!(|data: &[u8]| {
    for kind in [Kind::Request, Kind::Response] {
        if let Ok((meta, body)) = decode(kind, data) {
            assert_eq!(
                encode(kind, meta, body).expect("decoded v4 re-encodes"),
                data
            );
        }
    }
});
