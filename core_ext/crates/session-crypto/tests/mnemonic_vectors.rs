//! mnemonic.json: encode, decode (typos, prefixes), decode failures, phrase → Session ID.

use serde_json::Value;
use session_crypto::keys::SessionKeys;
use session_crypto::{mnemonic, Error};

fn cases(kind: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../tests/vectors/mnemonic.json"
    ))
    .expect("vector file");
    let v: Value = serde_json::from_str(&text).expect("json");
    let out: Vec<Value> = v["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter(|c| c["kind"] == kind)
        .cloned()
        .collect();
    assert!(!out.is_empty(), "no {kind} cases");
    out
}

fn s<'a>(c: &'a Value, k: &str) -> &'a str {
    c[k].as_str().expect("string field")
}

#[test]
fn encode() {
    for c in cases("encode") {
        let seed = hex::decode(s(&c, "seed")).expect("hex");
        let checksum = c["checksum"].as_bool().expect("bool");
        let words = mnemonic::encode_words(&seed, checksum).expect("encode");
        assert_eq!(words.as_str(), s(&c, "words"), "{}", s(&c, "name"));
        if let Some(idx) = c.get("indices") {
            let list = mnemonic::words();
            let got: Vec<u64> = words
                .split(' ')
                .map(|w| list.iter().position(|x| x == &w).expect("in list") as u64)
                .collect();
            let want: Vec<u64> = idx
                .as_array()
                .expect("array")
                .iter()
                .map(|i| i.as_u64().expect("n"))
                .collect();
            assert_eq!(got, want);
        }
        let split: Vec<&str> = words.split(' ').collect();
        assert_eq!(
            &mnemonic::decode_words(&split, checksum).expect("decode")[..],
            &seed[..]
        );
        if checksum {
            assert_eq!(&mnemonic::decode(&words).expect("decode")[..], &seed[..]);
            assert_eq!(
                mnemonic::encode(&seed).expect("seed").as_str(),
                words.as_str()
            );
        }
    }
}

#[test]
fn decode() {
    for c in cases("decode") {
        let seed = mnemonic::decode(s(&c, "words")).expect("decodes");
        assert_eq!(hex::encode(&seed[..]), s(&c, "seed"), "{}", s(&c, "name"));
    }
}

#[test]
fn decode_fail() {
    for c in cases("decode_fail") {
        let words: Vec<&str> = s(&c, "words").split_whitespace().collect();
        let checksum = c.get("checksum").and_then(Value::as_bool).unwrap_or(true);
        let err = mnemonic::decode_words(&words, checksum).expect_err(s(&c, "name"));
        match s(&c, "error") {
            "checksum" => assert_eq!(err, Error::ChecksumMismatch, "{}", s(&c, "name")),
            "unknown_word" => assert!(matches!(err, Error::UnknownWord { .. }), "{err:?}"),
            "overflow" => assert!(matches!(err, Error::MnemonicOverflow(_)), "{err:?}"),
            other => panic!("unknown error kind {other}"),
        }
    }
}

#[test]
fn phrase_to_session_id() {
    for c in cases("phrase_to_session_id") {
        let seed = mnemonic::decode(s(&c, "words")).expect("decodes");
        assert_eq!(hex::encode(&seed[..]), s(&c, "seed"));
        let k = SessionKeys::from_seed(&seed).expect("seed");
        assert_eq!(k.session_id(), s(&c, "session_id"));
    }
}
