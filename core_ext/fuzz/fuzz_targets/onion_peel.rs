//! Peeling arbitrary frames never panics; every failure carries a 4xx/5xx status. The second
//! half encrypts the fuzz input as a real layer so the routing JSON parser is reached too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_onion::hop::{x25519_public, EncType, HopKey};
use session_onion::{layer, Decision, Peeler};

const NODE_SECRET: [u8; 32] = [0x42; 32];
const CLIENT_SECRET: [u8; 32] = [0x17; 32];

fn check(peeler: &Peeler, frame: &[u8]) {
    match peeler.peel(frame) {
        Ok(Decision::Relay {
            next_ed25519,
            frame,
            hop_no,
        }) => {
            assert_eq!(next_ed25519.len(), 64);
            assert!((1..=16).contains(&hop_no));
            assert!(layer::decode(&frame).is_ok());
        }
        Ok(Decision::Proxy { target, .. }) => assert!(session_onion::url_target_allowed(&target)),
        Ok(Decision::Deliver { .. }) => {}
        Err(e) => assert!((400..600).contains(&e.error.status())),
    }
}

fuzz_target!(|data: &[u8]| {
    let peeler = Peeler::new(&NODE_SECRET);
    check(&peeler, data);

    let enc = if data.first().is_some_and(|b| b & 1 == 1) {
        EncType::XChaCha20
    } else {
        EncType::AesGcm
    };
    let client_pub = x25519_public(&CLIENT_SECRET);
    let key =
        HopKey::client(enc, &CLIENT_SECRET, &client_pub, &peeler.public_key()).expect("valid keys");
    let blob = key.encrypt(data);
    let meta = format!(
        r#"{{"ephemeral_key":"{}","enc_type":"{}"}}"#,
        hex::encode(client_pub),
        enc.as_str()
    );
    let frame = layer::join(&blob, meta.as_bytes()).expect("small layer");
    check(&peeler, &frame);
});
