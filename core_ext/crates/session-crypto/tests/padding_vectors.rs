//! padding.json (message kinds only).

use serde_json::Value;
use session_crypto::padding;

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../tests/vectors/padding.json"
    ))
    .expect("vector file");
    let v: Value = serde_json::from_str(&text).expect("json");
    v["cases"].as_array().expect("cases").clone()
}

#[test]
fn message_pad() {
    let mut n = 0;
    for c in cases().iter().filter(|c| c["kind"] == "message_pad") {
        let input = match c.get("input") {
            Some(v) => hex::decode(v.as_str().expect("hex")).expect("hex"),
            None => vec![0x41u8; c["input_len"].as_u64().expect("len") as usize],
        };
        let padded = match c["variant"].as_str().expect("variant") {
            "libsession" => padding::pad(&input),
            "desktop_legacy" => padding::pad_desktop_legacy(&input),
            other => panic!("unknown variant {other}"),
        };
        assert_eq!(
            padded.len() as u64,
            c["padded_len"].as_u64().expect("len"),
            "{}",
            c["name"]
        );
        if let Some(v) = c.get("padded") {
            assert_eq!(
                hex::encode(&padded),
                v.as_str().expect("hex"),
                "{}",
                c["name"]
            );
        }
        assert_eq!(padding::unpad(&padded).expect("unpad"), &input[..]);
        n += 1;
    }
    assert!(n >= 15);
}

#[test]
fn message_unpad() {
    let mut n = 0;
    for c in cases().iter().filter(|c| c["kind"] == "message_unpad") {
        let input = hex::decode(c["input"].as_str().expect("hex")).expect("hex");
        let out = padding::unpad(&input).expect("unpad");
        assert_eq!(hex::encode(out), c["output"].as_str().expect("hex"));
        n += 1;
    }
    assert!(n >= 1);
}
