//! Any text given as a recovery phrase decodes or fails with an error, never panics; what
//! decodes re-encodes to a phrase that decodes to the same seed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_crypto::mnemonic;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(seed) = mnemonic::decode(&text) {
        assert!(seed.len() == 16 || seed.len() == 32);
        let phrase = mnemonic::encode(&seed).expect("16/32-byte seeds encode");
        assert_eq!(
            &mnemonic::decode(&phrase).expect("round trip")[..],
            &seed[..]
        );
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let _ = mnemonic::decode_words(&words, false);
    let _ = mnemonic::decode_words(&words, true);
});
