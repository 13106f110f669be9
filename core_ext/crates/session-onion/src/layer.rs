//! The layer byte layout ("ciphertext plus JSON", network spec §6.2):
//! `LE32(n) ‖ blob[n] ‖ utf8 JSON object`. The JSON is everything after the blob.

use crate::error::{Error, Result};

/// Longest blob a layer may carry (the LE32 prefix is a `u32`).
pub const MAX_BLOB: usize = u32::MAX as usize;

/// Splits a layer into `(blob, json_bytes)`; the JSON is not parsed here.
pub fn split(data: &[u8]) -> Result<(&[u8], &[u8])> {
    let Some((prefix, rest)) = data.split_first_chunk::<4>() else {
        return Err(Error::Malformed(format!(
            "layer of {} bytes is shorter than its 4-byte length prefix",
            data.len()
        )));
    };
    let n = u32::from_le_bytes(*prefix) as usize;
    if rest.len() < n {
        return Err(Error::Malformed(format!(
            "length prefix says {n} bytes but only {} follow",
            rest.len()
        )));
    }
    Ok(rest.split_at(n))
}

/// Joins a blob and raw JSON bytes into a layer.
pub fn join(blob: &[u8], json: &[u8]) -> Result<Vec<u8>> {
    let n = u32::try_from(blob.len()).map_err(|_| {
        Error::InvalidInput(format!(
            "blob of {} bytes is too large for a layer",
            blob.len()
        ))
    })?;
    let mut out = Vec::with_capacity(4 + blob.len() + json.len());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(blob);
    out.extend_from_slice(json);
    Ok(out)
}

/// Splits a layer and checks that its JSON part is one JSON object (strict parser, nothing
/// may follow it but whitespace).
pub fn decode(data: &[u8]) -> Result<(&[u8], &[u8])> {
    let (blob, json) = split(data)?;
    check_json_object(json)?;
    Ok((blob, json))
}

/// Builds a layer after checking that `json` is one JSON object.
pub fn encode(blob: &[u8], json: &[u8]) -> Result<Vec<u8>> {
    check_json_object(json).map_err(|e| Error::InvalidInput(e.to_string()))?;
    join(blob, json)
}

fn check_json_object(json: &[u8]) -> Result<()> {
    let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(json)
        .map_err(|e| Error::InvalidJson(format!("layer JSON is not an object: {e}")))?;
    drop(v);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let l = encode(b"abc", br#"{"a":1}"#).expect("encode");
        assert_eq!(&l[..4], &[3, 0, 0, 0]);
        assert_eq!(
            decode(&l).expect("decode"),
            (&b"abc"[..], &br#"{"a":1}"#[..])
        );
    }

    #[test]
    fn bad_layers() {
        assert!(matches!(split(b"\x01\x00"), Err(Error::Malformed(_))));
        assert!(matches!(
            split(b"\x05\x00\x00\x00abc"),
            Err(Error::Malformed(_))
        ));
        assert!(matches!(
            decode(b"\x01\x00\x00\x00a[1]"),
            Err(Error::InvalidJson(_))
        ));
        assert!(matches!(
            decode(b"\x01\x00\x00\x00a{} x"),
            Err(Error::InvalidJson(_))
        ));
        assert!(matches!(
            decode(b"\x00\x00\x00\x00"),
            Err(Error::InvalidJson(_))
        ));
    }
}
