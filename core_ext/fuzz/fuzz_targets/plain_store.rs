//! The plain-store fast path never panics, and what it takes is a request the full parser
//! would take too: a 66-hex account, data within the size limit, expiry = timestamp + ttl.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_swarm::plain_store::{parse_plain_store, MAX_DATA_B64};

fuzz_target!(|data: &[u8]| {
    if let Some(s) = parse_plain_store(data) {
        assert!(s.data.len() <= MAX_DATA_B64 / 4 * 3);
        assert!(s.expiry >= s.timestamp);
        assert!(std::str::from_utf8(data).is_ok());
    }
});
