//! Unpadding never panics; its output is a prefix of the input, and padding then unpadding
//! any input gives the input back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_crypto::padding;

fuzz_target!(|data: &[u8]| {
    match padding::unpad(data) {
        Ok(out) => assert!(data.starts_with(out)),
        Err(_) => assert!(data.iter().all(|&b| b == 0)),
    }
    let padded = padding::pad(data);
    assert_eq!(padded.len() % padding::BLOCK, 0);
    assert_eq!(padding::unpad(&padded).expect("padded data unpads"), data);
    assert_eq!(
        padding::unpad(&padding::pad_desktop_legacy(data)).expect("legacy"),
        data
    );
});
