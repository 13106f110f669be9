//! identity.json: seed → keys → Session ID, signatures, key conversions.

use serde_json::Value;
use session_crypto::keys::{self, SessionKeys};

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../tests/vectors/identity.json"
    ))
    .expect("vector file");
    let v: Value = serde_json::from_str(&text).expect("json");
    v["cases"].as_array().expect("cases").clone()
}

fn h(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("hex")
}

fn a32(v: &Value) -> [u8; 32] {
    h(v).try_into().expect("32 bytes")
}

#[test]
fn seed_keys() {
    let mut n = 0;
    for c in cases().iter().filter(|c| c["kind"] == "seed_keys") {
        let name = c["name"].as_str().unwrap_or("?");
        let seed = a32(&c["ed25519_seed"]);
        // Through the account type: from the recovery seed when given, else the 32-byte seed.
        let k = match c.get("recovery_seed") {
            Some(r) => SessionKeys::from_seed(&h(r)).expect("16-byte seed"),
            None => SessionKeys::from_seed(&seed).expect("32-byte seed"),
        };
        assert_eq!(k.ed25519_seed(), &seed, "{name}");
        let (pk, sk) = keys::ed25519_keypair_from_seed(&seed);
        assert_eq!(&pk, k.ed25519_public(), "{name}");
        if let Some(v) = c.get("ed25519_pk") {
            assert_eq!(pk.to_vec(), h(v), "{name} ed pk");
        }
        if let Some(v) = c.get("ed25519_sk") {
            assert_eq!(sk.to_vec(), h(v), "{name} ed sk");
            assert_eq!(k.ed25519_secret_key().to_vec(), h(v), "{name} ed sk");
        }
        if let Some(v) = c.get("x25519_sk") {
            assert_eq!(
                keys::ed25519_seed_to_x25519_secret(&seed).to_vec(),
                h(v),
                "{name} x sk"
            );
            assert_eq!(k.x25519_secret().to_bytes().to_vec(), h(v), "{name} x sk");
        }
        if let Some(v) = c.get("x25519_pk") {
            assert_eq!(k.x25519_public().to_vec(), h(v), "{name} x pk");
            assert_eq!(
                keys::ed25519_pk_to_x25519(&pk).expect("valid").to_vec(),
                h(v),
                "{name}"
            );
        }
        if let Some(v) = c.get("session_id") {
            assert_eq!(k.session_id(), v.as_str().expect("str"), "{name}");
            assert_eq!(
                &keys::parse_session_id(&k.session_id()).expect("parses"),
                k.x25519_public()
            );
        }
        if let Some(r) = c.get("recovery_seed") {
            assert_eq!(k.recovery_seed().to_vec(), h(r));
        }
        n += 1;
    }
    assert!(n >= 8);
}

#[test]
fn ed25519_sign() {
    for c in cases().iter().filter(|c| c["kind"] == "ed25519_sign") {
        let seed = a32(&c["ed25519_seed"]);
        let msg = c["message_utf8"].as_str().expect("msg").as_bytes();
        let sig = keys::sign_with_seed(&seed, msg);
        assert_eq!(sig.to_vec(), h(&c["signature"]));
        let k = SessionKeys::from_seed(&seed).expect("seed");
        assert_eq!(k.sign(msg), sig);
        keys::verify(k.ed25519_public(), msg, &sig).expect("verifies");
        let mut bad = sig;
        bad[5] ^= 1;
        assert!(keys::verify(k.ed25519_public(), msg, &bad).is_err());
        assert!(keys::verify(k.ed25519_public(), b"hellO", &sig).is_err());
    }
}

#[test]
fn ed_pk_to_x25519() {
    let mut n = 0;
    for c in cases().iter().filter(|c| c["kind"] == "ed_pk_to_x25519") {
        let x = keys::ed25519_pk_to_x25519(&a32(&c["ed25519_pk"])).expect("valid key");
        if let Some(v) = c.get("x25519_pk") {
            assert_eq!(x.to_vec(), h(v));
        }
        if let Some(v) = c.get("session_id") {
            assert_eq!(keys::session_id_from_x25519(&x), v.as_str().expect("str"));
        }
        n += 1;
    }
    assert!(n >= 3);
}

#[test]
fn xed25519_sign_bit() {
    let mut n = 0;
    for c in cases().iter().filter(|c| c["kind"] == "xed25519_sign_bit") {
        let sk = h(&c["ed25519_sk"]);
        let seed: [u8; 32] = sk[..32].try_into().expect("32");
        let (pk, _) = keys::ed25519_keypair_from_seed(&seed);
        assert_eq!(pk.to_vec(), h(&c["ed25519_pk"]));
        let x = keys::ed25519_pk_to_x25519(&pk).expect("valid");
        assert_eq!(x.to_vec(), h(&c["x25519_pk"]));
        let pos = keys::x25519_pk_to_ed25519_positive(&x).expect("valid");
        assert_eq!(pos.to_vec(), h(&c["xed25519_positive_pk"]));
        assert_eq!(
            pos == pk,
            !c["ed25519_pk_negative"].as_bool().expect("bool")
        );
        n += 1;
    }
    assert_eq!(n, 2);
}

#[test]
fn rejects_bad_keys() {
    // Identity point (low order) and a non-point.
    let mut ident = [0u8; 32];
    ident[0] = 1;
    assert!(keys::ed25519_pk_to_x25519(&ident).is_err());
    assert!(keys::verify(&ident, b"", &[0u8; 64]).is_err());
    assert!(keys::ed25519_pk_to_x25519_slice(&[0u8; 31]).is_err());
    assert!(keys::verify_slices(&[0u8; 32], b"", &[0u8; 63]).is_err());
    assert!(SessionKeys::from_seed(&[0u8; 20]).is_err());
    // A point with a torsion component is refused by the conversion (as libsodium does).
    let base = keys::ed25519_keypair_from_seed(&[3u8; 32]).0;
    let p = curve25519_dalek::edwards::CompressedEdwardsY(base)
        .decompress()
        .expect("point");
    let t = curve25519_dalek::constants::EIGHT_TORSION[1];
    let mixed = (p + t).compress().to_bytes();
    assert!(keys::ed25519_pk_to_x25519(&mixed).is_err());
}
