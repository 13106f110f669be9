//! blake2b.json: libsodium crypto_generichash vectors.

use serde_json::Value;
use session_crypto::hash::blake2b;

#[test]
fn blake2b_vectors() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../tests/vectors/blake2b.json"
    ))
    .expect("vector file");
    let v: Value = serde_json::from_str(&text).expect("json");
    let cases = v["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 4);
    for c in cases {
        let msg = c["message_utf8"].as_str().expect("msg").as_bytes();
        let key = c["key_utf8"].as_str().map(str::as_bytes);
        let size = c["digest_size"].as_u64().expect("size") as usize;
        let d = blake2b(msg, key, size).expect("hash");
        assert_eq!(
            hex::encode(d),
            c["digest"].as_str().expect("hex"),
            "{}",
            c["name"]
        );
    }
}
