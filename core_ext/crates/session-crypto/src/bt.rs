//! The strict subset of bencoding ("bt") that libsession's group formats use.
//!
//! Group messages, key messages and config messages are bencoded dicts whose keys must be in
//! ascending byte order with no duplicates; integers have no leading zeros. [`parse`] reads one
//! value and refuses anything that is not canonical (a re-encoding would give different bytes,
//! which matters wherever a signature or hash covers the encoding). [`DictWriter`] writes a
//! dict whose keys the caller appends in ascending order.

use crate::error::{Error, Result};

/// Deepest nesting accepted by [`parse`] (config messages nest a few levels).
pub const MAX_DEPTH: usize = 32;

/// One decoded value; strings borrow from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(Vec<Value<'a>>),
    /// Keys in ascending order, as on the wire.
    Dict(Vec<(&'a [u8], Value<'a>)>),
}

impl<'a> Value<'a> {
    /// The value of `key` in a dict (None for other values or a missing key).
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        match self {
            Value::Dict(items) => items.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The bytes of a string value.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The integer of an int value.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

fn bad(reason: &'static str) -> Error {
    Error::InvalidValue {
        what: "bencoded data",
        reason,
    }
}

/// Parses exactly one canonical bencoded value filling all of `data`.
pub fn parse(data: &[u8]) -> Result<Value<'_>> {
    let (v, end) = parse_at(data, 0, 0)?;
    if end != data.len() {
        return Err(bad("there are bytes after the value"));
    }
    Ok(v)
}

/// Parses one value at `pos`; returns it and the position after it.
pub fn parse_prefix(data: &[u8]) -> Result<(Value<'_>, usize)> {
    parse_at(data, 0, 0)
}

fn parse_at(data: &[u8], pos: usize, depth: usize) -> Result<(Value<'_>, usize)> {
    if depth > MAX_DEPTH {
        return Err(bad("it is nested too deeply"));
    }
    match data.get(pos) {
        None => Err(bad("it ends early")),
        Some(b'i') => {
            let end = find(data, pos + 1, b'e')?;
            let text = &data[pos + 1..end];
            Ok((Value::Int(parse_int(text)?), end + 1))
        }
        Some(b'l') => {
            let mut items = Vec::new();
            let mut p = pos + 1;
            while data.get(p) != Some(&b'e') {
                let (v, next) = parse_at(data, p, depth + 1)?;
                items.push(v);
                p = next;
            }
            Ok((Value::List(items), p + 1))
        }
        Some(b'd') => {
            let mut items: Vec<(&[u8], Value<'_>)> = Vec::new();
            let mut p = pos + 1;
            while data.get(p) != Some(&b'e') {
                let (k, next) = parse_string(data, p)?;
                if let Some((prev, _)) = items.last() {
                    if *prev >= k {
                        return Err(bad("dict keys are not in ascending order"));
                    }
                }
                let (v, next) = parse_at(data, next, depth + 1)?;
                items.push((k, v));
                p = next;
            }
            Ok((Value::Dict(items), p + 1))
        }
        Some(_) => {
            let (s, next) = parse_string(data, pos)?;
            Ok((Value::Bytes(s), next))
        }
    }
}

fn find(data: &[u8], from: usize, byte: u8) -> Result<usize> {
    data.get(from..)
        .and_then(|rest| rest.iter().position(|&b| b == byte))
        .map(|i| from + i)
        .ok_or(bad("it ends early"))
}

fn parse_int(text: &[u8]) -> Result<i64> {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits == b"0" || digits[0] != b'0')
        && text != b"-0";
    if !canonical {
        return Err(bad("an integer is not canonical"));
    }
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(bad("an integer does not fit in 64 bits"))
}

fn parse_string(data: &[u8], pos: usize) -> Result<(&[u8], usize)> {
    let colon = find(data, pos, b':')?;
    let len_text = &data[pos..colon];
    if len_text.is_empty()
        || !len_text.iter().all(u8::is_ascii_digit)
        || (len_text.len() > 1 && len_text[0] == b'0')
    {
        return Err(bad("a string length is not canonical"));
    }
    let len: usize = std::str::from_utf8(len_text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(bad("a string length is too large"))?;
    let start = colon + 1;
    let end = start
        .checked_add(len)
        .ok_or(bad("a string length is too large"))?;
    let s = data.get(start..end).ok_or(bad("it ends early"))?;
    Ok((s, end))
}

/// Writes a dict; keys must be appended in ascending order (checked in debug builds).
#[derive(Debug, Default)]
pub struct DictWriter {
    out: Vec<u8>,
    last: Option<Vec<u8>>,
}

impl DictWriter {
    pub fn new() -> Self {
        DictWriter {
            out: vec![b'd'],
            last: None,
        }
    }

    fn key(&mut self, key: &[u8]) {
        debug_assert!(
            !matches!(self.last.as_deref(), Some(l) if l >= key),
            "keys out of order"
        );
        self.last = Some(key.to_vec());
        push_string(&mut self.out, key);
    }

    /// Appends `key` → string.
    pub fn bytes(&mut self, key: &[u8], value: &[u8]) -> &mut Self {
        self.key(key);
        push_string(&mut self.out, value);
        self
    }

    /// Appends `key` → integer.
    pub fn int(&mut self, key: &[u8], value: i64) -> &mut Self {
        self.key(key);
        self.out.extend_from_slice(format!("i{value}e").as_bytes());
        self
    }

    /// Appends `key` → list of strings.
    pub fn list_of_bytes<'b>(
        &mut self,
        key: &[u8],
        items: impl IntoIterator<Item = &'b [u8]>,
    ) -> &mut Self {
        self.key(key);
        self.out.push(b'l');
        for it in items {
            push_string(&mut self.out, it);
        }
        self.out.push(b'e');
        self
    }

    /// The encoding so far without the closing `e` (what a trailing signature covers).
    pub fn unfinished(&self) -> &[u8] {
        &self.out
    }

    /// The finished dict.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.push(b'e');
        self.out
    }
}

fn push_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(s.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let mut w = DictWriter::new();
        w.int(b"", 1)
            .bytes(b"a", b"xy")
            .list_of_bytes(b"k", [&b"1"[..], b""]);
        let enc = w.finish();
        assert_eq!(enc, b"d0:i1e1:a2:xy1:kl1:10:ee");
        let v = parse(&enc).expect("parse");
        assert_eq!(v.get(b"").and_then(Value::as_int), Some(1));
        assert_eq!(v.get(b"a").and_then(Value::as_bytes), Some(&b"xy"[..]));
        for bad in [
            &b"d1:bi1e1:ai2ee"[..], // keys out of order
            b"d1:ai1e1:ai2ee",      // duplicate key
            b"i01e",
            b"i-0e",
            b"ie",
            b"02:ab",
            b"3:ab",
            b"i1ei2e",
            b"l",
            b"d1:a",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = "l".repeat(MAX_DEPTH + 2) + &"e".repeat(MAX_DEPTH + 2);
        assert!(parse(deep.as_bytes()).is_err());
        assert_eq!(parse(b"i-12e").expect("int"), Value::Int(-12));
    }
}
