//! The strict bencode ("bt") parser of the group formats never panics, and accepts only
//! canonical encodings: whatever it parses re-encodes to exactly the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_crypto::bt::{self, Value};

fn encode(v: &Value<'_>, out: &mut Vec<u8>) {
    match v {
        Value::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
        Value::Bytes(b) => {
            out.extend_from_slice(format!("{}:", b.len()).as_bytes());
            out.extend_from_slice(b);
        }
        Value::List(items) => {
            out.push(b'l');
            items.iter().for_each(|item| encode(item, out));
            out.push(b'e');
        }
        Value::Dict(items) => {
            out.push(b'd');
            for (k, item) in items {
                encode(&Value::Bytes(k), out);
                encode(item, out);
            }
            out.push(b'e');
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = bt::parse(data) {
        let mut out = Vec::with_capacity(data.len());
        encode(&v, &mut out);
        assert_eq!(out, data);
    }
    if let Ok((v, end)) = bt::parse_prefix(data) {
        assert!(end <= data.len());
        assert_eq!(
            bt::parse(&data[..end]).expect("a parsed prefix parses alone"),
            v
        );
    }
});
