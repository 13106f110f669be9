//! TV-12 (blinded DMs, libsession "Session blinding protocol encryption"): the ciphertext is
//! random, so the vectors fix sizes, the nonce position, who can decrypt, the recovered sender
//! and a tampered byte that must fail.

mod common;

use common::{kind, s};
use session_crypto::blinded_dm::{self, BlindedId};
use session_crypto::blinding::{
    blind15_public_key, blind25_public_key, parse_server_pk, PREFIX_BLIND15, PREFIX_BLIND25,
};
use session_crypto::keys::session_id_from_x25519;

/// Seed and server key to a blinded public key.
type Blind = fn(&[u8; 32], &[u8; 32]) -> [u8; 32];

fn seed(c: &serde_json::Value, k: &str) -> [u8; 32] {
    hex::decode(s(c, k))
        .expect("hex")
        .try_into()
        .expect("32 bytes")
}

#[test]
fn tv12_structure_and_both_orientations() {
    for c in kind("session_protocol", "blinded_dm_structure") {
        let name = &c["name"];
        let spk = parse_server_pk(s(&c, "server_pk")).expect("pk");
        let (a, b) = (
            seed(&c, "sender_ed25519_seed"),
            seed(&c, "recipient_ed25519_seed"),
        );
        let (prefix, blind): (u8, Blind) = match s(&c, "blinding") {
            "15" => (PREFIX_BLIND15, blind15_public_key),
            _ => (PREFIX_BLIND25, blind25_public_key),
        };
        let sender = BlindedId {
            prefix,
            key: blind(&a, &spk),
        };
        let recipient = BlindedId {
            prefix,
            key: blind(&b, &spk),
        };
        let len = c["plaintext_len"].as_u64().expect("len") as usize;
        let plain: Vec<u8> = (0..len).map(|i| b"lorem ipsum "[i % 12]).collect();
        let nonce = [0x5a_u8; 24];
        let ct =
            blinded_dm::encrypt_with_nonce(&a, &spk, &recipient, &plain, &nonce).expect("encrypt");
        assert_eq!(
            ct.len() as u64,
            c["ciphertext_len"].as_u64().expect("n"),
            "{name}"
        );
        let at = c["nonce_offset"].as_u64().expect("off") as usize;
        assert_eq!(&ct[at..], &nonce, "{name}: nonce position");
        assert_eq!(ct[0], 0, "{name}: version byte");
        // Random nonces: two encryptions differ.
        let ct2 = blinded_dm::encrypt(&a, &spk, &recipient, &plain).expect("encrypt");
        assert_ne!(ct, ct2);
        for reader in [&b, &a] {
            for ciphertext in [&ct, &ct2] {
                let opened = blinded_dm::decrypt(reader, &spk, &sender, &recipient, ciphertext)
                    .expect("decrypt");
                assert_eq!(opened.content.as_slice(), plain.as_slice(), "{name}");
                assert_eq!(
                    session_id_from_x25519(&opened.sender_x25519),
                    s(&c, "sender_session_id"),
                    "{name}"
                );
            }
        }
        for t in c["tamper_must_fail"].as_array().expect("tamper") {
            let mut bad = ct.clone();
            let i = t["byte_index"].as_u64().expect("i") as usize;
            bad[i] ^= t["xor"].as_u64().expect("x") as u8;
            assert!(
                blinded_dm::decrypt(&b, &spk, &sender, &recipient, &bad).is_err(),
                "{name}: tampered byte {i} accepted"
            );
        }
        // Ids without their 15/25 prefix are refused.
        let bare = hex::encode(recipient.key);
        assert!(BlindedId::parse(&bare).is_err());
        let full = format!("{:02x}{bare}", prefix);
        assert_eq!(BlindedId::parse(&full).expect("parse"), recipient);
    }
}
