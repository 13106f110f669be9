//! Arbitrary bytes given to the 1:1 decryption fail cleanly (they can never open: the sealed
//! box is authenticated), and flipped bytes of a real message never decrypt.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use session_crypto::keys::SessionKeys;
use session_crypto::protocol;

struct Fixture {
    recipient: SessionKeys,
    message: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let sender = SessionKeys::from_seed(&[1u8; 16]).expect("seed");
        let recipient = SessionKeys::from_seed(&[2u8; 16]).expect("seed");
        let message = protocol::encrypt_for_recipient(&sender, recipient.x25519_public(), b"fuzz")
            .expect("encrypt");
        Fixture { recipient, message }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    assert!(
        protocol::decrypt_incoming(&f.recipient, data).is_err() || data == f.message.as_slice()
    );
    // Use the input as a list of (index, xor) edits on a valid message.
    let mut edited = f.message.clone();
    let mut changed = false;
    for pair in data.chunks_exact(2) {
        let i = pair[0] as usize % edited.len();
        if pair[1] != 0 {
            edited[i] ^= pair[1];
            changed = true;
        }
    }
    if changed && edited != f.message {
        assert!(protocol::decrypt_incoming(&f.recipient, &edited).is_err());
    }
});
