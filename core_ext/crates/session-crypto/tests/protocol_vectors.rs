//! session_protocol.json (deterministic and random_structure kinds) and multi_encrypt.json.

use serde_json::Value;
use session_crypto::keys::SessionKeys;
use session_crypto::protocol::{self, ENCRYPT_OVERHEAD};

fn cases(file: &str, kind: &str) -> Vec<Value> {
    let path = format!(
        "{}/../../../tests/vectors/{file}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("vector file")).expect("json");
    let out: Vec<Value> = v["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter(|c| c["kind"] == kind)
        .cloned()
        .collect();
    assert!(!out.is_empty(), "no {kind} cases in {file}");
    out
}

fn h(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("hex")
}

fn a32(v: &Value) -> [u8; 32] {
    h(v).try_into().expect("32 bytes")
}

#[test]
fn deterministic_tv11() {
    for c in cases("session_protocol", "deterministic") {
        let sender = SessionKeys::from_seed(&h(&c["sender_ed25519_seed"])).expect("seed");
        let recipient = SessionKeys::from_seed(&h(&c["recipient_ed25519_seed"])).expect("seed");
        assert_eq!(
            recipient.x25519_public().to_vec(),
            h(&c["recipient_x25519_pk"])
        );
        let msg = c["plaintext_utf8"].as_str().expect("str").as_bytes();
        let ct =
            protocol::encrypt_for_recipient_deterministic(&sender, recipient.x25519_public(), msg)
                .expect("encrypt");
        assert_eq!(hex::encode(&ct), c["ciphertext"].as_str().expect("hex"));
        let d = protocol::decrypt_incoming(&recipient, &ct).expect("decrypt");
        assert_eq!(d.plaintext, msg);
        assert_eq!(
            d.sender_session_id(),
            c["sender_session_id"].as_str().expect("str")
        );
        assert_eq!(d.sender_ed25519.to_vec(), h(&c["sender_ed25519_pk"]));
        assert!(protocol::decrypt_incoming(&sender, &ct).is_err());
    }
}

#[test]
fn random_structure_tv10() {
    for c in cases("session_protocol", "random_structure") {
        let sender = SessionKeys::from_seed(&h(&c["sender_ed25519_seed"])).expect("seed");
        let recipient = SessionKeys::from_seed(&h(&c["recipient_ed25519_seed"])).expect("seed");
        let len = c["plaintext_len"].as_u64().expect("len") as usize;
        let msg = match c.get("plaintext_utf8") {
            Some(v) => v.as_str().expect("str").as_bytes().to_vec(),
            None => vec![b'x'; len],
        };
        let ct = protocol::encrypt_for_recipient(&sender, recipient.x25519_public(), &msg)
            .expect("encrypt");
        assert_eq!(ct.len() as u64, c["ciphertext_len"].as_u64().expect("len"));
        assert_eq!(
            ct.len() - msg.len(),
            c["overhead"].as_u64().expect("n") as usize
        );
        assert_eq!(ENCRYPT_OVERHEAD, 144);
        let d = protocol::decrypt_incoming(&recipient, &ct).expect("decrypt");
        assert_eq!(d.plaintext, msg);
        assert_eq!(&d.sender_ed25519, sender.ed25519_public());
        for t in c["tamper_must_fail"].as_array().expect("array") {
            let mut bad = ct.clone();
            bad[t["byte_index"].as_u64().expect("i") as usize] ^=
                t["xor"].as_u64().expect("x") as u8;
            assert!(protocol::decrypt_incoming(&recipient, &bad).is_err());
        }
        if c["wrong_recipient_must_fail"].as_bool() == Some(true) {
            assert!(protocol::decrypt_incoming(&sender, &ct).is_err());
        }
    }
}

#[test]
fn multi_encrypt() {
    for c in cases("multi_encrypt", "encrypt") {
        let sender = SessionKeys::from_seed(&h(&c["sender_ed25519_seed"])).expect("seed");
        assert_eq!(sender.x25519_public().to_vec(), h(&c["sender_x25519_pk"]));
        let nonce: [u8; 24] = h(&c["nonce"]).try_into().expect("24");
        let domain = c["domain_utf8"].as_str().expect("str").as_bytes();
        let cts: Vec<Vec<u8>> = c["ciphertexts"]
            .as_array()
            .expect("a")
            .iter()
            .map(h)
            .collect();
        let refs: Vec<&[u8]> = cts.iter().map(Vec::as_slice).collect();
        let seeds = c["recipient_ed25519_seeds"].as_array().expect("a");
        for (i, seed) in seeds.iter().enumerate() {
            let r = SessionKeys::from_seed(&h(seed)).expect("seed");
            assert_eq!(r.x25519_public().to_vec(), h(&c["recipient_x25519_pks"][i]));
            let msg = c["messages_utf8"][i].as_str().expect("str").as_bytes();
            let ct = protocol::multi_encrypt_one(
                sender.x25519_secret(),
                sender.x25519_public(),
                r.x25519_public(),
                &nonce,
                domain,
                msg,
            )
            .expect("encrypt");
            assert_eq!(ct, cts[i], "{} recipient {i}", c["name"]);
            let opened = protocol::multi_decrypt(
                r.x25519_secret(),
                r.x25519_public(),
                sender.x25519_public(),
                &nonce,
                domain,
                &refs,
            )
            .expect("decrypt");
            assert_eq!(opened, msg);
        }
    }
    for c in cases("multi_encrypt", "decrypt_fail") {
        let r = SessionKeys::from_seed(&h(&c["recipient_ed25519_seed"])).expect("seed");
        let nonce: [u8; 24] = h(&c["nonce"]).try_into().expect("24");
        let domain = c["domain_utf8"].as_str().expect("str").as_bytes();
        let cts: Vec<Vec<u8>> = c["ciphertexts"]
            .as_array()
            .expect("a")
            .iter()
            .map(h)
            .collect();
        let refs: Vec<&[u8]> = cts.iter().map(Vec::as_slice).collect();
        let sender_pk = a32(&c["sender_x25519_pk"]);
        assert!(protocol::multi_decrypt(
            r.x25519_secret(),
            r.x25519_public(),
            &sender_pk,
            &nonce,
            domain,
            &refs
        )
        .is_err());
    }
}
