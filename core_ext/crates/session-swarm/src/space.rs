//! Account IDs and the 64-bit swarm space (network spec §1.1, §2.1).

use crate::error::{Error, Result};

/// A parsed 33-byte account ID: one prefix byte (any value: `05` Session IDs, `03` groups,
/// ...) followed by a 32-byte public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccountId {
    bytes: [u8; 33],
}

impl AccountId {
    /// Parses the 66-hex-digit text form (upper or lower case). The storage server accepts
    /// any prefix byte, so this does too.
    pub fn parse(text: &str) -> Result<Self> {
        if !text.is_ascii() {
            return Err(Error::InvalidAccountId(
                "it contains characters that are not hex digits".into(),
            ));
        }
        if text.len() != 66 {
            return Err(Error::InvalidAccountId(format!(
                "expected 66 hex digits (a 1-byte prefix and a 32-byte key), got {} characters",
                text.len()
            )));
        }
        let mut bytes = [0u8; 33];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| {
            Error::InvalidAccountId("it contains characters that are not hex digits".into())
        })?;
        Ok(Self { bytes })
    }

    /// Builds an account ID from its 33 raw bytes.
    pub fn from_bytes(bytes: [u8; 33]) -> Self {
        Self { bytes }
    }

    /// The 33 raw bytes (prefix ‖ key).
    pub fn as_bytes(&self) -> &[u8; 33] {
        &self.bytes
    }

    /// The prefix byte.
    pub fn prefix(&self) -> u8 {
        self.bytes[0]
    }

    /// The 32-byte key after the prefix.
    pub fn key(&self) -> &[u8; 32] {
        self.bytes[1..].try_into().unwrap_or(&[0u8; 32])
    }

    /// The 66-hex-digit lowercase text form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.bytes)
    }

    /// This account's position in the 64-bit swarm space.
    pub fn swarm_space(&self) -> u64 {
        swarm_space_of_key(self.key())
    }
}

impl core::fmt::Debug for AccountId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "AccountId({})", self.to_hex())
    }
}

impl core::str::FromStr for AccountId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// Swarm space of a 32-byte key: the XOR of its four 8-byte big-endian words.
pub fn swarm_space_of_key(key: &[u8; 32]) -> u64 {
    key.chunks_exact(8).fold(0u64, |acc, chunk| {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        acc ^ u64::from_be_bytes(word)
    })
}

/// Swarm space of an account ID given as 66 hex digits.
pub fn swarm_space(account_id: &str) -> Result<u64> {
    Ok(AccountId::parse(account_id)?.swarm_space())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_text() {
        assert!(matches!(swarm_space(""), Err(Error::InvalidAccountId(_))));
        assert!(matches!(
            swarm_space(&"0".repeat(64)),
            Err(Error::InvalidAccountId(_))
        ));
        assert!(matches!(
            swarm_space(&"g".repeat(66)),
            Err(Error::InvalidAccountId(_))
        ));
        // 66 bytes but multi-byte characters.
        assert!(matches!(
            swarm_space(&"é".repeat(33)),
            Err(Error::InvalidAccountId(_))
        ));
    }

    #[test]
    fn prefix_is_ignored() {
        let key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdee";
        let a = swarm_space(&format!("05{key}")).expect("valid");
        let b = swarm_space(&format!("03{key}")).expect("valid");
        let c = swarm_space(&format!("FF{}", key.to_uppercase())).expect("valid");
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a, 1);
    }
}
