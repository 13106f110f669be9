//! The shared JSON vectors: swarm_space.json, closest_swarm.json, message_hash.json.

use base64::Engine as _;
use serde_json::Value;
use session_swarm::{closest_swarm, message_hash, swarm_space, SwarmIndex, MESSAGE_HASH_LEN};

fn cases(name: &str) -> Vec<Value> {
    let path = format!(
        "{}/../../../tests/vectors/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: Value = serde_json::from_str(&text).expect("valid JSON");
    v["cases"].as_array().expect("cases array").clone()
}

fn s<'a>(c: &'a Value, k: &str) -> &'a str {
    c[k].as_str()
        .unwrap_or_else(|| panic!("{}: missing {k}", c["name"]))
}

fn u(c: &Value, k: &str) -> u64 {
    s(c, k).parse().expect("decimal u64")
}

#[test]
fn swarm_space_vectors() {
    let cs = cases("swarm_space");
    assert!(cs.len() >= 12);
    for c in &cs {
        let got = swarm_space(s(c, "account_id")).expect("valid id");
        assert_eq!(got, u(c, "swarm_space"), "{}", c["name"]);
        assert_eq!(
            format!("{got:016x}"),
            s(c, "swarm_space_hex"),
            "{}",
            c["name"]
        );
    }
}

#[test]
fn closest_swarm_vectors() {
    let cs = cases("closest_swarm");
    assert!(cs.len() >= 32);
    for c in &cs {
        let ids: Vec<u64> = c["swarm_ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|x| x.as_str().expect("str").parse().expect("u64"))
            .collect();
        let acct = s(c, "account_id");
        assert_eq!(
            swarm_space(acct).expect("valid"),
            u(c, "swarm_space"),
            "{}",
            c["name"]
        );
        let want = u(c, "expected_swarm_id");
        assert_eq!(
            closest_swarm(acct, &ids).expect("ok"),
            want,
            "{}",
            c["name"]
        );
        let mut rev = ids.clone();
        rev.reverse();
        assert_eq!(
            closest_swarm(acct, &rev).expect("ok"),
            want,
            "{} (reversed)",
            c["name"]
        );
        let idx = SwarmIndex::new(ids.iter().copied()).expect("valid");
        assert_eq!(
            idx.closest(acct).expect("ok"),
            want,
            "{} (index)",
            c["name"]
        );
    }
}

#[test]
fn message_hash_vectors() {
    let cs = cases("message_hash");
    assert!(cs.len() >= 4);
    for c in &cs {
        let data = if let Some(b) = c["data_b64"].as_str() {
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .expect("base64")
        } else {
            s(c, "data_utf8").as_bytes().to_vec()
        };
        let ns = i16::try_from(c["namespace"].as_i64().expect("ns")).expect("i16");
        let got = message_hash(s(c, "account_id"), ns, &data).expect("ok");
        assert_eq!(got.len(), MESSAGE_HASH_LEN);
        assert_eq!(got, s(c, "hash_b64"), "{}", c["name"]);
    }
}
