//! Arbitrary bytes given to the 03-group parsers (bencoding, group messages, key messages)
//! fail cleanly and never panic; flipped bytes of a real group message or rekey message never
//! open or load.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use session_crypto::keys::{self, SessionKeys};
use session_crypto::{bt, group_keys, group_message};

struct Fixture {
    member: SessionKeys,
    group_pk: [u8; 32],
    group_key: [u8; 32],
    message: Vec<u8>,
    rekey: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let member = SessionKeys::from_seed(&[2u8; 16]).expect("seed");
        let seed = [9u8; 32];
        let (group_pk, _) = keys::ed25519_keypair_from_seed(&seed);
        let (rekey, key) = group_keys::rekey(&seed, &[member.session_id()], 0).expect("rekey");
        let message =
            group_message::encrypt_with_nonce(&member, &key, b"fuzz", false, 256, &[7u8; 24])
                .expect("encrypt");
        Fixture {
            member,
            group_pk,
            group_key: *key,
            message,
            rekey,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let _ = bt::parse(data);
    let _ = group_message::decrypt(&[f.group_key], data);
    let reader = group_keys::Reader::Member(&f.member);
    // Only authentic messages open or load (the seeds hold a few); nothing may panic.
    let _ = group_keys::load(&f.group_pk, data, 0, &reader);
    // Use the input as a list of (index, xor) edits on the valid messages.
    for (valid, is_rekey) in [(&f.message, false), (&f.rekey, true)] {
        let mut edited = valid.clone();
        for pair in data.chunks_exact(3) {
            let i = (usize::from(pair[0]) << 8 | usize::from(pair[1])) % edited.len();
            edited[i] ^= pair[2];
        }
        if edited != *valid {
            if is_rekey {
                assert!(group_keys::load(&f.group_pk, &edited, 0, &reader).is_err());
            } else {
                assert!(group_message::decrypt(&[f.group_key], &edited).is_err());
            }
        }
    }
});
