//! Message padding (client spec §2.2): the serialized Content gets one `0x80` byte and then
//! `0x00` bytes up to a 160-byte block boundary before it is encrypted.

use crate::error::{Error, Result};

/// Padding block size.
pub const BLOCK: usize = 160;
/// The marker byte that ends the content.
pub const MARKER: u8 = 0x80;

/// libsession `pad_message` (what current clients send): the result length is the next
/// multiple of 160 strictly above `len + 1`, so always a multiple of 160.
pub fn padded_len(len: usize) -> usize {
    BLOCK * ((len + 1) / BLOCK + 1)
}

/// The legacy (Signal / pre-libsession desktop) length: 160·⌈(len+2)/160⌉ − 1.
pub fn padded_len_desktop_legacy(len: usize) -> usize {
    BLOCK * (len + 2).div_ceil(BLOCK) - 1
}

fn pad_to(data: &[u8], total: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(data);
    out.push(MARKER);
    out.resize(total, 0);
    out
}

/// Pads in the libsession form (multiple of 160). This is what we send.
pub fn pad(data: &[u8]) -> Vec<u8> {
    pad_to(data, padded_len(data.len()))
}

/// Pads in the legacy desktop form (160·k − 1 bytes). Only for tests and compatibility
/// checks; receivers accept both forms.
pub fn pad_desktop_legacy(data: &[u8]) -> Vec<u8> {
    pad_to(data, padded_len_desktop_legacy(data.len()))
}

/// Length of the content inside `data` (receiver side, lenient like every Session client):
/// trailing `0x00` bytes are skipped; if the byte before them is `0x80` the content ends
/// there; if it is any other byte the message was not padded and is kept whole. Data that is
/// empty or only zero bytes has no content marker at all and is rejected (as desktop does).
pub fn unpadded_len(data: &[u8]) -> Result<usize> {
    match data.iter().rposition(|&b| b != 0) {
        None => Err(Error::BadPadding(if data.is_empty() {
            "the data is empty"
        } else {
            "the data is only zero bytes, with no 0x80 marker"
        })),
        Some(i) if data[i] == MARKER => Ok(i),
        Some(_) => Ok(data.len()),
    }
}

/// Removes padding of either form (see [`unpadded_len`]).
pub fn unpad(data: &[u8]) -> Result<&[u8]> {
    Ok(&data[..unpadded_len(data)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_sizes() {
        for len in 0..700 {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8 | 1).collect();
            let p = pad(&data);
            assert_eq!(p.len() % BLOCK, 0);
            assert!(p.len() > len + 1 - 1);
            assert_eq!(unpad(&p).expect("valid"), &data[..]);
            let q = pad_desktop_legacy(&data);
            assert_eq!((q.len() + 1) % BLOCK, 0);
            assert_eq!(unpad(&q).expect("valid"), &data[..]);
        }
    }

    #[test]
    fn lenient_cases() {
        assert_eq!(unpad(b"abc").expect("unpadded kept"), b"abc");
        assert_eq!(
            unpad(b"abc\x00\x00").expect("unpadded kept"),
            b"abc\x00\x00"
        );
        assert_eq!(unpad(b"\x80").expect("empty content"), b"");
        assert_eq!(unpad(b"a\x80\x80\x00").expect("last marker"), b"a\x80");
        assert!(unpad(b"").is_err());
        assert!(unpad(&[0u8; 5]).is_err());
    }
}
