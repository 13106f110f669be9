//! The v4 onion payload framing (network spec §6.6–6.7, §11.11): a bencoded list of one or two
//! byte strings, `l <len>:<meta JSON> [<len>:<body>] e`.
//!
//! Requests carry meta `{"method", "endpoint", "headers"}` (endpoint starts with `/`),
//! responses `{"code": int, "headers": {...}}`. Decoding is strict: canonical lengths (no
//! leading zeros), nothing after the closing `e`, meta must be a JSON object.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Request or response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Response,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Bencode(msg.into())
}

fn push_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(s.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(s);
}

/// Encodes `meta` (raw JSON text of an object) and an optional body.
pub fn encode(kind: Kind, meta_json: &[u8], body: Option<&[u8]>) -> Result<Vec<u8>> {
    let meta = parse_meta(meta_json)?;
    check_meta(kind, &meta)?;
    let mut out = Vec::with_capacity(meta_json.len() + body.map_or(0, <[u8]>::len) + 24);
    out.push(b'l');
    push_str(&mut out, meta_json);
    if let Some(b) = body {
        push_str(&mut out, b);
    }
    out.push(b'e');
    Ok(out)
}

/// Decodes into `(meta JSON bytes, body)`.
pub fn decode(kind: Kind, data: &[u8]) -> Result<(&[u8], Option<&[u8]>)> {
    let rest = data
        .strip_prefix(b"l")
        .ok_or_else(|| bad("expected a bencoded list ('l')"))?;
    let (meta, mut rest) = take_str(rest)?;
    let body = if rest.first() == Some(&b'e') {
        None
    } else {
        let (b, r) = take_str(rest)?;
        rest = r;
        Some(b)
    };
    if rest != b"e" {
        return Err(bad(if rest.is_empty() {
            "list is not terminated"
        } else {
            "expected the end of the list after at most two strings"
        }));
    }
    let m = parse_meta(meta)?;
    check_meta(kind, &m)?;
    Ok((meta, body))
}

fn take_str(data: &[u8]) -> Result<(&[u8], &[u8])> {
    let colon = data
        .iter()
        .take(21)
        .position(|&b| b == b':')
        .ok_or_else(|| bad("expected a byte string '<len>:'"))?;
    let digits = &data[..colon];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad("byte string length is not a decimal number"));
    }
    if digits.len() > 1 && digits[0] == b'0' {
        return Err(bad("byte string length has a leading zero"));
    }
    let n: usize = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("byte string length is too large"))?;
    let rest = &data[colon + 1..];
    if rest.len() < n {
        return Err(bad(format!(
            "byte string of {n} bytes but only {} remain",
            rest.len()
        )));
    }
    Ok(rest.split_at(n))
}

fn parse_meta(meta: &[u8]) -> Result<Map<String, Value>> {
    serde_json::from_slice(meta).map_err(|e| bad(format!("meta is not a JSON object: {e}")))
}

fn check_meta(kind: Kind, m: &Map<String, Value>) -> Result<()> {
    let headers_ok = m.get("headers").map_or(true, Value::is_object);
    match kind {
        Kind::Request => {
            if !m.get("method").is_some_and(Value::is_string) {
                return Err(bad("request meta needs a string \"method\""));
            }
            if !m
                .get("endpoint")
                .and_then(Value::as_str)
                .is_some_and(|e| e.starts_with('/'))
            {
                return Err(bad("request meta needs an \"endpoint\" starting with '/'"));
            }
            if !headers_ok {
                return Err(bad("request \"headers\" must be an object"));
            }
        }
        Kind::Response => {
            if !m.get("code").is_some_and(Value::is_i64) {
                return Err(bad("response meta needs an integer \"code\""));
            }
            if !headers_ok {
                return Err(bad("response \"headers\" must be an object"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../tests/vectors/v4_bencode.json"
        );
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("file")).expect("json");
        for c in v["cases"].as_array().expect("cases") {
            let kind = if c["direction"] == "request" {
                Kind::Request
            } else {
                Kind::Response
            };
            let enc = c["encoded_utf8"].as_str().expect("enc").as_bytes();
            let meta = c["meta_utf8"].as_str().expect("meta").as_bytes();
            let body = c["body_utf8"].as_str().map(str::as_bytes);
            assert_eq!(
                decode(kind, enc).expect("decode"),
                (meta, body),
                "{}",
                c["name"]
            );
            assert_eq!(
                encode(kind, meta, body).expect("encode"),
                enc,
                "{}",
                c["name"]
            );
        }
    }

    #[test]
    fn garbage() {
        let m = br#"{"code":200}"#;
        for bad in [
            &b""[..],
            b"l",
            b"le",
            b"i1e",
            b"l12:{\"code\":200}",
            b"l012:{\"code\":200}e",
            b"l12:{\"code\":200}0:0:e",
            b"l12:{\"code\":200}e ",
            b"l2:[]e",
            b"l99999999999999999999999:xe",
            b"l-1:e",
        ] {
            assert!(
                matches!(decode(Kind::Response, bad), Err(Error::Bencode(_))),
                "{bad:?}"
            );
        }
        assert!(decode(Kind::Response, b"l12:{\"code\":200}0:e").is_ok());
        assert!(decode(Kind::Request, b"l12:{\"code\":200}e").is_err());
        assert!(encode(Kind::Response, m, None).is_ok());
        assert!(encode(Kind::Request, br#"{"method":"GET","endpoint":"x"}"#, None).is_err());
    }
}
