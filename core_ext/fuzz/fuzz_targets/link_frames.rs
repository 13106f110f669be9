//! A node link's reader never panics on what a peer sends after the handshake: bytes fed in
//! any split either open into messages or fail with an error (and then the link is dropped);
//! what one side seals, the other opens whole. The parts decoder alone never panics either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_link::{decode_parts, encode_parts, Handshake, Link, HEADER};

/// A connected pair from fixed keys (fresh ephemeral keys each time).
fn pair() -> (Link, Link) {
    let (isk, rsk) = ([7u8; 32], [9u8; 32]);
    let rpk = x25519_public(&rsk);
    let mut i = Handshake::initiator(&isk, &rpk).expect("keys");
    let mut r = Handshake::responder(&rsk).expect("key");
    let m1 = i.write().expect("first message");
    r.read(&m1[HEADER..]).expect("read first");
    let m2 = r.write().expect("second message");
    i.read(&m2[HEADER..]).expect("read second");
    (i.into_link().expect("link"), r.into_link().expect("link"))
}

fn x25519_public(sk: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*sk)).to_bytes()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(parts) = decode_parts(data) {
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        assert_eq!(encode_parts(&refs).expect("re-encodes"), data);
    }
    let (mut a, mut b) = pair();
    // the fuzzer's bytes as a peer's stream, split at its first byte
    let cut = data.first().map_or(0, |&c| usize::from(c)).min(data.len());
    let first = b.feed(&data[..cut]);
    if first.is_ok() {
        let _ = b.feed(&data[cut..]);
    }
    // and as parts of a sealed message: they arrive whole
    let (mut a2, mut b2) = pair();
    let parts: Vec<&[u8]> = data.chunks(7).collect();
    let frame = a2.seal(&parts).expect("small enough");
    let got = b2.feed(&frame).expect("opens");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].parts().collect::<Vec<_>>(), parts);
    let _ = a.seal(&[data]).expect("seals");
});
