//! blinding.json and sogs_auth.json.

mod common;

use base64::Engine as _;
use common::{cases, kind, s};
use serde_json::Value;
use session_crypto::blinding::*;

fn h32(c: &Value, k: &str) -> [u8; 32] {
    hex::decode(s(c, k))
        .expect("hex")
        .try_into()
        .expect("32 bytes")
}

/// Seed of a case: `ed25519_seed` (32 bytes) or the first half of `ed25519_sk` (64 bytes).
fn seed(c: &Value) -> [u8; 32] {
    if c["ed25519_seed"].is_string() {
        return h32(c, "ed25519_seed");
    }
    let sk = hex::decode(s(c, "ed25519_sk")).expect("hex");
    assert_eq!(sk.len(), 64);
    let seed: [u8; 32] = sk[..32].try_into().expect("32");
    assert_eq!(
        session_crypto::keys::ed25519_keypair_from_seed(&seed).0[..],
        sk[32..],
        "{}: sk pk half",
        c["name"]
    );
    seed
}

#[test]
fn factor() {
    for c in kind("blinding", "blind15_factor") {
        assert_eq!(
            hex::encode(blind15_factor(&h32(&c, "server_pk"))),
            s(&c, "k")
        );
    }
}

#[test]
fn ids_from_seed() {
    for c in kind("blinding", "blind15_from_seed") {
        let spk = parse_server_pk(s(&c, "server_pk")).expect("pk");
        let id = format_id(PREFIX_BLIND15, &blind15_public_key(&seed(&c), &spk));
        assert_eq!(id, s(&c, "blinded_id"), "{}", c["name"]);
    }
    for c in kind("blinding", "blind25_from_seed") {
        let spk = parse_server_pk(s(&c, "server_pk")).expect("pk");
        let id = format_id(PREFIX_BLIND25, &blind25_public_key(&seed(&c), &spk));
        assert_eq!(id, s(&c, "blinded_id"), "{}", c["name"]);
    }
}

#[test]
fn ids_from_session_id() {
    for c in kind("blinding", "blind15_from_session_id") {
        let x = parse_session_id(s(&c, "session_id")).expect("sid");
        let spk = parse_server_pk(s(&c, "server_pk")).expect("pk");
        let (pos, neg) = blind15_keys_from_x25519(&x, &spk).expect("blind");
        assert_eq!(
            format_id(PREFIX_BLIND15, &pos),
            s(&c, "blinded_id_positive")
        );
        assert_eq!(
            format_id(PREFIX_BLIND15, &neg),
            s(&c, "blinded_id_negative")
        );
        for id in [&pos, &neg] {
            assert!(x25519_matches_blinded(&x, PREFIX_BLIND15, id, &spk).expect("ok"));
        }
    }
    for c in kind("blinding", "blind25_from_session_id") {
        let x = parse_session_id(s(&c, "session_id")).expect("sid");
        let spk = parse_server_pk(s(&c, "server_pk")).expect("pk");
        let id = blind25_key_from_x25519(&x, &spk).expect("blind");
        assert_eq!(
            format_id(PREFIX_BLIND25, &id),
            s(&c, "blinded_id"),
            "{}",
            c["name"]
        );
        assert!(x25519_matches_blinded(&x, PREFIX_BLIND25, &id, &spk).expect("ok"));
        let mut other = id;
        other[0] ^= 1;
        assert!(!x25519_matches_blinded(&x, PREFIX_BLIND25, &other, &spk).expect("ok"));
    }
}

#[test]
fn signatures() {
    for (k, prefix) in [
        ("blind15_sign", PREFIX_BLIND15),
        ("blind25_sign", PREFIX_BLIND25),
    ] {
        for c in kind("blinding", k) {
            let sd = seed(&c);
            let spk = parse_server_pk(s(&c, "server_pk")).expect("pk");
            let msg = s(&c, "message_utf8").as_bytes();
            let (sig, pk) = if prefix == PREFIX_BLIND15 {
                (
                    blind15_sign(&sd, &spk, msg, Blind15Nonce::Libsession),
                    blind15_public_key(&sd, &spk),
                )
            } else {
                (blind25_sign(&sd, &spk, msg), blind25_public_key(&sd, &spk))
            };
            assert_eq!(hex::encode(sig), s(&c, "signature"), "{}", c["name"]);
            assert_eq!(format_id(prefix, &pk), s(&c, "blinded_id"), "{}", c["name"]);
            let (p, key) = parse_blinded_id(s(&c, "blinded_id")).expect("id");
            assert_eq!(p, prefix);
            verify(&key, msg, &sig).expect("verifies");
            let mut bad = sig;
            bad[5] ^= 1;
            assert_eq!(
                verify(&key, msg, &bad),
                Err(session_crypto::Error::InvalidSignature)
            );
            assert!(verify(&key, b"other message", &sig).is_err());
        }
    }
}

#[test]
fn version_blind() {
    for c in kind("blinding", "version_blind") {
        let sd = seed(&c);
        let pk = version_blind_public_key(&sd);
        assert_eq!(hex::encode(pk), s(&c, "blinded_pk"));
        assert_eq!(format_id(PREFIX_VERSION_BLIND, &pk), s(&c, "blinded_id"));
        let sig = version_blind_sign(&sd, s(&c, "message_utf8").as_bytes());
        assert_eq!(hex::encode(sig), s(&c, "signature"));
    }
}

#[test]
fn sogs_headers() {
    let b64 = base64::engine::general_purpose::STANDARD;
    let cs = cases("sogs_auth");
    assert!(cs.len() >= 5);
    for c in cs {
        let sd = seed(&c);
        assert_eq!(
            hex::encode(session_crypto::keys::ed25519_keypair_from_seed(&sd).0),
            s(&c, "ed25519_pk")
        );
        let spk = parse_server_pk(s(&c, "server_pk")).expect("pk");
        let nonce: [u8; 16] = b64
            .decode(s(&c, "nonce_b64"))
            .expect("b64")
            .try_into()
            .expect("16");
        let body = c["body_utf8"].as_str().unwrap_or("").as_bytes();
        let req = SogsRequest {
            server_pk: &spk,
            nonce: &nonce,
            timestamp: c["timestamp"].as_u64().expect("ts"),
            method: s(&c, "method"),
            path: s(&c, "path"),
            body,
        };
        let variant = match c["nonce_derivation"].as_str() {
            Some("desktop") => Blind15Nonce::Desktop,
            _ => Blind15Nonce::Libsession,
        };
        let blinded = c["blinded"].as_bool().expect("blinded");
        let auth = sogs_auth(&sd, &req, blinded, variant).expect("signs");
        let h = &c["headers"];
        assert_eq!(
            hex::encode(auth.pubkey),
            s(h, "X-SOGS-Pubkey"),
            "{}",
            c["name"]
        );
        assert_eq!(
            b64.encode(auth.signature),
            s(h, "X-SOGS-Signature"),
            "{}",
            c["name"]
        );
        let key: [u8; 32] = auth.pubkey[1..].try_into().expect("32");
        verify(&key, &sogs_signed_message(&req), &auth.signature).expect("verifies");
    }
}

#[test]
fn bad_inputs() {
    assert!(parse_server_pk("abc").is_err());
    assert!(parse_server_pk(&"zz".repeat(32)).is_err());
    assert!(parse_session_id(&format!("03{}", "00".repeat(32))).is_err());
    assert!(parse_session_id(&"05".repeat(32)).is_err());
    assert!(parse_blinded_id(&format!("05{}", "00".repeat(32))).is_err());
    // An X25519 key of u = -1 (p - 1) has no Edwards form.
    let mut minus_one = [0xffu8; 32];
    minus_one[0] = 0xec;
    minus_one[31] = 0x7f;
    assert!(blind15_keys_from_x25519(&minus_one, &[1u8; 32]).is_err());
    // Small-order points (u = 0) are rejected.
    assert!(blind25_key_from_x25519(&[0u8; 32], &[1u8; 32]).is_err());
    assert!(verify(&[0u8; 32], b"m", &[0u8; 64]).is_err());
    assert!(verify(&[0u8; 32], b"m", &[0u8; 10]).is_err());
    let spk = [7u8; 32];
    let nonce = [0u8; 16];
    let req = |method, path| SogsRequest {
        server_pk: &spk,
        nonce: &nonce,
        timestamp: 1,
        method,
        path,
        body: b"",
    };
    assert!(sogs_auth(&[1; 32], &req("", "/x"), true, Blind15Nonce::Desktop).is_err());
    assert!(sogs_auth(&[1; 32], &req("G ET", "/x"), true, Blind15Nonce::Desktop).is_err());
    assert!(sogs_auth(&[1; 32], &req("GET", "x"), true, Blind15Nonce::Desktop).is_err());
}
