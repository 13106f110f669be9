//! Replies (network spec §6.6): the destination encrypts its answer **once**, with the key of the
//! layer it peeled, and every hop passes it back unchanged.
//!
//! * [`ReplyCipher`] — destination side (a storage node that delivered, a node answering a
//!   forbidden proxy request, or a v4 HTTP server).
//! * [`ReplyKey`] — client side, kept from [`crate::builder::build`], opens the reply.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::error::{Error, Result};
use crate::hop::{EncType, HopKey};

/// Destination-side reply encryption for one peeled layer.
#[derive(Clone, Debug)]
pub struct ReplyCipher {
    key: HopKey,
    base64: bool,
    embed_json: bool,
}

impl ReplyCipher {
    /// A reply cipher; `base64` encodes the ciphertext (storage-node default), `embed_json`
    /// embeds JSON bodies unquoted in [`ReplyCipher::encrypt_status`].
    pub fn new(key: HopKey, base64: bool, embed_json: bool) -> Self {
        ReplyCipher {
            key,
            base64,
            embed_json,
        }
    }

    /// The cipher of the layer (and of the reply).
    pub fn enc_type(&self) -> EncType {
        self.key.enc_type()
    }

    /// Whether replies are base64-encoded after encryption.
    pub fn base64(&self) -> bool {
        self.base64
    }

    /// Whether JSON bodies are embedded (not double-encoded) by [`Self::encrypt_status`].
    pub fn embed_json(&self) -> bool {
        self.embed_json
    }

    /// Encrypts `response` as is (then base64 if the layer asked for it).
    pub fn encrypt(&self, response: &[u8]) -> Vec<u8> {
        let ct = self.key.encrypt(response);
        if self.base64 {
            B64.encode(ct).into_bytes()
        } else {
            ct
        }
    }

    /// The storage server's reply wrapper: JSON `{"status": status, "body": body}` where `body`
    /// is a JSON string (or the embedded JSON value when the layer set `json: true` and `body`
    /// is valid JSON), then [`Self::encrypt`].
    pub fn encrypt_status(&self, status: u16, body: &[u8]) -> Result<Vec<u8>> {
        let wrapped = wrap_status(status, body, self.embed_json)?;
        Ok(self.encrypt(&wrapped))
    }
}

/// `{"status": status, "body": body}` as the storage server writes it.
pub fn wrap_status(status: u16, body: &[u8], embed_json: bool) -> Result<Vec<u8>> {
    if embed_json {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
            let out = serde_json::json!({"status": status, "body": v});
            return Ok(out.to_string().into_bytes());
        }
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| Error::InvalidInput("reply body must be UTF-8 text".into()))?;
    Ok(serde_json::json!({"status": status, "body": text})
        .to_string()
        .into_bytes())
}

/// Client-side key for the destination's reply.
#[derive(Clone, Debug)]
pub struct ReplyKey {
    primary: HopKey,
    /// libsession: a reply to an xchacha20 request may come back AES-GCM encrypted (legacy push
    /// server), so the AES-GCM key of the same shared secret is also tried.
    fallback: Option<HopKey>,
}

impl ReplyKey {
    pub(crate) fn new(primary: HopKey, fallback: Option<HopKey>) -> Self {
        ReplyKey { primary, fallback }
    }

    /// The cipher the request used.
    pub fn enc_type(&self) -> EncType {
        self.primary.enc_type()
    }

    fn open(&self, ct: &[u8]) -> Option<Vec<u8>> {
        if let Ok(pt) = self.primary.decrypt(ct) {
            return Some(pt);
        }
        self.fallback.as_ref().and_then(|k| k.decrypt(ct).ok())
    }

    /// Opens a reply body. Accepts the raw ciphertext (v4 servers), its base64 form (storage
    /// nodes by default) and the legacy wrapper `{"result": "<base64>"}`.
    pub fn decrypt(&self, body: &[u8]) -> Result<Vec<u8>> {
        if let Some(pt) = self.open(body) {
            return Ok(pt);
        }
        let trimmed = body.trim_ascii();
        if let Ok(raw) = B64.decode(trimmed) {
            if let Some(pt) = self.open(&raw) {
                return Ok(pt);
            }
        }
        if trimmed.first() == Some(&b'{') {
            #[derive(serde::Deserialize)]
            struct Legacy {
                result: String,
            }
            if let Ok(Legacy { result }) = serde_json::from_slice::<Legacy>(trimmed) {
                if let Ok(raw) = B64.decode(result.trim()) {
                    if let Some(pt) = self.open(&raw) {
                        return Ok(pt);
                    }
                }
            }
        }
        Err(Error::DecryptionFailed(
            "the reply does not decrypt with this request's key",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap() {
        let w = wrap_status(200, br#"{"a":1}"#, false).expect("wrap");
        assert_eq!(w, br#"{"body":"{\"a\":1}","status":200}"#);
        let w = wrap_status(421, br#"{"a":1}"#, true).expect("wrap");
        assert_eq!(w, br#"{"body":{"a":1},"status":421}"#);
        assert!(wrap_status(200, b"\xff", false).is_err());
        let w = wrap_status(200, b"plain text", true).expect("wrap");
        assert_eq!(w, br#"{"body":"plain text","status":200}"#);
    }
}
