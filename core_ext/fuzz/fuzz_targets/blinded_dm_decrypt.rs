//! Arbitrary bytes given to the blinded-DM decryption (community inbox, client spec §4.6) fail
//! cleanly, and flipped bytes of a real message never decrypt, for the recipient or the sender.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use session_crypto::blinded_dm::{self, BlindedId};
use session_crypto::blinding::{blind15_public_key, PREFIX_BLIND15};

const SERVER: [u8; 32] = [9u8; 32];

struct Fixture {
    sender_seed: [u8; 32],
    recipient_seed: [u8; 32],
    sender: BlindedId,
    recipient: BlindedId,
    message: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let (sender_seed, recipient_seed) = ([1u8; 32], [2u8; 32]);
        let id = |seed: &[u8; 32]| BlindedId {
            prefix: PREFIX_BLIND15,
            key: blind15_public_key(seed, &SERVER),
        };
        let (sender, recipient) = (id(&sender_seed), id(&recipient_seed));
        let message =
            blinded_dm::encrypt(&sender_seed, &SERVER, &recipient, b"fuzz").expect("encrypt");
        Fixture {
            sender_seed,
            recipient_seed,
            sender,
            recipient,
            message,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    for seed in [&f.recipient_seed, &f.sender_seed] {
        let opened = blinded_dm::decrypt(seed, &SERVER, &f.sender, &f.recipient, data);
        assert!(opened.is_err() || data == f.message.as_slice());
    }
    // Use the input as a list of (index, xor) edits on a valid message.
    let mut edited = f.message.clone();
    for pair in data.chunks_exact(2) {
        let i = pair[0] as usize % edited.len();
        edited[i] ^= pair[1];
    }
    if edited != f.message {
        let opened =
            blinded_dm::decrypt(&f.recipient_seed, &SERVER, &f.sender, &f.recipient, &edited);
        assert!(opened.is_err());
    }
});
