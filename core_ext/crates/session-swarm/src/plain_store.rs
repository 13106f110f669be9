//! A fast path for the commonest storage RPC request: an unsigned `store` sent as JSON
//! bytes (a message to a public inbox), `{"method": "store", "params": {"pubkey", "timestamp",
//! "ttl", "data"[, "namespace"]}}`.
//!
//! [`parse_plain_store`] accepts only that shape, and only where the node's full parser
//! (`session.proto.rpc`, Session's `parse_field` rules) gives the same request: integer
//! timestamp and TTL, a 66-hex-digit account, base64 data as the storage server accepts it
//! (either alphabet, padding optional), an integer namespace. Anything else — another
//! method, a signature or any other field, a string for a number, a `null`, an error of any
//! kind — is `None`, and the caller runs the full parser, which also words every error. So
//! this never refuses a request and never decides an error message; it only skips the slow
//! path for requests that are certainly well-formed.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde_json::{Map, Value};

/// The longest base64 `data` the storage server takes (76,800 bytes of message).
pub const MAX_DATA_B64: usize = 76_800 / 3 * 4;
/// The namespace range (a signed 16-bit integer).
const NAMESPACE_MIN: i64 = -32768;
const NAMESPACE_MAX: i64 = 32767;

/// Standard alphabet (URL-safe characters are mapped onto it first), no padding (stripped
/// first), and trailing bits not checked: what the full parser's decoding accepts.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// An unsigned `store` request, as the full parser would give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainStore {
    /// The account's network prefix byte (`05`, `03`, ...).
    pub prefix: u8,
    /// The account's 32-byte key.
    pub key: [u8; 32],
    /// 0 when the request names none.
    pub namespace: i16,
    pub timestamp: i64,
    /// `timestamp + ttl`.
    pub expiry: i64,
    /// The message, decoded.
    pub data: Vec<u8>,
}

/// The request in `body`, if it is a plain unsigned `store` (module docs); `None` otherwise.
pub fn parse_plain_store(body: &[u8]) -> Option<PlainStore> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    let top = doc.as_object()?;
    if top.len() != 2 || top.get("method")?.as_str()? != "store" {
        return None;
    }
    let params = top.get("params")?.as_object()?;
    if !params.keys().all(|k| {
        matches!(
            k.as_str(),
            "pubkey" | "timestamp" | "ttl" | "data" | "namespace"
        )
    }) {
        return None;
    }
    let (prefix, key) = account(params.get("pubkey")?.as_str()?)?;
    let timestamp = params.get("timestamp")?.as_i64()?;
    let ttl = params.get("ttl")?.as_u64()?;
    let expiry = i64::try_from(i128::from(timestamp) + i128::from(ttl)).ok()?;
    let namespace = namespace(params)?;
    let data = decode_b64(params.get("data")?.as_str()?)?;
    Some(PlainStore {
        prefix,
        key,
        namespace,
        timestamp,
        expiry,
        data,
    })
}

fn account(s: &str) -> Option<(u8, [u8; 32])> {
    if s.len() != 66 {
        return None;
    }
    let mut raw = [0u8; 33];
    hex::decode_to_slice(s, &mut raw).ok()?;
    let mut key = [0u8; 32];
    key.copy_from_slice(&raw[1..]);
    Some((raw[0], key))
}

fn namespace(params: &Map<String, Value>) -> Option<i16> {
    match params.get("namespace") {
        None => Some(0),
        Some(v) => {
            let n = v.as_i64()?;
            if (NAMESPACE_MIN..=NAMESPACE_MAX).contains(&n) {
                i16::try_from(n).ok()
            } else {
                None
            }
        }
    }
}

/// Base64 as the storage server accepts it: `[A-Za-z0-9+/_-]*` then at most two `=`, a length
/// that is not 1 more than a multiple of 4 once the padding is stripped, and with padding a
/// length that is a multiple of 4; at most [`MAX_DATA_B64`] characters.
fn decode_b64(s: &str) -> Option<Vec<u8>> {
    if s.len() > MAX_DATA_B64 {
        return None;
    }
    let body = s.trim_end_matches('=');
    let padding = s.len() - body.len();
    if padding > 2 || (padding > 0 && s.len() % 4 != 0) || body.len() % 4 == 1 {
        return None;
    }
    let mut std = Vec::with_capacity(body.len());
    for &c in body.as_bytes() {
        std.push(match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => c,
            b'-' => b'+',
            b'_' => b'/',
            _ => return None,
        });
    }
    LENIENT.decode(&std).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PK: &str = "05aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899";

    fn body(params: &str) -> Vec<u8> {
        format!(r#"{{"method":"store","params":{{{params}}}}}"#).into_bytes()
    }

    #[test]
    fn accepts_the_plain_shape() {
        let got = parse_plain_store(&body(&format!(
            r#""pubkey":"{PK}","timestamp":1700000000000,"ttl":86400000,"data":"aGVsbG8=""#
        )))
        .expect("plain store");
        assert_eq!(got.prefix, 5);
        assert_eq!(got.key[0], 0xaa);
        assert_eq!(got.namespace, 0);
        assert_eq!(got.timestamp, 1_700_000_000_000);
        assert_eq!(got.expiry, 1_700_086_400_000);
        assert_eq!(got.data, b"hello");
        let ns = parse_plain_store(&body(&format!(
            r#""namespace":-10,"data":"aGVsbG8","ttl":1,"timestamp":2,"pubkey":"{}""#,
            PK.to_uppercase()
        )))
        .expect("plain store with a namespace");
        assert_eq!(
            (ns.namespace, ns.expiry, ns.data.as_slice()),
            (-10, 3, &b"hello"[..])
        );
        // URL-safe characters, mixed with standard ones, as the storage server allows
        let url = parse_plain_store(&body(&format!(
            r#""pubkey":"{PK}","timestamp":1,"ttl":1,"data":"-_+/""#
        )))
        .expect("url-safe data");
        assert_eq!(url.data, [0xfb, 0xff, 0xbf]);
    }

    #[test]
    fn leaves_everything_else_to_the_full_parser() {
        let ok = format!(r#""pubkey":"{PK}","timestamp":1,"ttl":1,"data":"QQ==""#);
        assert!(parse_plain_store(&body(&ok)).is_some());
        for params in [
            format!(r#"{ok},"signature":"x""#),
            format!(r#"{ok},"expiry":5"#),
            format!(r#"{ok},"namespace":null"#),
            format!(r#"{ok},"namespace":32768"#),
            format!(r#"{ok},"namespace":"5""#),
            format!(r#""pubkey":"{PK}","timestamp":"1","ttl":1,"data":"QQ==""#),
            format!(r#""pubkey":"{PK}","timestamp":1.0,"ttl":1,"data":"QQ==""#),
            format!(r#""pubkey":"{PK}","timestamp":1,"ttl":-1,"data":"QQ==""#),
            format!(r#""pubkey":"{PK}","timestamp":9223372036854775807,"ttl":1,"data":"QQ==""#),
            format!(r#""pubkey":"{PK}","timestamp":1,"data":"QQ==""#),
            format!(r#""pubkey":"{PK}0","timestamp":1,"ttl":1,"data":"QQ==""#),
            format!(
                r#""pubkey":"{}","timestamp":1,"ttl":1,"data":"QQ==""#,
                &PK[..64]
            ),
            format!(r#""pubkey":"{PK}","timestamp":1,"ttl":1,"data":"Q""#),
            format!(r#""pubkey":"{PK}","timestamp":1,"ttl":1,"data":"QQ=""#),
            format!(r#""pubkey":"{PK}","timestamp":1,"ttl":1,"data":"QQ===""#),
            format!(r#""pubkey":"{PK}","timestamp":1,"ttl":1,"data":"Q=Q=""#),
            format!(r#""pubkey":"{PK}","timestamp":1,"ttl":1,"data":"QQ==\n""#),
            format!(r#""pubkey":"{PK}","timestamp":1,"ttl":1,"data":5"#),
        ] {
            assert!(parse_plain_store(&body(&params)).is_none(), "{params}");
        }
        for other in [
            br#"{"method":"retrieve","params":{}}"#.to_vec(),
            format!(r#"{{"method":"store","params":{{{ok}}},"x":1}}"#).into_bytes(),
            format!(r#"[{{"method":"store","params":{{{ok}}}}}]"#).into_bytes(),
            b"\xff".to_vec(),
            br#"{"method":"store","params":{"data":"\ud800"}}"#.to_vec(),
        ] {
            assert!(parse_plain_store(&other).is_none());
        }
    }

    #[test]
    fn data_at_the_size_limit() {
        let max = "A".repeat(MAX_DATA_B64);
        let at = format!(r#""pubkey":"{PK}","timestamp":1,"ttl":1,"data":"{max}""#);
        assert_eq!(
            parse_plain_store(&body(&at)).map(|s| s.data.len()),
            Some(76_800)
        );
        let over = format!(r#""pubkey":"{PK}","timestamp":1,"ttl":1,"data":"{max}AAAA""#);
        assert!(parse_plain_store(&body(&over)).is_none());
    }
}
