//! config_encrypt.json: encrypt, decrypt_fail, padded_size, config_hash, config_push.

mod common;

use common::{kind, s};
use serde_json::Value;
use session_crypto::config::*;
use session_crypto::Error;

fn hx(c: &Value, k: &str) -> Vec<u8> {
    hex::decode(s(c, k)).expect("hex")
}

#[test]
fn encrypt_vectors() {
    for c in kind("config_encrypt", "encrypt") {
        let msg = s(&c, "message_utf8").as_bytes();
        let key = hx(&c, "key_base");
        let domain = s(&c, "domain_utf8");
        let ct = encrypt(msg, &key, domain).expect("encrypt");
        assert_eq!(ct.len(), msg.len() + OVERHEAD);
        assert_eq!(
            hex::encode(&ct[ct.len() - 24..]),
            s(&c, "nonce"),
            "{}",
            c["name"]
        );
        if c["ciphertext"].is_string() {
            assert_eq!(hex::encode(&ct), s(&c, "ciphertext"), "{}", c["name"]);
        }
        assert_eq!(decrypt(&ct, &key, domain).expect("decrypt"), msg);
    }
}

#[test]
fn decrypt_fail_vectors() {
    for c in kind("config_encrypt", "decrypt_fail") {
        let r = decrypt(
            &hx(&c, "ciphertext"),
            &hx(&c, "key_base"),
            s(&c, "domain_utf8"),
        );
        assert!(
            matches!(r, Err(Error::DecryptionFailed(_))),
            "{}",
            c["name"]
        );
    }
}

#[test]
fn padded_size_vectors() {
    for c in kind("config_encrypt", "padded_size") {
        let size = usize::try_from(c["size"].as_u64().expect("size")).expect("usize");
        let ov = usize::try_from(c["overhead"].as_u64().expect("ov")).expect("usize");
        let want = usize::try_from(c["padded_size"].as_u64().expect("p")).expect("usize");
        assert_eq!(padded_size(size, ov).expect("ok"), want, "{}", c["name"]);
    }
    assert!(padded_size(usize::MAX, 1).is_err());
    assert!(padded_size(usize::MAX - 3, 0).is_err());
}

#[test]
fn hash_vectors() {
    for c in kind("config_encrypt", "config_hash") {
        assert_eq!(
            hex::encode(config_hash(s(&c, "config_utf8").as_bytes())),
            s(&c, "hash")
        );
    }
}

#[test]
fn push_vectors() {
    for c in kind("config_encrypt", "config_push") {
        let plain = hx(&c, "plaintext");
        assert_eq!(
            plain.len() as u64,
            c["plaintext_len"].as_u64().expect("len")
        );
        let padded = pad(&plain, OVERHEAD).expect("pad");
        assert_eq!(padded.len() as u64, c["padded_len"].as_u64().expect("len"));
        assert!(
            padded.ends_with(&plain)
                && padded[..padded.len() - plain.len()].iter().all(|&b| b == 0)
        );
        let ct = encrypt(&padded, &hx(&c, "ed25519_seed"), s(&c, "domain_utf8")).expect("enc");
        assert_eq!(hex::encode(&ct), s(&c, "ciphertext"), "{}", c["name"]);
    }
}

#[test]
fn bad_inputs() {
    let key = [1u8; 32];
    assert!(matches!(
        encrypt(b"m", &key[..31], "d"),
        Err(Error::InvalidKey(_))
    ));
    assert!(matches!(
        encrypt(b"m", &key, ""),
        Err(Error::InvalidValue { .. })
    ));
    assert!(matches!(
        encrypt(b"m", &key, &"x".repeat(25)),
        Err(Error::InvalidValue { .. })
    ));
    assert!(encrypt(b"m", &key, &"x".repeat(24)).is_ok());
    assert!(matches!(
        decrypt(&[0u8; 39], &key, "d"),
        Err(Error::DecryptionFailed(_))
    ));
    assert!(matches!(
        decrypt(&[0u8; 39], &key[..3], "d"),
        Err(Error::InvalidKey(_))
    ));
    let ct = encrypt(b"", &key, "d").expect("empty message");
    assert_eq!(ct.len(), 40);
    assert_eq!(decrypt(&ct, &key, "d").expect("dec"), b"");
    let mut bad = ct.clone();
    bad[0] ^= 1;
    assert!(matches!(
        decrypt(&bad, &key, "d"),
        Err(Error::DecryptionFailed(_))
    ));
}
