//! padding.json (attachment kinds) and legacy attachment encryption.

mod common;

use common::kind;
use serde_json::Value;
use session_crypto::attachment::*;
use session_crypto::Error;

fn n(c: &Value, k: &str) -> usize {
    usize::try_from(c[k].as_u64().expect("number")).expect("usize")
}

#[test]
fn pad_sizes() {
    for c in kind("padding", "attachment_pad") {
        assert_eq!(
            padded_size(n(&c, "input_len")),
            n(&c, "padded_len"),
            "{}",
            c["name"]
        );
    }
    let p = pad(&[1, 2, 3]);
    assert_eq!(p.len(), 541);
    assert_eq!(&p[..3], &[1, 2, 3]);
    assert!(p[3..].iter().all(|&b| b == 0));
    assert_eq!(padded_size(0), 541);
    // Never below the input, monotone.
    let mut last = 0;
    for len in (0..200_000).step_by(97) {
        let p = padded_size(len);
        assert!(p >= len && p >= last);
        last = p;
    }
}

#[test]
fn unpad_vector() {
    for c in kind("padding", "attachment_unpad") {
        let input = hex::decode(c["input"].as_str().expect("input")).expect("hex");
        let out = unpad(input.clone(), n(&c, "expected_size"));
        assert_eq!(hex::encode(&out), c["output"].as_str().expect("output"));
        // Through encryption: decrypt(encrypt(x), size) == x[..size].
        let e = encrypt(&input, None).expect("encrypt");
        let d = decrypt(
            &e.blob,
            &e.key[..],
            Some(&e.digest),
            Some(n(&c, "expected_size")),
        )
        .expect("decrypt");
        assert_eq!(hex::encode(d), c["output"].as_str().expect("output"));
    }
}

#[test]
fn structure_and_round_trip() {
    let key = [7u8; 64];
    let iv = [9u8; 16];
    for len in [0usize, 1, 15, 16, 540, 541, 542, 5000] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let e = encrypt_with_iv(&data, &key, &iv).expect("enc");
        let padded = padded_size(len);
        assert_eq!(e.blob.len(), 16 + (padded / 16 + 1) * 16 + 32);
        assert_eq!(&e.blob[..16], &iv);
        let d = decrypt(&e.blob, &key, Some(&e.digest), Some(len)).expect("dec");
        assert_eq!(d, data);
        let full = decrypt(&e.blob, &key, None, None).expect("dec");
        assert_eq!(full.len(), padded);
        // Same inputs give the same output.
        assert_eq!(encrypt_with_iv(&data, &key, &iv).expect("enc"), e);
    }
}

#[test]
fn tamper_and_bad_inputs() {
    let e = encrypt(b"hello attachment", None).expect("enc");
    for i in [0, 16, e.blob.len() - 1] {
        let mut b = e.blob.clone();
        b[i] ^= 1;
        assert!(matches!(
            decrypt(&b, &e.key[..], None, None),
            Err(Error::DecryptionFailed(_))
        ));
    }
    let mut wrong = *e.key;
    wrong[40] ^= 1;
    assert!(matches!(
        decrypt(&e.blob, &wrong, None, None),
        Err(Error::DecryptionFailed(_))
    ));
    let mut d = e.digest;
    d[0] ^= 1;
    assert!(matches!(
        decrypt(&e.blob, &e.key[..], Some(&d), None),
        Err(Error::DecryptionFailed(_))
    ));
    assert!(matches!(
        decrypt(&e.blob, &e.key[..], Some(&d[..5]), None),
        Err(Error::InvalidLength { .. })
    ));
    assert!(matches!(
        decrypt(&e.blob, &e.key[..32], None, None),
        Err(Error::InvalidKey(_))
    ));
    assert!(matches!(
        encrypt(b"x", Some(&[0u8; 63])),
        Err(Error::InvalidKey(_))
    ));
    assert!(matches!(
        decrypt(&e.blob[..47], &e.key[..], None, None),
        Err(Error::DecryptionFailed(_))
    ));
    assert!(matches!(
        decrypt(&[], &e.key[..], None, None),
        Err(Error::DecryptionFailed(_))
    ));
    // A validly MACed blob whose ciphertext is not whole blocks.
    let key = [1u8; 64];
    let mut blob = vec![0u8; 16 + 5];
    use hmac::Mac;
    let mut m = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&key[32..]).expect("key");
    m.update(&blob);
    blob.extend_from_slice(&m.finalize().into_bytes());
    assert!(matches!(
        decrypt(&blob, &key, None, None),
        Err(Error::DecryptionFailed(_))
    ));
}

#[test]
fn streaming_matches_one_shot() {
    use session_crypto::attachment::{decrypt, encrypt_with_iv, StreamDecryptor, StreamEncryptor};
    let key = [7u8; 64];
    let iv = [9u8; 16];
    for n in [0usize, 1, 15, 16, 17, 540, 541, 1000, 70_001] {
        let data: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
        let one = encrypt_with_iv(&data, &key, &iv).unwrap();
        for chunk in [1usize, 7, 16, 4096] {
            let mut enc = StreamEncryptor::new(&key, &iv, n).unwrap();
            let mut blob = Vec::new();
            for c in data.chunks(chunk) {
                blob.extend(enc.update(c).unwrap());
            }
            let (tail, digest) = enc.finalize().unwrap();
            blob.extend(tail);
            assert_eq!(blob, one.blob, "n={n} chunk={chunk}");
            assert_eq!(digest, one.digest);
            let mut dec = StreamDecryptor::new(&key, Some(&digest), Some(n)).unwrap();
            let mut plain = Vec::new();
            for c in blob.chunks(chunk) {
                plain.extend(dec.update(c));
            }
            plain.extend(dec.finalize().unwrap());
            assert_eq!(plain, data);
            assert_eq!(decrypt(&blob, &key, Some(&digest), Some(n)).unwrap(), data);
        }
        let mut bad = one.blob.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 1;
        let mut dec = StreamDecryptor::new(&key, None, Some(n)).unwrap();
        dec.update(&bad);
        assert!(dec.finalize().is_err());
    }
}
